"""Outbound against remotes shaped like real APIs (tests/remote_servers.py), over real sockets.

Pagination styles, OAuth2 client credentials, incremental pull, write-back and deletes.
"""

import json
import threading
import time
import uuid
from datetime import timedelta

from odoo import Command, api, fields
from odoo.exceptions import ValidationError
from odoo.tests import Form, tagged
from odoo.tools import SQL

from ..services import oauth2, outbox, push
from . import remote_servers as remote
from .common import BjCase
from .http_sink import HttpSink, free_port


class RemoteCase(BjCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        cls.Partner = cls.env["res.partner"]

    def serve(self, responder):
        sink = HttpSink(responder).start()
        self.addCleanup(sink.stop)
        return sink

    def logs(self, config):
        return self.env["bj.api.log"].search([("config_id", "=", config.id)], order="id")

    def pull_lines(self):
        return [
            self._line("res.partner", "ref", "code", is_record_identifier=True, sequence=1),
            self._line("res.partner", "name", "name", sequence=2),
            self._line("res.partner", "email", "email", sequence=3),
        ]

    def pull_config(self, sink, path="/items", **vals):
        defaults = {
            "name": "Pull %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "url": sink.url(path),
            "http_method_ids": [Command.set([self.methods["GET"].id])],
            "filter_domain": "[]",
            "retry_backoff": 0,
            "max_retries": 0,
            "limit": 0,
            "is_paginated": True,
            "line_ids": self.pull_lines(),
        }
        defaults.update(vals)
        return self._config(**defaults)

    def pulled(self, prefix="R"):
        return self.Partner.search([("ref", "=like", prefix + "%"), ("email", "=like", "%@bj-rem.test")])


@tagged("post_install", "-at_install")
class TestPagination(RemoteCase):
    def assertPulled(self, result, count, prefix="R"):
        self.assertTrue(result.success, result.message)
        self.assertEqual((result.received, result.created), (count, count))
        partners = self.pulled(prefix)
        self.assertEqual(len(partners), count)
        self.assertEqual(len(set(partners.mapped("ref"))), count)

    def test_offset_is_the_default(self):
        sink = self.serve(remote.offset_api(remote.items_of(25)))
        config = self.pull_config(sink, page_size=10, response_root="data")
        self.assertEqual(config.pagination_style, "offset")
        self.assertEqual((config.size_param, config.offset_param), ("limit", "offset"))
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 25)
        self.assertEqual([(r.query["limit"], r.query["offset"]) for r in sink.requests],
                         [("10", "0"), ("10", "10"), ("10", "20")])
        self.assertEqual(len(self.logs(config)), 3)  # one log row per page

    def test_a_json_server_reads_limit_offset_as_filters(self):
        """The bug of the issue: Limit / Offset against a _page/_limit server pulls nothing."""
        sink = self.serve(remote.link_api(remote.items_of(7)))
        config = self.pull_config(sink, page_size=3)
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual(result.received, 0)
        config.write({"pagination_style": "link", "size_param": "_limit", "page_param": "_page"})
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 7)

    def test_page_number(self):
        sink = self.serve(remote.page_api(remote.items_of(23)))
        config = self.pull_config(sink, path="/wp-json/wc/v3/customers", page_size=10,
                                  pagination_style="page", size_param="per_page")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 23)
        self.assertEqual([(r.query["page"], r.query["per_page"]) for r in sink.requests],
                         [("1", "10"), ("2", "10"), ("3", "10")])  # the third is short: the end
        # an exact multiple ends on the empty page after it
        sink = self.serve(remote.page_api(remote.items_of(20, prefix="P")))
        config = self.pull_config(sink, page_size=10, pagination_style="page", size_param="per_page")
        self.assertPulled(config._make_outbound_http_request(config_id_ref=config.id), 20, prefix="P")
        self.assertEqual([r.query["page"] for r in sink.requests], ["1", "2", "3"])

    def test_link_header(self):
        # json-server filters by any other parameter: the Request URL's own query is kept on page 1,
        # then the Link header's next URLs are followed as given
        sink = self.serve(remote.link_api(remote.items_of(11, active=True) + remote.items_of(3, prefix="X")))
        config = self.pull_config(sink, path="/posts?active=True", page_size=4, pagination_style="link",
                                  size_param="_limit", page_param="_page")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 11)
        self.assertEqual([(r.query["_page"], r.query["_limit"], r.query["active"]) for r in sink.requests],
                         [("1", "4", "True"), ("2", "4", "True"), ("3", "4", "True")])
        self.assertEqual(len(self.logs(config)), 3)

    def test_link_header_with_limit(self):
        sink = self.serve(remote.link_api(remote.items_of(30)))
        config = self.pull_config(sink, page_size=4, pagination_style="link", size_param="_limit",
                                  page_param="_page", limit=6)
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 6)
        self.assertEqual(len(sink.requests), 2)  # Limit still caps the items of a run

    def test_cursor(self):
        sink = self.serve(remote.cursor_api(remote.items_of(12)))
        config = self.pull_config(sink, path="/crm/v3/objects/contacts", page_size=5, pagination_style="cursor",
                                  cursor_param="after", cursor_path="paging.next.after", response_root="results")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 12)
        self.assertEqual([r.query.get("after") is None for r in sink.requests], [True, False, False])
        self.assertEqual({r.query["limit"] for r in sink.requests}, {"5"})

    def test_next_url_in_body(self):
        sink = self.serve(remote.next_url_api(remote.items_of(9)))
        config = self.pull_config(sink, path="/v1.0/users", page_size=4, pagination_style="next_url",
                                  size_param="$top", next_url_path="@odata.nextLink", response_root="value")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertPulled(result, 9)
        self.assertEqual([r.query.get("$skiptoken") for r in sink.requests], [None, "4", "8"])
        # a scheduled run pulls again: same records, updated, none duplicated
        second = push.cron_sync(config)
        self.assertEqual((second.created, second.updated), (0, 9))
        self.assertEqual(len(self.pulled()), 9)

    def test_a_loop_stops_with_an_error(self):
        sink = self.serve(remote.loop_api(remote.items_of(2)))
        config = self.pull_config(sink, pagination_style="next_url", next_url_path="links.next", size_param="",
                                  response_root="value")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertFalse(result.success)
        self.assertIn("Pagination loop", result.message + str(result.response))
        self.assertEqual(len(sink.requests), 2)  # the first page, then ?p=2 which points at itself
        self.assertEqual(len(self.pulled()), 2)  # what was received is kept
        error = self.logs(config).filtered(lambda log: log.status == "error")
        self.assertEqual(len(error), 1)
        self.assertIn("?p=2", error.error_message)

    def test_a_next_page_on_another_host_is_not_followed(self):
        sink = self.serve(lambda received: (200, {"value": remote.items_of(2),
                                                  "next": "http://localhost:%s/steal" % received.header("Host")
                                                  .split(":")[1]}))
        config = self.pull_config(sink, pagination_style="next_url", next_url_path="next", size_param="",
                                  response_root="value", auth_type="bearer", bearer_token="secret-token")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertFalse(result.success)
        self.assertEqual(len(sink.requests), 1)
        self.assertIn("another host", self.logs(config)[-1].error_message)
        self.assertIn("would not be followed", config.action_test_connection()["params"]["message"])

    def test_dotted_response_root(self):
        sink = self.serve(lambda received: (200, {"data": {"items": remote.items_of(3)}}))
        config = self.pull_config(sink, is_paginated=False, response_root="data.items")
        self.assertPulled(config._make_outbound_http_request(config_id_ref=config.id), 3)
        config.response_root = "data.nothing"
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertFalse(result.success)
        self.assertIn("data.nothing", self.logs(config)[-1].error_message)

    def test_not_paginated_is_one_request_whatever_the_style(self):
        sink = self.serve(remote.link_api(remote.items_of(25)))
        config = self.pull_config(sink, is_paginated=False, pagination_style="link")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual((result.received, len(sink.requests)), (10, 1))
        self.assertEqual(sink.requests[0].query, {})

    def test_connection_gets_the_first_page_and_writes_nothing(self):
        sink = self.serve(remote.cursor_api(remote.items_of(12)))
        config = self.pull_config(sink, page_size=5, pagination_style="cursor", cursor_param="after",
                                  cursor_path="paging.next.after", response_root="results")
        notification = config.action_test_connection()
        params = notification["params"]
        self.assertEqual(params["type"], "success", params)
        self.assertIn("5 item(s)", params["message"])
        self.assertIn("Next page: %s" % sink.url("/items?limit=5&after="), params["message"])
        (request,) = sink.requests
        self.assertEqual((request.method, request.query), ("GET", {"limit": "5"}))
        self.assertFalse(self.pulled())
        config.response_root = "data"
        params = config.action_test_connection()["params"]
        self.assertEqual(params["type"], "warning")
        self.assertIn("Response Root", params["message"])
        config.write({"response_root": "results", "is_paginated": False})
        self.assertNotIn("Next page", config.action_test_connection()["params"]["message"])


