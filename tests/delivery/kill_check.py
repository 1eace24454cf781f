#!/usr/bin/env python3
"""Two Odoo servers drain one outbox while one of them is killed (run by scripts/delivery.sh).

1. Set-up, in the database (already created with bj_api_sync installed): a queued Out
   configuration to a local HTTP remote answering in ``--latency`` seconds, ``--jobs`` jobs
   for as many partners plus ``--chains`` partners with two jobs each (the second one must
   arrive after the first), two worker crons (``bj_api_sync.worker_crons`` = 2), each worker
   with ``--worker-size`` requests in flight, the configuration's Max Parallel Requests
   above one worker's so that both have work.
2. Two Odoo servers (``odoo-bin``, threaded, one cron thread each) on that database; the
   worker crons are triggered; the remote records every request (Idempotency-Key, body,
   time).
3. Once a quarter of the jobs have arrived and the second server's worker holds running
   jobs, that server is killed with SIGKILL (no clean-up of any kind: its in-flight
   requests, uncommitted outcomes and claimed jobs are left as they are).
4. The first server goes on; the goals are checked:
   - the victim was killed mid-batch (it held running jobs) and both servers delivered;
   - every job done, none failed or lost (each job's Idempotency-Key received);
   - duplicates only with the same Idempotency-Key (and the same body), no unknown key;
   - the second job of each chained record arrived after every copy of the first;
   - the victim's jobs went back to pending through its released advisory lock, long
     before the stale timeout.
Prints the figures and ends with ``delivery: N passed, N failed``.
"""

import argparse
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2
import requests

# ---------------------------------------------------------------------------
# The remote
# ---------------------------------------------------------------------------


class Remote(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, latency):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.latency = latency
        self.lock = threading.Lock()
        self.received = []  # (monotonic time, Idempotency-Key, body)

    def handle_error(self, request, client_address):
        pass  # the killed server's connections are reset mid-request: expected here

    @property
    def url(self):
        return "http://127.0.0.1:%d/hook" % self.server_address[1]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # One response = headers then body: without this, Nagle + delayed ACK add ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with self.server.lock:
            self.server.received.append((time.monotonic(), self.headers.get("Idempotency-Key"), body))
        time.sleep(self.server.latency)
        payload = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


# ---------------------------------------------------------------------------
# Set-up through the ORM (this process opens the registry; the servers are others)
# ---------------------------------------------------------------------------


