"""Durable outbox: queued delivery that survives crashes, concurrent workers and outages.

Jobs are rows of ``bj.api.sync.job`` written in the caller's transaction (a rollback
leaves nothing to send). A worker (a cron: see ``services.workers`` for how several of
them share the work, on one or several Odoo servers) claims due jobs with ``FOR UPDATE
SKIP LOCKED``, marks them running and commits before sending, so two workers never send
the same job. It keeps several requests in flight: only their HTTP exchange runs in
threads (``services.parallel``); claims, job states, log rows, bindings, translations and
the circuit breaker stay on the worker's own cursor, committed at each claim and at
least every second.

Claims are shared between configurations: each one gets at most its Max Parallel
Requests minus its jobs already running on any worker, and the claim takes their jobs in
turns (every configuration's first job, then every second one...), so a slow, hanging or
failing remote holds its own share of the worker and never the other configurations'
jobs. Within a worker run a configuration starts with one request in flight and gets one
more with each answer (slow start); it goes back to one at a time while it fails, and a
remote that times out is throttled (``parallel.Throttle``) long before the circuit
breaker pauses it.

Jobs of one config and one record set are sent in creation order: a later job waits
while an earlier one is not done or cancelled, so two of them are never in flight at
once. A job left running by a worker that is gone (its advisory lock released: killed
process, lost connection) or past the stale timeout goes back to pending and is sent
again with the same Idempotency-Key (at-least-once delivery).

Queue side (``enqueue_records``, ``Queuer``) and worker side (``claim``,
``process_due_jobs``, ``JobDeliveries``) live together: they share the job's life cycle.
"""

import logging
import random
import time
from collections import Counter, OrderedDict, deque
from concurrent.futures import FIRST_COMPLETED, wait
from datetime import timedelta

import psycopg2

from odoo import fields

from ..lib.api import BODY_METHODS
from . import circuit_breaker, deletes, parallel, workers
from .client import parsed
from .outbound_build import CHUNK_SIZE, build_requests, chunks, in_plan_scope, prepare
from .sender import LogBuffer, Sender, SyncResult, event_vals, summary
from .transaction import may_commit

_logger = logging.getLogger(__name__)

STALE_MINUTES_PARAM = "bj_api_sync.job_stale_minutes"
DEFAULT_BATCH = 100  # jobs per claim at most
DEFAULT_TIME_BUDGET = 50.0  # seconds per cron call; the cron is re-run at once while work remains
COMMIT_INTERVAL = 1.0  # seconds: the longest a delivered job's state waits for its commit
CLAIM_INTERVAL = 0.2  # seconds: the longest a free slot waits for a claim while other requests are in flight
IDLE_CLAIM_INTERVAL = 1.0  # the same after a claim that found nothing (new jobs, retries coming due)
REQUEUE_INTERVAL = 5.0  # seconds between two looks for orphaned jobs during a run
PREFETCH = 25  # shares of a configuration's jobs a worker alone with them may hold (see CLAIM_SQL)
LINGER = 0.002  # seconds: how long other answers are awaited once one came in (one claim for a burst)
WAKE_INTERVAL = 1.0  # seconds between two wake-ups of the other workers by one run
CONTENDED_PAUSE = 0.02  # seconds before claiming again when another worker held the configurations

# The configurations with due work, each locked for this claim by a transaction-level
# advisory lock (try: a configuration another worker is claiming right now is left to it).
# Run by a committing worker as a statement of its own before CLAIM_SQL, so that the claim,
# with a fresh READ COMMITTED snapshot, counts the running jobs of every claim committed
# before the lock was granted: Max Parallel Requests then holds over all workers.
DUE_CONFIGS = """
        SELECT config.id, config.max_parallel_requests, config.consecutive_failures, config.paused
          FROM bj_api_sync_config config
         WHERE (NOT COALESCE(config.paused, FALSE)
                OR config.pause_reason = 'circuit' AND COALESCE(config.next_probe_at, %(now)s) <= %(now)s)
           AND EXISTS (SELECT 1 FROM bj_api_sync_job job
                        WHERE job.config_id = config.id
                          AND job.state = 'pending'
                          AND job.next_attempt_at <= %(now)s)
"""
LOCK_CONFIGS_SQL = """
    WITH due AS MATERIALIZED (%s)
    SELECT id, pg_try_advisory_xact_lock(%%(lock_key)s, id) FROM due
""" % DUE_CONFIGS

