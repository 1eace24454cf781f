"""services/log_connection.py against a real PostgreSQL (skipped when none answers).

The module is loaded by its path (the ``services`` package imports Odoo). The database:
``BJ_UNIT_PGDATABASE`` else ``postgres``, with libpq's usual environment (PGHOST...).
"""

import importlib.util
import os
import time

import psycopg2
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_spec = importlib.util.spec_from_file_location(
    "bj_log_connection", os.path.join(ROOT, "services", "log_connection.py")
)
log_connection = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(log_connection)

DB = os.environ.get("BJ_UNIT_PGDATABASE", "postgres")
PARAMS = {"dbname": DB, "application_name": "bj_api_sync unit test"}


@pytest.fixture(autouse=True)
def _clean():
    try:
        psycopg2.connect(**PARAMS).close()
    except psycopg2.Error as exc:
        pytest.skip("no PostgreSQL: %s" % exc)
    log_connection.close_all()
    yield
    log_connection.close_all()


def _backend_pid():
    with log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("SELECT pg_backend_pid()")
        return cur.fetchone()[0]


def test_one_connection_reused_autocommit_async():
    with log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("SHOW synchronous_commit")
        assert cur.fetchone()[0] == "off"
        cur.execute("SELECT now() = statement_timestamp()")  # no open transaction: autocommit
        assert cur.fetchone()[0]
    assert _backend_pid() == _backend_pid()


def test_rows_committed_at_once():
    with log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bj_unit_log_connection (id serial PRIMARY KEY, v text)")
        cur.execute("INSERT INTO bj_unit_log_connection (v) VALUES ('x') RETURNING id")
        row_id = cur.fetchone()[0]
    other = psycopg2.connect(**PARAMS)
    try:
        with other.cursor() as cur:
            cur.execute("SELECT v FROM bj_unit_log_connection WHERE id = %s", [row_id])
            assert cur.fetchone() == ("x",)
            cur.execute("DROP TABLE bj_unit_log_connection")
        other.commit()
    finally:
        other.close()


def test_broken_connection_dropped_then_reopened(caplog):
    first = _backend_pid()
    killer = psycopg2.connect(**PARAMS)
    try:
        with killer.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [first])
    finally:
        killer.close()
    with pytest.raises(psycopg2.Error), log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("SELECT 1")
    assert DB not in log_connection._connections
    assert "log connection" in caplog.text and "password" not in caplog.text
    assert _backend_pid() != first  # a new connection, lazily


def test_statement_error_drops_the_connection():
    first = _backend_pid()
    with pytest.raises(psycopg2.Error), log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("SELECT * FROM bj_unit_no_such_table")
    assert _backend_pid() != first


def test_connection_of_another_process_never_reused_nor_closed():
    first = _backend_pid()
    pid, cnx = log_connection._connections[DB]
    log_connection._connections[DB] = (pid + 1, cnx)  # as if opened by the parent before a fork
    assert _backend_pid() != first
    assert not cnx.closed and cnx in log_connection._inherited
    log_connection._inherited.remove(cnx)
    cnx.close()


def test_after_fork_forgets_the_parent_connections():
    _backend_pid()
    cnx = log_connection._connections[DB][1]
    log_connection._after_fork()
    assert DB not in log_connection._connections and cnx in log_connection._inherited
    log_connection._inherited.remove(cnx)
    cnx.close()


def test_failed_connect_not_retried_at_once():
    bad = dict(PARAMS, dbname="bj_unit_no_such_database")
    for _ in range(2):
        with pytest.raises(psycopg2.OperationalError), log_connection.cursor("bj_unit_no_such_database", bad):
            pass
    assert "bj_unit_no_such_database" in log_connection._failed_connect


# --------------------------------------------------------------------------- send


def _table():
    with log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("CREATE TABLE IF NOT EXISTS bj_unit_send (id serial PRIMARY KEY, v text)")
        cur.execute("TRUNCATE bj_unit_send")


def _values():
    with log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("SELECT v FROM bj_unit_send ORDER BY id")
        return [row[0] for row in cur.fetchall()]


