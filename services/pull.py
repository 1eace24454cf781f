"""Pull (an Out configuration with GET): fetch remote data and apply it to Odoo records.

Without URL placeholders the URL is fetched page by page and every item is upserted by
the record identifier; with placeholders there is one GET per record, which updates
that record from the answer. Unchanged records are not written.
"""

import logging
import uuid
from datetime import timedelta
from urllib.parse import quote

from odoo import fields
from odoo.exceptions import UserError

from ..lib import paging
from ..lib.errors import SyncError
from . import mapping
from .client import parsed
from .outbound_build import (
    CHUNK_SIZE,
    DEFAULT_PAGE_SIZE,
    OutboundRequest,
    as_records,
    build_requests,
    chunks,
    in_plan_scope,
    placeholders,
    prepare,
    select,
)
from .sender import Sender, SyncResult, checkpoint, config_error, event_vals

_logger = logging.getLogger(__name__)

LAST_SYNC = "{last_sync}"
LAST_SYNC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
NEVER_SYNCED = "1970-01-01T00:00:00Z"  # {last_sync} before the first successful run (or after Reset)


def extract_list(data, root, env):
    """The list of items at ``response_root`` (a dotted path, ``lib.paging.get_path``) of a pulled body."""
    if root:
        data = paging.get_path(data, root)
        if data is paging.MISSING:
            raise SyncError(env._("The response has no '%s' key (Response Root).", root), status=502)
    if isinstance(data, dict) and not root:
        return [data]
    if not isinstance(data, list):
        raise SyncError(env._("The pulled response is not a JSON list of objects."), status=502)
    return data


def pager(config, url):
    """The ``lib.paging.Pager`` of a paginated pull of ``config`` from ``url``."""
    settings = paging.Paging(
        style=config.pagination_style or "offset",
        page_size=config.page_size or DEFAULT_PAGE_SIZE,
        size_param=(config.size_param or "").strip(),
        offset_param=(config.offset_param or "").strip(),
        page_param=(config.page_param or "").strip(),
        cursor_param=(config.cursor_param or "").strip(),
        cursor_path=(config.cursor_path or "").strip(),
        next_url_path=(config.next_url_path or "").strip(),
    )
    return paging.Pager(url, settings, cap=config.limit or None)


def last_sync_value(config):
    """What ``{last_sync}`` stands for: the start of the last successful run minus the overlap (UTC)."""
    if not config.last_sync_at:
        return NEVER_SYNCED
    since = config.last_sync_at - timedelta(seconds=max(config.sync_overlap or 0, 0))
    return since.strftime(LAST_SYNC_FORMAT)


def fill_last_sync(config, url):
    """``url`` with ``{last_sync}`` filled (URL-encoded; ``:`` kept, as a query allows)."""
    if not url or LAST_SYNC not in url:
        return url
    return url.replace(LAST_SYNC, quote(last_sync_value(config), safe=":"))


def _complete(config, result, sender):
    """Whether the run went through the whole list without a failure (``{last_sync}`` may advance)."""
    if result.failed or sender.last_failure:
        return False
    return not (config.limit and result.received >= config.limit)


@in_plan_scope
def pull(config, records=None, timeout=None, commit=False):
    """Fetch and apply; returns a ``SyncResult`` with ``received``, ``created``, ``updated``.

    With ``{last_sync}`` in the Request URL, a list pull that went through the whole list
    without a failure stores its start as Last Sync, in the run's own transaction (with the records
    it wrote: a rollback forgets both).
    """
    config = prepare(config)
    env = config.env
    result = SyncResult(created=0, updated=0, received=0)
    started = fields.Datetime.now()
    try:
        sender = Sender(config, timeout=timeout, result=result)
    except (UserError, SyncError) as exc:
        return config_error(config, as_records(config, records), exc, result)
    try:
        if placeholders(config.url):
            _pull_records(sender, select(config, as_records(config, records)), commit)
        else:
            _pull_list(sender, commit)
            if LAST_SYNC in (config.url or "") and _complete(config, result, sender):
                config.write({"last_sync_at": started})
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


def _page_request(sender, url):
    headers = dict(sender.headers)
    headers["Idempotency-Key"] = key = str(uuid.uuid4())
    return OutboundRequest(
        method="GET", url=url, headers=headers, res_model=sender.config.model_name, idempotency_key=key
    )


