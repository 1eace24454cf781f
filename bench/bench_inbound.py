#!/usr/bin/env python3
"""Inbound API speed against Odoo's own JSON-RPC, in the same run (SPEC §8).

Creates a database, installs bj_api_sync, starts Odoo on a free port with
``--workers 2``, then measures:

* batch POST /bj_api_sync/v1/<endpoint> (arrays of ``--batch`` records) in records/s,
  against JSON-RPC ``execute_kw res.partner create`` of the same records in the same batches;
* single GET /bj_api_sync/v1/<endpoint>/<id> p50/p95, against JSON-RPC ``read`` of one record.

Usage (from the repository root, after scripts/setup.sh):
    python bench/bench_inbound.py [--records 5000] [--batch 500] [--gets 300] [--keep]

Uses the environment of scripts/setup.sh ($BJ_HOME/env.sh: ODOO_SRC, BJ_ADDONS_PATH).
Everything it starts (server, database) it stops and drops at the end, unless --keep.
"""

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid

import requests

BJ_HOME = os.environ.get("BJ_HOME", os.path.expanduser("~/.cache/bj_api_sync"))
ODOO_SRC = os.environ.get("ODOO_SRC", os.path.join(BJ_HOME, "odoo-18.0"))
ADDONS = os.environ.get(
    "BJ_ADDONS_PATH",
    ",".join([
        os.path.join(ODOO_SRC, "addons"),
        os.path.join(ODOO_SRC, "odoo", "addons"),
        os.path.join(BJ_HOME, "addons"),
    ]),
)
PYTHON = os.path.join(BJ_HOME, "venv", "bin", "python")
TOKEN = "bench-token"
ENDPOINT = "bench-partners"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def odoo_cmd(db, *extra):
    return [
        PYTHON if os.path.exists(PYTHON) else sys.executable,
        os.path.join(ODOO_SRC, "odoo-bin"),
        "-d", db, "--addons-path", ADDONS, "--db-filter", "^%s$" % db, *extra,
    ]


class JsonRpc:
    def __init__(self, base, db, login="admin", password="admin"):
        self.base, self.db, self.password = base, db, password
        self.session = requests.Session()
        self.uid = self.call("common", "login", db, login, password)

    def call(self, service, method, *args):
        response = self.session.post(self.base + "/jsonrpc", json={
            "jsonrpc": "2.0", "method": "call", "id": 1,
            "params": {"service": service, "method": method, "args": list(args)},
        }, timeout=300)
        body = response.json()
        if body.get("error"):
            raise RuntimeError(json.dumps(body["error"])[:2000])
        return body["result"]

    def execute(self, model, method, *args, **kwargs):
        return self.call("object", "execute_kw", self.db, self.uid, self.password, model, method, list(args), kwargs)