@pytest.fixture
def table():
    _table()
    yield
    with log_connection.cursor(DB, PARAMS) as cur:
        cur.execute("DROP TABLE IF EXISTS bj_unit_send")


def test_send_returns_before_the_statement_ran_and_commits_it(table):
    started = time.monotonic()
    assert log_connection.send(DB, "SELECT pg_sleep(0.5); INSERT INTO bj_unit_send (v) VALUES (%s)", ["slow"], PARAMS)
    assert time.monotonic() - started < 0.3, "send waited for the statement"
    assert _values() == []  # still running on the server
    # the next statement on the sending connection waits for the one before it
    assert log_connection.send(DB, "INSERT INTO bj_unit_send (v) VALUES (%s)", ["next"], PARAMS)
    assert time.monotonic() - started >= 0.5
    log_connection.settle_all()
    assert _values() == ["slow", "next"]  # committed (autocommit), in order, seen by another connection


def test_send_of_a_large_statement_puts_it_all_on_the_wire(table):
    body = "x" * (4 * 1024 * 1024)  # more than a socket buffer
    assert log_connection.send(DB, "INSERT INTO bj_unit_send (v) VALUES (%s)", [body], PARAMS)
    log_connection.settle_all()
    assert _values() == [body]


def test_a_failed_statement_is_warned_and_the_next_one_is_sent(table, caplog):
    assert log_connection.send(DB, "INSERT INTO bj_unit_send (id, v) VALUES (%s, %s)", ["secret 42", "x"],
                               PARAMS)
    assert log_connection.send(DB, "INSERT INTO bj_unit_send (v) VALUES (%s)", ["after"], PARAMS)
    log_connection.settle_all()
    assert _values() == ["after"]
    assert "was not written (InvalidTextRepresentation" in caplog.text
    assert "secret" not in caplog.text  # the error's class and code, never the values it quotes


def test_send_replaces_a_connection_the_server_closed_and_refuses_when_unreachable(table, caplog):
    assert log_connection.send(DB, "SELECT 1", None, PARAMS)
    log_connection.settle_all()
    cnx = log_connection._senders[DB][1]
    killer = psycopg2.connect(**PARAMS)
    try:
        with killer.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", [cnx.info.backend_pid])
    finally:
        killer.close()
    time.sleep(0.1)
    # the session the server closed is noticed before sending: a new connection, the row kept
    assert log_connection.send(DB, "INSERT INTO bj_unit_send (v) VALUES ('kept')", None, PARAMS)
    assert cnx.closed and log_connection._senders[DB][1] is not cnx
    log_connection.settle_all()
    assert _values() == ["kept"]
    # a server that cannot be reached: False (the caller writes the row another way), warned once
    bad = dict(PARAMS, dbname="bj_unit_no_such_sender_database")
    assert not log_connection.send("bj_unit_no_such_sender_database", "SELECT 1", None, bad)
    assert "log connection" in caplog.text and "password" not in caplog.text


def test_senders_of_the_parent_are_left_alone_after_fork():
    assert log_connection.send(DB, "SELECT 1", None, PARAMS)
    cnx = log_connection._senders[DB][1]
    log_connection._after_fork()
    assert DB not in log_connection._senders and cnx in log_connection._inherited
    log_connection._inherited.remove(cnx)
    cnx.close()


def test_a_row_does_not_wait_long_for_the_one_before_it(table, monkeypatch):
    monkeypatch.setattr(log_connection, "SETTLE_BEFORE_SEND", 0.1)
    assert log_connection.send(DB, "SELECT pg_sleep(0.6); INSERT INTO bj_unit_send (v) VALUES ('slow')", None, PARAMS)
    started = time.monotonic()
    assert not log_connection.send(DB, "INSERT INTO bj_unit_send (v) VALUES ('next')", None, PARAMS)
    assert time.monotonic() - started < 0.4, "the caller writes it another way instead of waiting"
    log_connection.settle_all()
    assert _values() == ["slow"]
    assert log_connection.send(DB, "INSERT INTO bj_unit_send (v) VALUES ('later')", None, PARAMS)
    log_connection.settle_all()
    assert _values() == ["slow", "later"]
