"""Durable outbox: queued delivery that survives crashes, concurrent workers and outages.

Jobs are rows of ``bj.api.sync.job`` written in the caller's transaction (a rollback
leaves nothing to send). The worker claims due jobs with ``FOR UPDATE SKIP LOCKED``,
marks them running and commits before sending, so two workers never send the same job;
it commits again after the batch (or every second for a slow remote). A job that stays
``running`` past the stale timeout (crashed worker) goes back to pending. Jobs of one
config and one record set are sent in creation order: a later job waits while an earlier
one is not done or cancelled.

Queue side (``enqueue_records``, ``Queuer``) and worker side (``claim``,
``process_due_jobs``, ``JobDeliveries``) live together: they share the job's life cycle.
"""

import logging
import random
import time
from datetime import timedelta

import psycopg2

from odoo import fields

from ..lib.api import BODY_METHODS
from . import circuit_breaker, deletes
from .circuit_breaker import param_int
from .client import parsed
from .outbound_build import CHUNK_SIZE, build_requests, chunks, in_plan_scope, prepare
from .sender import LogBuffer, Sender, SyncResult, event_vals, summary
from .transaction import commit_async, may_commit

_logger = logging.getLogger(__name__)

STALE_MINUTES_PARAM = "bj_api_sync.job_stale_minutes"
DEFAULT_BATCH = 100
DEFAULT_TIME_BUDGET = 50.0  # seconds per cron call; the cron is re-run at once while work remains
COMMIT_INTERVAL = 1.0  # seconds: the longest a delivered job's state waits for its commit

# The ordering condition (no earlier unfinished job of the same records) is written so that it
# costs one probe of bj_api_sync_job_open_idx per candidate job, whatever the queue's length:
# plain equalities (IS NOT DISTINCT FROM cannot be an index condition) in a subquery kept as
# such by OFFSET 0 (pulled up into an anti-join, it was planned as a hash join on config_id
# alone or as a full index scan per job: every pending job compared with every other, 160 ms
# per claim with 1,400 pending jobs, seconds with 10,000). Rows with a NULL model or ids, which
# the equalities do not match, keep the NULL-safe comparison.
CLAIM_SQL = """
    SELECT job.id
      FROM bj_api_sync_job job
      JOIN bj_api_sync_config config ON config.id = job.config_id
     WHERE job.state = 'pending'
       AND job.next_attempt_at <= %(now)s
       AND (NOT COALESCE(config.paused, FALSE) OR job.id = ANY(%(probe_ids)s))
       AND NOT EXISTS (
            SELECT 1 FROM bj_api_sync_job earlier
             WHERE earlier.config_id = job.config_id
               AND earlier.res_model = job.res_model
               AND earlier.res_ids = job.res_ids
               AND earlier.id < job.id
               AND earlier.state IN ('pending', 'running', 'failed')
            OFFSET 0)
       AND (job.res_model IS NOT NULL AND job.res_ids IS NOT NULL OR NOT EXISTS (
            SELECT 1 FROM bj_api_sync_job earlier
             WHERE earlier.config_id = job.config_id
               AND earlier.res_model IS NOT DISTINCT FROM job.res_model
               AND earlier.res_ids IS NOT DISTINCT FROM job.res_ids
               AND earlier.id < job.id
               AND earlier.state IN ('pending', 'running', 'failed')))
     ORDER BY job.next_attempt_at, job.id
     LIMIT %(limit)s
       FOR UPDATE OF job SKIP LOCKED
"""

# The claim marks its jobs running in the same statement (the usual queue pattern): no
# second round trip, no ORM write of every claimed row.
CLAIM_AND_MARK_SQL = """
    UPDATE bj_api_sync_job
       SET state = 'running', started_at = %%(now)s, write_uid = %%(uid)s, write_date = %%(now)s
     WHERE id IN (%s)
 RETURNING id
""" % CLAIM_SQL




# --------------------------------------------------------------------------
# Queue side: the caller's transaction
# --------------------------------------------------------------------------


def enqueue(config, requests):
    """Write one pending job per ``OutboundRequest``; returns the jobs."""
    Job = config.env["bj.api.sync.job"].sudo()
    vals_list = _without_duplicates(config, [Job._vals_from_request(config, request) for request in requests])
    jobs = Job.create(vals_list)
    if jobs and not _worker_due(config.env):
        jobs._trigger_worker()
    return jobs


