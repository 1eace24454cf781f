"""Durable outbox: queued delivery that survives crashes, concurrent workers and outages.

Jobs are rows of ``bj.api.sync.job`` written in the caller's transaction (a rollback
leaves nothing to send). The worker claims due jobs with ``FOR UPDATE SKIP LOCKED``,
marks them running and commits before sending, so two workers never send the same job;
it commits again after the batch (or every second for a slow remote). A job that stays
``running`` past the stale timeout (crashed worker) goes back to pending. Jobs of one
config and one record set are sent in creation order: a later job waits while an earlier
one is not done or cancelled.
"""

import logging
import random
import time
from datetime import timedelta

import psycopg2

from odoo import fields
from odoo.modules import module as odoo_module

_logger = logging.getLogger(__name__)

STALE_MINUTES_PARAM = "bj_api_sync.job_stale_minutes"
PROBE_MINUTES_PARAM = "bj_api_sync.probe_interval_minutes"
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


def enqueue(config, requests):
    """Write one pending job per prepared request; returns the jobs.

    ``requests`` are dicts with url, method, body (str or None), res_model, res_ids
    (list of ids) and idempotency_key.
    """
    Job = config.env["bj.api.sync.job"].sudo()
    requests = _without_duplicates(config, requests)
    jobs = Job.create(
        [
            {
                "config_id": config.id,
                "company_id": config.company_id.id,  # the related field's value: no UPDATE after the INSERT
                "url": req["url"],
                "method": req["method"],
                "payload": req.get("body"),
                "res_model": req.get("res_model"),
                "res_ids": ",".join(str(i) for i in req.get("res_ids") or []),
                "payload_hashes": req.get("payload_hashes"),
                "idempotency_key": req["idempotency_key"],
            }
            for req in requests
        ]
    )
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


def _without_duplicates(config, requests):
    """Drop a request whose record already waits in a pending job with the same body.

    Automation rules fire several times in one save (once per recomputed field); the
    remote needs the record's state once, not once per recompute.
    """
    keys = {(req.get("res_model"), ",".join(str(i) for i in req.get("res_ids") or [])) for req in requests}
    pending = config.env["bj.api.sync.job"].sudo().search_fetch(
        [
            ("config_id", "=", config.id),
            ("state", "=", "pending"),
            ("attempts", "=", 0),
            ("res_ids", "in", [res_ids for _model, res_ids in keys]),
        ],
        ["res_model", "res_ids", "url", "method", "payload"],
        order="id desc",
    )
    latest = {}
    for job in pending:
        latest.setdefault((job.res_model, job.res_ids, job.url, job.method), job.payload)
    kept = []
    for req in requests:
        key = (req.get("res_model"), ",".join(str(i) for i in req.get("res_ids") or []), req["url"], req["method"])
        if key in latest and latest[key] == req.get("body"):
            continue
        latest[key] = req.get("body")
        kept.append(req)
    return kept


def _param_int(env, key, default):
    try:
        return int(env["ir.config_parameter"].sudo().get_param(key, default))
    except (TypeError, ValueError):
        return default


def requeue_stale(env):
    """Jobs left running by a crashed worker go back to pending."""
    minutes = _param_int(env, STALE_MINUTES_PARAM, 10)
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
    env.flush_all()  # the claim is SQL: pending ORM writes (states, attempts) must be visible to it
    if _committing(commit):
        env.cr.commit()
    for _try in range(5):
        if _committing(commit):
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
            if not _committing(commit):
                raise
            env.cr.rollback()
    else:
        return env["bj.api.sync.job"]
    if not ids:
        return env["bj.api.sync.job"]
    jobs = env["bj.api.sync.job"].sudo().browse(ids)
    jobs.invalidate_recordset(["state", "started_at", "write_uid", "write_date"])
    if _committing(commit):
        # The batch is committed after its attempts: their log rows go in that same
        # transaction (no separate cursor and commit; a job's log rows and its new state
        # are committed together).
        jobs = jobs.with_context(bj_api_sync_logs_in_transaction=True)
    _commit(env, commit)
    return jobs


def _committing(commit=None):
    """Commit claims and batches in production; under the test runner the test's transaction is shared."""
    return commit if commit is not None else not odoo_module.current_test


def _commit(env, commit=None):
    """Commit without waiting for the WAL flush.

    A claim or a batch's states lost to a database crash leave the jobs pending or running
    (requeued as stale): they are sent again with the same Idempotency-Key. Jobs themselves
    are written by the caller's own, durable, commit.
    """
    if _committing(commit):
        env.cr.execute("SET LOCAL synchronous_commit TO OFF")
        env.cr.commit()


def process_due_jobs(env, batch=DEFAULT_BATCH, time_budget=DEFAULT_TIME_BUDGET, deliver=None, commit=None):
    """Cron entry point: deliver due jobs for at most ``time_budget`` seconds.

    A claimed batch is committed once, after its last job, with every job's new state and
    log rows: a commit per job cost more than the request itself. A slow remote still gets
    its results committed every ``COMMIT_INTERVAL`` seconds. A crash in between leaves the
    batch's jobs running: they are requeued as stale and sent again with the same
    Idempotency-Key (at-least-once delivery, as always).
    """
    from . import outbound

    requeue_stale(env)
    probe_immediate(env)
    started = time.monotonic()
    done = 0
    while time.monotonic() - started < time_budget:
        jobs = claim(env, batch, commit)
        if not jobs:
            break
        deliveries = outbound.JobDeliveries()
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
                succeeded.write()
                deliveries.flush()
                _commit(env, commit)
                committed_at = now
            if out_of_time:
                break
    remaining = env["bj.api.sync.job"].sudo().search_count([("state", "=", "pending")])
    env["ir.cron"]._notify_progress(done=done, remaining=remaining if done else 0)
    return done


