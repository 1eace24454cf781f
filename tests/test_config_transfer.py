import base64
import copy
import json

from odoo import Command
from odoo.exceptions import UserError, ValidationError
from odoo.tests import tagged

from ..services import config_transfer
from .common import BjCase

TOKEN = "tok-PLAINTEXT-7f3a9c"
HEADER_SECRET = "hdr-SECRET-51e0b2"
HMAC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@tagged("post_install", "-at_install")
class TestConfigTransfer(BjCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.countries = cls._config(
            name="Xfer Countries",
            endpoint="xfer-countries",
            model_id=cls.env.ref("base.model_res_country").id,
            http_method_ids=[Command.set([cls.methods["GET"].id])],
            line_ids=[
                cls._line("res.country", "code", "code", is_record_identifier=True),
                cls._line("res.country", "name", "name"),
            ],
            param_ids=[
                Command.create({"key": "code", "field_id": cls._field("res.country", "code").id, "operator": "="})
            ],
        )
        cls.partners = cls._config(
            name="Xfer Partners",
            endpoint="xfer-partners",
            auth_type="bearer",
            bearer_token=TOKEN,
            limit=50,
            is_paginated=True,
            page_size=25,
            filter_domain="[('is_company', '=', False)]",
            delete_mode="archive",
            http_method_ids=[Command.set([cls.methods["GET"].id, cls.methods["POST"].id])],
            line_ids=[
                cls._line("res.partner", "id", "id", sequence=1, is_record_identifier=True),
                cls._line("res.partner", "name", "name", sequence=2, required=True),
                cls._line("res.partner", "email", "email", sequence=3, direction="out"),
                cls._line(
                    "res.partner",
                    "country_id",
                    "country",
                    sequence=4,
                    value_type="relational",
                    mapping_config_id=cls.countries.id,
                ),
                cls._line(
                    "res.partner",
                    "comment",
                    "note",
                    sequence=5,
                    value_type="python_plain",
                    script_mode="exec",
                    python_script="result = (record.comment or '').upper()",
                ),
            ],
            header_ids=[
                Command.create({"key": "X-API-Key", "value": HEADER_SECRET, "secret": True, "required": True}),
                Command.create({"key": "Cache-Control", "value": "no-store"}),
            ],
            param_ids=[
                Command.create(
                    {"key": "res_name", "field_id": cls._field("res.partner", "name").id, "operator": "ilike"}
                )
            ],
        )
        cls.push = cls._config(
            name="Xfer Push",
            request_type="out",
            url="https://crm.example.com/api/partners/{id}",
            auth_type="hmac",
            hmac_secret=HMAC_SECRET,
            delivery="queued",
            max_retries=5,
            http_method_ids=[Command.set([cls.methods["PUT"].id])],
            line_ids=[
                cls._line("res.partner", "id", "id", is_record_identifier=True),
                cls._line(
                    "res.partner",
                    "parent_id",
                    "company",
                    value_type="relational",
                    mapping_config_id=cls.partners.id,
                ),
                cls._line(
                    "res.partner",
                    "country_id",
                    "country",
                    value_type="relational",
                    mapping_config_id=cls.countries.id,
                ),
            ],
            header_ids=[Command.create({"key": "X-Client-Id", "value": "odoo"})],
        )

    # ------------------------------------------------------------------ helpers
    def _export(self, configs):
        return config_transfer.export_configs(configs)

    def _import(self, document, update_existing=False):
        return config_transfer.import_configs(self.env, copy.deepcopy(document), update_existing=update_existing)

    def _delete_originals(self):
        # One by one: a config used as a Mapping Model cannot be deleted before the configs using it.
        for config in (self.push, self.partners, self.countries):
            config.unlink()

    def _messages(self, config):
        return " ".join(config.message_ids.mapped("body"))

    @staticmethod
    def _renamed(document, renames):
        """``document`` with endpoints (and the keys and mapping references derived from them) renamed."""
        document = copy.deepcopy(document)
        for entry in document["configs"]:
            entry["key"] = renames.get(entry["key"], entry["key"])
            if entry.get("endpoint") in renames:
                entry["endpoint"] = renames[entry["endpoint"]]
            for line in entry["lines"]:
                line["mapping"] = renames.get(line["mapping"], line["mapping"])
        return document

    # ------------------------------------------------------------------ export
    def test_export_children_without_secrets(self):
        document = self._export(self.push)
        self.assertEqual((document["format"], document["version"]), ("bj_api_sync.config", 1))
        self.assertEqual(
            [entry["key"] for entry in document["configs"]],
            ["xfer-push", "xfer-partners", "xfer-countries"],
            "root first, then each mapping model once",
        )
        push, partners, countries = document["configs"]
        self.assertEqual(push["http_methods"], ["PUT"])
        self.assertEqual(push["model"], "res.partner")
        self.assertEqual(
            [(line["field"], line["api_key"], line["mapping"]) for line in push["lines"]],
            [
                ("id", "id", None),
                ("parent_id", "company", "xfer-partners"),
                ("country_id", "country", "xfer-countries"),
            ],
        )
        self.assertEqual(partners["lines"][3]["mapping"], "xfer-countries")
        self.assertEqual(sorted(partners["http_methods"]), ["GET", "POST"])
        self.assertEqual(countries["params"], [{"key": "code", "field": "code", "operator": "=", "sequence": 10}])
        headers = {header["key"]: header for header in partners["headers"]}
        self.assertEqual(headers["X-API-Key"]["value"], None)
        self.assertIs(headers["X-API-Key"]["secret"], True)
        self.assertIs(headers["X-API-Key"]["required"], True)
        self.assertEqual(headers["Cache-Control"]["value"], "no-store")

        text = config_transfer.dumps(document)
        for secret in (TOKEN, HEADER_SECRET, HMAC_SECRET, "Bearer"):
            self.assertNotIn(secret, text)
        encrypted = [self.partners.sudo().bearer_token_encrypted, self.push.sudo().hmac_secret_encrypted]
        encrypted += self.partners.header_ids.sudo().mapped("value_encrypted")
        for token in filter(None, encrypted):
            self.assertNotIn(token, text)
        for forbidden in (
            '"id":',
            "company_id",
            "user_id",
            "responsible_id",
            "_encrypted",
            "password",
            "bearer_token",
            "hmac_secret",
            "trigger_action_id",
            '"consecutive_failures"',
            '"paused"',
        ):
            self.assertNotIn(forbidden, text)

    def test_export_button_downloads_json(self):
        action = self.partners.action_export_config()
        self.assertEqual(action["type"], "ir.actions.act_url")
        attachment_id = int(action["url"].split("/web/content/")[1].split("?")[0])
        self.assertTrue(action["url"].endswith("?download=true"))
        attachment = self.env["ir.attachment"].browse(attachment_id)
        self.assertEqual(attachment.name, "xfer-partners.bj_api_sync.json")
        self.assertEqual(json.loads(attachment.raw), self._export(self.partners))
        # A second export overwrites the same attachment instead of piling up files.
        self.assertEqual(self.partners.action_export_config()["url"], action["url"])

    def test_export_cycle_written_once(self):
        try:
            a = self._config(
                name="Cycle A",
                endpoint="xfer-cycle-a",
                line_ids=[self._line("res.partner", "id", "id", is_record_identifier=True)],
            )
            b = self._config(
                name="Cycle B",
                endpoint="xfer-cycle-b",
                line_ids=[
                    self._line("res.partner", "id", "id", is_record_identifier=True),
                    self._line("res.partner", "parent_id", "parent", value_type="relational", mapping_config_id=a.id),
                ],
            )
            a.write(
                {
                    "line_ids": [
                        self._line(
                            "res.partner", "parent_id", "parent", value_type="relational", mapping_config_id=b.id
                        )
                    ]
                }
            )
        except ValidationError:
            self.skipTest("mapping cycles are refused by a constraint")
        document = self._export(a)
        self.assertEqual([entry["key"] for entry in document["configs"]], ["xfer-cycle-a", "xfer-cycle-b"])
        (a | b).line_ids.unlink()
        (a | b).unlink()
        root = self._import(document).root
        self.assertEqual(self._export(root), document)

    # ------------------------------------------------------------------ import
    def test_import_after_delete_same_structure(self):
        document = self._export(self.push)
        self._delete_originals()
        result = self._import(document)
        root = result.root
        self.assertEqual(len(result.created), 3)
        self.assertFalse(result.updated or result.renamed)
        self.assertEqual(self._export(root), document)

        # The structure, checked on the records themselves.
        self.assertEqual(
            (root.name, root.request_type, root.url), ("Xfer Push", "out", "https://crm.example.com/api/partners/{id}")
        )
        self.assertEqual(root.http_method_ids.mapped("name"), ["PUT"])
        self.assertEqual((root.delivery, root.max_retries, root.auth_type), ("queued", 5, "hmac"))
        partners = root.line_ids.filtered(lambda line: line.api_key == "company").mapping_config_id
        countries = root.line_ids.filtered(lambda line: line.api_key == "country").mapping_config_id
        self.assertEqual((partners.endpoint, countries.endpoint), ("xfer-partners", "xfer-countries"))
        self.assertEqual(
            partners.line_ids.filtered(lambda line: line.api_key == "country").mapping_config_id, countries
        )
        self.assertEqual(
            [(line.field_id.name, line.api_key, line.value_type) for line in partners.line_ids],
            [
                ("id", "id", "plain"),
                ("name", "name", "plain"),
                ("email", "email", "plain"),
                ("country_id", "country", "relational"),
                ("comment", "note", "python_plain"),
            ],
        )
        self.assertEqual(partners._get_identifier_line().field_id.name, "id")
        self.assertEqual(countries._get_identifier_line().api_key, "code")
        script = partners.line_ids[4]
        self.assertEqual(
            (script.script_mode, script.python_script), ("exec", "result = (record.comment or '').upper()")
        )
        self.assertEqual(partners.line_ids[2].direction, "out")
        self.assertTrue(partners.line_ids[1].required)
        self.assertEqual(sorted(partners.http_method_ids.mapped("name")), ["GET", "POST"])
        self.assertEqual(
            (partners.limit, partners.is_paginated, partners.page_size, partners.delete_mode, partners.filter_domain),
            (50, True, 25, "archive", "[('is_company', '=', False)]"),
        )
        self.assertEqual(
            [(p.key, p.field_id.name, p.operator) for p in partners.param_ids], [("res_name", "name", "ilike")]
        )
        secret_header = partners.header_ids.filtered(lambda h: h.key == "X-API-Key")
        self.assertTrue(secret_header.secret and secret_header.required)
        self.assertEqual(secret_header._get_value(), "", "secrets are not imported")
        self.assertEqual(partners.header_ids.filtered(lambda h: h.key == "Cache-Control")._get_value(), "no-store")

        # No secrets, local company and user, and a note saying so.
        self.assertEqual(partners._get_secret("bearer_token"), "")
        self.assertEqual(root._get_secret("hmac_secret"), "")
        self.assertEqual(root.company_id, self.env.company)
        self.assertEqual(partners.user_id, self.env.user)
        for config in (root, partners, countries):
            self.assertIn(
                "Imported; set the secrets (password/token/HMAC secret/secret headers) again.", self._messages(config)
            )
        self.assertIn("To set: Bearer Token, header X-API-Key.", self._messages(partners))
        self.assertIn("To set: HMAC Secret.", self._messages(root))
        self.assertNotIn("To set", self._messages(countries))
        # Children were created before their parents.
        self.assertLess(countries.id, partners.id)
        self.assertLess(partners.id, root.id)

    def test_round_trip_renames_clashing_endpoints(self):
        document = self._export(self.push)
        result = self._import(document)
        root = result.root
        self.assertNotEqual(root, self.push)
        self.assertEqual(len(result.created), 3)
        renames = {"xfer-partners": "xfer-partners-2", "xfer-countries": "xfer-countries-2"}
        self.assertEqual(sorted(result.renamed.values()), sorted(renames.items()))
        self.assertEqual(self._export(root), self._renamed(document, renames))
        partners = root.line_ids.filtered(lambda line: line.api_key == "company").mapping_config_id
        self.assertIn("xfer-partners-2", self._messages(partners))
        # A third import takes the next free suffix.
        again = self._import(document).root
        partners3 = again.line_ids.filtered(lambda line: line.api_key == "company").mapping_config_id
        self.assertEqual(partners3.endpoint, "xfer-partners-3")

    def test_update_existing_keeps_records_and_secrets(self):
        document = self._export(self.push)
        count = self.Config.with_context(active_test=False).search_count([])
        changed = copy.deepcopy(document)
        changed["configs"][1]["lines"][1]["api_key"] = "full_name"
        changed["configs"][1]["limit"] = 10
        result = self._import(changed, update_existing=True)
        self.assertEqual(result.root, self.push)
        self.assertEqual(result.updated, self.push | self.partners | self.countries)
        self.assertFalse(result.created)
        self.assertEqual(self.Config.with_context(active_test=False).search_count([]), count)
        self.assertEqual(self.partners.limit, 10)
        self.assertIn("full_name", self.partners.line_ids.mapped("api_key"))
        self.assertEqual(self.partners._get_secret("bearer_token"), TOKEN)
        self.assertEqual(self.push._get_secret("hmac_secret"), HMAC_SECRET)
        self.assertEqual(self.partners.header_ids.filtered("secret")._get_value(), HEADER_SECRET)
        self.assertEqual(self._export(self.push), changed)
        # Importing the original back restores it exactly.
        self._import(document, update_existing=True)
        self.assertEqual(self._export(self.push), document)

    def test_update_refuses_model_change(self):
        document = self._export(self.countries)
        document["configs"][0].update(model="res.partner", lines=[], params=[])
        with self.assertRaisesRegex(UserError, "exists here on model res.country"):
            self._import(document, update_existing=True)

    def test_missing_model_and_field(self):
        document = self._export(self.push)
        push, partners, countries = document["configs"]
        countries["model"] = "x_nowhere.model"
        partners["lines"][2]["field"] = "x_foo_missing"
        partners["params"][0]["field"] = "x_bar_missing"
        push["http_methods"] = ["TRACE"]
        count = self.Config.with_context(active_test=False).search_count([])
        with self.assertRaises(UserError) as caught:
            self._import(document)
        message = str(caught.exception)
        self.assertIn("Model 'x_nowhere.model' is not installed", message)
        self.assertIn("Field 'x_foo_missing' does not exist on res.partner (line 'email'", message)
        self.assertIn("Field 'x_bar_missing' does not exist on res.partner (parameter 'res_name'", message)
        self.assertIn("HTTP method 'TRACE' does not exist", message)
        self.assertEqual(self.Config.with_context(active_test=False).search_count([]), count)

    def test_unknown_mapping_key_and_bad_values(self):
        document = self._export(self.partners)
        document["configs"] = document["configs"][:1]  # the countries config is missing
        document["configs"][0]["delete_mode"] = "shred"
        with self.assertRaises(UserError) as caught:
            self._import(document)
        message = str(caught.exception)
        self.assertIn("uses the mapping model 'xfer-countries', which is not in the file", message)
        self.assertIn("'shred'", message)

    def test_rejects_other_files(self):
        for document, error in (
            ([], "not a BJET API configuration file"),
            ({"format": "other", "version": 1, "configs": []}, "not a BJET API configuration file"),
            ({"format": "bj_api_sync.config", "version": 2, "configs": [{}]}, "format version 2"),
            ({"format": "bj_api_sync.config", "version": 1, "configs": []}, "no configuration"),
        ):
            with self.subTest(document=document), self.assertRaisesRegex(UserError, error):
                self._import(document)
        with self.assertRaisesRegex(UserError, "not valid JSON"):
            config_transfer.loads(self.env, "{nope")

    # ------------------------------------------------------------------ wizard
    def test_wizard(self):
        document = self._export(self.partners)
        self._delete_originals()
        data = base64.b64encode(config_transfer.dumps(document).encode())
        wizard = self.env["bj.api.sync.import.wizard"].create({"file": data, "filename": "x.json"})
        action = wizard.action_import()
        self.assertEqual((action["type"], action["res_model"]), ("ir.actions.act_window", "bj.api.sync.config"))
        root = self.Config.browse(action["res_id"])
        self.assertEqual(root.endpoint, "xfer-partners")
        self.assertEqual(self._export(root), document)

        pasted = self.env["bj.api.sync.import.wizard"].create(
            {"json_text": config_transfer.dumps(document), "update_existing": True}
        )
        self.assertEqual(pasted.action_import()["res_id"], root.id)
        with self.assertRaisesRegex(UserError, "Choose a configuration file"):
            self.env["bj.api.sync.import.wizard"].create({}).action_import()
        with self.assertRaisesRegex(UserError, "not valid JSON"):
            self.env["bj.api.sync.import.wizard"].create({"json_text": "not json"}).action_import()