# Each configuration's share: its bound on requests in flight (Max Parallel Requests,
# lowered by ``caps``: a throttled remote, slow start; one request while it fails or is
# probed). Claimed jobs are running, in flight or queued in their worker, so:
#
# * a worker alone with the configuration's running jobs, and able to send its whole share
#   (share <= ``worker_size``), may hold ``prefetch`` shares of them and sends one share at
#   a time: a fast remote's next jobs are at hand without a claim per share; another
#   worker, seeing them running, takes none meanwhile (it could not send more anyway);
# * otherwise a claim takes at most the share minus the configuration's running jobs on
#   every worker (the bound holds over all of them), and at most ``worker_cap`` for this
#   worker: what is left (``spare``) is for other workers, which ``more`` tells.
#
# The jobs of all configurations are then taken in turns (every configuration's first job,
# then every second one...) up to ``limit``. Per configuration, one range scan of
# bj_api_sync_job_config_due_idx and one of bj_api_sync_job_running_idx.
#
# The ordering condition (no earlier unfinished job of the same records) is written so that it
# costs one probe of bj_api_sync_job_open_idx per candidate job, whatever the queue's length:
# plain equalities (IS NOT DISTINCT FROM cannot be an index condition) in a subquery kept as
# such by OFFSET 0 (pulled up into an anti-join, it was planned as a hash join on config_id
# alone or as a full index scan per job: every pending job compared with every other, 160 ms
# per claim with 1,400 pending jobs, seconds with 10,000). Rows with a NULL model or ids, which
# the equalities do not match, keep the NULL-safe comparison.
#
# The claim marks its jobs running in the same statement (the usual queue pattern): no
# second round trip, no ORM write of every claimed row. Rows locked by the lateral scan
# but not chosen stay pending (their lock ends with the claim's transaction).
CLAIM_SQL = """
    WITH due AS MATERIALIZED (%s), bounds AS MATERIALIZED (
        SELECT due.id AS config_id, bound.share, running.mine, running.total - running.mine AS others,
               COALESCE(due.paused, FALSE) AS paused,
               -- slow start: one request of this worker until the remote answered in its run
               CASE WHEN %%(answered)s::int[] IS NULL OR due.id = ANY(%%(answered)s::int[]) THEN bound.share
                    ELSE 1
               END AS mine_cap,
               -- alone with the configuration's jobs and able to send its whole share: prefetch
               running.total = running.mine AND %%(token)s::int IS NOT NULL
                   AND bound.share <= %%(worker_size)s AS alone
          FROM due
          LEFT JOIN unnest(%%(cap_ids)s::int[], %%(caps)s::int[]) AS cap(config_id, share) ON cap.config_id = due.id
         CROSS JOIN LATERAL (
            SELECT CASE WHEN COALESCE(due.paused, FALSE) OR due.consecutive_failures > 0 THEN 1
                        ELSE LEAST(GREATEST(COALESCE(due.max_parallel_requests, %%(default_share)s), 1),
                                   COALESCE(cap.share, 2147483647))
                   END AS share) bound
         CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE running.claimed_by = %%(token)s) AS mine, count(*) AS total
              FROM bj_api_sync_job running
             WHERE running.config_id = due.id AND running.state = 'running') running
         WHERE %%(config_ids)s::int[] IS NULL OR due.id = ANY(%%(config_ids)s::int[])
    ), share AS MATERIALIZED (
        SELECT config_id, free,
               -- beyond this worker's cap (not its slow start): for other workers
               CASE WHEN alone OR mine_cap - mine < capped THEN 0 ELSE share - mine - others - GREATEST(capped, 0)
               END AS spare
          FROM (SELECT config_id, share, mine, others, alone, mine_cap,
                       LEAST(share - mine - others, %%(worker_cap)s - mine) AS capped,
                       CASE WHEN alone
                            THEN mine_cap * CASE WHEN paused THEN 1 ELSE %%(prefetch)s END - mine
                            ELSE LEAST(share - mine - others, %%(worker_cap)s - mine, mine_cap - mine)
                       END AS free
                  FROM bounds) shares
    ), picked AS MATERIALIZED (
        SELECT candidate.id, candidate.config_id, candidate.next_attempt_at
          FROM share
         CROSS JOIN LATERAL (
            SELECT job.id, job.config_id, job.next_attempt_at
              FROM bj_api_sync_job job
             WHERE job.config_id = share.config_id
               AND job.state = 'pending'
               AND job.next_attempt_at <= %%(now)s
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
             LIMIT CASE WHEN share.free > 0 THEN share.free + 1 ELSE 0 END  -- one more: is there more?
               FOR UPDATE OF job SKIP LOCKED) candidate
    ), turns AS MATERIALIZED (
        SELECT picked.id, picked.next_attempt_at, share.free, share.spare,
               row_number() OVER (PARTITION BY picked.config_id ORDER BY picked.next_attempt_at, picked.id) AS turn
          FROM picked JOIN share ON share.config_id = picked.config_id
    ), chosen AS (
        SELECT id FROM turns WHERE turn <= free ORDER BY turn, next_attempt_at, id LIMIT %%(limit)s
    )
    UPDATE bj_api_sync_job
       SET state = 'running', started_at = %%(now)s, claimed_by = %%(token)s, write_uid = %%(uid)s,
           write_date = %%(now)s
     WHERE id IN (SELECT id FROM chosen)
 RETURNING id,
           -- more claimable jobs than taken: cut by ``limit``, or beyond this worker's cap
           (SELECT count(*) FROM turns WHERE turn <= free) > (SELECT count(*) FROM chosen)
           OR EXISTS (SELECT 1 FROM turns WHERE turn = free + 1 AND spare > 0)
""" % DUE_CONFIGS

