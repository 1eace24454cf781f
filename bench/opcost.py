#!/usr/bin/env python3
"""Queries and Python time of one bj_api_sync operation, in-process (no HTTP server).

Counts SQL queries per operation (deterministic, unlike timings on a noisy machine) and,
with ``--cprofile``, prints the functions that dominate. Works on a database made by
``python bench/run.py --keep --db NAME`` (its configurations and partners).

    python bench/opcost.py --db NAME get_one post_batch post_one list push_single push_batched drain
    python bench/opcost.py --db NAME --cprofile 25 get_one

Operations:
  get_one       inbound GET /<id> (services.inbound.handle, the controller's work without werkzeug)
  list          inbound GET ?limit=100 (the first page: counted)
  list_page     inbound GET ?limit=100&offset=1000 (a page of a walk: no count unless Prefer: count=exact)
  post_one      inbound POST of one object (creates a partner)
  post_batch    inbound POST of an array of --batch objects
  orm_create_batch  the same --batch partners through the ORM's create, as admin (what JSON-RPC does)
  upsert_same   inbound POST of an existing record with unchanged values (no-op write)
  put_one       inbound PUT /<id> of a new name and phone
  rpc_read rpc_search_read rpc_create rpc_write  JSON-RPC's own path for get_one, list_page, post_one,
                put_one: ``odoo.http.dispatch_rpc("object", "execute_kw", ...)`` as admin, in this
                process (its queries are on its own cursor: "other cursors")
  wsgi_get_one wsgi_list_page wsgi_post_one wsgi_put_one  the same through Odoo's whole WSGI application
                (``odoo.http.root``: session, registry check, routing, controller, response) with
                werkzeug's test client, no socket; wsgi_read wsgi_search_read wsgi_create wsgi_write: the
                same for ``POST /jsonrpc`` (every query is then on another cursor)
  push_single   outbound _make_outbound_http_request of one record (one call per record)
  push_batched  outbound batched push of 100 records
  drain         outbox: enqueue then process_due_jobs(commit=True) of --jobs jobs
  drain_only    the same, only process_due_jobs timed (the jobs are queued before each run)
  immediate_many  immediate delivery of the same --jobs records (what drain_only is compared with)
  rule_write    a partner write firing the queued automation rule (the rule is activated)
"""

import argparse
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import ENDPOINT, PARTNER_TAG, TOKEN, kept_database, point_outbound_at  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("operations", nargs="+")
    parser.add_argument("--db", required=True)
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--cprofile", type=int, default=0, help="print the N most expensive functions")
    parser.add_argument("--callees", action="append", default=[], metavar="REGEX",
                        help="with --cprofile: what the functions matching REGEX spend their time in")
    parser.add_argument("--sql", action="store_true", help="print the queries of one operation")
    parser.add_argument("--latency-ms", type=float, default=0, help="the sink delays every answer by this much")
    args = parser.parse_args()
    with kept_database(args.db, latency_ms=args.latency_ms) as (registry, sink):
        for operation in args.operations:
            profile(registry, sink, operation, args)


