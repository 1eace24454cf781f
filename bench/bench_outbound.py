#!/usr/bin/env python3
"""Outbound throughput and memory, against Odoo's own webhook action in the same run.

Usage (after ``bash scripts/setup.sh``)::

    source ~/.cache/bj_api_sync/env.sh
    python bench/bench_outbound.py [--db bj_bench_out] [--records 10000] [--cron-records 100000]

What it does:

1. creates the database (``odoo-bin -i bj_api_sync``, no demo data) unless it exists;
2. starts a local HTTP sink in a separate process (threaded ``http.server``, HTTP/1.1
   keep-alive, answers 200 at once) so the sink never competes with Odoo for the GIL;
3. pushes the same N partners through
   - ``_make_outbound_http_request`` with a paginated config (page size 100),
   - ``_make_outbound_http_request`` per record (one request per partner),
   - the same per-record config with ``log_payloads`` off (cost of logging bodies),
   - Odoo's "Send Webhook Notification" server action (``state='webhook'``), run per record
     as base_automation would, posting the same fields;
4. optionally runs ``cron_sync`` over M partners (committing per batch, like a cron
   worker) and reports the growth of peak RSS.

It prints records/s per path, request counts seen by the sink, and ratios.
"""

import argparse
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

HERE = Path(__file__).resolve().parent
ENV_FILE = Path(os.environ.get("BJ_HOME", Path.home() / ".cache/bj_api_sync")) / "env.sh"


# --------------------------------------------------------------------------
# The sink (runs in its own process: python bench_outbound.py --serve)
# --------------------------------------------------------------------------


class _SinkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # One response = headers then body: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        stats = self.server.stats
        with self.server.lock:
            stats["requests"] += 1
            stats["bytes"] += len(body)
            # records = JSON objects in the body: arrays count their items
            stats["records"] += max(1, body.count(b'"email"')) if body else 0
        payload = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_PUT = do_PATCH = do_POST

    def do_GET(self):
        if self.path == "/stats":
            with self.server.lock:
                payload = json.dumps(self.server.stats).encode()
        elif self.path == "/reset":
            with self.server.lock:
                self.server.stats.update(requests=0, records=0, bytes=0)
            payload = b"{}"
        else:
            payload = b"{}"
        self.send_response(200)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(port_file):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SinkHandler)
    server.daemon_threads = True
    server.request_queue_size = 256
    server.stats = {"requests": 0, "records": 0, "bytes": 0}
    server.lock = threading.Lock()
    Path(port_file).write_text(str(server.server_address[1]))
    server.serve_forever(poll_interval=0.1)


class Sink:
    def __init__(self, port=None):
        self.process = None
        if port:  # attach to the parent's sink (the cron memory run is a child process)
            self.port = port
            return
        port_file = Path("/tmp/bj_bench_sink_%d.port" % os.getpid())
        port_file.unlink(missing_ok=True)
        self.process = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
        for _ in range(100):
            if port_file.exists() and port_file.read_text():
                break
            time.sleep(0.05)
        self.port = int(port_file.read_text())
        port_file.unlink(missing_ok=True)

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stats(self):
        with urlopen(self.url("/stats")) as response:
            return json.loads(response.read())

    def reset(self):
        urlopen(self.url("/reset")).read()

    def stop(self):
        if self.process is None:
            return
        self.process.terminate()
        self.process.wait(5)


# --------------------------------------------------------------------------
# Odoo set-up
# --------------------------------------------------------------------------


def load_env_sh():
    """ODOO_SRC / BJ_ADDONS_PATH from scripts/setup.sh's env.sh when not exported."""
    if os.environ.get("ODOO_SRC") and os.environ.get("BJ_ADDONS_PATH"):
        return
    if not ENV_FILE.exists():
        sys.exit("Run scripts/setup.sh first (no %s)" % ENV_FILE)
    for line in ENV_FILE.read_text().splitlines():
        match = re.match(r'export (\w+)="?([^"]*)"?$', line.strip())
        if match and match.group(1) != "PATH":
            os.environ.setdefault(match.group(1), match.group(2))


def ensure_database(db):
    listed = subprocess.run(["psql", "-lqt"], capture_output=True, text=True, check=True).stdout
    if db in {line.split("|")[0].strip() for line in listed.splitlines()}:
        return
    print("[bench] creating database %s with bj_api_sync (no demo)..." % db, flush=True)
    subprocess.run(["createdb", db], check=True)
    subprocess.run(
        [
            sys.executable,
            os.path.join(os.environ["ODOO_SRC"], "odoo-bin"),
            "-d", db,
            "--addons-path", os.environ["BJ_ADDONS_PATH"],
            "-i", "bj_api_sync",
            "--without-demo", "all",
            "--stop-after-init",
            "--log-level", "warn",
        ],
        check=True,
    )


