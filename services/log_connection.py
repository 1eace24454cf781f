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

``send`` is for rows nobody waits for (the inbound API's log row of a request already
answered): on a second connection of the process, in psycopg2's asynchronous mode, the
statement is handed to the server and the caller goes on without waiting for it to run;
its outcome is collected before the next statement on that connection (an error is
warned, with its class and SQLSTATE only) and at exit. A statement the server
received runs even if this process dies just after. A failed send returns False: the
caller writes the row another way.

Standard library and psycopg2 only (Odoo is imported only for the default connection
parameters), so that plain pytest can test it against a real PostgreSQL.
"""

import atexit
import contextlib
import logging
import os
import select
import threading
import time

import psycopg2

_logger = logging.getLogger(__name__)

_lock = threading.Lock()  # guards _connections and every use of a connection
_connections = {}  # dbname -> (pid, connection)
_senders = {}  # dbname -> (pid, asynchronous connection, cursor of the statement in flight or None)
_inherited = []  # connections opened by a parent process: kept referenced, never closed here
_warned = set()  # databases whose log connection failed once (warned once)
_failed_connect = {}  # dbname -> monotonic time of the last failed connect
RETRY_CONNECT_AFTER = 30  # seconds without connect attempts after one failed (no timeout per log write)
SETTLE_AT_EXIT = 5.0  # seconds at most waiting, at exit, for the statements sent last
SETTLE_BEFORE_SEND = 1.0  # seconds a row waits for the one before it, else it is written another way


def _connection_params(dbname):
    """psycopg2 keywords for ``dbname``, as Odoo's own pool builds them (db_host, db_user...)."""
    from odoo.sql_db import connection_info_for  # noqa: PLC0415 (lazy: plain pytest has no Odoo)

    return connection_info_for(dbname)[1]


def _after_fork():
    """In a forked child: a lock held by another thread at fork would stay held forever."""
    global _lock  # noqa: PLW0603
    _lock = threading.Lock()
    _inherited.extend(cnx for _pid, cnx in _connections.values())
    _inherited.extend(cnx for _pid, cnx, _cursor in _senders.values())
    _connections.clear()
    _senders.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _refused_recently(dbname):
    failed = _failed_connect.get(dbname)
    if failed is not None and time.monotonic() - failed < RETRY_CONNECT_AFTER:
        raise psycopg2.OperationalError("log connection failed recently")


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
    _refused_recently(dbname)
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


def _ready(cnx, write=False, timeout=None):
    """Whether ``cnx``'s socket is readable (writable) within ``timeout`` seconds (None: no limit).
    ``poll``, not ``select``: a busy server's descriptors may be numbered past 1024."""
    poller = select.poll()
    poller.register(cnx.fileno(), select.POLLOUT if write else select.POLLIN)
    return bool(poller.poll(None if timeout is None else max(0, int(timeout * 1000))))


def _wait(cnx, timeout=None):
    """Poll ``cnx`` (asynchronous) until its statement ended; its error raised. False: timed out."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = cnx.poll()
        if state == psycopg2.extensions.POLL_OK:
            return True
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            return False
        # POLL_WRITE: the rest of the statement is still to be sent
        _ready(cnx, write=state != psycopg2.extensions.POLL_READ, timeout=left)


def _sender(dbname, params):
    """This process's asynchronous connection to ``dbname`` (under the lock): (connection, cursor in flight)."""
    pid = os.getpid()
    entry = _senders.get(dbname)
    if entry is not None:
        owner, cnx, cursor = entry
        if owner == pid and not cnx.closed:
            return cnx, cursor
        if owner != pid:
            _inherited.append(cnx)
        del _senders[dbname]
    _refused_recently(dbname)
    try:
        cnx = psycopg2.connect(**(params if params is not None else _connection_params(dbname)), async_=1)
        _wait(cnx)
    except psycopg2.Error:
        _failed_connect[dbname] = time.monotonic()
        raise
    _failed_connect.pop(dbname, None)
    try:
        cursor = cnx.cursor()
        cursor.execute("SET synchronous_commit TO OFF")  # asynchronous connections are autocommit
        _wait(cnx)
    except Exception:
        cnx.close()
        raise
    _senders[dbname] = (pid, cnx, None)
    return cnx, None


