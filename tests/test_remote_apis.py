"""Outbound against remotes shaped like real APIs (tests/remote_servers.py), over real sockets.

Pagination styles, OAuth2 client credentials, incremental pull, write-back and deletes.
"""

import uuid
from datetime import timedelta

from odoo import Command
from odoo.tests import Form, tagged

from ..services import push
from . import remote_servers as remote
from .common import BjCase
from .http_sink import HttpSink


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
