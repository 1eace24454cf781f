#!/usr/bin/env python3
"""What the bench scripts (run.py, opcost.py) share: environment, database, Odoo server,
HTTP sink, registry, the bench records and configurations, medians and percentiles.

The sink also runs by itself, e.g. as a slow remote for a manual run::

    python bench/common.py sink --latency-ms 100      # prints its port, stops on Ctrl-C
"""

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.request import urlopen

HERE = Path(__file__).resolve().parent
BJ_HOME = Path(os.environ.get("BJ_HOME", Path.home() / ".cache/bj_api_sync"))
TOKEN = "bench-token"  # the inbound bench configuration's bearer token
ENDPOINT = "bench-partners"  # ... and its endpoint
PARTNER_TAG = "@bj-bench.test"  # the bench partners' e-mail suffix


# --------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------


def percentile(samples, pct):
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(pct / 100 * (len(ordered) - 1))))]


def median(samples):
    samples = [s for s in samples if s is not None]
    return statistics.median(samples) if samples else None


def rss_kib(field="VmRSS", pid="self"):
    """VmRSS (or VmHWM, the peak) of a process, in KiB; 0 when it cannot be read."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/%s/status" % pid).read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak_rss(pid="self"):
    """Reset a process's VmHWM to its current RSS; False where the kernel does not allow it."""
    try:
        Path("/proc/%s/clear_refs" % pid).write_text("5")
        return True
    except OSError:
        return False


# --------------------------------------------------------------------------
# Environment, database, Odoo server
# --------------------------------------------------------------------------


def load_env_sh():
    """ODOO_SRC / BJ_ADDONS_PATH from scripts/setup.sh's env.sh when not exported."""
    if os.environ.get("ODOO_SRC") and os.environ.get("BJ_ADDONS_PATH"):
        return
    env_file = BJ_HOME / "env.sh"
    if not env_file.exists():
        sys.exit("Run scripts/setup.sh first (no %s)" % env_file)
    for line in env_file.read_text().splitlines():
        match = re.match(r'export (\w+)="?([^"]*)"?$', line.strip())
        if match and match.group(1) != "PATH":
            os.environ.setdefault(match.group(1), match.group(2))


def python():
    """The venv's Python (scripts/setup.sh), else this one."""
    venv = BJ_HOME / "venv/bin/python"
    return str(venv) if venv.exists() else sys.executable


def logfile(name):
    """``$BJ_HOME/logs/<name>``, the folder made if needed."""
    folder = BJ_HOME / "logs"
    folder.mkdir(parents=True, exist_ok=True)
    return str(folder / name)


def odoo_cmd(db, *extra):
    return [python(), os.path.join(os.environ["ODOO_SRC"], "odoo-bin"), "-d", db,
            "--addons-path", os.environ["BJ_ADDONS_PATH"], *extra]


def create_database(db, log):
    """A new database ``db`` with bj_api_sync installed, no demo data (an old one is dropped)."""
    drop_database(db)
    subprocess.run(["createdb", db], check=True)
    subprocess.run(
        odoo_cmd(db, "-i", "bj_api_sync", "--without-demo", "all", "--stop-after-init",
                 "--logfile", log, "--log-level", "warn"),
        check=True,
    )


def drop_database(db):
    subprocess.run(["dropdb", "--if-exists", db], check=False, capture_output=True)


def free_port():
    """A loopback port nobody listens on: any, or the first free one of ``BJ_BENCH_PORTS``
    (``8500-8599``: a shared machine where each user keeps to a range)."""
    first, _sep, last = os.environ.get("BJ_BENCH_PORTS", "").partition("-")
    candidates = range(int(first), int(last or first) + 1) if first else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError("no free port in BJ_BENCH_PORTS=%s" % os.environ["BJ_BENCH_PORTS"])


def start_server(db, port, log):
    """Odoo on 127.0.0.1:``port`` with ``--workers 2`` and no cron thread (nothing drains the
    outbox behind the bench's back); stop it with ``stop``."""
    stderr = open(log + ".stderr", "w")  # noqa: SIM115 - kept open for the server's lifetime
    return subprocess.Popen(
        odoo_cmd(db, "--db-filter", "^%s$" % db, "--http-interface", "127.0.0.1", "--http-port", str(port),
                 "--workers", "2", "--max-cron-threads", "0", "--logfile", log, "--log-level", "warn",
                 "--limit-time-real", "1200", "--limit-time-cpu", "1200", "--limit-request", "1000000"),
        start_new_session=True, stdout=stderr, stderr=stderr,  # e.g. the gevent process's start-up noise
    )


def stop(process):
    """Stop a process started with ``start_new_session`` (its whole group)."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def wait_for(url, timeout=120):
    import requests  # noqa: PLC0415

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.3)
    raise RuntimeError("Odoo did not answer on %s" % url)


def worker_pids(server_pid):
    """The HTTP workers of a prefork server: its children, without the gevent process."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid != server_pid:
                continue
            if b"gevent" in (entry / "cmdline").read_bytes():
                continue
        except (OSError, IndexError, ValueError):
            continue
        pids.append(int(entry.name))
    return pids


class JsonRpc:
    """Odoo's external API (``/jsonrpc``), as an integration would call it."""

    def __init__(self, base, db, login="admin", password="admin"):
        import requests  # noqa: PLC0415

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


# --------------------------------------------------------------------------
# In-process Odoo (imports odoo)
# --------------------------------------------------------------------------


