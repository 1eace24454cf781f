"""One rule for "under test" and for work that must outlive the caller's transaction.

Log rows, rate-limit counters and circuit-breaker counts are written on a cursor of
their own so that a rollback of the request (or of the user's save) does not erase
them. Under Odoo's test runner every test shares one transaction (a second cursor would
not see its data and would deadlock on its locks), so the same work then runs on the
current cursor, and nothing commits.
"""

import contextlib
import threading

from odoo import api
from odoo.modules import module as odoo_module
from odoo.tools import SQL

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
