"""Outbound sync: select records, build requests, send them (or queue them), pull, bind.

Building and sending are two separate steps on purpose:

- ``build_requests(config, records)`` turns records into ``OutboundRequest`` objects
  (method, URL, headers, body, record ids, idempotency key): *what* to send;
- ``Sender.send(request)`` sends one of them with retries, one log row per attempt,
  bindings after success: *how* it is sent.

Immediate delivery chains the two; queued delivery hands the built requests to
``services.outbox.enqueue`` and the worker sends each job through ``deliver_job``
with the same ``Sender`` (``JobDeliveries``: one per claimed batch).

Everything runs as superuser on the configuration: configurations are written by
administrators only, and the user whose save fires an automation rule must not need
read access to them (nor to every mapped field) for the sync to work.
"""

import base64
import contextlib
import functools
import hashlib
import json
import logging
import re
import threading
import traceback
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg2
from odoo import Command, _, fields, models
from odoo.exceptions import UserError
from odoo.modules import module as odoo_module
from odoo.tools import SQL

from ..lib import signing
from ..lib.errors import SyncError
from ..lib.http_client import ALLOWED_HOSTS_PARAM, get_client, redact_headers
from ..lib.values import dumps
from . import mapping

_logger = logging.getLogger(__name__)

_MODULE = __name__.split(".")[2]
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PLACEHOLDER_RE = re.compile(r"\{([^{}/?#]+)\}")
CLIENT_KEY = "bj_api_sync.outbound"
CHUNK_SIZE = 1000  # records serialized at once by a direct call (bounds memory)
CRON_BATCH_SIZE = 500  # records per committed batch of a scheduled sync
LOG_FLUSH_SIZE = 200  # log rows per detached write
DEFAULT_PAGE_SIZE = 100

_user_agent = None


# --------------------------------------------------------------------------
# Results and requests
# --------------------------------------------------------------------------


class SyncResult(dict):
    """What ``_make_outbound_http_request`` returns.

    A dict that also answers attribute access, so both documented BJET usages,
    ``response.get('success')`` and ``response.status_code``, work.

    Keys: ``success`` (nothing failed), ``status_code`` and ``response`` (parsed
    JSON or text) of the last request -- of the last *failed* one when some
    failed, so that checking ``status_code`` alone does not hide a failure --,
    ``sent``, ``failed``, ``skipped`` (record counts; items for a pull),
    ``log_ids``, ``log_id`` (the last one), ``job_ids``, ``message``.
    """

    def __init__(self, **values):
        super().__init__(
            success=True,
            status_code=0,
            response=None,
            sent=0,
            failed=0,
            skipped=0,
            log_ids=[],
            log_id=False,
            job_ids=[],
            message="",
        )
        self.update(values)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def json(self):
        """The response body, for scripts written against ``requests.Response``."""
        return self["response"]


@dataclass
class OutboundRequest:
    """One logical request; retries of it reuse the same idempotency key."""

    method: str
    url: str
    headers: dict
    body: bytes = None
    res_model: str = None
    res_ids: list = field(default_factory=list)
    payloads: list = field(default_factory=list)  # one per record, for hashes and bindings
    hashes: list = field(default_factory=list)
    idempotency_key: str = field(default_factory=lambda: str(uuid.uuid4()))
    job_id: int = None
    script_messages: str = ""  # log(message) of the scripts that built its payloads

    def to_job_vals(self):
        """The dict ``outbox.enqueue`` stores as a job (no headers: secrets are never stored)."""
        return {
            "url": self.url,
            "method": self.method,
            "body": self.body.decode("utf-8") if self.body is not None else None,
            "res_model": self.res_model,
            "res_ids": list(self.res_ids),
            "payload_hashes": ",".join(self.hashes) if self.method in BODY_METHODS and self.hashes else None,
            "idempotency_key": self.idempotency_key,
        }


@dataclass
class Failure:
    """Records that could not even be turned into a request (script error, bad placeholder)."""

    res_ids: list
    message: str
    status: int = 500
    details: str = None
    line_id: int = None


@dataclass
class Build:
    requests: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    skipped_ids: list = field(default_factory=list)
    deferred_ids: list = field(default_factory=list)  # beyond max_records: left for the next run
    messages: list = field(default_factory=list)  # log(message) of the line scripts


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def user_agent():
    global _user_agent
    if _user_agent is None:
        manifest = odoo_module.get_manifest(_MODULE) or {}
        _user_agent = "bj_api_sync/%s" % manifest.get("version", "18.0")
    return _user_agent


def payload_hash(payload):
    """SHA-256 of a payload in a canonical form (key order does not matter)."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def placeholders(url):
    return PLACEHOLDER_RE.findall(url or "")


def fill_url(url, payload, env):
    """Fill ``{api_key}`` placeholders from a record's payload, URL-encoded."""

    def replace(match):
        key = match.group(1)
        value = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value is None or value == "" or isinstance(value, (dict, list)):
            raise SyncError(
                env._("The URL placeholder {%s} has no usable value in the record's payload.", key), status=400
            )
        return quote(str(value), safe="")

    return PLACEHOLDER_RE.sub(replace, url)


