import os
from datetime import timedelta
from unittest.mock import patch

import psycopg2

from odoo import Command, fields
from odoo.exceptions import AccessError, UserError, ValidationError
from odoo.modules.neutralize import get_neutralization_queries
from odoo.tests import Form, new_test_user, tagged
from odoo.tools import config as odoo_config
from odoo.tools import mute_logger

from ..lib import crypto
from .common import BjCase


@tagged("post_install", "-at_install")
class TestInstallAndDemo(BjCase):
    def test_http_methods(self):
        self.assertEqual(set(self.methods), {"GET", "POST", "PUT", "DELETE", "PATCH"})

    def test_demo_loaded(self):
        partners = self.env.ref("bj_api_sync.demo_config_partners")
        self.assertEqual(partners.endpoint, "partners")
        self.assertEqual(partners.auth_type, "bearer")
        self.assertEqual(partners._get_secret("bearer_token"), "demo-token")
        self.assertEqual(set(partners.line_ids.mapped("api_key")), {"id", "name", "email", "phone"})
        self.assertEqual(partners._get_identifier_line().api_key, "id")
        out = self.env.ref("bj_api_sync.demo_config_crm_push")
        self.assertEqual(out.request_type, "out")
        self.assertTrue(out.paused)

    def test_menus(self):
        menu = self.env.ref("bj_api_sync.bj_api_sync_menu_root")
        self.assertEqual(menu.name, "BJET API")
        self.assertEqual(menu.parent_id, self.env.ref("base.menu_custom"))
        self.assertEqual(
            menu.child_id.sorted("sequence").mapped("name")[:4],
            ["Dashboard", "API Configurations", "LOGs", "Sync Jobs"],
        )


