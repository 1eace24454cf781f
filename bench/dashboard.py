#!/usr/bin/env python3
"""Dashboard, statistics and metrics timings on a large log table (issue 17).

Creates its own database (``--db``, default ``bj_ops_dashboard``; dropped at the end unless
``--keep``), installs bj_api_sync without demo data, creates ``--configs`` configurations and
``--rows`` log rows (default 1,000,000) with one ``generate_series`` INSERT, spread over
``--days`` days (30: the default log retention), 8 % errors, plus ``--jobs`` pending sync jobs,
then times in-process, each ``--repeat`` times (median and max, warm cache):

* the rows are inserted in time order, as requests write them, then VACUUM ANALYZE (autovacuum's work);
* the dashboard computation of every configuration (``_dashboard_stats``: 24 h counts, error
  rate, p50/p95, last success/error, queue depth, oldest pending job) and the kanban read;
* the "Requests per hour" graph (``read_group`` by hour and status, since yesterday) and the
  "Duration by configuration" pivot (since yesterday, and over every row);
* ``/bj_api_sync/metrics`` (``services.metrics.render``, every row);
* the Sync Status dialog of one record.

Usage (from the repository root, after scripts/setup.sh):
    source ~/.cache/bj_api_sync/env.sh
    python bench/dashboard.py [--rows 1000000] [--days 30] [--configs 20] [--keep]
"""

import argparse
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta

BJ_HOME = os.environ.get("BJ_HOME", os.path.expanduser("~/.cache/bj_api_sync"))
ODOO_SRC = os.environ.get("ODOO_SRC", os.path.join(BJ_HOME, "odoo-18.0"))
ADDONS = os.environ.get(
    "BJ_ADDONS_PATH",
    ",".join([os.path.join(ODOO_SRC, "addons"), os.path.join(ODOO_SRC, "odoo", "addons"),
              os.path.join(BJ_HOME, "addons")]),
)


def install(db):
    subprocess.run(["dropdb", "--if-exists", db], check=True)
    subprocess.run(["createdb", db], check=True)
    subprocess.run(
        [sys.executable, os.path.join(ODOO_SRC, "odoo-bin"), "-d", db, "--addons-path", ADDONS, "-i", "bj_api_sync",
         "--without-demo", "all", "--stop-after-init", "--log-level", "warn", "--http-port", "0", "--workers", "0",
         "--max-cron-threads", "0"],
        check=True,
    )