@tagged("post_install", "-at_install")
class TestIncrementalPull(RemoteCase):
    FORMAT = "%Y-%m-%dT%H:%M:%SZ"

    def item(self, code, name, updated_at):
        return {"code": code, "name": name, "email": "%s@bj-rem.test" % code.lower(), "updated_at": updated_at}

    def versions(self, partners):
        """The row versions (ctid) of ``partners``: an UPDATE, even in this transaction, makes a new one."""
        self.env.flush_all()
        self.env.cr.execute("SELECT id, ctid::text FROM res_partner WHERE id IN %s", [tuple(partners.ids)])
        return dict(self.env.cr.fetchall())

    def test_last_sync_with_overlap_loses_no_boundary_row(self):
        old = "2024-01-01T00:00:00Z"
        store = [self.item("R0001", "One", old), self.item("R0002", "Two", old), self.item("R0003", "Three", old)]
        sink = self.serve(remote.modified_since_api(store))
        config = self.pull_config(sink, path="/items?updated_since={last_sync}&order=asc", is_paginated=False,
                                  response_root="data", sync_overlap=60)
        self.assertEqual(config.sync_overlap, 60)
        first = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual((first.created, first.success), (3, True))
        self.assertEqual(sink.requests[0].query, {"updated_since": "1970-01-01T00:00:00Z", "order": "asc"})
        self.assertIn("?updated_since=1970-01-01T00:00:00Z&order=asc", self.logs(config)[0].url)
        started = config.last_sync_at
        self.assertTrue(started)
        # While the first run ran, the remote committed a change stamped a little before its start
        # (clocks apart, a long transaction), and another exactly at it: both share the boundary.
        store[0].update(name="One, changed at the boundary", updated_at=(started - timedelta(seconds=30)).strftime(
            self.FORMAT))
        store.append(self.item("R0004", "Four", started.strftime(self.FORMAT)))
        pulled = self.pulled()
        before = self.versions(pulled)
        second = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertTrue(second.success, second.message)
        since = (started - timedelta(seconds=60)).strftime(self.FORMAT)
        self.assertEqual(sink.requests[1].query["updated_since"], since)
        self.assertEqual((second.received, second.created, second.updated), (2, 1, 1))
        self.assertEqual(self.pulled().filtered(lambda p: p.ref == "R0001").name, "One, changed at the boundary")
        self.assertEqual(len(self.pulled()), 4)
        after = self.versions(pulled)
        changed = {pid for pid in before if before[pid] != after[pid]}
        self.assertEqual(changed, set(pulled.filtered(lambda p: p.ref == "R0001").ids))
        # The next run asks again from its own start minus the overlap: the two boundary rows come
        # back unchanged and are not written again.
        config.last_sync_at = started  # what a run one second later would have stored
        before = self.versions(self.pulled())
        third = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual((third.received, third.created), (2, 0))
        self.assertEqual(self.versions(self.pulled()), before)

    def test_failures_and_caps_do_not_advance_last_sync_and_reset(self):
        store = [self.item("R0001", "One", "2099-01-01T00:00:00Z"), self.item("R0002", "Two", "2099-01-01T00:00:00Z")]
        sink = self.serve(remote.modified_since_api(store))
        config = self.pull_config(sink, path="/items?updated_since={last_sync}", is_paginated=False,
                                  response_root="data")
        self.assertEqual(config.sync_overlap, 300)
        config._make_outbound_http_request(config_id_ref=config.id)
        started = config.last_sync_at
        self.assertTrue(started)
        self.assertEqual(sink.requests[-1].query["updated_since"], "1970-01-01T00:00:00Z")
        config.last_sync_at = started - timedelta(hours=1)
        marker = config.last_sync_at
        # a failed run keeps Last Sync
        sink.responder = lambda received: (503, "down")
        self.assertFalse(config._make_outbound_http_request(config_id_ref=config.id).success)
        self.assertEqual(config.last_sync_at, marker)
        self.assertEqual(sink.requests[-1].query["updated_since"],
                         (marker - timedelta(seconds=300)).strftime(self.FORMAT))
        # a run stopped by Limit keeps it too: the rest is asked again next time
        sink.responder = remote.modified_since_api(store)
        config.limit = 1
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual(result.received, 1)
        self.assertEqual(config.last_sync_at, marker)
        # a bad item keeps it
        config.limit = 0
        store.append({"code": "R0003", "name": ["not", "a", "name"], "updated_at": "2099-01-01T00:00:00Z"})
        self.assertFalse(config._make_outbound_http_request(config_id_ref=config.id).success)
        self.assertEqual(config.last_sync_at, marker)
        # Reset: everything is asked again
        config.action_reset_last_sync()
        self.assertFalse(config.last_sync_at)
        store.pop()
        config._make_outbound_http_request(config_id_ref=config.id)
        self.assertEqual(sink.requests[-1].query["updated_since"], "1970-01-01T00:00:00Z")
        self.assertTrue(config.last_sync_at)

    def test_last_sync_is_not_a_record_placeholder(self):
        partner = self.Partner.create({"name": "Here", "ref": "C-9", "email": "c9@bj-rem.test"})
        sink = self.serve(lambda received: (200, {"code": "C-9", "name": "Fresh"}))
        # with a record placeholder too: one GET per record, {last_sync} filled in each
        config = self.pull_config(sink, path="/customers/{code}?since={last_sync}", is_paginated=False)
        result = config._make_outbound_http_request(partner, config.id)
        self.assertTrue(result.success, result.message)
        self.assertEqual((sink.requests[0].path, sink.requests[0].query), ("/customers/C-9",
                                                                           {"since": "1970-01-01T00:00:00Z"}))
        self.assertEqual(partner.name, "Fresh")
        # a push never fills it from the payload either (it is no key of the record)
        config = self._config(request_type="out", url=sink.url("/hook?since={last_sync}"), filter_domain="[]",
                              line_ids=[self._line("res.partner", "id", "id", is_record_identifier=True)])
        sink.responder = lambda received: (200, {"ok": True})
        self.assertTrue(config._make_outbound_http_request(partner, config.id).success)