@tagged("post_install", "-at_install")
class TestConstraints(BjCase):
    def test_defaults(self):
        config = self._config(request_type="out")
        self.assertEqual((config.connect_timeout, config.read_timeout), (5, 15))
        self.assertEqual((config.limit, config.page_size), (100, 100))
        self.assertEqual(config.filter_domain, "[]")
        self.assertEqual((config.max_retries, config.retry_backoff, config.max_consecutive_failures), (3, 2, 20))
        self.assertEqual(config.delivery, "immediate")
        self.assertEqual(config.company_id, self.env.company)
        self.assertTrue(config.active and config.log_payloads)

    def test_out_exactly_one_method(self):
        with self.assertRaisesRegex(ValidationError, "exactly one HTTP method"):
            self._config(
                request_type="out",
                http_method_ids=[Command.set([self.methods["GET"].id, self.methods["POST"].id])],
            )
        with self.assertRaisesRegex(ValidationError, "exactly one HTTP method"):
            self._config(request_type="out", http_method_ids=[])
        self.assertTrue(self._config(request_type="out"))

    def test_endpoint_slug_and_unique(self):
        for bad in ("with space", "a/b", "é", "../x", ""):
            with self.subTest(bad=bad), self.assertRaises(ValidationError):
                self._config(endpoint=bad)
        self._config(endpoint="Good_one-2")
        with self.assertRaisesRegex(ValidationError, "already uses the endpoint"):
            self._config(endpoint="Good_one-2")
        # Out configs do not own endpoints
        self._config(request_type="out", endpoint="Good_one-2")

    def test_url(self):
        for bad in ("ftp://x.example.com", "example.com/api", "javascript:alert(1)"):
            with self.subTest(bad=bad), self.assertRaisesRegex(ValidationError, "http"):
                self._config(request_type="out", url=bad)

    def test_timeouts(self):
        for vals in ({"connect_timeout": 0}, {"connect_timeout": 61}, {"read_timeout": 0}, {"read_timeout": 301}):
            with self.subTest(vals=vals), self.assertRaisesRegex(ValidationError, "timeout"):
                self._config(request_type="out", **vals)
        config = self._config(request_type="out", connect_timeout=60, read_timeout=300)
        self.assertEqual(config.read_timeout, 300)

    def test_limits_not_negative(self):
        for vals in ({"limit": -1}, {"page_size": -1}, {"max_retries": -1}, {"retry_backoff": -1}):
            with self.subTest(vals=vals), mute_logger("odoo.sql_db"), self.assertRaises(psycopg2.IntegrityError):
                with self.env.cr.savepoint():
                    self._config(**vals)
        self.assertTrue(self._config(limit=0, page_size=0, max_retries=0, retry_backoff=0))

    def test_exactly_one_identifier(self):
        P = "res.partner"
        with self.assertRaisesRegex(ValidationError, "exactly one line marked Is Record Identifier"):
            self._config(line_ids=[self._line(P, "name", "name"), self._line(P, "email", "email")])
        with self.assertRaisesRegex(ValidationError, "exactly one line"):
            self._config(
                line_ids=[
                    self._line(P, "name", "name", is_record_identifier=True),
                    self._line(P, "email", "email", is_record_identifier=True),
                ]
            )
        config = self._config(
            line_ids=[self._line(P, "id", "id", is_record_identifier=True), self._line(P, "name", "name")]
        )
        with self.assertRaises(ValidationError):
            config.line_ids.filtered("is_record_identifier").is_record_identifier = False
        # a config without lines is allowed (work in progress)
        self.assertTrue(self._config())

    def test_line_field_belongs_to_model(self):
        with self.assertRaisesRegex(ValidationError, "does not belong to the model"):
            self._config(line_ids=[self._line("res.users", "login", "login", is_record_identifier=True)])

    def test_relational_needs_matching_mapping_model(self):
        P = "res.partner"
        country = self._config(
            model_id=self.env.ref("base.model_res_country").id,
            line_ids=[self._line("res.country", "code", "code", is_record_identifier=True)],
        )
        with self.assertRaisesRegex(ValidationError, "needs a Mapping Model"):
            self._config(
                line_ids=[
                    self._line(P, "id", "id", is_record_identifier=True),
                    self._line(P, "country_id", "country", value_type="relational"),
                ]
            )
        with self.assertRaisesRegex(ValidationError, "works on res.country but the field points to res.partner"):
            self._config(
                line_ids=[
                    self._line(P, "id", "id", is_record_identifier=True),
                    self._line(P, "parent_id", "parent", value_type="relational", mapping_config_id=country.id),
                ]
            )
        with self.assertRaisesRegex(ValidationError, "many2one, one2many or many2many"):
            self._config(
                line_ids=[
                    self._line(P, "id", "id", is_record_identifier=True),
                    self._line(P, "name", "name", value_type="relational", mapping_config_id=country.id),
                ]
            )
        ok = self._config(
            line_ids=[
                self._line(P, "id", "id", is_record_identifier=True),
                self._line(P, "country_id", "country", value_type="relational", mapping_config_id=country.id),
            ]
        )
        self.assertEqual(ok.line_ids[1].mapping_config_id, country)

    def test_not_own_mapping_model(self):
        P = "res.partner"
        config = self._config(line_ids=[self._line(P, "id", "id", is_record_identifier=True)])
        with self.assertRaisesRegex(ValidationError, "cannot be its own Mapping Model"):
            config.write(
                {"line_ids": [self._line(P, "parent_id", "parent", value_type="relational", mapping_config_id=config.id)]}
            )

    def _mapping_chain(self):
        """countries <- partners (country line) <- orders-like parent (parent line), as a user builds them."""
        P = "res.partner"
        country = self._config(
            name="Countries",
            model_id=self.env.ref("base.model_res_country").id,
            line_ids=[self._line("res.country", "code", "code", is_record_identifier=True)],
        )
        contact = self._config(
            name="Contacts",
            line_ids=[
                self._line(P, "id", "id", is_record_identifier=True),
                self._line(P, "country_id", "country", value_type="relational", mapping_config_id=country.id),
            ],
        )
        company = self._config(
            name="Companies",
            line_ids=[
                self._line(P, "id", "id", is_record_identifier=True),
                self._line(P, "child_ids", "contacts", value_type="relational", mapping_config_id=contact.id),
            ],
        )
        return country, contact, company

    def test_unlink_together_with_its_mapping_models(self):
        # In one unlink, whatever the order of the recordset: no foreign-key error.
        for order in ((0, 1, 2), (2, 1, 0), (1, 0, 2)):
            with self.subTest(order=order):
                configs = self._mapping_chain()
                lines = configs[1].line_ids | configs[2].line_ids
                together = self.Config.browse([configs[i].id for i in order])
                with mute_logger("odoo.sql_db"):
                    together.unlink()
                self.assertFalse(together.exists())
                self.assertFalse(lines.exists())
        # A parent with the child it uses, the grandchild staying.
        country, contact, company = self._mapping_chain()
        (company | contact).unlink()
        self.assertFalse((company | contact).exists())
        self.assertTrue(country.exists())

    def test_unlink_of_a_mapping_model_still_used_is_refused(self):
        country, contact, company = self._mapping_chain()
        line = contact.line_ids.filtered(lambda line: line.api_key == "country")
        for configs in (country, country | company):  # company does not free country: contact still uses it
            with self.subTest(configs=configs.mapped("name")), mute_logger("odoo.sql_db"):
                with self.assertRaises(UserError) as cm:
                    configs.unlink()
                self.assertNotIsInstance(cm.exception, psycopg2.Error)
                self.assertEqual(
                    cm.exception.args[0],
                    "Configuration 'Countries' is the Mapping Model of line 'country' of configuration 'Contacts': "
                    "remove that line or delete both configurations together.",
                )
        self.assertTrue((country | contact | company).exists())
        self.assertTrue(line.exists())
        # ...in the user's language.
        self.env["res.lang"]._activate_lang("uk_UA")
        self.env["ir.module.module"]._load_module_terms(["bj_api_sync"], ["uk_UA"], overwrite=True)
        with self.assertRaises(UserError) as cm:
            country.with_context(lang="uk_UA").unlink()
        self.assertIn("Countries", cm.exception.args[0])
        self.assertNotIn("Mapping Model of line", cm.exception.args[0])
        # Once the line is gone, the configuration goes.
        line.unlink()
        country.unlink()
        self.assertFalse(country.exists())

    def test_filter_domain_validated(self):
        with self.assertRaisesRegex(ValidationError, "Filter Domain"):
            self._config(filter_domain="[('no_such_field', '=', 1)]")
        config = self._config(
            filter_domain="[('write_date', '>=', (datetime.datetime.now() - relativedelta(hours=1))"
            ".strftime('%Y-%m-%d %H:%M:%S')), ('create_uid', '=', uid)]"
        )
        partner = self.env["res.partner"].create({"name": "Fresh"})
        self.assertIn(partner, self.env["res.partner"].search(config._get_filter_domain()))

    def test_param_operator_and_field(self):
        config = self._config(
            param_ids=[Command.create({"key": "q", "field_id": self._field("res.partner", "name").id, "operator": "ilike"})]
        )
        self.assertEqual(config.param_ids.operator, "ilike")
        self.assertEqual(
            dict(self.env["bj.api.sync.param"]._fields["operator"].selection)["ilike"], "contains"
        )
        with self.assertRaises(ValidationError):
            self._config(
                param_ids=[Command.create({"key": "q", "field_id": self._field("res.users", "login").id})]
            )


