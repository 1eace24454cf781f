"""Inbound REST API: one HTTP request in, ``(status, headers, body)`` out.

The controller only turns HTTP into plain values; this module runs the pipeline
of SPEC §3 in its order (endpoint, method, authentication, body, execution as
the Run As user, log) so it can be read, tested and benchmarked without werkzeug.
It decides the order, the statuses and the transactions; the checks of step 3 are
services/auth.py (one function per Authorization Type) and what step 5 does to the
records is services/inbound_ops.py. Both receive the request's ``_Call``.

Transactions: the work runs inside a savepoint. A failure rolls back the work
only; the idempotency record is then written on the same cursor and commits with
the request, and the log row is sent once the request committed (on the process's
log connection, without waiting for it: ``transaction.send_after_commit``; under the
test runner, on the request's cursor), so a failed request still leaves its log.
PostgreSQL concurrency errors are re-raised untouched: Odoo retries the whole
request on a fresh transaction, as it does for its own routes.
"""

import hashlib
import json
import logging
import re
import time
import traceback

import psycopg2

from odoo import SUPERUSER_ID
from odoo.exceptions import AccessError, MissingError, RedirectWarning, UserError
from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY
from odoo.tools import SQL

try:  # private to Odoo's RPC layer: the message Odoo itself shows for a violated constraint
    from odoo.service.model import _as_validation_error
except ImportError:  # another Odoo version: the database's message instead
    _as_validation_error = None

from ..lib import signing, values
from ..lib.api import BODY_METHODS, ENDPOINT_RE, KNOWN_METHODS, WRITE_METHODS
from ..lib.errors import SyncError
from ..lib.http_client import redact_headers
from . import auth, inbound_ops, mapping, scripts, transaction

_logger = logging.getLogger(__name__)

MAX_BODY_PARAM = "bj_api_sync.max_body_bytes"
DEFAULT_MAX_BODY = 10 * 1024 * 1024
MAX_RESPONSE_PARAM = "bj_api_sync.max_response_bytes"
DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
MAX_JSON_DEPTH = 32
MAX_IDEMPOTENCY_KEY = 255
JSON_MIMETYPES = frozenset({"application/json", "text/json"})
IDEMPOTENCY_HEADER = "idempotency-key"
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # \u0000 after an even number of backslashes
_JSON_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
CONFIG_FIELDS = [
    "name", "model_id", "model_name", "auth_type", "login", "password_encrypted", "bearer_token_encrypted",
    "hmac_secret_encrypted", "limit", "is_paginated", "page_size", "filter_domain", "company_id", "user_id",
    "delete_mode", "log_payloads", "rate_limit", "method_names", "track_batch_history", "has_headers",
]


def max_body_bytes(env):
    """The body size limit (system parameter ``bj_api_sync.max_body_bytes``, default 10 MiB)."""
    raw = env["ir.config_parameter"].sudo().get_param(MAX_BODY_PARAM)
    try:
        limit = int(raw) if raw else DEFAULT_MAX_BODY
    except ValueError:
        _logger.warning("Invalid system parameter %s=%r: using %d", MAX_BODY_PARAM, raw, DEFAULT_MAX_BODY)
        limit = DEFAULT_MAX_BODY
    return limit if limit > 0 else DEFAULT_MAX_BODY


def max_response_bytes(env):
    """The response size limit in characters (``bj_api_sync.max_response_bytes``, default 64 MiB)."""
    raw = env["ir.config_parameter"].sudo().get_param(MAX_RESPONSE_PARAM)
    try:
        limit = int(raw) if raw else DEFAULT_MAX_RESPONSE
    except ValueError:
        limit = DEFAULT_MAX_RESPONSE
    return limit if limit > 0 else DEFAULT_MAX_RESPONSE


class _ResponseTooLarge(SyncError):
    """A 500 whose message quotes sizes only, so the client may read it."""