@tagged("post_install", "-at_install")
class TestRemoteForm(RemoteCase):
    def invisible(self, form, name):
        return form._get_modifier(name, "invisible")

    def test_pagination_fields_follow_the_style(self):
        form = Form(self.Config)
        form.name = "Form"
        form.request_type = "out"
        form.url = "https://api.example.com/items"
        form.model_id = self.partner_model
        form.http_method_ids.add(self.methods["GET"])
        paging_fields = ("pagination_style", "size_param", "offset_param", "page_param", "cursor_param",
                         "cursor_path", "next_url_path")
        for name in paging_fields:
            self.assertTrue(self.invisible(form, name), name)  # not paginated
        form.is_paginated = True
        for style, visible in (
            ("offset", {"pagination_style", "size_param", "offset_param"}),
            ("page", {"pagination_style", "size_param", "page_param"}),
            ("link", {"pagination_style", "size_param", "page_param"}),
            ("cursor", {"pagination_style", "size_param", "cursor_param", "cursor_path"}),
            ("next_url", {"pagination_style", "size_param", "next_url_path"}),
        ):
            form.pagination_style = style
            for name in paging_fields:
                self.assertEqual(self.invisible(form, name), name not in visible, (style, name))
        self.assertTrue(form._get_modifier("next_url_path", "required"))
        # a push has no pages to walk
        form.http_method_ids.remove(id=self.methods["GET"].id)
        form.http_method_ids.add(self.methods["POST"])
        self.assertTrue(self.invisible(form, "pagination_style"))
        self.assertFalse(self.invisible(form, "page_size"))


