"""What to send: the records of an outbound call and the requests that carry them.

Building is separate from sending on purpose: ``build_requests(config, records)`` turns
records into ``OutboundRequest`` objects (method, URL, headers, body, record ids,
payload hashes, idempotency key) and sends nothing, so immediate delivery
(``services.sender``), the outbox (``services.outbox``) and Preview share one builder.
"""

import contextlib
import functools
import logging
import re
import traceback
import uuid
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg2

from odoo import _, models
from odoo.exceptions import UserError
from odoo.tools import SQL

from ..lib.api import BODY_METHODS
from ..lib.errors import SyncError
from ..lib.values import dumps
from . import mapping
from .auth import build_headers

_logger = logging.getLogger(__name__)

PLACEHOLDER_RE = re.compile(r"\{([^{}/?#]+)\}")
# Placeholders that are not a record's: ``{last_sync}`` (incremental pull) is filled by the pull
RESERVED_PLACEHOLDERS = frozenset({"last_sync"})
CHUNK_SIZE = 1000  # records serialized at once by a direct call (bounds memory)
DEFAULT_PAGE_SIZE = 100


@dataclass
class OutboundRequest:
    """One logical request; retries of it reuse the same idempotency key.

    A queued request is stored as a ``bj.api.sync.job`` row and read back by the job
    model (``_vals_from_request`` / ``_to_request``): its headers never are (secrets).
    """

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
# URLs
# --------------------------------------------------------------------------


def placeholders(url):
    """The record placeholders of ``url`` (``{last_sync}`` is not one)."""
    return [name for name in PLACEHOLDER_RE.findall(url or "") if name not in RESERVED_PLACEHOLDERS]


def fill_url(url, payload, env):
    """Fill ``{api_key}`` placeholders from a record's payload, URL-encoded."""

    def replace(match):
        key = match.group(1)
        if key in RESERVED_PLACEHOLDERS:
            return match.group(0)
        value = payload.get(key) if isinstance(payload, dict) else None
        if isinstance(value, bool):
            value = "true" if value else "false"
        if value is None or value == "" or isinstance(value, (dict, list)):
            raise SyncError(
                env._("The URL placeholder {%s} has no usable value in the record's payload.", key), status=400
            )
        return quote(str(value), safe="")

    return PLACEHOLDER_RE.sub(replace, url)


def with_query(url, **params):
    """``url`` with these query parameters set (replacing the same names)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend((k, str(v)) for k, v in params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def chunks(seq, size):
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


# --------------------------------------------------------------------------
# Configuration and records of a call
# --------------------------------------------------------------------------


def prepare(config):
    """The configuration as superuser in its company.

    Configurations are written by administrators only, and the user whose save fires an
    automation rule must not need read access to them (nor to every mapped field).
    """
    if not isinstance(config, models.BaseModel) or config._name != "bj.api.sync.config":
        # no record, hence no env: the request's language is the one _() finds
        raise UserError(_("An API configuration is required."))  # pylint: disable=prefer-env-translation
    config.ensure_one()
    return config.sudo().with_company(config.company_id)


def refusal(config, queuing=False):
    """Why ``config`` must not send now, or None.

    ``queuing``: the call only queues jobs, which a paused configuration does too (they wait
    for Resume or a successful probe): its pause is not read, so a save firing the rule
    reads nothing the deliveries write (see ``bj.api.sync.config._load_cached_values``).
    """
    env = config.env
    if config.request_type != "out":
        return env._("'%s' is not an outbound configuration.", config.name)
    if not config.active:
        return env._("Configuration '%s' is archived: nothing was sent.", config.name)
    if not queuing and config.paused:
        return env._("Configuration '%s' is paused: nothing was sent. Resume it to send again.", config.name)
    return None


def as_records(config, records):
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


def select(config, records):
    """``records`` within the Filter Domain, in id order, capped by the config's limit.

    Records passed explicitly are sent even when archived (an automation on archiving
    must be able to tell the remote).
    """
    if not records:
        return records
    domain = [("id", "in", records.ids)] + config._get_filter_domain()
    Model = records.with_context(active_test=False)
    probe, prime = mapping.version_probe(config.env, config.id)
    if probe is None:
        found = Model.search(domain, order="id", limit=config.limit or None)
        return records.browse(found.ids)
    # The same query checks the cached mapping plans of the configuration (one round trip fewer
    # per call, on every per-record push and every queued save).
    query = Model._search(domain, order="id", limit=config.limit or None)
    [(ids, versions)] = config.env.execute_query(SQL("SELECT ARRAY(%s), %s", query.select(), probe))
    prime(versions)
    return records.browse(ids)


def in_plan_scope(func):
    """Run ``func`` in one ``mapping.plan_scope()``: the configuration is checked once per call."""

    @functools.wraps(func)
    def scoped(*args, **kwargs):
        with mapping.plan_scope():
            return func(*args, **kwargs)

    return scoped


# --------------------------------------------------------------------------
# Building requests
# --------------------------------------------------------------------------


def failure_from(exc, res_ids):
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
            return [], [failure_from(exc, records.ids)]
    items, failures = [], []
    for record in records:
        try:
            with cr.savepoint():
                items.append((record.id, mapping.serialize(config, record, messages=messages)[0]))
        except Exception as exc:  # noqa: BLE001
            _logger.info("bj_api_sync: %s: record %s not serialized: %s", config.name, record.id, exc)
            failures.append(failure_from(exc, [record.id]))
    return items, failures


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
    Binding = config.env["bj.api.sync.binding"]
    build = Build()
    items, build.failures = serialize_records(config, records, messages=build.messages)
    entries = []
    hashes = Binding._known_hashes(config, [rid for rid, _payload in items]) if skip_unchanged else {}
    for rid, payload in items:
        digest = Binding._payload_hash(payload)
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
                build.failures.append(failure_from(exc, [rid]))
                continue
            build.requests.append(make(url, [entry], body))
    else:
        for group in chunks(entries, config.page_size or DEFAULT_PAGE_SIZE):
            try:
                body = dumps([p for _r, p, _d in group]).encode("utf-8") if with_body else None
            except (ValueError, TypeError) as exc:
                build.failures.append(failure_from(exc, [rid for rid, _p, _d in group]))
                continue
            build.requests.append(make(config.url, group, body))
    return build