def profile(registry, sink, operation, args):
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.addons.bj_api_sync.services import inbound, outbox  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        Config = point_outbound_at(env, sink)
        headers = {"Authorization": "Bearer %s" % TOKEN, "Content-Type": "application/json"}
        partners = env["res.partner"].search([("email", "=like", "p%" + PARTNER_TAG)], order="id", limit=200)
        if operation in ("drain", "drain_only", "immediate_many") and args.jobs > len(partners):
            partners = env["res.partner"].search([("email", "=like", "%" + PARTNER_TAG)], order="id", limit=args.jobs)
        counter = iter(range(10**9))

        def http(method, record_id=None, body=None, query=None):
            data = json.dumps(body).encode() if body is not None else b""
            status, _headers, text = inbound.handle(
                env, ENDPOINT, method, record_id=record_id, query=query or {}, headers=headers,
                body_bytes=data, content_type="application/json",
                url="http://127.0.0.1/bj_api_sync/v1/%s" % ENDPOINT,
            )
            if status >= 300:
                raise RuntimeError("%s %s: %s %s" % (method, record_id, status, text[:300]))
            cr.commit()
            return status

        single = Config.search([("name", "=", "bench per-record")])
        batched = Config.search([("name", "=", "bench batched")])
        queued = Config.search([("name", "=", "bench queued")])
        rule_config = Config.search([("name", "=", "bench rule")])

        admin = env.ref("base.user_admin").id

        def rpc(method, *args, **kwargs):
            from odoo.http import dispatch_rpc  # noqa: PLC0415

            return dispatch_rpc("object", "execute_kw",
                                [cr.dbname, admin, "admin", "res.partner", method, list(args), kwargs])

        wsgi = _wsgi_client()
        rpc_url = "/jsonrpc"
        api_url = "/bj_api_sync/v1/%s" % ENDPOINT

        def wsgi_api(method, path="", body=None, query=None, status=200):
            response = wsgi.open(api_url + path, method=method, headers=headers, query_string=query,
                                 data=json.dumps(body) if body is not None else None)
            if response.status_code != status:
                raise RuntimeError("%s %s: %s %s" % (method, path, response.status_code, response.get_data()[:300]))

        def wsgi_rpc(method, *args, **kwargs):
            response = wsgi.post(rpc_url, json={"jsonrpc": "2.0", "method": "call", "id": 1, "params": {
                "service": "object", "method": "execute_kw",
                "args": [cr.dbname, admin, "admin", "res.partner", method, list(args), kwargs]}})
            if response.status_code != 200 or "error" in response.json:
                raise RuntimeError("jsonrpc %s: %s" % (method, response.get_data()[:300]))

        def pick():
            return partners[next(counter) % len(partners)].id

        def changes():
            return {"name": "Put %d" % next(counter), "phone": "+1 %s" % time.time()}

        def push(config, records):
            result = env["bj.api.sync.config"]._make_outbound_http_request(records, config.id)
            cr.commit()
            assert result.success, dict(result)

        def drain():
            records = partners[: args.jobs]
            push(queued, records)
            done = outbox.process_due_jobs(env, time_budget=3600, commit=True)
            assert done == len(records), done

        immediate = Config.search([("name", "=", "bench immediate")])

        def drain_only():
            done = outbox.process_due_jobs(env, time_budget=3600, commit=True)
            assert done == args.jobs, done

        def enqueue_jobs():
            push(queued, partners[: args.jobs])

        automation = env["base.automation"].browse(rule_config.trigger_action_id)

        def rule_write():
            partner = partners[next(counter) % len(partners)]
            partner.write({"phone": "+1 %s" % time.time()})
            env.flush_all()
            cr.commit()

        operations = {
            "get_one": lambda: http("GET", record_id=str(partners[next(counter) % len(partners)].id)),
            "list": lambda: http("GET", query={"limit": "100"}),
            "list_page": lambda: http("GET", query={"limit": "100", "offset": "1000"}),
            "post_one": lambda: http("POST", body={"name": "Profile %d" % next(counter), "email": "x@example.com"}),
            "post_batch": lambda: http(
                "POST", body=[{"name": "Profile %d" % next(counter), "email": "x@example.com"}
                              for _ in range(args.batch)]),
            "orm_create_batch": lambda: (env["res.partner"].with_user(env.ref("base.user_admin")).create(
                [{"name": "Profile %d" % next(counter), "email": "x@example.com"} for _ in range(args.batch)]),
                cr.commit()),
            "upsert_same": lambda: http("POST", body={"id": partners[0].id, "name": partners[0].name}),
            "put_one": lambda: http("PUT", record_id=str(partners[next(counter) % len(partners)].id),
                                    body={"name": "Put %d" % next(counter), "phone": "+1 %s" % time.time()}),
            "rpc_read": lambda: rpc("read", [partners[next(counter) % len(partners)].id],
                                    fields=["name", "email", "phone"]),
            "rpc_search_read": lambda: rpc("search_read", [], fields=["name", "email", "phone"], offset=1000,
                                           limit=100, order="id"),
            "rpc_create": lambda: rpc("create", [{"name": "Profile %d" % next(counter), "email": "x@example.com"}]),
            "rpc_write": lambda: rpc("write", [partners[next(counter) % len(partners)].id],
                                     {"name": "Put %d" % next(counter), "phone": "+1 %s" % time.time()}),
            "wsgi_get_one": lambda: wsgi_api("GET", "/%d" % pick()),
            "wsgi_read": lambda: wsgi_rpc("read", [pick()], fields=["name", "email", "phone"]),
            "wsgi_list_page": lambda: wsgi_api("GET", query={"limit": "100", "offset": "1000"}),
            "wsgi_search_read": lambda: wsgi_rpc("search_read", [], fields=["name", "email", "phone"], offset=1000,
                                                 limit=100, order="id"),
            "wsgi_post_one": lambda: wsgi_api("POST", body={"name": "Profile %d" % next(counter),
                                                            "email": "x@example.com"}, status=201),
            "wsgi_create": lambda: wsgi_rpc("create", [{"name": "Profile %d" % next(counter),
                                                        "email": "x@example.com"}]),
            "wsgi_put_one": lambda: wsgi_api("PUT", "/%d" % pick(), body=changes()),
            "wsgi_write": lambda: wsgi_rpc("write", [pick()], changes()),
            "push_single": lambda: push(single, partners[next(counter) % len(partners)]),
            "push_batched": lambda: push(batched, partners[:100]),
            "drain": drain,
            "drain_only": drain_only,
            "immediate_many": lambda: push(immediate, partners[: args.jobs]),
            "rule_write": rule_write,
        }
        fn = operations[operation]
        if operation == "rule_write":
            automation.active = True
            cr.commit()
        try:
            before = enqueue_jobs if operation == "drain_only" else None
            for _ in range(3):
                if before:
                    before()
                fn()  # warm-up
            if args.sql:
                if before:
                    before()
                _print_queries(fn)
            repeat = 1 if operation in ("drain", "drain_only", "immediate_many") else args.repeat
            if before:
                before()
            queries = cr.sql_log_count
            detached = _count_detached(registry)
            profiler = cProfile.Profile() if args.cprofile else None
            started = time.perf_counter()
            if profiler:
                profiler.enable()
            for _ in range(repeat):
                fn()
            if profiler:
                profiler.disable()
            elapsed = time.perf_counter() - started
            queries = cr.sql_log_count - queries
            other = _count_detached(registry) - detached
            print("%-12s %6.2f ms per op, %6.1f queries per op on the cursor (+ %4.1f on other cursors)"
                  % (operation, elapsed * 1000 / repeat, queries / repeat, other / repeat), flush=True)
            if profiler:
                stats = pstats.Stats(profiler, stream=sys.stdout)
                stats.sort_stats("cumulative").print_stats(args.cprofile)
                stats.sort_stats("tottime").print_stats(args.cprofile)
                for pattern in args.callees:
                    stats.sort_stats("cumulative").print_callees(pattern)
        finally:
            if operation == "rule_write":
                automation.active = False
                cr.execute("UPDATE bj_api_sync_job SET state = 'cancelled' WHERE state = 'pending'")
                cr.commit()


