"""Outbox workers on Odoo's own machinery: worker crons, their liveness, their helpers.

Delivery scales out the way Odoo runs scheduled actions: each worker is an ``ir.cron``
("BJET API: deliver queued sync jobs", "... (worker 2)", ...). Odoo runs one cron at a
time per cron thread and locks its row while it runs, so N worker crons can deliver at
once in N cron threads, of one Odoo server (``--max-cron-threads``) or of several
servers sharing the database. Their number is the system parameter
``bj_api_sync.worker_crons`` (default 2); the first worker keeps the jobs' trigger and
wakes the others (``wake_helpers``) when there is more due work than it takes.

PostgreSQL is the only coordinator: jobs are claimed with ``FOR UPDATE SKIP LOCKED``, and a
worker holds a session advisory lock (``WorkerLock``) while it delivers, whose number is
written on the jobs it claims. A job left running by a worker whose lock is gone (the
process was killed, the server lost its connection) goes back to pending at once instead
of waiting for the stale timeout.
"""

import logging
import random

import psycopg2

from .circuit_breaker import param_int

_logger = logging.getLogger(__name__)

WORKERS_PARAM = "bj_api_sync.worker_crons"
DEFAULT_WORKERS = 2
MAX_WORKERS = 32
MAIN_XMLID = "ir_cron_bj_api_sync_job_worker"
MODULE = "bj_api_sync"

# Advisory lock keys (the two-int4 form: classid = key, objid = number). Distinct from
# Odoo's own single-bigint advisory locks (objsubid 1).
WORKER_LOCK_KEY = 1651141201  # a live worker: (key, its token), session-level
CLAIM_LOCK_KEY = 1651141202  # one claim of one configuration at a time: (key, config id), transaction-level

LIVE_TOKENS_SQL = """
    SELECT locks.objid::bigint
      FROM pg_locks locks
     WHERE locks.locktype = 'advisory'
       AND locks.classid = %s::oid
       AND locks.objsubid = 2
       AND locks.granted
       AND locks.database = (SELECT oid FROM pg_database WHERE datname = current_database())
""" % WORKER_LOCK_KEY


class WorkerLock:
    """A worker's liveness: a session advisory lock ``(WORKER_LOCK_KEY, token)`` on its cursor.

    Held from the start of a worker run to its end, across its commits (session-level
    locks outlive transactions). PostgreSQL drops it with the connection: a killed
    process's jobs are recognised as orphans by every other worker.
    """

    def __init__(self, cr):
        self.cr = cr
        self.token = None

    def acquire(self):
        for _try in range(20):
            token = random.randint(1, 2**31 - 1)
            self.cr.execute("SELECT pg_try_advisory_lock(%s, %s)", [WORKER_LOCK_KEY, token])
            if self.cr.fetchone()[0]:
                self.token = token
                return token
        raise RuntimeError("bj_api_sync: no free worker token")  # pragma: no cover - 2**31 numbers

    def release(self):
        if self.token is None:
            return
        try:
            self.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [WORKER_LOCK_KEY, self.token])
        except psycopg2.Error:
            # An aborted transaction refuses every statement: end it, then unlock.
            self.cr.rollback()
            self.cr.execute("SELECT pg_advisory_unlock(%s, %s)", [WORKER_LOCK_KEY, self.token])
        self.token = None

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc_info):
        self.release()


# --------------------------------------------------------------------------
# Worker crons
# --------------------------------------------------------------------------


def worker_count(env):
    return max(1, min(param_int(env, WORKERS_PARAM, DEFAULT_WORKERS), MAX_WORKERS))


def _xmlid(number):
    return MAIN_XMLID if number == 1 else "%s_%d" % (MAIN_XMLID, number)


def worker_crons(env):
    """``{number: ir.cron}`` of the worker crons that exist (archived ones included)."""
    env.cr.execute(
        "SELECT name, res_id FROM ir_model_data WHERE module = %s AND model = 'ir.cron' AND name LIKE %s",
        [MODULE, MAIN_XMLID + "%"],
    )
    crons = {}
    for name, res_id in env.cr.fetchall():
        suffix = name[len(MAIN_XMLID):]
        if suffix == "":
            crons[1] = res_id
        elif suffix[:1] == "_" and suffix[1:].isdigit():
            crons[int(suffix[1:])] = res_id
    Cron = env["ir.cron"].sudo().with_context(active_test=False)
    return {number: cron for number, cron in ((n, Cron.browse(i).exists()) for n, i in crons.items()) if cron}


def _lock_nowait(env, cron):
    """Whether ``cron``'s row can be written now (no cron thread is running it)."""
    try:
        with env.cr.savepoint(flush=False):
            env.cr.execute("SELECT id FROM ir_cron WHERE id = %s FOR NO KEY UPDATE NOWAIT", [cron.id])
        return True
    except (psycopg2.errors.LockNotAvailable, psycopg2.errors.SerializationFailure):
        return False  # run by a cron thread now, or changed by one since this transaction began


def ensure_worker_crons(env):
    """Make the worker crons match ``bj_api_sync.worker_crons``: create or activate, archive extra ones.

    Extra workers are copies of the first one with their own XML id (``noupdate``: module
    updates keep them; uninstalling the module removes them). They follow the first
    worker: while it is archived (delivery stopped by hand), so are they. A cron being
    run by a cron thread right now is left alone until the next call.
    """
    crons = worker_crons(env)
    main = crons.get(1)
    if not main:
        return crons
    wanted = worker_count(env) if main.active else 0
    for number in range(2, max(wanted, max(crons)) + 1):
        cron = crons.get(number)
        active = number <= wanted
        if cron is None:
            if not active:
                continue
            cron = main.copy(
                {
                    "name": "%s (worker %d)" % (main.name, number),
                    "code": "model._cron_process_jobs(worker=%d)" % number,
                    "active": True,
                }
            )
            env["ir.model.data"]._update_xmlids(
                [{"xml_id": "%s.%s" % (MODULE, _xmlid(number)), "record": cron, "noupdate": True}]
            )
            crons[number] = cron
            _logger.info("bj_api_sync: worker cron %d created", number)
        elif cron.active != active and _lock_nowait(env, cron):
            cron.active = active
    return crons


def wake_helpers(env):
    """Trigger the other active worker crons that have no trigger due (there is more work than one takes)."""
    env["ir.cron.trigger"].flush_model()
    env.cr.execute(
        """
        SELECT cron.id
          FROM ir_model_data imd
          JOIN ir_cron cron ON cron.id = imd.res_id
         WHERE imd.module = %s AND imd.model = 'ir.cron' AND imd.name LIKE %s
           AND cron.active AND cron.id != %s
           AND NOT EXISTS (SELECT 1 FROM ir_cron_trigger trigger
                            WHERE trigger.cron_id = cron.id AND trigger.call_at <= (now() AT TIME ZONE 'UTC'))
        """,
        [MODULE, MAIN_XMLID + "%", env.context.get("cron_id") or 0],
    )
    ids = [row[0] for row in env.cr.fetchall()]
    for cron in env["ir.cron"].sudo().browse(ids):
        cron._trigger()
    return ids