def _worker_due(env):
    """Whether the worker cron already has a trigger due now (another one would add nothing).

    A save firing an automation rule queues a job per transaction: one query here instead of
    a trigger row, its cron read and a NOTIFY on a separate connection at commit, every time.
    """
    cron_id = env["ir.model.data"]._xmlid_to_res_id(
        "bj_api_sync.ir_cron_bj_api_sync_job_worker", raise_if_not_found=False
    )
    if not cron_id:
        return False
    env["ir.cron.trigger"].flush_model()
    env.cr.execute(
        "SELECT 1 FROM ir_cron_trigger WHERE cron_id = %s AND call_at <= (now() AT TIME ZONE 'UTC') LIMIT 1",
        [cron_id],
    )
    return bool(env.cr.fetchone())


def _without_duplicates(config, vals_list):
    """Drop a job whose record already waits in a pending job with the same body.

    Automation rules fire several times in one save (once per recomputed field); the
    remote needs the record's state once, not once per recompute.
    """
    pending = config.env["bj.api.sync.job"].sudo().search_fetch(
        [
            ("config_id", "=", config.id),
            ("state", "=", "pending"),
            ("attempts", "=", 0),
            ("res_ids", "in", list({vals["res_ids"] for vals in vals_list})),
        ],
        ["res_model", "res_ids", "url", "method", "payload"],
        order="id desc",
    )
    latest = {}
    for job in pending:
        latest.setdefault((job.res_model, job.res_ids, job.url, job.method), job.payload)
    kept = []
    for vals in vals_list:
        key = (vals["res_model"], vals["res_ids"], vals["url"], vals["method"])
        if key in latest and latest[key] == vals["payload"]:
            continue
        latest[key] = vals["payload"]
        kept.append(vals)
    return kept


def queue_build(config, build, result, logs):
    """Jobs for the requests of ``build``; its failures counted and logged. Returns the jobs."""
    for failure in build.failures:
        result.failed += len(failure.res_ids)
        logs.extend([event_vals(config, "error", failure.message, failure.res_ids, failure.status)])
    jobs = enqueue(config, build.requests)
    result.sent += sum(len(request.res_ids) for request in build.requests)
    return jobs


def enqueue_records(config, records, selected):
    """Queued delivery of a call: jobs in the caller's transaction, 202 at once."""
    env = config.env
    result = SyncResult(skipped=len(records) - len(selected), status_code=202)
    jobs = env["bj.api.sync.job"]
    logs = LogBuffer(env)
    for chunk in chunks(selected, CHUNK_SIZE):
        jobs |= queue_build(config, build_requests(config, chunk, headers={}), result, logs)
    logs.flush()
    result.log_ids = logs.ids
    result.log_id = logs.ids[-1] if logs.ids else False
    result.job_ids = jobs.ids
    result.success = not result.failed
    result.response = {"queued": len(jobs), "job_ids": jobs.ids}
    result.message = env._("%(count)s job(s) queued for %(records)s record(s).", count=len(jobs), records=result.sent)
    return result


