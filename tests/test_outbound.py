"""Outbound sync against real HTTP servers on 127.0.0.1 (tests/http_sink.py), no mocks."""

import base64
import contextlib
import json
import time
import uuid
from unittest.mock import patch

import psycopg2

from odoo import SUPERUSER_ID, Command, api, fields
from odoo.exceptions import UserError
from odoo.tests import tagged

from ..lib import signing
from ..services import log_connection, outbox, push, transaction
from .common import BjCase
from .http_sink import HANG, HttpSink, free_port

DOMAIN = "[('email', '=ilike', '%@bj-out.test')]"


@tagged("post_install", "-at_install")
class TestOutbound(BjCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        cls.Partner = cls.env["res.partner"]
        cls.p1, cls.p2, cls.p3 = cls.partners = cls.Partner.create(
            [
                {"name": "Ann", "email": "ann@bj-out.test"},
                {"name": "Bob", "email": "bob@bj-out.test"},
                {"name": "Cid", "email": "cid@bj-out.test"},
            ]
        )

    def setUp(self):
        super().setUp()
        self.sink = HttpSink(self.respond).start()
        self.addCleanup(self.sink.stop)
        self.replies = None

    def respond(self, received):
        """Default remote: 200 with a remote id per record, or what a test queued."""
        if self.replies:
            return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
        data = received.json()
        if isinstance(data, list):
            return 200, [{"id": "r-%s" % item.get("id")} for item in data]
        if isinstance(data, dict):
            return 201, {"id": "r-%s" % data.get("id"), "status": "created"}
        return 200, {"ok": True}

    # ------------------------------------------------------------------ helpers
    def out_config(self, method="POST", path="/partners", lines=None, **vals):
        defaults = {
            "name": "Out %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "url": self.sink.url(path),
            "http_method_ids": [Command.set([self.methods[method].id])],
            "filter_domain": DOMAIN,
            "retry_backoff": 0,
            "line_ids": lines
            or [
                self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
                self._line("res.partner", "name", "name", sequence=2),
                self._line("res.partner", "email", "email", sequence=3),
            ],
        }
        defaults.update(vals)
        return self._config(**defaults)

    def expected(self, partner):
        return {"id": partner.id, "name": partner.name, "email": partner.email}

    def logs(self, config):
        return self.env["bj.api.log"].search([("config_id", "=", config.id)], order="id")

    # ------------------------------------------------------------------ call styles
    def test_both_call_styles_from_a_server_action(self):
        config = self.out_config()
        action = self.env["ir.actions.server"].create(
            {
                "name": "BJET call styles",
                "model_id": self.partner_model.id,
                "state": "code",
                "code": (
                    "result = env['bj.api.sync.config']._make_outbound_http_request("
                    "record_ids=records, config_id_ref=%(id)d)\n"
                    "if not result.get('success'):\n    raise UserError('keyword style failed')\n"
                    "config = env['bj.api.sync.config'].browse(%(id)d)\n"
                    "response = config._make_outbound_http_request(records, config.id, timeout=60)\n"
                    "if response.status_code != 201:\n    raise UserError('positional style failed')\n"
                    "records.write({'comment': '%%s/%%s' %% (result['sent'], response.sent)})\n"
                )
                % {"id": config.id},
            }
        )
        action.with_context(active_model="res.partner", active_ids=self.p1.ids, active_id=self.p1.id).run()
        self.assertEqual(len(self.sink.requests), 2)
        for received in self.sink.requests:
            self.assertEqual(received.method, "POST")
            self.assertEqual(received.json(), self.expected(self.p1))
        self.assertIn("1/1", self.p1.comment)

    def test_config_id_ref_as_record_and_xmlid(self):
        config = self.out_config()
        self.env["ir.model.data"].create(
            {"module": "bj_test", "name": "out_config", "model": config._name, "res_id": config.id}
        )
        Config = self.env["bj.api.sync.config"]
        self.assertTrue(Config._make_outbound_http_request(record_ids=self.p1, config_id_ref=config).success)
        result = Config._make_outbound_http_request(self.p2, "bj_test.out_config")
        self.assertTrue(result.success)
        self.assertEqual([r.json()["id"] for r in self.sink.requests], [self.p1.id, self.p2.id])
        self.assertEqual(result.response, {"id": "r-%s" % self.p2.id, "status": "created"})
        self.assertEqual(result.status_code, 201)
        # a config that is gone, by id or as a record (a non-admin caller, as in an automation rule)
        gone = self.out_config()
        gone_id = gone.id
        gone.unlink()
        user = self.env["res.users"].create({"name": "Saver", "login": "bj_saver", "groups_id": [
            Command.set([self.env.ref("base.group_user").id])]})
        user_env = self.env(user=user)
        for ref in (gone_id, str(gone_id), Config.browse(gone_id)):
            with self.assertRaisesRegex(UserError, r"API configuration \S*%s\S* does not exist" % gone_id):
                user_env["bj.api.sync.config"]._make_outbound_http_request(self.p1, ref)
        self.assertEqual(len(self.sink.requests), 2)

    def test_cached_settings_follow_every_change_but_not_the_deliveries_own_writes(self):
        """An outbound call takes the configuration's settings from a registry cache."""
        config = self.out_config()
        Config = self.env["bj.api.sync.config"]

        def send(partner):
            self.env.invalidate_all()  # a new transaction's empty cache: the values come from the registry's
            return Config._make_outbound_http_request(partner, config.id)

        self.assertTrue(send(self.p1).success)
        cached = Config._cached_values(config.id)
        # the deliveries' own writes (circuit breaker, scheduled sync) keep it, and are read fresh
        config.write({"consecutive_failures": 2, "last_sync_at": fields.Datetime.now()})
        self.assertIs(Config._cached_values(config.id), cached)
        self.env.invalidate_all()
        self.assertEqual(Config.browse(config.id).consecutive_failures, 2)
        # an edited setting is seen by the next call
        config.url = self.sink.url("/moved")
        self.assertIsNot(Config._cached_values(config.id), cached)
        send(self.p2)
        self.assertEqual(self.sink.requests[-1].path, "/moved")
        # a line added on its own recomputes the stored has_write_back: the cache follows
        self.assertFalse(Config.browse(config.id).has_write_back)
        self.env["bj.api.sync.config.line"].create(
            self._line("res.partner", "ref", "remote_id", direction="in", config_id=config.id)[2]
        )
        self.env.invalidate_all()
        self.assertTrue(Config.browse(config.id).has_write_back)
        config.active = False
        self.assertFalse(send(self.p3).success)
        self.assertEqual(len(self.sink.requests), 2)

    def test_cached_settings_of_a_rolled_back_change_are_forgotten(self):
        """A transaction that changes a configuration and caches the change, then rolls back, leaves no trace."""
        registry = self.env.registry
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            config_id = env["bj.api.sync.config"].create({
                "name": "Rollback %s" % uuid.uuid4().hex[:6], "request_type": "out",
                "url": "https://before.example.com/x", "model_id": self.partner_model.id,
                "http_method_ids": [Command.set([env.ref("bj_api_sync.http_method_post").id])],
            }).id
            cr.commit()  # pylint: disable=invalid-commit

        def remove():
            with registry.cursor() as cr:
                api.Environment(cr, SUPERUSER_ID, {})["bj.api.sync.config"].browse(config_id).unlink()
                cr.commit()  # pylint: disable=invalid-commit

        self.addCleanup(remove)

        def cached_url():
            with registry.cursor() as cr:  # a transaction of its own: sees what is committed
                found, values = api.Environment(cr, SUPERUSER_ID, {})["bj.api.sync.config"]._cached_values(config_id)
                return found and dict(values)["url"]

        self.assertEqual(cached_url(), "https://before.example.com/x")
        with registry.cursor() as cr:
            Config = api.Environment(cr, SUPERUSER_ID, {})["bj.api.sync.config"]
            Config.browse(config_id).url = "https://after.example.com/x"
            self.assertEqual(dict(Config._cached_values(config_id)[1])["url"], "https://after.example.com/x")
            cr.rollback()
        self.assertEqual(cached_url(), "https://before.example.com/x")

    def test_automation_rule_fires_on_partner_write(self):
        config = self.out_config()
        self.env["base.automation"].create(
            {
                "name": "Push partners",
                "model_id": self.partner_model.id,
                "trigger": "on_create_or_write",
                "trigger_field_ids": [Command.set([self._field("res.partner", "name").id])],
                "action_server_ids": [
                    Command.create(
                        {
                            "name": "Push",
                            "model_id": self.partner_model.id,
                            "state": "code",
                            "code": "env['bj.api.sync.config']._make_outbound_http_request("
                            "record_ids=records, config_id_ref=%d)" % config.id,
                        }
                    )
                ],
            }
        )
        self.p2.write({"name": "Bob Renamed"})
        self.assertEqual([r.json() for r in self.sink.requests], [self.expected(self.p2)])
        self.assertEqual(self.sink.requests[0].json()["name"], "Bob Renamed")

    # ------------------------------------------------------------------ payloads
    def test_per_record_payloads_and_headers(self):
        config = self.out_config()
        result = config._make_outbound_http_request(self.partners, config.id)
        self.assertTrue(result.success)
        self.assertEqual((result.sent, result.failed, result.skipped), (3, 0, 0))
        # after the first answer the other requests of the call are in flight together: by id
        received = sorted(self.sink.requests, key=lambda r: r.json()["id"])
        self.assertEqual(len(received), 3)
        for partner, request in zip(self.partners, received):
            body = '{"id":%d,"name":"%s","email":"%s"}' % (partner.id, partner.name, partner.email)
            self.assertEqual(request.body.decode(), body)
            self.assertEqual(request.header("Content-Type"), "application/json")
            self.assertEqual(request.header("User-Agent"), "bj_api_sync/18.0.1.0.0")
            self.assertEqual(str(uuid.UUID(request.header("Idempotency-Key"))), request.header("Idempotency-Key"))
        self.assertEqual(len({r.header("Idempotency-Key") for r in received}), 3)
        logs = self.logs(config)
        self.assertEqual(len(logs), 3)
        self.assertEqual(sorted(result.log_ids), logs.ids)
        self.assertEqual(set(logs.mapped("status")), {"success"})
        self.assertEqual(logs.mapped("res_ids"), [str(p.id) for p in self.partners])
        self.assertEqual(logs[0].res_model, "res.partner")
        self.assertEqual(logs[0].direction, "out")
        self.assertEqual(json.loads(logs[0].request_data), self.expected(self.p1))
        self.assertEqual(logs[0].response_code, 201)

    def test_batch_payloads(self):
        config = self.out_config(is_paginated=True, page_size=2)
        result = config._make_outbound_http_request(self.partners, config.id)
        self.assertTrue(result.success)
        bodies = [r.json() for r in self.sink.requests]
        self.assertEqual(bodies, [[self.expected(self.p1), self.expected(self.p2)], [self.expected(self.p3)]])
        self.assertEqual(result.sent, 3)
        self.assertEqual(len(self.logs(config)), 2)
        # Remote ids from an aligned array response are bound per record.
        bindings = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual(
            {b.res_id: b.external_id for b in bindings}, {p.id: "r-%s" % p.id for p in self.partners}
        )

    def test_filter_domain_and_limit(self):
        outsider = self.Partner.create({"name": "Out of domain", "email": "x@elsewhere.test"})
        config = self.out_config(limit=2)
        result = config._make_outbound_http_request(self.partners | outsider, config.id)
        self.assertEqual((result.sent, result.skipped), (2, 2))
        self.assertEqual([r.json()["id"] for r in self.sink.requests], self.partners[:2].ids)

    def test_url_placeholders(self):
        self.p1.email = "ann smith+x@bj-out.test"
        config = self.out_config(method="PUT", path="/people/{email}/x/{id}", is_paginated=True, page_size=100)
        config._make_outbound_http_request(self.p1 | self.p2, config.id)
        paths = [r.path for r in self.sink.requests]
        self.assertEqual(
            paths,
            [
                "/people/ann%%20smith%%2Bx%%40bj-out.test/x/%d" % self.p1.id,
                "/people/bob%%40bj-out.test/x/%d" % self.p2.id,
            ],
        )
        # a placeholder forces one object per request even when paginated
        self.assertEqual(self.sink.requests[0].json(), self.expected(self.p1))

    def test_get_and_delete_send_no_body(self):
        config = self.out_config(method="DELETE", path="/people/{id}")
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertTrue(result.success)
        (request,) = self.sink.requests
        self.assertEqual((request.method, request.path, request.body), ("DELETE", "/people/%d" % self.p1.id, b""))
        self.assertIsNone(request.header("Content-Type"))

    def test_missing_placeholder_value_fails_that_record_only(self):
        self.p2.email = False
        config = self.out_config(path="/people/{email}", filter_domain="[]")
        result = config._make_outbound_http_request(self.p1 | self.p2, config.id)
        self.assertEqual((result.sent, result.failed), (1, 1))
        self.assertFalse(result.success)
        error = self.logs(config).filtered(lambda log: log.status == "error")
        self.assertEqual(error.res_ids, str(self.p2.id))
        self.assertIn("{email}", error.error_message)

    # ------------------------------------------------------------------ auth
    def test_basic_auth(self):
        config = self.out_config(auth_type="basic", login="user", password="pa:ss")
        config._make_outbound_http_request(self.p1, config.id)
        expected = "Basic " + base64.b64encode(b"user:pa:ss").decode()
        self.assertEqual(self.sink.requests[0].header("Authorization"), expected)
        self.assertIn('"Authorization": "***"', self.logs(config).request_headers)
        self.assertNotIn("pa:ss", self.logs(config).request_headers)

    def test_bearer_auth(self):
        config = self.out_config(auth_type="bearer", bearer_token="Bearer tok-123")
        config._make_outbound_http_request(self.p1, config.id)
        self.assertEqual(self.sink.requests[0].header("Authorization"), "Bearer tok-123")
        self.assertNotIn("tok-123", self.logs(config).request_headers)

    def test_hmac_signature_verifies(self):
        secret = signing.generate_secret()
        config = self.out_config(auth_type="hmac", hmac_secret=secret, is_paginated=True)
        config._make_outbound_http_request(self.partners, config.id)
        (request,) = self.sink.requests
        signing.verify(secret, request.headers, request.body)  # raises when wrong
        self.assertEqual(request.header("webhook-id"), request.header("Idempotency-Key"))
        with self.assertRaises(signing.SignatureError):
            signing.verify(secret, request.headers, request.body + b" ")
        self.assertNotIn(request.header("webhook-signature"), self.logs(config).request_headers)

    def test_custom_header_rows(self):
        config = self.out_config(
            header_ids=[
                Command.create({"key": "X-Client-Id", "value": "odoo-integration"}),
                Command.create({"key": "X-API-Key", "value": "k-secret", "secret": True}),
                Command.create({"key": "X-Custom-Token", "value": "hidden", "secret": True}),
                Command.create({"key": "content-type", "value": "application/json; charset=utf-8"}),
            ]
        )
        config._make_outbound_http_request(self.p1, config.id)
        request = self.sink.requests[0]
        self.assertEqual(request.header("X-Client-Id"), "odoo-integration")
        self.assertEqual(request.header("X-API-Key"), "k-secret")
        self.assertEqual(request.header("X-Custom-Token"), "hidden")
        self.assertEqual(request.header("Content-Type"), "application/json; charset=utf-8")
        self.assertEqual(len([k for k, _v in request.raw_headers if k.lower() == "content-type"]), 1)
        logged = json.loads(self.logs(config).request_headers)
        self.assertEqual(logged["X-Client-Id"], "odoo-integration")
        self.assertEqual((logged["X-API-Key"], logged["X-Custom-Token"]), ("***", "***"))

    def test_hmac_without_secret_fails_cleanly(self):
        config = self.out_config(auth_type="hmac")
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertFalse(result.success)
        self.assertEqual(result.failed, 1)
        self.assertIn("HMAC", result.message)
        self.assertFalse(self.sink.requests)
        self.assertEqual(self.logs(config).status, "error")

    # ------------------------------------------------------------------ retries & failures
    def test_500_500_200_three_attempts(self):
        self.replies = [(500, "boom"), (500, "boom"), (200, {"id": "r-1"})]
        config = self.out_config(max_retries=3, retry_backoff=0)
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertTrue(result.success)
        self.assertEqual(result.status_code, 200)
        self.assertEqual(len(self.sink.requests), 3)
        self.assertEqual(len({r.header("Idempotency-Key") for r in self.sink.requests}), 1)
        self.assertEqual(len({r.body for r in self.sink.requests}), 1)
        logs = self.logs(config)
        self.assertEqual(logs.mapped("attempt"), [1, 2, 3])
        self.assertEqual(logs.mapped("status"), ["retrying", "retrying", "success"])
        self.assertEqual(logs.mapped("response_code"), [500, 500, 200])
        self.assertEqual(sorted(result.log_ids), logs.ids)

    def test_429_retry_after_is_honoured(self):
        self.replies = [(429, "slow down", {"Retry-After": "1"}), (200, {"id": "r"})]
        config = self.out_config(max_retries=3, retry_backoff=0)
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertTrue(result.success)
        first, second = self.sink.requests
        self.assertGreaterEqual(second.at - first.at, 0.95)
        self.assertEqual(self.logs(config).mapped("status"), ["retrying", "success"])

    def test_read_timeout_is_408_in_bounded_time(self):
        self.replies = [HANG]
        config = self.out_config(max_retries=0, read_timeout=30)
        started = time.monotonic()
        result = config._make_outbound_http_request(self.p1, config.id, timeout=1)  # timeout= overrides read
        self.assertLess(time.monotonic() - started, 5)
        self.assertFalse(result.success)
        self.assertEqual(result.status_code, 408)
        log = self.logs(config)
        self.assertEqual((log.response_code, log.status), (408, "error"))

    def test_400_is_not_retried(self):
        self.replies = [(400, {"error": "bad email"})]
        config = self.out_config(max_retries=3)
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertEqual(len(self.sink.requests), 1)
        self.assertFalse(result.success)
        self.assertEqual((result.status_code, result.response, result.failed), (400, {"error": "bad email"}, 1))
        self.assertEqual(self.logs(config).status, "error")

    def test_bad_record_does_not_stop_the_others(self):
        lines = [
            self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
            self._line(
                "res.partner",
                "name",
                "name",
                sequence=2,
                value_type="python_plain",
                script_mode="eval",
                python_script="record.name if record.name != 'Bob' else 1 / 0",
            ),
        ]
        config = self.out_config(lines=lines, is_paginated=True, page_size=10)
        result = config._make_outbound_http_request(self.partners, config.id)
        self.assertEqual((result.sent, result.failed), (2, 1))
        self.assertFalse(result.success)
        (request,) = self.sink.requests
        self.assertEqual(request.json(), [{"id": p.id, "name": p.name} for p in (self.p1, self.p3)])
        error = self.logs(config).filtered(lambda log: log.status == "error")
        self.assertEqual(error.res_ids, str(self.p2.id))
        self.assertIn("ZeroDivisionError", error.error_message)

    def test_script_log_messages_reach_the_request_log(self):
        lines = [
            self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
            self._line(
                "res.partner", "name", "name", sequence=2, value_type="python_plain", script_mode="eval",
                python_script="log('built %s' % record.name) or record.name.upper()",
            ),
        ]
        config = self.out_config(lines=lines)
        result = config._make_outbound_http_request(self.p1 | self.p2, config.id)
        self.assertTrue(result.success)
        self.assertEqual([r.json()["name"] for r in self.sink.requests], [self.p1.name.upper(), self.p2.name.upper()])
        logs = self.logs(config)
        self.assertEqual(len(logs), 2)
        for log in logs:
            self.assertIn("built %s" % self.p1.name, log.script_messages)
            self.assertIn("built %s" % self.p2.name, log.script_messages)
        # a batch that failed and was serialized again record by record does not repeat them
        lines[1][2]["python_script"] = "log('try %s' % record.name) or (record.name if record.name != 'Bob' else 1 / 0)"
        config = self.out_config(lines=lines, is_paginated=True, page_size=10)
        config._make_outbound_http_request(self.partners, config.id)
        sent = self.logs(config).filtered(lambda log: log.status == "success")
        self.assertEqual(sent.script_messages.count("try %s" % self.p1.name), 1)

    def test_a_response_with_nul_bytes_is_logged_not_fatal(self):
        # PostgreSQL text cannot hold NUL: the log row must not fail (and the caller's save with it)
        self.sink.responder = lambda received: (200, b"ok\x00binary\x00", {"X-Trace": "abc"})
        config = self.out_config()
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertTrue(result.success)
        log = self.logs(config)
        self.assertEqual(log.status, "success")
        self.assertEqual(log.response_data, "ok\\u0000binary\\u0000")
        # an identifier with NUL in the answer is no identifier: the binding keeps none
        self.sink.responder = lambda received: (201, {"id": "ext\u0000id"})
        result = config._make_outbound_http_request(self.p2, config.id)
        self.assertTrue(result.success)
        binding = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id), ("res_id", "=", self.p2.id)])
        self.assertTrue(binding)
        self.assertFalse(binding.external_id)
        # an error answer too
        self.sink.responder = lambda received: (500, b"down\x00")
        config = self.out_config(max_retries=0)
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertFalse(result.success)
        self.assertEqual((self.logs(config).status, self.logs(config).response_data), ("error", "down\\u0000"))

    def test_failed_request_does_not_stop_the_others(self):
        def respond(received):
            return (503, "down") if received.json()["name"] == "Bob" else (200, {"id": 1})

        self.sink.responder = respond
        config = self.out_config(max_retries=1)
        result = config._make_outbound_http_request(self.partners, config.id)
        self.assertEqual((result.sent, result.failed), (2, 1))
        self.assertEqual(result.status_code, 503)  # the failure is what status_code reports
        self.assertEqual(len(self.sink.requests), 4)

    def test_ssrf_guard_refuses_without_allow_list(self):
        self.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", False)
        config = self.out_config()
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertFalse(result.success)
        self.assertFalse(self.sink.requests)
        self.assertIn("Refusing to call", result.response)
        self.assertIn("bj_api_sync.allowed_hosts", self.logs(config).error_message)
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["type"], "danger")
        self.assertIn("SSRF", notification["params"]["message"])

    def test_paused_and_archived_send_nothing(self):
        config = self.out_config(paused=True)
        result = config._make_outbound_http_request(self.partners, config.id)
        self.assertFalse(result.success)
        self.assertEqual((result.sent, result.skipped), (0, 3))
        self.assertIn("paused", result.message)
        self.assertEqual(self.logs(config).status, "skipped")
        config.write({"paused": False, "active": False})
        self.assertIn("archived", config._make_outbound_http_request(self.partners, config.id).message)
        self.assertFalse(self.sink.requests)

    def test_log_payloads_off_keeps_metadata_only(self):
        config = self.out_config(log_payloads=False)
        config._make_outbound_http_request(self.p1, config.id)
        log = self.logs(config)
        self.assertFalse(log.request_data)
        self.assertFalse(log.response_data)
        self.assertEqual(log.response_code, 201)

    # ------------------------------------------------------------------ pull
    def remote_list(self, total=1000):
        items = [
            {"code": "R%04d" % i, "name": "Remote %d" % i, "email": "r%d@bj-out.test" % i} for i in range(total)
        ]

        def respond(received):
            limit = int(received.query.get("limit", total))
            offset = int(received.query.get("offset", 0))
            return 200, {"data": items[offset : offset + limit], "total": total}

        return respond

    def pull_lines(self):
        return [
            self._line("res.partner", "ref", "code", is_record_identifier=True, sequence=1),
            self._line("res.partner", "name", "name", sequence=2),
            self._line("res.partner", "email", "email", sequence=3),
        ]

    def test_pull_paginated_list_twice_without_duplicates(self):
        self.sink.responder = self.remote_list(1000)
        config = self.out_config(
            method="GET",
            lines=self.pull_lines(),
            is_paginated=True,
            page_size=100,
            limit=0,
            response_root="data",
            filter_domain="[]",
        )
        first = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertTrue(first.success, first.message)
        self.assertEqual((first.received, first.created, first.updated), (1000, 1000, 0))
        self.assertEqual(len(self.sink.requests), 11)  # 10 full pages, then an empty one
        self.assertEqual(
            [(r.query["limit"], r.query["offset"]) for r in self.sink.requests[:3]],
            [("100", "0"), ("100", "100"), ("100", "200")],
        )
        second = push.cron_sync(config)
        self.assertEqual((second.created, second.updated), (0, 1000))
        pulled = self.Partner.search([("ref", "=like", "R%"), ("email", "=like", "r%@bj-out.test")])
        self.assertEqual(len(pulled), 1000)
        self.assertEqual(len(set(pulled.mapped("ref"))), 1000)
        self.assertEqual(pulled.filtered(lambda p: p.ref == "R0042").name, "Remote 42")
        self.assertEqual(len(self.logs(config)), 22)  # one per page and run

    def test_pull_respects_limit(self):
        self.sink.responder = self.remote_list(50)
        config = self.out_config(
            method="GET", lines=self.pull_lines(), is_paginated=True, page_size=20, limit=30,
            response_root="data", filter_domain="[]",
        )
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual(result.created, 30)
        self.assertEqual([r.query["limit"] for r in self.sink.requests], ["20", "10"])

    def test_pull_one_record_per_placeholder(self):
        self.p1.ref = "C-1"
        self.sink.responder = lambda received: (200, {"code": "C-1", "name": "Fresh from remote"})
        config = self.out_config(method="GET", path="/customers/{code}", lines=self.pull_lines())
        result = config._make_outbound_http_request(self.p1, config.id)
        self.assertTrue(result.success, result.message)
        self.assertEqual(self.sink.requests[0].path, "/customers/C-1")
        self.assertEqual(self.p1.name, "Fresh from remote")
        self.assertEqual(self.p1.email, "ann@bj-out.test")  # absent key: untouched

    def test_pull_bad_item_does_not_stop_the_page(self):
        items = [{"code": "B1", "name": "Good"}, {"code": "B2", "name": 42}, {"code": "B3", "name": "Fine"}]
        self.sink.responder = lambda received: (200, items)
        config = self.out_config(method="GET", lines=self.pull_lines(), filter_domain="[]", limit=0)
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual((result.created, result.failed), (2, 1))
        self.assertEqual(self.logs(config).status, "error")
        self.assertIn("[1]", self.logs(config).error_message)
        self.assertEqual(len(self.Partner.search([("ref", "in", ["B1", "B2", "B3"])])), 2)
        # a NUL character (JSON "\u0000") cannot be stored: that item fails, named, the others are kept
        items = [{"code": "N1", "name": "Nul\u0000led"}, {"code": "N2", "name": "Clean"}]
        self.sink.responder = lambda received: (200, items)
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual((result.created, result.failed), (1, 1))
        self.assertEqual(self.Partner.search([("ref", "in", ["N1", "N2"])]).mapped("name"), ["Clean"])

    # ------------------------------------------------------------------ scheduled sync & bindings
    def test_cron_sync_skips_unchanged_records(self):
        config = self.out_config(is_paginated=True, page_size=2)
        first = push.cron_sync(config)
        self.assertEqual((first.sent, first.skipped), (3, 0))
        self.assertEqual(len(self.sink.requests), 2)
        bindings = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual(len(bindings), 3)
        self.assertTrue(all(len(b.payload_hash) == 64 for b in bindings))
        second = push.cron_sync(config)
        self.assertEqual((second.sent, second.skipped), (0, 3))
        self.assertEqual(len(self.sink.requests), 2)
        self.p3.name = "Cid Changed"
        third = push.cron_sync(config)
        self.assertEqual((third.sent, third.skipped), (1, 2))
        self.assertEqual(self.sink.requests[-1].json(), [self.expected(self.p3)])

    def test_cron_sync_batches_and_limit(self):
        many = self.Partner.create([{"name": "M%d" % i, "email": "m%d@bj-out.test" % i} for i in range(1200)])
        config = self.out_config(is_paginated=True, page_size=100, limit=0)
        result = push.cron_sync(config)
        self.assertEqual(result.sent, 1203)
        self.assertEqual(len(self.sink.requests), 13)
        # pages of a batch are in flight together (Max Parallel Requests): each page is an id
        # range, the pages cover every record once, and batches follow each other in id order
        pages = [[item["id"] for item in r.json()] for r in self.sink.requests]
        self.assertTrue(all(page == sorted(page) for page in pages))
        sent_ids = sorted(i for page in pages for i in page)
        self.assertEqual(sent_ids, sorted((many | self.partners).ids))
        batches = [sorted(i for page in pages[k:k + 5] for i in page) for k in range(0, len(pages), 5)]
        self.assertEqual([i for batch in batches for i in batch], sent_ids)
        many[:5].write({"phone": "1"})  # not mapped: payload unchanged
        many[5:10].write({"name": "changed"})
        config.limit = 3
        capped = push.cron_sync(config)
        self.assertEqual(capped.sent, 3)  # the cap counts records sent, not records skipped

    def test_post_binding_stores_remote_id(self):
        config = self.out_config()
        config._make_outbound_http_request(self.p1, config.id)
        binding = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual((binding.res_id, binding.external_id), (self.p1.id, "r-%s" % self.p1.id))
        self.assertEqual(binding.payload_hash, self.env["bj.api.sync.binding"]._payload_hash(self.expected(self.p1)))

    # ------------------------------------------------------------------ triggers
    def test_create_trigger_cron(self):
        config = self.out_config(trigger_model="ir.cron")
        notification = config.action_create_trigger()
        self.assertEqual(notification["params"]["type"], "success")
        cron = self.env["ir.cron"].browse(config.trigger_action_id)
        self.assertEqual(cron.code, "model._cron_sync(%d)" % config.id)
        self.assertEqual(cron.model_id.model, "bj.api.sync.config")
        self.assertEqual((cron.interval_number, cron.interval_type), (1, "hours"))
        cron.method_direct_trigger()
        self.assertEqual(len(self.sink.requests), 3)
        progress = self.env["ir.cron.progress"].search([("cron_id", "=", cron.id)], order="id desc", limit=1)
        self.assertEqual((progress.done, progress.remaining), (3, 0))
        # Pressing again updates the same cron instead of piling up new ones.
        config.action_create_trigger()
        self.assertEqual(config.trigger_action_id, cron.id)

    def test_create_trigger_automation(self):
        config = self.out_config(trigger_model="base.automation")
        config.action_create_trigger()
        automation = self.env["base.automation"].browse(config.trigger_action_id)
        self.assertEqual(automation.trigger, "on_create_or_write")
        self.assertEqual(set(automation.trigger_field_ids.mapped("name")), {"name", "email"})
        self.assertEqual(automation.model_id, self.partner_model)
        self.p3.write({"name": "Cid via automation"})
        self.assertEqual([r.json() for r in self.sink.requests], [self.expected(self.p3)])
        new = self.Partner.create({"name": "Dee", "email": "dee@bj-out.test"})
        self.assertEqual(self.sink.requests[-1].json(), self.expected(new))

    def test_create_trigger_server_action(self):
        config = self.out_config(trigger_model="ir.actions.server", name="CRM")
        config.action_create_trigger()
        action = self.env["ir.actions.server"].browse(config.trigger_action_id)
        self.assertEqual(action.name, "Send to CRM")
        self.assertEqual(action.binding_model_id, self.partner_model)
        action.with_context(active_model="res.partner", active_ids=(self.p1 | self.p2).ids).run()
        self.assertEqual([r.json() for r in self.sink.requests], [self.expected(self.p1), self.expected(self.p2)])

    def test_run_now(self):
        config = self.out_config()
        notification = config.action_run_now()
        self.assertEqual(notification["params"]["type"], "success")
        self.assertIn("3 sent", notification["params"]["message"])

    # ------------------------------------------------------------------ buttons
    def test_connection_up_uses_head_with_auth(self):
        config = self.out_config(auth_type="bearer", bearer_token="t0k")
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["type"], "success", notification)
        self.assertIn("HTTP 200", notification["params"]["message"])
        self.assertRegex(notification["params"]["message"], r"\d+ ms")
        (request,) = self.sink.requests
        self.assertEqual((request.method, request.body), ("HEAD", b""))
        self.assertEqual(request.header("Authorization"), "Bearer t0k")
        self.assertEqual(self.logs(config).method, "HEAD")

    def test_connection_falls_back_to_get_on_405(self):
        self.sink.responder = lambda received: 405 if received.method == "HEAD" else (200, {"ok": True})
        config = self.out_config(path="/items/{id}")
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["type"], "success")
        self.assertEqual([(r.method, r.path) for r in self.sink.requests], [("HEAD", "/items/"), ("GET", "/items/")])

    def test_connection_401_and_down(self):
        self.sink.responder = lambda received: 401
        config = self.out_config()
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["type"], "warning")
        self.assertIn("401", notification["params"]["message"])
        config.url = "http://127.0.0.1:%d/x" % free_port()
        notification = config.action_test_connection()
        self.assertEqual(notification["params"]["type"], "danger")
        self.assertIn("refused", notification["params"]["message"].lower())
        self.assertEqual(self.logs(config)[-1].status, "error")

    def test_preview_payload_sends_nothing(self):
        config = self.out_config()
        notification = config.action_preview_payload()
        message = notification["params"]["message"]
        self.assertIn("POST %s" % config.url, message)
        self.assertEqual(json.loads(message[message.index("{") :]), self.expected(self.p1))
        self.assertFalse(self.sink.requests)

    # ------------------------------------------------------------------ queued seam
    def test_queued_delivery_uses_the_same_request(self):
        config = self.out_config(delivery="queued", auth_type="bearer", bearer_token="q-tok")
        result = config._make_outbound_http_request(self.p1 | self.p2, config.id)
        self.assertEqual((result.status_code, result.sent), (202, 2))
        jobs = self.env["bj.api.sync.job"].browse(result.job_ids)
        self.assertEqual(len(jobs), 2)
        self.assertEqual(jobs.mapped("state"), ["pending", "pending"])
        self.assertEqual(json.loads(jobs[0].payload), self.expected(self.p1))
        self.assertFalse(self.sink.requests)
        # What the outbox worker calls for each claimed job: one attempt, fresh auth headers.
        outcome = outbox.deliver_job(jobs[0], attempt=2)
        self.assertTrue(outcome["ok"])
        (request,) = self.sink.requests
        self.assertEqual(request.header("Idempotency-Key"), jobs[0].idempotency_key)
        self.assertEqual(request.header("Authorization"), "Bearer q-tok")
        self.assertEqual(request.json(), self.expected(self.p1))
        log = self.logs(config)
        self.assertEqual((log.job_id, log.attempt, log.status), (jobs[0], 2, "success"))
        binding = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual((binding.res_id, binding.external_id), (self.p1.id, "r-%s" % self.p1.id))
        self.replies = [(503, "later", {"Retry-After": "7"})]
        outcome = outbox.deliver_job(jobs[1], attempt=1)
        self.assertEqual((outcome["ok"], outcome["status"], outcome["retryable"]), (False, 503, True))
        self.assertEqual(outcome["retry_after"], 7)
        self.assertEqual(len(self.sink.requests), 2)  # the worker, not deliver_job, schedules retries

    def test_queued_scheduled_sync_skips_what_it_queued(self):
        config = self.out_config(delivery="queued", is_paginated=True, page_size=2)
        first = push.cron_sync(config)
        self.assertEqual((first.sent, first.status_code, len(first.job_ids)), (3, 202, 2))
        jobs = self.env["bj.api.sync.job"].browse(first.job_ids)
        self.assertEqual([len(json.loads(job.payload)) for job in jobs], [2, 1])
        second = push.cron_sync(config)
        self.assertEqual((second.sent, second.skipped, second.job_ids), (0, 3, []))
        self.assertFalse(self.sink.requests)

    def test_detached_log_write_outside_tests(self):
        """Outside tests a log row commits at once on the log connection, else through a detached cursor."""
        self.addCleanup(log_connection.close_all)
        Log = self.env["bj.api.log"].sudo()
        vals = {"direction": "out", "method": "POST", "url": "https://bj-out.test/x", "status": "success",
                "request_data": "a\x00b", "duration_ms": 7}  # no config: another connection cannot see this test's
        with patch.object(transaction, "under_test", return_value=False):
            log = Log._write_detached([dict(vals)])
        self.assertTrue(log.id)
        dbname = self.env.cr.dbname
        with log_connection.cursor(dbname) as cr:  # committed: another connection sees it
            cr.execute("SELECT name, request_data, duration_ms, create_uid FROM bj_api_log WHERE id = %s", [log.id])
            row = cr.fetchone()
            cr.execute("DELETE FROM bj_api_log WHERE id = %s", [log.id])
        self.assertEqual(row, ("POST https://bj-out.test/x", "a\\u0000b", 7, self.env.uid))

        @contextlib.contextmanager
        def broken(dbname, params=None):
            raise psycopg2.OperationalError("down")
            yield

        with patch.object(transaction, "under_test", return_value=False), \
                patch.object(log_connection, "cursor", broken):
            fallback = Log._write_detached([dict(vals)])  # the detached cursor (a real one: committed)
        with log_connection.cursor(dbname) as cr:
            cr.execute("DELETE FROM bj_api_log WHERE id = %s RETURNING name", [fallback.id])
            self.assertEqual(cr.fetchall(), [("POST https://bj-out.test/x",)])