# Running jobs whose worker is gone (its token's advisory lock is not held: the process was
# killed or lost its connection) or that ran past the stale timeout.
REQUEUE_SQL = """
    UPDATE bj_api_sync_job
       SET state = 'pending', next_attempt_at = %%(now)s, write_date = %%(now)s
     WHERE state = 'running'
       AND (started_at < %%(stale_before)s
            OR claimed_by IS NOT NULL AND claimed_by::bigint NOT IN (%s))
 RETURNING id
""" % workers.LIVE_TOKENS_SQL


# --------------------------------------------------------------------------
# Queue side: the caller's transaction
# --------------------------------------------------------------------------


# One statement queues a call's jobs: the worker trigger check, the pending-body check of
# each record and the INSERT (a save firing the rule pays one round trip, and no ORM create).
# A job is skipped when the latest pending, never-tried job of the same config, model,
# records, URL and method has the same body (``check``: the first job of its key in the
# call; later ones were compared in Python, with the job before them).
QUEUE_SQL = """
    WITH due AS MATERIALIZED (
        SELECT %(cron_id)s::int IS NOT NULL AND EXISTS (
               SELECT 1 FROM ir_cron_trigger
                WHERE cron_id = %(cron_id)s AND call_at <= (now() AT TIME ZONE 'UTC')) AS due
    ), new AS (
        SELECT * FROM unnest(%(res_ids)s::varchar[], %(url)s::varchar[], %(method)s::varchar[],
                             %(payload)s::text[], %(payload_hashes)s::varchar[], %(idempotency_key)s::varchar[],
                             %(check)s::bool[])
                   WITH ORDINALITY AS v (res_ids, url, method, payload, payload_hashes, idempotency_key,
                                         "check", position)
    ), queued AS (
        INSERT INTO bj_api_sync_job (config_id, company_id, res_model, res_ids, url, method, payload,
                                     payload_hashes, idempotency_key, state, next_attempt_at,
                                     create_uid, write_uid, create_date, write_date)
        SELECT %(config_id)s, %(company_id)s, %(res_model)s, new.res_ids, new.url, new.method, new.payload,
               new.payload_hashes, new.idempotency_key, 'pending', %(now)s,
               %(uid)s, %(uid)s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC'
          FROM new
         WHERE NOT new."check" OR ARRAY[COALESCE(new.payload, '')] IS DISTINCT FROM (
               SELECT ARRAY[COALESCE(job.payload, '')] FROM bj_api_sync_job job
                WHERE job.config_id = %(config_id)s AND job.res_model = %(res_model)s
                  AND job.res_ids = new.res_ids AND job.state = 'pending' AND COALESCE(job.attempts, 0) = 0
                  AND COALESCE(job.url, '') = COALESCE(new.url, '')
                  AND COALESCE(job.method, '') = COALESCE(new.method, '')
                ORDER BY job.id DESC LIMIT 1)
         ORDER BY new.position
        RETURNING id
    )
    SELECT (SELECT due FROM due), ARRAY(SELECT id FROM queued ORDER BY id)
"""


