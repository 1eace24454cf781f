#!/usr/bin/env python3
"""Fuzz campaign against the inbound API of a live Odoo (run by scripts/fuzz.sh).

1. Set-up, as admin over JSON-RPC: three more inbound configurations next to the demo ones, with
   secrets the campaign knows (Basic password, secret required header, HMAC secret), typed fields
   and Parameters rows, an open endpoint on another model and a script line.
2. schemathesis on the OpenAPI document the server publishes (fetched with an admin session):
   once with the demo bearer token (``Authorization: Bearer demo-token``), once with the Basic
   credentials of ``fuzz-basic``. tests/fuzz/st_hooks.py numbers every request (``X-Fuzz-Id``).
3. A hand-written pass of malformed input sent over raw sockets (so that nothing is normalised on
   the way): broken UTF-8, NUL bytes, huge numbers, deep nesting, wrong types, path traversal,
   SQL metacharacters in endpoints, ids and query values, odd methods, very long headers.
4. The goals, checked in the database and in every response:
   - no 5xx;
   - every request that reached an inbound route has its ``bj.api.log`` row (matched by X-Fuzz-Id);
   - no secret in any response, nor in any text column of any table;
   - nothing written by a rejected request: every record created, changed or deleted during the
     campaign belongs to a 2xx log row; rejected rows name no record; the malformed pass leaves
     the record counts as they were, apart from its 2xx writes.
Prints the figures and ends with ``fuzz: N passed, N failed`` (one per goal).
"""

import argparse
import base64
import collections
import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from urllib.parse import unquote_to_bytes

import psycopg2
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # tests/: db_scan (standard library only)

from db_scan import text_columns  # noqa: E402

API = "/bj_api_sync/v1"
# A target the inbound routes serve: /bj_api_sync/v1/<endpoint>[/<record id...>], not the OpenAPI document.
ROUTE = re.compile(rb"^/bj_api_sync/v1/(?!openapi\.json$)[^/]+(/.+)?$")


# ---------------------------------------------------------------------------
# Odoo over JSON-RPC, as admin
# ---------------------------------------------------------------------------


class Odoo:
    def __init__(self, base_url, db):
        self.base_url = base_url
        self.session = requests.Session()
        response = self.session.post(
            base_url + "/web/session/authenticate",
            json={"jsonrpc": "2.0", "params": {"db": db, "login": "admin", "password": "admin"}},
            timeout=60,
        )
        response.raise_for_status()
        if not (response.json().get("result") or {}).get("uid"):
            raise SystemExit("admin login failed: %s" % response.text[:500])

    def call(self, model, method, *args, **kwargs):
        response = self.session.post(
            "%s/web/dataset/call_kw/%s/%s" % (self.base_url, model, method),
            json={"jsonrpc": "2.0", "params": {"model": model, "method": method, "args": list(args),
                                               "kwargs": kwargs}},
            timeout=120,
        )
        data = response.json()
        if data.get("error"):
            raise SystemExit("%s.%s failed: %s" % (model, method, json.dumps(data["error"])[:2000]))
        return data["result"]


# The partner endpoints leave out the partners of users, as an integrator would. Found by this campaign:
# with them in, a client can empty the name of a user's partner (PATCH {"name": ""}), after which
# deleting it fails inside Odoo itself (res.partner._unlink_except_user joins display names, one of
# them False: TypeError, a 500).
USERS_PARTNERS_EXCLUDED = "[('is_company', '=', False), ('user_ids', '=', False)]"


def setup_configs(odoo, secrets):
    """The campaign's own inbound configurations (recreated on every run)."""
    methods = {m["name"]: m["id"] for m in odoo.call("bj.http.method", "search_read", [], fields=["name"])}
    all_methods = [[6, 0, list(methods.values())]]
    admin = odoo.call("res.users", "search", [["login", "=", "admin"]])[0]

    def fields_of(model):
        rows = odoo.call("ir.model.fields", "search_read", [["model", "=", model]], fields=["name"])
        return {row["name"]: row["id"] for row in rows}

    def model_id(model):
        return odoo.call("ir.model", "search", [["model", "=", model]])[0]

    partner, category = fields_of("res.partner"), fields_of("res.partner.category")

    def line(fields, name, key, **kw):
        return [0, 0, dict({"field_id": fields[name], "value_type": "plain", "api_key": key}, **kw)]

    demo = odoo.call("bj.api.sync.config", "search", [["endpoint", "=", "partners"]])
    odoo.call("bj.api.sync.config", "write", demo, {"filter_domain": USERS_PARTNERS_EXCLUDED})
    old = odoo.call("bj.api.sync.config", "search",
                    [["endpoint", "in", ["fuzz-basic", "fuzz-hmac", "fuzz-open"]]], context={"active_test": False})
    if old:
        odoo.call("bj.api.sync.config", "unlink", old)
    common = {"request_type": "in", "http_method_ids": all_methods, "user_id": admin}
    odoo.call("bj.api.sync.config", "create", [
        dict(common, name="Fuzz Basic", endpoint="fuzz-basic", model_id=model_id("res.partner"),
             auth_type="basic", login="fuzz-user", password=secrets["basic password"], limit=50,
             filter_domain=USERS_PARTNERS_EXCLUDED,
             header_ids=[[0, 0, {"key": "X-Fuzz-Key", "value": secrets["secret header"], "secret": True,
                                 "required": True}],
                         [0, 0, {"key": "Cache-Control", "value": "no-store"}]],
             line_ids=[line(partner, "id", "id", is_record_identifier=True), line(partner, "name", "name", required=True),
                       line(partner, "email", "email"), line(partner, "phone", "phone"),
                       line(partner, "color", "color"), line(partner, "partner_latitude", "latitude"),
                       line(partner, "employee", "employee"),
                       line(partner, "country_id", "country"), line(partner, "category_id", "tags"),
                       line(partner, "comment", "comment"), line(partner, "type", "type")],
             param_ids=[[0, 0, {"key": "name_like", "field_id": partner["name"], "operator": "ilike"}],
                        [0, 0, {"key": "color_min", "field_id": partner["color"], "operator": ">="}],
                        [0, 0, {"key": "ids", "field_id": partner["id"], "operator": "in"}],
                        [0, 0, {"key": "country_is", "field_id": partner["country_id"], "operator": "="}]]),
        dict(common, name="Fuzz HMAC", endpoint="fuzz-hmac", model_id=model_id("res.partner"),
             auth_type="hmac", hmac_secret=secrets["hmac secret"],
             filter_domain=USERS_PARTNERS_EXCLUDED,
             line_ids=[line(partner, "id", "id", is_record_identifier=True), line(partner, "name", "name")]),
        dict(common, name="Fuzz Open", endpoint="fuzz-open", model_id=model_id("res.partner.category"),
             auth_type="none",
             line_ids=[line(category, "id", "id", is_record_identifier=True),
                       line(category, "name", "name", required=True), line(category, "color", "color"),
                       line(category, "parent_id", "parent"), line(category, "active", "active"),
                       line(category, "name", "label", value_type="python_plain", direction="out",
                            script_mode="eval", python_script="(record.name or '').upper()")]),
    ])