@tagged("post_install", "-at_install")
class TestFormVisibility(BjCase):
    def _invisible(self, form, name):
        return form._get_modifier(name, "invisible")

    def test_in_out_visibility(self):
        form = Form(self.Config)
        form.name = "Visibility"
        form.request_type = "in"
        self.assertFalse(self._invisible(form, "endpoint"))
        for name in ("url", "connect_timeout", "read_timeout", "trigger_model", "trigger_action_id"):
            self.assertTrue(self._invisible(form, name), name)
        form.request_type = "out"
        form.trigger_model = "ir.cron"
        self.assertTrue(self._invisible(form, "endpoint"))
        for name in ("url", "connect_timeout", "read_timeout", "trigger_model", "trigger_action_id"):
            self.assertFalse(self._invisible(form, name), name)

    def test_auth_and_paging_visibility(self):
        form = Form(self.Config)
        form.request_type = "in"
        for auth, visible in (
            ("none", set()),
            ("basic", {"login", "password"}),
            ("bearer", {"bearer_token"}),
            ("hmac", {"hmac_secret"}),
        ):
            form.auth_type = auth
            for name in ("login", "password", "bearer_token", "hmac_secret"):
                self.assertEqual(self._invisible(form, name), name not in visible, (auth, name))
        self.assertTrue(self._invisible(form, "page_size"))
        form.is_paginated = True
        self.assertFalse(self._invisible(form, "page_size"))

    def test_parameters_tab_only_in(self):
        view = self.env.ref("bj_api_sync.bj_api_sync_config_view_form")
        self.assertIn('invisible="request_type != \'in\'"', view.arch.split('name="parameters"')[1][:80])


