import base64
import json
import threading
import time
import uuid

import psycopg2

from odoo import SUPERUSER_ID, Command, api, sql_db
from odoo.tests import BaseCase, new_test_user, tagged
from odoo.tools import mute_logger

from ..lib import signing
from ..services import inbound, log_connection, transaction
from .common import API, InboundCase


@tagged("post_install", "-at_install")
class TestInbound(InboundCase):
    # ------------------------------------------------------------------ the vendor's Postman collection
    def test_postman_authentication_examples(self):
        # No Auth - Public Endpoint
        response = self.call("GET", "/public", token=None)
        self.assertStatus(response, 200)
        countries = response.json()
        self.assertIsInstance(countries, list)
        self.assertTrue(countries)
        self.assertEqual(set(countries[0]), {"code", "name"})
        self.assertLessEqual(len(countries), self.public_config.limit)
        self.assertEqual(int(response.headers["X-Total-Count"]), self.env["res.country"].search_count([]))
        # Basic Auth - Get Partners: the demo endpoint is Bearer, so Basic credentials are refused...
        basic = "Basic " + base64.b64encode(b"admin:admin").decode()
        response = self.call("GET", "/partners", token=None, headers={"Authorization": basic})
        self.assertError(response, 401)
        self.assertTrue(response.headers["WWW-Authenticate"].startswith("Bearer"))
        # ...and accepted by an endpoint configured for Basic Auth with the collection's admin/admin.
        self._in_config("partners-basic", auth_type="basic", login="admin", password="admin")
        self.assertStatus(self.call("GET", "/partners-basic", token=None, headers={"Authorization": basic}), 200)
        # Bearer Token - Get Partners
        self.assertStatus(self.call("GET", "/partners"), 200)

    def test_postman_partner_api(self):
        # GET All Partners
        response = self.call("GET", "/partners")
        self.assertStatus(response, 200)
        partners = response.json()
        self.assertIsInstance(partners, list)
        self.assertEqual(set(partners[0]), {"id", "name", "email", "phone"})
        self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
        # GET Single Partner (an existing one instead of 123)
        response = self.call("GET", "/partners/%s" % self.person.id)
        self.assertStatus(response, 200)
        self.assertEqual(
            response.json(),
            {"id": self.person.id, "name": "Inbound Person", "email": "person@example.com", "phone": "+100"},
        )
        # POST Create Partner
        response = self.call(
            "POST", "/partners", {"name": "Test Partner", "email": "test@example.com", "phone": "+1234567890"}
        )
        self.assertStatus(response, 201)
        created = response.json()
        partner = self.Partner.browse(created["id"])
        self.assertEqual(created, {"id": partner.id, "name": "Test Partner", "email": "test@example.com",
                                   "phone": "+1234567890"})
        self.assertEqual((partner.name, partner.email), ("Test Partner", "test@example.com"))
        # PUT Update Partner
        response = self.call(
            "PUT", "/partners/%s" % partner.id, {"name": "Updated Partner Name", "email": "updated@example.com"}
        )
        self.assertStatus(response, 200)
        self.assertEqual(response.json()["name"], "Updated Partner Name")
        partner.invalidate_recordset()
        self.assertEqual((partner.name, partner.email, partner.phone),
                         ("Updated Partner Name", "updated@example.com", "+1234567890"))
        # DELETE Partner: 200 and the record as it was
        response = self.call("DELETE", "/partners/%s" % partner.id)
        self.assertStatus(response, 200)
        self.assertEqual(response.json()["name"], "Updated Partner Name")
        self.assertFalse(partner.exists())

    def test_postman_generic_endpoint(self):
        self.assertStatus(self.call("GET", "/partners"), 200)
        # The generic body has none of the endpoint's keys: the required 'name' line answers.
        response = self.call("POST", "/partners", {"field1": "value1", "field2": "value2"})
        body = self.assertError(response, 400, "name")
        name_line = self.partners_config.line_ids.filtered(lambda line: line.api_key == "name")
        self.assertEqual(body["line_id"], name_line.id)

    def test_postman_error_scenarios(self):
        response = self.call("GET", "/partners", token="invalid_token")
        self.assertError(response, 401)
        self.assertIn("invalid_token", response.headers["WWW-Authenticate"])
        response = self.call("GET", "/nonexistent_endpoint")
        self.assertStatus(response, 404)
        self.assertEqual(response.json(), {"message": "Endpoint not found", "status_code": 404})
        response = self.call("PATCH", "/partners")
        self.assertError(response, 405)
        self.assertEqual(response.headers["Allow"], "GET, HEAD, POST, PUT, DELETE, OPTIONS")
        count = self.Partner.search_count([])
        response = self.call("POST", "/partners", raw="{ invalid json }")
        self.assertError(response, 400, "Invalid JSON")
        self.assertEqual(self.Partner.search_count([]), count)

    # ------------------------------------------------------------------ authentication
    def test_bearer(self):
        config = self._in_config("bearer-ep", auth_type="bearer", bearer_token="Bearer s3cret-token")
        self.assertEqual(config._get_secret("bearer_token"), "s3cret-token")
        cases = [
            (None, 401),
            ("Basic czNjcmV0LXRva2Vu", 401),  # wrong scheme
            ("Bearer wrong", 401),
            ("Bearer", 401),
            ("Bearer s3cret-token", 200),
            ("bearer s3cret-token", 200),
            ("Bearer Bearer s3cret-token", 200),  # a client that pasted the prefix into the token
            ("s3cret-token", 200),  # bare token
        ]
        for authorization, status in cases:
            with self.subTest(authorization=authorization):
                headers = {"Authorization": authorization} if authorization else {}
                response = self.call("GET", "/bearer-ep", token=None, headers=headers)
                self.assertStatus(response, status)
                if status == 401:
                    self.assertTrue(response.headers["WWW-Authenticate"].startswith("Bearer realm="))
        # A token stored with its prefix by other means is tolerated too.
        config.sudo().bearer_token_encrypted = config._bj_secret_box().encrypt("Bearer raw-token")
        self.assertStatus(self.call("GET", "/bearer-ep", token="raw-token"), 200)

    def test_cached_configuration_follows_every_change(self):
        """The lookup of an endpoint's configuration is cached: each change must be seen by the next request."""
        config = self._in_config("cached-ep", auth_type="bearer", bearer_token="first-token")
        self.assertStatus(self.call("GET", "/cached-ep", token="first-token"), 200)
        config.bearer_token = "second-token"
        self.assertStatus(self.call("GET", "/cached-ep", token="first-token"), 401)
        self.assertStatus(self.call("GET", "/cached-ep", token="second-token"), 200)
        # a Headers row sets the stored has_headers by recomputation, not by write()
        self.assertNotIn("X-Served-By", self.call("GET", "/cached-ep", token="second-token").headers)
        self.env["bj.api.sync.header"].create({"config_id": config.id, "key": "X-Served-By", "value": "odoo"})
        self.assertEqual(self.call("GET", "/cached-ep", token="second-token").headers.get("X-Served-By"), "odoo")
        config.header_ids.unlink()
        self.assertNotIn("X-Served-By", self.call("GET", "/cached-ep", token="second-token").headers)
        config.endpoint = "cached-renamed"
        self.assertError(self.call("GET", "/cached-ep", token="second-token"), 404)
        self.assertStatus(self.call("GET", "/cached-renamed", token="second-token"), 200)
        config.active = False
        self.assertError(self.call("GET", "/cached-renamed", token="second-token"), 404)
        config.active = True
        config.unlink()
        self.assertError(self.call("GET", "/cached-renamed", token="second-token"), 404)

    def test_basic(self):
        self._in_config("basic-ep", auth_type="basic", login="api", password="pässword")
        good = base64.b64encode("api:pässword".encode()).decode()
        cases = [
            ({}, 401),
            ({"Authorization": "Bearer " + good}, 401),  # wrong scheme
            ({"Authorization": "Basic " + base64.b64encode(b"api:wrong").decode()}, 401),
            ({"Authorization": "Basic " + base64.b64encode(b"other:p\xc3\xa4ssword").decode()}, 401),
            ({"Authorization": "Basic !!notbase64"}, 401),
            ({"Authorization": "Basic " + good}, 200),
        ]
        for headers, status in cases:
            with self.subTest(headers=headers):
                response = self.call("GET", "/basic-ep", token=None, headers=headers)
                self.assertStatus(response, status)
                if status == 401:
                    self.assertTrue(response.headers["WWW-Authenticate"].startswith("Basic realm="))

    def test_basic_without_password_refuses_everyone(self):
        self._in_config("basic-nopw", auth_type="basic", login="api")
        response = self.call("GET", "/basic-nopw", token=None,
                             headers={"Authorization": "Basic " + base64.b64encode(b"api:").decode()})
        self.assertError(response, 401)

    def test_hmac(self):
        secret = signing.generate_secret()
        old_secret = signing.generate_secret()
        self._in_config("hmac-ep", auth_type="hmac", hmac_secret="%s %s" % (secret, old_secret))
        body = json.dumps({"name": "Signed Partner"}).encode()

        def signed(key=secret, timestamp=None, payload=body, msg_id=None):
            return signing.signature_headers(key, msg_id or "msg_%s" % uuid.uuid4().hex, payload, timestamp)

        # missing signature headers
        response = self.call("POST", "/hmac-ep", raw=body, token=None)
        self.assertError(response, 401, "Missing webhook signature")
        self.assertTrue(response.headers["WWW-Authenticate"].startswith("Webhook-Signature"))
        # wrong scheme: a bearer token is no signature
        self.assertError(self.call("POST", "/hmac-ep", raw=body, token="whatever"), 401)
        # wrong secret
        self.assertError(self.call("POST", "/hmac-ep", raw=body, token=None,
                                   headers=signed(signing.generate_secret())), 401, "does not match")
        # stale timestamp (6 minutes) and from the future
        self.assertError(self.call("POST", "/hmac-ep", raw=body, token=None,
                                   headers=signed(timestamp=int(time.time()) - 360)), 401, "too old")
        self.assertError(self.call("POST", "/hmac-ep", raw=body, token=None,
                                   headers=signed(timestamp=int(time.time()) + 360)), 401, "too new")
        # body altered after signing
        self.assertError(self.call("POST", "/hmac-ep", raw=b'{"name": "Altered"}', token=None,
                                   headers=signed()), 401)
        self.assertFalse(self.Partner.search([("name", "in", ("Signed Partner", "Altered"))]))
        # accepted, with either active secret
        self.assertStatus(self.call("POST", "/hmac-ep", raw=body, token=None, headers=signed()), 201)
        response = self.call("POST", "/hmac-ep", raw=body, token=None, headers=signed(old_secret))
        self.assertStatus(response, 201)
        # a replayed delivery (same webhook-id) is answered from the first response, not written again
        headers = signed(msg_id="msg_replay")
        first = self.call("POST", "/hmac-ep", raw=body, token=None, headers=headers)
        again = self.call("POST", "/hmac-ep", raw=body, token=None, headers=headers)
        self.assertStatus(again, 201)
        self.assertEqual(again.json(), first.json())
        self.assertEqual(again.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(self.Partner.search_count([("name", "=", "Signed Partner")]), 3)
        # GET requests are signed over an empty body
        self.assertStatus(self.call("GET", "/hmac-ep", token=None, headers=signed(payload=b"")), 200)

    def test_required_headers(self):
        config = self._in_config(
            "apikey-ep",
            header_ids=[
                Command.create({"key": "X-API-Key", "value": "k3y-value", "secret": True, "required": True}),
                Command.create({"key": "X-Tenant", "value": "acme", "required": True}),
                Command.create({"key": "Cache-Control", "value": "no-store"}),
                Command.create({"key": "X-Hidden", "value": "never-sent", "secret": True}),
            ],
        )
        self.assertEqual(config.header_ids[0]._get_value(), "k3y-value")
        cases = [
            ({}, 401),
            ({"X-API-Key": "k3y-value"}, 401),
            ({"X-API-Key": "wrong", "X-Tenant": "acme"}, 401),
            ({"X-API-Key": "k3y-value", "X-Tenant": "ACME"}, 401),
            ({"x-api-key": "k3y-value", "x-tenant": "acme"}, 200),
        ]
        for headers, status in cases:
            with self.subTest(headers=headers):
                response = self.call("GET", "/apikey-ep", token=None, headers=headers)
                self.assertStatus(response, status)
                # rows not marked Required go with every response, errors included; secret ones never
                self.assertEqual(response.headers.get("Cache-Control"), "no-store")
                self.assertNotIn("X-Hidden", response.headers)
                if status == 401:
                    self.assertIn("ApiKey", response.headers["WWW-Authenticate"])
        log = self.last_log()
        self.assertIn("X-Api-Key: ***", log.request_headers)
        self.assertNotIn("k3y-value", log.request_headers)
        self.assertIn("X-Tenant: ***", log.request_headers)

    # ------------------------------------------------------------------ statuses
    def test_403_run_as_user_without_create_rights(self):
        reader = new_test_user(self.env, login="inbound_reader", groups="base.group_user")
        self._in_config("reader-ep", user_id=reader.id)
        # reading is within the user's rights
        response = self.call("GET", "/reader-ep/%s" % self.person.id, token=None)
        self.assertStatus(response, 200)
        count = self.Partner.search_count([])
        response = self.call("POST", "/reader-ep", {"name": "Not Allowed"}, token=None)
        self.assertError(response, 403)
        response = self.call("POST", "/reader-ep", [{"name": "Not Allowed"}, {"name": "Either"}], token=None)
        self.assertError(response, 403, "Item 0")
        response = self.call("PUT", "/reader-ep/%s" % self.person.id, {"name": "Renamed"}, token=None)
        self.assertError(response, 403)
        self.assertEqual(self.Partner.search_count([]), count)
        self.person.invalidate_recordset()
        self.assertEqual(self.person.name, "Inbound Person")
        self.assertEqual(self.last_log().response_code, 403)

    def test_404_and_400_record(self):
        self.assertError(self.call("GET", "/partners/999999999"), 404)
        self.assertError(self.call("PUT", "/partners/999999999", {"name": "x"}), 404)
        self.assertError(self.call("DELETE", "/partners/999999999"), 404)
        self.assertError(self.call("GET", "/partners/not-a-number"), 400)
        # an archived configuration serves 404
        config = self._in_config("archived-ep")
        self.assertStatus(self.call("GET", "/archived-ep", token=None), 200)
        config.active = False
        self.assertError(self.call("GET", "/archived-ep", token=None), 404, "Endpoint not found")
        # an Out config with the same name is no endpoint
        self.assertError(self.call("GET", "/nope/1/2"), 404)

    def test_405(self):
        config = self._in_config("readonly-ep", methods=("GET",))
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            with self.subTest(method=method):
                response = self.call(method, "/readonly-ep", {"name": "x"}, token=None)
                self.assertError(response, 405)
                self.assertEqual(response.headers["Allow"], "GET, HEAD, OPTIONS")
        # the methods stored with the config follow a change of its HTTP Methods
        config.http_method_ids |= self.env["bj.http.method"].search([("name", "=", "POST")])
        self.assertStatus(self.call("POST", "/readonly-ep", {"name": "Now allowed"}, token=None), 201)
        self.assertEqual(config.method_names, "GET,POST")
        # POST on a record path is not a thing
        response = self.call("POST", "/partners/%s" % self.person.id, {"name": "x"})
        self.assertError(response, 405)
        self.assertNotIn("POST", response.headers["Allow"])
        # OPTIONS tells the methods without credentials; HEAD is a GET without body
        response = self.call("OPTIONS", "/partners", token=None)
        self.assertStatus(response, 204)
        self.assertEqual(response.headers["Allow"], "GET, HEAD, POST, PUT, DELETE, OPTIONS")
        response = self.opener.head(self.base_url() + API + "/partners/%s" % self.person.id,
                                    headers={"Authorization": "Bearer demo-token"})
        self.assertStatus(response, 200)
        self.assertFalse(response.content)

    def test_409_identifier_matches_several(self):
        self.Partner.create([{"name": "Twin A", "ref": "TWIN"}, {"name": "Twin B", "ref": "TWIN"}])
        self._in_config("by-ref", line_ids=[
            self._line("ref", "ref", is_record_identifier=True),
            self._line("name", "name"),
        ])
        self.assertError(self.call("GET", "/by-ref/TWIN", token=None), 409)
        self.assertError(self.call("PUT", "/by-ref/TWIN", {"name": "x"}, token=None), 409)
        self.assertError(self.call("POST", "/by-ref", {"ref": "TWIN", "name": "x"}, token=None), 409)
        self.assertEqual(set(self.Partner.search([("ref", "=", "TWIN")]).mapped("name")), {"Twin A", "Twin B"})
        # identifiers with slashes and spaces travel URL-encoded
        self.Partner.create({"name": "Slashed", "ref": "A/B 1"})
        response = self.call("GET", "/by-ref/A%2FB%201", token=None)
        self.assertStatus(response, 200)
        self.assertEqual(response.json()["name"], "Slashed")

    def test_413(self):
        self.env["ir.config_parameter"].sudo().set_param(inbound.MAX_BODY_PARAM, "2000")
        count = self.Partner.search_count([])
        response = self.call("POST", "/partners", {"name": "x" * 3000})
        self.assertError(response, 413)
        self.assertEqual(self.Partner.search_count([]), count)
        # a batch above the endpoint's limit
        self.env["ir.config_parameter"].sudo().set_param(inbound.MAX_BODY_PARAM, "")
        self.partners_config.limit = 3
        response = self.call("POST", "/partners", [{"name": "Batch %s" % i} for i in range(4)])
        self.assertError(response, 413, "limit of 3")
        self.assertEqual(self.Partner.search_count([]), count)

    def test_415(self):
        for content_type in ("text/plain", "application/x-www-form-urlencoded", "application/xml"):
            with self.subTest(content_type=content_type):
                response = self.call("POST", "/partners", {"name": "x"}, content_type=content_type)
                self.assertError(response, 415)
        self.assertStatus(self.call("POST", "/partners", {"name": "Json Charset"},
                                    content_type="application/json; charset=utf-8"), 201)
        self.assertStatus(self.call("POST", "/partners", {"name": "Vendor Json"},
                                    content_type="application/vnd.api+json"), 201)

    def test_400_bodies(self):
        cases = [
            ("", "required"),
            ("[1, 2]", "Item 0"),
            ('"text"', "JSON object"),
            ("[]", "empty"),
            ('{"name": NaN}', "Invalid JSON"),
            ("[" * 40 + "]" * 40, "too deeply"),
            ("[" * 100000 + "]" * 100000, "too deeply"),
            ('{"name": 12}', "name"),
            (b'{"name": "\xff"}', "Invalid JSON"),
        ]
        for raw, fragment in cases:
            with self.subTest(raw=raw[:30]):
                self.assertError(self.call("POST", "/partners", raw=raw), 400, fragment)
        self.assertError(self.call("PUT", "/partners/%s" % self.person.id, raw="[]"), 400, "JSON object")
        # PUT without id and without identifier in the body
        self.assertError(self.call("PUT", "/partners", {"name": "x"}), 400, "identifier")

    def test_500_script_error_has_no_traceback(self):
        config = self._in_config("script-ep", line_ids=[
            self._line("id", "id", is_record_identifier=True),
            self._line("name", "name"),
            self._line("comment", "boom", value_type="python_plain", script_mode="eval", python_script="1 / 0"),
        ])
        with mute_logger("odoo.addons.bj_api_sync.services.inbound", "odoo.addons.bj_api_sync.services.scripts"):
            response = self.call("GET", "/script-ep/%s" % self.person.id, token=None)
        body = self.assertError(response, 500)
        self.assertEqual(body["line_id"], config.line_ids.filtered(lambda line: line.api_key == "boom").id)
        self.assertNotIn("Traceback", response.text)
        self.assertNotIn('File "', response.text)
        log = self.last_log()
        self.assertEqual((log.status, log.response_code, log.config_id), ("error", 500, config))
        self.assertIn("Traceback", log.error_message)

    def test_500_unexpected_exception(self):
        self._in_config("crash-ep")
        with mute_logger("odoo.addons.bj_api_sync.services.inbound"):
            from unittest.mock import patch  # noqa: PLC0415

            with patch.object(inbound.mapping, "serialize", side_effect=RuntimeError("internal detail")):
                response = self.call("GET", "/crash-ep", token=None)
        self.assertEqual(response.json(), {"message": "Internal server error", "status_code": 500})
        log = self.last_log()
        self.assertIn("internal detail", log.error_message)
        self.assertIn("Traceback", log.error_message)

    # ------------------------------------------------------------------ operations
    def test_filter_domain_isolation(self):
        path = "/partners/%s" % self.company.id
        self.assertError(self.call("GET", path), 404)
        self.assertError(self.call("PUT", path, {"name": "Hijacked"}), 404)
        self.assertError(self.call("PATCH", path, {"name": "Hijacked"}), 405)
        self.assertError(self.call("DELETE", path), 404)
        self.assertError(self.call("PUT", "/partners", {"id": self.company.id, "name": "Hijacked"}), 404)
        # an upsert naming it does not reach it either: ids cannot be chosen, so 404
        self.assertError(self.call("POST", "/partners", {"id": self.company.id, "name": "Hijacked"}), 404)
        self.company.invalidate_recordset()
        self.assertTrue(self.company.exists())
        self.assertEqual(self.company.name, "Inbound Company")
        ids = self._walk("/partners?limit=100")
        self.assertNotIn(self.company.id, ids)
        self.assertIn(self.person.id, ids)
        self.assertEqual(self.call("GET", "/partners?name=Inbound%20Company").json(), [])

    def _walk(self, path):
        ids, url, pages = [], self.base_url() + API + path, 0
        while url:
            response = self.opener.get(url, headers={"Authorization": "Bearer demo-token"}, timeout=60)
            self.assertStatus(response, 200)
            ids += [item["id"] for item in response.json()]
            link = response.headers.get("Link")
            url = link[1:link.index(">")] if link else None
            pages += 1
            self.assertLess(pages, 1000)
        return ids

    def test_pagination_walks_every_record_once(self):
        self.Partner.create([{"name": "Page filler %s" % i} for i in range(25)])
        expected = self.Partner.search([("is_company", "=", False)], order="id").ids
        ids = self._walk("/partners?limit=7")
        self.assertEqual(ids, expected)
        # the first page counts; a middle page counts only when asked (Prefer: count=exact)
        first = self.call("GET", "/partners?limit=7")
        self.assertEqual(int(first.headers["X-Total-Count"]), len(expected))
        middle = self.call("GET", "/partners?limit=7&offset=7")
        self.assertNotIn("X-Total-Count", middle.headers)
        self.assertIn("offset=14", middle.headers["Link"])
        response = self.call("GET", "/partners?limit=7&offset=7", headers={"Prefer": "count=exact"})
        self.assertEqual(int(response.headers["X-Total-Count"]), len(expected))
        self.assertEqual([item["id"] for item in response.json()], expected[7:14])
        self.assertIn("offset=14", response.headers["Link"])
        self.assertIn("limit=7", response.headers["Link"])
        # a page past the end still says how many there are
        past = self.call("GET", "/partners?limit=7&offset=%s" % (len(expected) + 50))
        self.assertEqual(past.json(), [])
        self.assertEqual(int(past.headers["X-Total-Count"]), len(expected))
        # an exactly full last page: total known without a count, and no next link
        full_last = self.call("GET", "/partners?limit=%s&offset=%s" % (len(expected) - 7, 7))
        self.assertEqual(int(full_last.headers["X-Total-Count"]), len(expected))
        self.assertNotIn("Link", full_last.headers)
        # paginated config: default page size, never above the config's limit
        self.partners_config.write({"page_size": 5, "limit": 10})
        self.assertEqual(len(self.call("GET", "/partners").json()), 5)
        self.assertEqual(len(self.call("GET", "/partners?limit=1000").json()), 10)
        # not paginated: the limit is the default
        self.partners_config.write({"is_paginated": False, "limit": 8})
        self.assertEqual(len(self.call("GET", "/partners").json()), 8)
        # the last page has no next link
        response = self.call("GET", "/partners?limit=8&offset=%s" % (len(expected) - 3))
        self.assertEqual(len(response.json()), 3)
        self.assertNotIn("Link", response.headers)

    def test_query_filters(self):
        self.Partner.create([{"name": "Azure Interior Query"}, {"name": "azure Other", "email": "az@example.com"}])
        names = [p["name"] for p in self.call("GET", "/partners?res_name=azure").json()]
        self.assertIn("Azure Interior Query", names)
        self.assertIn("azure Other", names)
        # a Plain line's key filters by equality
        response = self.call("GET", "/partners?email=az@example.com")
        self.assertEqual([p["name"] for p in response.json()], ["azure Other"])
        response = self.call("GET", "/partners?id=%s" % self.person.id)
        self.assertEqual([p["id"] for p in response.json()], [self.person.id])
        self.assertError(self.call("GET", "/partners?id=abc"), 400, "id")
        self.assertError(self.call("GET", "/partners?colour=red"), 400, "Unknown query parameter 'colour'")
        self.assertError(self.call("GET", "/partners?limit=0"), 400, "limit")
        self.assertError(self.call("GET", "/partners?offset=-1"), 400, "offset")
        self.assertError(self.call("GET", "/partners?email=a&email=b"), 400, "more than once")
        # typed parameter values
        config = self._in_config("typed-ep", param_ids=[
            Command.create({"key": "active", "field_id": self._field("res.partner", "active").id, "operator": "="}),
            Command.create({"key": "ids", "field_id": self._field("res.partner", "id").id, "operator": "in"}),
        ])
        self.assertTrue(config)
        response = self.call("GET", "/typed-ep?active=true&ids=%s,%s" % (self.person.id, self.company.id), token=None)
        self.assertEqual([p["id"] for p in response.json()], [self.person.id])
        self.assertError(self.call("GET", "/typed-ep?active=maybe", token=None), 400, "active")

    def test_post_upsert_and_partial_updates(self):
        config = self._in_config("by-ref-up", line_ids=[
            self._line("ref", "code", is_record_identifier=True),
            self._line("name", "name", required=True),
            self._line("email", "email"),
        ])
        self.assertTrue(config)
        response = self.call("POST", "/by-ref-up", {"code": "C-1", "name": "First", "email": "f@example.com"},
                             token=None)
        self.assertStatus(response, 201)
        response = self.call("POST", "/by-ref-up", {"code": "C-1", "name": "First again"}, token=None)
        self.assertStatus(response, 200)
        self.assertEqual(response.json(), {"code": "C-1", "name": "First again", "email": "f@example.com"})
        self.assertEqual(self.Partner.search_count([("ref", "=", "C-1")]), 1)
        # PATCH: only the keys sent
        response = self.call("PATCH", "/by-ref-up/C-1", {"email": "new@example.com"}, token=None)
        self.assertStatus(response, 200)
        self.assertEqual(response.json(), {"code": "C-1", "name": "First again", "email": "new@example.com"})
        # PUT without id in the URL: the identifier comes from the body
        response = self.call("PUT", "/by-ref-up", {"code": "C-1", "name": "By body"}, token=None)
        self.assertStatus(response, 200)
        self.assertEqual(response.json()["name"], "By body")
        # DELETE by body identifier
        response = self.call("DELETE", "/by-ref-up", {"code": "C-1"}, token=None)
        self.assertStatus(response, 200)
        self.assertFalse(self.Partner.search([("ref", "=", "C-1")]))

    def test_required_line_cannot_be_emptied_by_an_update(self):
        """A Required line refuses null / empty on PUT, PATCH and POST-upsert exactly as on create
        (same status, body shape, message and line), in nested objects too; nothing is written."""
        countries = self._in_config("req-countries", model_id=self.env.ref("base.model_res_country").id,
                                    filter_domain="[]", line_ids=[
                                        self._line("code", "code", model="res.country", is_record_identifier=True),
                                        self._line("name", "name", model="res.country", required=True),
                                    ])
        contacts = self._in_config("req-contacts", filter_domain="[]", line_ids=[
            self._line("ref", "ref", is_record_identifier=True),
            self._line("name", "name", required=True),
        ])
        config = self._in_config("req-up", line_ids=[
            self._line("ref", "code", is_record_identifier=True),
            self._line("name", "name", required=True),
            self._line("email", "email"),
            self._line("child_ids", "contacts", value_type="relational", mapping_config_id=contacts.id),
            self._line("country_id", "country", value_type="relational", mapping_config_id=countries.id),
        ])
        name_line = config.line_ids.filtered(lambda line: line.api_key == "name")
        child_name_line = contacts.line_ids.filtered(lambda line: line.api_key == "name")
        country_name_line = countries.line_ids.filtered(lambda line: line.api_key == "name")
        # On create: what an update must answer as well.
        null_on_create = self.assertError(self.call("POST", "/req-up", {"code": "R-0", "name": None}, token=None), 400)
        self.assertEqual(null_on_create, {"error": "Required key 'name' cannot be null.", "line_id": name_line.id,
                                          "status_code": 400})
        self.assertEqual(
            self.assertError(self.call("POST", "/req-up", {"code": "R-0", "name": "  "}, token=None), 400),
            {"error": "Required key 'name' cannot be empty.", "line_id": name_line.id, "status_code": 400},
        )
        self.assertFalse(self.Partner.search([("ref", "=", "R-0")]))

        partner = self.Partner.create({"name": "Keep Me", "ref": "R-1", "email": "k@example.com",
                                       "country_id": self.env.ref("base.be").id})
        child = self.Partner.create({"name": "Child Keep", "ref": "R-1-C", "parent_id": partner.id})
        write_date = partner.write_date
        cases = [
            ("PUT", "/req-up/R-1", {"name": None, "email": "x@example.com"}, name_line, "cannot be null"),
            ("PATCH", "/req-up/R-1", {"name": None}, name_line, "cannot be null"),
            ("PATCH", "/req-up/R-1", {"name": ""}, name_line, "cannot be empty"),
            ("PUT", "/req-up", {"code": "R-1", "name": None}, name_line, "cannot be null"),  # id from the body
            ("POST", "/req-up", {"code": "R-1", "name": None}, name_line, "cannot be null"),  # upsert: existing
            ("POST", "/req-up", {"code": "R-1", "name": "\t"}, name_line, "cannot be empty"),
            # nested: a one2many child matched by its identifier, a many2one object found by its identifier
            ("PATCH", "/req-up/R-1", {"contacts": [{"ref": "R-1-C", "name": None}]}, child_name_line,
             "cannot be null"),
            ("PATCH", "/req-up/R-1", {"country": {"code": "BE", "name": None}}, country_name_line,
             "cannot be null"),
            ("POST", "/req-up", {"code": "R-1", "name": "New", "country": {"code": "BE", "name": ""}},
             country_name_line, "cannot be empty"),
        ]
        for method, path, body, line, fragment in cases:
            with self.subTest(method=method, body=body):
                answer = self.assertError(self.call(method, path, body, token=None), 400)
                self.assertEqual(answer, {"error": "Required key '%s' %s." % (line.api_key, fragment),
                                          "line_id": line.id, "status_code": 400})
        (partner | child).invalidate_recordset()
        self.env.ref("base.be").invalidate_recordset()
        self.assertEqual((partner.name, partner.email, partner.write_date), ("Keep Me", "k@example.com", write_date))
        self.assertEqual(child.name, "Child Keep")
        self.assertEqual(self.env.ref("base.be").name, "Belgium")
        # A key left out is still left alone, and a real value is still written.
        response = self.call("PATCH", "/req-up/R-1", {"email": "new@example.com",
                                                      "contacts": [{"ref": "R-1-C", "name": "Child New"}]}, token=None)
        self.assertStatus(response, 200)
        (partner | child).invalidate_recordset()
        self.assertEqual((partner.name, partner.email, child.name), ("Keep Me", "new@example.com", "Child New"))

    def test_delete_archive_mode(self):
        self._in_config("archive-ep", delete_mode="archive")
        partner = self.Partner.create({"name": "To Archive"})
        response = self.call("DELETE", "/archive-ep/%s" % partner.id, token=None)
        self.assertStatus(response, 200)
        self.assertEqual(response.json()["name"], "To Archive")
        partner.invalidate_recordset()
        self.assertTrue(partner.exists())
        self.assertFalse(partner.active)
        self.assertError(self.call("GET", "/archive-ep/%s" % partner.id, token=None), 404)

    def test_batch(self):
        items = [{"name": "Batch %s" % i, "email": "b%s@example.com" % i} for i in range(5)]
        items.insert(2, {"id": self.person.id, "name": "Person via batch"})
        response = self.call("POST", "/partners", items)
        self.assertStatus(response, 201)
        result = response.json()
        self.assertEqual([item["name"] for item in result], [item["name"] for item in items])
        self.assertEqual(result[2]["id"], self.person.id)
        self.assertEqual(self.Partner.search_count([("name", "=like", "Batch %")]), 5)
        log = self.last_log()
        self.assertEqual(len(log.res_ids.split(",")), 6)

    def test_batch_history_tracking_follows_the_option(self):
        def chatter(partners):
            return self.env["mail.message"].search_count([("model", "=", "res.partner"), ("res_id", "in", partners.ids)])

        # default: like Odoo's import, a batch leaves the chatter alone (creation and updates)
        response = self.call("POST", "/partners", [{"name": "Quiet %s" % i} for i in range(3)]
                             + [{"id": self.person.id, "name": "Person renamed quietly"}])
        self.assertStatus(response, 201)
        quiet = self.Partner.search([("name", "=like", "Quiet %")])
        self.assertEqual(len(quiet), 3)
        self.assertEqual(chatter(quiet), 0)
        self.assertFalse(quiet.message_follower_ids)
        self.assertEqual(self.person.name, "Person renamed quietly")
        self.assertFalse(self.person.message_ids.tracking_value_ids.filtered(
            lambda t: t.new_value_char == "Person renamed quietly"))
        # a single object is always tracked
        self.assertStatus(self.call("POST", "/partners", {"name": "Single tracked"}), 201)
        self.assertEqual(chatter(self.Partner.search([("name", "=", "Single tracked")])), 1)
        # the option on: batches are tracked like single objects
        self.partners_config.track_batch_history = True
        self.assertStatus(self.call("POST", "/partners", [{"name": "Loud %s" % i} for i in range(3)]), 201)
        self.assertEqual(chatter(self.Partner.search([("name", "=like", "Loud %")])), 3)

    def test_batch_with_one_bad_item_writes_nothing(self):
        items = [{"name": "All or nothing %s" % i} for i in range(5)]
        items[3]["email"] = 42
        response = self.call("POST", "/partners", items)
        body = self.assertError(response, 400, "Item 3")
        self.assertEqual(body["line_id"], self.partners_config.line_ids.filtered(lambda line: line.api_key == "email").id)
        self.assertFalse(self.Partner.search([("name", "=like", "All or nothing%")]))
        log = self.last_log()
        self.assertEqual((log.status, log.response_code, log.config_id), ("error", 400, self.partners_config))
        self.assertIn("Item 3", log.error_message)
        self.assertFalse(log.res_ids)
        # a failure only the database sees (here a NOT NULL) is named too, and rolled back
        items = [{"name": "Db check %s" % i} for i in range(4)]
        items[2]["name"] = None
        self._in_config("loose-ep", line_ids=[
            self._line("id", "id", is_record_identifier=True), self._line("name", "name")])
        with mute_logger("odoo.sql_db"):
            response = self.call("POST", "/loose-ep", items, token=None)
        self.assertError(response, 400, "Item 2")
        self.assertFalse(self.Partner.search([("name", "=like", "Db check%")]))

    def test_logs(self):
        count = self.Log.search_count([])
        self.call("GET", "/partners", token="wrong")
        log = self.last_log()
        self.assertEqual(self.Log.search_count([]), count + 1)
        self.assertEqual(
            (log.direction, log.method, log.response_code, log.status, log.config_id),
            ("in", "GET", 401, "error", self.partners_config),
        )
        self.assertIn("/bj_api_sync/v1/partners", log.url)
        self.assertIn("Authorization: ***", log.request_headers)
        self.assertNotIn("wrong", log.request_headers)
        self.assertGreaterEqual(log.duration_ms, 0)
        # unknown endpoints are logged too, without a config
        self.call("GET", "/no-such-endpoint")
        log = self.last_log()
        self.assertEqual((log.response_code, log.config_id.id), (404, False))
        # success with payloads
        self.call("POST", "/partners", {"name": "Logged Partner"})
        log = self.last_log()
        self.assertEqual((log.status, log.response_code, log.res_model), ("success", 201, "res.partner"))
        self.assertIn("Logged Partner", log.request_data)
        self.assertIn("Logged Partner", log.response_data)
        self.assertEqual(log.res_ids, str(self.Partner.search([("name", "=", "Logged Partner")]).id))
        # metadata only
        self.partners_config.log_payloads = False
        self.call("POST", "/partners", {"name": "Quiet Partner"})
        log = self.last_log()
        self.assertEqual(log.response_code, 201)
        self.assertFalse(log.request_data)
        self.assertFalse(log.response_data)

    def test_idempotency_key(self):
        headers = {"Idempotency-Key": "order-42"}
        first = self.call("POST", "/partners", {"name": "Idempotent Partner"}, headers=headers)
        self.assertStatus(first, 201)
        second = self.call("POST", "/partners", {"name": "Idempotent Partner"}, headers=headers)
        self.assertStatus(second, 201)
        self.assertEqual(second.json(), first.json())
        self.assertEqual(second.headers.get("Idempotent-Replayed"), "true")
        self.assertEqual(self.Partner.search_count([("name", "=", "Idempotent Partner")]), 1)
        self.assertEqual(self.last_log().response_code, 201)
        # same key, another request: refused
        third = self.call("POST", "/partners", {"name": "Another"}, headers=headers)
        self.assertError(third, 422)
        # the key is per config: another endpoint may use it
        self._in_config("other-ep")
        self.assertStatus(self.call("POST", "/other-ep", {"name": "Idempotent Partner"}, token=None,
                                    headers=headers), 201)
        # errors are replayed too (a 4xx is an answer); a key still running is busy
        bad = {"Idempotency-Key": "bad-1"}
        self.assertError(self.call("POST", "/partners", {"name": 1}, headers=bad), 400)
        self.assertError(self.call("POST", "/partners", {"name": 1}, headers=bad), 400)
        self.env["bj.api.idempotency"].create({"config_id": self.partners_config.id, "key": "running"})
        response = self.call("POST", "/partners", {"name": "Busy"}, headers={"Idempotency-Key": "running"})
        self.assertError(response, 409, "in progress")
        self.assertFalse(self.Partner.search([("name", "=", "Busy")]))
        # expired keys are purged by the daily log cron and no longer replay
        keys = self.env["bj.api.idempotency"].search([("key", "=", "order-42")])
        self.env.cr.execute(
            "UPDATE bj_api_idempotency SET create_date = create_date - interval '25 hours' WHERE id IN %s",
            [tuple(keys.ids)],
        )
        self.Log._purge_old_logs()
        self.assertFalse(keys.exists())
        self.assertStatus(self.call("POST", "/partners", {"name": "Idempotent Partner"}, headers=headers), 201)
        self.assertEqual(self.Partner.search_count([("name", "=", "Idempotent Partner")]), 3)

    def test_run_as_company(self):
        company_b = self.env["res.company"].create({"name": "Inbound Company B"})
        admin = self.env.ref("base.user_admin")
        admin.company_ids |= company_b
        config = self._in_config("company-ep", company_id=company_b.id, line_ids=[
            self._line("id", "id", is_record_identifier=True),
            self._line("name", "name"),
            self._line("company_id", "company_id", value_type="python_plain", python_script="env.company.id",
                       direction="out"),
        ])
        self.assertTrue(config)
        response = self.call("GET", "/company-ep/%s" % self.person.id, token=None)
        self.assertEqual(response.json()["company_id"], company_b.id)

    def test_429_rate_limit(self):
        self._in_config("limited-ep", rate_limit=3, auth_type="bearer", bearer_token="t0k")
        # refused credentials do not eat the budget of the real client
        for _i in range(5):
            self.assertError(self.call("GET", "/limited-ep", token="wrong"), 401)
        for _i in range(3):
            self.assertStatus(self.call("GET", "/limited-ep", token="t0k"), 200)
        response = self.call("GET", "/limited-ep", token="t0k")
        self.assertError(response, 429, "3 requests per minute")
        self.assertTrue(1 <= int(response.headers["Retry-After"]) <= 61)
        self.assertError(self.call("POST", "/limited-ep", {"name": "Too many"}, token="t0k"), 429)
        self.assertFalse(self.Partner.search([("name", "=", "Too many")]))

    def test_service_without_http(self):
        """handle() is usable on its own (bench, other entry points)."""
        status, headers, body = inbound.handle(
            self.env, "partners", "GET", record_id=str(self.person.id),
            headers={"Authorization": "Bearer demo-token"}, url="http://x/bj_api_sync/v1/partners",
        )
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(body)["id"], self.person.id)
        self.assertTrue(headers["Content-Type"].startswith("application/json"))