# ---------------------------------------------------------------------------
# Raw HTTP: every byte as written here
# ---------------------------------------------------------------------------


class Reply:
    def __init__(self, status=0, headers=None, body=b"", error=None):
        self.status = status
        self.headers = headers or {}
        self.body = body
        self.error = error

    @property
    def content_type(self):
        return self.headers.get("content-type", "")

    def is_ours(self):
        """Answered past Odoo's routing: anything but an HTML error page of Odoo or the HTTP server."""
        return bool(self.status) and not self.content_type.startswith("text/html")


def _dechunk(data):
    out, rest = b"", data
    while rest:
        size_line, _sep, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def raw_request(port, method, target, headers=(), body=b"", timeout=60, content_length=True):
    head = [method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1:%d" % port, b"Connection: close"]
    names = {name.lower() for name, _value in headers}
    if content_length and body is not None and b"content-length" not in names and b"transfer-encoding" not in names:
        head.append(b"Content-Length: %d" % len(body))
    head += [name + b": " + value for name, value in headers]
    data = b"\r\n".join(head) + b"\r\n\r\n" + (body or b"")
    received = b""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            try:
                sock.sendall(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the server answered before reading everything (a 413, say): read its answer
            while True:
                try:
                    chunk = sock.recv(65536)
                except (ConnectionResetError, TimeoutError):
                    break
                if not chunk:
                    break
                received += chunk
    except OSError as exc:
        return Reply(error="%s: %s" % (type(exc).__name__, exc))
    if not received:
        return Reply(error="no answer (connection closed, or nothing within %s s)" % timeout)
    head, _sep, body = received.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    try:
        status = int(lines[0].split()[1])
    except (IndexError, ValueError):
        return Reply(error="unreadable status line %r" % lines[0][:100])
    reply_headers = {}
    for raw in lines[1:]:
        name, _sep, value = raw.partition(b":")
        reply_headers[name.strip().lower().decode("latin-1")] = value.strip().decode("latin-1")
    if "chunked" in reply_headers.get("transfer-encoding", ""):
        body = _dechunk(body)
    return Reply(status, reply_headers, body)


# ---------------------------------------------------------------------------
# The hand-written malformed input
# ---------------------------------------------------------------------------


def hmac_headers(secret, body, timestamp=None, msg_id=None):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    msg_id = msg_id or "msg_%s" % uuid.uuid4().hex
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(key, b"%s.%d.%s" % (msg_id.encode(), timestamp, body), hashlib.sha256).digest()
    return [(b"webhook-id", msg_id.encode()), (b"webhook-timestamp", str(timestamp).encode()),
            (b"webhook-signature", b"v1," + base64.b64encode(digest))]


def malformed_cases(secrets):
    """``(label, method, target, headers, body, auth, timeout)``; ``auth`` names the credentials to add."""
    cases = []

    def add(label, method, target, body=b"", headers=(), auth="bearer", timeout=60):
        cases.append((label, method, target, list(headers), body, auth, timeout))

    json_ct = [(b"Content-Type", b"application/json")]
    # -- bodies: encodings and bytes
    bodies = {
        "broken utf-8": b'{"name": "\xff\xfe"}',
        "truncated utf-8": b'{"name": "\xc3"}',
        "overlong utf-8": b'{"name": "\xc0\xaf"}',
        "lone surrogate escape": b'{"name": "\\ud800"}',
        "escaped NUL": b'{"name": "a\\u0000b"}',
        "raw NUL in a string": b'{"name": "a\x00b"}',
        "NUL after the object": b'{"name": "x"}\x00',
        "only NULs": b"\x00" * 64,
        "utf-8 BOM": b'\xef\xbb\xbf{"name": "bom"}',
        "utf-16": '{"name": "utf16"}'.encode("utf-16"),
        "control characters": b'{"name": "a\x01\x02\x1b[31m"}',
        "unicode line separators": '{"name": "a\u2028b\u2029c"}'.encode(),
        "emoji and RTL": '{"name": "\U0001F600 \u202eevil"}'.encode(),
        "huge float 1e400": b'{"name": "n", "phone": 1e400}',
        "huge int 10**1000": b'{"name": "n", "phone": %s}' % (b"1" + b"0" * 1000),
        "int beyond the digit limit": b'{"name": "n", "phone": %s}' % (b"9" * 5000),
        "NaN literal": b'{"name": NaN}',
        "Infinity literal": b'{"name": Infinity}',
        "-Infinity literal": b'{"name": -Infinity}',
        "deep array": b"[" * 100000 + b"]" * 100000,
        "deep object": b'{"a":' * 50000 + b"1" + b"}" * 50000,
        "deep but unclosed": b"[" * 200000,
        "deep value in a field": b'{"name": %s}' % (b"[" * 40 + b"]" * 40),
        "string top level": b'"text"',
        "number top level": b"123",
        "null top level": b"null",
        "true top level": b"true",
        "empty object": b"{}",
        "empty array": b"[]",
        "array of scalars": b"[1, 2, 3]",
        "array of nulls": b"[null]",
        "duplicate keys": b'{"name": "dup a", "name": "dup b"}',
        "trailing comma": b'{"name": "x",}',
        "single quotes": b"{'name': 'x'}",
        "comments": b'{"name": "x" /* c */}',
        "unterminated string": b'{"name": "x',
        "just whitespace": b" \t\r\n ",
        "very long key": b'{"%s": 1, "name": "x"}' % (b"k" * 100000),
        "many keys": b"{" + b",".join(b'"k%d": %d' % (i, i) for i in range(20000)) + b', "name": "x"}',
        "long name": b'{"name": "%s"}' % (b"n" * 200000),
        "name null": b'{"name": null}',
        "name array": b'{"name": []}',
        "name object": b'{"name": {"$ne": null}}',
        "name bool": b'{"name": true}',
        "name float": b'{"name": 1.5}',
        "email number": b'{"name": "x", "email": 5}',
        "id huge": b'{"id": %s, "name": "x"}' % (b"9" * 40),
        "id float huge": b'{"id": 1e400, "name": "x"}',
        "id negative": b'{"id": -1, "name": "x"}',
        "id float": b'{"id": 1.5, "name": "x"}',
        "id bool": b'{"id": true, "name": "x"}',
        "id SQL": b'{"id": "1 OR 1=1", "name": "x"}',
        "id SQL quote": b'{"id": "1\' OR \'1\'=\'1", "name": "x"}',
        "id object": b'{"id": {"$gt": 0}, "name": "x"}',
        "unknown keys": b'{"name": "unknown keys", "password": "x", "__proto__": {}, "constructor": 1}',
        "script injection in a char": b'{"name": "__import__(\'os\').system(\'id\')"}',
    }
    for label, body in bodies.items():
        add("POST body: " + label, b"POST", API.encode() + b"/partners", body, json_ct)
    # typed fields of fuzz-basic
    typed = {
        "color 1e400": b'{"name": "t", "color": 1e400}',
        "color 10**1000": b'{"name": "t", "color": 1%s}' % (b"0" * 1000),
        "color -10**1000": b'{"name": "t", "color": -1%s}' % (b"0" * 1000),
        "color 2**31": b'{"name": "t", "color": 2147483648}',
        "color string": b'{"name": "t", "color": "red"}',
        "color numeric string huge": b'{"name": "t", "color": "%s"}' % (b"9" * 3000),
        "color 1.5": b'{"name": "t", "color": 1.5}',
        "color 1e-400": b'{"name": "t", "color": 1e-400}',
        "latitude 1e400": b'{"name": "t", "latitude": 1e400}',
        "latitude 1e300": b'{"name": "t", "latitude": 1e300}',
        "latitude 1e-400": b'{"name": "t", "latitude": 1e-400}',
        "latitude 'NaN'": b'{"name": "t", "latitude": "NaN"}',
        "latitude 'Infinity'": b'{"name": "t", "latitude": "Infinity"}',
        "latitude '1e400'": b'{"name": "t", "latitude": "1e400"}',
        "latitude 10**1000": b'{"name": "t", "latitude": 1%s}' % (b"0" * 1000),
        "employee maybe": b'{"name": "t", "employee": "maybe"}',
        "employee 2": b'{"name": "t", "employee": 2}',
                                                        "country code": b'{"name": "t", "country": "FR"}',
        "country unknown": b'{"name": "t", "country": 99999999}',
        "country huge": b'{"name": "t", "country": %s}' % (b"9" * 30),
        "country negative": b'{"name": "t", "country": -5}',
        "country zero": b'{"name": "t", "country": 0}',
        "country object": b'{"name": "t", "country": {"id": 1}}',
        "tags string": b'{"name": "t", "tags": "1,2"}',
        "tags mixed": b'{"name": "t", "tags": [1, "a"]}',
        "tags unknown": b'{"name": "t", "tags": [99999999]}',
        "tags object": b'{"name": "t", "tags": {"a": 1}}',
        "tags commands": b'{"name": "t", "tags": [[5, 0, 0]]}',
        "tags deep": b'{"name": "t", "tags": %s}' % (b"[" * 30 + b"]" * 30),
        "comment script": b'{"name": "t", "comment": "<script>alert(1)</script><img src=x onerror=alert(1)>"}',
        "lone surrogate in a name": b'{"name": "\\ud800"}',
        "lone surrogate as a country": b'{"name": "t", "country": "\\udfff"}',
        "lone surrogate in tags": b'{"name": "t", "tags": ["\\ud800"]}',
        "lone surrogate as a color": b'{"name": "t", "color": "\\ud800"}',
        "lone surrogate as an id": b'{"id": "\\ud800", "name": "t"}',
        "lone surrogate as a type": b'{"name": "t", "type": "\\ud800"}',
        "type unknown": b'{"name": "t", "type": "admin"}',
        "type SQL": b'{"name": "t", "type": "contact\' OR 1=1 --"}',
        "batch above the limit": b"[" + b",".join(b'{"name": "b%d"}' % i for i in range(60)) + b"]",
        "batch with a bad item": b'[{"name": "ok 1"}, {"name": 5}, {"name": "ok 2"}]',
        "batch of strings": b'["a", "b"]',
        "batch nested arrays": b"[[{\"name\": \"x\"}]]",
    }
    for label, body in typed.items():
        add("POST fuzz-basic: " + label, b"POST", API.encode() + b"/fuzz-basic", body, json_ct, auth="basic")
    # fuzz-open (no auth, res.partner.category)
    for label, body in {
        "parent loop": b'{"name": "loop", "parent": 1e400}',
        "parent unknown": b'{"name": "orphan", "parent": 99999999}',
        "active string": b'{"name": "x", "active": "yes"}',
        "label written": b'{"name": "x", "label": "ignored, out only"}',
        "name NUL": b'{"name": "a\\u0000"}',
        "name empty": b'{"name": ""}',
    }.items():
        add("POST fuzz-open: " + label, b"POST", API.encode() + b"/fuzz-open", body, json_ct, auth="none")
    # -- content types and lengths
    body = b'{"name": "ct"}'
    for label, value in {
        "none": None, "text/plain": b"text/plain", "form": b"application/x-www-form-urlencoded",
        "multipart": b"multipart/form-data; boundary=x", "xml": b"application/xml",
        "json latin-1": b"application/json; charset=latin-1", "json utf-16": b"application/json; charset=utf-16",
        "json with NUL": b"application/json\x00", "garbage": b"\xff\xfe/\x00", "very long": b"application/" + b"j" * 8000,
    }.items():
        headers = [] if value is None else [(b"Content-Type", value)]
        add("Content-Type: " + label, b"POST", API.encode() + b"/partners", body, headers)
    for label, value in {"negative": b"-1", "text": b"abc", "100 MB": b"99999999", "smaller than the body": b"3",
                         "two values": b"14, 14", "with spaces": b" 14 "}.items():
        add("Content-Length: " + label, b"POST", API.encode() + b"/partners", body,
            json_ct + [(b"Content-Length", value)])
    # Beyond 2**63 the threaded HTTP server of Odoo waits for the body before routing: a short timeout
    add("Content-Length: beyond 2**63", b"POST", API.encode() + b"/partners", body,
        json_ct + [(b"Content-Length", b"9" * 30)], timeout=5)
    add("chunked body over the limit", b"POST", API.encode() + b"/partners",
        b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in [b'{"name": "' + b"c" * 60000] * 200) + b"0\r\n\r\n",
        json_ct + [(b"Transfer-Encoding", b"chunked")])
    add("chunked body broken", b"POST", API.encode() + b"/partners", b"zz\r\nabc\r\n0\r\n\r\n",
        json_ct + [(b"Transfer-Encoding", b"chunked")])
    # -- paths: traversal, encodings, SQL metacharacters, odd ids
    paths = [
        b"/partners/../partners", b"/partners/%2e%2e/%2e%2e/web/database/manager", b"/%2e%2e/%2e%2e/web/database/selector",
        b"/..%2f..%2fweb", b"/partners/..%2f..%2f..%2fetc%2fpasswd", b"/partners/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        b"/partners/%252e%252e%252f", b"/partners/%00", b"/partners/1%00", b"/par%00tners", b"/partners%00",
        b"/partners/1%27%20OR%201=1%20--", b"/partners/1%27%20OR%20%271%27=%271", b"/partners/1;DROP%20TABLE%20res_partner",
        b"/partners%27%20OR%20%271%27=%271", b"/%27%20OR%201=1%20--", b"/partners/-1", b"/partners/0", b"/partners/00001",
        b"/partners/99999999999999999999", b"/partners/1e400", b"/partners/1.5", b"/partners/0x10", b"/partners/%ff%fe",
        b"/partners/%c0%af", b"/partners/%ef%bc%91%ef%bc%92", b"/partners/%c2%b2", b"/partners/%e2%91%a0",
        b"/partners/" + b"9" * 10000, b"/" + b"A" * 10000, b"/p%C3%A1rtners", b"/partners/1/2/3", b"/partners//1",
        b"//partners", b"/partners?", b"/PARTNERS", b"/partners%2F1", b"/partners/%20", b"/partners/%0d%0aX-Injected:%201",
        b"/partners/1%0d%0a", b"/fuzz-open/%27", b"/fuzz-open/1%20OR%201=1", b"/public/%2e%2e", b"/openapi.json/..",
        b"/\xff\xfe", b"/partners/\xc3\x28",
    ]
    for path in paths:
        add("GET path " + path[:60].decode("latin-1"), b"GET", API.encode() + path)
    for path in (b"/partners/%00", b"/partners/1%27%20OR%201=1%20--", b"/partners/" + b"9" * 50, b"/partners/-1"):
        add("PUT path " + path[:40].decode("latin-1"), b"PUT", API.encode() + path, b'{"name": "put"}', json_ct)
        add("DELETE path " + path[:40].decode("latin-1"), b"DELETE", API.encode() + path)
    add("DELETE collection with a body", b"DELETE", API.encode() + b"/partners", b'{"id": "1 OR 1=1"}', json_ct)
    add("PUT without id", b"PUT", API.encode() + b"/partners", b'{"name": "no id"}', json_ct)
    # -- query strings
    queries = [
        b"limit=-1", b"limit=0", b"limit=1e400", b"limit=99999999999999999999", b"limit=%C2%B2", b"limit=%EF%BC%91",
        b"limit=" + b"9" * 1000, b"limit=", b"limit", b"offset=-5", b"offset=1e3", b"offset=%C2%B2",
        b"offset=99999999999", b"name=%27%20OR%201%3D1%20--", b"name=%00", b"email=a%00b", b"id=abc", b"id=1&id=2",
        b"id=1%20OR%201=1", b"id=-1", b"id=99999999999999", b"res_name=%25", b"res_name=_",
        b"res_name=%27%3B%20DROP%20TABLE%20res_partner%3B--", b"res_name=%5C", b"%00=1", b"a[b]=1", b"unknown=1",
        b"name=" + b"x" * 8000, b"name=%ff%fe", b"&&&", b"=1", b"limit=1&limit=2",
    ]
    for query in queries:
        add("GET ?" + query[:60].decode("latin-1"), b"GET", API.encode() + b"/partners?" + query)
    for query in [b"color_min=1e400", b"color_min=abc", b"color_min=" + b"9" * 40, b"ids=1,2,x", b"ids=",
                  b"ids=" + b",".join(b"%d" % i for i in range(5000)), b"ids=99999999999", b"ids=-1,0",
                  b"country_is=FR", b"country_is=%00",
                  b"name_like=%25%25%25", b"name_like=%00", b"employee=maybe", b"employee=true", b"color=1.5"]:
        add("GET fuzz-basic ?" + query[:50].decode("latin-1"), b"GET", API.encode() + b"/fuzz-basic?" + query,
            auth="basic")
    # -- methods
    for method in (b"TRACE", b"PROPFIND", b"FOO", b"get", b"HEAD", b"OPTIONS", b"PATCH", b"CONNECT"):
        add("method " + method.decode(), method, API.encode() + b"/partners")
    # -- headers: credentials, signatures, keys, sizes
    auth_values = {
        "none": None, "empty": b"", "Bearer only": b"Bearer", "Bearer NUL": b"Bearer demo-token\x00",
        "Bearer long": b"Bearer " + b"A" * 8000, "Bearer very long": b"Bearer " + b"A" * 60000,
        "Bearer latin-1": b"Bearer d\xe9mo-token", "Bearer CRLF": b"Bearer demo-token\r\nX-Injected: 1",
        "Basic garbage": b"Basic !!!", "Basic not utf-8": b"Basic " + base64.b64encode(b"\xff\xfe:\x00"),
        "Basic no colon": b"Basic " + base64.b64encode(b"nocolon"), "Digest": b'Digest username="admin"',
        "SQL": b"Bearer ' OR 1=1 --", "double space": b"Bearer  demo-token",
    }
    for label, value in auth_values.items():
        headers = [] if value is None else [(b"Authorization", value)]
        add("Authorization: " + label, b"GET", API.encode() + b"/partners", headers=headers, auth="none")
    add("100 headers", b"GET", API.encode() + b"/partners",
        headers=[(b"X-Many-%d" % i, b"v") for i in range(100)], timeout=10)
    add("header with NUL", b"GET", API.encode() + b"/partners", headers=[(b"X-Nul", b"a\x00b")])
    add("header latin-1", b"GET", API.encode() + b"/partners", headers=[(b"X-Latin", b"caf\xe9")])
    add("header name odd", b"GET", API.encode() + b"/partners", headers=[(b"X-\xff", b"v")])
    for label, value in {"long": b"k" * 300, "NUL": b"key\x00", "latin-1": b"cl\xe9", "SQL": b"' OR 1=1 --",
                         "spaces": b"   "}.items():
        add("Idempotency-Key " + label, b"POST", API.encode() + b"/partners", b'{"name": "idem"}',
            json_ct + [(b"Idempotency-Key", value)])
    signed_body = b'{"name": "signed"}'
    for label, (ts, sig) in {
        "timestamp huge": (b"9" * 30, None), "timestamp negative": (b"-1", None), "timestamp float": (b"1e10", None),
        "timestamp fullwidth": ("\uff11\uff12\uff13".encode(), None), "timestamp empty": (b"", None),
        "signature garbage": (None, b"v1,!!!"), "signature many": (None, b"v1,AAAA " * 5000),
        "signature long": (None, b"v1," + b"A" * 50000), "signature other version": (None, b"v2,AAAA"),
        "signature NUL": (None, b"v1,\x00"),
    }.items():
        headers = [(b"Content-Type", b"application/json"), (b"webhook-id", b"msg_fuzz")]
        headers.append((b"webhook-timestamp", ts if ts is not None else str(int(time.time())).encode()))
        headers.append((b"webhook-signature", sig if sig is not None else b"v1,AAAA"))
        add("HMAC " + label, b"POST", API.encode() + b"/fuzz-hmac", signed_body, headers, auth="none")
    add("HMAC stale", b"POST", API.encode() + b"/fuzz-hmac", signed_body, json_ct, auth="hmac-stale")
    add("HMAC valid, body not JSON", b"POST", API.encode() + b"/fuzz-hmac", b"{nope", json_ct, auth="hmac")
    add("HMAC valid, NUL in body", b"POST", API.encode() + b"/fuzz-hmac", b'{"name": "a\\u0000"}', json_ct,
        auth="hmac")
    add("Basic wrong header value", b"GET", API.encode() + b"/fuzz-basic", auth="basic-wrong-header")
    add("Basic header NUL", b"GET", API.encode() + b"/fuzz-basic", auth="basic-nul-header")
    # -- session cookies are no credentials
    add("cookie only", b"GET", API.encode() + b"/partners", headers=[(b"Cookie", b"session_id=' OR 1=1 --")],
        auth="none")
    return cases


def credentials(auth, secrets, body):
    if auth == "bearer":
        return [(b"Authorization", b"Bearer demo-token")]
    basic = [(b"Authorization", b"Basic " + base64.b64encode(b"fuzz-user:" + secrets["basic password"].encode()))]
    if auth == "basic":
        return basic + [(b"X-Fuzz-Key", secrets["secret header"].encode())]
    if auth == "basic-wrong-header":
        return basic + [(b"X-Fuzz-Key", b"wrong")]
    if auth == "basic-nul-header":
        return basic + [(b"X-Fuzz-Key", secrets["secret header"].encode() + b"\x00")]
    if auth == "hmac":
        return hmac_headers(secrets["hmac secret"], body or b"")
    if auth == "hmac-stale":
        return hmac_headers(secrets["hmac secret"], body or b"", timestamp=int(time.time()) - 3600)
    return []


# ---------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------


class Campaign:
    def __init__(self, args):
        self.args = args
        self.base_url = args.base_url.rstrip("/")
        self.port = int(self.base_url.rsplit(":", 1)[1])
        self.db = psycopg2.connect(dbname=args.db)
        self.db.autocommit = True
        self.workdir = args.workdir
        tag = uuid.uuid4().hex[:16]
        self.secrets = {
            "demo bearer token": "demo-token",
            "basic password": "fuzz-pw-%s" % tag,
            "secret header": "fuzz-hdr-%s" % tag,
            "hmac secret": "whsec_" + base64.b64encode(os.urandom(32)).decode(),
        }
        self.sent = {}  # fuzz id -> (phase, method, target)
        self.replies = {}  # fuzz id -> (status, content type, ours)
        self.secret_hits = []
        self.figures = collections.OrderedDict()

    # -- helpers
    def sql(self, query, params=None):
        with self.db.cursor() as cr:
            cr.execute(query, params)
            return cr.fetchall()

    def needles(self):
        if getattr(self, "_needles", None):
            return self._needles
        needles = dict(self.secrets)
        needles["hmac key"] = self.secrets["hmac secret"].removeprefix("whsec_")
        needles["basic credentials"] = base64.b64encode(
            b"fuzz-user:" + self.secrets["basic password"].encode()).decode()
        needles["encryption key"] = self.sql(
            "SELECT value FROM ir_config_parameter WHERE key = 'bj_api_sync.encryption_key'")[0][0]
        self._needles = needles
        return needles

    def snapshot(self):
        return {
            "log": self.sql("SELECT coalesce(max(id), 0) FROM bj_api_log")[0][0],
            "partners": self.sql("SELECT count(*), coalesce(max(id), 0) FROM res_partner")[0],
            "categories": self.sql("SELECT count(*), coalesce(max(id), 0) FROM res_partner_category")[0],
            "now": self.sql("SELECT now() AT TIME ZONE 'UTC'")[0][0],
            "partner_ids": {r[0] for r in self.sql("SELECT id FROM res_partner")},
            "category_ids": {r[0] for r in self.sql("SELECT id FROM res_partner_category")},
            # ON DELETE CASCADE: deleting a tag deletes its children
            "category_parents": dict(self.sql("SELECT id, parent_id FROM res_partner_category")),
        }

    # -- phases
    def run(self):
        self.log_offset = os.path.getsize(self.args.odoo_log) if self.args.odoo_log else 0
        odoo = Odoo(self.base_url, self.args.db)
        setup_configs(odoo, self.secrets)
        self.before = self.snapshot()
        response = odoo.session.get(self.base_url + API + "/openapi.json", timeout=60)
        response.raise_for_status()
        document = response.json()
        schema_path = os.path.join(self.workdir, "openapi.json")
        with open(schema_path, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=1)
        self.figures["operations in the OpenAPI document"] = sum(
            len([m for m in ops if m in ("get", "post", "put", "patch", "delete")])
            for ops in document["paths"].values())
        self.run_schemathesis(schema_path, "stA", ["-H", "Authorization: Bearer demo-token"], None)
        basic = "fuzz-user:%s" % self.secrets["basic password"]
        self.run_schemathesis(schema_path, "stB", ["-a", basic, "-H", "X-Fuzz-Key: " + self.secrets["secret header"]],
                              "fuzz-basic")
        self.run_malformed()
        return self.verify()

    def run_schemathesis(self, schema_path, prefix, auth_args, path_regex):
        journal = os.path.join(self.workdir, "%s-journal.ndjson" % prefix)
        quick = self.args.quick
        command = [
            "st", "run", schema_path, "--url", self.base_url, "--max-examples", str(self.args.examples),
            "--seed", str(self.args.seed), "--workers", "2", "--no-color", "--generation-database", "none",
            "--request-timeout", "60", "--suppress-health-check", "all", "--max-failures", "1000",
            "--checks", "not_a_server_error,no_secret_in_response,status_code_conformance,"
            "content_type_conformance,response_schema_conformance,negative_data_rejection",
            "--phases", "examples,fuzzing" if quick else "examples,coverage,fuzzing,stateful",
            "-H", "X-Fuzz-Run: %s" % prefix, *auth_args,
        ]
        if path_regex:
            command += ["--include-path-regex", path_regex]
        env = dict(os.environ, SCHEMATHESIS_HOOKS=os.path.join(HERE, "st_hooks.py"), BJ_FUZZ_JOURNAL=journal,
                   BJ_FUZZ_PREFIX=prefix, BJ_FUZZ_SECRETS="\n".join(self.needles().values()))
        output_path = os.path.join(self.workdir, "%s-output.txt" % prefix)
        started = time.monotonic()
        with open(output_path, "w", encoding="utf-8") as output:
            rc = subprocess.call(command, env=env, stdout=output, stderr=subprocess.STDOUT, cwd=self.workdir)
        elapsed = time.monotonic() - started
        entries = []
        if os.path.exists(journal):
            with open(journal, encoding="utf-8") as lines:
                entries = [json.loads(line) for line in lines if line.strip()]
        for entry in entries:
            if "method" in entry:
                self.sent[entry["id"]] = (prefix, entry["method"], entry["path"].encode("utf-8", "surrogateescape"))
            else:
                self.replies[entry["id"]] = (entry["status"], entry["content_type"],
                                             not (entry["content_type"] or "").startswith("text/html"))
                if entry["secrets"]:
                    self.secret_hits.append((entry["id"], entry["secrets"]))
        with open(output_path, encoding="utf-8", errors="replace") as output:
            text = output.read()
        lines = text.splitlines()
        summary = [line.strip("= ") for line in lines if re.match(r"^=+ .* in [\d.]+s =+$", line)][-1:]
        summary += [lines[i + 1].strip() for i, line in enumerate(lines[:-1]) if line.strip() == "Test cases:"][-1:]
        self.figures["schemathesis %s" % prefix] = "exit %s, %d requests in %.0f s: %s" % (
            rc, sum(1 for e in entries if "method" in e), elapsed, "; ".join(summary))
        self.st_outputs = getattr(self, "st_outputs", []) + [(prefix, output_path, text)]

    def run_malformed(self):
        cases = malformed_cases(self.secrets)
        counts_before = self.snapshot()
        for number, (label, method, target, headers, body, auth, timeout) in enumerate(cases, 1):
            fuzz_id = "hw-%d" % number
            all_headers = [(b"X-Fuzz-Id", fuzz_id.encode())] + credentials(auth, self.secrets, body) + headers
            reply = raw_request(self.port, method, target, all_headers, body, timeout=timeout)
            self.sent[fuzz_id] = ("hw", method.decode("latin-1"), target)
            self.replies[fuzz_id] = (reply.status, reply.content_type, reply.is_ours(), reply.error, label)
            text = reply.body.decode("utf-8", "replace") + json.dumps(reply.headers)
            found = [name for name, needle in self.needles().items() if needle in text]
            if found:
                self.secret_hits.append((fuzz_id, found))
        self.malformed = (cases, counts_before, self.snapshot())
        self.figures["hand-written malformed inputs"] = len(cases)

    # -- goals
    def verify(self):
        rows = self.sql(
            "SELECT id, method, url, response_code, request_headers, res_ids, status, res_model, error_message,"
            "       response_data"
            "  FROM bj_api_log WHERE id > %s AND direction = 'in' ORDER BY id",
            [self.before["log"]],
        )
        logged = collections.defaultdict(list)
        for row in rows:
            match = re.search(r"X-Fuzz-Id: (\S+)", row[4] or "")
            if match:
                logged[match.group(1)].append(row)
        statuses = collections.Counter()
        server_errors, unlogged, refused_outside = [], [], []
        for fuzz_id, (_phase, method, target) in self.sent.items():
            reply = self.replies.get(fuzz_id)
            status = reply[0] if reply else 0
            statuses[status] += 1
            path = target.split(b"?")[0]
            if status >= 500 or any(r[3] >= 500 for r in logged.get(fuzz_id, [])):
                server_errors.append((fuzz_id, method, target[:120], status, logged.get(fuzz_id)))
            reaches_route = bool(ROUTE.match(unquote_to_bytes(path)))
            if reaches_route and reply and reply[2] and fuzz_id not in logged:
                unlogged.append((fuzz_id, method, target[:120], status))
            elif not (reply and reply[2]):
                refused_outside.append((fuzz_id, method, target[:80], status, reply[3] if reply and len(reply) > 3 else ""))
        # writes: every change belongs to a 2xx request; rejected requests name no record
        after = self.snapshot()
        ok_rows = [r for r in rows if 200 <= r[3] < 300 and r[1] in ("POST", "PUT", "PATCH", "DELETE")]
        written = collections.defaultdict(set)
        for row in ok_rows:
            for rid in (row[5] or "").split(","):
                if rid.strip().isdigit():
                    written[row[7]].add(int(rid))
        rejected_with_records = [r[0] for r in rows if r[3] >= 400 and r[5]]
        stray = []
        for model, table, key in (("res.partner", "res_partner", "partner_ids"),
                                  ("res.partner.category", "res_partner_category", "category_ids")):
            created = after[key] - self.before[key]
            deleted = self.before[key] - after[key]
            changed = {r[0] for r in self.sql(
                "SELECT id FROM %s WHERE write_date > %%s" % table, [self.before["now"]])}  # noqa: S608
            allowed = set(written[model])
            if model == "res.partner.category":
                parents = dict(self.before["category_parents"])
                for row in ok_rows:  # parents set during the campaign, from the answers (the record as written)
                    if row[7] == model and row[1] != "DELETE" and row[9]:
                        try:
                            answer = json.loads(row[9])
                        except ValueError:
                            continue  # a body truncated in the log
                        for item in answer if isinstance(answer, list) else [answer]:
                            if isinstance(item, dict) and isinstance(item.get("id"), int):
                                parents[item["id"]] = item.get("parent")
                parents.update(after["category_parents"])
                grew = True
                while grew:  # children of deleted tags went with them
                    cascaded = {rid for rid, parent in parents.items() if parent in allowed and rid in deleted}
                    grew = bool(cascaded - allowed)
                    allowed |= cascaded
            for rid in sorted((created | deleted | changed) - allowed):
                stray.append((model, rid, "created" if rid in created else "deleted" if rid in deleted else "changed"))
        cases, mal_before, mal_after = self.malformed
        hw_ok_creates = sum(
            len([i for i in (r[5] or "").split(",") if i.strip()])
            for fuzz_id, rows_ in logged.items() if fuzz_id.startswith("hw-")
            for r in rows_ if r[3] == 201 and r[1] == "POST" and r[7] == "res.partner")
        malformed_delta = mal_after["partners"][0] - mal_before["partners"][0] - hw_ok_creates
        # secrets in the database, every text column of every table
        needles = self.needles()
        db_hits = scan_database(self.db, needles)

        self.figures["requests sent"] = len(self.sent)
        self.figures["  by schemathesis"] = sum(1 for v in self.sent.values() if v[0].startswith("st"))
        self.figures["  hand-written"] = sum(1 for v in self.sent.values() if v[0] == "hw")
        self.figures["inbound log rows written"] = len(rows)
        self.figures["statuses"] = dict(sorted(statuses.items()))
        self.figures["refused before the addon (Odoo routing / HTTP server / connection)"] = len(refused_outside)
        self.figures["records written by 2xx requests"] = {m: len(ids) for m, ids in written.items()}
        if self.args.odoo_log:
            with open(self.args.odoo_log, encoding="utf-8", errors="replace") as log:
                log.seek(self.log_offset)
                errors = collections.Counter(
                    match.group(1) for match in re.finditer(r" ERROR \S+ (\S+): ", log.read()))
            self.figures["ERROR lines in the Odoo log, by logger"] = dict(errors)
        goals = [
            ("no 5xx", server_errors),
            ("every request that reached an inbound route is logged", unlogged),
            ("no secret in any response", self.secret_hits),
            ("no secret in the database", db_hits),
            ("nothing written by a rejected request", stray + [("log row naming records", r) for r in
                                                              rejected_with_records]
             + ([("malformed pass partner count delta", malformed_delta)] if malformed_delta else [])),
        ]
        print("== fuzz campaign figures")
        for key, value in self.figures.items():
            print("%s: %s" % (key, value))
        if refused_outside:
            print("refused before the addon (first 15):")
            for item in refused_outside[:15]:
                print("   ", item)
        passed = failed = 0
        print("== fuzz campaign goals")
        for name, problems in goals:
            if problems:
                failed += 1
                print("FAIL %s: %d" % (name, len(problems)))
                for problem in problems[:20]:
                    print("    ", repr(problem)[:600])
            else:
                passed += 1
                print("ok   %s" % name)
        for prefix, path, text in getattr(self, "st_outputs", []):
            failures = re.findall(r"^\S.*(?:Server error|Undocumented|Response violates|API accepted|"
                                  r"Unsupported|Missing|Malformed).*$", text, re.M)
            if failures:
                print("schemathesis %s findings (%s): %s" % (prefix, path, collections.Counter(failures).most_common(10)))
        print("fuzz: %d passed, %d failed" % (passed, failed))
        return 1 if failed else 0


# Where a needle is at home: the fallback encryption key is a system parameter (README: move it to the
# configuration file), and the module description (the README) documents the demo token.
EXPECTED_IN_DATABASE = {
    ("ir_config_parameter", "value", "encryption key"),
    ("ir_module_module", "description", "demo bearer token"),
}


def scan_database(db, needles):
    with db.cursor() as cr:
        columns = text_columns(cr)
        hits = []
        values = list(needles.values())
        for table, cols in columns.items():
            for column, kind in cols:
                expr = 'encode("%s", \'escape\')' % column if kind == "bytea" else '"%s"::text' % column
                cr.execute('SELECT n FROM unnest(%%s::text[]) n WHERE EXISTS (SELECT 1 FROM "%s" WHERE strpos(%s, n) > 0)'
                           % (table, expr), [values])
                for (needle,) in cr.fetchall():
                    name = next(k for k, v in needles.items() if v == needle)
                    if (table, column, name) not in EXPECTED_IN_DATABASE:
                        hits.append("%s.%s: %s" % (table, column, name))
        return hits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--odoo-log")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    sys.exit(Campaign(args).run())


if __name__ == "__main__":
    main()
