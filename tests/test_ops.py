"""Operations (readme/OPERATIONS.md): signature presets, API clients, Odoo API keys, the
dashboard, the Sync Status dialog and the Prometheus metrics, over real HTTP."""

import json
import time
import uuid
from datetime import timedelta

from odoo import Command, fields
from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from ..lib import signature_presets, signing
from ..services import metrics, openapi
from .http_sink import HttpSink
from .test_inbound import InboundCase

BODY = json.dumps({"name": "Signed Person", "email": "signed@example.com"})


@tagged("post_install", "-at_install")
class TestSignaturePresets(InboundCase):
    """Each provider's signature over real HTTP against an HMAC endpoint."""

    def _signed_config(self, endpoint, preset, **vals):
        return self._in_config(endpoint, methods=("POST",), auth_type="hmac", hmac_secret="s3cret-for-" + preset,
                               hmac_preset=preset, **vals)

    def _post(self, endpoint, headers, body=BODY):
        return self.call("POST", "/" + endpoint, raw=body, token=None, headers=headers)

    def test_stripe(self):
        self._signed_config("wh-stripe", "stripe")
        header = signature_presets.sign("stripe", "s3cret-for-stripe", BODY)
        response = self._post("wh-stripe", {"Stripe-Signature": header})
        self.assertStatus(response, 201)
        self.assertEqual(response.json()["name"], "Signed Person")
        with mute_logger("odoo.addons.bj_api_sync"):
            old = signature_presets.sign("stripe", "s3cret-for-stripe", BODY, timestamp=int(time.time()) - 3600)
            body = self.assertError(self._post("wh-stripe", {"Stripe-Signature": old}), 401)
            self.assertIn("too old", body["message"])
            wrong = signature_presets.sign("stripe", "other", BODY)
            self.assertError(self._post("wh-stripe", {"Stripe-Signature": wrong}), 401, "does not match")
            response = self._post("wh-stripe", {})
            self.assertError(response, 401, "stripe-signature")
            self.assertIn("HMAC-SHA256", response.headers["WWW-Authenticate"])

    def test_github(self):
        self._signed_config("wh-github", "github")
        header = signature_presets.sign("github", "s3cret-for-github", BODY)
        self.assertStatus(self._post("wh-github", {"X-Hub-Signature-256": header}), 201)
        with mute_logger("odoo.addons.bj_api_sync"):
            self.assertError(self._post("wh-github", {"X-Hub-Signature-256": header}, body=BODY + " "), 401)

    def test_shopify(self):
        self._signed_config("wh-shopify", "shopify")
        header = signature_presets.sign("shopify", "s3cret-for-shopify", BODY)
        self.assertStatus(self._post("wh-shopify", {"X-Shopify-Hmac-Sha256": header}), 201)
        with mute_logger("odoo.addons.bj_api_sync"):
            self.assertError(self._post("wh-shopify", {"X-Shopify-Hmac-Sha256": "AAAA"}), 401)

    def test_generic_hex_and_base64(self):
        self._signed_config("wh-hex", "generic", hmac_header="X-Signature", hmac_encoding="hex")
        self._signed_config("wh-b64", "generic", hmac_header="X-Sig", hmac_encoding="base64")
        hex_sig = signature_presets.sign("generic", "s3cret-for-generic", BODY, encoding="hex")
        b64_sig = signature_presets.sign("generic", "s3cret-for-generic", BODY, encoding="base64")
        self.assertStatus(self._post("wh-hex", {"X-Signature": hex_sig}), 201)
        self.assertStatus(self._post("wh-b64", {"X-Sig": b64_sig}), 201)
        with mute_logger("odoo.addons.bj_api_sync"):
            self.assertError(self._post("wh-hex", {"X-Signature": b64_sig}), 401)
            self.assertError(self._post("wh-b64", {"X-Signature": b64_sig}), 401, "x-sig")

    def test_standard_webhooks_still_default(self):
        config = self._in_config("wh-standard", methods=("POST",), auth_type="hmac",
                                 hmac_secret="whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
        self.assertEqual(config.hmac_preset, "standard")
        headers = signing.signature_headers(config._get_secret("hmac_secret"), "msg_1", BODY)
        self.assertStatus(self._post("wh-standard", headers), 201)


@tagged("post_install", "-at_install")
class TestApiClients(InboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.config = cls._in_config("clients", methods=("GET", "POST"), auth_type="api_client")
        cls.Client = cls.env["bj.api.sync.client"]

    def _client(self, **vals):
        client = self.Client.create(dict({"name": "Client %s" % uuid.uuid4().hex[:4], "config_id": self.config.id},
                                         **vals))
        return client, client._generate_key()

    def test_key_shown_once_stored_hashed(self):
        client = self.Client.create({"name": "Shop", "config_id": self.config.id})
        action = client.action_generate_key()
        key = action["context"]["default_key"]
        self.assertTrue(key.startswith("bjk_"))
        self.assertEqual(action["res_model"], "bj.api.sync.client.key")
        self.assertNotIn("res_id", action)
        self.env.flush_all()
        self.env.cr.execute("SELECT key_hash, key_index FROM bj_api_sync_client WHERE id = %s", [client.id])
        stored, index = self.env.cr.fetchone()
        self.assertNotIn(key, stored)
        self.assertEqual(len(stored), 64)
        self.assertTrue(key[4:].startswith(index))
        self.assertEqual(client.key_hint, "bjk_%s…" % index)
        # Regenerating replaces the key: the old one stops working.
        client._generate_key()
        with mute_logger("odoo.addons.bj_api_sync"):
            self.assertError(self.call("GET", "/clients", token=key), 401)

    def test_each_client_its_key_and_log(self):
        shop, shop_key = self._client()
        erp, erp_key = self._client()
        self.assertStatus(self.call("GET", "/clients", token=shop_key), 200)
        self.assertEqual(self.last_log().client_id, shop)
        self.assertStatus(self.call("GET", "/clients", token=erp_key), 200)
        self.assertEqual(self.last_log().client_id, erp)
        self.assertTrue(shop.last_used)
        with mute_logger("odoo.addons.bj_api_sync"):
            response = self.call("GET", "/clients", token="bjk_nothing")
            self.assertError(response, 401, "Invalid token")
            self.assertIn("invalid_token", response.headers["WWW-Authenticate"])
            self.assertFalse(self.last_log().client_id)
            self.assertError(self.call("GET", "/clients", token=None), 401)
            # Another configuration's client key is not valid here.
            other = self._in_config("clients-other", methods=("GET",), auth_type="api_client")
            foreign = self.Client.create({"name": "Foreign", "config_id": other.id})._generate_key()
            self.assertError(self.call("GET", "/clients", token=foreign), 401)
            self.assertStatus(self.call("GET", "/clients-other", token=foreign), 200)

    def test_expired_and_archived(self):
        client, key = self._client(expiration_date=fields.Datetime.now() - timedelta(minutes=1))
        with mute_logger("odoo.addons.bj_api_sync"):
            self.assertError(self.call("GET", "/clients", token=key), 401)
            client.expiration_date = fields.Datetime.now() + timedelta(days=1)
            self.assertStatus(self.call("GET", "/clients", token=key), 200)
            client.active = False
            self.assertError(self.call("GET", "/clients", token=key), 401)

    def test_allowed_methods(self):
        client, key = self._client(http_method_ids=[Command.set([self.methods["GET"].id])])
        self.assertStatus(self.call("GET", "/clients", token=key), 200)
        self.assertStatus(self.call("HEAD", "/clients", token=key), 200)
        with mute_logger("odoo.addons.bj_api_sync"):
            response = self.call("POST", "/clients", {"name": "Nope"}, token=key)
            self.assertError(response, 403, "not allowed for API client")
        self.assertEqual(self.last_log().client_id, client)
        self.assertFalse(self.Partner.search([("name", "=", "Nope")]))

    def test_own_rate_limit(self):
        _client, key = self._client(rate_limit=2)
        _other, other_key = self._client()
        self.assertStatus(self.call("GET", "/clients", token=key), 200)
        self.assertStatus(self.call("GET", "/clients", token=key), 200)
        with mute_logger("odoo.addons.bj_api_sync"):
            response = self.call("GET", "/clients", token=key)
        if response.status_code == 200:  # the minute turned between the calls
            response = self.call("GET", "/clients", token=key)
            response = self.call("GET", "/clients", token=key)
        self.assertError(response, 429)
        self.assertTrue(1 <= int(response.headers["Retry-After"]) <= 60)
        # The other client has its own budget.
        self.assertStatus(self.call("GET", "/clients", token=other_key), 200)

    def test_openapi_names_the_bearer_and_the_signature_header(self):
        github = self._in_config("openapi-github", methods=("POST",), auth_type="hmac", hmac_secret="s",
                                 hmac_preset="github")
        document = openapi.build_document(self.env, self.config | github)
        schemes = document["components"]["securitySchemes"]
        self.assertEqual(schemes["bearerAuth"], {"type": "http", "scheme": "bearer"})
        self.assertEqual(schemes["signature_x-hub-signature-256"]["name"], "x-hub-signature-256")

    def test_access_system_only(self):
        user = new_test_user(self.env, "bj_ops_clerk", groups="base.group_user")
        with self.assertRaises(AccessError):
            self.Client.with_user(user).search([])


@tagged("post_install", "-at_install")
class TestOdooApiKey(InboundCase):
    def test_bearer_odoo_api_key_runs_as_its_user(self):
        self._in_config("odoo-key", methods=("GET", "POST"), auth_type="odoo_api_key")
        user = new_test_user(self.env, "bj_ops_keyuser", groups="base.group_user,base.group_partner_manager")
        key = self.env["res.users.apikeys"].with_user(user).sudo()._generate(None, "bj test", None)
        scoped = self.env["res.users.apikeys"].with_user(user).sudo()._generate("bj_api_sync", "bj", None)
        other_scope = self.env["res.users.apikeys"].with_user(user).sudo()._generate("other", "x", None)
        response = self.call("POST", "/odoo-key", {"name": "Made With A Key"}, token=key)
        self.assertStatus(response, 201)
        partner = self.Partner.browse(response.json()["id"])
        self.assertEqual(partner.create_uid, user)
        self.assertStatus(self.call("GET", "/odoo-key", token=scoped), 200)
        with mute_logger("odoo.addons.bj_api_sync"):
            self.assertError(self.call("GET", "/odoo-key", token=other_scope), 401)
            self.assertError(self.call("GET", "/odoo-key", token="0" * 40), 401)
            user.active = False
            self.assertError(self.call("GET", "/odoo-key", token=key), 401)


@tagged("post_install", "-at_install")
class TestDashboard(InboundCase):
    def _logs(self, config, rows):
        self.env["bj.api.log"]._insert_rows([
            {"config_id": config.id, "direction": "in", "method": "GET", "status": status, "duration_ms": ms,
             "response_code": 200 if status == "success" else 500}
            for status, ms in rows
        ])

    def test_stats_and_health(self):
        good = self._in_config("dash-good", methods=("GET",))
        bad = self._in_config("dash-bad", methods=("GET",))
        idle = self._in_config("dash-idle", methods=("GET",))
        self._logs(good, [("success", ms) for ms in range(1, 101)])
        self._logs(bad, [("error", 10)] * 6 + [("success", 20)] * 4)
        (good | bad | idle).invalidate_recordset()
        self.assertEqual(good.health_calls, 100)
        self.assertEqual(good.health_errors, 0)
        self.assertEqual(good.health_p50, 50)
        self.assertEqual(good.health_p95, 95)
        self.assertEqual(good.health_state, "ok")
        self.assertTrue(good.last_success_at)
        self.assertFalse(good.last_error_at)
        self.assertAlmostEqual(bad.health_error_rate, 0.6)
        self.assertEqual(bad.health_state, "error")
        self.assertEqual(bad.health_color, 1)
        self.assertEqual(idle.health_state, "idle")
        idle.paused = True
        self.assertEqual(idle.health_state, "paused")

    def test_dashboard_tour(self):
        config = self._in_config("dash-tour", methods=("GET",), name="Dashboard Tour Config")
        self._logs(config, [("success", 5), ("error", 7)])
        self.start_tour("/odoo/action-bj_api_sync.bj_api_sync_dashboard_action", "bj_api_sync_dashboard_tour",
                        login="admin")

    def test_menu_first_and_views_load(self):
        menu = self.env.ref("bj_api_sync.bj_api_sync_dashboard_menu")
        siblings = self.env["ir.ui.menu"].search([("parent_id", "=", menu.parent_id.id)])
        self.assertEqual(siblings.sorted("sequence")[0], menu)
        for model, view_type in [("bj.api.log", "graph"), ("bj.api.log", "pivot"), ("bj.api.sync.job", "graph"),
                                 ("bj.api.sync.job", "pivot"), ("bj.api.sync.config", "kanban")]:
            self.env[model].get_views([(False, view_type)])
        groups = self.env["bj.api.log"].read_group(
            [("create_date", ">=", fields.Datetime.now() - timedelta(days=1))], ["duration_ms:avg"],
            ["create_hour", "status"], lazy=False,
        )
        self.assertIsInstance(groups, list)


@tagged("post_install", "-at_install")
class TestSyncStatus(InboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")

    def setUp(self):
        super().setUp()
        self.received = []
        self.sink = HttpSink(self._respond).start()
        self.addCleanup(self.sink.stop)

    def _respond(self, received):
        self.received.append(received)
        data = received.json() or {}
        return 201, {"id": "remote-%s" % data.get("id")}

    def _out(self):
        return self.Config.create({
            "name": "Out Status", "request_type": "out", "url": self.sink.url("/partners"),
            "model_id": self.env.ref("base.model_res_partner").id, "retry_backoff": 0,
            "http_method_ids": [Command.set([self.methods["POST"].id])],
            "line_ids": [self._line("id", "id", is_record_identifier=True), self._line("name", "name")],
        })

    def _action(self):
        return self.env["ir.actions.server"].search(
            [("binding_model_id.model", "=", "res.partner"), ("code", "ilike", "bj.api.sync.status")]
        )

    def test_action_bound_when_an_out_config_is_saved(self):
        config = self._out()
        action = self._action()
        self.assertEqual(len(action), 1)
        self.assertEqual(action.binding_view_types, "form")
        config.write({"request_type": "in", "endpoint": "status-now-in", "url": False})
        if not self.Config.search([("request_type", "=", "out"), ("model_name", "=", "res.partner")]):
            self.assertFalse(self._action())

    def test_status_and_resend(self):
        config = self._out()
        result = config._make_outbound_http_request(record_ids=self.person, config_id_ref=config.id)
        self.assertTrue(result.success, result)
        action = self._action().with_context(active_model="res.partner", active_id=self.person.id,
                                             active_ids=self.person.ids).run()
        status = self.env["bj.api.sync.status"].browse(action["res_id"])
        line = status.line_ids.filtered(lambda entry: entry.config_id == config)
        self.assertEqual(line.external_id, "remote-%s" % self.person.id)
        self.assertTrue(line.synced_at)
        self.assertEqual(line.last_status, "success")
        self.assertFalse(line.last_error)
        sent = len(self.received)
        line.action_resend()  # unchanged payload: sent anyway
        self.assertEqual(len(self.received), sent + 1)
        self.assertEqual(status.message, "Sent to %s." % config.name)

    def test_last_error_shown(self):
        config = self._out()
        config.url = self.sink.url("/partners")
        self.sink.responder = lambda received: (422, {"error": "name refused"})
        with mute_logger("odoo.addons.bj_api_sync"):
            config._make_outbound_http_request(record_ids=self.person, config_id_ref=config.id)
        status = self.env["bj.api.sync.status"].browse(
            self.env["bj.api.sync.status"]._action_open("res.partner", self.person.id)["res_id"]
        )
        line = status.line_ids.filtered(lambda entry: entry.config_id == config)
        self.assertEqual(line.last_status, "error")
        self.assertTrue(line.last_error)

    def test_sync_status_tour(self):
        config = self._out()
        config._make_outbound_http_request(record_ids=self.person, config_id_ref=config.id)
        self.start_tour("/odoo/res.partner/%d" % self.person.id, "bj_api_sync_status_tour", login="admin")


@tagged("post_install", "-at_install")
class TestMetrics(InboundCase):
    URL = "/bj_api_sync/metrics"

    def test_token_session_and_refusals(self):
        config = self._in_config("metrics-in", methods=("GET",))
        self.env["bj.api.log"]._insert_rows([
            {"config_id": config.id, "direction": "in", "status": "success", "duration_ms": 40},
            {"config_id": config.id, "direction": "in", "status": "error", "duration_ms": 3000},
        ])
        self.env["ir.config_parameter"].sudo().set_param(metrics.TOKEN_PARAM, "prom-token")
        response = self.url_open(self.URL)
        self.assertEqual(response.status_code, 401)
        response = self.url_open(self.URL, headers={"Authorization": "Bearer wrong"})
        self.assertEqual(response.status_code, 401)
        response = self.url_open(self.URL, headers={"Authorization": "Bearer prom-token"})
        self.assertEqual(response.status_code, 200, response.text)
        self.assertTrue(response.headers["Content-Type"].startswith("text/plain; version=0.0.4"))
        text = response.text
        labels = 'config="%s",config_id="%s",direction="in"' % (config.name, config.id)
        self.assertIn('bj_api_sync_requests_total{%s,status="success"} 1' % labels, text)
        self.assertIn('bj_api_sync_requests_total{%s,status="error"} 1' % labels, text)
        self.assertIn('bj_api_sync_request_duration_seconds_bucket{%s,le="0.05"} 1' % labels, text)
        self.assertIn('bj_api_sync_request_duration_seconds_bucket{%s,le="+Inf"} 2' % labels, text)
        self.assertIn('bj_api_sync_request_duration_seconds_count{%s} 2' % labels, text)
        self.assertIn('bj_api_sync_config_paused{config="%s",config_id="%s"} 0' % (config.name, config.id), text)
        self.assertIn("# TYPE bj_api_sync_queue_depth gauge", text)
        # An administrator's session works without the token; another user's does not.
        new_test_user(self.env, "bj_ops_metrics_user", password="bj_ops_metrics_user", groups="base.group_user")
        self.authenticate("bj_ops_metrics_user", "bj_ops_metrics_user")
        self.assertEqual(self.url_open(self.URL).status_code, 403)
        self.authenticate("admin", "admin")
        self.assertEqual(self.url_open(self.URL).status_code, 200)

    def test_no_token_configured_refuses_any_bearer(self):
        self.env["ir.config_parameter"].sudo().set_param(metrics.TOKEN_PARAM, "")
        self.assertEqual(self.url_open(self.URL, headers={"Authorization": "Bearer "}).status_code, 401)
