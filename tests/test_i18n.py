"""Ukrainian translation (SPEC §7): i18n/uk.po covers every term and is what users see.

Loads uk.po into the test database like Settings › Languages does, then reads labels,
selection values, menus, views, constraint messages and the messages of the Python code
(the inbound API over real HTTP, the config buttons, constraints) in Ukrainian.
"""

import json
import re

import polib

from odoo import Command
from odoo.exceptions import UserError, ValidationError
from odoo.tests import HttpCase, new_test_user, tagged
from odoo.tools import file_path, mute_logger
from odoo.tools.translate import TranslationModuleReader

from ..services import inbound
from .common import API, in_config

UK = "uk_UA"
# %s, %(name)s, %(delay).1f, %(value)r, and {api_key} placeholders of URLs
PLACEHOLDER = re.compile(
    r"%(?:\([A-Za-z_][A-Za-z0-9_]*\))?[-+ #0]*\d*(?:\.\d+)?[sdifrxXeEgGc%]|\{[A-Za-z_][A-Za-z0-9_]*\}"
)
MARKUP = re.compile(r"</?[a-zA-Z][^>]*>|&[a-z]+;")


@tagged("post_install", "-at_install")
class TestI18n(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["res.lang"]._activate_lang(UK)
        cls.env["ir.module.module"]._load_module_terms(["bj_api_sync"], [UK], overwrite=True)
        cls.uk = cls.env(context=dict(cls.env.context, lang=UK))
        cls.Config = cls.uk["bj.api.sync.config"]
        cls.po = polib.pofile(file_path("bj_api_sync/i18n/uk.po"))

    @classmethod
    def _in_config(cls, endpoint, methods=("GET",), **vals):
        return in_config(cls.env, endpoint, methods, fields=(), **{"name": "i18n %s" % endpoint, **vals})

    def _label(self, model, field):
        return self.uk[model]._fields[field].get_description(self.uk)["string"]

    # ------------------------------------------------------------------ the .po file itself
    def test_po_header_and_entries(self):
        self.assertEqual(self.po.metadata.get("Language"), "uk")
        self.assertEqual(
            self.po.metadata.get("Plural-Forms"),
            "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && (n%100<10 || n%100>=20) ? 1 : 2);",
        )
        live = [entry for entry in self.po if not entry.obsolete]
        self.assertGreater(len(live), 400)
        for entry in live:
            with self.subTest(msgid=entry.msgid):
                self.assertTrue(entry.msgstr, "untranslated")
                self.assertNotIn("fuzzy", entry.flags, "Odoo loads fuzzy entries as real translations")
                self.assertEqual(sorted(PLACEHOLDER.findall(entry.msgid)), sorted(PLACEHOLDER.findall(entry.msgstr)))
                self.assertEqual(MARKUP.findall(entry.msgid), MARKUP.findall(entry.msgstr))
                self.assertEqual(entry.msgid.count("\n"), entry.msgstr.count("\n"))

    def test_every_term_of_the_module_is_translated(self):
        """What Odoo would export for bj_api_sync now (fields, selections, views, menus, actions,
        constraints, every _() in the code) all has a Ukrainian translation in uk.po."""
        translated = {entry.msgid for entry in self.po if entry.msgstr and not entry.obsolete}
        terms, sources = {}, set()
        for module, kind, name, _res_id, source, _value, _comments in TranslationModuleReader(
            self.env.cr, modules=["bj_api_sync"]
        ):
            if module == "bj_api_sync" and source:
                sources.add(source)
                if source not in translated:
                    terms.setdefault(source, "%s %s" % (kind, name))
        self.assertGreater(len(sources), 400, "the export found too few terms to be the whole module")
        self.assertIn("Endpoint not found", sources)  # env._() in services/
        self.assertIn("Request Type", sources)  # a field label
        self.assertFalse(
            terms,
            "%d term(s) of bj_api_sync have no Ukrainian translation: run scripts/i18n.sh and translate the "
            "empty entries of i18n/uk.po:\n%s" % (len(terms), "\n".join("%r (%s)" % item for item in terms.items())),
        )

    # ------------------------------------------------------------------ labels, selections, menus, views
    def test_field_labels(self):
        expected = {
            ("bj.api.sync.config", "request_type"): "Тип запиту",
            ("bj.api.sync.config", "line_ids"): "Рядки конфігурації",
            ("bj.api.sync.config", "endpoint"): "Ендпоінт",
            ("bj.api.sync.config", "auth_type"): "Тип авторизації",
            ("bj.api.sync.config", "header_ids"): "Заголовки",
            ("bj.api.sync.config", "param_ids"): "Параметри",
            ("bj.api.sync.config.line", "api_key"): "Ключ зовнішнього API",
            ("bj.api.sync.config.line", "is_record_identifier"): "Ідентифікатор запису",
            ("bj.api.sync.config.line", "value_type"): "Тип обчислення значення",
            ("bj.api.sync.config.line", "mapping_config_id"): "Модель мапування",
        }
        for (model, field), label in expected.items():
            with self.subTest(model=model, field=field):
                self.assertEqual(self._label(model, field), label)
        # Help texts too, and English stays English.
        self.assertIn("ендпоінт", self.Config._fields["endpoint"].get_description(self.uk)["help"])
        en = self.env(context=dict(self.env.context, lang="en_US"))
        self.assertEqual(en["bj.api.sync.config"]._fields["request_type"].get_description(en)["string"], "Request Type")

    def test_selection_values(self):
        def selection(model, field):
            return dict(self.uk[model]._fields[field]._description_selection(self.uk))

        self.assertEqual(selection("bj.api.sync.config", "request_type"), {"in": "Вхідна", "out": "Вихідна"})
        auth = selection("bj.api.sync.config", "auth_type")
        self.assertEqual(auth["none"], "Без автентифікації")
        self.assertEqual(auth["basic"], "Базова автентифікація")
        self.assertEqual(selection("bj.api.sync.config.line", "value_type")["relational"],
                         "Реляційне з моделлю мапування")
        self.assertEqual(selection("bj.api.sync.job", "state")["pending"], "В очікуванні")
        self.assertEqual(selection("bj.api.log", "status")["success"], "Успішно")
        # A record's selection value as the list view shows it.
        config = self._in_config("i18n-selection").with_context(lang=UK)
        self.assertEqual(dict(config._fields["request_type"]._description_selection(config.env))[config.request_type],
                         "Вхідна")

    def test_menus_models_and_actions(self):
        root = self.env.ref("bj_api_sync.bj_api_sync_menu_root").with_context(lang=UK)
        self.assertEqual(root.name, "BJET API")
        children = root.child_id
        names = set(children.mapped("name"))
        for name in ("Конфігурації API", "Логи", "Завдання синхронізації", "Імпорт конфігурації"):
            self.assertIn(name, names)
        english = {m.id: m.name for m in children.with_context(lang="en_US")}
        for menu in children:
            with self.subTest(menu=english[menu.id]):
                self.assertNotEqual(menu.name, english[menu.id], "menu not translated")
        model = self.env["ir.model"]._get("bj.api.sync.config").with_context(lang=UK)
        self.assertEqual(model.name, "Конфігурація API")
        action = self.env.ref("bj_api_sync.bj_api_sync_config_action").with_context(lang=UK)
        self.assertEqual(action.name, "Конфігурація API")
        self.assertIn("Створіть конфігурацію API", action.help)
        cron = self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker").with_context(lang=UK)
        self.assertEqual(cron.name, "BJET API: доставка завдань синхронізації з черги")

    def test_form_view(self):
        arch = self.Config.get_views([(False, "form")])["views"]["form"]["arch"]
        for text in ("Перевірити з'єднання", "Переглянути корисне навантаження", "Створити тригер",
                     "Запустити зараз", "Рядки конфігурації", "Заголовки", "Параметри", "Інструкція користувача"):
            self.assertIn(text, arch)
        self.assertNotIn("Test Connection", arch)
        view = self.env.ref("bj_api_sync.bj_api_sync_config_line_view_form_script")
        script = self.uk["bj.api.sync.config.line"].get_views([(view.id, "form")])["views"]["form"]["arch"]
        self.assertIn("Можна використовувати такі змінні:", script)
        self.assertIn("<code>env</code>: середовище", script)

    def test_constraint_messages(self):
        with self.assertRaises(ValidationError) as caught:
            self.Config.create({"name": "bad", "request_type": "in", "endpoint": "no spaces",
                                "model_id": self.env.ref("base.model_res_partner").id})
        self.assertIn("може складатися лише з літер, цифр", str(caught.exception))
        config = self._in_config("i18n-constraint").with_context(lang=UK)
        with self.assertRaises(ValidationError) as caught:
            config.line_ids.filtered("is_record_identifier").is_record_identifier = False
        self.assertEqual(
            str(caught.exception),
            "Конфігурація «i18n i18n-constraint» повинна мати рівно один рядок з позначкою «Ідентифікатор запису» "
            "(зараз їх 0).",
        )
        constraint = self.env["ir.model.constraint"].with_context(lang=UK).search(
            [("name", "=", "bj_api_sync_config_limit_positive")]
        )
        self.assertEqual(constraint.message, "Обмеження не може бути від'ємним.")

    def test_button_messages(self):
        config = self._in_config("i18n-buttons").with_context(lang=UK)
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["title"], "Ендпоінт готовий")
        config.http_method_ids = False
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["title"], "Конфігурація неповна")
        self.assertIn("Не вибрано жодного HTTP-методу: кожен запит отримає 405.", notification["params"]["message"])
        with self.assertRaises(UserError) as caught:
            config.action_create_trigger()
        self.assertEqual(str(caught.exception), "Тригери доступні лише для вихідних конфігурацій.")

    # ------------------------------------------------------------------ API error messages
    def test_api_messages_service(self):
        status, _headers, body = inbound.handle(self.uk, "i18n-none", "GET")
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body)["message"], "Ендпоінт не знайдено")
        self._in_config("i18n-service")
        status, headers, body = inbound.handle(self.uk, "i18n-service", "DELETE", record_id="1")
        self.assertEqual(status, 405)
        self.assertEqual(json.loads(body)["message"],
                         "Метод DELETE не дозволений на цьому ендпоінті. Дозволені: GET, HEAD")
        self.assertEqual(headers["Allow"], "GET, HEAD, OPTIONS")

    def _call(self, method, path, headers=None, body=None):
        """A real request to the API; returns (status, JSON body)."""
        headers = dict(headers or {})
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.opener.request(method, self.base_url() + API + path, headers=headers,
                                       data=json.dumps(body) if body is not None else None, timeout=60)
        return response.status_code, response.json()

    @mute_logger("odoo.http")
    def test_api_messages_http(self):
        """Over HTTP the messages follow Accept-Language (Odoo's request language); inside the
        execution they follow the Run As user's language."""
        self.assertEqual(self._call("GET", "/i18n-missing", {"Accept-Language": "uk-UA,uk;q=0.9"}),
                         (404, {"message": "Ендпоінт не знайдено", "status_code": 404}))
        self.assertEqual(self._call("GET", "/i18n-missing", {"Accept-Language": "uk"})[1]["message"], "Ендпоінт не знайдено")
        self.assertEqual(self._call("GET", "/i18n-missing")[1]["message"], "Endpoint not found")
        self._in_config("i18n-http")
        status, body = self._call("POST", "/i18n-http", {"Accept-Language": "uk-UA"}, body={"name": "x"})
        self.assertEqual(status, 405)
        self.assertEqual(body["message"], "Метод POST не дозволений на цьому ендпоінті. Дозволені: GET, HEAD")
        # The Run As user speaks Ukrainian: errors of the work itself come in Ukrainian.
        user = new_test_user(self.env, "bj_i18n_run_as", groups="base.group_user,base.group_partner_manager",
                             lang=UK)
        self._in_config("i18n-run-as", methods=("GET", "POST"), user_id=user.id)
        status, body = self._call("POST", "/i18n-run-as", body={"email": "no-name@example.com"})
        self.assertEqual(status, 400)
        self.assertEqual(body["error"], "Відсутній обов'язковий ключ «name»")

    @mute_logger("odoo.http")
    def test_lib_messages_http(self):
        """Messages made by lib/ (value types, query values, HMAC signatures), which has no
        database, reach the client in the request's or the Run As user's language."""
        user = new_test_user(self.env, "bj_i18n_lib", groups="base.group_user,base.group_partner_manager", lang=UK)
        field = self.env["ir.model.fields"]._get
        self._in_config(
            "i18n-lib", methods=("GET", "POST"), user_id=user.id,
            param_ids=[Command.create({"key": "color", "field_id": field("res.partner", "color").id, "operator": "="})],
        )
        name_line = self.env["bj.api.sync.config"].search([("endpoint", "=", "i18n-lib")]).line_ids.filtered(
            lambda line: line.api_key == "name")
        # from_json: a wrong type (nested Msg: the reason and the description of the value)
        self.assertEqual(self._call("POST", "/i18n-lib", body={"name": 12}), (400, {
            "error": "Поле «name»: очікувався рядок, отримано число 12", "line_id": name_line.id, "status_code": 400,
        }))
        # the identifier (URL) through the same conversion
        status, body = self._call("GET", "/i18n-lib/abc")
        self.assertEqual((status, body["error"]),
                         (400, "Поле «id»: очікувалося ціле число, отримано рядок «abc»"))
        # parse_query_value: read before the Run As user takes over, in the request's language
        status, body = self._call("GET", "/i18n-lib?color=red", {"Accept-Language": "uk-UA"})
        self.assertEqual((status, body["message"]),
                         (400, "Параметр запиту «color»: очікувалося ціле число, отримано рядок «red»"))
        # English for an English Run As user, word for word as before
        self._in_config("i18n-lib-en", methods=("GET", "POST"), user_id=self.env.ref("base.user_admin").id)
        self.assertEqual(self._call("POST", "/i18n-lib-en", body={"name": 12})[1]["error"],
                         "Field 'name': expected a string, got number 12")
        # signing.verify: refused before the Run As user, in the request's language
        self._in_config("i18n-hmac", auth_type="hmac", hmac_secret="whsec_" + "QUJD" * 8)
        for headers, message in (
            ({}, "Бракує заголовків підпису вебхука: webhook-id, webhook-timestamp, webhook-signature."),
            ({"webhook-id": "m1", "webhook-timestamp": "soon", "webhook-signature": "v1,x"},
             "Недійсний заголовок webhook-timestamp: не ціле число секунд."),
            ({"webhook-id": "m1", "webhook-timestamp": "1", "webhook-signature": "v1,x"},
             "Мітка часу вебхука надто стара"),
        ):
            with self.subTest(headers=headers):
                status, body = self._call("GET", "/i18n-hmac", dict(headers, **{"Accept-Language": "uk-UA"}))
                self.assertEqual(status, 401)
                self.assertTrue(body["message"].startswith(message), body["message"])
        status, body = self._call("GET", "/i18n-hmac", {"webhook-id": "m1", "webhook-timestamp": "soon",
                                                  "webhook-signature": "v1,x"})
        self.assertEqual(body["message"], "Invalid webhook-timestamp header: not an integer number of seconds.")
