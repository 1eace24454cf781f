"""Security properties of SPEC §6, proved end to end over real HTTP.

- inbound limits: body size (413), JSON depth and batch size, the per-config rate limit (429);
- HMAC verification: the Standard Webhooks reference vector, replay window, rotation;
- secret hygiene: after inbound and outbound flows (successes and failures), no secret string is
  anywhere in the database (every text column of every table), in the server log, in a response,
  a notification, an export or the OpenAPI document;
- access: non-administrators get nothing from any model or route;
- script sandbox: error bodies never carry what a script or the ORM saw;
- SSRF: an outbound target on a private address is refused unless allowed.
"""

import base64
import contextlib
import json
import logging
import socket
import threading
import time
import uuid
from unittest.mock import patch

import psycopg2

from odoo import Command, api, sql_db
from odoo.exceptions import AccessError, UserError
from odoo.tests import BaseCase, new_test_user, tagged
from odoo.tools import SQL, mute_logger

from ..lib import signing
from ..lib.http_client import close_clients
from ..services import inbound, openapi, outbox
from .common import API, InboundCase
from .db_scan import text_columns
from .http_sink import HttpSink

ALLOWED_HOSTS = "bj_api_sync.allowed_hosts"


# ---------------------------------------------------------------------------
# The partner API of the outbound flows: the test sink (tests/http_sink.py)
# ---------------------------------------------------------------------------


class Remote(HttpSink):
    """The partner API outbound configs call: records what it receives, answers what ``answer`` set."""

    def __init__(self):
        super().__init__(lambda received: self.reply)
        self.answer(201, {"id": "remote-1"})

    def answer(self, status, body=None):
        self.reply = (status, body if body is not None else {"status": status})


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))  # the formatter adds the traceback text too


@contextlib.contextmanager
def capture_addon_logs():
    """Every log record of the addon, DEBUG included, kept here instead of the runner's output."""
    logger = logging.getLogger("odoo.addons.bj_api_sync")
    handler = _Capture()
    previous = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous[0])
        logger.propagate = previous[1]