def timed(label, fn, repeat, results):
    runs = []
    value = None
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn()
        runs.append((time.perf_counter() - start) * 1000)
    results.append((label, statistics.median(runs), max(runs)))
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="bj_ops_dashboard")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=30.0, help="the rows are spread over this many days")
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--reuse", action="store_true", help="use the kept database as it is")
    args = parser.parse_args()

    sys.path.insert(0, ODOO_SRC)
    import odoo  # noqa: PLC0415 - after ODOO_SRC is on the path
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    if not args.reuse:
        print("installing bj_api_sync in %s ..." % args.db, flush=True)
        install(args.db)
    odoo.tools.config.parse_config(["-d", args.db, "--addons-path", ADDONS, "--log-level", "warn"])
    registry = odoo.modules.registry.Registry(args.db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        Config = env["bj.api.sync.config"]
        if not args.reuse:
            partner_model = env.ref("base.model_res_partner")
            post = env["bj.http.method"].search([("name", "=", "POST")], limit=1)
            get = env["bj.http.method"].search([("name", "=", "GET")], limit=1)
            vals = []
            for i in range(args.configs):
                out = i % 4 == 0
                vals.append({
                    "name": "Bench %02d" % i, "request_type": "out" if out else "in",
                    "endpoint": False if out else "bench-%02d" % i,
                    "url": "https://api.example.com/p" if out else False, "model_id": partner_model.id,
                    "http_method_ids": [(6, 0, (post if out else get).ids)], "auth_type": "none",
                    "delivery": "queued" if out else "immediate",
                })
            configs = Config.create(vals)
            env.flush_all()
            ids = configs.ids
            print("inserting %d log rows over %s days ..." % (args.rows, args.days), flush=True)
            start = time.perf_counter()
            cr.execute(
                """
                INSERT INTO bj_api_log (name, config_id, direction, method, url, response_code, status, duration_ms,
                                        res_model, res_ids, attempt, create_date, write_date, create_uid, write_uid,
                                        create_hour)
                SELECT 'GET /bench', c.id, CASE WHEN c.rt = 'out' THEN 'out' ELSE 'in' END, 'GET', '/bench',
                       CASE WHEN s.err THEN 500 ELSE 200 END,
                       CASE WHEN s.err THEN 'error' ELSE 'success' END,
                       (random() * random() * 2000)::int, 'res.partner', (g %% 5000)::text, 1, s.at, s.at, 1, 1,
                       to_char(s.at, 'YYYY-MM-DD HH24:00')
                  FROM generate_series(1, %(rows)s) g
                  CROSS JOIN LATERAL (SELECT (now() AT TIME ZONE 'UTC') - random() * %(days)s * interval '1 day' AS at,
                                             random() < 0.08 AS err, (g %% %(n)s) AS k) s
                  JOIN (SELECT id, request_type AS rt, row_number() OVER (ORDER BY id) - 1 AS k
                          FROM bj_api_sync_config WHERE id = ANY(%(ids)s)) c ON c.k = s.k
                 ORDER BY s.at
                """,
                {"rows": args.rows, "days": args.days, "n": len(ids), "ids": ids},
            )
            out_ids = configs.filtered(lambda c: c.request_type == "out").ids
            cr.execute(
                """
                INSERT INTO bj_api_sync_job (config_id, company_id, res_model, res_ids, state, attempts, payload,
                                             next_attempt_at, create_date, write_date, create_uid, write_uid,
                                             idempotency_key)
                SELECT (%(out)s::int[])[1 + g %% array_length(%(out)s::int[], 1)], 1, 'res.partner', g::text,
                       CASE WHEN g %% 10 = 0 THEN 'failed' WHEN g %% 3 = 0 THEN 'done' ELSE 'pending' END, 0, '{}',
                       now() AT TIME ZONE 'UTC', (now() AT TIME ZONE 'UTC') - g * interval '1 second',
                       now() AT TIME ZONE 'UTC', 1, 1, md5(random()::text || g)
                  FROM generate_series(1, %(jobs)s) g
                """,
                {"out": out_ids, "jobs": args.jobs},
            )
            cr.commit()
            # as autovacuum would have: the visibility map makes the covering index scans index-only
            subprocess.run(["psql", "-q", "-d", args.db, "-c", "VACUUM ANALYZE bj_api_log",
                            "-c", "VACUUM ANALYZE bj_api_sync_job"], check=True)
            print("  inserted in %.1f s" % (time.perf_counter() - start), flush=True)
        configs = Config.search([])
        ids = configs.ids
        cr.execute("SELECT count(*), count(*) FILTER (WHERE create_date >= (now() AT TIME ZONE 'UTC') "
                   "- interval '24 hours') FROM bj_api_log")
        total, last_day = cr.fetchone()
        print("%d log rows (%d in the last 24 h), %d configurations" % (total, last_day, len(ids)), flush=True)

        from odoo.addons.bj_api_sync.services import metrics  # noqa: PLC0415

        Log = env["bj.api.log"]
        since = odoo.fields.Datetime.now().replace(hour=0, minute=0, second=0) - timedelta(days=1)
        results = []
        stats = timed("dashboard: _dashboard_stats of every configuration", lambda: Config._dashboard_stats(ids),
                      args.repeat, results)

        def kanban():
            env.invalidate_all()
            return Config.web_search_read([], {
                "name": {}, "health_state": {}, "health_color": {}, "health_calls": {}, "health_errors": {},
                "health_error_rate": {}, "health_p50": {}, "health_p95": {}, "queue_depth": {},
                "oldest_pending_at": {}, "last_success_at": {}, "last_error_at": {}, "paused": {},
                "request_type": {}, "model_id": {"fields": {"display_name": {}}},
            })

        timed("dashboard: kanban web_search_read (all cards)", kanban, args.repeat, results)
        timed("graph: requests per hour by status, since yesterday",
              lambda: Log.read_group([("create_date", ">=", since)], ["__count"], ["create_hour", "status"],
                                     lazy=False), args.repeat, results)
        timed("pivot: duration by configuration, since yesterday",
              lambda: Log.read_group([("create_date", ">=", since)], ["duration_ms:avg"], ["config_id", "status"],
                                     lazy=False), args.repeat, results)
        timed("pivot: duration by configuration, every row",
              lambda: Log.read_group([], ["duration_ms:avg"], ["config_id", "status"], lazy=False),
              max(1, args.repeat // 2), results)
        text = timed("metrics: /bj_api_sync/metrics body (every row)", lambda: metrics.render(env),
                     max(1, args.repeat // 2), results)
        partner = env["res.partner"].search([], limit=1)
        out_config = configs.filtered(lambda c: c.request_type == "out")[:1]
        cr.execute(
            "UPDATE bj_api_log SET res_ids = %s WHERE id = (SELECT max(id) FROM bj_api_log WHERE config_id = %s)",
            [str(partner.id), out_config.id],
        )
        timed("sync status: dialog of one record", lambda: env["bj.api.sync.status"]._action_open(
            "res.partner", partner.id), args.repeat, results)
        cr.rollback()

    sample = stats[ids[0]]
    print("\nsample (%s): %s" % (ids[0], {k: v for k, v in sample.items()}))
    print("metrics: %d lines" % text.count("\n"))
    print("\n| operation | median ms | max ms |\n|---|---:|---:|")
    for label, median, worst in results:
        print("| %s | %.1f | %.1f |" % (label, median, worst))
    if not args.keep:
        odoo.modules.registry.Registry.delete(args.db)
        odoo.sql_db.close_all()
        subprocess.run(["dropdb", "--if-exists", args.db], check=False)


if __name__ == "__main__":
    main()