def _pull_list(sender, commit):
    """GET the list page by page (``lib.paging``: the configuration's Pagination Style).

    Each page is one request (a log row per attempt) whose items are upserted before the
    next page is asked; Limit caps the items of the run. Not paginated: one GET.
    """
    config = sender.config
    env = config.env
    result = sender.result
    paginated = config.is_paginated
    cap = config.limit or None
    base_url = fill_last_sync(config, config.url)
    pages = pager(config, base_url) if paginated else None
    url = pages.first() if paginated else base_url
    previous = None
    while url:
        request = _page_request(sender, url)
        outcome, vals_list = sender.transmit(request)
        final = vals_list[-1] if vals_list else None
        sender.last = (outcome.status, parsed(outcome))
        if not outcome.ok:
            result.failed += 1
            sender.last_failure = sender.last
            sender.logs.extend(vals_list)
            break
        body = outcome.json()
        try:
            items = extract_list(body, config.response_root, config.env)
        except SyncError as exc:
            result.failed += 1
            sender.last_failure = (exc.status, {"message": exc.message, "status_code": exc.status})
            if final:
                final.update(status="error", error_message=exc.message)
            sender.logs.extend(vals_list)
            break
        count = len(items)
        if cap is not None:
            items = items[: max(cap - result.received, 0)]
        record_ids, errors = _upsert_items(sender, items)
        result.received += len(items)
        if final:
            final["res_ids"] = ",".join(map(str, record_ids)) or False
            if errors:
                final.update(status="error", error_message=_format_item_errors(env, errors, len(items)))
        sender.logs.extend(vals_list)
        checkpoint(sender, commit, done=result.received, remaining=config.page_size if paginated else 0)
        if not paginated:
            break
        try:
            url = pages.next(outcome.headers, body, count)
        except paging.PagingError as exc:
            if isinstance(exc, paging.ForeignOrigin):
                message = env._(
                    "The remote's next page %s is on another host than the Request URL: not followed "
                    "(the credentials would go there); stopped.",
                    exc.url,
                )
            else:
                message = env._(
                    "Pagination loop: the remote pointed again at %s, a page already fetched in this run; stopped.",
                    exc.url,
                )
            _logger.warning("bj_api_sync: %s: %s", config.name, message)
            sender.last_failure = (502, {"message": message, "status_code": 502})
            sender.logs.extend([event_vals(config, "error", message, [], 502, "GET", exc.url)])
            break
        if url and config.pagination_style == "offset":
            if outcome.text == previous:
                _logger.warning("bj_api_sync: %s: the remote ignores offset (same page twice); stopping", config.name)
                break
            previous = outcome.text
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
                outcomes.append((index, None, _error_text(exc)))
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


def _error_text(exc):
    return exc.message if isinstance(exc, SyncError) else "%s: %s" % (type(exc).__name__, exc)


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
    for chunk in chunks(records, CHUNK_SIZE):
        build = build_requests(config, chunk, headers=sender.headers)
        for failure in build.failures:
            sender.fail(failure)
        for request in build.requests:
            request.url = fill_last_sync(config, request.url)
        for request, outcome, vals_list in sender.transmit_many(build.requests):
            final = vals_list[-1] if vals_list else None
            response = parsed(outcome)
            sender.last = (outcome.status, response)
            if outcome.ok:
                record = config.env[config.model_name].browse(request.res_ids)
                try:
                    _apply_one(config, record, response)
                    result.updated += 1
                    result.received += 1
                except Exception as exc:  # noqa: BLE001 - one bad record never stops the others
                    message = _error_text(exc)
                    result.failed += 1
                    sender.last_failure = (400, {"message": message, "status_code": 400})
                    if final:
                        final.update(status="error", error_message=message)
            else:
                result.failed += 1
                sender.last_failure = sender.last
            sender.logs.extend(vals_list)
        checkpoint(sender, commit)


def _apply_one(config, record, data):
    """Write the remote's object (at Response Root when it nests it) on ``record``."""
    env = config.env
    if config.response_root and isinstance(data, dict):
        nested = paging.get_path(data, config.response_root)
        if isinstance(nested, dict):
            data = nested
    if not isinstance(data, dict):
        raise SyncError(env._("The response is not a JSON object."), status=502)
    with env.cr.savepoint():
        vals = mapping.deserialize(config, data, record=record, partial=True)
        vals = mapping.without_unchanged(record, vals)
        if vals:
            record.write(vals)
