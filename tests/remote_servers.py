"""Remote APIs shaped like real ones, for ``tests/http_sink.HttpSink`` (no mocks).

Each ``*_api`` function returns a responder ``(received) -> reply`` that pages a list of
items the way a well-known API does; ``OAuth2Server`` is a token endpoint plus a resource
API that only answers with a valid Bearer token. They run on 127.0.0.1 in the test's
process, behind real sockets.
"""

import base64
import json
import threading
import time
import uuid
from urllib.parse import parse_qsl, urlencode


def items_of(count, prefix="R", **extra):
    """``count`` items with a code, a name and an email (what the pull tests map)."""
    return [
        dict({"code": "%s%04d" % (prefix, i), "name": "Remote %d" % i, "email": "%s%d@bj-rem.test" % (prefix.lower(), i)},
             **extra)
        for i in range(count)
    ]


def _base(received):
    return "http://%s%s" % (received.header("Host"), received.path)


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def offset_api(items):
    """``?limit=&offset=``, items under ``data`` (our own sink's shape)."""

    def respond(received):
        limit = _int(received.query.get("limit"), len(items))
        offset = _int(received.query.get("offset"), 0)
        return 200, {"data": items[offset : offset + limit], "total": len(items)}

    return respond


def page_api(items, page_param="page", size_param="per_page", max_size=100):
    """WooCommerce: ``?page=&per_page=``, a bare JSON array, ``X-WP-Total`` / ``X-WP-TotalPages``."""

    def respond(received):
        size = min(_int(received.query.get(size_param), 10), max_size)
        page = _int(received.query.get(page_param), 1)
        chunk = items[(page - 1) * size : page * size]
        pages = (len(items) + size - 1) // size
        return 200, chunk, {"X-WP-Total": len(items), "X-WP-TotalPages": pages}

    return respond


