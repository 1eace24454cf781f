"""The operations of the inbound API: list, read one, upsert, batch, update, delete.

What a request does to the records once the pipeline (services/inbound.py) has found
its configuration, checked the method, the credentials and the body, and opened the
savepoint: here the work, there whether and how it is served. Lists also read their
query string here (filters, limit/offset) and build their paging links.

Every function takes the request being served (``services.inbound._Call``) and
``config``, the configuration in the Run As user's environment (``call.config`` is the
same record as superuser, for reading the configuration itself). The outcome goes back
on the call (``status``, ``data``, ``res_ids``, ``response_headers``); errors are
:class:`SyncError` or any exception, which the pipeline maps to a status
(``call.as_sync_error``, used here to name a batch item).
"""

import logging
from urllib.parse import urlencode, urlsplit, urlunsplit

from odoo.service.model import PG_CONCURRENCY_EXCEPTIONS_TO_RETRY

from ..lib import values
from ..lib.errors import SyncError
from . import mapping

_logger = logging.getLogger(__name__)


def run(call, config):
    """Do what ``call``'s method and path ask; the outcome goes to ``call.status``, ``data``, ``res_ids``."""
    _operation(call)(call, config)


def _operation(call):
    if call.method in ("GET", "HEAD"):
        return _op_read_one if call.record_id is not None else _op_list
    if call.method == "POST":
        return _op_batch if isinstance(call.payload, list) else _op_upsert
    if call.method in ("PUT", "PATCH"):
        return _op_update
    return _op_delete


# -- reads
def _op_list(call, config):
    """A page of records, ``X-Total-Count`` and ``Link: rel="next"``.

    One row more than the page is read, so whether a next page exists needs no COUNT.
    The total is exact on every page but costs a COUNT over every matching row only
    where a client needs it: on a full first page (where clients read it) and on
    pages whose request says ``Prefer: count=exact`` (PostgREST's convention). A
    partial page knows its total (offset + rows); the other full pages of a walk leave
    the header out.
    """
    domain, limit, offset = _list_query(call, config)
    Model = config.env[call.res_model]
    records = mapping.search(config, domain, offset=offset, limit=limit + 1 if limit else None, order="id")
    more = bool(limit) and len(records) > limit
    if more:
        records = records[:limit]
    total = None
    if not more and (records or not offset):
        total = offset + len(records)
    elif not more or not offset or _wants_count(call):  # (not more: a page past the end)
        total = Model.search_count(domain)
    _success(call, 200, mapping.serialize(config, records), records)
    if total is not None:
        call.response_headers["X-Total-Count"] = str(total)
    if more:
        call.response_headers["Link"] = '<%s>; rel="next"' % _page_url(call, limit, offset + limit)


def _wants_count(call):
    prefer = (call.headers or {}).get("prefer") or ""
    return any(token.strip().lower() == "count=exact" for token in prefer.replace(";", ",").split(","))


def _op_read_one(call, config):
    record = _find_one(call, config, call.record_id)
    _success(call, 200, mapping.serialize(config, record)[0], record)


# -- writes
def _op_upsert(call, config):
    record, created = mapping.upsert(config, call.payload)
    _success(call, 201 if created else 200, mapping.serialize(config, record)[0], record)


def _op_batch(call, config):
    items = call.payload
    if not items:
        raise SyncError(call.env._("The batch is empty."), status=400)
    cap = call.config.limit
    if cap and len(items) > cap:
        raise SyncError(
            call.env._("Batch of %(count)s items exceeds the limit of %(limit)s.", count=len(items), limit=cap),
            status=413,
        )
    if not call.config.track_batch_history:
        # Odoo's import does the same by default ("Track history during import" unchecked).
        config = config.with_context(tracking_disable=True)
    Model = config.env[call.res_model]
    results = [None] * len(items)
    to_create = []  # (index, vals): items without identifier, created in one call
    key = mapping.identifier_key(config)
    for index, item in enumerate(items):
        prefix = call.env._("Item %s", index)
        if not isinstance(item, dict):
            raise SyncError(call.env._("%s: expected a JSON object.", prefix), status=400)
        try:
            if key is None or item.get(key) is None:
                to_create.append((index, mapping.deserialize(config, item)))
            else:
                record, _created = mapping.upsert(config, item)
                results[index] = record.id
        except Exception as exc:  # noqa: BLE001 - named by index, status kept
            raise call.as_sync_error(exc, prefix=prefix) from None
    if to_create:
        created = _create_many(call, Model, to_create)
        for (index, _vals), record_id in zip(to_create, created.ids):
            results[index] = record_id
    records = Model.browse(list(dict.fromkeys(results)))
    by_id = dict(zip(records.ids, mapping.serialize(config, records)))
    _success(call, 201, [by_id[record_id] for record_id in results], records)