def _may_send(config):
    """False while paused, except for the circuit breaker's due probe."""
    if not config.paused:
        return True
    return config.pause_reason == "circuit" and (config.next_probe_at or fields.Datetime.now()) <= fields.Datetime.now()


class _Succeeded:
    """Delivered jobs of a batch, marked done together: one write per status code and second."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.groups = {}

    def add(self, job, attempt, status):
        self.groups.setdefault((attempt, status or 0, fields.Datetime.now()), []).append(job.id)

    def write(self):
        for (attempt, status, now), ids in self.groups.items():
            self.jobs.browse(ids).write(
                {"state": "done", "attempts": attempt, "response_code": status, "done_at": now, "last_error": False}
            )
        self.groups = {}


def _run_one(job, deliver, succeeded):
    config = job.config_id
    if not _may_send(config):
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
        _record_success(config)
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
    _record_failure(config, outcome.get("status"))
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


def _record_success(config):
    config = config.sudo()
    vals = {}
    if config.consecutive_failures:
        vals["consecutive_failures"] = 0
    if config.paused and config.pause_reason == "circuit":
        vals.update(paused=False, pause_reason=False, next_probe_at=False)
        config.message_post(body=config.env._("A probe request succeeded: deliveries resumed."))
    if vals:
        config.write(vals)


def record_outcomes(config, succeeded, failed, last_status=None):
    """Circuit breaker for immediate delivery, in a transaction of its own.

    Counting on the config row inside the user's transaction would make concurrent
    saves contend on it (and a rollback would forget the failure).
    """
    if not (succeeded or failed) or (not failed and not config.consecutive_failures and not config.paused):
        return

    def apply(config):
        if failed:
            _record_failure(config, last_status, count=failed)
        else:
            _record_success(config)

    if odoo_module.current_test or config.env.registry.in_test_mode():
        apply(config.sudo())
        return
    with config.env.registry.cursor() as cr:
        apply(config.with_env(config.env(cr=cr)).sudo())


def probe_immediate(env):
    """Probe configs paused by the circuit breaker that have no queued job to probe with."""
    from . import outbound

    now = fields.Datetime.now()
    configs = env["bj.api.sync.config"].sudo().search(
        [("paused", "=", True), ("pause_reason", "=", "circuit"), ("next_probe_at", "<=", now),
         ("delivery", "=", "immediate")]
    )
    for config in configs:
        if env["bj.api.sync.job"].sudo().search_count([("config_id", "=", config.id), ("state", "=", "pending")]):
            continue
        try:
            headers, _secrets = outbound.build_headers(config, body=False)
            outcome = outbound.outbound_client(env).send(
                "HEAD", config.url.split("{", 1)[0], headers=headers, max_retries=0,
                timeout=(float(config.connect_timeout), float(config.read_timeout)),
            )
            reachable = outcome.status and outcome.status < 500 and outcome.status not in (408, 410, 429)
        except Exception:  # noqa: BLE001 - a probe failing is the expected case
            reachable = False
        if reachable:
            _record_success(config)
        else:
            _record_failure(config, None)


def _record_failure(config, status, count=1):
    """Circuit breaker: pause after max_consecutive_failures failures in a row, or at once on 410."""
    config = config.sudo()
    failures = config.consecutive_failures + count
    vals = {"consecutive_failures": failures}
    threshold = config.max_consecutive_failures
    if config.paused and config.pause_reason == "circuit":
        vals["next_probe_at"] = fields.Datetime.now() + timedelta(
            minutes=_param_int(config.env, PROBE_MINUTES_PARAM, 5)
        )
    elif not config.paused and (status == 410 or (threshold and failures >= threshold)):
        reason = (
            config.env._("the remote answered 410 Gone")
            if status == 410
            else config.env._("%s failed deliveries in a row", failures)
        )
        pause(config, reason)
        return
    config.write(vals)


def pause(config, reason):
    """Pause a config by the circuit breaker, tell its responsible user."""
    minutes = _param_int(config.env, PROBE_MINUTES_PARAM, 5)
    config.write(
        {
            "paused": True,
            "pause_reason": "circuit",
            "consecutive_failures": max(config.consecutive_failures + 1, config.max_consecutive_failures),
            "next_probe_at": fields.Datetime.now() + timedelta(minutes=minutes),
        }
    )
    message = config.env._(
        "Deliveries paused: %(reason)s. Pending jobs wait; a probe is sent every %(minutes)s minutes "
        "and deliveries resume when it succeeds, or press Resume.",
        reason=reason,
        minutes=minutes,
    )
    config.message_post(body=message, message_type="comment", subtype_xmlid="mail.mt_comment")
    if config.responsible_id:
        config.activity_schedule(
            "mail.mail_activity_data_todo",
            summary=config.env._("API deliveries paused"),
            note=message,
            user_id=config.responsible_id.id,
        )