@tagged("post_install", "-at_install")
class TestSecrets(BjCase):
    def _column(self, config, column):
        self.env.flush_all()
        self.env.cr.execute(f"SELECT {column} FROM bj_api_sync_config WHERE id = %s", [config.id])
        return self.env.cr.fetchone()[0]

    def test_encrypted_at_rest_and_masked(self):
        config = self._config(
            auth_type="basic", login="user", password="s3cret-pass", bearer_token="Bearer tok-123", hmac_secret="whsec_abc"
        )
        for field, column, plain in (
            ("password", "password_encrypted", "s3cret-pass"),
            ("bearer_token", "bearer_token_encrypted", "tok-123"),
            ("hmac_secret", "hmac_secret_encrypted", "whsec_abc"),
        ):
            stored = self._column(config, column)
            self.assertTrue(stored.startswith("gAAAAA"), stored)
            self.assertNotIn(plain, stored)
            self.assertEqual(config._get_secret(field), plain)
            self.assertEqual(config.read([field])[0][field], "********")
        # the "Bearer " prefix a user types is stripped
        self.assertEqual(config._get_secret("bearer_token"), "tok-123")
        # writing the mask back (unchanged form) keeps the secret
        config.write({"password": "********"})
        self.assertEqual(config._get_secret("password"), "s3cret-pass")
        self.assertIn("Secret changed", config.message_ids[0].body)
        self.assertNotIn("s3cret-pass", " ".join(config.message_ids.mapped("body")))

    def test_secret_header(self):
        config = self._config(header_ids=[Command.create({"key": "X-API-Key", "value": "k-999", "secret": True})])
        header = config.header_ids
        self.env.flush_all()
        self.env.cr.execute("SELECT value_plain, value_encrypted FROM bj_api_sync_header WHERE id = %s", [header.id])
        plain, encrypted = self.env.cr.fetchone()
        self.assertFalse(plain)
        self.assertNotIn("k-999", encrypted)
        self.assertEqual(header._get_value(), "k-999")
        self.assertEqual(header.value, "********")
        public = self.env["bj.api.sync.header"].create({"config_id": config.id, "key": "Accept", "value": "application/json"})
        self.assertEqual(public._get_value(), "application/json")
        public.secret = True
        self.assertEqual(public._get_value(), "application/json")
        self.assertEqual(public.value, "********")

    def test_key_rotation_and_wrong_key(self):
        old_key, new_key = crypto.generate_key(), crypto.generate_key()
        with patch.dict(odoo_config.options, {"bj_api_sync_encryption_key": old_key}):
            config = self._config(auth_type="bearer", bearer_token="rotate-me")
        with patch.dict(odoo_config.options, {"bj_api_sync_encryption_key": "%s,%s" % (new_key, old_key)}):
            self.assertEqual(config._get_secret("bearer_token"), "rotate-me")
        with patch.dict(odoo_config.options, {"bj_api_sync_encryption_key": new_key}):
            with self.assertRaisesRegex(UserError, "encryption key does not match"):
                config._get_secret("bearer_token")

    def test_env_key_used(self):
        key = crypto.generate_key()
        with patch.dict(os.environ, {"BJ_API_SYNC_ENCRYPTION_KEY": key}), patch.dict(
            odoo_config.options, {"bj_api_sync_encryption_key": False}
        ):
            config = self._config(auth_type="bearer", bearer_token="env-key")
            stored = self._column(config, "bearer_token_encrypted")
        self.assertEqual(crypto.SecretBox(key).decrypt(stored), "env-key")