def _with_query(url, **params):
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend((k, str(v)) for k, v in params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _set_header(headers, key, value):
    """Set a header replacing any spelling of the same name (header names are case-insensitive)."""
    for existing in [k for k in headers if k.lower() == key.lower()]:
        del headers[existing]
    headers[key] = value


def build_headers(config, body=True):
    """Headers of every request of ``config`` except the per-request ones (idempotency, signature).

    Returns ``(headers, secret_names)``; the names are redacted from logs.
    """
    env = config.env
    headers = {"Accept": "application/json", "User-Agent": user_agent()}
    if body:
        headers["Content-Type"] = "application/json"
    if config.auth_type == "basic":
        credentials = "%s:%s" % (config.login or "", config._get_secret("password"))
        headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    elif config.auth_type == "bearer":
        headers["Authorization"] = "Bearer " + config._get_secret("bearer_token")
    elif config.auth_type == "hmac" and not config._get_secret("hmac_secret"):
        raise UserError(env._("Configuration '%s' signs requests with HMAC but has no HMAC secret.", config.name))
    secret_names = []
    for row in config.header_ids:
        key = (row.key or "").strip()
        if not key:
            continue
        _set_header(headers, key, row._get_value())
        if row.secret:
            secret_names.append(key)
    return headers, secret_names


def outbound_client(env):
    """The process-wide pooled client, guarded by the allow list system parameter."""
    allowed = env["ir.config_parameter"].sudo().get_param(ALLOWED_HOSTS_PARAM) or ""
    return get_client(CLIENT_KEY, allowed=allowed, user_agent=user_agent())


def _timeouts(config, timeout=None):
    read = timeout[1] if isinstance(timeout, (tuple, list)) else timeout
    return (float(config.connect_timeout or 5), float(read or config.read_timeout or 15))


def _parsed(outcome):
    """Parsed JSON body, else its text, else the error (no response at all)."""
    data = outcome.json()
    if data is not None:
        return data
    return outcome.text or outcome.error or ""


def _testing():
    return bool(odoo_module.current_test or getattr(threading.current_thread(), "testing", False))


def _may_commit(env):
    """Commit per batch only in a real cron worker (or when asked), never under tests."""
    wanted = env.context.get("cron_id") or env.context.get("bj_api_sync_commit")
    return bool(wanted) and not _testing()


def _prepare(config):
    if not isinstance(config, models.BaseModel) or config._name != "bj.api.sync.config":
        raise UserError(_("An API configuration is required."))
    config.ensure_one()
    return config.sudo().with_company(config.company_id)


def _refusal(config):
    """Why ``config`` must not send now, or None."""
    env = config.env
    if config.request_type != "out":
        return env._("'%s' is not an outbound configuration.", config.name)
    if not config.active:
        return env._("Configuration '%s' is archived: nothing was sent.", config.name)
    if config.paused:
        return env._("Configuration '%s' is paused: nothing was sent. Resume it to send again.", config.name)
    return None


def _as_records(config, records):
    """The records to send as a recordset of the config's model (ids are accepted too)."""
    env = config.env
    Model = env[config.model_name]
    if records is None or records is False:
        return Model.browse()
    if isinstance(records, models.BaseModel):
        if records._name != config.model_name:
            raise UserError(
                env._(
                    "Configuration '%(name)s' sends %(model)s records, not %(given)s.",
                    name=config.name,
                    model=config.model_name,
                    given=records._name,
                )
            )
        return Model.browse(records.ids)
    if isinstance(records, int):
        return Model.browse([records])
    return Model.browse([int(i) for i in records])


def _select(config, records):
    """``records`` within the Filter Domain, in id order, capped by the config's limit.

    Records passed explicitly are sent even when archived (an automation on archiving
    must be able to tell the remote).
    """
    if not records:
        return records
    domain = [("id", "in", records.ids)] + config._get_filter_domain()
    found = records.with_context(active_test=False).search(domain, order="id", limit=config.limit or None)
    return records.browse(found.ids)


def _in_plan_scope(func):
    """Run ``func`` in one ``mapping.plan_scope()``: the configuration is checked once per call."""

    @functools.wraps(func)
    def scoped(*args, **kwargs):
        with mapping.plan_scope():
            return func(*args, **kwargs)

    return scoped


def _chunks(seq, size):
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


def _notification(title, message, kind="info", sticky=False, pre=False, reload=False):
    params = {"title": title, "message": message, "type": kind, "sticky": sticky}
    if pre:
        params["className"] = "text-prewrap font-monospace"
    if reload:
        params["next"] = {"type": "ir.actions.client", "tag": "soft_reload"}
    return {"type": "ir.actions.client", "tag": "display_notification", "params": params}


def _event_vals(config, status, message, res_ids, code=0, method=None, url=None):
    """A log row for something that happened without an HTTP exchange (skip, build error)."""
    return {
        "config_id": config.id,
        "company_id": config.company_id.id,
        "direction": "out",
        "method": method or (config._get_http_method() if config.method_names else False),
        "url": url or config.url,
        "response_code": code,
        "status": status,
        "error_message": message,
        "res_model": config.model_name,
        "res_ids": ",".join(str(i) for i in res_ids) or False,
        "attempt": 0,
    }


def _summary(env, result):
    return env._(
        "%(sent)s sent, %(failed)s failed, %(skipped)s skipped.",
        sent=result.sent,
        failed=result.failed,
        skipped=result.skipped,
    )


# --------------------------------------------------------------------------
# Building requests
# --------------------------------------------------------------------------


def _failure_from(exc, res_ids):
    if isinstance(exc, SyncError):
        return Failure(list(res_ids), exc.message, exc.status, exc.details, exc.line_id)
    return Failure(list(res_ids), "%s: %s" % (type(exc).__name__, exc), 500, traceback.format_exc())


def serialize_records(config, records, messages=None):
    """``[(id, payload)]`` and failures; one bad record never spoils the others.

    The batch is serialized in one go (fast path); when that fails, record by record
    to find the culprits. Savepoints keep a script's failed SQL from breaking the
    caller's transaction (configurations without scripts only read fields: none then).
    """
    cr = config.env.cr
    guarded = mapping.runs_scripts(config, records.env)  # no scripts: only fields are read
    try:
        with cr.savepoint() if guarded else contextlib.nullcontext():
            payloads = mapping.serialize(config, records, messages=messages)
        return list(zip(records.ids, payloads)), []
    except Exception as exc:  # isolated below, logged as a failed record
        if not guarded and isinstance(exc, psycopg2.Error):
            raise  # without a savepoint the transaction is aborted: nothing more can be read
        if messages:
            del messages[:]  # the scripts run again record by record
        if len(records) == 1:
            _logger.info("bj_api_sync: %s: record %s not serialized: %s", config.name, records.id, exc)
            return [], [_failure_from(exc, records.ids)]
    items, failures = [], []
    for record in records:
        try:
            with cr.savepoint():
                items.append((record.id, mapping.serialize(config, record, messages=messages)[0]))
        except Exception as exc:  # noqa: BLE001
            _logger.info("bj_api_sync: %s: record %s not serialized: %s", config.name, record.id, exc)
            failures.append(_failure_from(exc, [record.id]))
    return items, failures


def known_hashes(config, res_ids):
    """``{res_id: payload_hash}`` of the bindings of these records."""
    if not res_ids:
        return {}
    bindings = config.env["bj.api.sync.binding"].sudo().search_fetch(
        [("config_id", "=", config.id), ("res_model", "=", config.model_name), ("res_id", "in", list(res_ids))],
        ["res_id", "payload_hash"],
    )
    return {b.res_id: b.payload_hash for b in bindings}


def build_requests(config, records, headers=None, skip_unchanged=False, max_records=None):
    """The requests that send ``records`` (already selected), without sending anything.

    Not paginated: one request per record, body = JSON object. Paginated: one request
    per ``page_size`` records, body = JSON array. A URL with ``{api_key}`` placeholders
    forces one request per record. GET and DELETE carry no body.
    ``skip_unchanged``: leave out records whose payload hash equals their binding's.
    ``max_records``: build for at most that many records (the rest are ``deferred_ids``).
    """
    method = config._get_http_method()
    with_body = method in BODY_METHODS
    if headers is None:
        headers = build_headers(config, body=with_body)[0]
    build = Build()
    items, build.failures = serialize_records(config, records, messages=build.messages)
    entries = []
    hashes = known_hashes(config, [rid for rid, _payload in items]) if skip_unchanged else {}
    for rid, payload in items:
        digest = payload_hash(payload)
        if skip_unchanged and hashes.get(rid) == digest:
            build.skipped_ids.append(rid)
        else:
            entries.append((rid, payload, digest))
    if max_records is not None and len(entries) > max_records:
        build.deferred_ids = [rid for rid, _p, _d in entries[max_records:]]
        entries = entries[:max_records]

    def make(url, group, body):
        request_headers = dict(headers)
        request_headers["Idempotency-Key"] = key = str(uuid.uuid4())
        return OutboundRequest(
            method=method,
            url=url,
            headers=request_headers,
            body=body,
            res_model=config.model_name,
            res_ids=[rid for rid, _p, _d in group],
            payloads=[p for _r, p, _d in group],
            hashes=[d for _r, _p, d in group],
            idempotency_key=key,
            script_messages="\n".join(build.messages),
        )

    if placeholders(config.url) or not config.is_paginated:
        has_placeholders = bool(placeholders(config.url))
        for entry in entries:
            rid, payload, _digest = entry
            try:
                url = fill_url(config.url, payload, config.env) if has_placeholders else config.url
                body = dumps(payload).encode("utf-8") if with_body else None
            except (SyncError, ValueError, TypeError) as exc:
                build.failures.append(_failure_from(exc, [rid]))
                continue
            build.requests.append(make(url, [entry], body))
    else:
        for group in _chunks(entries, config.page_size or DEFAULT_PAGE_SIZE):
            try:
                body = dumps([p for _r, p, _d in group]).encode("utf-8") if with_body else None
            except (ValueError, TypeError) as exc:
                build.failures.append(_failure_from(exc, [rid for rid, _p, _d in group]))
                continue
            build.requests.append(make(config.url, group, body))
    return build


# --------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------


# Per database, ids of configurations a detached cursor has already seen committed.
_COMMITTED_CONFIGS = {}


class _LogBuffer:
    """Attempt logs written in batches through a detached cursor (they survive a rollback)."""

    def __init__(self, env, size=LOG_FLUSH_SIZE):
        self.env = env
        self.size = size
        self.pending = []
        self.ids = []
        # can a detached cursor see the config? (checked once); the outbox worker commits
        # each job with its logs, which need no separate cursor then
        self.visible = False if env.context.get("bj_api_sync_logs_in_transaction") else None

    def extend(self, vals_list):
        self.pending.extend(vals_list)
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        vals_list, self.pending = self.pending, []
        Log = self.env["bj.api.log"].sudo()
        if self._detached_possible(vals_list):
            try:
                logs = Log._write_detached(vals_list)
            except psycopg2.Error as exc:
                _logger.warning("bj_api_sync: detached log write failed (%s); logging in the transaction", exc)
                logs = Log._insert_rows(vals_list)
        else:
            logs = Log._insert_rows(vals_list)
        self.ids.extend(logs.ids)

    def _detached_possible(self, vals_list):
        """Whether another cursor can see the config the logs point to.

        A config created in the still-open transaction (a script that creates and uses
        it at once) is invisible to the detached cursor: its logs then go in the
        caller's transaction instead of failing on the foreign key.
        """
        if self.visible is None:
            if _testing():
                self.visible = True  # _write_detached uses the test cursor itself
            else:
                config_ids = {vals["config_id"] for vals in vals_list if vals.get("config_id")}
                committed = _COMMITTED_CONFIGS.setdefault(self.env.cr.dbname, set())
                if config_ids <= committed:
                    # Seen committed before: ids are never reused, so no cursor is needed to know.
                    self.visible = True
                else:
                    with self.env.registry.cursor() as cr:
                        cr.execute("SELECT id FROM bj_api_sync_config WHERE id IN %s", [tuple(config_ids) or (0,)])
                        found = {row[0] for row in cr.fetchall()}
                    committed |= found
                    self.visible = found == config_ids
        return self.visible


class Sender:
    """Sends requests of one configuration and keeps the run's counts, logs and bindings."""

    def __init__(self, config, timeout=None, result=None):
        self.config = config
        self.env = config.env
        self.method = config._get_http_method()
        self.timeout = _timeouts(config, timeout)
        self.headers, self.secret_names = build_headers(config, body=self.method in BODY_METHODS)
        self.hmac_secret = config._get_secret("hmac_secret") if config.auth_type == "hmac" else None
        self.client = outbound_client(self.env)
        self.log_payloads = config.log_payloads
        self.company_id = config.company_id.id
        self.identifier_key = mapping.identifier_key(config)
        self.result = result if result is not None else SyncResult()
        self.logs = _LogBuffer(self.env)
        self.bindings = {}
        self.last = None
        self.last_failure = None
        self.deliveries = [0, 0]  # [succeeded, failed] HTTP deliveries, for the circuit breaker

    # -- one request ---------------------------------------------------------

    def transmit(self, request, max_retries=None):
        """Send with retries; returns ``(http_client.Result, log vals per attempt)``."""
        headers = request.headers
        if self.hmac_secret:
            headers = dict(headers)
            headers.update(signing.signature_headers(self.hmac_secret, request.idempotency_key, request.body or b""))
        logged_headers = json.dumps(redact_headers(headers, self.secret_names), ensure_ascii=False, indent=1)
        vals_list = []

        def on_attempt(attempt):
            vals_list.append(self._attempt_vals(request, logged_headers, attempt))

        outcome = self.client.send(
            request.method,
            request.url,
            headers=headers,
            body=request.body,
            timeout=self.timeout,
            max_retries=self.config.max_retries if max_retries is None else max_retries,
            backoff=self.config.retry_backoff,
            on_attempt=on_attempt,
        )
        return outcome, vals_list

    def _attempt_vals(self, request, logged_headers, attempt):
        env = self.env
        ok = 200 <= attempt.status < 300 and not attempt.error
        if attempt.will_retry:
            status = "retrying"
        else:
            status = "success" if ok else "error"
        error = attempt.error or (not ok and env._("HTTP status %s", attempt.status)) or False
        if attempt.will_retry:
            error = env._("%(error)s; retrying in %(delay).1f s", error=error, delay=attempt.delay)
        return {
            "name": "%s %s" % (request.method, request.url),  # the model's own rule, saved a recompute
            "config_id": self.config.id,
            "company_id": self.company_id,
            "direction": "out",
            "method": request.method,
            "url": request.url,
            "request_headers": logged_headers,
            "request_data": request.body if (self.log_payloads and request.body) else False,
            "response_code": attempt.status,
            "response_data": attempt.text if self.log_payloads else False,
            "status": status,
            "error_message": error,
            "res_model": request.res_model,
            "res_ids": ",".join(str(i) for i in request.res_ids) or False,
            "duration_ms": attempt.elapsed_ms,
            "attempt": attempt.number,
            "job_id": request.job_id or False,
            "script_messages": request.script_messages or False,
        }

    def send(self, request, max_retries=None):
        """Send one push request, count it, log it, remember bindings; returns the outcome."""
        outcome, vals_list = self.transmit(request, max_retries=max_retries)
        self.logs.extend(vals_list)
        response = _parsed(outcome)
        self.last = (outcome.status, response)
        if outcome.ok:
            self.result.sent += len(request.res_ids)
            self.deliveries[0] += 1
            if request.method in BODY_METHODS:
                self._remember_bindings(request, response)
        else:
            self.result.failed += len(request.res_ids)
            self.deliveries[1] += 1
            self.last_failure = (outcome.status, response)
        return outcome

    def _remember_bindings(self, request, response):
        key = self.identifier_key
        if isinstance(response, list) and len(response) == len(request.res_ids):
            objects = response
        elif isinstance(response, dict) and len(request.res_ids) == 1:
            objects = [response]
        else:
            objects = [None] * len(request.res_ids)
        hashes = request.hashes or [payload_hash(p) for p in request.payloads]
        for rid, digest, obj in zip(request.res_ids, hashes, objects):
            external = obj.get(key) if key and isinstance(obj, dict) else None
            if isinstance(external, (dict, list)) or external is False or "\x00" in str(external):
                external = None  # not an identifier (NUL: PostgreSQL text cannot even store it)
            self.bindings[rid] = (None if external is None else str(external), digest)

    def fail(self, failure, method=None, url=None, status="error"):
        """A failure before any HTTP (serialization, placeholder, configuration): one log row."""
        self.result.failed += len(failure.res_ids)
        self.last_failure = (failure.status, {"message": failure.message, "status_code": failure.status})
        message = failure.message
        if failure.details:
            message = "%s\n\n%s" % (message, failure.details)
        self.logs.extend([_event_vals(self.config, status, message, failure.res_ids, failure.status, method, url)])

    # -- batches -------------------------------------------------------------

    def push(self, records, skip_unchanged=False, max_records=None):
        build = build_requests(
            self.config, records, headers=self.headers, skip_unchanged=skip_unchanged, max_records=max_records
        )
        self.result.skipped += len(build.skipped_ids)
        for failure in build.failures:
            self.fail(failure)
        for request in build.requests:
            self.send(request)
        return build

    def flush(self):
        self.logs.flush()
        store_bindings(self.config, self.bindings)
        self.bindings = {}

    def finish(self):
        self.flush()
        from . import outbox

        succeeded, failed = self.deliveries
        last_status = (self.last_failure or self.last or (0, None))[0]
        outbox.record_outcomes(self.config, succeeded, failed, last_status)
        result = self.result
        result.log_ids = list(self.logs.ids)
        result.log_id = result.log_ids[-1] if result.log_ids else False
        env = self.env
        picked = self.last_failure or self.last
        if picked:
            result.status_code, result.response = picked
        result.success = not result.failed and not self.last_failure
        if not result.message:
            result.message = _summary(env, result)
        return result


def store_bindings(config, bindings):
    """Upsert bindings ``{res_id: (external_id, payload_hash)}`` in one statement.

    ``INSERT ... ON CONFLICT`` rather than search-then-create: an automation rule and
    the scheduled sync may bind the same record in concurrent transactions, and a
    unique-constraint error would then fail the user's save.
    """
    if not bindings:
        return
    env = config.env
    Binding = env["bj.api.sync.binding"]
    Binding.flush_model()
    now = fields.Datetime.now()
    uid = env.uid
    company_id = config.company_id.id or None
    for chunk in _chunks(sorted(bindings.items()), 1000):
        rows = SQL(", ").join(
            SQL(
                "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                config.id,
                company_id,
                config.model_name,
                res_id,
                external_id,
                digest,
                now,
                uid,
                now,
                uid,
                now,
            )
            for res_id, (external_id, digest) in chunk
        )
        env.cr.execute(
            SQL(
                """
                INSERT INTO bj_api_sync_binding
                       (config_id, company_id, res_model, res_id, external_id, payload_hash, synced_at,
                        create_uid, create_date, write_uid, write_date)
                VALUES %s
                ON CONFLICT (config_id, res_model, res_id) DO UPDATE
                   SET external_id = COALESCE(EXCLUDED.external_id, bj_api_sync_binding.external_id),
                       payload_hash = EXCLUDED.payload_hash,
                       synced_at = EXCLUDED.synced_at,
                       write_uid = EXCLUDED.write_uid,
                       write_date = EXCLUDED.write_date
                """,
                rows,
            )
        )
    Binding.invalidate_model(["external_id", "payload_hash", "synced_at", "write_uid", "write_date"])


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


@_in_plan_scope
def make_outbound_request(config, records, timeout=None, **kwargs):
    """Send ``records`` now (or queue them) through ``config``; returns a ``SyncResult``.

    ``records``: a recordset of the config's model (or ids); restricted to the Filter
    Domain and capped by ``limit``. A GET configuration pulls instead (``pull``).
    Never raises for HTTP or mapping failures: they are counted, logged and reported.
    """
    if kwargs:
        _logger.debug("bj_api_sync: ignoring unknown arguments %s", sorted(kwargs))
    config = _prepare(config)
    env = config.env
    records = _as_records(config, records)
    pulling = config._get_http_method() == "GET"
    queued = config.delivery == "queued" and not pulling
    refusal = _refusal(config)
    # A paused queued config still queues: its jobs wait for Resume or a successful probe.
    if refusal and not (queued and config.paused and config.active and config.request_type == "out"):
        return _skip(config, records, refusal)
    if pulling:
        return pull(config, records, timeout=timeout)
    selected = _select(config, records)
    if queued:
        return _enqueue(config, records, selected)
    result = SyncResult(skipped=len(records) - len(selected))
    if not selected:
        result.message = env._("No record to send (none given, or none within the Filter Domain).")
        return result
    try:
        sender = Sender(config, timeout=timeout, result=result)
    except (UserError, SyncError) as exc:
        return _config_error(config, selected, exc, result)
    size = CHUNK_SIZE
    if config.is_paginated and config.page_size:
        size = max(config.page_size, CHUNK_SIZE // config.page_size * config.page_size)
    try:
        for chunk in _chunks(selected, size):
            sender.push(chunk)
            sender.flush()
    finally:
        result = sender.finish()
    return result


def _skip(config, records, message):
    _logger.info("bj_api_sync: %s", message)
    logs = _LogBuffer(config.env)
    logs.extend([_event_vals(config, "skipped", message, records.ids)])
    logs.flush()
    return SyncResult(success=False, skipped=len(records), message=message, log_ids=logs.ids, log_id=logs.ids[-1])


def _config_error(config, records, exc, result):
    """A configuration that cannot send at all (missing secret...): one log row, no raise."""
    sender_logs = _LogBuffer(config.env)
    message = exc.message if isinstance(exc, SyncError) else str(exc.args[0] if exc.args else exc)
    sender_logs.extend([_event_vals(config, "error", message, records.ids)])
    sender_logs.flush()
    result.update(
        success=False,
        failed=result.failed + len(records),
        status_code=0,
        response=message,
        message=message,
        log_ids=sender_logs.ids,
        log_id=sender_logs.ids[-1],
    )
    return result


def _queue_build(config, build, result, logs):
    """Jobs for the requests of ``build``; its failures counted and logged. Returns the jobs."""
    from . import outbox

    for failure in build.failures:
        result.failed += len(failure.res_ids)
        logs.extend([_event_vals(config, "error", failure.message, failure.res_ids, failure.status)])
    jobs = outbox.enqueue(config, [request.to_job_vals() for request in build.requests])
    result.sent += sum(len(request.res_ids) for request in build.requests)
    return jobs


def _enqueue(config, records, selected):
    """Queued delivery: jobs in the caller's transaction, 202 at once."""
    env = config.env
    result = SyncResult(skipped=len(records) - len(selected), status_code=202)
    jobs = env["bj.api.sync.job"]
    logs = _LogBuffer(env)
    for chunk in _chunks(selected, CHUNK_SIZE):
        jobs |= _queue_build(config, build_requests(config, chunk, headers={}), result, logs)
    logs.flush()
    result.log_ids = logs.ids
    result.log_id = logs.ids[-1] if logs.ids else False
    result.job_ids = jobs.ids
    result.success = not result.failed
    result.response = {"queued": len(jobs), "job_ids": jobs.ids}
    result.message = env._("%(count)s job(s) queued for %(records)s record(s).", count=len(jobs), records=result.sent)
    return result


class JobDeliveries:
    """The outbox worker's deliveries of one claimed batch of jobs.

    One ``Sender`` per configuration for the whole batch: headers, secrets and the HTTP
    method are read once, not once per job; log rows and bindings are written once, by
    ``flush()``, in the transaction that commits the jobs' new states. Called once per
    job attempt (the worker schedules the retries); returns
    ``{'ok', 'status', 'error', 'retry_after', 'retryable'}``.
    """

    def __init__(self):
        self.senders = {}

    @_in_plan_scope
    def _sender(self, job):
        sender = self.senders.get(job.config_id.id)
        if sender is None:
            sender = self.senders[job.config_id.id] = Sender(_prepare(job.config_id))
        return sender

    def __call__(self, job, attempt=1):
        sender = self._sender(job)
        config = sender.config
        res_ids = [int(i) for i in (job.res_ids or "").split(",") if i.strip()]
        hashes = job.payload_hashes.split(",") if job.payload_hashes else []
        payloads = []
        if not hashes and job.payload and job.method in BODY_METHODS:
            # a job queued before payload hashes were stored: hash its body again
            try:
                data = json.loads(job.payload)
                payloads = data if isinstance(data, list) else [data]
            except ValueError:
                payloads = []
        headers = dict(sender.headers)
        headers["Idempotency-Key"] = job.idempotency_key
        request = OutboundRequest(
            method=job.method or sender.method,
            url=job.url or config.url,
            headers=headers,
            body=job.payload.encode("utf-8") if job.payload else None,
            res_model=job.res_model,
            res_ids=res_ids,
            payloads=payloads if len(payloads) == len(res_ids) else [],
            hashes=hashes if len(hashes) == len(res_ids) else [],
            idempotency_key=job.idempotency_key,
            job_id=job.id,
        )
        outcome, vals_list = sender.transmit(request, max_retries=0)
        for vals in vals_list:
            vals["attempt"] = attempt
        sender.logs.extend(vals_list)
        if outcome.ok and (request.hashes or request.payloads) and request.method in BODY_METHODS:
            sender._remember_bindings(request, _parsed(outcome))
        last = outcome.attempts[-1] if outcome.attempts else None
        return {
            "ok": outcome.ok,
            "status": outcome.status,
            "error": outcome.error or (not outcome.ok and config.env._("HTTP status %s", outcome.status)) or False,
            "retry_after": last.retry_after if last else None,
            "retryable": bool(last.retryable) if last else True,
        }

    def flush(self):
        """Write the batch's log rows and bindings (before the worker commits)."""
        for sender in self.senders.values():
            sender.flush()


@_in_plan_scope
def deliver_job(job, attempt=1):
    """One attempt of one queued job, its logs written at once (see ``JobDeliveries``)."""
    deliveries = JobDeliveries()
    try:
        return deliveries(job, attempt=attempt)
    finally:
        deliveries.flush()


# --------------------------------------------------------------------------
# Pull (Out + GET)
# --------------------------------------------------------------------------


def _extract_list(data, root, env):
    """The list of items at ``response_root`` (dotted path allowed) of a pulled body."""
    if root:
        for key in root.split("."):
            if not isinstance(data, dict) or key not in data:
                raise SyncError(env._("The response has no '%s' key (Response Root).", root), status=502)
            data = data[key]
    if isinstance(data, dict) and not root:
        return [data]
    if not isinstance(data, list):
        raise SyncError(env._("The pulled response is not a JSON list of objects."), status=502)
    return data


@_in_plan_scope
def pull(config, records=None, timeout=None, commit=False):
    """Out + GET: fetch remote data and apply it to Odoo records through the lines.

    Without URL placeholders: GET the URL (``limit``/``offset`` page by page when
    paginated) and upsert every item by the record identifier. With placeholders: one
    GET per record passed in, updating that record from the response object.
    """
    config = _prepare(config)
    env = config.env
    result = SyncResult(created=0, updated=0, received=0)
    try:
        sender = Sender(config, timeout=timeout, result=result)
    except (UserError, SyncError) as exc:
        return _config_error(config, _as_records(config, records), exc, result)
    try:
        if placeholders(config.url):
            _pull_records(sender, _select(config, _as_records(config, records)), commit)
        else:
            _pull_list(sender, commit)
    finally:
        result.sent = result.created + result.updated
        result.message = result.message or env._(
            "%(received)s received: %(created)s created, %(updated)s updated, %(failed)s failed.",
            received=result.received,
            created=result.created,
            updated=result.updated,
            failed=result.failed,
        )
        result = sender.finish()
    return result


def _checkpoint(sender, commit, done=None, remaining=None):
    """End of a batch: logs and bindings written, progress reported, committed in a cron."""
    sender.flush()
    if done is not None:
        sender.env["ir.cron"]._notify_progress(done=done, remaining=remaining or 0)
    if commit:
        sender.env.cr.commit()
        sender.env.invalidate_all()


def _page_request(sender, url):
    headers = dict(sender.headers)
    headers["Idempotency-Key"] = key = str(uuid.uuid4())
    return OutboundRequest(
        method="GET", url=url, headers=headers, res_model=sender.config.model_name, idempotency_key=key
    )


def _pull_list(sender, commit):
    config = sender.config
    env = config.env
    result = sender.result
    paginated = config.is_paginated
    page_size = config.page_size or DEFAULT_PAGE_SIZE
    cap = config.limit or None
    offset = 0
    previous = None
    while True:
        want = page_size if cap is None else min(page_size, cap - result.received)
        url = _with_query(config.url, limit=want, offset=offset) if paginated else config.url
        request = _page_request(sender, url)
        outcome, vals_list = sender.transmit(request)
        final = vals_list[-1] if vals_list else None
        sender.last = (outcome.status, _parsed(outcome))
        if not outcome.ok:
            result.failed += 1
            sender.last_failure = sender.last
            sender.logs.extend(vals_list)
            break
        try:
            items = _extract_list(outcome.json(), config.response_root, config.env)
        except SyncError as exc:
            result.failed += 1
            sender.last_failure = (exc.status, {"message": exc.message, "status_code": exc.status})
            if final:
                final.update(status="error", error_message=exc.message)
            sender.logs.extend(vals_list)
            break
        if cap is not None:
            items = items[: max(cap - result.received, 0)]
        record_ids, errors = _upsert_items(sender, items)
        result.received += len(items)
        if final:
            final["res_ids"] = ",".join(map(str, record_ids)) or False
            if errors:
                final.update(status="error", error_message=_format_item_errors(env, errors, len(items)))
        sender.logs.extend(vals_list)
        _checkpoint(sender, commit, done=result.received, remaining=page_size if paginated else 0)
        if not paginated or not items or len(items) < want or (cap is not None and result.received >= cap):
            break
        if outcome.text == previous:
            _logger.warning("bj_api_sync: %s: the remote ignores offset (same page twice); stopping", config.name)
            break
        previous = outcome.text
        offset += len(items)
    sender.env["ir.cron"]._notify_progress(done=result.received, remaining=0)


def _upsert_items(sender, items):
    """Upsert pulled items; returns (record ids, errors).

    The whole page runs in one savepoint (fast path); when an item fails, the page is
    rolled back and replayed item by item, each in its own savepoint, so one bad item
    never stops the others.
    """
    config = sender.config
    env = config.env
    result = sender.result
    outcomes = []
    try:
        with env.cr.savepoint():
            for index, item in enumerate(items):
                outcomes.append(_upsert_one(config, index, item))
    except Exception:  # noqa: BLE001 - replayed one by one below to isolate the culprits
        outcomes = []
        for index, item in enumerate(items):
            try:
                with env.cr.savepoint():
                    outcomes.append(_upsert_one(config, index, item))
            except Exception as exc:  # noqa: BLE001
                message = exc.message if isinstance(exc, SyncError) else "%s: %s" % (type(exc).__name__, exc)
                outcomes.append((index, None, message))
    record_ids, errors = [], []
    for index, record, created in outcomes:
        if record is None:
            errors.append((index, created))
            result.failed += 1
            continue
        record_ids.append(record.id)
        if created:
            result.created += 1
        else:
            result.updated += 1
    if errors:
        sender.last_failure = (400, {"message": _format_item_errors(env, errors, len(items)), "status_code": 400})
    return record_ids, errors


def _upsert_one(config, index, item):
    if not isinstance(item, dict):
        raise SyncError(config.env._("Item %s is not a JSON object.", index), status=502)
    record, created = mapping.upsert(config, item)
    return index, record, created


def _format_item_errors(env, errors, total):
    lines = [env._("%(failed)s of %(total)s items could not be applied:", failed=len(errors), total=total)]
    lines += ["[%s] %s" % (index, message) for index, message in errors[:50]]
    if len(errors) > 50:
        lines.append("…")
    return "\n".join(lines)


def _pull_records(sender, records, commit):
    config = sender.config
    env = config.env
    result = sender.result
    if not records:
        result.message = env._("No record to refresh (none given, or none within the Filter Domain).")
        return
    for chunk in _chunks(records, CHUNK_SIZE):
        build = build_requests(config, chunk, headers=sender.headers)
        for failure in build.failures:
            sender.fail(failure)
        for request in build.requests:
            outcome, vals_list = sender.transmit(request)
            final = vals_list[-1] if vals_list else None
            response = _parsed(outcome)
            sender.last = (outcome.status, response)
            if outcome.ok:
                record = config.env[config.model_name].browse(request.res_ids)
                try:
                    data = response
                    if config.response_root and isinstance(data, dict) and isinstance(
                        data.get(config.response_root), dict
                    ):
                        data = data[config.response_root]
                    if not isinstance(data, dict):
                        raise SyncError(env._("The response is not a JSON object."), status=502)
                    with config.env.cr.savepoint():
                        vals = mapping.deserialize(config, data, record=record, partial=True)
                        vals = mapping.without_unchanged(record, vals)
                        if vals:
                            record.write(vals)
                    result.updated += 1
                    result.received += 1
                except Exception as exc:  # noqa: BLE001 - one bad record never stops the others
                    message = exc.message if isinstance(exc, SyncError) else "%s: %s" % (type(exc).__name__, exc)
                    result.failed += 1
                    sender.last_failure = (400, {"message": message, "status_code": 400})
                    if final:
                        final.update(status="error", error_message=message)
            else:
                result.failed += 1
                sender.last_failure = sender.last
            sender.logs.extend(vals_list)
        _checkpoint(sender, commit)


# --------------------------------------------------------------------------
# Scheduled sync, triggers, buttons
# --------------------------------------------------------------------------


def _cron_batch_size(config):
    if config.is_paginated and config.page_size:
        return max(config.page_size, CRON_BATCH_SIZE // config.page_size * config.page_size)
    return CRON_BATCH_SIZE


@_in_plan_scope
def cron_sync(config):
    """Sync every record matching the Filter Domain, in id-ordered batches.

    Records are fetched by id ranges (never all in memory), unchanged payloads are
    skipped, and each batch is committed with its progress when run by a cron worker.
    ``limit`` (when > 0) caps the records *sent* per run, so skipped records never
    starve the others.
    """
    config = _prepare(config)
    env = config.env
    commit = _may_commit(env)
    refusal = _refusal(config)
    if refusal:
        return _skip(config, env[config.model_name].browse(), refusal)
    if config._get_http_method() == "GET":
        return pull(config, timeout=None, commit=commit)
    Model = env[config.model_name]
    domain = config._get_filter_domain()
    total = Model.search_count(domain)
    result = SyncResult()
    try:
        runner = _Queuer(config, result) if config.delivery == "queued" else Sender(config, result=result)
    except (UserError, SyncError) as exc:
        return _config_error(config, Model.browse(), exc, result)
    cap = config.limit or None
    batch = _cron_batch_size(config)
    last_id = done = 0
    try:
        while True:
            budget = None if cap is None else cap - (result.sent + result.failed)
            if budget is not None and budget <= 0:
                break
            ids = Model.search(domain + [("id", ">", last_id)], order="id", limit=batch).ids
            if not ids:
                break
            last_id = ids[-1]
            build = runner.push(Model.browse(ids), skip_unchanged=True, max_records=budget)
            done += len(ids) - len(build.deferred_ids)
            _checkpoint(runner, commit, done=done, remaining=max(total - done, 0))
    finally:
        result = runner.finish()
    # Stopped by the cap or done: either way the cron waits for its next interval.
    env["ir.cron"]._notify_progress(done=done, remaining=0)
    return result


class _Queuer:
    """The scheduled sync of a queued config: jobs instead of requests, same interface as ``Sender``."""

    def __init__(self, config, result):
        self.config = config
        self.env = config.env
        self.result = result
        self.logs = _LogBuffer(self.env)

    def push(self, records, skip_unchanged=False, max_records=None):
        config = self.config
        build = build_requests(config, records, headers={}, skip_unchanged=skip_unchanged, max_records=max_records)
        self.result.skipped += len(build.skipped_ids)
        jobs = _queue_build(config, build, self.result, self.logs)
        self.result.job_ids = self.result.job_ids + jobs.ids
        # Bound now, so that the next scheduled run does not queue the same payloads again.
        store_bindings(
            config,
            {
                rid: (None, digest)
                for request in build.requests
                for rid, digest in zip(request.res_ids, request.hashes, strict=True)
            },
        )
        return build

    def flush(self):
        self.logs.flush()

    def finish(self):
        """Nothing was delivered: no circuit breaker to feed, only the result to complete."""
        self.flush()
        result = self.result
        result.log_ids = list(self.logs.ids)
        result.log_id = result.log_ids[-1] if result.log_ids else False
        result.status_code = 202 if result.job_ids else 0
        result.success = not result.failed
        result.message = result.message or _summary(self.env, result)
        return result


def run_now(config):
    """The Run Now button: one scheduled sync, reported as a notification."""
    env = config.env
    result = cron_sync(config)
    if result.success:
        kind = "success"
    elif result.sent:
        kind = "warning"
    else:
        kind = "danger"
    return _notification(env._("Run Now: %s", config.name), result.message or _summary(env, result), kind, reload=True)


def _trigger_code(config, kind):
    if kind == "ir.cron":
        return "model._cron_sync(%d)" % config.id
    return (
        "# Generated by BJET API (Create Trigger) for configuration '%s'\n"
        "env['bj.api.sync.config']._make_outbound_http_request(record_ids=records, config_id_ref=%d)\n"
        % (config.name.replace("\n", " "), config.id)
    )


def create_trigger(config):
    """Create (or refresh) the cron, automation rule or server action that runs ``config``."""
    config = _prepare(config)
    env = config.env
    if config.request_type != "out":
        raise UserError(env._("Triggers exist for outbound configurations only."))
    kind = config.trigger_model
    if not kind:
        raise UserError(env._("Choose a Trigger Action Model first."))
    code = _trigger_code(config, kind)
    existing = env[kind].browse(config.trigger_action_id).exists() if config.trigger_action_id else None
    if existing and not _owns(existing, kind, config):
        existing = None  # the id belonged to another kind of trigger: never touch foreign records
    if kind == "ir.cron":
        vals = {
            "name": env._("BJET API: sync %s", config.name),
            "model_id": env["ir.model"]._get_id("bj.api.sync.config"),
            "state": "code",
            "code": code,
            "interval_number": 1,
            "interval_type": "hours",
            "active": True,
        }
    elif kind == "base.automation":
        action_vals = {
            "name": env._("Send to %s", config.name),
            "model_id": config.model_id.id,
            "usage": "base_automation",
            "state": "code",
            "code": code,
        }
        vals = {
            "name": env._("BJET API: send to %s", config.name),
            "model_id": config.model_id.id,
            "trigger": "on_create_or_write",
            "active": True,
        }
        # Watch the mapped fields only: an unrelated save, or the recomputation of a stored
        # computed field after the save, must not send again. Scripts may read any field,
        # so with a script line every save triggers.
        out_lines = config.line_ids.filtered(lambda line: line.direction in ("both", "out"))
        if out_lines and not any(line.value_type.startswith("python") for line in out_lines):
            watched = out_lines.field_id.filtered(lambda f: f.store and f.name != "id")
            vals["trigger_field_ids"] = [Command.set(watched.ids)]
        else:
            vals["trigger_field_ids"] = [Command.clear()]
        if existing:
            existing.action_server_ids.filtered(lambda a: a.state == "code").unlink()
        vals["action_server_ids"] = [Command.create(action_vals)]
    elif kind == "ir.actions.server":
        vals = {
            "name": env._("Send to %s", config.name),
            "model_id": config.model_id.id,
            "state": "code",
            "code": code,
            "binding_model_id": config.model_id.id,
            "binding_type": "action",
        }
    else:
        raise UserError(env._("Unsupported Trigger Action Model: %s", kind))
    if existing:
        existing.write(vals)
        trigger = existing
    else:
        trigger = env[kind].create(vals)
    config.write({"trigger_action_id": trigger.id})
    return _notification(
        env._("Trigger ready"),
        env._("%(kind)s '%(name)s' now runs this configuration.", kind=_trigger_label(env, kind), name=trigger.name),
        "success",
        reload=True,
    )


def _owns(trigger, kind, config):
    """Whether ``trigger`` is one Create Trigger made for ``config``."""
    if kind == "base.automation":
        codes = trigger.action_server_ids.mapped("code")
    else:
        codes = [trigger.code]
    marker = "_cron_sync(%d)" % config.id if kind == "ir.cron" else "config_id_ref=%d)" % config.id
    return any(marker in (code or "") for code in codes)


def _trigger_label(env, kind):
    selection = dict(env["bj.api.sync.config"]._fields["trigger_model"]._description_selection(env))
    return selection.get(kind, kind)


def _classify(env, outcome):
    """A human reading of a failed connection (guard, DNS, TLS, timeout, refused)."""
    error = outcome.error or ""
    if "Refusing to call" in error:
        return env._("Blocked by the SSRF guard: %s", error)
    if outcome.status == 408:
        return env._("Timed out: %s", error)
    lowered = error.lower()
    if "dns" in lowered or "nameresolution" in lowered or "gaierror" in lowered or "name or service" in lowered:
        return env._("DNS resolution failed: %s", error)
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return env._("TLS/SSL error: %s", error)
    if "refused" in lowered:
        return env._("Connection refused: %s", error)
    return error or env._("HTTP status %s", outcome.status)


def test_connection(config):
    """Out: HEAD the URL (GET when HEAD is not allowed) with auth and headers, no body."""
    config = _prepare(config)
    env = config.env
    if not config.url:
        raise UserError(env._("Set the Request URL first."))
    url = config.url
    if placeholders(url):
        url = url[: url.index("{")]  # the part before the first placeholder: host, auth and base path
    try:
        sender = Sender(config)
    except (UserError, SyncError) as exc:
        message = exc.message if isinstance(exc, SyncError) else str(exc.args[0] if exc.args else exc)
        return _notification(env._("Connection test failed"), message, "danger", sticky=True)
    sender.log_payloads = False
    headers = {k: v for k, v in sender.headers.items() if k.lower() != "content-type"}
    request = OutboundRequest(method="HEAD", url=url, headers=headers, res_model=config.model_name)
    outcome, vals_list = sender.transmit(request, max_retries=0)
    sender.logs.extend(vals_list)
    if outcome.status in (405, 501):
        request = OutboundRequest(method="GET", url=url, headers=headers, res_model=config.model_name)
        outcome, vals_list = sender.transmit(request, max_retries=0)
        sender.logs.extend(vals_list)
    sender.flush()
    latency = outcome.attempts[-1].elapsed_ms if outcome.attempts else outcome.elapsed_ms
    status = outcome.status
    if outcome.error or not status or status == 408:
        return _notification(env._("Connection test failed"), _classify(env, outcome), "danger", sticky=True)
    details = {"method": request.method, "url": url, "status": status, "ms": latency}
    if status in (401, 403):
        return _notification(
            env._("Connection test: authentication refused"),
            env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms: check the credentials.", **details),
            "warning",
            sticky=True,
        )
    if 200 <= status < 400:
        return _notification(
            env._("Connection test succeeded"),
            env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms.", **details),
            "success",
        )
    return _notification(
        env._("Connection test: server answered with an error"),
        env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms.", **details),
        "warning" if status < 500 else "danger",
        sticky=True,
    )


def preview_payload(config):
    """The request the first matching record would produce; nothing is sent."""
    config = _prepare(config)
    env = config.env
    Model = env[config.model_name]
    record = Model.search(config._get_filter_domain(), order="id", limit=1)
    if not record:
        return _notification(env._("Preview Payload"), env._("No record matches the Filter Domain."), "warning")
    try:
        payload = mapping.serialize(config, record)[0]
        url = fill_url(config.url, payload, env) if placeholders(config.url or "") else config.url
    except SyncError as exc:
        return _notification(env._("Preview Payload"), exc.message, "danger", sticky=True)
    method = config._get_http_method()
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    lines = ["%s %s" % (method, url)]
    if method not in BODY_METHODS:
        lines.append(env._("(no body is sent with %s; payload shown for reference)", method))
    elif config.is_paginated and not placeholders(config.url or ""):
        lines.append(env._("(sent as one item of a JSON array of up to %s records)", config.page_size))
    lines += ["", text]
    return _notification(
        env._("Preview Payload: %s", record.display_name), "\n".join(lines), "info", sticky=True, pre=True
    )
