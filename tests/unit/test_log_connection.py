"""services/log_connection.py against a real PostgreSQL (skipped when none answers).

The module is loaded by its path (the ``services`` package imports Odoo). The database:
``BJ_UNIT_PGDATABASE`` else ``postgres``, with libpq's usual environment (PGHOST...).
"""

import importlib.util
import os

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
