"""One rule for "under test" and for work that must outlive the caller's transaction.

Log rows, rate-limit counters and circuit-breaker counts are written on a cursor of
their own so that a rollback of the request (or of the user's save) does not erase
them. Under Odoo's test runner every test shares one transaction (a second cursor would
not see its data and would deadlock on its locks), so the same work then runs on the
current cursor, and nothing commits.
"""

import contextlib
import itertools
import logging
import threading

import psycopg2

from odoo import api
from odoo.modules import module as odoo_module
from odoo.tools import SQL

from . import log_connection

_logger = logging.getLogger(__name__)

_ISOLATION_LEVELS = {name: name for name in ("READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE")}


def under_test(env=None):
    """Whether Odoo's test runner owns the transaction (no commit, no second cursor)."""
    if odoo_module.current_test or getattr(threading.current_thread(), "testing", False):
        return True
    return bool(env is not None and env.registry.in_test_mode())


@contextlib.contextmanager
def detached_env(env, isolation=None, synchronous=True):
    """An environment on a new cursor committed at the end of the block (the current one under tests).

    ``isolation``: e.g. ``"READ COMMITTED"`` for counters updated by concurrent requests.
    ``synchronous=False``: commit without waiting for the WAL flush (a crash may lose the
    last rows written, never business data: for logs and counters only).
    """
    if under_test(env):
        yield env
        return
    with env.registry.cursor() as cr:
        if isolation:
            cr.execute(SQL("SET TRANSACTION ISOLATION LEVEL %s", SQL(_ISOLATION_LEVELS[isolation])))
        if not synchronous:
            cr.execute("SET LOCAL synchronous_commit TO OFF")
        yield api.Environment(cr, env.uid, env.context)


def run_detached(env, fn, isolation=None, synchronous=True):
    """``fn(cr)``'s statements committed at once, whatever the caller's transaction does.

    Outside tests: on the process's log connection (``services.log_connection``), one
    round trip per statement instead of about five for a detached cursor, each statement
    its own READ COMMITTED transaction, committed asynchronously; when that connection
    fails (dropped), on a detached cursor (``isolation``, ``synchronous``) instead. Under
    tests: on the current cursor. ``fn`` may run twice (a failure after a commit): for
    log rows and counters only, whose statements each stand alone.
    """
    if under_test(env):
        return fn(env.cr)
    try:
        with log_connection.cursor(env.cr.dbname) as cr:
            return fn(cr)
    except psycopg2.Error as exc:  # warned once and dropped by log_connection
        _logger.debug("bj_api_sync: log connection unavailable (%s): detached cursor", type(exc).__name__)
    with detached_env(env, isolation=isolation, synchronous=synchronous) as detached:
        return fn(detached.cr)


def send_after_commit(env, query):
    """``query`` (an ``SQL`` writing log rows) sent once the caller's transaction commits, on
    the process's log connection, without waiting for it to run (``log_connection.send``); on a
    detached cursor when that connection fails. Nothing if the transaction rolls back.

    Outside tests (under the test runner nothing commits: the caller writes on the current
    cursor). For rows written after the answer is decided, that nobody reads back in the
    same request: the inbound request's log row.
    """
    dbname = env.cr.dbname

    def send():
        try:
            if not log_connection.send(dbname, query.code, query.params):
                run_detached(env, lambda cr: cr.execute(query.code, query.params), synchronous=False)
        except Exception:  # noqa: BLE001 - the request is committed and answered: only the log row is lost
            _logger.exception("bj_api_sync: could not write a log row after its request committed")

    env.cr.postcommit.add(send)


def may_commit(env, commit=None, cron_only=True):
    """Whether long work may commit as it goes.

    ``commit`` given: that. Under tests: never (the test owns the transaction). Else
    the scheduled sync commits its batches only in a real cron worker (or when the
    context asks, ``bj_api_sync_commit``), and the outbox worker (``cron_only=False``)
    always: its claims must be committed before sending.
    """
    if commit is not None:
        return bool(commit)
    if under_test(env):
        return False
    if not cron_only:
        return True
    return bool(env.context.get("cron_id") or env.context.get("bj_api_sync_commit"))


def commit_async(env):
    """Commit without waiting for the WAL flush.

    For the outbox's claims and job states: lost to a database crash, they leave jobs
    pending or running (requeued as stale), sent again with the same Idempotency-Key.
    """
    env.cr.execute("SET LOCAL synchronous_commit TO OFF")
    env.cr.commit()


class LazySavepoint:
    """A savepoint sent with the caller's next query and released by the commit.

    Odoo's ``cr.savepoint()`` costs two round trips of its own (``SAVEPOINT`` and
    ``RELEASE SAVEPOINT``) on top of the queries it guards; on the inbound hot path,
    where one request runs a dozen short queries, they were a fifth of them. This one
    behaves as ``cr.savepoint()`` (flush before, flush at a successful end, cache cleared
    and ``ROLLBACK TO SAVEPOINT`` on an exception) but:

    * ``SAVEPOINT`` is the first statement of a query the caller runs anyway:
      ``cr.execute(savepoint.prefixed(query))``, one round trip;
    * on success it is not released: the transaction's commit releases it (an
      unreleased savepoint is only a name kept until then; the rows are the same).

    It rolls back only when it was opened, which the cursor tells: a successful
    prefixed query counted (``sql_log_count``), or a failed one left the transaction
    aborted (the ``SAVEPOINT`` ran first and exists).
    """

    _counter = itertools.count()

    def __init__(self, cr, flush=True):
        self.cr = cr
        self.flush = flush
        self.name = "bj_api_sync_%d" % next(self._counter)
        self._mark = None  # sql_log_count when the prefixed query was handed out

    def prefixed(self, query):
        """``SAVEPOINT <name>; query`` (``query``: an ``SQL`` or text without parameters)."""
        if self.flush:
            self.cr.flush()
        self._mark = self.cr.sql_log_count
        return SQL("SAVEPOINT %s; %s", SQL.identifier(self.name), query if isinstance(query, SQL) else SQL(query))

    @property
    def opened(self):
        if self._mark is None:
            return False
        aborted = self.cr._cnx.get_transaction_status() == psycopg2.extensions.TRANSACTION_STATUS_INERROR
        return aborted or self.cr.sql_log_count > self._mark

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, tb):
        if exc_type is None:
            if self.flush and self.opened:
                try:
                    self.cr.flush()  # inside the savepoint, as cr.savepoint() does
                except Exception:
                    self.rollback()
                    raise
            return False
        self.rollback()
        return False

    def rollback(self):
        if not self.opened:
            return
        if self.flush:
            self.cr.clear()
        self.cr.execute(SQL("ROLLBACK TO SAVEPOINT %s", SQL.identifier(self.name)))
