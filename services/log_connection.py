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
_senders = {}  # dbname -> (pid, asynchronous connection), for ``send``
_in_flight = {}  # dbname -> the cursor of the statement this process sent last and has not settled
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
    for table in (_connections, _senders):
        _inherited.extend(cnx for _pid, cnx in table.values())
        table.clear()
    _in_flight.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)


def _owned(table, dbname):
    """This process's open connection of ``table`` to ``dbname``, or None (under the lock).

    One opened by another process (the parent, before a fork) is forgotten but kept
    referenced, never closed: closing it would end the parent's session on the shared socket.
    """
    entry = table.get(dbname)
    if entry is None:
        return None
    owner, cnx = entry
    if owner == os.getpid() and not cnx.closed:
        return cnx
    if owner != os.getpid():
        _inherited.append(cnx)
    del table[dbname]
    if table is _senders:
        _in_flight.pop(dbname, None)
    return None


def _open(table, dbname, params, asynchronous=False):
    """A new autocommit connection to ``dbname`` with ``synchronous_commit = off``, kept in ``table``.

    After a failed connect, none is tried for ``RETRY_CONNECT_AFTER`` seconds (no timeout per
    log write). Asynchronous connections (psycopg2's ``async_``) are always autocommit.
    """
    failed = _failed_connect.get(dbname)
    if failed is not None and time.monotonic() - failed < RETRY_CONNECT_AFTER:
        raise psycopg2.OperationalError("log connection failed recently")
    try:
        cnx = psycopg2.connect(**(params if params is not None else _connection_params(dbname)),
                               async_=1 if asynchronous else 0)
        if asynchronous:
            _wait(cnx)
    except psycopg2.Error:
        _failed_connect[dbname] = time.monotonic()
        raise
    _failed_connect.pop(dbname, None)
    try:
        if not asynchronous:
            cnx.autocommit = True
        cur = cnx.cursor()
        cur.execute("SET synchronous_commit TO OFF")
        if asynchronous:
            _wait(cnx)
        cur.close()
    except Exception:
        cnx.close()
        raise
    table[dbname] = (os.getpid(), cnx)
    return cnx


def _drop(table, dbname, cnx):
    if table.get(dbname, (None, None))[1] is cnx:
        del table[dbname]
        if table is _senders:
            _in_flight.pop(dbname, None)
    with contextlib.suppress(Exception):
        cnx.close()


def _connection_failed(dbname, exc):
    """Warned once per database, without the connection parameters."""
    if dbname not in _warned:
        _warned.add(dbname)
        _logger.warning(
            "bj_api_sync: log connection to database %s failed (%s); using a detached cursor",
            dbname, type(exc).__name__,
        )


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
            cnx = _owned(_connections, dbname) or _open(_connections, dbname, params)
            with cnx.cursor() as cur:
                yield cur
        except psycopg2.Error as exc:
            if cnx is not None:
                _drop(_connections, dbname, cnx)
            _connection_failed(dbname, exc)
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


def _settle(dbname, cnx, timeout=None):
    """The outcome of the statement in flight on ``cnx``: a statement's error is warned (the
    connection stays); a connection error propagates. False: not ended within ``timeout``."""
    if dbname not in _in_flight:
        return True
    try:
        if not _wait(cnx, timeout):
            return False
    except psycopg2.Error as exc:
        if cnx.closed:
            raise
        _not_written(dbname, exc)
    del _in_flight[dbname]
    return True


def _not_written(dbname, exc):
    """A statement sent that failed: warned with the error's class and SQLSTATE only (its message
    may quote a value of the row)."""
    _logger.warning(
        "bj_api_sync: a log row sent to database %s was not written (%s, SQLSTATE %s)",
        dbname, type(exc).__name__, exc.pgcode,
    )


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
            cnx = _owned(_senders, dbname)
            if cnx is not None and not _settle(dbname, cnx, SETTLE_BEFORE_SEND):
                # the row before is still running (waiting for a lock?): this one goes another way
                _logger.info("bj_api_sync: the previous log row to database %s is still running", dbname)
                return False
            if cnx is not None and _ready(cnx, timeout=0):
                # Nothing in flight, yet something to read: the server closed the session
                # (its FATAL message or the end of the stream). A new connection, not a lost row.
                _drop(_senders, dbname, cnx)
                cnx = None
            cnx = cnx or _open(_senders, dbname, params, asynchronous=True)
            cur = cnx.cursor()
            cur.execute(query, args)
            _in_flight[dbname] = cur  # referenced until settled: psycopg2 polls through it
            try:
                # the whole statement on the wire (a large body may not fit the socket buffer at once)
                while cnx.poll() == psycopg2.extensions.POLL_WRITE:
                    _ready(cnx, write=True)
            except psycopg2.Error as exc:  # it ran already, and failed
                if cnx.closed:
                    raise
                _not_written(dbname, exc)
                del _in_flight[dbname]
            return True
        except psycopg2.Error as exc:
            if cnx is not None:
                _drop(_senders, dbname, cnx)
            _connection_failed(dbname, exc)
            return False


def settle_all(timeout=None):
    """Wait for the statements this process sent last (at exit, in tests)."""
    with _lock:
        for dbname in list(_in_flight):
            cnx = _owned(_senders, dbname)
            if cnx is not None:
                with contextlib.suppress(psycopg2.Error):
                    _settle(dbname, cnx, timeout)


atexit.register(settle_all, SETTLE_AT_EXIT)


def close_all():
    """Close this process's log connections (tests, shutdown)."""
    with _lock:
        pid = os.getpid()
        for table in (_connections, _senders):
            for dbname, (owner, cnx) in list(table.items()):
                if owner == pid:
                    with contextlib.suppress(Exception):
                        cnx.close()
                del table[dbname]
        _in_flight.clear()
        _failed_connect.clear()