def wait_for(url, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError("Odoo did not answer on %s" % url)


def records(count, tag):
    return [
        {"name": "Bench %s %05d" % (tag, i), "email": "bench.%s.%05d@example.com" % (tag, i), "phone": "+3280%05d" % i}
        for i in range(count)
    ]


def percentile(samples, pct):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--gets", type=int, default=300)
    parser.add_argument("--db", default="bj_bench_%s" % uuid.uuid4().hex[:8])
    parser.add_argument("--keep", action="store_true", help="keep the database")
    args = parser.parse_args()

    logfile = os.path.join(BJ_HOME, "logs", "bench-inbound-%s.log" % args.db)
    os.makedirs(os.path.dirname(logfile), exist_ok=True)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    server = None
    stderr_log = open(logfile + ".stderr", "w")  # noqa: SIM115 - open for the server's lifetime
    print("database %s, port %d, log %s" % (args.db, port, logfile), file=sys.stderr)
    subprocess.run(["createdb", args.db], check=True)
    try:
        print("installing bj_api_sync ...", file=sys.stderr)
        subprocess.run(
            odoo_cmd(args.db, "-i", "bj_api_sync", "--without-demo", "all", "--stop-after-init",
                     "--logfile", logfile, "--log-level", "warn"),
            check=True,
        )
        server = subprocess.Popen(
            odoo_cmd(args.db, "--http-port", str(port), "--workers", "2", "--max-cron-threads", "0",
                     "--logfile", logfile, "--log-level", "warn", "--limit-time-real", "600",
                     "--limit-time-cpu", "600"),
            start_new_session=True,
            stdout=stderr_log, stderr=stderr_log,  # e.g. the gevent process's start-up noise
        )
        wait_for(base + "/web/login")
        rpc = JsonRpc(base, args.db)
        result = run(rpc, base, args)
    finally:
        if server is not None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
        if not args.keep:
            subprocess.run(["dropdb", "--if-exists", args.db], check=False)
    print_table(result, args)


def run(rpc, base, args):
    model_id = rpc.execute("ir.model", "search", [("model", "=", "res.partner")])[0]
    fields = {
        f["name"]: f["id"]
        for f in rpc.execute("ir.model.fields", "search_read",
                             [("model", "=", "res.partner"), ("name", "in", ["id", "name", "email", "phone"])],
                             fields=["name"])
    }
    method_ids = rpc.execute("bj.http.method", "search", [("name", "in", ["GET", "POST"])])
    lines = [
        [0, 0, {"sequence": 1, "field_id": fields["id"], "value_type": "plain", "api_key": "id",
                "is_record_identifier": True}],
        [0, 0, {"sequence": 2, "field_id": fields["name"], "value_type": "plain", "api_key": "name",
                "required": True}],
        [0, 0, {"sequence": 3, "field_id": fields["email"], "value_type": "plain", "api_key": "email"}],
        [0, 0, {"sequence": 4, "field_id": fields["phone"], "value_type": "plain", "api_key": "phone"}],
    ]
    base_config = {
        "request_type": "in", "model_id": model_id, "http_method_ids": [[6, 0, method_ids]],
        "auth_type": "bearer", "bearer_token": TOKEN, "limit": max(args.batch, 1000), "line_ids": lines,
    }
    config_id = rpc.execute("bj.api.sync.config", "create", dict(base_config, name="Bench", endpoint=ENDPOINT))
    rpc.execute("bj.api.sync.config", "create",
                dict(base_config, name="Bench quiet", endpoint=ENDPOINT + "-quiet", log_payloads=False))
    api = requests.Session()
    api.headers.update({"Authorization": "Bearer %s" % TOKEN, "Content-Type": "application/json"})
    url = "%s/bj_api_sync/v1/%s" % (base, ENDPOINT)

    def api_post(items, endpoint_url=url):
        response = api.post(endpoint_url, data=json.dumps(items), timeout=600)
        if response.status_code != 201:
            raise RuntimeError("POST %s: %s" % (response.status_code, response.text[:500]))
        return response.json()

    def rpc_create(items):
        return rpc.execute("res.partner", "create", items)

    contenders = {
        "post_api": api_post,
        "post_api_nolog": lambda items: api_post(items, url + "-quiet"),
        "post_rpc": rpc_create,
    }
    # warm up every path (registry, caches, both workers)
    for i in range(4):
        for name, post in contenders.items():
            post(records(20, "warm%s%d" % (name, i)))
    # Interleaved, batch by batch, so that load changes on the machine hit all paths alike.
    spent = dict.fromkeys(contenders, 0.0)
    for start in range(0, args.records, args.batch):
        count = min(args.batch, args.records - start)
        for name, post in contenders.items():
            items = records(count, "%s %d" % (name.split("_", 1)[1], start))
            started = time.perf_counter()
            post(items)
            spent[name] += time.perf_counter() - started
    result = {name: args.records / seconds for name, seconds in spent.items()}

    ids = rpc.execute("res.partner", "search", [("name", "=like", "Bench api %")])
    random.seed(42)
    picks = [random.choice(ids) for _ in range(args.gets)]
    result["get_api"], result["get_rpc"] = [], []
    for record_id in picks:
        started = time.perf_counter()
        response = api.get("%s/%s" % (url, record_id), timeout=60)
        result["get_api"].append((time.perf_counter() - started) * 1000)
        if response.status_code != 200 or response.json()["id"] != record_id:
            raise RuntimeError("GET %s: %s" % (response.status_code, response.text[:300]))
        started = time.perf_counter()
        rpc.execute("res.partner", "read", [record_id], fields=["name", "email", "phone"])
        result["get_rpc"].append((time.perf_counter() - started) * 1000)
    result["logs"] = rpc.execute("bj.api.log", "search_count", [("config_id", "=", config_id)])
    return result


def print_table(result, args):
    post_api, post_rpc, post_quiet = result["post_api"], result["post_rpc"], result["post_api_nolog"]
    get_api, get_rpc = result["get_api"], result["get_rpc"]
    rows = [
        ("batch POST (%d x %d), records/s" % (args.records // args.batch, args.batch), post_api, post_rpc,
         post_api / post_rpc),
        ("  same, log_payloads off, records/s", post_quiet, post_rpc, post_quiet / post_rpc),
        ("GET by identifier p50, ms", statistics.median(get_api), statistics.median(get_rpc),
         statistics.median(get_rpc) / statistics.median(get_api)),
        ("GET by identifier p95, ms", percentile(get_api, 95), percentile(get_rpc, 95),
         percentile(get_rpc, 95) / percentile(get_api, 95)),
    ]
    print()
    print("%-42s %14s %16s %16s" % ("measure", "bj_api_sync", "JSON-RPC", "ratio (>1 = us faster)"))
    for label, ours, theirs, ratio in rows:
        print("%-42s %14.1f %16.1f %16.2f" % (label, ours, theirs, ratio))
    print()
    print("log rows written by the bench endpoint: %d; payload logging cost on batch POST: %.1f %%"
          % (result["logs"], (1 - post_api / post_quiet) * 100))


if __name__ == "__main__":
    main()