@tagged("post_install", "-at_install")
class TestInboundClaims(BaseCase):
    """Two real transactions racing for one Idempotency-Key (not possible through HttpCase)."""

    def setUp(self):
        super().setUp()
        self.db = sql_db.db_connect(self._db_name())
        with self.db.cursor() as cr:
            cr.execute("SELECT res_id FROM ir_model_data WHERE module = 'bj_api_sync' AND name = 'demo_config_partners'")
            self.config_id = cr.fetchone()[0]
        self.key = "race-%s" % uuid.uuid4().hex

    def tearDown(self):
        with self.db.cursor() as cr:
            cr.execute("DELETE FROM bj_api_idempotency WHERE key = %s", [self.key])
        super().tearDown()

    def _db_name(self):
        from odoo.tools import config  # noqa: PLC0415

        return config["db_name"].split(",")[0]

    def _keys(self, cr):
        return api.Environment(cr, 1, {})["bj.api.idempotency"]

    def test_second_request_waits_then_replays(self):
        with self.db.cursor() as cr1, self.db.cursor() as cr2:
            cr2.execute("SELECT 1")  # cr2's snapshot predates cr1's commit, as in a busy server
            claim = self._keys(cr1)._claim(self.config_id, self.key, "fp")
            self.assertEqual(claim[0], "claimed")
            outcome = {}
            keys2 = self._keys(cr2)  # built here: the test runner holds the registry lock

            def second():
                try:
                    outcome["result"] = keys2._claim(self.config_id, self.key, "fp")
                except psycopg2.Error as exc:
                    outcome["error"] = exc

            thread = threading.Thread(target=second)
            thread.start()
            time.sleep(0.5)
            self.assertTrue(thread.is_alive(), "the second claim must wait for the first transaction")
            self._keys(cr1)._store(claim[1], 201, {"X-A": "1"}, '{"id": 7}')
            cr1.commit()
            thread.join(15)
            self.assertFalse(thread.is_alive())
            # Odoo retries a request that met a serialization failure; the retry replays.
            self.assertIsInstance(outcome.get("error"), psycopg2.errors.SerializationFailure, outcome)
            cr2.rollback()
            self.assertEqual(self._keys(cr2)._claim(self.config_id, self.key, "fp"),
                             ("replay", 201, {"X-A": "1"}, '{"id": 7}'))
            self.assertEqual(self._keys(cr2)._claim(self.config_id, self.key, "other"), ("mismatch",))

    def test_second_request_gives_up_while_first_runs(self):
        with self.db.cursor() as cr1, self.db.cursor() as cr2:
            self.assertEqual(self._keys(cr1)._claim(self.config_id, self.key, "fp")[0], "claimed")
            self.assertEqual(self._keys(cr2)._claim(self.config_id, self.key, "fp", lock_timeout_ms=200), ("busy",))
            # the give-up left cr2 usable, with its lock timeout restored
            cr2.execute("SHOW lock_timeout")
            self.assertEqual(cr2.fetchone()[0], "0")
            cr1.rollback()
            # the first request failed on our side: the key is free again
            self.assertEqual(self._keys(cr2)._claim(self.config_id, self.key, "fp")[0], "claimed")
            cr2.rollback()