def link_api(items):
    """json-server (and GitHub alike): ``_page`` / ``_limit``, ``Link: <…>; rel="next"``.

    As json-server does, any other query parameter is a filter on the items' fields: the
    ``?limit=100&offset=0`` of a Limit / Offset pull matches nothing.
    """

    def respond(received):
        query = dict(received.query)
        page = _int(query.pop("_page", None), 1)
        limit = _int(query.pop("_limit", None), 10)
        selected = [item for item in items if all(str(item.get(k)) == v for k, v in query.items())]
        chunk = selected[(page - 1) * limit : page * limit]
        last = max((len(selected) + limit - 1) // limit, 1)
        links = []

        def link(number, rel):
            params = dict(received.query, _page=number, _limit=limit)
            links.append('<%s?%s>; rel="%s"' % (_base(received), urlencode(params), rel))

        link(1, "first")
        if page > 1:
            link(page - 1, "prev")
        if page < last:
            link(page + 1, "next")
        link(last, "last")
        return 200, chunk, {"Link": ", ".join(links), "X-Total-Count": len(selected)}

    return respond


def cursor_api(items):
    """HubSpot CRM v3: ``?limit=&after=``, ``{"results": [...], "paging": {"next": {"after": …}}}``."""

    def respond(received):
        limit = _int(received.query.get("limit"), 10)
        after = received.query.get("after")
        start = int(base64.urlsafe_b64decode(after.encode()).decode()) if after else 0
        chunk = items[start : start + limit]
        body = {"results": chunk}
        if start + limit < len(items):
            cursor = base64.urlsafe_b64encode(str(start + limit).encode()).decode()
            body["paging"] = {"next": {"after": cursor, "link": "ignored"}}
        return 200, body

    return respond


def next_url_api(items):
    """Microsoft Graph: ``?$top=``, ``{"value": [...], "@odata.nextLink": "<absolute URL>"}``."""

    def respond(received):
        top = _int(received.query.get("$top"), 10)
        start = _int(received.query.get("$skiptoken"), 0)
        chunk = items[start : start + top]
        body = {"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users", "value": chunk}
        if start + top < len(items):
            body["@odata.nextLink"] = "%s?%s" % (_base(received), urlencode({"$top": top, "$skiptoken": start + top}))
        return 200, body

    return respond


def loop_api(items):
    """A broken remote whose next URL always points back at the second page."""

    def respond(received):
        return 200, {"value": items, "links": {"next": "%s?p=2" % _base(received)}}

    return respond


def modified_since_api(store, param="updated_since"):
    """Items whose ``updated_at`` is at or after ``?updated_since=`` (ISO 8601 UTC), oldest first.

    ``store``: a list of item dicts the test changes between pulls.
    """

    def respond(received):
        since = received.query.get(param) or ""
        chosen = sorted((i for i in store if i["updated_at"] >= since), key=lambda i: (i["updated_at"], i["code"]))
        return 200, {"data": chosen}

    return respond


class OAuth2Server:
    """An OAuth2 client-credentials token endpoint (``/token``) and a resource API (``/api/…``).

    Counts token requests; issues ``tok-<n>`` tokens living ``expires_in`` seconds; the API
    answers 401 unless the Bearer token is one it issued, still valid and not revoked.
    ``delay``: seconds the token endpoint waits before answering (concurrency tests).
    """

    def __init__(self, client_id="cid", client_secret="s3cret", expires_in=3600, delay=0.0, api=None):
        self.client_id = client_id
        self.client_secret = client_secret
        self.expires_in = expires_in
        self.delay = delay
        self.api = api
        self.lock = threading.Lock()
        self.token_requests = []
        self.tokens = {}  # token -> expiry (monotonic)
        self.refused = []  # Authorization headers the API answered 401 to
        self.api_requests = []
        self.error = None  # e.g. ("invalid_scope", 400): the next token requests fail so

    def issued(self):
        with self.lock:
            return list(self.tokens)

    def revoke_all(self):
        with self.lock:
            self.tokens.clear()

    def _credentials(self, received, form):
        authorization = received.header("Authorization") or ""
        if authorization.startswith("Basic "):
            user, _sep, password = base64.b64decode(authorization[6:]).decode().partition(":")
            return user, password
        return form.get("client_id"), form.get("client_secret")

    def __call__(self, received):
        if received.path == "/token":
            return self._token(received)
        token = (received.header("Authorization") or "")[len("Bearer ") :]
        with self.lock:
            self.api_requests.append(received)
            expiry = self.tokens.get(token)
            valid = expiry is not None and expiry >= time.monotonic()
            if not valid:
                self.refused.append(received.header("Authorization"))
        if not valid:
            return 401, {"error": "invalid_token"}, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
        if self.api is not None:
            return self.api(received)
        if received.method in ("POST", "PUT", "PATCH"):
            data = received.json()
            return 201, {"id": "r-%s" % data.get("id") if isinstance(data, dict) else "batch"}
        return 200, {"ok": True, "token": "not echoed"}

    def _token(self, received):
        form = dict(parse_qsl(received.body.decode()))
        with self.lock:
            self.token_requests.append({"form": form, "headers": dict(received.headers)})
        if self.delay:
            time.sleep(self.delay)
        if received.method != "POST" or form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if self.error:
            code, status = self.error
            return status, {"error": code, "error_description": "The server says %s." % code}
        client_id, secret = self._credentials(received, form)
        if (client_id, secret) != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "Client authentication failed."}
        with self.lock:
            token = "tok-%d-%s" % (len(self.token_requests), uuid.uuid4().hex[:8])
            self.tokens[token] = time.monotonic() + self.expires_in
        body = {"access_token": token, "token_type": "Bearer", "expires_in": self.expires_in}
        if form.get("scope"):
            body["scope"] = form["scope"]
        return 200, json.dumps(body), {"Content-Type": "application/json", "Cache-Control": "no-store"}
