"""Deletes: a record deleted in Odoo is deleted on the remote (``DELETE <its URL>``).

Create Trigger with **Propagate Deletions** adds an automation rule "On deletion" (the
``on_unlink`` trigger of ``base.automation``) calling
``env['bj.api.sync.config']._propagate_deletion(record_ids=records, config_id_ref=<id>)``.
The rule runs before the rows are deleted, so everything the request needs is built
then: the URL (the Delete URL, or the Request URL followed by ``/{remote_id}``) filled
from the record's payload and its remote identifier, the ``external_id`` of its Sync
Binding. Only records the remote knows (a binding) are deleted there. Immediate delivery
sends at once (a rolled-back deletion has then still been sent); queued delivery writes
a job in the deleting transaction, which the worker sends after commit, long after the
record is gone. ``404``/``410`` answers mean already gone: a success, which neither
fails the job nor pauses the configuration. The bindings of the records go with them.
"""

import logging
import uuid
from urllib.parse import urlsplit, urlunsplit

from odoo.exceptions import UserError

from ..lib.errors import SyncError
from . import mapping
from .client import parsed
from .outbound_build import (
    CHUNK_SIZE,
    Failure,
    OutboundRequest,
    as_records,
    chunks,
    fill_url,
    in_plan_scope,
    placeholders,
    prepare,
    refusal,
    serialize_records,
)
from .sender import LogBuffer, Sender, SyncResult, config_error, event_vals, skip

_logger = logging.getLogger(__name__)

REMOTE_ID = "remote_id"
GONE = (404, 410)


def url_template(config):
    """The Delete URL, or the Request URL (its placeholders, else ``/{remote_id}`` appended to its path)."""
    if (config.delete_url or "").strip():
        return config.delete_url.strip()
    url = config.url or ""
    if placeholders(url):
        return url
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/{%s}" % REMOTE_ID))


def already_gone(request, outcome, vals_list, env):
    """A DELETE answered 404/410: the remote has no such record any more, which is what was asked."""
    if request.method != "DELETE" or outcome.status not in GONE:
        return False
    if vals_list:
        vals_list[-1].update(
            status="success", error_message=env._("Already gone on the remote (HTTP %s).", outcome.status)
        )
    return True


def build(config, records, headers):
    """``(requests, failures, unbound ids)`` of the DELETEs of ``records``; sends nothing."""
    env = config.env
    Binding = env["bj.api.sync.binding"].sudo()
    bindings = Binding.search_fetch(
        [("config_id", "=", config.id), ("res_model", "=", config.model_name), ("res_id", "in", records.ids)],
        ["res_id", "external_id"],
    )
    external = {binding.res_id: binding.external_id for binding in bindings}
    unbound = [rid for rid in records.ids if rid not in external]
    bound = records.browse([rid for rid in records.ids if rid in external])
    template = url_template(config)
    needs_payload = [name for name in placeholders(template) if name != REMOTE_ID]
    payloads, failures = {}, []
    if needs_payload and bound:
        items, failures = serialize_records(config, bound)
        payloads = dict(items)
    failed = {rid for failure in failures for rid in failure.res_ids}
    key = mapping.identifier_key(config)
    requests = []
    for rid in bound.ids:
        if rid in failed:
            continue
        remote_id = external[rid]
        payload = dict(payloads.get(rid) or {})
        if remote_id:
            payload[REMOTE_ID] = remote_id
            if key:
                payload[key] = remote_id  # the remote's identifier of the record, not ours
        try:
            url = fill_url(template, payload, env)
        except SyncError as exc:
            message = exc.message
            if "{%s}" % REMOTE_ID in template and not remote_id:
                message = env._("No remote identifier is known for this record (its Sync Binding has no External ID).")
            failures.append(Failure([rid], message, 400))
            continue
        request_headers = dict(headers)
        request_headers["Idempotency-Key"] = idempotency_key = str(uuid.uuid4())
        requests.append(
            OutboundRequest(
                method="DELETE",
                url=url,
                headers=request_headers,
                res_model=config.model_name,
                res_ids=[rid],
                idempotency_key=idempotency_key,
            )
        )
    return requests, failures, unbound


def _forget(config, res_ids):
    if res_ids:
        config.env["bj.api.sync.binding"].sudo().search(
            [("config_id", "=", config.id), ("res_model", "=", config.model_name), ("res_id", "in", list(res_ids))]
        ).unlink()


@in_plan_scope
def propagate(config, records):
    """Delete ``records`` on the remote (see the module's docstring); returns a ``SyncResult``."""
    config = prepare(config)
    env = config.env
    records = as_records(config, records).with_context(active_test=False).exists()
    queued = config.delivery == "queued"
    reason = refusal(config)
    if reason and not (queued and config.paused and config.active and config.request_type == "out"):
        return skip(config, records, reason)
    if queued:
        return _enqueue(config, records)
    result = SyncResult()
    try:
        sender = Sender(config, result=result)
    except (UserError, SyncError) as exc:
        return config_error(config, records, exc, result)
    headers = {k: v for k, v in sender.headers.items() if k.lower() != "content-type"}
    done = []
    try:
        for chunk in chunks(records, CHUNK_SIZE):
            requests, failures, unbound = build(config, chunk, headers)
            result.skipped += len(unbound)
            for failure in failures:
                sender.fail(failure, method="DELETE")
            for request in requests:
                outcome, vals_list = sender.transmit(request)
                gone = already_gone(request, outcome, vals_list, env)
                sender.logs.extend(vals_list)
                sender.last = (outcome.status, parsed(outcome))
                if outcome.ok or gone:
                    result.sent += 1
                    sender.deliveries[0] += 1
                    done.extend(request.res_ids)
                else:
                    result.failed += 1
                    sender.deliveries[1] += 1
                    sender.last_failure = sender.last
        _forget(config, done)
    finally:
        result = sender.finish()
    return result


def _enqueue(config, records):
    """Queued: one DELETE job per bound record, in the deleting transaction (nothing if it rolls back)."""
    from . import outbox  # noqa: PLC0415 - outbox imports this module (already_gone)

    env = config.env
    result = SyncResult(status_code=202)
    logs = LogBuffer(env)
    jobs = env["bj.api.sync.job"]
    for chunk in chunks(records, CHUNK_SIZE):
        requests, failures, unbound = build(config, chunk, {})
        result.skipped += len(unbound)
        for failure in failures:
            result.failed += len(failure.res_ids)
            logs.extend([event_vals(config, "error", failure.message, failure.res_ids, failure.status, "DELETE")])
        jobs |= outbox.enqueue(config, requests)
        result.sent += len(requests)
        _forget(config, [rid for request in requests for rid in request.res_ids])
    logs.flush()
    result.update(
        job_ids=jobs.ids,
        log_ids=logs.ids,
        log_id=logs.ids[-1] if logs.ids else False,
        success=not result.failed,
        response={"queued": len(jobs), "job_ids": jobs.ids},
        message=env._("%(count)s job(s) queued for %(records)s record(s).", count=len(jobs), records=result.sent),
    )
    if not jobs:
        result.status_code = 0
    return result