@tagged("post_install", "-at_install")
class TestAccess(BjCase):
    def test_non_admin_denied_everywhere(self):
        user = new_test_user(self.env, login="bj_plain_user", groups="base.group_user,base.group_erp_manager")
        config = self.env.ref("bj_api_sync.demo_config_partners")
        for model in (
            "bj.api.sync.config",
            "bj.api.sync.config.line",
            "bj.api.sync.header",
            "bj.api.sync.param",
            "bj.http.method",
            "bj.api.log",
            "bj.api.sync.job",
            "bj.api.sync.binding",
        ):
            with self.subTest(model=model):
                with self.assertRaises(AccessError):
                    self.env[model].with_user(user).search([])
                with self.assertRaises(AccessError):
                    self.env[model].with_user(user).create({})
        with self.assertRaises(AccessError):
            config.with_user(user).read(["bearer_token"])


@tagged("post_install", "-at_install")
class TestLogRetention(BjCase):
    def test_purge_only_old(self):
        Log = self.env["bj.api.log"]
        config = self.env.ref("bj_api_sync.demo_config_partners")
        old = Log.create({"config_id": config.id, "direction": "in", "method": "GET", "url": "/old"})
        fresh = Log.create({"config_id": config.id, "direction": "in", "method": "GET", "url": "/fresh"})
        self.env.cr.execute(
            "UPDATE bj_api_log SET create_date = %s WHERE id = %s",
            [fields.Datetime.now() - timedelta(days=31), old.id],
        )
        self.env["ir.config_parameter"].set_param("bj_api_sync.log_retention_days", 30)
        self.env.ref("bj_api_sync.ir_cron_bj_api_log_retention").method_direct_trigger()
        self.assertFalse(old.exists())
        self.assertTrue(fresh.exists())

    def test_purge_finished_jobs_with_the_logs(self):
        Job = self.env["bj.api.sync.job"]
        config = self.env.ref("bj_api_sync.demo_config_partners")
        jobs = {
            state: Job.create({"config_id": config.id, "state": state, "url": "http://127.0.0.1/x", "method": "POST"})
            for state in ("done", "cancelled", "failed", "pending")
        }
        recent = Job.create({"config_id": config.id, "state": "done", "url": "http://127.0.0.1/x", "method": "POST"})
        Job.flush_model()
        self.env.cr.execute(
            "UPDATE bj_api_sync_job SET write_date = %s WHERE id IN %s",
            [fields.Datetime.now() - timedelta(days=31), tuple(job.id for job in jobs.values())],
        )
        self.env["ir.config_parameter"].set_param("bj_api_sync.log_retention_days", 30)
        self.env.ref("bj_api_sync.ir_cron_bj_api_log_retention").method_direct_trigger()
        self.assertFalse(jobs["done"].exists())
        self.assertFalse(jobs["cancelled"].exists())
        # a failed job waits for someone to look at it; a pending one is still to be sent
        self.assertTrue(jobs["failed"].exists())
        self.assertTrue(jobs["pending"].exists())
        self.assertTrue(recent.exists())

    def test_bjet_style_log_create_and_truncation(self):
        log = self.env["bj.api.log"].create(
            {
                "name": "manual",
                "status": "error",
                "model": "res.partner",
                "record_id": 7,
                "details": "ignored",
                "request_data": "x" * (70 * 1024),
            }
        )
        self.assertEqual((log.res_model, log.res_ids), ("res.partner", "7"))
        self.assertIn("truncated by bj_api_sync", log.request_data)
        self.assertLess(len(log.request_data), 66 * 1024)


@tagged("post_install", "-at_install")
class TestNeutralize(BjCase):
    def test_neutralize_pauses_outbound(self):
        out = self._config(request_type="out")
        inbound = self._config()
        self.env.flush_all()
        for query in get_neutralization_queries(["bj_api_sync"]):
            self.env.cr.execute(query)
        self.env.invalidate_all()
        self.assertTrue(out.paused)
        self.assertFalse(inbound.paused)