class SecurityCase(InboundCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.internal = new_test_user(cls.env, login="bj_sec_internal", groups="base.group_user")
        cls.manager = new_test_user(
            cls.env, login="bj_sec_manager", groups="base.group_user,base.group_erp_manager,base.group_partner_manager"
        )
        cls.portal = new_test_user(cls.env, login="bj_sec_portal", groups="base.group_portal")

    def setUp(self):
        super().setUp()
        # The outbound client is cached per allow list: start and end every test with a fresh one.
        close_clients()
        self.addCleanup(close_clients)

    def scan_database(self, needles):
        """``[(table, column, needle)]`` for every needle found in any text-like column of any table."""
        self.env.flush_all()
        cr = self.env.cr
        columns = text_columns(cr)
        self.assertGreater(len(columns), 100, "the scan must cover the whole database")
        self.assertIn("bj_api_log", columns)

        def text_of(column, kind):
            if kind == "bytea":
                return SQL("encode(%s, 'escape')", SQL.identifier(column))
            return SQL("%s::text", SQL.identifier(column))

        hits = []
        scanned = 0
        for table, cols in columns.items():
            scanned += len(cols)
            found = SQL(" OR ").join(SQL("strpos(%s, n) > 0", text_of(col, kind)) for col, kind in cols)
            cr.execute(SQL("SELECT 1 FROM %s, unnest(%s::text[]) n WHERE %s LIMIT 1",
                           SQL.identifier(table), list(needles), found))
            if not cr.fetchone():
                continue
            for col, kind in cols:
                for needle in needles:
                    cr.execute(SQL("SELECT count(*) FROM %s WHERE strpos(%s, %s) > 0",
                                   SQL.identifier(table), text_of(col, kind), needle))
                    if cr.fetchone()[0]:
                        hits.append((table, col, needle))
        return hits, scanned


# ---------------------------------------------------------------------------
# 1. Inbound limits
# ---------------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestSecurity(SecurityCase):
    def test_body_size_limit_413(self):
        self.env["ir.config_parameter"].sudo().set_param(inbound.MAX_BODY_PARAM, "1000")
        count = self.Partner.search_count([])
        logs = self.Log.search_count([])
        small = {"name": "y" * 900}
        self.assertLessEqual(len(json.dumps(small)), 1000)
        self.assertStatus(self.call("POST", "/partners", small), 201)
        big = {"name": "x" * 1000}
        self.assertError(self.call("POST", "/partners", big), 413, "1000 bytes")
        self.assertError(self.call("PUT", "/partners/%s" % self.person.id, big), 413)
        # chunked (no Content-Length): cut at the limit while reading
        chunks = (b'{"name": "' + b"z" * 500, b"z" * 600 + b'"}')
        response = self.opener.post(self.base_url() + API + "/partners", data=iter(chunks), timeout=30,
                                    headers={"Authorization": "Bearer demo-token", "Content-Type": "application/json"})
        self.assertError(response, 413)
        # a declared Content-Length above the limit is refused before the body is read
        self.assertEqual(inbound.handle(self.env, "partners", "POST", headers={
            "Authorization": "Bearer demo-token", "Content-Length": "5000"}, body_bytes=b"")[0], 413)
        # an HMAC endpoint refuses on size before verifying a signature over a body it did not read
        secret = signing.generate_secret()
        self._in_config("hmac-413", auth_type="hmac", hmac_secret=secret)
        raw = json.dumps(big).encode()
        headers = signing.signature_headers(secret, "msg_413", raw)
        self.assertError(self.call("POST", "/hmac-413", raw=raw, token=None, headers=headers), 413)
        self.assertEqual(self.Partner.search_count([]), count + 1)
        self.assertEqual(self.Log.search_count([]), logs + 6)
        self.assertEqual(self.last_log().response_code, 413)

    def test_json_depth_and_batch_limits(self):
        def nested(depth):
            return "[" * depth + "]" * depth

        # nesting is measured before anything else looks at the values
        response = self.call("POST", "/partners", raw='{"name": "n", "x": %s}' % nested(inbound.MAX_JSON_DEPTH))
        self.assertError(response, 400, "too deeply")
        response = self.call("POST", "/partners", raw='{"name": "n", "x": %s}' % nested(inbound.MAX_JSON_DEPTH - 1))
        self.assertNotIn("too deeply", response.text)
        for depth in (100, 5000, 200000):
            with self.subTest(depth=depth):
                self.assertError(self.call("POST", "/partners", raw=nested(depth)), 400, "too deeply")
        # the batch cap is the config's limit
        count = self.Partner.search_count([])
        self.partners_config.limit = 5
        self.assertError(self.call("POST", "/partners", [{"name": "B%s" % i} for i in range(6)]), 413, "limit of 5")
        self.assertEqual(self.Partner.search_count([]), count)
        self.assertStatus(self.call("POST", "/partners", [{"name": "B%s" % i} for i in range(5)]), 201)
        self.assertEqual(self.Partner.search_count([]), count + 5)

    def test_rate_limit(self):
        config = self._in_config("rl-ep", rate_limit=4, auth_type="bearer", bearer_token="rl-token")
        self._in_config("rl-other", rate_limit=1)  # another endpoint: its own budget
        counters = self.env["bj.api.rate.limit"]
        # wrong credentials never spend the budget...
        for _i in range(6):
            self.assertError(self.call("GET", "/rl-ep", token="wrong"), 401)
        self.assertFalse(counters.search([("config_id", "=", config.id)]))
        for _i in range(4):
            self.assertStatus(self.call("GET", "/rl-ep", token="rl-token"), 200)
        counter = counters.search([("config_id", "=", config.id)])
        self.assertEqual(counter.hits, 4)
        # ...but once it is spent, everyone is refused before authentication, and nothing runs
        count = self.Partner.search_count([])
        for token in ("rl-token", "wrong"):
            response = self.call("POST", "/rl-ep", {"name": "Over the limit"}, token=token)
            self.assertError(response, 429, "4 requests per minute")
            self.assertTrue(1 <= int(response.headers["Retry-After"]) <= 60, response.headers)
        self.assertEqual(self.Partner.search_count([]), count)
        counter.invalidate_recordset()
        self.assertEqual(counter.hits, 4, "refused requests are not counted")
        log = self.last_log()
        self.assertEqual((log.response_code, log.config_id, log.status), (429, config, "error"))
        self.assertIn("Rate limit", log.error_message)
        # per configuration
        self.assertStatus(self.call("GET", "/rl-other", token=None), 200)
        self.assertError(self.call("GET", "/rl-other", token=None), 429)
        self.assertStatus(self.call("GET", "/partners"), 200)  # no limit there
        # the next minute starts a new window and drops the old ones
        self.env.cr.execute(
            "UPDATE bj_api_rate_limit SET window_start = window_start - interval '1 minute' WHERE config_id = %s",
            [config.id],
        )
        self.env.invalidate_all()
        self.assertStatus(self.call("GET", "/rl-ep", token="rl-token"), 200)
        self.assertEqual(counters.search([("config_id", "=", config.id)]).mapped("hits"), [1])
        # 0 switches it off
        config.rate_limit = 0
        for _i in range(6):
            self.assertStatus(self.call("GET", "/rl-ep", token="rl-token"), 200)

    # ---------------------------------------------------------------------------
    # 2. HMAC
    # ---------------------------------------------------------------------------
    def test_hmac_reference_vector_replay_window_and_rotation(self):
        # The Standard Webhooks reference vector, end to end through the endpoint.
        secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        msg_id, timestamp, body = "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
        reference = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        self.assertEqual(signing.sign(secret, msg_id, timestamp, body), reference)
        config = self._in_config("hmac-vector", auth_type="hmac", hmac_secret=secret, methods=("GET",))
        headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": reference}
        path = "/hmac-vector/%s" % self.person.id

        def at(now, sent_headers=headers, raw=body):
            # a GET signed over a body: the signature covers whatever bytes were sent
            with patch.object(signing.time, "time", return_value=now):
                return self.call("GET", path, raw=raw, token=None, headers=sent_headers)

        self.assertStatus(at(timestamp + 10), 200)
        self.assertStatus(at(timestamp - 299), 200)
        self.assertStatus(at(timestamp + 300), 200)
        self.assertError(at(timestamp + 301), 401, "too old")
        self.assertError(at(timestamp - 301), 401, "too new")
        self.assertError(at(timestamp + 10, raw=b'{"test": 2432232315}'), 401, "does not match")
        self.assertError(at(timestamp + 10, dict(headers, **{"webhook-timestamp": str(timestamp + 1)})), 401)
        self.assertError(at(timestamp + 10, dict(headers, **{"webhook-id": "msg_other"})), 401)
        self.assertError(at(timestamp + 10, dict(headers, **{"webhook-timestamp": "1614265330.0"})), 401)
        # rotation on the sender's side: several signatures, one valid one suffices; v2 entries are ignored
        new_secret = signing.generate_secret()
        valid = signing.sign(new_secret, msg_id, timestamp, body)
        bogus = signing.sign(signing.generate_secret(), msg_id, timestamp, body)
        config.hmac_secret = new_secret
        self.assertError(at(timestamp + 10), 401)  # the old secret is gone
        for signatures in ("%s %s" % (bogus, valid), "%s %s" % (valid, bogus), "v2,%s %s" % (bogus[3:], valid)):
            with self.subTest(signatures=signatures[:20]):
                self.assertStatus(at(timestamp + 10, dict(headers, **{"webhook-signature": signatures})), 200)
        self.assertError(at(timestamp + 10, dict(headers, **{"webhook-signature": "v2,%s" % valid[3:]})), 401)
        self.assertError(at(timestamp + 10, dict(headers, **{"webhook-signature": bogus})), 401)
        # rotation on the receiver's side: both secrets active (space separated)
        config.hmac_secret = "%s %s" % (new_secret, secret)
        self.assertStatus(at(timestamp + 10), 200)
        self.assertStatus(at(timestamp + 10, dict(headers, **{"webhook-signature": valid})), 200)
        self.assertIn("webhook-signature: ***", self.last_log().request_headers.lower())

    def test_comparisons_are_constant_time(self):
        """Every secret comparison goes through hmac.compare_digest (no early exit on the first byte)."""
        secret = signing.generate_secret()
        self._in_config("ct-hmac", auth_type="hmac", hmac_secret=secret)
        self._in_config("ct-basic", auth_type="basic", login="api", password="pw")
        self._in_config("ct-header", header_ids=[
            Command.create({"key": "X-Key", "value": "hv", "secret": True, "required": True})])
        import hmac as hmac_module  # noqa: PLC0415

        real = hmac_module.compare_digest
        for endpoint, headers in (
            ("partners", {"Authorization": "Bearer nope"}),
            ("ct-basic", {"Authorization": "Basic " + base64.b64encode(b"api:nope").decode()}),
            ("ct-header", {"X-Key": "nope"}),
            ("ct-hmac", signing.signature_headers(signing.generate_secret(), "m", b"")),
        ):
            with self.subTest(endpoint=endpoint), patch("hmac.compare_digest", side_effect=real) as spy:
                status = inbound.handle(self.env, endpoint, "GET", headers=headers)[0]
                self.assertEqual(status, 401)
                self.assertTrue(spy.called)

    # ---------------------------------------------------------------------------
    # 3. Secret hygiene
    # ---------------------------------------------------------------------------
    def test_secrets_appear_nowhere(self):
        tag = uuid.uuid4().hex[:12]
        secrets = {
            "in password": "inpw-%s" % tag,
            "in token": "intok-%s" % tag,
            "in hmac": signing.generate_secret(),
            "in header": "inhdr-%s" % tag,
            "out password": "outpw-%s" % tag,
            "out token": "outtok-%s" % tag,
            "out hmac": signing.generate_secret(),
            "out header": "outhdr-%s" % tag,
        }
        needles = dict(secrets)
        for name in ("in hmac", "out hmac"):
            needles[name + " key"] = secrets[name].removeprefix("whsec_")
        needles["in basic credentials"] = base64.b64encode(b"in-api:" + secrets["in password"].encode()).decode()
        needles["out basic credentials"] = base64.b64encode(b"out-api:" + secrets["out password"].encode()).decode()
        seen = []  # every text a client, a user or an export gets back

        with capture_addon_logs() as log_lines:
            configs = self._inbound_secret_flows(secrets, seen)
            with Remote() as remote:
                configs |= self._outbound_secret_flows(secrets, remote, seen)
                self.assertTrue(remote.requests)
            configs |= self.Config.search([("name", "=like", "Sec %s%%" % tag)])

            # what administrators see: forms, exports, the OpenAPI document, Test Connection
            for config in configs:
                seen.append(json.dumps(config.read()[0], default=str))
                seen.append(json.dumps(config.header_ids.read(), default=str))
                seen.append(json.dumps(config.action_test_connection(), default=str))
            export_fields = [
                name for name, field in self.Config._fields.items()
                if field.type not in ("one2many", "many2many", "many2one_reference", "binary", "properties")
            ] + ["header_ids/key", "header_ids/value", "header_ids/value_plain", "header_ids/value_encrypted"]
            seen.append(json.dumps(configs.export_data(export_fields), default=str))
            for config in configs:
                action = config.action_export_config()
                attachment = self.env["ir.attachment"].browse(int(action["url"].split("/")[3].split("?")[0]))
                seen.append(attachment.raw.decode())
            seen.append(openapi.dumps(openapi.build_document(self.env, None, base_url="http://x/")))
            self.authenticate("admin", "admin")
            response = self.url_open(API + "/openapi.json")
            self.assertEqual(response.status_code, 200)
            seen.append(response.text)

        seen.append("\n".join(log_lines))
        self.assertTrue(log_lines)
        for text in seen:
            for name, needle in needles.items():
                self.assertNotIn(needle, text, "%s leaked: %s" % (name, text[:3000]))

        # the secrets are stored, encrypted, and decrypt to the right values
        for config in configs:
            for column in config._bj_secret_fields.values():
                if config[column]:
                    self.assertTrue(config[column].startswith("gAAAAA"))
        hits, scanned = self.scan_database(list(needles.values()))
        self.assertGreater(scanned, 500)
        found = ["%s.%s: %s" % (table, column, next(k for k, v in needles.items() if v == needle))
                 for table, column, needle in hits]
        self.assertEqual(found, [], "secrets stored in clear")
        # the scan does find what is there (a control: a log row with a planted value)
        self.Log.create({"name": "control", "error_message": "planted-%s" % tag})
        self.assertEqual(self.scan_database(["planted-%s" % tag])[0], [("bj_api_log", "error_message", "planted-%s" % tag)])

    def _inbound_secret_flows(self, secrets, seen):
        tag = secrets["in password"].split("-")[1]
        basic = self._in_config(
            "sec-basic-%s" % tag, name="Sec %s basic" % tag, auth_type="basic", login="in-api",
            password=secrets["in password"], header_ids=[
                Command.create({"key": "X-Sec-Key", "value": secrets["in header"], "secret": True, "required": True}),
                Command.create({"key": "X-Public", "value": "visible"}),
            ],
        )
        bearer = self._in_config("sec-bearer-%s" % tag, name="Sec %s bearer" % tag, auth_type="bearer",
                                 bearer_token=secrets["in token"])
        hmac_config = self._in_config("sec-hmac-%s" % tag, name="Sec %s hmac" % tag, auth_type="hmac",
                                      hmac_secret=secrets["in hmac"])
        basic_ok = {"Authorization": "Basic " + base64.b64encode(
            ("in-api:%s" % secrets["in password"]).encode()).decode(), "X-Sec-Key": secrets["in header"]}
        bearer_ok = {"Authorization": "Bearer %s" % secrets["in token"]}

        def signed(raw, key=secrets["in hmac"], **kw):
            return signing.signature_headers(key, "msg_%s" % uuid.uuid4().hex, raw, **kw)

        body = json.dumps({"name": "Secret Flow %s" % tag}).encode()
        requests_ = [
            # (endpoint path, method, headers, raw body, expected status)
            ("/" + basic.endpoint, "GET", basic_ok, None, 200),
            ("/" + basic.endpoint, "POST", basic_ok, body, 201),
            ("/" + basic.endpoint, "POST", dict(basic_ok, **{"Idempotency-Key": "k-%s" % tag}), body, 201),
            ("/" + basic.endpoint, "POST", dict(basic_ok, **{"Idempotency-Key": "k-%s" % tag}), body, 201),
            ("/" + basic.endpoint, "GET", dict(basic_ok, **{"X-Sec-Key": "wrong"}), None, 401),
            ("/" + basic.endpoint, "GET", {"X-Sec-Key": secrets["in header"], "Authorization": "Basic "
                                           + base64.b64encode(b"in-api:wrong").decode()}, None, 401),
            ("/" + basic.endpoint, "POST", basic_ok, b"{broken", 400),
            ("/" + basic.endpoint, "PUT", basic_ok, b'{"name": 12}', 400),
            ("/" + basic.endpoint + "/999999999", "PUT", basic_ok, body, 404),
            ("/" + bearer.endpoint, "GET", bearer_ok, None, 200),
            ("/" + bearer.endpoint, "POST", bearer_ok, body, 201),
            ("/" + bearer.endpoint, "GET", {"Authorization": "Bearer wrong"}, None, 401),
            ("/" + bearer.endpoint, "GET", {"Authorization": "Token %s" % secrets["in token"]}, None, 401),
            ("/" + bearer.endpoint, "POST", bearer_ok, b'[{"name": 1}]', 400),
            ("/" + bearer.endpoint, "GET", dict(bearer_ok, Cookie="session_id=abc"), None, 200),
            ("/" + hmac_config.endpoint, "POST", signed(body), body, 201),
            ("/" + hmac_config.endpoint, "POST", signed(body, key=signing.generate_secret()), body, 401),
            ("/" + hmac_config.endpoint, "POST", signed(body, timestamp=int(time.time()) - 900), body, 401),
            ("/" + hmac_config.endpoint, "POST", signed(b"{bad"), b"{bad", 400),
        ]
        for path, method, headers, raw, status in requests_:
            with self.subTest(path=path, method=method, status=status):
                response = self.call(method, path, raw=raw, token=None, headers=headers)
                self.assertStatus(response, status)
                seen.append(response.text)
                seen.append(json.dumps(dict(response.headers)))
        return basic | bearer | hmac_config

    def _outbound_secret_flows(self, secrets, remote, seen):
        tag = secrets["out password"].split("-")[1]
        self.env["ir.config_parameter"].sudo().set_param(ALLOWED_HOSTS, "127.0.0.1")
        partner = self.Partner.create({"name": "Out Secret %s" % tag, "email": "out-%s@example.com" % tag})
        domain = "[('email', '=', 'out-%s@example.com')]" % tag

        def out_config(name, **vals):
            defaults = {
                "name": "Sec %s %s" % (tag, name), "request_type": "out", "endpoint": False,
                "url": remote.url("/partners"), "model_id": self.env.ref("base.model_res_partner").id,
                "http_method_ids": [Command.set([self.methods["POST"].id])], "filter_domain": domain,
                "max_retries": 1, "retry_backoff": 0, "connect_timeout": 2, "read_timeout": 5,
                "line_ids": [self._line("id", "id", is_record_identifier=True), self._line("name", "name")],
            }
            defaults.update(vals)
            return self.Config.create(defaults)

        basic = out_config("basic", auth_type="basic", login="out-api", password=secrets["out password"],
                           header_ids=[Command.create({"key": "X-Out-Key", "value": secrets["out header"],
                                                       "secret": True})])
        bearer = out_config("bearer", auth_type="bearer", bearer_token=secrets["out token"])
        hmac_config = out_config("hmac", auth_type="hmac", hmac_secret=secrets["out hmac"])
        queued = out_config("queued", auth_type="bearer", bearer_token=secrets["out token"], delivery="queued")
        closed = out_config("closed", auth_type="bearer", bearer_token=secrets["out token"],
                            url="http://127.0.0.1:9/partners")

        def send(config):
            result = config._make_outbound_http_request(partner, config.id)
            seen.append(json.dumps(dict(result), default=str))
            seen.append(str(result))
            return result

        for config in (basic, bearer, hmac_config):
            with self.subTest(config=config.name):
                remote.answer(201, {"id": "r-1"})
                self.assertTrue(send(config).success)
                for status in (500, 401, 422):
                    remote.answer(status, {"error": "refused"})
                    self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)]).unlink()
                    self.assertFalse(send(config).success)
                remote.answer(200)
                seen.append(json.dumps(config.action_test_connection(), default=str))
                seen.append(json.dumps(config.action_preview_payload(), default=str))
        self.assertFalse(send(closed).success)
        seen.append(json.dumps(closed.action_test_connection(), default=str))
        # queued: the job rows, then the worker's delivery (a failure, then a success)
        send(queued)
        jobs = self.env["bj.api.sync.job"].search([("config_id", "=", queued.id)])
        self.assertTrue(jobs)
        remote.answer(503)
        outbox.deliver_job(jobs[0], attempt=1)
        remote.answer(201, {"id": "r-q"})
        outbox.deliver_job(jobs[0], attempt=2)
        # the remote did get the credentials: the flows above really used them
        received = "\n".join("%r" % (dict(r.raw_headers),) for r in remote.requests)
        self.assertIn("Bearer %s" % secrets["out token"], received)
        self.assertIn(secrets["out header"], received)
        self.assertIn(base64.b64encode(("out-api:%s" % secrets["out password"]).encode()).decode(), received)
        self.assertIn("v1,", received)
        return basic | bearer | hmac_config | queued | closed

    # ---------------------------------------------------------------------------
    # 3b. Access: models and routes
    # ---------------------------------------------------------------------------
    def test_non_administrators_get_nothing_from_any_model(self):
        config = self.partners_config
        sample = {
            "bj.api.sync.header": {"config_id": config.id, "key": "X-A", "value": "a"},
            "bj.api.sync.param": {"config_id": config.id, "key": "q", "field_id": self._field("res.partner", "name").id},
            "bj.api.log": {"name": "sample", "config_id": config.id},
            "bj.api.sync.job": {"config_id": config.id, "res_model": "res.partner"},
            "bj.api.sync.binding": {"config_id": config.id, "res_model": "res.partner", "res_id": self.person.id},
            "bj.api.idempotency": {"config_id": config.id, "key": "sample"},
            "bj.api.rate.limit": {"config_id": config.id, "window_start": "2020-01-01 00:00:00"},
            "bj.api.sync.import.wizard": {},
            "bj.api.sync.client": {"config_id": config.id, "name": "sample"},
            "bj.api.sync.client.key": {},
            "bj.api.sync.status": {"res_model": "res.partner", "res_id": self.person.id, "line_ids": [(0, 0, {})]},
        }
        for model, vals in sample.items():
            self.env[model].sudo().create(vals)
        models_ = self.env["ir.model"].search([("model", "=like", "bj.%")]).mapped("model")
        models_ = [m for m in models_ if not self.env[m]._abstract]
        self.assertGreaterEqual(len(models_), 11)
        for user in (self.internal, self.manager, self.portal):
            for model in models_:
                Model = self.env[model].with_user(user)
                record = self.env[model].sudo().search([], limit=1).with_user(user)
                self.assertTrue(record, model)
                field = next(name for name, f in Model._fields.items() if f.store and name != "id")
                for name, operation in (
                    ("search", lambda Model=Model: Model.search([])),
                    ("read", lambda record=record: record.read()),
                    ("create", lambda Model=Model: Model.create({})),
                    ("write", lambda record=record: record.write({})),
                    ("unlink", lambda record=record: record.unlink()),
                    ("export", lambda record=record, field=field: record.export_data([field])),
                ):
                    # a savepoint: mail.thread deletes the messages before the access check fails
                    with self.subTest(user=user.login, model=model, operation=name), self.env.cr.savepoint():
                        # export: a UserError for users without the export right, AccessError otherwise
                        with self.assertRaises(AccessError if name != "export" else UserError):
                            operation()
        # administrators read masks, never the ciphertext's plaintext
        secret = "adm-%s" % uuid.uuid4().hex
        config.bearer_token = secret
        self.assertEqual(config.read(["bearer_token"])[0]["bearer_token"], "********")
        # even a group granted read access to configurations (a customisation) gets masks only:
        # the encrypted columns stay reserved to administrators
        self.env["ir.model.access"].create({
            "name": "custom read", "model_id": self.env.ref("bj_api_sync.model_bj_api_sync_config").id,
            "group_id": self.env.ref("base.group_user").id, "perm_read": True,
        })
        as_user = config.with_user(self.internal)
        values = as_user.read(["name", "password", "bearer_token", "hmac_secret"])[0]
        self.assertEqual(values["bearer_token"], "********")
        for field in ("password_encrypted", "bearer_token_encrypted", "hmac_secret_encrypted"):
            with self.subTest(field=field), self.assertRaises(AccessError):
                as_user.read([field])
        plain_fields = [name for name, field in self.Config._fields.items()
                        if field.type in ("char", "text", "selection", "html") and not field.groups]
        self.assertNotIn(secret, json.dumps(as_user.read(plain_fields), default=str))
        with self.assertRaises(AccessError):
            as_user.write({"name": "changed"})

    def test_non_administrators_get_nothing_from_any_route(self):
        url = API + "/openapi.json"
        self.assertEqual(self.url_open(url).status_code, 401)
        for login in ("bj_sec_portal", "bj_sec_internal", "bj_sec_manager"):
            with self.subTest(login=login):
                self.authenticate(login, login)
                response = self.url_open(url)
                self.assertEqual(response.status_code, 403)
                self.assertNotIn("paths", response.text)
                response = self.url_open(url + "?endpoint=partners&download=1")
                self.assertEqual(response.status_code, 403)
                # a session is no credential for the inbound API (auth="none" routes with their own auth)
                self.assertError(self.call("GET", "/partners", token=None), 401)
                # nor for the generic ORM routes
                for method in ("search_read", "read"):
                    response = self.url_open(
                        "/web/dataset/call_kw/bj.api.sync.config/%s" % method,
                        data=json.dumps({"jsonrpc": "2.0", "method": "call", "params": {
                            "model": "bj.api.sync.config", "method": method,
                            "args": [[self.partners_config.id]] if method == "read" else [],
                            "kwargs": {"fields": ["bearer_token", "bearer_token_encrypted"]}}}),
                        headers={"Content-Type": "application/json"},
                    )
                    error = response.json().get("error")
                    self.assertTrue(error, response.text[:500])
                    self.assertIn("AccessError", error["data"]["name"])
        self.authenticate("admin", "admin")
        self.assertError(self.call("GET", "/partners", token=None), 401)
        self.assertEqual(self.url_open(url).status_code, 200)

    def test_malformed_input_found_by_the_fuzz_campaign(self):
        """Each of these was a 5xx or an unlogged request before (scripts/fuzz.sh found them)."""
        url = self.base_url() + API
        bearer = {"Authorization": "Bearer demo-token", "Content-Type": "application/json"}
        self._in_config("typed-ep", line_ids=[
            self._line("id", "id", is_record_identifier=True),
            self._line("name", "name"),
            self._line("partner_latitude", "latitude"),
        ])
        admin_partner = self.env.ref("base.user_admin").partner_id
        count = self.Partner.search_count([])
        cases = [
            # (method, path, body, extra headers, expected status)
            ("GET", "/par%00tners", None, {}, 404),  # NUL in the endpoint: was a 500 (query with NUL)
            ("GET", "/partners%00", None, {}, 404),
            ("GET", "/partners/%00", None, {}, 400),  # NUL in the id: the log row could not be written
            ("GET", "/partners?name=a%00b", None, {}, 400),
            ("POST", "/partners", b'{"name": "a\x00b"}', {}, 400),  # raw NUL in the body: unlogged
            ("POST", "/partners", b'{"name": "a\\u0000b"}', {}, 400),  # NUL in a value: an SQL error
            ("DELETE", "/partners", b'{"id": "\\u0000"}', {}, 400),
            ("POST", "/partners", '{"name": "utf16"}'.encode("utf-16"), {}, 201),  # NULs of UTF-16: unlogged
            ("GET", "/partners", None, {"X-Nul": "a\x00b"}, 200),  # NUL in a header: unlogged
            ("POST", "/partners", b'{"name": "idem"}', {"Idempotency-Key": "key\x00"}, 400),  # was a 500
            ("DELETE", "/partners/%d" % admin_partner.id, None, {}, 400),  # RedirectWarning: was a 500
            ("POST", "/typed-ep", b'{"name": "t", "latitude": 1e300}', {}, 400),  # decimal overflow: 500
            ("POST", "/partners", b'{"id": "\\ud800", "name": "t"}', {}, 400),  # lone surrogate quoted back
        ]
        for method, path, body, headers, status in cases:
            with self.subTest(method=method, path=path, body=body), capture_addon_logs():
                logs = self.Log.search_count([])
                response = self.opener.request(method, url + path, data=body, headers=dict(bearer, **headers),
                                               timeout=60)
                self.assertEqual(response.status_code, status, response.text[:500])
                response.json()  # valid JSON, whatever came in
                self.assertEqual(self.Log.search_count([]), logs + 1, "one log row per request")
                self.assertEqual(self.last_log().response_code, status)
        self.assertEqual(self.Partner.search_count([]), count + 1)  # the UTF-16 one
        self.assertTrue(admin_partner.exists())
        self.assertIn("X-Nul: a\\u0000b", self.Log.search([("request_headers", "like", "X-Nul")]).request_headers)
        # a broken chunked body is a 400 (was an OSError out of the controller: 500, no log)
        host, port = self.base_url().split("//")[1].split(":")
        with socket.create_connection((host, int(port)), timeout=30) as sock, capture_addon_logs():
            sock.sendall(b"POST %s/partners HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer demo-token\r\n"
                         b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                         b"zz\r\nabc\r\n0\r\n\r\n" % (API.encode(), host.encode()))
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        self.assertTrue(answer.startswith(b"HTTP/1.1 400"), answer[:300])
        self.assertIn(b"Malformed request body", answer)
        self.assertEqual(self.last_log().response_code, 400)
        # a 204 has no body, hence no Content-Type (werkzeug's default was text/html)
        response = self.opener.options(url + "/partners")
        self.assertEqual(response.status_code, 204)
        self.assertNotIn("Content-Type", response.headers)

    # ---------------------------------------------------------------------------
    # 4. Script sandbox
    # ---------------------------------------------------------------------------
    def test_script_errors_never_reach_the_client(self):
        other = self.Partner.create({"name": "Confidential Other Name"})
        config = self._in_config("sandbox-ep", line_ids=[
            self._line("id", "id", is_record_identifier=True),
            self._line("name", "name"),
            self._line("comment", "leak", value_type="python_plain", script_mode="eval",
                       python_script="int(env['res.partner'].browse(%d).name)" % other.id),
        ])
        with capture_addon_logs():
            response = self.call("GET", "/sandbox-ep/%s" % self.person.id, token=None)
        body = self.assertError(response, 500)
        self.assertEqual(body["line_id"], config.line_ids.filtered(lambda line: line.api_key == "leak").id)
        self.assertIn("leak", body["error"])
        self.assertNotIn("Confidential", response.text)
        self.assertNotIn("invalid literal", response.text)
        log = self.last_log()
        self.assertIn("Confidential Other Name", log.error_message)  # the administrator sees it in the log
        self.assertIn("Traceback", log.error_message)
        # a script's own UserError is its message, for the caller
        config.line_ids.filtered(lambda line: line.api_key == "leak").write({
            "script_mode": "exec",
            "python_script": "raise UserError('Comment is refused by policy')",
        })
        response = self.call("GET", "/sandbox-ep/%s" % self.person.id, token=None)
        self.assertEqual(self.assertError(response, 400)["error"], "Comment is refused by policy")
        # a script returning what JSON cannot carry is a 500, logged, not a crash of the worker
        for code in ("float('nan')", "float('inf')", "{1, 2}", "env['res.partner'].browse(%d)" % other.id):
            with self.subTest(code=code):
                config.line_ids.filtered(lambda line: line.api_key == "leak").write(
                    {"script_mode": "eval", "python_script": code})
                logs = self.Log.search_count([])
                with capture_addon_logs():
                    response = self.call("GET", "/sandbox-ep/%s" % self.person.id, token=None)
                self.assertIn(response.status_code, (200, 500), response.text)
                self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
                self.assertNotIn("Traceback", response.text)
                self.assertNotIn("Confidential", response.text)
                self.assertEqual(self.Log.search_count([]), logs + 1)
                self.assertEqual(self.last_log().response_code, response.status_code)

    def test_access_errors_do_not_name_hidden_records(self):
        hidden = self.Partner.create({"name": "Hidden Parent Corp", "ref": "BJ-HIDDEN", "is_company": True})
        child = self.Partner.create({"name": "Visible Child", "parent_id": hidden.id})
        self.env["ir.rule"].create({
            "name": "bj test: hide one partner",
            "model_id": self.env.ref("base.model_res_partner").id,
            "domain_force": "[('ref', '!=', 'BJ-HIDDEN')]",
        })
        runner = new_test_user(self.env, login="bj_sec_runner", groups="base.group_user,base.group_no_one")
        self._in_config("rule-ep", user_id=runner.id, line_ids=[
            self._line("id", "id", is_record_identifier=True),
            self._line("name", "name"),
            self._line("comment", "parent", value_type="python_plain", script_mode="eval",
                       python_script="record.parent_id.name"),
        ])
        # ?debug=1 turns Odoo's debug mode on for the request: its access errors then list the records
        response = self.call("GET", "/rule-ep/%s?debug=1" % child.id, token=None)
        self.assertError(response, 403)
        self.assertNotIn("Hidden Parent Corp", response.text)
        self.assertIn("Hidden Parent Corp", self.last_log().error_message)

    def test_response_size_is_bounded(self):
        self.env["ir.config_parameter"].sudo().set_param(inbound.MAX_RESPONSE_PARAM, "5000")
        config = self._in_config("big-ep", line_ids=[
            self._line("id", "id", is_record_identifier=True),
            self._line("name", "name"),
            self._line("comment", "blob", value_type="python_plain", script_mode="eval",
                       python_script="'x' * 6000", direction="out"),
        ])
        count = self.Partner.search_count([])
        with capture_addon_logs():
            response = self.call("POST", "/big-ep", {"name": "Too big to answer"}, token=None)
            body = self.assertError(response, 500, "Response too large")
            self.assertIn(inbound.MAX_RESPONSE_PARAM, body["message"])
            self.assertEqual(self.Partner.search_count([]), count, "the write is rolled back with the answer")
            self.assertError(self.call("GET", "/big-ep/%s" % self.person.id, token=None), 500)
        config.line_ids.filtered(lambda line: line.api_key == "blob").python_script = "'x' * 100"
        self.assertStatus(self.call("GET", "/big-ep/%s" % self.person.id, token=None), 200)

    # ---------------------------------------------------------------------------
    # 5. SSRF
    # ---------------------------------------------------------------------------
    def test_ssrf_guard_refuses_private_targets(self):
        with Remote() as remote:
            config = self.Config.create({
                "name": "SSRF probe", "request_type": "out", "url": remote.url("/internal"),
                "model_id": self.env.ref("base.model_res_partner").id, "auth_type": "bearer",
                "bearer_token": "ssrf-token", "http_method_ids": [Command.set([self.methods["POST"].id])],
                "filter_domain": "[('id', '=', %d)]" % self.person.id, "max_retries": 0,
                "line_ids": [self._line("id", "id", is_record_identifier=True)],
            })
            self.env["ir.config_parameter"].sudo().set_param(ALLOWED_HOSTS, False)
            close_clients()
            with capture_addon_logs():
                result = config._make_outbound_http_request(self.person, config.id)
                notification = config.action_test_connection()
            self.assertFalse(result.success)
            self.assertEqual(remote.requests, [], "nothing may reach the private address")
            log = self.env["bj.api.log"].search([("config_id", "=", config.id)], order="id desc", limit=1)
            self.assertIn(ALLOWED_HOSTS, log.error_message)
            self.assertIn("127.0.0.1", log.error_message)
            self.assertEqual(notification["params"]["type"], "danger")
            self.assertIn("SSRF", notification["params"]["message"])
            self.assertIn(ALLOWED_HOSTS, notification["params"]["message"])
            # other private and metadata targets, by literal address and by name; the test runner's own
            # block on non-local requests is lifted so that the guard is what refuses them
            from odoo.tests import common as test_common  # noqa: PLC0415

            passthrough = classmethod(lambda cls, session, request, **kw: test_common._super_send(session, request, **kw))
            self.enterContext(patch.object(type(self), "_request_handler", passthrough))
            for url in ("http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/x", "http://localhost:%d/x"
                        % remote.port, "http://[::1]:%d/x" % remote.port, "http://0.0.0.0:%d/x" % remote.port):
                with self.subTest(url=url):
                    config.url = url
                    self.assertIn("SSRF", config.action_test_connection()["params"]["message"])
            self.assertEqual(remote.requests, [])
            # allowed explicitly: it goes through
            config.url = remote.url("/internal")
            self.env["ir.config_parameter"].sudo().set_param(ALLOWED_HOSTS, "127.0.0.1")
            close_clients()
            remote.answer(204)
            self.assertTrue(config._make_outbound_http_request(self.person, config.id).success)
            self.assertEqual(len(remote.requests), 1)