def _settle(dbname, cnx, cursor, timeout=None):
    """The outcome of the statement in flight on ``cnx``: a statement's error is warned (the
    connection stays); a connection error propagates. False: not ended within ``timeout``."""
    if cursor is None:
        return True
    try:
        if not _wait(cnx, timeout):
            return False
    except psycopg2.Error as exc:
        if cnx.closed:
            raise
        _not_written(dbname, exc)
    _senders[dbname] = (os.getpid(), cnx, None)
    return True


def _not_written(dbname, exc):
    """A statement sent that failed: warned with the error's class and SQLSTATE only (its message
    may quote a value of the row)."""
    _logger.warning(
        "bj_api_sync: a log row sent to database %s was not written (%s, SQLSTATE %s)",
        dbname, type(exc).__name__, exc.pgcode,
    )


def _drop_sender(dbname, cnx):
    if _senders.get(dbname, (None, None, None))[1] is cnx:
        del _senders[dbname]
    with contextlib.suppress(Exception):
        cnx.close()


def send(dbname, query, args=None, params=None):
    """Hand ``query`` (with ``args``) to the server on this process's sending connection and
    return without waiting for it to run. True once sent; False when it could not be (the
    connection failed: it is dropped, warned once per database; nothing was sent or the
    previous statement's fate is unknown; or the statement before it still runs after
    ``SETTLE_BEFORE_SEND`` seconds), for the caller to write the row another way.
    """
    with _lock:
        cnx = None
        try:
            cnx, cursor = _sender(dbname, params)
            if not _settle(dbname, cnx, cursor, SETTLE_BEFORE_SEND):
                # the row before is still running (waiting for a lock?): this one goes another way
                _logger.info("bj_api_sync: the previous log row to database %s is still running", dbname)
                return False
            if _ready(cnx, timeout=0):
                # Nothing in flight, yet something to read: the server closed the session
                # (its FATAL message or the end of the stream). A new connection, not a lost row.
                _drop_sender(dbname, cnx)
                cnx, cursor = _sender(dbname, params)
            cursor = cnx.cursor()
            cursor.execute(query, args)
            _senders[dbname] = (os.getpid(), cnx, cursor)
            try:
                # the whole statement on the wire (a large body may not fit the socket buffer at once)
                while cnx.poll() == psycopg2.extensions.POLL_WRITE:
                    _ready(cnx, write=True)
            except psycopg2.Error as exc:  # it ran already, and failed
                if cnx.closed:
                    raise
                _not_written(dbname, exc)
                _senders[dbname] = (os.getpid(), cnx, None)
            return True
        except psycopg2.Error as exc:
            if cnx is not None:
                _drop_sender(dbname, cnx)
            if dbname not in _warned:
                _warned.add(dbname)
                _logger.warning(
                    "bj_api_sync: log connection to database %s failed (%s); using a detached cursor",
                    dbname, type(exc).__name__,
                )
            return False


def settle_all(timeout=None):
    """Wait for the statements this process sent last (at exit, in tests)."""
    with _lock:
        pid = os.getpid()
        for dbname, (owner, cnx, cursor) in list(_senders.items()):
            if owner == pid and not cnx.closed:
                with contextlib.suppress(psycopg2.Error):
                    _settle(dbname, cnx, cursor, timeout)


atexit.register(settle_all, SETTLE_AT_EXIT)


def close_all():
    """Close this process's log connections (tests, shutdown)."""
    with _lock:
        pid = os.getpid()
        for dbname, (owner, cnx) in list(_connections.items()):
            if owner == pid:
                with contextlib.suppress(Exception):
                    cnx.close()
            del _connections[dbname]
        for dbname, (owner, cnx, _cursor) in list(_senders.items()):
            if owner == pid:
                with contextlib.suppress(Exception):
                    cnx.close()
            del _senders[dbname]
        _failed_connect.clear()
