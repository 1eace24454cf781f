"""One long-lived autocommit connection per (process, database) for log rows.

A detached cursor (``transaction.detached_env``) costs about five round trips per
write: Odoo's pool resets the borrowed connection (``RESET ALL``, ``SET SESSION
AUTHORIZATION DEFAULT``), then ``BEGIN``, the statement and ``COMMIT``. Log rows must
outlive the caller's transaction but need none of that: on a connection of their own in
autocommit mode, each statement is its own committed transaction, one round trip.

The session runs with ``synchronous_commit = off`` (set once): a database crash may lose
the last rows written, never business data, so only log rows (and counters) go here.

One connection per database per process, used under a lock (Odoo's threaded server
runs several request threads; a statement is a single short round trip). A connection
is never used by another process than the one that opened it: prefork workers open
their own lazily, and one inherited across ``fork`` is left alone, never closed (closing
it would end the parent's session on the shared socket). On a psycopg2 error the
connection is closed and dropped, the error propagates and the caller falls back to
a detached cursor; the next call opens a new connection.

Standard library and psycopg2 only (Odoo is imported only for the default connection
parameters), so that plain pytest can test it against a real PostgreSQL.
"""

import contextlib
import logging
import os
import threading
import time

import psycopg2

_logger = logging.getLogger(__name__)

_lock = threading.Lock()  # guards _connections and every use of a connection
_connections = {}  # dbname -> (pid, connection)
_inherited = []  # connections opened by a parent process: kept referenced, never closed here
_warned = set()  # databases whose log connection failed once (warned once)
_failed_connect = {}  # dbname -> monotonic time of the last failed connect
RETRY_CONNECT_AFTER = 30  # seconds without connect attempts after one failed (no timeout per log write)


def _connection_params(dbname):
    """psycopg2 keywords for ``dbname``, as Odoo's own pool builds them (db_host, db_user...)."""
    from odoo.sql_db import connection_info_for  # noqa: PLC0415 (lazy: plain pytest has no Odoo)

    return connection_info_for(dbname)[1]


def _after_fork():
    """In a forked child: a lock held by another thread at fork would stay held forever."""
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()
    _inherited.extend(cnx for _pid, cnx in _connections.values())
    _connections.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _connection(dbname, params):
    """This process's connection to ``dbname``, opened on first use (called under the lock)."""
    pid = os.getpid()
    entry = _connections.get(dbname)
    if entry is not None:
        owner, cnx = entry
        if owner == pid and not cnx.closed:
            return cnx
        if owner != pid:
            _inherited.append(cnx)  # the parent's session: do not close it from here
        del _connections[dbname]
    failed = _failed_connect.get(dbname)
    if failed is not None and time.monotonic() - failed < RETRY_CONNECT_AFTER:
        raise psycopg2.OperationalError("log connection failed recently")
    try:
        cnx = psycopg2.connect(**(params if params is not None else _connection_params(dbname)))
    except psycopg2.Error:
        _failed_connect[dbname] = time.monotonic()
        raise
    _failed_connect.pop(dbname, None)
    try:
        cnx.autocommit = True
        with cnx.cursor() as cur:
            cur.execute("SET synchronous_commit TO OFF")
    except Exception:
        cnx.close()
        raise
    _connections[dbname] = (pid, cnx)
    return cnx


def _drop(dbname, cnx):
    if _connections.get(dbname, (None, None))[1] is cnx:
        del _connections[dbname]
    with contextlib.suppress(Exception):
        cnx.close()


@contextlib.contextmanager
def cursor(dbname, params=None):
    """A psycopg2 cursor on this process's log connection to ``dbname``, under its lock.

    Each statement commits on its own (autocommit). ``params``: psycopg2 connection
    keywords (default: Odoo's for ``dbname``). On a psycopg2 error, the connection is
    closed and dropped and the error propagates (warned once per database, without the
    connection parameters): the caller writes through a detached cursor instead.
    """
    with _lock:
        cnx = None
        try:
            cnx = _connection(dbname, params)
            with cnx.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            if cnx is not None:
                _drop(dbname, cnx)
            if dbname not in _warned:
                _warned.add(dbname)
                _logger.warning(
                    "bj_api_sync: log connection to database %s failed (%s); using a detached cursor",
                    dbname, type(exc).__name__,
                )
            raise


def close_all():
    """Close this process's log connections (tests, shutdown)."""
    with _lock:
        pid = os.getpid()
        for dbname, (owner, cnx) in list(_connections.items()):
            if owner == pid:
                with contextlib.suppress(Exception):
                    cnx.close()
            del _connections[dbname]
        _failed_connect.clear()