def enqueue(config, requests):
    """Write one pending job per ``OutboundRequest`` (unless the same body already waits); returns the jobs.

    Automation rules fire several times in one save (once per recomputed field): the
    remote needs the record's state once, not once per recompute. The worker cron is
    triggered unless a trigger is already due (a save firing an automation rule queues a
    job per transaction: that spares a trigger row, its cron read and a NOTIFY at commit).
    """
    env = config.env
    Job = env["bj.api.sync.job"].sudo()
    rows = _without_duplicates([Job._vals_from_request(config, request) for request in requests])
    if not rows:
        return Job
    Job.flush_model()
    env["ir.cron.trigger"].flush_model()
    cron_id = env["ir.model.data"]._xmlid_to_res_id(
        "bj_api_sync.ir_cron_bj_api_sync_job_worker", raise_if_not_found=False
    ) or None
    params = {name: [vals[name] for vals in rows] for name in (
        "res_ids", "url", "method", "payload", "payload_hashes", "idempotency_key", "check")}
    params.update(config_id=config.id, company_id=config.company_id.id or None, res_model=config.model_name,
                  cron_id=cron_id, uid=env.uid, now=fields.Datetime.now())  # the claims' clock
    env.cr.execute(QUEUE_SQL, params)
    worker_due, ids = env.cr.fetchone()
    jobs = Job.browse(ids)
    if ids:
        env["bj.api.sync.config"].browse(config.id).invalidate_recordset(["job_ids"])
        if not worker_due:
            jobs._trigger_worker()
    return jobs


def _without_duplicates(vals_list):
    """The rows to queue, each marked ``check`` when the database must compare it with the
    pending job of its key; a row with the same body as the row of its key before it is dropped."""
    last = {}
    rows = []
    for vals in vals_list:
        key = (vals["res_ids"], vals["url"] or False, vals["method"] or False)
        body = vals["payload"] or False
        if key in last and last[key] == body:
            continue
        vals["check"] = key not in last
        last[key] = body
        rows.append(vals)
    return rows


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


def _stale_minutes(env):
    try:
        return float(env["ir.config_parameter"].sudo().get_param(STALE_MINUTES_PARAM, 10))
    except (TypeError, ValueError):
        return 10.0


def _requeue(env, now):
    """Jobs left running by a worker that is gone, or for too long, go back to pending (SQL only)."""
    env.cr.execute(
        REQUEUE_SQL, {"now": now, "stale_before": now - timedelta(minutes=_stale_minutes(env))}
    )
    ids = [row[0] for row in env.cr.fetchall()]
    if ids:
        _logger.warning(
            "bj_api_sync: %d sync jobs were left running by a worker that died or stalled; requeued", len(ids)
        )
        env["bj.api.sync.job"].invalidate_model(["state", "next_attempt_at", "write_date"])
    return ids


def requeue_stale(env):
    """Jobs left running by a crashed worker go back to pending; returns them."""
    env["bj.api.sync.job"].flush_model()
    return env["bj.api.sync.job"].browse(_requeue(env, fields.Datetime.now()))


def _caps(env):
    """``(config ids, caps)`` below Max Parallel Requests: remotes throttled for their timeouts."""
    caps = parallel.Throttle.throttled(env)
    return list(caps), list(caps.values())


# The first statement of every transaction of a committing worker. READ COMMITTED: with SKIP
# LOCKED a claim then never conflicts with rows other workers claimed after its snapshot
# (REPEATABLE READ would raise), and counts the jobs they committed as running. No JIT: the
# planner's cost estimate of the NULL-safe ordering probe grows with the queue (about 800,000
# with 10,000 pending jobs once analyzed), far above jit_above_cost, and PostgreSQL then
# JIT-compiled every claim, 300 ms for a statement that runs in 3 ms. Commits without waiting
# for the WAL flush: a claim or a state lost to a database crash leaves jobs pending or
# running (requeued), sent again with the same Idempotency-Key, never a lost job.
BEGIN_SQL = "SET TRANSACTION ISOLATION LEVEL READ COMMITTED; SET LOCAL jit = off; SET LOCAL synchronous_commit TO OFF"