# ---------------------------------------------------------------------------
# The rate limit counter under real concurrency (own transactions, as in production)
# ---------------------------------------------------------------------------


@tagged("post_install", "-at_install")
class TestSecurityRateLimitRace(BaseCase):
    def setUp(self):
        super().setUp()
        from odoo.tools import config  # noqa: PLC0415

        self.db = sql_db.db_connect(config["db_name"].split(",")[0])
        with self.db.cursor() as cr:
            cr.execute("SELECT res_id FROM ir_model_data WHERE module = 'bj_api_sync' AND name = 'demo_config_public'")
            self.config_id = cr.fetchone()[0]
            cr.execute("DELETE FROM bj_api_rate_limit WHERE config_id = %s", [self.config_id])
        self.addCleanup(self._clean)

    def _clean(self):
        with self.db.cursor() as cr:
            cr.execute("DELETE FROM bj_api_rate_limit WHERE config_id = %s", [self.config_id])

    def test_concurrent_requests_never_exceed_the_limit(self):
        limit, threads, calls = 25, 8, 10
        if time.time() % 60 > 50:  # one window for the whole race
            time.sleep(61 - time.time() % 60)
        with self.db.cursor() as cr:
            counters = api.Environment(cr, 1, {})["bj.api.rate.limit"]  # built here: the runner holds the registry
        accepted, errors = [], []
        barrier = threading.Barrier(threads)

        def worker():
            barrier.wait()
            for _i in range(calls):
                try:
                    # what _consume does outside tests (transaction.detached_env, which cannot run here:
                    # a new Environment waits for the registry the runner holds): a short READ COMMITTED
                    # transaction of its own per request
                    with self.db.cursor() as cr:
                        cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        accepted.append(counters._consume_on(cr, self.config_id, limit) == 0)
                except psycopg2.Error as exc:
                    errors.append(exc)

        with mute_logger("odoo.sql_db"):
            pool = [threading.Thread(target=worker) for _i in range(threads)]
            for thread in pool:
                thread.start()
            for thread in pool:
                thread.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(accepted), threads * calls)
        self.assertEqual(accepted.count(True), limit)
        with self.db.cursor() as cr:
            cr.execute("SELECT hits FROM bj_api_rate_limit WHERE config_id = %s", [self.config_id])
            self.assertEqual(cr.fetchall(), [(limit,)])