@tagged("post_install", "-at_install")
class TestInboundScriptLog(InboundCase):
    def test_script_log_messages_reach_the_api_log(self):
        self._in_config(
            "script-log",
            line_ids=[
                self._line("id", "id", is_record_identifier=True),
                self._line(
                    "name",
                    "name",
                    value_type="python_plain",
                    script_mode="exec",
                    python_script="log('received %s' % request_data.get('name'))\nresult = request_data.get('name')",
                ),
            ],
        )
        response = self.call("POST", "/script-log", {"name": "Logged Partner"}, token=None)
        self.assertStatus(response, 201)
        log = self.last_log()
        # the script runs inbound (payload) and again to build the response (outbound direction)
        self.assertIn("name: received Logged Partner", log.script_messages.splitlines())


@tagged("post_install", "-at_install")
class TestLogAfterCommit(BaseCase):
    """Outside tests an inbound request's log row is sent once the request commits
    (``transaction.send_after_commit``): what a live server does, on real transactions."""

    def test_the_log_row_is_sent_after_the_commit_and_never_after_a_rollback(self):
        from odoo.tools import config  # noqa: PLC0415

        db = sql_db.db_connect(config["db_name"].split(",")[0])
        prefix = "http://bj-sent.test/%s/" % uuid.uuid4().hex
        with db.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})

            def sent(tag):
                vals = {"direction": "in", "method": "GET", "url": prefix + tag, "status": "success",
                        "response_code": 200, "request_headers": "Authorization: ***"}
                transaction.send_after_commit(env, env["bj.api.log"]._insert_query([vals])[0])

            sent("rolled back")
            cr.rollback()
            sent("committed")
            cr.execute("SELECT count(*) FROM bj_api_log WHERE url LIKE %s", [prefix + "%"])
            self.assertEqual(cr.fetchone()[0], 0, "nothing is sent before the commit")
            cr.commit()  # pylint: disable=invalid-commit
        log_connection.settle_all()
        with db.cursor() as cr:
            cr.execute("SELECT url, company_id, create_uid FROM bj_api_log WHERE url LIKE %s", [prefix + "%"])
            rows = cr.fetchall()
            cr.execute("DELETE FROM bj_api_log WHERE url LIKE %s", [prefix + "%"])
        self.assertEqual(rows, [(prefix + "committed", None, SUPERUSER_ID)])