def open_registry(db):
    """``(odoo, registry)`` of ``db`` in this process; Odoo logs errors only (webhook INFO lines,
    detached cursor notices)."""
    import logging  # noqa: PLC0415

    sys.path.insert(0, os.environ["ODOO_SRC"])
    import odoo  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(["--addons-path", os.environ["BJ_ADDONS_PATH"], "-d", db, "--log-level", "warn"])
    registry = odoo.modules.registry.Registry(db)
    logging.getLogger("odoo").setLevel(logging.ERROR)
    return odoo, registry


def ensure_partners(env, count, prefix):
    """``count`` bench partners (e-mail ``<prefix><n>@bj-bench.test``), created as needed."""
    Partner = env["res.partner"].with_context(tracking_disable=True, mail_create_nolog=True)
    domain = [("email", "=like", "%s%%%s" % (prefix, PARTNER_TAG))]
    have = Partner.search_count(domain)
    if have < count:
        print("[bench] creating %d partners (%s*)..." % (count - have, prefix), flush=True)
        for start in range(have, count, 2000):
            stop_at = min(count, start + 2000)
            Partner.create(
                [
                    {
                        "name": "Bench %s %d" % (prefix, i),
                        "email": "%s%d%s" % (prefix, i, PARTNER_TAG),
                        "phone": "+380 44 %07d" % i,
                        "city": "Kyiv",
                    }
                    for i in range(start, stop_at)
                ]
            )
            env.cr.commit()
            env.invalidate_all()
    return Partner.search(domain, order="id", limit=count)


@contextlib.contextmanager
def kept_database(db, latency_ms=0):
    """``(registry, sink)`` for the scripts that work on a database kept by ``run.py --keep``:
    Odoo's registry of ``db`` in this process and a local sink, stopped at the end."""
    load_env_sh()
    sink = Sink(latency_ms=latency_ms)
    try:
        _odoo, registry = open_registry(db)
        yield registry, sink
    finally:
        sink.stop()


def point_outbound_at(env, sink):
    """Send every Out configuration of a kept bench database to ``sink`` (a new port each run), committed."""
    env["ir.config_parameter"].set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
    Config = env["bj.api.sync.config"].with_context(active_test=False)
    for config in Config.search([("request_type", "=", "out")]):
        config.url = sink.url("/partners")
    env.cr.commit()
    return Config


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


# --------------------------------------------------------------------------
# The sink: the remote of the outbound scenarios, in its own process
# --------------------------------------------------------------------------


class _SinkHandler(BaseHTTPRequestHandler):
    """Answers 200 ``{"ok":true}`` (after ``server.latency`` seconds) and counts what it gets;
    ``GET /stats`` and ``GET /reset`` (never delayed) read and reset the counts."""

    protocol_version = "HTTP/1.1"  # keep-alive: the client's pooled connections are reused

    def setup(self):
        super().setup()
        # One response = headers then body: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self, payload, content_type=None):
        self.send_response(200)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def _delay(self):
        if self.server.latency:
            time.sleep(self.server.latency)  # this connection's thread only: answers overlap

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        stats = self.server.stats
        with self.server.lock:
            stats["requests"] += 1
            stats["bytes"] += len(body)
            # records = JSON objects in the body: arrays count their items
            stats["records"] += max(1, body.count(b'"email"')) if body else 0
        self._delay()
        self._answer(b'{"ok":true}', "application/json")

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
            self._delay()
            payload = b"{}"
        self._answer(payload)

    def do_HEAD(self):
        self._delay()
        self._answer(b"")

    def log_message(self, *args):
        pass


def serve(port=0, latency_ms=0, port_file=None):
    """Run the sink (threaded, one thread per connection) until the process is stopped."""
    server = ThreadingHTTPServer(("127.0.0.1", port), _SinkHandler)
    server.daemon_threads = True
    server.request_queue_size = 512  # a worker's burst of parallel requests
    server.handle_error = lambda request, address: None  # clients giving up (timeouts) reset connections
    server.stats = {"requests": 0, "records": 0, "bytes": 0}
    server.lock = threading.Lock()
    server.latency = latency_ms / 1000
    if port_file:
        Path(port_file).write_text(str(server.server_address[1]))
    else:
        print("sink on 127.0.0.1:%d, answers after %s ms" % (server.server_address[1], latency_ms), flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)


class Sink:
    """The sink process: ``Sink(latency_ms=100)`` starts one, ``Sink(port=N)`` attaches to the
    parent's (a child process); ``stop`` ends only a sink this object started."""

    def __init__(self, port=None, latency_ms=0):
        self.process = None
        self.latency_ms = latency_ms
        if port:
            self.port = port
            return
        port_file = Path("/tmp/bj_bench_sink_%d.port" % os.getpid())
        port_file.unlink(missing_ok=True)
        command = [sys.executable, __file__, "sink", "--port-file", str(port_file), "--latency-ms", str(latency_ms)]
        if os.environ.get("BJ_BENCH_PORTS"):
            command += ["--port", str(free_port())]
        self.process = subprocess.Popen(command)
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    sink = commands.add_parser("sink", help="run the HTTP sink (the outbound scenarios' remote)")
    sink.add_argument("--port", type=int, default=0, help="default: a free one")
    sink.add_argument("--latency-ms", type=float, default=0, help="delay of every answer (default 0)")
    sink.add_argument("--port-file", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    serve(args.port, args.latency_ms, args.port_file)


if __name__ == "__main__":
    main()