def open_registry(db):
    sys.path.insert(0, os.environ["ODOO_SRC"])
    import odoo  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(["--addons-path", os.environ["BJ_ADDONS_PATH"], "-d", db, "--log-level", "warn"])
    return odoo, odoo.modules.registry.Registry(db)


def rss_kib(field="VmRSS"):
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def reset_peak_rss():
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Bench
# --------------------------------------------------------------------------

PARTNER_TAG = "@bj-bench.test"


def ensure_partners(env, count, prefix):
    Partner = env["res.partner"].with_context(tracking_disable=True, mail_create_nolog=True)
    domain = [("email", "=like", "%s%%%s" % (prefix, PARTNER_TAG))]
    have = Partner.search_count(domain)
    if have < count:
        print("[bench] creating %d partners (%s*)..." % (count - have, prefix), flush=True)
        for start in range(have, count, 2000):
            stop = min(count, start + 2000)
            Partner.create(
                [
                    {
                        "name": "Bench %s %d" % (prefix, i),
                        "email": "%s%d%s" % (prefix, i, PARTNER_TAG),
                        "phone": "+380 44 %07d" % i,
                        "city": "Kyiv",
                    }
                    for i in range(start, stop)
                ]
            )
            env.cr.commit()
            env.invalidate_all()
    return Partner.search(domain, order="id", limit=count)


def make_config(env, sink, name, paginated=False, log_payloads=True, **vals):
    """An Out configuration of the bench partners to the sink (``vals`` override the defaults)."""
    from odoo import Command  # noqa: PLC0415

    Config = env["bj.api.sync.config"].with_context(active_test=False)
    Config.search([("name", "=", name)]).unlink()
    field = env["ir.model.fields"]._get
    line = lambda fname, key, **kw: Command.create(  # noqa: E731
        dict({"field_id": field("res.partner", fname).id, "value_type": "plain", "api_key": key}, **kw)
    )
    values = {
        "name": name,
        "request_type": "out",
        "url": sink.url("/partners"),
        "model_id": env.ref("base.model_res_partner").id,
        "http_method_ids": [Command.set(env["bj.http.method"].search([("name", "=", "POST")]).ids)],
        "auth_type": "none",
        "is_paginated": paginated,
        "page_size": 100,
        "limit": 0,
        "log_payloads": log_payloads,
        "retry_backoff": 0,
        "filter_domain": "[('email', '=like', '%%%s')]" % PARTNER_TAG,
        "line_ids": [
            line("id", "id", is_record_identifier=True, sequence=1),
            line("name", "name", sequence=2),
            line("email", "email", sequence=3),
            line("phone", "phone", sequence=4),
            line("city", "city", sequence=5),
        ],
    }
    values.update(vals)
    return Config.create(values)


def timed(label, sink, fn, records):
    sink.reset()
    started = time.perf_counter()
    outcome = fn()
    elapsed = time.perf_counter() - started
    stats = sink.stats()
    rate = records / elapsed if elapsed else 0
    print(
        "  %-44s %7d rec in %6.2f s = %8.0f rec/s  (%6d requests, %5.1f MB)"
        % (label, records, elapsed, rate, stats["requests"], stats["bytes"] / 1e6),
        flush=True,
    )
    return rate, outcome, stats