@tagged("post_install", "-at_install")
class TestOAuth2(RemoteCase):
    def setUp(self):
        super().setUp()
        oauth2._memo.clear()  # every test starts as a fresh process would
        self.addCleanup(oauth2._memo.clear)
        self.server = remote.OAuth2Server()
        self.sink = self.serve(self.server)
        self.partners = self.Partner.create(
            [{"name": "O%d" % i, "email": "o%d@bj-rem-oauth.test" % i} for i in range(3)]
        )

    def oauth_config(self, **vals):
        defaults = {
            "name": "OAuth2 %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "url": self.sink.url("/api/partners"),
            "http_method_ids": [Command.set([self.methods["POST"].id])],
            "filter_domain": "[('email', '=ilike', '%@bj-rem-oauth.test')]",
            "retry_backoff": 0,
            "auth_type": "oauth2",
            "oauth2_token_url": self.sink.url("/token"),
            "oauth2_client_id": "cid",
            "oauth2_client_secret": "s3cret",
            "oauth2_scope": "partners.write",
            "line_ids": [
                self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
                self._line("res.partner", "name", "name", sequence=2),
            ],
        }
        defaults.update(vals)
        return self._config(**defaults)

    def api_authorizations(self):
        return [r.header("Authorization") for r in self.server.api_requests]

    def scan_database(self, needles):
        """``(table, column)`` of every text-like column of any table holding one of ``needles``."""
        self.env.flush_all()
        cr = self.env.cr
        cr.execute(
            """
            SELECT c.table_name, c.column_name
              FROM information_schema.columns c
              JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
            """
        )
        hits = []
        for table, column in cr.fetchall():
            cr.execute(
                SQL("SELECT 1 FROM %s, unnest(%s::text[]) n WHERE strpos(%s::text, n) > 0 LIMIT 1",
                    SQL.identifier(table), list(needles), SQL.identifier(column))
            )
            if cr.fetchone():
                hits.append((table, column))
        return hits

    def assertNothingSecretLogged(self, config, secrets):
        for log in self.logs(config):
            for name in ("url", "request_headers", "request_data", "response_data", "error_message"):
                for secret in secrets:
                    self.assertNotIn(secret, log[name] or "", (log.id, name))

    def test_one_token_for_many_calls_never_logged(self):
        config = self.oauth_config()
        for partner in self.partners:
            self.assertTrue(config._make_outbound_http_request(partner, config.id).success)
        config.write({"is_paginated": True, "page_size": 10})
        self.assertTrue(config._make_outbound_http_request(self.partners, config.id).success)
        self.assertEqual(len(self.server.token_requests), 1)
        (token,) = self.server.issued()
        self.assertEqual(self.api_authorizations(), ["Bearer " + token] * 4)
        self.assertEqual(self.server.refused, [])
        form = self.server.token_requests[0]["form"]
        self.assertEqual(form, {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "s3cret",
                                "scope": "partners.write"})
        # the token request is logged, its secrets replaced
        token_log = self.logs(config).filtered(lambda log: log.url == config.oauth2_token_url)
        self.assertEqual((len(token_log), token_log.status, token_log.method), (1, "success", "POST"))
        self.assertIn("client_secret=***", token_log.request_data)
        self.assertIn('"access_token": "***"', token_log.response_data)
        api_logs = self.logs(config) - token_log
        self.assertEqual(len(api_logs), 4)
        for log in api_logs:
            self.assertEqual(json.loads(log.request_headers)["Authorization"], "***")
        self.assertNothingSecretLogged(config, [token, "s3cret"])
        self.assertEqual(self.scan_database([token, "s3cret"]), [])
        # at rest: encrypted, masked on read, with its expiry
        self.env.flush_all()
        self.env.cr.execute(
            "SELECT oauth2_token_encrypted, oauth2_client_secret_encrypted FROM bj_api_sync_config WHERE id = %s",
            [config.id],
        )
        for stored in self.env.cr.fetchone():
            self.assertTrue(stored.startswith("gAAAAA"))
            self.assertNotIn(token, stored)
            self.assertNotIn("s3cret", stored)
        self.assertEqual(config.read(["oauth2_client_secret"])[0]["oauth2_client_secret"], "********")
        self.assertEqual(config._get_secret("oauth2_client_secret"), "s3cret")
        self.assertGreater(config.oauth2_token_expires_at, fields.Datetime.now() + timedelta(minutes=55))

    def test_client_secret_basic(self):
        config = self.oauth_config(oauth2_client_auth="basic", oauth2_scope=False, oauth2_audience="https://api")
        self.assertTrue(config._make_outbound_http_request(self.partners[0], config.id).success)
        request = self.server.token_requests[0]
        self.assertEqual(request["form"], {"grant_type": "client_credentials", "audience": "https://api"})
        self.assertTrue(request["headers"]["authorization"].startswith("Basic "))
        token_log = self.logs(config).filtered(lambda log: log.url == config.oauth2_token_url)
        self.assertEqual(json.loads(token_log.request_headers)["Authorization"], "***")

    def test_refreshed_before_expiry(self):
        self.server.expires_in = 4  # refreshed a tenth of its life before it expires
        config = self.oauth_config()
        self.assertTrue(config._make_outbound_http_request(self.partners[0], config.id).success)
        self.assertTrue(config._make_outbound_http_request(self.partners[1], config.id).success)
        self.assertEqual(len(self.server.token_requests), 1)
        time.sleep(4)
        self.assertTrue(config._make_outbound_http_request(self.partners[2], config.id).success)
        self.assertEqual(len(self.server.token_requests), 2)
        self.assertEqual(self.server.refused, [])  # refreshed before, not after a 401
        tokens = self.api_authorizations()
        self.assertEqual(tokens[0], tokens[1])
        self.assertNotEqual(tokens[1], tokens[2])

    def test_refreshed_once_on_401(self):
        config = self.oauth_config(max_retries=0)
        self.assertTrue(config._make_outbound_http_request(self.partners[0], config.id).success)
        self.server.revoke_all()  # the server forgot the token (rotation, restart)
        result = config._make_outbound_http_request(self.partners[1], config.id)
        self.assertTrue(result.success, result.message)
        self.assertEqual(len(self.server.token_requests), 2)
        self.assertEqual(len(self.server.refused), 1)
        logs = self.logs(config).filtered(lambda log: log.url == config.url)[-2:]
        self.assertEqual(logs.mapped("response_code"), [401, 201])
        self.assertEqual(logs.mapped("status"), ["retrying", "success"])
        self.assertEqual(logs.mapped("attempt"), [1, 2])
        self.assertIn("OAuth2", logs[0].error_message)
        # a token refused again is not retried in a loop: one new token, one more attempt, a failure
        self.server.revoke_all()
        original = self.server._token

        def token_never_valid(received):
            reply = original(received)
            self.server.revoke_all()
            return reply

        self.server._token = token_never_valid
        result = config._make_outbound_http_request(self.partners[2], config.id)
        self.assertFalse(result.success)
        self.assertEqual(result.status_code, 401)
        self.assertEqual(len(self.server.token_requests), 3)
        self.assertEqual(len(self.server.refused), 3)
        self.assertNothingSecretLogged(config, [a[len("Bearer "):] for a in self.api_authorizations()] + ["s3cret"])

    def test_errors_are_told_by_test_connection_and_calls(self):
        config = self.oauth_config(oauth2_client_secret="wrong")
        params = config.action_test_connection()["params"]
        self.assertEqual(params["type"], "danger")
        self.assertIn("invalid_client", params["message"])
        self.assertIn("Client Secret", params["message"])
        self.assertFalse(self.server.api_requests)
        result = config._make_outbound_http_request(self.partners[0], config.id)
        self.assertFalse(result.success)
        self.assertIn("invalid_client", result.message)
        self.assertFalse(self.server.api_requests)
        self.assertNothingSecretLogged(config, ["wrong"])
        self.server.error = ("invalid_scope", 400)
        config.oauth2_client_secret = "s3cret"
        params = config.action_test_connection()["params"]
        self.assertIn("invalid_scope", params["message"])
        self.assertIn("Scope", params["message"])
        self.server.error = None
        params = config.action_test_connection()["params"]
        self.assertEqual(params["type"], "success", params)
        self.assertIn("OAuth2 token obtained", params["message"])
        self.assertIn("HTTP 200", params["message"])  # HEAD with the token
        config.oauth2_token_url = "http://127.0.0.1:%d/token" % free_port()
        params = config.action_test_connection()["params"]
        self.assertEqual(params["type"], "danger")
        self.assertIn("refused", params["message"].lower())

    def test_new_credentials_forget_the_token(self):
        config = self.oauth_config()
        config._make_outbound_http_request(self.partners[0], config.id)
        self.assertTrue(config.oauth2_token_expires_at)
        config.write({"oauth2_client_secret": "********"})  # the form sending the mask back: unchanged
        self.assertTrue(config.oauth2_token_expires_at)
        self.server.client_secret = "rotated"
        config.write({"oauth2_client_secret": "rotated"})
        self.assertFalse(config.oauth2_token_expires_at)
        self.assertTrue(config._make_outbound_http_request(self.partners[1], config.id).success)
        self.assertEqual(len(self.server.token_requests), 2)
        self.assertEqual(self.server.token_requests[1]["form"]["client_secret"], "rotated")

    def test_paginated_pull_and_queued_delivery(self):
        self.server.api = remote.next_url_api(remote.items_of(9))
        config = self.pull_config(self.sink, path="/v1.0/users", page_size=4, pagination_style="next_url",
                                  size_param="$top", next_url_path="@odata.nextLink", response_root="value",
                                  auth_type="oauth2", oauth2_token_url=self.sink.url("/token"),
                                  oauth2_client_id="cid", oauth2_client_secret="s3cret")
        result = config._make_outbound_http_request(config_id_ref=config.id)
        self.assertTrue(result.success, result.message)
        self.assertEqual(result.received, 9)
        self.assertEqual((len(self.server.api_requests), len(self.server.token_requests)), (3, 1))
        # the outbox worker sends queued jobs with the shared token too
        self.server.api = None
        config = self.oauth_config(delivery="queued")
        jobs = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners, config.id).job_ids)
        self.assertEqual(len(jobs), 3)
        for job in jobs:
            self.assertTrue(outbox.deliver_job(job)["ok"])
        self.assertEqual(len(self.server.token_requests), 2)  # one per configuration

    def test_oauth2_is_outbound_only_and_form_visibility(self):
        with self.assertRaises(ValidationError):
            self._config(auth_type="oauth2", oauth2_token_url="https://login.example.com/token")
        with self.assertRaises(ValidationError):
            self.oauth_config(oauth2_token_url="ftp://example.com/token")
        form = Form(self.Config)
        form.request_type = "out"
        oauth_fields = ("oauth2_token_url", "oauth2_client_id", "oauth2_client_secret", "oauth2_scope",
                        "oauth2_audience", "oauth2_client_auth")
        for auth in ("none", "basic", "bearer", "hmac", "oauth2"):
            form.auth_type = auth
            for name in oauth_fields:
                self.assertEqual(form._get_modifier(name, "invisible"), auth != "oauth2", (auth, name))
        for name in ("login", "password", "bearer_token", "hmac_secret"):
            self.assertTrue(form._get_modifier(name, "invisible"), name)
        self.assertTrue(form._get_modifier("oauth2_token_url", "required"))
        self.assertTrue(form._get_modifier("oauth2_client_id", "required"))