class Queuer:
    """The scheduled sync of a queued config: jobs instead of requests, same interface as ``Sender``."""

    def __init__(self, config, result):
        self.config = config
        self.env = config.env
        self.result = result
        self.logs = LogBuffer(self.env)

    def push(self, records, skip_unchanged=False, max_records=None):
        config = self.config
        build = build_requests(config, records, headers={}, skip_unchanged=skip_unchanged, max_records=max_records)
        self.result.skipped += len(build.skipped_ids)
        jobs = queue_build(config, build, self.result, self.logs)
        self.result.job_ids = self.result.job_ids + jobs.ids
        # Bound now, so that the next scheduled run does not queue the same payloads again.
        self.env["bj.api.sync.binding"]._upsert(
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
        result.message = result.message or summary(self.env, result)
        return result


# --------------------------------------------------------------------------
# Worker side: the cron
# --------------------------------------------------------------------------

def requeue_stale(env):
    """Jobs left running by a crashed worker go back to pending."""
    minutes = param_int(env, STALE_MINUTES_PARAM, 10)
    limit = fields.Datetime.now() - timedelta(minutes=minutes)
    stale = env["bj.api.sync.job"].sudo().search([("state", "=", "running"), ("started_at", "<", limit)])
    if stale:
        _logger.warning("bj_api_sync: %d sync jobs were left running by a crashed worker; requeued", len(stale))
        stale.write({"state": "pending", "next_attempt_at": fields.Datetime.now()})
    return stale


def _probe_job_ids(env):
    """One due pending job per config paused by the circuit breaker: the probe."""
    Config = env["bj.api.sync.config"].sudo()
    now = fields.Datetime.now()
    configs = Config.search(
        [("paused", "=", True), ("pause_reason", "=", "circuit"), ("next_probe_at", "<=", now)]
    )
    ids = []
    for config in configs:
        job = env["bj.api.sync.job"].sudo().search(
            [("config_id", "=", config.id), ("state", "=", "pending")], order="id", limit=1
        )
        if job:
            ids.append(job.id)
    return ids


def claim(env, limit, commit=None):
    """Claim up to ``limit`` due jobs for this worker and commit the claim."""
    committing = may_commit(env, commit, cron_only=False)
    env.flush_all()  # the claim is SQL: pending ORM writes (states, attempts) must be visible to it
    if committing:
        env.cr.commit()
    for _try in range(5):
        if committing:
            # A queue claim wants READ COMMITTED: with SKIP LOCKED it then never conflicts with
            # rows other workers claimed after our snapshot (REPEATABLE READ would raise).
            env.cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
        # The planner's cost estimate of the NULL-safe ordering probe grows with the queue (about
        # 800,000 with 10,000 pending jobs once analyzed), far above jit_above_cost: PostgreSQL
        # then JIT-compiles every claim, 300 ms for a statement that runs in 3 ms.
        env.cr.execute("SET LOCAL jit = off")
        now = fields.Datetime.now()
        params = {"limit": limit, "probe_ids": _probe_job_ids(env), "now": now, "uid": env.uid}
        try:
            with env.cr.savepoint(flush=False):
                env.cr.execute(CLAIM_AND_MARK_SQL, params)
                ids = sorted(row[0] for row in env.cr.fetchall())
            break
        except psycopg2.errors.SerializationFailure:
            # Another worker claimed rows after our snapshot was taken: start a fresh one.
            if not committing:
                raise
            env.cr.rollback()
    else:
        return env["bj.api.sync.job"]
    if not ids:
        return env["bj.api.sync.job"]
    jobs = env["bj.api.sync.job"].sudo().browse(ids)
    jobs.invalidate_recordset(["state", "started_at", "write_uid", "write_date"])
    if committing:
        # The batch is committed after its attempts: their log rows go in that same
        # transaction (no separate cursor and commit; a job's log rows and its new state
        # are committed together).
        jobs = jobs.with_context(bj_api_sync_logs_in_transaction=True)
    if committing:
        commit_async(env)
    return jobs


def _commit(env, commit=None):
    """Commit claims and states without waiting for the WAL flush (``transaction.commit_async``)."""
    if may_commit(env, commit, cron_only=False):
        commit_async(env)


def process_due_jobs(env, batch=DEFAULT_BATCH, time_budget=DEFAULT_TIME_BUDGET, deliver=None, commit=None):
    """Cron entry point: deliver due jobs for at most ``time_budget`` seconds.

    A claimed batch is committed once, after its last job, with every job's new state and
    log rows: a commit per job cost more than the request itself. A slow remote still gets
    its results committed every ``COMMIT_INTERVAL`` seconds. A crash in between leaves the
    batch's jobs running: they are requeued as stale and sent again with the same
    Idempotency-Key (at-least-once delivery, as always).
    """
    requeue_stale(env)
    circuit_breaker.probe_immediate(env)
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < time_budget:
        jobs = claim(env, batch, commit)
        if not jobs:
            break
        deliveries = JobDeliveries()
        succeeded = _Succeeded(jobs)
        committed_at = time.monotonic()
        for index, job in enumerate(jobs):
            _run_one(job, deliver or deliveries, succeeded)
            done += 1
            now = time.monotonic()
            out_of_time = now - started >= time_budget
            if out_of_time:
                jobs[index + 1:].write({"state": "pending"})  # claimed but not started: release
            if out_of_time or index == len(jobs) - 1 or now - committed_at >= COMMIT_INTERVAL:
                succeeded.mark_done()
                deliveries.flush()
                _commit(env, commit)
                committed_at = now
            if out_of_time:
                break
    remaining = env["bj.api.sync.job"].sudo().search_count([("state", "=", "pending")])
    env["ir.cron"]._notify_progress(done=done, remaining=remaining if done else 0)
    return done


class _Succeeded:
    """Delivered jobs of a batch, marked done together: one write per status code and second."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.groups = {}

    def add(self, job, attempt, status):
        self.groups.setdefault((attempt, status or 0, fields.Datetime.now()), []).append(job.id)

    def mark_done(self):
        for (attempt, status, now), ids in self.groups.items():
            self.jobs.browse(ids).write(
                {"state": "done", "attempts": attempt, "response_code": status, "done_at": now, "last_error": False}
            )
        self.groups = {}


def _run_one(job, deliver, succeeded):
    config = job.config_id
    if not circuit_breaker.may_send(config):
        job.write({"state": "pending"})  # the config paused while this batch was claimed
        return False
    attempt = job.attempts + 1
    try:
        outcome = deliver(job, attempt=attempt)
    except Exception as exc:  # noqa: BLE001 - a broken job must not stop the worker
        _logger.exception("bj_api_sync: job %s crashed", job.id)
        outcome = {"ok": False, "status": 0, "error": "%s: %s" % (type(exc).__name__, exc), "retry_after": None}
    if outcome.get("ok"):
        succeeded.add(job, attempt, outcome.get("status"))
        circuit_breaker.record_success(config)
        return True
    vals = {"attempts": attempt, "response_code": outcome.get("status") or 0}
    vals["last_error"] = outcome.get("error") or job.env._("HTTP status %s", outcome.get("status"))
    retryable = outcome.get("retryable", True)
    if retryable and attempt <= config.max_retries:
        vals.update(state="pending", next_attempt_at=_next_attempt(config, attempt, outcome.get("retry_after")))
        job.write(vals)
    else:
        vals["state"] = "failed"
        job.write(vals)
        _notify_failed(job)
    circuit_breaker.record_failure(config, outcome.get("status"))
    return False


def _next_attempt(config, attempt, retry_after=None):
    delay = config.retry_backoff * (2 ** (attempt - 1))
    delay += random.uniform(0, delay * 0.1)
    if retry_after:
        delay = max(delay, float(retry_after))
    return fields.Datetime.now() + timedelta(seconds=delay)


def _notify_failed(job):
    config = job.config_id
    config.sudo().message_post(
        body=config.env._(
            "Sync job #%(job)s failed after %(attempts)s attempts: %(error)s. "
            "Open Sync Jobs to retry it.",
            job=job.id,
            attempts=job.attempts,
            error=job.last_error,
        ),
        message_type="comment",
        subtype_xmlid="mail.mt_comment",
    )


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

    @in_plan_scope
    def _sender(self, job):
        sender = self.senders.get(job.config_id.id)
        if sender is None:
            sender = self.senders[job.config_id.id] = Sender(prepare(job.config_id))
        return sender

    def __call__(self, job, attempt=1):
        sender = self._sender(job)
        config = sender.config
        request = job._to_request(sender.headers, method=sender.method, url=config.url)
        outcome, vals_list = sender.transmit(request, max_retries=0)
        for vals in vals_list:
            vals["attempt"] = attempt
        gone = deletes.already_gone(request, outcome, vals_list, config.env)  # a DELETE's 404/410: done
        sender.logs.extend(vals_list)
        if outcome.ok and (request.hashes or request.payloads) and request.method in BODY_METHODS:
            sender.remember_bindings(request, parsed(outcome))
        if outcome.ok and sender.write_back and request.method in BODY_METHODS:
            sender.write_back(sender, request, parsed(outcome))  # after delivery, in the batch's transaction
        last = outcome.attempts[-1] if outcome.attempts else None
        return {
            "ok": outcome.ok or gone,
            "status": outcome.status,
            "error": outcome.error or (not outcome.ok and config.env._("HTTP status %s", outcome.status)) or False,
            "retry_after": last.retry_after if last else None,
            "retryable": bool(last.retryable) if last else True,
        }

    def flush(self):
        """Write the batch's log rows and bindings (before the worker commits)."""
        for sender in self.senders.values():
            sender.flush()


@in_plan_scope
def deliver_job(job, attempt=1):
    """One attempt of one queued job, its logs written at once (see ``JobDeliveries``)."""
    deliveries = JobDeliveries()
    try:
        return deliveries(job, attempt=attempt)
    finally:
        deliveries.flush()