def bench_push(odoo, registry, sink, count):
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    results = {}
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        partners = ensure_partners(env, count, "p")
        batched = make_config(env, sink, "bench batched", paginated=True)
        single = make_config(env, sink, "bench per-record", paginated=False)
        quiet = make_config(env, sink, "bench per-record (no payload logs)", paginated=False, log_payloads=False)
        env["ir.actions.server"].search([("name", "=", "bench webhook")]).unlink()
        fields_ = env["ir.model.fields"].search(
            [("model", "=", "res.partner"), ("name", "in", ["name", "email", "phone", "city"])]
        )
        webhook = env["ir.actions.server"].create(
            {
                "name": "bench webhook",
                "model_id": env.ref("base.model_res_partner").id,
                "state": "webhook",
                "webhook_url": sink.url("/webhook"),
                "webhook_field_ids": [(6, 0, fields_.ids)],
            }
        )
        cr.commit()  # configs visible to the detached log cursor
        print("\n[bench] push %d partners (sink on 127.0.0.1:%d)" % (count, sink.port), flush=True)

        def push(config):
            def run():
                result = config._make_outbound_http_request(partners, config.id)
                cr.commit()
                assert result.success and result.sent == count, dict(result, log_ids="…")
                return result

            return run

        def odoo_webhook():
            for partner in partners:
                webhook.with_context(active_model="res.partner", active_id=partner.id, active_ids=[partner.id]).run()
            cr.commit()

        # warm-up (connection pools, registry caches) on a few records
        single._make_outbound_http_request(partners[:20], single.id)
        cr.commit()
        results["batched"] = timed("bj_api_sync batched (page 100)", sink, push(batched), count)[0]
        results["single"] = timed("bj_api_sync per-record", sink, push(single), count)[0]
        results["quiet"] = timed("bj_api_sync per-record, log_payloads off", sink, push(quiet), count)[0]
        # Same per-record run with attempt logs dropped (bench only): the whole cost of logging.
        from odoo.addons.bj_api_sync.services import sender  # noqa: PLC0415

        original_flush = sender.LogBuffer.flush
        sender.LogBuffer.flush = lambda self: self.pending.clear()
        try:
            results["nolog"] = timed("bj_api_sync per-record, no log rows at all", sink, push(quiet), count)[0]
        finally:
            sender.LogBuffer.flush = original_flush
        results["webhook"] = timed("Odoo 'Send Webhook Notification' per record", sink, odoo_webhook, count)[0]
        logs = env["bj.api.log"].search_count([("config_id", "in", (batched | single | quiet).ids)])
        print("  (%d log rows written by the three bj_api_sync runs)" % logs)
    return results


def bench_cron(odoo, registry, sink, count):
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        config = make_config(env, sink, "bench cron", paginated=True)
        config.filter_domain = "[('email', '=like', 'c%%%s')]" % PARTNER_TAG
        env["bj.api.sync.binding"].search([("config_id", "=", config.id)]).unlink()
        cr.commit()
        env.invalidate_all()
        from odoo.addons.bj_api_sync.services import push  # noqa: PLC0415

        print("\n[bench] cron_sync over %d partners (commit per batch, fresh process)" % count, flush=True)
        base = rss_kib()
        resettable = reset_peak_rss()
        rate, result, _stats = timed(
            "cron_sync first run (all sent)",
            sink,
            lambda: push.cron_sync(config.with_context(bj_api_sync_commit=True)),
            count,
        )
        peak = rss_kib("VmHWM")
        print(
            "  peak RSS growth: %.1f MB (RSS before %.1f MB, peak %.1f MB%s); sent %d, failed %d"
            % ((peak - base) / 1024, base / 1024, peak / 1024, "" if resettable else ", peak not reset",
               result.sent, result.failed),
            flush=True,
        )
        cr.commit()
        env.invalidate_all()
        rate2, result2, _ = timed(
            "cron_sync second run (all unchanged, skipped)",
            sink,
            lambda: push.cron_sync(config.with_context(bj_api_sync_commit=True)),
            count,
        )
        print("  second run: sent %d, skipped %d" % (result2.sent, result2.skipped))
        return {"cron": rate, "cron_skip": rate2, "cron_peak_mb": (peak - base) / 1024}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", default="bj_bench_out")
    parser.add_argument("--records", type=int, default=10000)
    parser.add_argument("--cron-records", type=int, default=0, help="0 = skip the cron_sync memory run")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--cron-child", type=int, help=argparse.SUPPRESS)  # sink port
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    load_env_sh()
    if args.cron_child:
        odoo, registry = open_registry(args.db)
        return bench_cron(odoo, registry, Sink(args.cron_child), args.cron_records)
    ensure_database(args.db)
    sink = Sink()
    try:
        odoo, registry = open_registry(args.db)
        push = bench_push(odoo, registry, sink, args.records)
        print("\n[bench] ratios")
        print("  batched / per-record        : %5.1fx" % (push["batched"] / push["single"]))
        print("  batched / Odoo webhook      : %5.1fx" % (push["batched"] / push["webhook"]))
        print("  per-record / Odoo webhook   : %5.2fx" % (push["single"] / push["webhook"]))
        print("  payload logging cost        : %5.1f%% of per-record throughput"
              % (100 * (1 - push["single"] / push["quiet"])))
        print("  logging cost (all log rows) : %5.1f%% of per-record throughput"
              % (100 * (1 - push["single"] / push["nolog"])))
        if args.cron_records:
            from odoo import SUPERUSER_ID, api  # noqa: PLC0415

            with registry.cursor() as cr:
                ensure_partners(api.Environment(cr, SUPERUSER_ID, {}), args.cron_records, "c")
            # A fresh process, so that peak RSS measures the sync and not this run's history.
            subprocess.run(
                [sys.executable, "-u", __file__, "--db", args.db, "--cron-records", str(args.cron_records),
                 "--cron-child", str(sink.port)],
                check=True,
            )
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