def _wsgi_client():
    """werkzeug's test client on Odoo's WSGI application (what the HTTP workers run)."""
    from werkzeug.test import Client  # noqa: PLC0415

    from odoo import http  # noqa: PLC0415
    from odoo.service import server  # noqa: PLC0415

    server.load_server_wide_modules()
    return Client(http.root)


def _print_queries(fn):
    """Run ``fn`` once and print every query, whatever the cursor."""
    from odoo import sql_db  # noqa: PLC0415

    seen = []
    _watch_log_connection()
    _log_queries[0] = seen
    original = sql_db.Cursor.execute

    def execute(self, query, params=None, log_exceptions=True):
        started = time.perf_counter()
        try:
            return original(self, query, params, log_exceptions)
        finally:
            seen.append((id(self) % 1000, str(query.code if hasattr(query, "code") else query),
                         (time.perf_counter() - started) * 1000))

    sql_db.Cursor.execute = execute
    try:
        fn()
    finally:
        sql_db.Cursor.execute = original
        _log_queries[0] = None
    if len(seen) > 60:  # a long operation: the statements grouped, slowest first
        groups = {}
        for _cursor, text, ms in seen:
            key = " ".join(text.split())[:120]
            count, total = groups.get(key, (0, 0.0))
            groups[key] = (count + 1, total + ms)
        for key, (count, total) in sorted(groups.items(), key=lambda item: -item[1][1]):
            print("  %5d x %8.1f ms  %s" % (count, total, key))
        return
    for cursor, text, ms in seen:
        print("  [%s] %6.2f ms %s" % (cursor if isinstance(cursor, str) else "%03d" % cursor, ms,
                                       " ".join(text.split())[:220]))


_detached_queries = [0]


def _count_detached(registry):
    """Queries run on cursors other than the bench's (detached log writes...), process-wide."""
    from odoo import sql_db  # noqa: PLC0415

    if not getattr(sql_db.Cursor, "_bj_counted", False):
        original = sql_db.Cursor.close

        def close(self, *args, **kwargs):
            _detached_queries[0] += self.sql_log_count
            return original(self, *args, **kwargs)

        sql_db.Cursor.close = close
        sql_db.Cursor._bj_counted = True
    _watch_log_connection()
    return _detached_queries[0]


_log_queries = [None]  # a list while _print_queries records


def _watch_log_connection():
    """Count (and show) the statements of services.log_connection's raw connection as other cursors'."""
    import contextlib  # noqa: PLC0415

    from odoo.addons.bj_api_sync.services import log_connection  # noqa: PLC0415

    if getattr(log_connection, "_bj_counted", False):
        return
    original = log_connection.cursor

    class Counting:
        def __init__(self, cur):
            self._cur = cur

        def execute(self, query, params=None):
            _detached_queries[0] += 1
            if _log_queries[0] is not None:
                _log_queries[0].append(("log", str(query), 0.0))
            return self._cur.execute(query, params)

        def __getattr__(self, name):
            return getattr(self._cur, name)

    @contextlib.contextmanager
    def cursor(dbname, params=None):
        with original(dbname, params) as cur:
            yield Counting(cur)

    log_connection.cursor = cursor
    log_connection._bj_counted = True


if __name__ == "__main__":
    main()
