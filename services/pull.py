"""Pull (an Out configuration with GET): fetch remote data and apply it to Odoo records.

Without URL placeholders the URL is fetched page by page and every item is upserted by
the record identifier; with placeholders there is one GET per record, which updates
that record from the answer. Unchanged records are not written.
"""

import logging
import uuid

from odoo.exceptions import UserError

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
    with_query,
)
from .sender import Sender, SyncResult, checkpoint, config_error

_logger = logging.getLogger(__name__)


def extract_list(data, root, env):
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


@in_plan_scope
def pull(config, records=None, timeout=None, commit=False):
    """Fetch and apply; returns a ``SyncResult`` with ``received``, ``created``, ``updated``."""
    config = prepare(config)
    env = config.env
    result = SyncResult(created=0, updated=0, received=0)
    try:
        sender = Sender(config, timeout=timeout, result=result)
    except (UserError, SyncError) as exc:
        return config_error(config, as_records(config, records), exc, result)
    try:
        if placeholders(config.url):
            _pull_records(sender, select(config, as_records(config, records)), commit)
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
        url = with_query(config.url, limit=want, offset=offset) if paginated else config.url
        request = _page_request(sender, url)
        outcome, vals_list = sender.transmit(request)
        final = vals_list[-1] if vals_list else None
        sender.last = (outcome.status, parsed(outcome))
        if not outcome.ok:
            result.failed += 1
            sender.last_failure = sender.last
            sender.logs.extend(vals_list)
            break
        try:
            items = extract_list(outcome.json(), config.response_root, config.env)
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
        checkpoint(sender, commit, done=result.received, remaining=page_size if paginated else 0)
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
    if config.response_root and isinstance(data, dict) and isinstance(data.get(config.response_root), dict):
        data = data[config.response_root]
    if not isinstance(data, dict):
        raise SyncError(env._("The response is not a JSON object."), status=502)
    with env.cr.savepoint():
        vals = mapping.deserialize(config, data, record=record, partial=True)
        vals = mapping.without_unchanged(record, vals)
        if vals:
            record.write(vals)
