"""Push: the entry points that send records, now or through the outbox.

``make_outbound_request`` is what ``_make_outbound_http_request`` (BJET's documented
call) runs; ``cron_sync`` is the scheduled sync of every record within the Filter
Domain. A GET configuration pulls instead (``services.pull``); a queued one writes jobs
(``services.outbox``).
"""

import logging

from odoo.exceptions import UserError

from ..lib.errors import SyncError
from . import outbox, write_back
from .outbound_build import CHUNK_SIZE, as_records, chunks, in_plan_scope, prepare, refusal, select
from .pull import pull
from .sender import Sender, SyncResult, checkpoint, config_error, skip
from .transaction import may_commit

_logger = logging.getLogger(__name__)

CRON_BATCH_SIZE = 500  # records per committed batch of a scheduled sync


@in_plan_scope
def make_outbound_request(config, records, timeout=None, **kwargs):
    """Send ``records`` now (or queue them) through ``config``; returns a ``SyncResult``.

    ``records``: a recordset of the config's model (or ids); restricted to the Filter
    Domain and capped by ``limit``. A GET configuration pulls instead (``pull``).
    Never raises for HTTP or mapping failures: they are counted, logged and reported.
    """
    if kwargs:
        _logger.debug("bj_api_sync: ignoring unknown arguments %s", sorted(kwargs))
    config = prepare(config)
    env = config.env
    records = as_records(config, records)
    if write_back.suppressed(config):
        # a write-back of this configuration fired its own trigger: the values came from the remote
        return SyncResult(skipped=len(records), message=env._("Written back from '%s': not sent again.", config.name))
    pulling = config._get_http_method() == "GET"
    queued = config.delivery == "queued" and not pulling
    # A paused queued config still queues: its jobs wait for Resume or a successful probe.
    reason = refusal(config, queuing=queued)
    if reason:
        return skip(config, records, reason)
    if pulling:
        return pull(config, records, timeout=timeout)
    selected = select(config, records)
    if queued:
        return outbox.enqueue_records(config, records, selected)
    result = SyncResult(skipped=len(records) - len(selected))
    if not selected:
        result.message = env._("No record to send (none given, or none within the Filter Domain).")
        return result
    try:
        sender = Sender(config, timeout=timeout, result=result)
    except (UserError, SyncError) as exc:
        return config_error(config, selected, exc, result)
    size = CHUNK_SIZE
    if config.is_paginated and config.page_size:
        size = max(config.page_size, CHUNK_SIZE // config.page_size * config.page_size)
    try:
        for chunk in chunks(selected, size):
            sender.push(chunk)
            sender.flush()
    finally:
        result = sender.finish()
    return result


def _cron_batch_size(config):
    if config.is_paginated and config.page_size:
        return max(config.page_size, CRON_BATCH_SIZE // config.page_size * config.page_size)
    return CRON_BATCH_SIZE


@in_plan_scope
def cron_sync(config):
    """Sync every record matching the Filter Domain, in id-ordered batches.

    Records are fetched by id ranges (never all in memory), unchanged payloads are
    skipped, and each batch is committed with its progress when run by a cron worker.
    ``limit`` (when > 0) caps the records *sent* per run, so skipped records never
    starve the others.
    """
    config = prepare(config)
    env = config.env
    commit = may_commit(env)
    reason = refusal(config)
    if reason:
        return skip(config, env[config.model_name].browse(), reason)
    if config._get_http_method() == "GET":
        return pull(config, timeout=None, commit=commit)
    Model = env[config.model_name]
    domain = config._get_filter_domain()
    total = Model.search_count(domain)
    result = SyncResult()
    try:
        runner = outbox.Queuer(config, result) if config.delivery == "queued" else Sender(config, result=result)
    except (UserError, SyncError) as exc:
        return config_error(config, Model.browse(), exc, result)
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
            checkpoint(runner, commit, done=done, remaining=max(total - done, 0))
    finally:
        result = runner.finish()
    # Stopped by the cap or done: either way the cron waits for its next interval.
    env["ir.cron"]._notify_progress(done=done, remaining=0)
    return result