def handle(env, endpoint, method, record_id=None, query=None, headers=None, body_bytes=b"",
           content_type=None, url="", body_error=None):
    """Serve one inbound request; returns ``(status, headers dict, body text or None)``.

    ``query`` is a werkzeug MultiDict, a dict or a list of pairs; ``headers`` any
    mapping (names are matched case-insensitively); ``body_bytes`` the raw body,
    which the caller may have cut at ``max_body_bytes + 1`` bytes (the declared
    ``Content-Length`` is checked too); ``url`` the full request URL, for the log
    and the pagination links; ``body_error`` why the body could not be read (a broken chunked
    encoding, say), which makes the request a 400.
    """
    call = _Call(env, endpoint, method, record_id, query, headers, body_bytes, content_type, url)
    call.body_error = body_error
    return call.serve()


# ---------------------------------------------------------------------------
# One request
# ---------------------------------------------------------------------------


class _Call:
    """State of one request through the pipeline.

    services/auth.py and services/inbound_ops.py read the request's attributes (``env``,
    ``config``, ``endpoint``, ``method``, ``record_id``, ``query``, ``headers``, ``body``,
    ``url``, ``payload``, ``res_model``), set the outcome (``status``, ``data``, ``res_ids``,
    ``response_headers``) and call the public methods below.
    """

    def __init__(self, env, endpoint, method, record_id, query, headers, body, content_type, url):
        self.started = time.monotonic()
        # Configuration, logs and keys are system data: read them as superuser, never as the caller.
        self.env = env(user=SUPERUSER_ID, su=True)
        self.endpoint = endpoint or ""
        self.method = (method or "GET").upper()
        self.record_id = record_id if record_id not in (None, "") else None
        self.query = _query_pairs(query)
        self.raw_headers = dict(headers or {})
        self.headers = {str(k).lower(): str(v) for k, v in self.raw_headers.items()}
        self.body = body or b""
        self.content_type = content_type or self.headers.get("content-type") or ""
        self.url = url or ""
        self.config = None
        self.payload = None
        # Outcome
        self.status = 500
        self.response_headers = {}
        self.data = None
        self.error = None  # SyncError, for the log
        self.script_messages = []  # log(message) calls of the line scripts
        self.error_details = None  # traceback text, log only
        self.res_model = None
        self.res_ids = []
        self.replayed = False
        self.dumped = None  # (data, its JSON text), made once by _check_response
        self.body_error = None
        self.client = None  # the API client of the request (auth type API Clients)
        self.run_as_uid = None  # the user of an Odoo API key (auth type Odoo API Key), instead of Run As

    # ------------------------------------------------------------------ driver
    def serve(self):
        try:
            with scripts.collect_messages() as self.script_messages:
                self._pipeline()
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except SyncError as exc:
            self._fail(exc)
        except Exception as exc:  # noqa: BLE001 - the client gets a 500, the log gets the traceback
            self._fail(self._unexpected(exc))
        body = self._response_text()
        if self.status == 204:
            body = None
        headers = dict(self._config_response_headers())
        headers.update(self.response_headers)
        if body is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        self._write_log(body)
        return self.status, headers, body

    def _fail(self, exc):
        exc.translate(self.env._)  # a lib message not translated where it was raised
        self.error = exc
        self.status = exc.status
        self.data = exc.to_body()
        # The client never gets more than a status-safe message; the log row keeps the whole text.
        key = "error" if "error" in self.data else "message"
        if exc.status >= 500 and not isinstance(exc, _ResponseTooLarge):
            # An unexpected error's text may quote data the caller must not see (a value of another
            # record in a script's exception).
            self.data[key] = self._generic_5xx(exc)
        elif exc.status in (403, 404) and "\n" in exc.message.strip():
            # Odoo's access and missing-record errors go on to name the records and rules involved.
            self.data[key] = exc.message.strip().splitlines()[0].strip()
        self.response_headers.update(exc.headers)
        if exc.details and not self.error_details:
            self.error_details = exc.details
            if exc.status >= 500:
                _logger.error("bj_api_sync: %s %s failed: %s\n%s", self.method, self.url, exc.message, exc.details)

    def _generic_5xx(self, exc):
        if exc.line_id:
            key = self.env["bj.api.sync.config.line"].browse(exc.line_id).exists().api_key or exc.line_id
            return self.env._("Error in line '%s' (details in the API log).", key)
        return self.env._("Internal server error")

    def _unexpected(self, exc):
        self.error_details = traceback.format_exc()
        _logger.error(
            "bj_api_sync: unexpected error on %s %s (endpoint %r)", self.method, self.url, self.endpoint,
            exc_info=exc,
        )
        return SyncError(self.env._("Internal server error"), status=500, details=self.error_details)

    def _pipeline(self):
        self.config = self._find_config()
        self.res_model = self.config.model_name
        if self.method == "OPTIONS":
            self.status = 204
            self.response_headers["Allow"] = ", ".join(self._allowed_methods() + ["OPTIONS"])
            return
        self._check_method()
        self._check_rate_limit()
        auth.authenticate(self)
        self._consume_rate_limit()
        self._refuse_nul()
        self.payload = self._parse_body()
        if self.method in WRITE_METHODS and self._idempotency_key():
            self._serve_idempotent()
        else:
            self._execute()

    # ------------------------------------------------------------------ 1. endpoint
    def _find_config(self):
        if not ENDPOINT_RE.fullmatch(self.endpoint):
            # Not a name a configuration can have (NUL bytes, '../', quotes...): no query needed.
            raise SyncError(self.env._("Endpoint not found"), status=404)
        # The columns every request reads, from the registry cache of the configurations.
        config = self.env["bj.api.sync.config"]._inbound_config(self.endpoint, CONFIG_FIELDS)
        if not config or not self.endpoint:
            raise SyncError(self.env._("Endpoint not found"), status=404)
        return config

    # ------------------------------------------------------------------ 2. method
    def _allowed_methods(self):
        """The config's methods that make sense on this path (collection or one record)."""
        names = set(self.config._get_http_methods())  # stored with the config's row: no query
        allowed = [m for m in KNOWN_METHODS if m in names]
        if self.record_id is not None and "POST" in allowed:
            allowed.remove("POST")
        if "GET" in allowed:
            allowed.insert(allowed.index("GET") + 1, "HEAD")
        return allowed

    def _check_method(self):
        allowed = self._allowed_methods()
        if self.method not in allowed:
            raise SyncError(
                self.env._("Method %(method)s is not allowed on this endpoint. Allowed: %(allowed)s",
                           method=self.method, allowed=", ".join(allowed) or "-"),
                status=405,
                headers={"Allow": ", ".join(allowed + ["OPTIONS"])},
            )

    # ------------------------------------------------------------------ 3. rate limit (around auth.authenticate)
    def _check_rate_limit(self):
        """Before authentication: once this minute's budget is spent, refuse without further work.

        Only reads the counter, so requests with wrong credentials cannot spend the
        budget of the real client (they are refused here only when it is already spent).
        """
        limit = self.config.rate_limit
        if limit:
            self._rate_limited(limit, self.env["bj.api.rate.limit"]._peek(self.config.id, limit))

    def _consume_rate_limit(self):
        """After authentication: count the request on the shared per-minute counter (atomic)."""
        limit = self.config.rate_limit
        if limit:
            self._rate_limited(limit, self.env["bj.api.rate.limit"]._consume(self.config.id, limit))

    def _rate_limited(self, limit, retry_after):
        if retry_after:
            raise SyncError(
                self.env._("Rate limit exceeded: %s requests per minute.", limit),
                status=429, headers={"Retry-After": str(retry_after)},
            )

    # ------------------------------------------------------------------ 4. body
    def body_too_large(self):
        limit = max_body_bytes(self.env)
        try:
            declared = int(self.headers.get("content-length") or 0)
        except ValueError:
            declared = 0
        return len(self.body) > limit or declared > limit

    def too_large_error(self):
        return SyncError(
            self.env._("Request body too large (limit: %s bytes).", max_body_bytes(self.env)), status=413
        )

    def _refuse_nul(self):
        """PostgreSQL text cannot hold NUL: refused here rather than failing (and logged as an error) in SQL."""
        texts = [self.record_id or ""] + [part for pair in self.query for part in pair]
        nul_in_body = self.method in WRITE_METHODS and b"\\u0000" in self.body and _JSON_NUL.search(self.body)
        if nul_in_body or any("\x00" in text for text in texts):
            raise SyncError(self.env._("NUL characters (\\u0000) are not allowed in text values."), status=400)

    def _parse_body(self):
        if self.body_error:
            raise SyncError(self.env._("Malformed request body: %s", self.body_error), status=400)
        wants_body = self.method in BODY_METHODS or (self.method == "DELETE" and self.record_id is None)
        if not wants_body:
            return None
        if self.body_too_large():
            raise self.too_large_error()
        mimetype = self.content_type.split(";")[0].strip().lower()
        if mimetype and mimetype not in JSON_MIMETYPES and not mimetype.endswith("+json"):
            raise SyncError(
                self.env._("Unsupported Content-Type '%s': send application/json.", mimetype), status=415
            )
        if not self.body.strip():
            if self.method == "DELETE":
                return None
            raise SyncError(self.env._("A JSON body is required."), status=400)
        try:
            payload = json.loads(self.body, parse_constant=_refuse_constant)
        except RecursionError:
            raise SyncError(
                self.env._("JSON nested too deeply (more than %s levels).", MAX_JSON_DEPTH), status=400
            ) from None
        except (ValueError, UnicodeDecodeError) as exc:
            raise SyncError(self.env._("Invalid JSON: %s", exc), status=400) from None
        if values.json_depth(payload) > MAX_JSON_DEPTH:
            raise SyncError(
                self.env._("JSON nested too deeply (more than %s levels).", MAX_JSON_DEPTH), status=400
            )
        if _JSON_SURROGATE.search(self.body):
            # "\ud800" alone is valid JSON but no Unicode text: PostgreSQL would refuse it mid-write.
            try:
                json.dumps(payload, ensure_ascii=False).encode("utf-8")
            except UnicodeEncodeError:
                raise SyncError(
                    self.env._("Invalid JSON: a string holds a lone UTF-16 surrogate (\\ud800-\\udfff)."), status=400
                ) from None
        batch = self.method == "POST" and self.record_id is None
        if isinstance(payload, list) and batch:
            return payload
        if not isinstance(payload, dict):
            raise SyncError(
                self.env._("The body must be a JSON object (or an array of objects for a batch POST).")
                if batch else self.env._("The body must be a JSON object."),
                status=400,
            )
        return payload

    # ------------------------------------------------------------------ idempotency
    def _idempotency_key(self):
        key = self.headers.get(IDEMPOTENCY_HEADER)
        if key is None and self.config.auth_type == "hmac":
            # Standard Webhooks: the message id is the idempotency key of a delivery.
            key = self.headers.get(signing.HEADER_ID)
        return (key or "").strip() or None

    def _serve_idempotent(self):
        key = self._idempotency_key()
        if len(key) > MAX_IDEMPOTENCY_KEY:
            raise SyncError(
                self.env._("Idempotency-Key too long (at most %s characters).", MAX_IDEMPOTENCY_KEY), status=400
            )
        if not key.isprintable():
            raise SyncError(self.env._("Idempotency-Key must be printable text."), status=400)
        fingerprint = hashlib.sha256(
            b"\n".join([self.method.encode(), str(self.record_id or "").encode("utf-8"), self.body])
        ).hexdigest()
        Keys = self.env["bj.api.idempotency"]
        outcome = Keys._claim(self.config.id, key, fingerprint)
        if outcome[0] == "busy":
            raise SyncError(
                self.env._("A request with this Idempotency-Key is still in progress; retry later."),
                status=409, headers={"Retry-After": "1"},
            )
        if outcome[0] == "mismatch":
            raise SyncError(
                self.env._("This Idempotency-Key was already used for a different request."), status=422
            )
        if outcome[0] == "replay":
            _kind, status, headers, body = outcome
            self.replayed = True
            self.status = status
            self.response_headers.update(headers)
            self.response_headers["Idempotent-Replayed"] = "true"
            self.data = json.loads(body) if body else None
            self.res_ids = []
            return
        row_id = outcome[1]
        try:
            self._execute()
        except SyncError as exc:
            self._fail(exc)
        if self.status >= 500:
            Keys._release(row_id)
        else:
            body = self._response_text()
            Keys._store(row_id, self.status, self.response_headers, body)

    # ------------------------------------------------------------------ 5. execution
    def _run_env(self, savepoint):
        """The Run As user's environment; its query opens ``savepoint`` (one round trip)."""
        config = self.config
        user = self.env["res.users"].browse(self.run_as_uid) if self.run_as_uid else config.user_id
        if not user:
            raise SyncError(self.env._("The configuration has no Run As user."), status=500)
        # One query (the ORM reads the user, then its partner for lang and tz).
        self.env["res.users"].flush_model(["active"])
        self.env["res.partner"].flush_model(["lang", "tz"])
        # The same query checks the cached mapping plans of the configuration (mapping.version_probe).
        probe, prime = mapping.version_probe(self.env, config.id)
        self.env.cr.execute(savepoint.prefixed(SQL(
            "SELECT u.active, p.lang, p.tz, %s FROM res_users u JOIN res_partner p ON p.id = u.partner_id"
            " WHERE u.id = %s",
            probe if probe is not None else SQL("NULL"), user.id,
        )))
        active, lang, tz, versions = self.env.cr.fetchone()
        if prime is not None:
            prime(versions)
        if not active:
            raise SyncError(self.env._("The Run As user of this endpoint is archived."), status=403)
        context = dict(self.env.context, allowed_company_ids=[config.company_id.id])
        if lang:
            context["lang"] = lang
        if tz:
            context["tz"] = tz
        return self.env(user=user.id, context=context, su=False)

    def _execute(self):
        # The work's savepoint: opened by the Run As user's query, released by the commit
        # (services/transaction.py: two round trips fewer than cr.savepoint()).
        savepoint = transaction.LazySavepoint(self.env.cr)
        with mapping.plan_scope():
            run_env = self._run_env(savepoint)
            config = self.config.with_env(run_env)
            try:
                with savepoint:
                    inbound_ops.run(self, config)
                    self._check_response()
            except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
                raise
            except Exception as exc:  # noqa: BLE001 - mapped to a status, unexpected ones logged
                self.res_ids = []
                self.response_headers = {}
                self.data = None
                raise self.as_sync_error(exc) from None

    def _check_response(self):
        """Serialize the answer inside the savepoint: a body that is not JSON (a script returned NaN
        or an object) or larger than ``max_response_bytes`` fails the request and rolls its writes back."""
        if self.data is None:
            return
        try:
            text = values.dumps(self.data)
        except (TypeError, ValueError) as exc:
            raise SyncError(
                self.env._("The response is not valid JSON: %s", exc), status=500, details=traceback.format_exc()
            ) from None
        limit = max_response_bytes(self.env)
        if len(text) > limit:
            raise _ResponseTooLarge(
                self.env._("Response too large (%(size)s characters, limit %(limit)s): request fewer records "
                           "(?limit=) or raise the system parameter %(param)s.",
                           size=len(text), limit=limit, param=MAX_RESPONSE_PARAM),
                status=500,
            )
        self.dumped = (self.data, text)

    def _response_text(self):
        if self.data is None:
            return None
        if self.dumped and self.dumped[0] is self.data:
            return self.dumped[1]
        return values.dumps(self.data)

    def as_sync_error(self, exc, prefix=None):
        """Map an exception of the work to the client-facing error (re-raises retryable ones)."""
        if isinstance(exc, PG_CONCURRENCY_EXCEPTIONS_TO_RETRY):
            raise exc
        if isinstance(exc, SyncError):
            error = exc
            if error.status >= 500 and not error.details:
                error.details = traceback.format_exc()
        elif isinstance(exc, AccessError):
            error = SyncError(str(exc) or self.env._("Access denied"), status=403)
        elif isinstance(exc, MissingError):
            error = SyncError(str(exc) or self.env._("Record not found"), status=404)
        elif isinstance(exc, UserError):  # ValidationError included
            error = SyncError(str(exc), status=400)
        elif isinstance(exc, RedirectWarning):  # a UserError with a button (e.g. "contact linked to a user")
            error = SyncError(str(exc.args[0]), status=400)
        elif isinstance(exc, psycopg2.IntegrityError):
            error = SyncError(_integrity_message(self.env, exc), status=400)
        elif isinstance(exc, psycopg2.DataError):
            # pgerror quotes the SQL statement around the bad value: only the primary message goes out.
            error = SyncError(self.env._("Invalid value: %s", exc.diag.message_primary or exc), status=400,
                              details=str(exc))
        elif isinstance(exc, ValueError):
            error = SyncError(self.env._("Invalid value: %s", exc), status=400)
        elif isinstance(exc, ArithmeticError):  # decimal.InvalidOperation, OverflowError on a client's number
            error = SyncError(self.env._("Invalid value: a number is out of range."), status=400,
                              details=traceback.format_exc())
        else:
            error = self._unexpected(exc)
        if prefix:
            error = SyncError(
                "%s: %s" % (prefix, error.message), status=error.status, line_id=error.line_id,
                details=error.details, headers=error.headers,
            )
        return error

    # ------------------------------------------------------------------ response & log
    def _config_response_headers(self):
        """Headers rows not marked Required are sent with every response (never secret ones)."""
        if not self.config:
            return {}
        return {
            header.key: header.value_plain or ""
            for header in self.config._header_rows()
            if not header.required and not header.secret and header.key
        }

    def _write_log(self, body):
        config = self.config
        log_payloads = config.log_payloads if config else True
        secret_names = []
        if config:
            secret_names = [h.key for h in config._header_rows() if h.secret or h.required]
        error_message = False
        if self.error is not None:
            error_message = self.error.message
            if self.error_details:
                error_message = "%s\n\n%s" % (error_message, self.error_details)
        vals = {
            # name and company given here spare the log's stored computes a SELECT and an UPDATE
            "name": ("%s %s" % (self.method, self.url))[:1000],
            "company_id": config.company_id.id if config else False,
            "config_id": config.id if config else False,
            "direction": "in",
            "method": self.method,
            "url": self.url,
            "request_headers": "\n".join(
                "%s: %s" % item for item in redact_headers(self.raw_headers, secret_names).items()
            ),
            "request_data": _log_text(self.body) if log_payloads else False,
            "response_code": self.status,
            "response_data": (_without_surrogates(body) if self.status >= 400 else body) if log_payloads else False,
            "status": "success" if self.status < 400 else "error",
            "error_message": _without_surrogates(error_message),
            "script_messages": _without_surrogates("\n".join(self.script_messages)) or False,
            "res_model": self.res_model or False,
            "res_ids": ",".join(str(i) for i in self.res_ids) or False,
            "duration_ms": int((time.monotonic() - self.started) * 1000),
        }
        if self.client:
            vals["client_id"] = self.client.id
        Log = self.env["bj.api.log"]
        try:
            if not transaction.under_test(self.env):
                # Sent once the request commits, without waiting for it to run (0.5 ms of every
                # request): services/log_connection.send; a rolled back request's work leaves the
                # (empty) transaction to commit, and so its log row.
                transaction.send_after_commit(self.env, Log._insert_query([vals])[0])
                return
            # Under tests (nothing commits), on the request's cursor in one round trip: SAVEPOINT
            # (a broken log row is rolled back alone) and the INSERT.
            with transaction.LazySavepoint(self.env.cr) as savepoint:
                Log._insert_rows([vals], savepoint=savepoint)
        except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
            raise
        except Exception:  # noqa: BLE001 - a broken log must not turn the answer into a 500
            _logger.exception("bj_api_sync: could not write the log of %s %s", self.method, self.url)


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------


def _refuse_constant(name):
    raise ValueError("%s is not valid JSON" % name)


def _query_pairs(query):
    if query is None:
        return []
    if hasattr(query, "items") and hasattr(query, "getlist"):
        return list(query.items(multi=True))
    if hasattr(query, "items"):
        return [(k, v) for k, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
    return list(query)


def _log_text(body):
    if not body:
        return False
    return body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body


def _without_surrogates(text):
    """``text`` with lone surrogates spelled out, as PostgreSQL can store it (a client's JSON
    escape quoted in an error message; bodies and headers read from bytes cannot have any).
    NUL characters are the log model's business (``bj.api.log._normalize_vals``)."""
    if not isinstance(text, str):
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _integrity_message(env, exc):
    if _as_validation_error is not None:
        try:
            return str(_as_validation_error(env, exc))
        except Exception:  # noqa: BLE001 - the database's message instead
            _logger.debug("bj_api_sync: no Odoo message for %s", exc, exc_info=True)
    return env._("The operation violates a database constraint: %s", exc.pgerror or exc)


# ---------------------------------------------------------------------------
# Config buttons
# ---------------------------------------------------------------------------