def _begin(env):
    """Commit what the transaction holds and start the next one as a worker's (``BEGIN_SQL``)."""
    env.flush_all()
    env.cr.commit()
    env.cr.execute(BEGIN_SQL)


def _claim(env, limit, concurrent, token=None, ramp=None, requeue=False, worker_size=None):
    """Claim up to ``limit`` due jobs in the current transaction; returns ``(jobs, more, contended)``.

    Jobs are shared between configurations (see CLAIM_SQL). ``concurrent``: other workers
    may claim at the same time (a committing worker in a ``BEGIN_SQL`` transaction): the
    configurations are locked first, and the caller commits right after, which releases
    them. ``more``: more jobs could have been claimed now than ``limit`` allowed (work for
    another worker). ``contended``: a configuration with due jobs was being claimed by
    another worker at that moment (left to it this time). ``ramp``: the configurations
    that answered in this worker run; the others get one request (slow start).
    ``requeue``: look for orphaned jobs first. ``worker_size``: the requests the claiming
    worker may have in flight (its prefetch and its cap depend on it). Pending ORM writes
    (the states of finished jobs) are flushed first: the claim is SQL and must see them.
    """
    env.flush_all()
    cap_ids, caps = _caps(env)
    now = fields.Datetime.now()
    params = {
        "now": now, "limit": limit, "uid": env.uid, "token": token, "config_ids": None,
        "cap_ids": cap_ids, "caps": caps, "default_share": parallel.DEFAULT_PER_CONFIG,
        "answered": None if ramp is None else list(ramp), "lock_key": workers.CLAIM_LOCK_KEY,
        "prefetch": PREFETCH, "worker_size": worker_size or 2**31 - 1,
        "worker_cap": 2 * worker_size if worker_size else 2**31 - 1
    }
    if requeue:
        _requeue(env, now)
    rows = []
    if concurrent:
        env.cr.execute(LOCK_CONFIGS_SQL, params)
        due = env.cr.fetchall()
        params["config_ids"] = [config_id for config_id, locked in due if locked]
        contended = len(params["config_ids"]) < len(due)
    else:
        contended = False
    if params["config_ids"] is None or params["config_ids"]:
        env.cr.execute(CLAIM_SQL, params)
        rows = env.cr.fetchall()
    Job = env["bj.api.sync.job"].sudo()
    if not rows:
        return Job, False, contended
    jobs = Job.browse(sorted(row[0] for row in rows))
    jobs.invalidate_recordset(["state", "started_at", "claimed_by", "write_uid", "write_date"])
    return jobs, rows[0][1], contended


def claim(env, limit, commit=None):
    """Claim up to ``limit`` due jobs outside a worker run (no worker token); committed when it may."""
    if not may_commit(env, commit, cron_only=False):
        env.cr.execute("SET LOCAL jit = off")
        return _claim(env, limit, False)[0]
    for _try in range(5):
        _begin(env)
        try:
            jobs = _claim(env, limit, True)[0]
            break
        except psycopg2.errors.TransactionRollbackError:
            env.cr.rollback()
    else:
        return env["bj.api.sync.job"]
    env.cr.commit()
    return jobs


def process_due_jobs(env, batch=DEFAULT_BATCH, time_budget=DEFAULT_TIME_BUDGET, commit=None):
    """Cron entry point: deliver due jobs for at most ``time_budget`` seconds; returns how many.

    Up to ``bj_api_sync.max_parallel_requests_total`` requests are in flight at once (each
    configuration within its share, see the module's docstring); a claim takes at most
    ``batch`` jobs. Outcomes are written on this thread and committed with their log rows
    at the next claim, or within ``COMMIT_INTERVAL`` for a slow remote. A crash in between
    leaves jobs running: they are requeued (at once when this worker's advisory lock is
    gone, else after the stale timeout) and sent again with the same Idempotency-Key.
    """
    committing = may_commit(env, commit, cron_only=False)
    lock = workers.WorkerLock(env.cr)
    lock.acquire()
    try:
        done = _Worker(env, lock.token, committing, batch, time_budget).run()
    finally:
        lock.release()
    remaining = env["bj.api.sync.job"].sudo().search_count([("state", "=", "pending")])
    env["ir.cron"]._notify_progress(done=done, remaining=remaining if done else 0)
    return done