def _create_many(call, Model, to_create):
    """One ``create`` for all new records; when it fails, again one by one to name the item."""
    try:
        with call.env.cr.savepoint():
            return Model.create([vals for _index, vals in to_create])
    except PG_CONCURRENCY_EXCEPTIONS_TO_RETRY:
        raise
    except Exception:  # noqa: BLE001 - replayed below item by item
        _logger.debug("bj_api_sync: batch create failed, retrying item by item", exc_info=True)
    created = Model.browse()
    for index, vals in to_create:
        try:
            created |= Model.create(vals)
            Model.env.flush_all()
        except Exception as exc:  # noqa: BLE001 - named by index, status kept
            raise call.as_sync_error(exc, prefix=call.env._("Item %s", index)) from None
    return created


def _op_update(call, config):
    record = _find_one(call, config, _target_identifier(call, config))
    vals = mapping.deserialize(config, call.payload, record, partial=True)
    vals.pop("id", None)
    vals = mapping.without_unchanged(record, vals)
    if vals:
        record.write(vals)
    _success(call, 200, mapping.serialize(config, record)[0], record)


def _op_delete(call, config):
    record = _find_one(call, config, _target_identifier(call, config))
    snapshot = mapping.serialize(config, record)[0]
    if call.config.delete_mode == "archive":
        if not record._active_name:
            raise SyncError(
                call.env._("Model %s cannot be archived: it has no active field.", call.res_model), status=400
            )
        record.action_archive()
    else:
        record.unlink()
    _success(call, 200, snapshot, record)


# -- helpers
def _success(call, status, data, records):
    call.status = status
    call.data = data
    call.res_ids = records.ids


def _target_identifier(call, config):
    if call.record_id is not None:
        return call.record_id
    value = mapping.identifier_value(config, call.payload or {}) if call.payload else None
    if value in (None, False, ""):
        raise SyncError(
            call.env._("A record identifier is required: in the URL (/%(endpoint)s/<id>) or as '%(key)s' "
                       "in the body.", endpoint=call.endpoint, key=mapping.identifier_key(config)),
            status=400,
        )
    return value


def _find_one(call, config, value):
    records = mapping.find_records(config, value)
    if not records:
        raise SyncError(call.env._("Record not found: %s", value), status=404)
    if len(records) > 1:
        raise SyncError(
            call.env._("Identifier %(value)s matches %(count)s records.", value=value, count=len(records)),
            status=409,
        )
    return records


def _list_query(call, config):
    """Domain, limit and offset from the query string; unknown keys are refused."""
    cfg = call.config
    domain = list(cfg.with_env(cfg.env(user=config.env.uid, su=True))._get_filter_domain())
    # Parameters rows and Plain lines are read only when the query has more than limit/offset
    # (plain pagination, the usual list call, spares their three queries).
    filters = _query_filters(call) if any(key not in ("limit", "offset") for key, _raw in call.query) else {}
    default_limit = cfg.page_size if cfg.is_paginated and cfg.page_size else cfg.limit
    limit, offset = default_limit, 0
    seen = set()
    for key, raw in call.query:
        if key in seen:
            raise SyncError(call.env._("Query parameter '%s' is given more than once.", key), status=400)
        seen.add(key)
        if key == "limit":
            limit = _query_int(call.env, key, raw, minimum=1)
        elif key == "offset":
            offset = _query_int(call.env, key, raw, minimum=0)
        elif key in filters:
            field, operator = filters[key]
            try:
                value = values.parse_query_value(field.ttype, raw, operator, key=key)
            except SyncError as exc:
                exc.translate(call.env._)
                raise
            domain.append((field.name, operator, value))
        else:
            allowed = ", ".join(sorted({"limit", "offset"} | set(filters)))
            raise SyncError(
                call.env._("Unknown query parameter '%(key)s'. Allowed: %(allowed)s", key=key, allowed=allowed),
                status=400,
            )
    if cfg.limit and (not limit or limit > cfg.limit):
        limit = cfg.limit
    return domain, limit, offset


def _query_filters(call):
    """``{query key: (field, operator)}``: Parameters rows, then Plain lines as equality filters."""
    filters = {}
    for param in call.config.param_ids:
        filters[param.key] = (param.field_id, param.operator)
    for line in call.config.line_ids:
        if line.value_type == "plain" and line.api_key and line.api_key not in filters:
            filters[line.api_key] = (line.field_id, "=")
    return filters


def _page_url(call, limit, offset):
    parts = urlsplit(call.url)
    pairs = [(k, v) for k, v in call.query if k not in ("limit", "offset")]
    pairs += [("limit", str(limit)), ("offset", str(offset))]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(pairs), ""))


def _query_int(env, key, raw, minimum):
    text = (raw or "").strip()
    if not text.isdigit() or int(text) < minimum or len(text) > 10:
        raise SyncError(
            env._("Query parameter '%(key)s': expected an integer >= %(minimum)s, got '%(raw)s'.",
                  key=key, minimum=minimum, raw=raw),
            status=400,
        )
    return int(text)
