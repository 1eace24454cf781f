import json

from openapi_spec_validator import validate

from odoo import Command
from odoo.tests import HttpCase, new_test_user, tagged

from ..lib import signing
from ..services import buttons, openapi

URL = "/bj_api_sync/v1/openapi.json"


@tagged("post_install", "-at_install")
class TestOpenApi(HttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partners = cls.env.ref("bj_api_sync.demo_config_partners")
        cls.public = cls.env.ref("bj_api_sync.demo_config_public")
        methods = {m.name: m for m in cls.env["bj.http.method"].search([])}
        field = cls.env["ir.model.fields"]._get
        cls.secret = signing.generate_secret()
        # A config using most line kinds, HMAC, a required secret header and a relational line.
        cls.countries = cls.env["bj.api.sync.config"].create({
            "name": "Countries by code",
            "request_type": "out",
            "url": "https://example.com/countries",
            "model_id": cls.env.ref("base.model_res_country").id,
            "http_method_ids": [Command.set([methods["GET"].id])],
            "line_ids": [
                Command.create({"field_id": field("res.country", "code").id, "value_type": "plain",
                                "api_key": "code", "is_record_identifier": True}),
            ],
        })
        cls.rich = cls.env["bj.api.sync.config"].create({
            "name": "Rich contacts",
            "request_type": "in",
            "endpoint": "rich-contacts",
            "model_id": cls.env.ref("base.model_res_partner").id,
            "http_method_ids": [Command.set([m.id for m in methods.values()])],
            "auth_type": "hmac",
            "hmac_secret": cls.secret,
            "header_ids": [Command.create({"key": "X-API-Key", "value": "very-secret-key", "secret": True,
                                           "required": True})],
            "param_ids": [Command.create({"key": "kinds", "field_id": field("res.partner", "type").id,
                                          "operator": "in"})],
            "line_ids": [
                Command.create({"field_id": field("res.partner", "ref").id, "value_type": "plain",
                                "api_key": "ref", "is_record_identifier": True}),
                Command.create({"field_id": field("res.partner", "name").id, "value_type": "plain",
                                "api_key": "name", "required": True}),
                Command.create({"field_id": field("res.partner", "type").id, "value_type": "plain",
                                "api_key": "type"}),
                Command.create({"field_id": field("res.partner", "is_company").id, "value_type": "plain",
                                "api_key": "is_company"}),
                Command.create({"field_id": field("res.partner", "partner_latitude").id, "value_type": "plain",
                                "api_key": "lat"}),
                Command.create({"field_id": field("res.partner", "create_date").id, "value_type": "plain",
                                "api_key": "created", "direction": "out"}),
                Command.create({"field_id": field("res.partner", "category_id").id, "value_type": "plain",
                                "api_key": "tags"}),
                Command.create({"field_id": field("res.partner", "country_id").id, "value_type": "relational",
                                "mapping_config_id": cls.countries.id, "api_key": "country"}),
                Command.create({"field_id": field("res.partner", "comment").id, "value_type": "python_plain",
                                "api_key": "note", "python_script": "record.comment"}),
            ],
        })

    def test_requires_an_administrator(self):
        response = self.url_open(URL)
        self.assertEqual(response.status_code, 401)
        self.assertEqual(response.json()["status_code"], 401)
        new_test_user(self.env, login="openapi_user", password="openapi_user_pw", groups="base.group_user")
        self.authenticate("openapi_user", "openapi_user_pw")
        response = self.url_open(URL)
        self.assertEqual(response.status_code, 403)

    def test_document_is_valid_and_has_no_secret(self):
        self.partners.rate_limit = 60
        self.authenticate("admin", "admin")
        response = self.url_open(URL)
        self.assertEqual(response.status_code, 200, response.text[:500])
        self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
        document = response.json()
        validate(document)
        self.assertEqual(document["openapi"], "3.1.0")
        paths = document["paths"]
        self.assertEqual(set(paths["/bj_api_sync/v1/partners"]), {"get", "post", "put"})
        self.assertEqual(set(paths["/bj_api_sync/v1/partners/{record_id}"]) - {"parameters"},
                         {"get", "put", "delete"})
        self.assertEqual(set(paths["/bj_api_sync/v1/public"]), {"get"})
        # 429 is documented where a Rate Limit is set
        for path in ("/bj_api_sync/v1/partners", "/bj_api_sync/v1/partners/{record_id}"):
            for method, operation in paths[path].items():
                if method != "parameters":
                    self.assertIn("429", operation["responses"], method + " " + path)
        self.assertNotIn("429", paths["/bj_api_sync/v1/public"]["get"]["responses"])
        self.assertIn("TooManyRequests", document["components"]["responses"])
        self.assertNotIn("/bj_api_sync/v1/rich-contacts/{record_id}", [p for p in paths if "post" in paths[p]])
        # security schemes per auth type, and per required header
        schemes = document["components"]["securitySchemes"]
        self.assertEqual(schemes["bearerAuth"], {"type": "http", "scheme": "bearer"})
        self.assertEqual(schemes["header_X-API-Key"], {"type": "apiKey", "in": "header", "name": "X-API-Key"})
        self.assertIn("webhookSignature", schemes)
        self.assertEqual(paths["/bj_api_sync/v1/partners"]["get"]["security"], [{"bearerAuth": []}])
        self.assertEqual(paths["/bj_api_sync/v1/public"]["get"]["security"], [])
        self.assertEqual(paths["/bj_api_sync/v1/rich-contacts"]["get"]["security"],
                         [{"webhookSignature": [], "header_X-API-Key": []}])
        # schemas from the lines' field types
        schemas = document["components"]["schemas"]
        partner = schemas["partners"]["properties"]
        self.assertEqual(partner["id"]["type"], "integer")
        self.assertEqual(partner["name"]["type"], ["string", "null"])
        self.assertEqual(schemas["partners.create"]["required"], ["name"])
        # a Required line is never null nor blank, on create or update
        for variant in ("partners.create", "partners.update"):
            name = schemas[variant]["properties"]["name"]
            self.assertEqual((name["type"], name["pattern"]), ("string", r"\S"))
        self.assertEqual(schemas["partners.update"]["properties"]["email"]["type"], ["string", "null"])
        rich = schemas["rich-contacts"]["properties"]
        self.assertEqual(rich["is_company"]["type"], "boolean")
        self.assertEqual(rich["lat"]["type"], ["number", "null"])
        self.assertEqual(rich["created"]["format"], "date-time")
        self.assertIn("contact", rich["type"]["enum"])
        self.assertEqual(rich["tags"]["type"], "array")
        self.assertIn({"$ref": "#/components/schemas/config_%s" % self.countries.id}, rich["country"]["oneOf"])
        self.assertNotIn("created", schemas["rich-contacts.create"]["properties"])
        record_id = paths["/bj_api_sync/v1/partners/{record_id}"]["parameters"][0]
        self.assertEqual(record_id["schema"]["type"], "integer")
        params = {p["name"] for p in paths["/bj_api_sync/v1/partners"]["get"]["parameters"]}
        self.assertEqual(params, {"limit", "offset", "Prefer", "res_name", "id", "name", "email", "phone"})
        # never a secret
        for secret in ("demo-token", "very-secret-key", self.secret, self.secret[6:]):
            self.assertNotIn(secret, response.text)
        for column in ("bearer_token_encrypted", "hmac_secret_encrypted", "password_encrypted"):
            value = self.partners.sudo()[column]
            if value:
                self.assertNotIn(value, response.text)

    def test_archived_and_outbound_configs_are_left_out(self):
        self.rich.active = False
        document = openapi.build_document(self.env)
        validate(document)
        self.assertNotIn("/bj_api_sync/v1/rich-contacts", document["paths"])
        self.assertNotIn("config_%s" % self.countries.id, document["components"]["schemas"])

    def test_download_one_endpoint(self):
        action = buttons.download_openapi_action(self.partners)
        self.assertEqual(action["type"], "ir.actions.act_url")
        self.assertIn("endpoint=partners", action["url"])
        self.assertEqual(self.partners.action_download_openapi(), action)
        self.authenticate("admin", "admin")
        response = self.url_open(action["url"])
        self.assertEqual(response.status_code, 200)
        self.assertIn("attachment", response.headers["Content-Disposition"])
        document = json.loads(response.content)
        validate(document)
        self.assertEqual(set(document["paths"]),
                         {"/bj_api_sync/v1/partners", "/bj_api_sync/v1/partners/{record_id}"})

    def test_test_connection(self):
        action = self.partners.action_test_connection()
        self.assertEqual(action["tag"], "display_notification")
        params = action["params"]
        self.assertTrue(params["sticky"])
        self.assertEqual(params["type"], "success")
        self.assertIn("/bj_api_sync/v1/partners", params["message"])
        self.assertIn("curl -i -X GET", params["message"])
        self.assertIn("Authorization: Bearer <token>", params["message"])
        self.assertNotIn("demo-token", params["message"])
        action = self.rich.action_test_connection()
        message = action["params"]["message"]
        self.assertIn("webhook-signature: v1,", message)
        self.assertIn("X-API-Key: <X-API-Key>", message)
        self.assertNotIn("very-secret-key", message)
        self.assertNotIn(self.secret, message)
        # what is missing is said
        self.partners.bearer_token = False
        self.partners.line_ids = [Command.clear()]
        action = self.partners.action_test_connection()
        self.assertEqual(action["params"]["type"], "danger")
        self.assertIn("token", action["params"]["message"])
        self.assertIn("Configuration Lines", action["params"]["message"])
        basic = self.rich.copy({"endpoint": "basic-copy", "auth_type": "basic", "login": "api"})
        message = basic.action_test_connection()["params"]["message"]
        self.assertIn("-u 'api:<password>'", message)
        self.assertIn("password", message)
