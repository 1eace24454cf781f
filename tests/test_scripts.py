import re

from odoo.tests import tagged
from odoo.tools import mute_logger

from ..lib.errors import SyncError
from ..services import mapping, scripts
from .common import BjCase

P = "res.partner"


class ScriptCase(BjCase):
    @classmethod
    def _script(cls, model, field, key, code, mode="eval", value_type="python_plain", **kw):
        return cls._line(
            model, field, key, value_type=value_type, script_mode=mode, python_script=code, **kw
        )

    def _partner_config(self, *lines):
        return self._config(line_ids=[self._line(P, "id", "id", is_record_identifier=True, sequence=0), *lines])

    def _error(self, func, *args, **kwargs):
        with self.assertRaises(SyncError) as cm:
            func(*args, **kwargs)
        return cm.exception


@tagged("post_install", "-at_install")
class TestScripts(ScriptCase):
    def test_bjet_upper_example(self):
        config = self._partner_config(
            self._script(P, "name", "customer_name", "request_data.get('customer', {}).get('name', '').upper()")
        )
        vals = mapping.deserialize(config, {"customer": {"name": "Ada Lovelace"}})
        self.assertEqual(vals, {"name": "ADA LOVELACE"})

    def test_bjet_numeric_example(self):
        config = self._partner_config(
            self._script(P, "partner_latitude", "latitude_plus", "record.partner_latitude * 1.2")
        )
        partner = self.env[P].create({"name": "Geo", "partner_latitude": 10.0})
        [payload] = mapping.serialize(config, partner)
        self.assertAlmostEqual(payload["latitude_plus"], 12.0)

    def test_bjet_date_example(self):
        config = self._config(
            model_id=self.env.ref("base.model_res_currency_rate").id,
            line_ids=[
                self._line("res.currency.rate", "id", "id", is_record_identifier=True),
                self._line("res.currency.rate", "rate", "rate"),
                self._line("res.currency.rate", "currency_id", "currency_id"),
                self._script(
                    "res.currency.rate", "name", "order_date",
                    "datetime.strptime(request_data.get('order_date'), '%m/%d/%Y').strftime('%Y-%m-%d')",
                ),
            ],
        )
        usd = self.env.ref("base.USD")
        rate, created = mapping.upsert(config, {"rate": 1.5, "currency_id": usd.id, "order_date": "05/31/2024"})
        self.assertTrue(created)
        self.assertEqual(str(rate.name), "2024-05-31")
        # Odoo's own spelling works as well
        line = self._line_of(config, "order_date")
        line.python_script = "datetime.datetime.now().date()"
        self.assertTrue(mapping.deserialize(config, {})["name"])

    def test_execute_creates_related_record(self):
        config = self._partner_config(
            self._line(P, "name", "name", sequence=1),
            self._script(
                P, "parent_id", "parent",
                "partner_name = record.name + '_code'\nresult = env['res.partner'].create({'name': partner_name})",
                mode="exec", value_type="python_relational", sequence=2,
            ),
        )
        partner = self.env[P].create({"name": "Acme"})
        record, created = mapping.upsert(config, {"id": partner.id, "name": "Acme"})
        self.assertFalse(created)
        self.assertEqual(record.parent_id.name, "Acme_code")
        # outbound, the created record becomes its id
        [payload] = mapping.serialize(config, partner)
        created_partner = self.env[P].search([("name", "=", "Acme_code")], order="id desc", limit=1)
        self.assertEqual(payload["parent"], created_partner.id)

    def test_execute_without_result_sets_nothing(self):
        config = self._partner_config(
            self._script(P, "comment", "note", "request_data['extra'] = 'added'", mode="exec"),
        )
        partner = self.env[P].create({"name": "Quiet", "comment": "<p>keep</p>"})
        [payload] = mapping.serialize(config, partner)
        self.assertEqual(payload, {"id": partner.id, "extra": "added"})
        data = {"note": "ignored"}
        self.assertEqual(mapping.deserialize(config, data, partner), {})
        self.assertEqual(data["extra"], "added")

    def test_request_data_shared_in_order(self):
        config = self._partner_config(
            self._script(
                P, "function", "first",
                "request_data['full_name'] = '%s %s' % (request_data.get('first', ''), request_data.get('last', ''))",
                mode="exec", sequence=1,
            ),
            self._script(P, "name", "full_name", "request_data['full_name'].strip()", sequence=2),
        )
        vals = mapping.deserialize(config, {"first": "Grace", "last": "Hopper"})
        self.assertEqual(vals, {"name": "Grace Hopper"})
        # outbound: the payload being built is request_data
        out = self._partner_config(
            self._line(P, "name", "name", sequence=1),
            self._script(P, "email", "shout", "request_data['name'].upper()", sequence=2),
            self._script(P, "phone", "stamp", "request_data['source'] = 'odoo'", mode="exec", sequence=3),
            self._script(P, "mobile", "both", "request_data['shout'] + '/' + request_data['source']", sequence=4),
        )
        partner = self.env[P].create({"name": "Linus"})
        self.assertEqual(
            mapping.serialize(out, partner),
            [{"id": partner.id, "name": "Linus", "shout": "LINUS", "source": "odoo", "both": "LINUS/odoo"}],
        )

    def test_relational_script_values(self):
        be, fr = self.env.ref("base.be"), self.env.ref("base.fr")
        tags = self.env["res.partner.category"].create([{"name": "S1"}, {"name": "S2"}])
        for code, expected in (
            ("env.ref('base.be')", be.id),
            ("env.ref('base.fr').id", fr.id),
            ("False", False),
        ):
            with self.subTest(code=code):
                config = self._partner_config(
                    self._script(P, "country_id", "c", code, value_type="python_relational")
                )
                self.assertEqual(mapping.deserialize(config, {})["country_id"], expected)
        for code in (
            "env['res.partner.category'].search([('name', 'in', ['S1', 'S2'])])",
            "[%d, %d]" % tuple(tags.ids),
            "[Command.set([%d, %d])]" % tuple(tags.ids),
        ):
            with self.subTest(code=code):
                config = self._partner_config(
                    self._script(P, "category_id", "t", code, value_type="python_relational")
                )
                vals = mapping.deserialize(config, {})
                partner = self.env[P].create(dict(vals, name="Tagged"))
                self.assertEqual(partner.category_id, tags)

    def test_wrong_result_type_is_400(self):
        config = self._partner_config(self._script(P, "color", "color", "'blue'"))
        error = self._error(mapping.deserialize, config, {})
        self.assertEqual((error.status, error.line_id), (400, self._line_of(config, "color").id))
        config = self._partner_config(
            self._script(P, "country_id", "c", "env['res.country'].search([], limit=2)", value_type="python_relational")
        )
        error = self._error(mapping.deserialize, config, {})
        self.assertEqual((error.status, error.line_id), (400, self._line_of(config, "c").id))

    def test_user_error_is_400(self):
        for code in ("UserError('Customer name is required')", ):
            config = self._partner_config(
                self._script(P, "name", "name", "if not request_data.get('name'):\n    raise %s" % code, mode="exec")
            )
            error = self._error(mapping.deserialize, config, {})
            self.assertEqual(error.status, 400)
            self.assertEqual(error.line_id, self._line_of(config, "name").id)
            self.assertEqual(error.message, "Customer name is required")
            self.assertEqual(
                error.to_body(), {"error": "Customer name is required", "line_id": error.line_id, "status_code": 400}
            )

    def test_validation_error_is_400(self):
        # a ValidationError raised by the ORM inside the script
        config = self._partner_config(
            self._script(P, "parent_id", "p", "record.write({'parent_id': record.id})", mode="exec",
                         value_type="python_relational")
        )
        partner = self.env[P].create({"name": "Self parent"})
        error = self._error(mapping.deserialize, config, {"p": 1}, partner)
        self.assertEqual((error.status, error.line_id), (400, self._line_of(config, "p").id))

    @mute_logger("odoo.addons.bj_api_sync.services.scripts")
    def test_other_exception_is_500_with_traceback(self):
        for code, mode, kind in (
            ("request_data['missing']", "eval", "KeyError: 'missing'"),
            ("1 / 0", "eval", "ZeroDivisionError: division by zero"),
            ("x = 'a' + 1", "exec", "TypeError"),
        ):
            with self.subTest(code=code):
                config = self._partner_config(self._script(P, "name", "broken", code, mode=mode))
                error = self._error(mapping.deserialize, config, {})
                self.assertEqual(error.status, 500)
                self.assertEqual(error.line_id, self._line_of(config, "broken").id)
                self.assertTrue(error.message.startswith("Script error in line broken: " + kind), error.message)
                self.assertIn("Traceback (most recent call last)", error.details)
                self.assertEqual(set(error.to_body()), {"error", "line_id", "status_code"})
        # outbound the same
        config = self._partner_config(self._script(P, "name", "broken", "record.name.nope"))
        error = self._error(mapping.serialize, config, self.env[P].create({"name": "x"}))
        self.assertEqual((error.status, error.line_id), (500, self._line_of(config, "broken").id))
        self.assertIn("AttributeError", error.message)

    @mute_logger("odoo.addons.bj_api_sync.services.scripts")
    def test_sandbox_escapes_fail(self):
        partner = self.env[P].create({"name": "Sandbox"})
        for code, mode in (
            ("__import__('os').system('true')", "eval"),
            ("import os", "exec"),
            ("from os import path", "exec"),
            ("open('/etc/passwd').read()", "eval"),
            ("().__class__.__bases__", "eval"),
            ("record.__class__", "eval"),
            ("getattr(record, '__class__')", "eval"),
            ("eval('1')", "eval"),
            ("exec('x = 1')", "exec"),
            ("env.__dict__", "eval"),
            ("datetime.datetime.now.__self__", "eval"),
        ):
            with self.subTest(code=code):
                config = self._partner_config(self._script(P, "name", "escape", code, mode=mode))
                error = self._error(mapping.serialize, config, partner)
                self.assertEqual(error.status, 500, error.message)
                self.assertEqual(error.line_id, self._line_of(config, "escape").id)
        # what safe_eval allows, server actions allow too: the cursor is reachable
        config = self._partner_config(
            self._script(
                P, "name", "sql", "env.cr.execute('SELECT 41 + 1')\nresult = env.cr.fetchone()[0]", mode="exec"
            )
        )
        self.assertEqual(mapping.serialize(config, partner)[0]["sql"], 42)

    def test_context(self):
        line = self._partner_config(self._script(P, "name", "ctx", "1")).line_ids.filtered("python_script")
        messages = []
        partner = self.env[P].create({"name": "Ctx"})
        context = scripts.build_context(
            line, env=self.env, record=partner, records=partner, request_data={"a": 1}, messages=messages
        )
        self.assertEqual(tuple(context), scripts.SCRIPT_CONTEXT_NAMES)
        self.assertEqual(context["model"]._name, P)
        self.assertEqual((context["config"], context["line"]), (line.config_id, line))
        code = (
            "log('hello %s' % record.name)\n"
            "result = json.dumps({\n"
            "    'tz': timezone('Europe/Kyiv').zone,\n"
            "    'later': str(datetime.date(2024, 1, 31) + relativedelta(months=1) + timedelta(days=1)),\n"
            "    'parsed': dateutil.parser.isoparse('2024-01-01T00:00:00Z').year,\n"
            "    'b64': b64decode(b64encode(b'abc')).decode(),\n"
            "    'cmp': float_compare(0.1 + 0.2, 0.3, precision_digits=6),\n"
            "    'time': isinstance(time.time(), float),\n"
            "    'cmd': Command.set([1])[0],\n"
            "    'records': len(records), 'model': model._name, 'config': config.name, 'line': line.api_key,\n"
            "})"
        )
        line.write({"script_mode": "exec", "python_script": code})
        has_value, value = scripts.run_script(
            line, env=self.env, record=partner, records=partner, request_data={}, messages=messages
        )
        self.assertTrue(has_value)
        self.assertEqual(
            value,
            '{"tz": "Europe/Kyiv", "later": "2024-03-01", "parsed": 2024, "b64": "abc", "cmp": 0, "time": true, '
            '"cmd": 6, "records": 1, "model": "res.partner", "config": "Test config", "line": "ctx"}',
        )
        self.assertEqual(messages, ["ctx: hello Ctx"])

    def test_log_messages_reach_the_caller(self):
        config = self._partner_config(
            self._script(P, "name", "n", "log('seen ' + request_data['name'])\nresult = 'x'", mode="exec")
        )
        messages = []
        mapping.upsert(config, {"name": "Ann"}, messages=messages)
        self.assertEqual(messages, ["n: seen Ann"])

    def test_partial_skips_absent_script_lines(self):
        config = self._partner_config(
            self._line(P, "phone", "phone", sequence=1),
            self._script(
                P, "name", "customer_name", "request_data.get('customer', {}).get('name', '').upper()", sequence=2
            ),
        )
        partner = self.env[P].create({"name": "KEEP"})
        self.assertEqual(mapping.deserialize(config, {"phone": "123"}, partner, partial=True), {"phone": "123"})
        self.assertEqual(mapping.deserialize(config, {"phone": "123"}, partner), {"phone": "123", "name": ""})

    def test_manual_lists_the_context(self):
        view = self.env.ref("bj_api_sync.bj_api_sync_config_line_view_form_script")
        items = re.findall(r"<li>(.*?)</li>", view.arch, re.DOTALL)
        documented = {name for item in items for name in re.findall(r"<code>(\w+)(?:\(\w*\))?</code>", item)}
        self.assertEqual(documented, set(scripts.SCRIPT_CONTEXT_NAMES))