class _Worker:
    """One run of the outbox worker: claims and outcomes on this thread, HTTP in a pool.

    Up to ``size`` requests in flight, each configuration within its share (``_share``:
    the same bound as the claim's). Claimed jobs wait in per-configuration queues until
    their configuration and the worker have room, served in turns; a finished request is
    followed at once by the next one of its configuration while claims come in batches.
    Claimed jobs are running in the database, in flight or queued: another worker never
    sends them, and counts them against the configuration's share.
    """

    def __init__(self, env, token, committing, batch, time_budget):
        self.env = env
        self.token = token
        self.committing = committing
        self.batch = max(1, batch)
        self.time_budget = time_budget
        self.size = parallel.total_limit(env)
        self.hold = self.size + max(self.size, self.batch)  # claimed jobs held at most, in flight and queued
        self.pool = parallel.HttpPool(self.size)
        self.inflight = {}  # future -> (job, attempt, sender, exchange)
        self.busy = Counter()  # config id -> its requests in flight
        self.queues = OrderedDict()  # config id -> deque of claimed jobs not started, in claim order
        self.queued = 0
        self.deliveries = JobDeliveries()
        self.succeeded = _Succeeded(env["bj.api.sync.job"].sudo())
        self.ramp = set()  # configurations that answered in this run (before: one request at a time)
        self.done = 0

    def run(self):
        env = self.env
        started = time.monotonic()
        circuit_breaker.probe_immediate(env)
        if self.committing:
            _begin(env)
        else:
            env.cr.execute("SET LOCAL jit = off")
        last_claim = last_commit = last_requeue = woke_at = None
        idle = False  # the last claim found nothing
        requeued_last = False  # the last claim looked for orphaned jobs first
        completed = 0  # outcomes since the last claim
        try:
            while True:
                now = time.monotonic()
                out_of_time = now - started >= self.time_budget
                if out_of_time and self.queued:
                    self._release()
                ready = self._dispatch()
                if not self.inflight and not self.queued and (out_of_time or (idle and not completed)):
                    if out_of_time or requeued_last:
                        break
                    last_requeue = None  # before stopping, one more look for orphaned jobs
                room = self.hold - len(self.inflight) - self.queued
                interval = IDLE_CLAIM_INTERVAL if idle else CLAIM_INTERVAL
                # Claim when nothing is in flight; when less than a round of queued jobs is left
                # (after a few answers, to claim them in one go); and, every claim interval,
                # when the worker has free slots and nothing to start (other configurations'
                # jobs may be due while those in hand wait for their configurations' shares).
                starving = len(self.inflight) < self.size and not ready
                if not out_of_time and room > 0 and (
                    not self.inflight
                    or self.queued < len(self.inflight)
                    and (completed >= max(1, min(self.size // 4, len(self.inflight))) or now - last_claim >= interval)
                    or starving and now - last_claim >= interval
                ):
                    requeue = last_requeue is None or now - last_requeue >= REQUEUE_INTERVAL
                    jobs, more, contended = self._claim(min(room, self.batch), requeue)
                    last_claim, idle, completed, requeued_last = now, not jobs, 0, requeue
                    if contended and not jobs:
                        # Another worker was claiming the configurations with work: not idle,
                        # try again in a moment (its claim commits at once).
                        idle = False
                        if not self.inflight and not self.queued:
                            time.sleep(CONTENDED_PAUSE)
                    if requeue:
                        last_requeue = now
                    if more and (woke_at is None or now - woke_at >= WAKE_INTERVAL):
                        workers.wake_helpers(env)  # the triggers are committed with the next commit
                        woke_at = now
                    if self.committing:
                        # The claim, with the outcomes so far, their logs and bindings, in
                        # one commit: the claimed jobs are running before anything is sent.
                        _begin(env)
                        last_commit = now
                        jobs = jobs.with_context(bj_api_sync_logs_in_transaction=True)
                    for job in jobs:
                        self.queues.setdefault(job.config_id.id, deque()).append(job)
                    self.queued += len(jobs)
                    continue
                if not self.inflight:
                    # queued jobs that cannot start yet and nothing to wait for: the next claim
                    time.sleep(max(0.0, min(interval - (now - last_claim), self.time_budget - (now - started))))
                    continue
                timeout = COMMIT_INTERVAL
                if room > 0 and not out_of_time:
                    timeout = max(0.0, min(timeout, interval - (now - last_claim)))
                finished, pending = wait(list(self.inflight), timeout=timeout, return_when=FIRST_COMPLETED)
                if finished and pending and not self.queued:
                    # Answers of a fast remote come in bursts: take the whole burst, then claim once.
                    finished |= wait(pending, timeout=LINGER)[0]
                for future in finished:
                    self._finish(future)
                    completed += 1
                    self._dispatch()
                if self.committing and time.monotonic() - last_commit >= COMMIT_INTERVAL:
                    self._write_outcomes(logs=True)
                    _begin(env)
                    last_commit = time.monotonic()
        finally:
            self.pool.close()
        self._write_outcomes(logs=True)
        if self.committing:
            env.flush_all()
            env.cr.commit()
        return self.done

    def _share(self, config):
        """Requests ``config`` may have in flight now (the claim's share, see CLAIM_SQL)."""
        if config.paused or config.consecutive_failures:
            return 1  # the circuit breaker's probe; a failing remote gets one request at a time
        if config.id not in self.ramp:
            return 1  # slow start: until the remote answered once in this run
        maximum = parallel.Throttle.maximum(config)
        return parallel.Throttle.limit(config, maximum)

    def _dispatch(self):
        """Start queued jobs, configurations in turns, within their shares and the worker's bound.

        Returns how many queued jobs could start now if the worker had room.
        """
        ready = 0
        shares = {}  # config id -> its share: nothing it depends on changes during one dispatch

        def share(config_id, queue):
            if config_id not in shares:
                shares[config_id] = self._share(queue[0].config_id)
            return shares[config_id]

        while len(self.inflight) < self.size:
            started = False
            for config_id in list(self.queues):
                queue = self.queues[config_id]
                if not queue:
                    del self.queues[config_id]
                    continue
                if self.busy[config_id] >= share(config_id, queue):
                    continue
                self.queued -= 1
                self._start(queue.popleft())
                self.queues.move_to_end(config_id)  # the next turn is another configuration's
                started = True
                break
            if not started:
                return 0
        for config_id, queue in self.queues.items():
            if queue and self.busy[config_id] < share(config_id, queue):
                ready += len(queue)
        return ready

    def _release(self):
        """Claimed jobs not started (out of time) go back to pending for the next run or worker."""
        ids = [job.id for queue in self.queues.values() for job in queue]
        self.queues.clear()
        self.queued = 0
        self.env["bj.api.sync.job"].sudo().browse(ids).write({"state": "pending"})

    def _claim(self, limit, requeue):
        """Outcomes so far written (logs too when committing), then a claim in the same transaction."""
        self._write_outcomes(logs=self.committing)
        try:
            return _claim(self.env, limit, self.committing, self.token, self.ramp, requeue=requeue,
                          worker_size=self.size)
        except psycopg2.errors.TransactionRollbackError:
            # READ COMMITTED claims do not conflict; a deadlock with a worker finishing jobs the
            # requeue looked at is still possible. The transaction is gone with the outcomes
            # written since the last commit: those jobs stay running and are requeued once this
            # worker's lock is released, sent again with the same Idempotency-Key.
            if not self.committing:
                raise
            _logger.warning("bj_api_sync: a claim was rolled back; its jobs will be sent again", exc_info=True)
            self.env.cr.rollback()
            self.env.cr.execute(BEGIN_SQL)
            self.deliveries = JobDeliveries()
            return self.env["bj.api.sync.job"], False, False

    def _write_outcomes(self, logs=False):
        """Delivered jobs marked done; with ``logs``, the log rows and bindings written too."""
        self.succeeded.mark_done()
        if logs:
            self.deliveries.flush()

    def _start(self, job):
        config = job.config_id
        if not circuit_breaker.may_send(config):
            job.write({"state": "pending"})  # the config paused after this job was claimed
            return
        attempt = job.attempts + 1
        try:
            sender, exchange = self.deliveries.start(job)
        except Exception as exc:  # noqa: BLE001 - a broken job must not stop the worker
            _logger.exception("bj_api_sync: job %s crashed", job.id)
            self._outcome(job, attempt, _crashed(exc), None)
            return
        self.inflight[self.pool.submit(exchange)] = (job, attempt, sender, exchange)
        self.busy[config.id] += 1

    def _finish(self, future):
        job, attempt, sender, exchange = self.inflight.pop(future)
        self.busy[sender.config.id] -= 1
        try:
            future.result()
            outcome = self.deliveries.finish(sender, exchange, attempt)
        except Exception as exc:  # noqa: BLE001 - a broken job must not stop the worker
            _logger.exception("bj_api_sync: job %s crashed", job.id)
            self._outcome(job, attempt, _crashed(exc), None)
            return
        self._outcome(job, attempt, outcome, exchange, sender.config)

    def _outcome(self, job, attempt, outcome, exchange, config=None):
        # the sender's configuration (in the job's environment) spares a fetch of the jobs
        # started before the last commit, whose cache that commit cleared
        config = job.config_id if config is None else config
        if exchange is not None:
            parallel.Throttle.record(config, exchange.outcome, exchange.sent_at)
            if outcome.get("ok"):
                self.ramp.add(config.id)  # slow start over: the remote answered
        _apply_outcome(job, attempt, outcome, self.succeeded, config)
        self.done += 1


def _crashed(exc):
    return {"ok": False, "status": 0, "error": "%s: %s" % (type(exc).__name__, exc), "retry_after": None}


DONE_FIELDS = ["state", "attempts", "response_code", "done_at", "last_error", "write_uid", "write_date"]
DONE_SQL = """
    UPDATE bj_api_sync_job
       SET state = 'done', attempts = %(attempt)s, response_code = %(status)s, done_at = %(now)s, last_error = NULL,
           write_uid = %(uid)s, write_date = now() AT TIME ZONE 'UTC'
     WHERE id = ANY(%(ids)s)
"""


class _Succeeded:
    """Delivered jobs of a batch, marked done together: one write per status code and second."""

    def __init__(self, jobs):
        self.jobs = jobs
        self.groups = {}

    def add(self, job, attempt, status):
        self.groups.setdefault((attempt, status or 0, fields.Datetime.now()), []).append(job.id)

    def mark_done(self):
        if not self.groups:
            return
        env = self.jobs.env
        self.jobs.flush_model(DONE_FIELDS)
        done = []
        for (attempt, status, now), ids in self.groups.items():
            # the ORM's write would read the transaction's time first and build one VALUES row per job
            env.cr.execute(DONE_SQL, {"attempt": attempt, "status": status, "now": now, "ids": ids, "uid": env.uid})
            done += ids
        self.jobs.browse(done).invalidate_recordset(DONE_FIELDS)
        self.groups = {}


def _apply_outcome(job, attempt, outcome, succeeded, config):
    """A job's new state after one attempt: done, retried later, or failed (dead letter)."""
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
    """The outbox worker's deliveries of its claimed jobs.

    One ``Sender`` per configuration for the whole run: headers, secrets and the HTTP
    method are read once, not once per job; log rows and bindings are written by
    ``flush()``, in the transaction that commits the jobs' new states. A delivery is
    ``start(job)`` (on the worker's thread: the request and its headers), the returned
    exchange's ``run()`` (the HTTP part, in any thread) and ``finish(...)`` (on the
    worker's thread again: log rows, bindings), which returns
    ``{'ok', 'status', 'error', 'retry_after', 'retryable'}``. Calling the object does the
    three in a row (one attempt; the worker schedules the retries).
    """

    def __init__(self):
        self.senders = {}

    @in_plan_scope
    def _sender(self, job):
        sender = self.senders.get(job.config_id.id)
        if sender is None:
            sender = self.senders[job.config_id.id] = Sender(prepare(job.config_id))
        return sender

    def start(self, job):
        """``(sender, exchange)`` of the job's next attempt; nothing is sent yet."""
        sender = self._sender(job)
        request = job._to_request(sender.headers, method=sender.method, url=sender.config.url)
        return sender, sender.exchange(request, max_retries=0)

    def finish(self, sender, exchange, attempt):
        """Log rows and bindings of a run exchange; its outcome for the worker."""
        config = sender.config
        request = exchange.context[0]
        outcome, vals_list = sender.settle(exchange, max_retries=0)
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

    def __call__(self, job, attempt=1):
        sender, exchange = self.start(job)
        return self.finish(sender, exchange.run(), attempt)

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