def setup(args, remote_url):
    sys.path.insert(0, os.environ["ODOO_SRC"])
    import odoo  # noqa: PLC0415
    from odoo import SUPERUSER_ID, Command, api  # noqa: PLC0415
    from odoo.tools import config  # noqa: PLC0415

    config.parse_config(["--addons-path", os.environ["BJ_ADDONS_PATH"], "-d", args.db, "--log-level", "warn"])
    registry = odoo.modules.registry.Registry(args.db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        icp = env["ir.config_parameter"]
        icp.set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        icp.set_param("bj_api_sync.worker_crons", "2")
        icp.set_param("bj_api_sync.max_parallel_requests_total", str(args.worker_size))
        icp.set_param("bj_api_sync.job_stale_minutes", "10")
        field = env["ir.model.fields"]._get
        config = env["bj.api.sync.config"].create({
            "name": "kill test", "request_type": "out", "delivery": "queued", "url": remote_url,
            "model_id": env.ref("base.model_res_partner").id,
            "http_method_ids": [Command.set(env.ref("bj_api_sync.http_method_post").ids)],
            "auth_type": "none", "filter_domain": "[('email', '=like', '%@bj-kill.test')]", "limit": 0,
            "max_parallel_requests": 4 * args.worker_size, "max_consecutive_failures": 0, "retry_backoff": 1,
            "line_ids": [
                Command.create({"field_id": field("res.partner", "id").id, "value_type": "plain", "api_key": "id",
                                "is_record_identifier": True}),
                Command.create({"field_id": field("res.partner", "name").id, "value_type": "plain",
                                "api_key": "name"}),
            ],
        })
        Partner = env["res.partner"].with_context(tracking_disable=True)
        partners = Partner.create([{"name": "K%d" % i, "email": "k%d@bj-kill.test" % i} for i in range(args.jobs)])
        chained = Partner.create([{"name": "first", "email": "c%d@bj-kill.test" % i} for i in range(args.chains)])
        config._make_outbound_http_request(chained, config.id)
        config._make_outbound_http_request(partners, config.id)
        chained.write({"name": "second"})
        config._make_outbound_http_request(chained, config.id)
        from odoo.addons.bj_api_sync.services import workers  # noqa: PLC0415

        crons = workers.ensure_worker_crons(env)
        cr.commit()
        jobs = env["bj.api.sync.job"].search([("config_id", "=", config.id)])
        ids = {
            "config": config.id,
            "crons": [cron.id for cron in crons.values() if cron.active],
            "jobs": {job.idempotency_key: job.payload for job in jobs},
            "chains": {str(p.id): [job.idempotency_key for job in jobs.filtered(lambda j, p=p: j.res_ids == str(p.id))
                                   .sorted("id")] for p in chained},
        }
    return registry, ids


def trigger(registry, cron_ids):
    """Make the worker crons due now; the commit notifies the servers' cron threads."""
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        for cron in env["ir.cron"].browse(cron_ids):
            cron._trigger()
        cr.commit()


# ---------------------------------------------------------------------------
# The servers
# ---------------------------------------------------------------------------


def start_server(args, name, port, gevent_port):
    log = os.path.join(args.logdir, "odoo-delivery-%s-%s.log" % (args.db, name))
    open(log, "w").close()
    command = [sys.executable, os.path.join(os.environ["ODOO_SRC"], "odoo-bin"), "-d", args.db,
               "--addons-path", os.environ["BJ_ADDONS_PATH"], "--db-filter", "^%s$" % args.db,
               "--workers", "0", "--max-cron-threads", "1", "--http-interface", "127.0.0.1",
               "--http-port", str(port), "--gevent-port", str(gevent_port), "--log-level", "info",
               "--logfile", log]
    process = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    process.log = log
    process.port = port
    return process


def wait_up(process, timeout=180):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("Odoo exited (%s); see %s" % (process.returncode, process.log))
        try:
            if requests.get("http://127.0.0.1:%d/web/login" % process.port, timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise RuntimeError("Odoo did not answer on port %d; see %s" % (process.port, process.log))


def stop(process, sig=signal.SIGTERM):
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, sig)
    except ProcessLookupError:
        return
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


WORKER_LOCK_KEY = 1651141201  # services.workers.WORKER_LOCK_KEY


def worker_tokens(cur, db):
    """``{server pid: worker token}`` of the workers delivering now (their advisory locks)."""
    cur.execute(
        """SELECT activity.application_name, locks.objid::bigint
             FROM pg_locks locks JOIN pg_stat_activity activity ON activity.pid = locks.pid
            WHERE locks.locktype = 'advisory' AND locks.classid = %s::oid AND locks.objsubid = 2
              AND locks.granted AND activity.datname = %s""",
        [WORKER_LOCK_KEY, db],
    )
    tokens = {}
    for application, token in cur.fetchall():
        if application and application.startswith("odoo-"):
            tokens[int(application[5:])] = token
    return tokens


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--ports", required=True, help="http,gevent,http,gevent: the two servers' ports")
    parser.add_argument("--logdir", required=True)
    parser.add_argument("--jobs", type=int, default=1500)
    parser.add_argument("--chains", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--worker-size", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=240)
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",")]

    remote = Remote(args.latency)
    threading.Thread(target=remote.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    registry, ids = setup(args, remote.url)
    total = len(ids["jobs"])
    print("== delivery: %d jobs (%d chained records with two jobs), remote latency %.0f ms, %d requests per worker"
          % (total, args.chains, args.latency * 1000, args.worker_size), flush=True)
    survivor = victim = None
    figures = {}
    goals = collections.OrderedDict()
    conn = psycopg2.connect(dbname=args.db)
    conn.autocommit = True
    cur = conn.cursor()
    try:
        survivor = start_server(args, "a", ports[0], ports[1])
        victim = start_server(args, "b", ports[2], ports[3])
        wait_up(survivor)
        wait_up(victim)
        started = time.monotonic()
        trigger(registry, ids["crons"])
        killed_at = victim_running = None
        victim_token = None
        deadline = started + args.timeout
        seen_tokens = set()
        while time.monotonic() < deadline:
            tokens = worker_tokens(cur, args.db)
            seen_tokens |= set(tokens.values())
            if killed_at is None and victim.pid in tokens:
                victim_token = tokens[victim.pid]
                cur.execute("SELECT count(*) FROM bj_api_sync_job WHERE state = 'running' AND claimed_by = %s",
                            [victim_token])
                running = cur.fetchone()[0]
                with remote.lock:
                    arrived = len(remote.received)
                if running and arrived >= total // 4:
                    os.killpg(victim.pid, signal.SIGKILL)
                    victim.wait(30)
                    killed_at, victim_running = time.monotonic(), running
                    print("== delivery: server b (pid %d, worker %d) killed with SIGKILL after %.1f s: %d requests "
                          "arrived, %d jobs running on it" % (victim.pid, victim_token, killed_at - started, arrived,
                                                              running), flush=True)
            cur.execute("SELECT state, count(*) FROM bj_api_sync_job WHERE config_id = %s GROUP BY state",
                        [ids["config"]])
            states = dict(cur.fetchall())
            if states.get("done", 0) + states.get("failed", 0) >= total and killed_at is not None:
                break
            if killed_at is None and states.get("done", 0) >= total:
                break  # drained before the victim could be killed: reported below
            time.sleep(0.05)
        finished = time.monotonic()
        cur.execute("SELECT state, count(*) FROM bj_api_sync_job WHERE config_id = %s GROUP BY state", [ids["config"]])
        states = dict(cur.fetchall())
        cur.execute(
            "SELECT count(DISTINCT claimed_by) FROM bj_api_sync_job WHERE config_id = %s AND state = 'done'",
            [ids["config"]],
        )
        delivering = cur.fetchone()[0]
    finally:
        stop(victim, signal.SIGKILL)
        stop(survivor)
        remote.shutdown()
        conn.close()

    with remote.lock:
        received = list(remote.received)
    counts = collections.Counter(key for _at, key, _body in received)
    bodies = collections.defaultdict(set)
    for _at, key, body in received:
        bodies[key].add(body)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    requeue_line = None
    with open(survivor.log, errors="replace") as log:
        for line in log:
            if "were left running by a worker that died" in line:
                requeue_line = line  # the first one after the kill
                break
    figures.update(
        jobs=total, requests=len(received), duplicates=sum(n - 1 for n in duplicates.values()),
        jobs_sent_twice=len(duplicates), states=states, workers_that_delivered=delivering,
        seconds=round(finished - started, 1), jobs_per_second=round(total / max(finished - started, 1e-6), 1),
        killed_after_s=None if killed_at is None else round(killed_at - started, 1),
        running_on_victim_when_killed=victim_running,
    )
    goals["the victim was killed mid-batch (it held running jobs)"] = killed_at is not None and victim_running
    goals["both servers delivered jobs"] = delivering >= 2 and victim_token in seen_tokens
    goals["every job done, none failed"] = states.get("done", 0) == total and not states.get("failed")
    goals["no job lost (every Idempotency-Key received)"] = set(ids["jobs"]) <= set(counts)
    goals["no unknown Idempotency-Key"] = set(counts) <= set(ids["jobs"])
    goals["duplicates only with the same key and body"] = all(
        len(bodies[key]) == 1 and bodies[key] == {ids["jobs"][key].encode()} for key in counts if key in ids["jobs"]
    )
    arrivals = collections.defaultdict(list)
    for at, key, _body in received:
        arrivals[key].append(at)
    goals["two jobs of one record in order, never together"] = all(
        len(keys) == 2 and keys[0] in arrivals and keys[1] in arrivals
        and max(arrivals[keys[0]]) < min(arrivals[keys[1]])
        for keys in ids["chains"].values()
    )
    goals["the victim's jobs were requeued through its lost advisory lock"] = requeue_line is not None
    print("== delivery figures")
    for key, value in figures.items():
        print("%s: %s" % (key, value))
    if requeue_line:
        print("survivor's log:", requeue_line.strip()[:300])
    print("== delivery goals")
    passed = failed = 0
    for name, ok in goals.items():
        if ok:
            passed += 1
            print("ok   %s" % name)
        else:
            failed += 1
            print("FAIL %s" % name)
    print("delivery: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