@tagged("post_install", "-at_install")
class TestOAuth2SharedToken(BjCase):
    """Two transactions of their own (two workers, two processes) share one token."""

    def test_two_cursors_one_token(self):
        oauth2._memo.clear()
        self.addCleanup(oauth2._memo.clear)
        server = remote.OAuth2Server(delay=0.5)
        sink = HttpSink(server).start()
        self.addCleanup(sink.stop)
        registry = self.env.registry
        with registry.cursor() as cr:
            env = api.Environment(cr, self.env.uid, {})
            allowed = env["ir.config_parameter"].sudo().get_param("bj_api_sync.allowed_hosts")
            env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
            config = env["bj.api.sync.config"].create({
                "name": "Shared token %s" % uuid.uuid4().hex[:6],
                "request_type": "out",
                "url": sink.url("/api"),
                "model_id": env.ref("base.model_res_partner").id,
                "http_method_ids": [Command.set([env.ref("bj_api_sync.http_method_post").id])],
                "auth_type": "oauth2",
                "oauth2_token_url": sink.url("/token"),
                "oauth2_client_id": "cid",
                "oauth2_client_secret": "s3cret",
            })
            config_id = config.id
            cr.commit()  # pylint: disable=invalid-commit

        def cleanup():
            with registry.cursor() as cr:
                cr.execute("DELETE FROM bj_api_log WHERE config_id = %s", [config_id])
                cr.execute("DELETE FROM bj_api_sync_config WHERE id = %s", [config_id])
                api.Environment(cr, self.env.uid, {})["ir.config_parameter"].sudo().set_param(
                    "bj_api_sync.allowed_hosts", allowed)
                cr.commit()  # pylint: disable=invalid-commit

        self.addCleanup(cleanup)
        # Environments are made here: this thread holds the registry lock during the test run.
        envs = [api.Environment(registry.cursor(), self.env.uid, {}) for _i in range(4)]
        for env in envs:
            self.addCleanup(env.cr.close)

        def token(env):
            return oauth2.access_token(env["bj.api.sync.config"].browse(config_id))

        # Sequential: the second transaction began before the first stored its token, and this
        # process's memo is forgotten (another process): the row, read again, has it.
        env1, env2, env3, env4 = envs
        env2.cr.execute("SELECT 1")  # its snapshot predates the first's commit
        first = token(env1)
        env1.cr.commit()
        oauth2._memo.clear()
        self.assertEqual(token(env2), first)
        self.assertEqual(len(server.token_requests), 1)
        env2.cr.rollback()
        # Concurrent: two transactions miss the token at the same moment; one asks, the other waits
        with registry.cursor() as cr:
            cr.execute("UPDATE bj_api_sync_config SET oauth2_token_encrypted = NULL WHERE id = %s", [config_id])
        oauth2._memo.clear()
        results, errors = {}, []
        barrier = threading.Barrier(2)

        def worker(env):
            try:
                barrier.wait(10)
                results[env.cr] = token(env)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(env,)) for env in (env3, env4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(errors, [])
        self.assertEqual(len(set(results.values())), 1)
        self.assertEqual(len(server.token_requests), 2)  # the first run's, and one for both threads


@tagged("post_install", "-at_install")
class TestWriteBack(RemoteCase):
    def setUp(self):
        super().setUp()
        self.partner = self.Partner.create({"name": "Wanda", "email": "wanda@bj-rem-wb.test"})
        self.env.flush_all()  # its stored computed fields now, not when a rule made by a test is watching
        self.sink = self.serve(self.crm)

    def crm(self, received):
        """A CRM that answers with its own id and a status, and a name of its own (never written back)."""
        data = received.json()

        def answer(item):
            return {"id": item["id"], "crm_id": "C-%s" % item["id"], "status": "synced", "name": "CRM NAME"}

        if isinstance(data, list):
            return 200, [answer(item) for item in data]
        return 201, answer(data)

    def crm_config(self, script=False, **vals):
        name_line = (
            self._line("res.partner", "name", "name", sequence=2, value_type="python_plain", script_mode="eval",
                       python_script="record.name")
            if script
            else self._line("res.partner", "name", "name", sequence=2)
        )
        defaults = {
            "name": "CRM %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "url": self.sink.url("/crm/contacts"),
            "http_method_ids": [Command.set([self.methods["POST"].id])],
            "filter_domain": "[('email', '=ilike', '%@bj-rem-wb.test')]",
            "retry_backoff": 0,
            "line_ids": [
                self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
                name_line,
                self._line("res.partner", "ref", "crm_id", sequence=3, direction="in"),
                self._line("res.partner", "comment", "status", sequence=4, direction="in"),
            ],
        }
        defaults.update(vals)
        return self._config(**defaults)

    def test_answer_is_written_back_without_firing_the_trigger(self):
        config = self.crm_config(trigger_model="base.automation")
        self.assertTrue(config.has_write_back)
        config.action_create_trigger()
        automation = self.env["base.automation"].browse(config.trigger_action_id)
        # the generated rule watches what is sent, not what comes back
        self.assertEqual(set(automation.trigger_field_ids.mapped("name")), {"name"})
        self.partner.write({"name": "Wanda Maximoff"})
        (request,) = self.sink.requests
        self.assertEqual(request.json(), {"id": self.partner.id, "name": "Wanda Maximoff"})  # "in" lines: not sent
        self.assertEqual(self.partner.ref, "C-%s" % self.partner.id)
        self.assertIn("synced", self.partner.comment)
        self.assertEqual(self.partner.name, "Wanda Maximoff")  # a "both" line is not written back
        # A rule that also watches the written-back fields (hand-written here) would fire on the
        # write-back: the call it makes for this configuration sends nothing.
        automation.trigger_field_ids = [Command.set([self._field("res.partner", name).id for name in
                                                     ("name", "ref", "comment")])]
        self.partner.write({"name": "Wanda M."})
        self.assertEqual(len(self.sink.requests), 2)
        self.partner.write({"ref": "typed by hand"})  # a user's change of a watched field is sent
        self.assertEqual(len(self.sink.requests), 3)
        self.assertEqual(self.partner.ref, "C-%s" % self.partner.id)  # and the answer wins again
        # a script line makes the generated rule watch every field: write-backs are held back too
        script = self.crm_config(script=True, trigger_model="base.automation", filter_domain="[('id', '=', 0)]")
        script.action_create_trigger()
        self.assertFalse(self.env["base.automation"].browse(script.trigger_action_id).trigger_field_ids)

    def test_batch_answers_and_unchanged_values(self):
        others = self.Partner.create([{"name": "B%d" % i, "email": "b%d@bj-rem-wb.test" % i} for i in range(3)])
        config = self.crm_config(is_paginated=True, page_size=10)
        partners = self.partner | others
        result = config._make_outbound_http_request(partners, config.id)
        self.assertTrue(result.success, result.message)
        self.assertEqual(len(self.sink.requests), 1)
        self.assertEqual(partners.mapped("ref"), ["C-%s" % p.id for p in partners])
        # the same answer again: nothing to write (no new row version)
        self.env.flush_all()
        self.env.cr.execute("SELECT id, ctid::text FROM res_partner WHERE id IN %s", [tuple(partners.ids)])
        before = dict(self.env.cr.fetchall())
        config._make_outbound_http_request(partners, config.id)
        self.env.flush_all()
        self.env.cr.execute("SELECT id, ctid::text FROM res_partner WHERE id IN %s", [tuple(partners.ids)])
        self.assertEqual(dict(self.env.cr.fetchall()), before)

    def test_answer_at_response_root(self):
        self.sink.responder = lambda received: (201, {"customer": {"id": 7, "crm_id": "shop-7", "status": "enabled"}})
        config = self.crm_config(response_root="customer")
        self.assertTrue(config._make_outbound_http_request(self.partner, config.id).success)
        self.assertEqual(self.partner.ref, "shop-7")

    def test_a_bad_value_is_logged_and_the_delivery_stays_a_success(self):
        self.sink.responder = lambda received: (201, {"crm_id": ["not", "text"], "status": "ok"})
        config = self.crm_config()
        result = config._make_outbound_http_request(self.partner, config.id)
        self.assertTrue(result.success)
        self.assertFalse(self.partner.ref)
        error = self.logs(config).filtered(lambda log: log.status == "error")
        self.assertIn("Write-back", error.error_message)
        self.assertEqual(error.res_ids, str(self.partner.id))
        # an answer without the keys, or not an object: nothing to write, no error
        for answer in ({"other": 1}, "created", [1, 2]):
            self.sink.responder = lambda received, answer=answer: (201, answer)
            self.assertTrue(config._make_outbound_http_request(self.partner, config.id).success)
        self.assertEqual(len(self.logs(config).filtered(lambda log: log.status == "error")), 1)

    def test_queued_delivery_writes_back_after_delivery(self):
        config = self.crm_config(script=True, delivery="queued", trigger_model="base.automation")
        config.action_create_trigger()
        self.partner.write({"name": "Queued Wanda"})
        Job = self.env["bj.api.sync.job"]
        jobs = Job.search([("config_id", "=", config.id)])
        self.assertEqual(len(jobs), 1)
        self.assertFalse(self.partner.ref)  # nothing delivered yet
        jobs.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
        self.assertEqual(outbox.process_due_jobs(self.env), len(jobs))
        self.assertEqual(len(self.sink.requests), len(jobs))
        self.assertEqual(self.partner.ref, "C-%s" % self.partner.id)
        # the worker's write-back queued nothing
        self.assertEqual(Job.search([("config_id", "=", config.id)]), jobs)


@tagged("post_install", "-at_install")
class TestDeletes(RemoteCase):
    def setUp(self):
        super().setUp()
        self.sink = self.serve(self.store)
        self.gone_status = 404

    def store(self, received):
        """A remote that names its records cus_<odoo id> and answers DELETE with 200 (or 404 when unknown)."""
        if received.method == "DELETE":
            return (200, {"deleted": True}) if "cus_" in received.path else (self.gone_status, {"error": "gone"})
        data = received.json()
        return 201, {"id": "cus_%s" % data["id"], "name": data.get("name")}

    def delete_config(self, **vals):
        defaults = {
            "name": "Deletes %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "url": self.sink.url("/v1/customers"),
            "http_method_ids": [Command.set([self.methods["POST"].id])],
            "filter_domain": "[('email', '=ilike', '%@bj-rem-del.test')]",
            "retry_backoff": 0,
            "max_retries": 0,
            "propagate_deletes": True,
            "auth_type": "bearer",
            "bearer_token": "del-token",
            "line_ids": [
                self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
                self._line("res.partner", "name", "name", sequence=2),
            ],
        }
        defaults.update(vals)
        return self._config(**defaults)

    def partner(self, name="Del"):
        return self.Partner.create({"name": name, "email": "%s@bj-rem-del.test" % name.lower()})

    def binding(self, config, partner):
        return self.env["bj.api.sync.binding"].search([("config_id", "=", config.id), ("res_id", "=", partner.id)])

    def test_a_deleted_record_is_deleted_on_the_remote(self):
        config = self.delete_config(trigger_model="base.automation")
        notification = config.action_create_trigger()
        rule = config.delete_trigger_id
        self.assertEqual((rule.trigger, rule.model_id), ("on_unlink", self.partner_model))
        self.assertIn("_propagate_deletion(record_ids=records, config_id_ref=%d)" % config.id,
                      rule.action_server_ids.code)
        self.assertIn(rule.name, notification["params"]["message"])
        partner = self.partner()  # the automation rule sends it: the remote answers cus_<id>
        self.assertEqual(self.binding(config, partner).external_id, "cus_%s" % partner.id)
        partner_id = partner.id
        partner.unlink()
        post, delete = self.sink.requests
        self.assertEqual((post.method, delete.method), ("POST", "DELETE"))
        self.assertEqual(delete.path, "/v1/customers/cus_%s" % partner_id)
        self.assertEqual(delete.body, b"")
        self.assertEqual(delete.header("Authorization"), "Bearer del-token")
        self.assertIsNone(delete.header("Content-Type"))
        self.assertFalse(self.binding(config, self.Partner.browse(partner_id)))
        log = self.logs(config)[-1]
        self.assertEqual((log.method, log.status, log.res_ids), ("DELETE", "success", str(partner_id)))
        # a record the remote never got (no binding) is not deleted there
        outsider = self.Partner.create({"name": "Never sent", "email": "x@elsewhere.test"})
        outsider.unlink()
        self.assertEqual(len(self.sink.requests), 2)
        # pressing Create Trigger again refreshes the same rule; unchecking removes it
        config.action_create_trigger()
        self.assertEqual(config.delete_trigger_id, rule)
        config.propagate_deletes = False
        config.action_create_trigger()
        self.assertFalse(config.delete_trigger_id)
        self.assertFalse(rule.exists())

    def test_delete_url_and_placeholders(self):
        config = self.delete_config(delete_url=self.sink.url("/admin/customers/{remote_id}.json?name={name}"))
        partner = self.partner("Ann")
        config._make_outbound_http_request(partner, config.id)
        result = self.Config._propagate_deletion(record_ids=partner, config_id_ref=config.id)
        self.assertTrue(result.success, result.message)
        delete = self.sink.requests[-1]
        self.assertEqual((delete.path, delete.query), ("/admin/customers/cus_%s.json" % partner.id, {"name": "Ann"}))
        # a Request URL with placeholders: its identifier placeholder gets the remote identifier
        config = self.delete_config(url=self.sink.url("/v1/customers/{id}"),
                                    http_method_ids=[Command.set([self.methods["PUT"].id])])
        bob = self.partner("Bob")
        config._make_outbound_http_request(bob, config.id)
        self.assertEqual(self.sink.requests[-1].path, "/v1/customers/%s" % bob.id)
        self.Config._propagate_deletion(record_ids=bob, config_id_ref=config.id)
        self.assertEqual((self.sink.requests[-1].method, self.sink.requests[-1].path),
                         ("DELETE", "/v1/customers/cus_%s" % bob.id))
        # a binding without an External ID cannot address the remote record: an error row, nothing sent
        cid = self.partner("Cid")
        self.env["bj.api.sync.binding"]._upsert(config, {cid.id: (None, "hash")})
        config.delete_url = False
        config.url = self.sink.url("/v1/customers")
        count = len(self.sink.requests)
        result = self.Config._propagate_deletion(record_ids=cid, config_id_ref=config.id)
        self.assertEqual((result.failed, len(self.sink.requests)), (1, count))
        self.assertIn("External ID", self.logs(config)[-1].error_message)

    def test_already_gone_is_a_success_and_does_not_pause(self):
        config = self.delete_config(max_consecutive_failures=1)
        partner = self.partner()
        self.env["bj.api.sync.binding"]._upsert(config, {partner.id: ("unknown-id", "hash")})
        for status in (404, 410):
            self.gone_status = status
            result = self.Config._propagate_deletion(record_ids=partner, config_id_ref=config.id)
            self.assertTrue(result.success, result.message)
            self.assertEqual(result.sent, 1)
            self.assertFalse(config.paused)
            self.assertIn("Already gone", self.logs(config)[-1].error_message)
            self.assertEqual(self.logs(config)[-1].status, "success")
            self.env["bj.api.sync.binding"]._upsert(config, {partner.id: ("unknown-id", "hash")})
        # a real failure counts as one
        self.gone_status = 500
        self.assertFalse(self.Config._propagate_deletion(record_ids=partner, config_id_ref=config.id).success)
        # a configuration that is gone does not stop the deletion
        gone = self.delete_config()
        gone_id = gone.id
        gone.unlink()
        self.assertFalse(self.Config._propagate_deletion(record_ids=partner, config_id_ref=gone_id))

    def test_queued_delete_is_sent_after_the_deletion(self):
        config = self.delete_config(delivery="queued", trigger_model="ir.cron")
        config.action_create_trigger()  # a scheduled sync, and the deletion rule all the same
        self.assertEqual(config.delete_trigger_id.trigger, "on_unlink")
        partners = self.partner("Q1") | self.partner("Q2")
        self.env["bj.api.sync.binding"]._upsert(config, {p.id: ("cus_%s" % p.id, "hash") for p in partners})
        ids = partners.ids
        partners.unlink()
        self.assertFalse(self.sink.requests)  # nothing before the worker
        Job = self.env["bj.api.sync.job"]
        jobs = Job.search([("config_id", "=", config.id)], order="id")
        self.assertEqual(jobs.mapped("method"), ["DELETE", "DELETE"])
        self.assertEqual(jobs.mapped("url"), [self.sink.url("/v1/customers/cus_%s" % i) for i in ids])
        self.assertEqual(jobs.mapped("payload"), [False, False])
        jobs.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
        self.assertEqual(outbox.process_due_jobs(self.env), 2)
        self.assertEqual([(r.method, r.path) for r in self.sink.requests],
                         [("DELETE", "/v1/customers/cus_%s" % i) for i in ids])
        self.assertEqual(jobs.mapped("state"), ["done", "done"])
        # 404 (already gone): done, not failed
        partner = self.partner("Q3")
        self.env["bj.api.sync.binding"]._upsert(config, {partner.id: ("old-id", "hash")})
        partner.unlink()
        job = Job.search([("config_id", "=", config.id)], order="id desc", limit=1)
        job.next_attempt_at = fields.Datetime.now() - timedelta(seconds=1)
        outbox.process_due_jobs(self.env)
        self.assertEqual((job.state, job.response_code), ("done", 404))
        # deleting the configuration removes its deletion rule (else every deletion would fail)
        rule = config.delete_trigger_id
        config.unlink()
        self.assertFalse(rule.exists())
        self.partner("Q4").unlink()


@tagged("post_install", "-at_install")
class TestDeletesForm(RemoteCase):
    def test_delete_fields_and_create_trigger_button(self):
        form = Form(self.Config)
        form.name = "Deletes form"
        form.request_type = "in"
        self.assertTrue(form._get_modifier("propagate_deletes", "invisible"))
        form.request_type = "out"
        self.assertFalse(form._get_modifier("propagate_deletes", "invisible"))
        self.assertTrue(form._get_modifier("delete_url", "invisible"))
        form.propagate_deletes = True
        self.assertFalse(form._get_modifier("delete_url", "invisible"))
        view = self.env.ref("bj_api_sync.bj_api_sync_config_view_form")
        button = view.arch.split('name="action_create_trigger"')[1].split("/>")[0]
        self.assertIn("propagate_deletes and delete_trigger_id", button)  # shown again to add the rule
