#!/usr/bin/env python3
"""bj_api_sync benchmarks against Odoo's own paths, in one run (SPEC §8).

Usage (from the repository root, after ``bash scripts/setup.sh``)::

    source ~/.cache/bj_api_sync/env.sh
    python bench/run.py            # full run (about 20 minutes on 2 cores)
    python bench/run.py --quick    # small N, every scenario, about 2 minutes

What it does, by itself:

1. creates a database (``odoo-bin -i bj_api_sync``, no demo data) and loads the records;
2. starts a local HTTP sink (bench/common.py: separate process, HTTP/1.1 keep-alive, a
   thread per connection, answers 200 at once or after ``--latency-ms``) and Odoo with
   ``--workers 2`` on a free port (no cron thread: nothing drains the outbox behind the
   bench's back);
3. runs the scenarios, each against its baseline *in the same run*, interleaved unit by
   unit (a unit = one request, one batch, one record...) and repeated ``--rounds`` times,
   the order of the contenders alternating, so that load changes on a noisy machine hit
   both alike; rates are medians over the rounds and ratios medians of the per-round
   ratios:

   * inbound batch POST and single POST  vs JSON-RPC ``execute_kw create`` of the same records;
   * inbound GET list (100 per page), GET and PUT by identifier  vs JSON-RPC ``search_read`` /
     ``read`` / ``write``;
   * outbound push per record (one call per record, as an automation rule does; and one
     call for many records) and batched (page 100)  vs Odoo's "Send Webhook Notification"
     server action (``state='webhook'``) on the same records, each also without log rows
     (the cost of logging);
   * queued delivery: ``services.outbox.process_due_jobs(commit=True)`` draining
     ``--outbox-jobs`` jobs  vs immediate delivery of the same records;
   * enqueue overhead: partner writes with a queued automation rule (made by Create
     Trigger)  vs the same writes without the rule;
   * ``push.cron_sync`` over ``--cron-records`` records in a fresh process: wall time,
     peak memory growth, and its rate against the batched push;
   * only with ``--only payloads``: inbound batch POST and outbound per-record push with
     Log Payloads on  vs the same configuration with it off (the cost of the payload logs);
   * delivery against remotes that take their time (bench/delivery.py): the outbox drained
     against a 100 ms remote in 1, 2 and 4 worker threads vs one request at a time, and a
     configuration's jobs next to a hanging remote's vs alone;

4. prints one table (scenario, N, records/s, p50/p95 latency, peak RSS, ratio to the
   baseline) and the SPEC §8 targets with what this run measured; ``--json FILE`` keeps
   every figure, ``--markdown FILE`` the table for the README.

Peak RSS is the high-water mark of the processes doing the work (the HTTP workers for
inbound, the bench process for outbound), reset before each unit through
``/proc/<pid>/clear_refs``. Everything it starts it stops, and the database is dropped
unless ``--keep``.
"""

import argparse
import contextlib
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import delivery  # noqa: E402 - the delivery part: remotes with latency, worker threads
from common import (  # noqa: E402 - bench/common.py: processes, sink, registry, bench records
    ENDPOINT,
    TOKEN,
    JsonRpc,
    Sink,
    create_database,
    drop_database,
    ensure_partners,
    free_port,
    load_env_sh,
    logfile,
    make_config,
    median,
    open_registry,
    percentile,
    python,
    reset_peak_rss,
    rss_kib,
    start_server,
    stop,
    wait_for,
    worker_pids,
)
from common import PARTNER_TAG as TAG  # noqa: E402 - the bench partners' e-mail suffix

PREFIXES = {"push": "p", "outbox": "q", "rule": "w", "cron": "c"}
PARTS = ("inbound", "outbound", "cron", "delivery", "payloads")  # what --only picks from


# --------------------------------------------------------------------------
# Measures
# --------------------------------------------------------------------------


class Peak:
    """Peak RSS (VmHWM, KiB) of some processes, resettable between units."""

    def __init__(self, pids):
        self.pids = pids  # a callable returning the pids to watch

    def reset(self):
        for pid in self.pids():
            reset_peak_rss(pid)

    def read(self):
        return max([rss_kib("VmHWM", pid) for pid in self.pids()], default=0)


class Contender:
    """One path of a scenario: its time and records per round, latency per unit, peak RSS."""

    def __init__(self, key, label, fn, baseline=False):
        self.key, self.label, self.fn, self.baseline = key, label, fn, baseline
        self.seconds, self.counts = [], []
        self.latencies = []
        self.peak_kib = 0

    def rates(self):
        return [c / s for c, s in zip(self.counts, self.seconds) if s > 0]


def duel(contenders, units, rounds, peak, before_round=None, after_round=None):
    """Run every contender on every unit, interleaved, ``rounds`` times.

    ``units(round)`` lists the units of a round; ``contender.fn(unit, round)`` does one
    unit and returns the number of records it handled. The contenders' order alternates
    from unit to unit and from round to round.
    """
    for rnd in range(rounds):
        if before_round:
            before_round(rnd)
        spent = {c.key: 0.0 for c in contenders}
        counts = {c.key: 0 for c in contenders}
        for index, unit in enumerate(units(rnd)):
            order = contenders if (index + rnd) % 2 == 0 else contenders[::-1]
            for contender in order:
                peak.reset()
                started = time.perf_counter()
                count = contender.fn(unit, rnd)
                elapsed = time.perf_counter() - started
                contender.peak_kib = max(contender.peak_kib, peak.read())
                spent[contender.key] += elapsed
                counts[contender.key] += count
                contender.latencies.append(elapsed * 1000)
        for contender in contenders:
            contender.seconds.append(spent[contender.key])
            contender.counts.append(counts[contender.key])
        if after_round:
            after_round(rnd)
    return contenders


def rows_of(scenario, contenders, n, baseline_key, unit_label, ratio_is_cost=False):
    """Table rows of a scenario; ratio = median over rounds of (rate / baseline rate)."""
    base = next(c for c in contenders if c.key == baseline_key)
    rows = []
    for contender in contenders:
        per_round = [r / b for r, b in zip(contender.rates(), base.rates()) if b]
        rows.append(
            {
                "scenario": scenario,
                "key": contender.key,
                "label": contender.label,
                "baseline": contender.key == baseline_key,
                "n": n,
                "rounds": len(contender.seconds),
                "rate": median(contender.rates()),
                "rates": contender.rates(),
                "p50_ms": median(contender.latencies),
                "p95_ms": percentile(contender.latencies, 95),
                "latency_unit": unit_label,
                "peak_rss_mb": contender.peak_kib / 1024 if contender.peak_kib else None,
                "ratio": median(per_round),
                "ratios": per_round,
                "ratio_to": base.label,
            }
        )
    return rows


# --------------------------------------------------------------------------
# Children: fresh processes with a registry
# --------------------------------------------------------------------------


def run_child(args, role, sink_port, out):
    """Run ``role`` (setup, outbound, cron) in a fresh Python process with its own registry."""
    cmd = [python(), "-u", __file__, "--child", role, "--db", args.db, "--sink-port", str(sink_port),
           "--child-out", out]
    for name in ("records", "outbox_jobs", "rule_writes", "cron_records", "rounds", "outbox_rounds",
                 "delivery_jobs", "delivery_rounds"):
        cmd += ["--%s" % name.replace("_", "-"), str(getattr(args, name))]
    subprocess.run(cmd, check=True)
    return json.loads(Path(out).read_text())


# --------------------------------------------------------------------------
# Children (import odoo)
# --------------------------------------------------------------------------


def out_config(env, sink, name, **vals):
    """``common.make_config`` with a Bearer token (the headers every real call carries)."""
    vals = dict({"auth_type": "bearer", "bearer_token": "sink-token"}, **vals)
    return make_config(env, sink, name, **vals)


def child_setup(args, sink):
    """Records, configurations, webhook action and automation rule; returns their ids."""
    from odoo import SUPERUSER_ID, Command, api  # noqa: PLC0415

    _odoo, registry = open_registry(args.db)
    started = time.perf_counter()
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        env["ir.config_parameter"].set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        counts = {
            "push": args.records,
            "outbox": args.outbox_jobs,
            "rule": args.rule_writes,
            "cron": args.cron_records,
        }
        for kind, count in counts.items():
            ensure_partners(env, count, PREFIXES[kind])
            cr.commit()
        field = env["ir.model.fields"]._get
        Config = env["bj.api.sync.config"]
        methods = env["bj.http.method"].search([("name", "in", ["GET", "POST", "PUT"])])

        def in_line(fname, key, **kw):
            return Command.create(dict({"field_id": field("res.partner", fname).id, "value_type": "plain",
                                        "api_key": key}, **kw))

        inbound = Config.create({
            "name": "bench inbound", "request_type": "in", "endpoint": ENDPOINT,
            "model_id": env.ref("base.model_res_partner").id, "http_method_ids": [Command.set(methods.ids)],
            "auth_type": "bearer", "bearer_token": TOKEN, "limit": 1000, "is_paginated": True, "page_size": 100,
            "user_id": env.ref("base.user_admin").id,  # the user JSON-RPC runs as
            "line_ids": [in_line("id", "id", is_record_identifier=True, sequence=1),
                         in_line("name", "name", required=True, sequence=2),
                         in_line("email", "email", sequence=3), in_line("phone", "phone", sequence=4)],
        })
        inbound.copy({"name": "bench inbound tracked", "endpoint": ENDPOINT + "-tracked",
                      "track_batch_history": True, "bearer_token": TOKEN})
        inbound.copy({"name": "bench inbound quiet", "endpoint": ENDPOINT + "-quiet", "log_payloads": False,
                      "bearer_token": TOKEN})
        ids = {"inbound": inbound.id}
        ids["single"] = out_config(env, sink, "bench per-record").id
        ids["single_quiet"] = out_config(env, sink, "bench per-record quiet", log_payloads=False).id
        ids["batched"] = out_config(env, sink, "bench batched", is_paginated=True).id
        ids["immediate"] = out_config(env, sink, "bench immediate").id
        ids["queued"] = out_config(env, sink, "bench queued", delivery="queued").id
        rule_config = out_config(env, sink, "bench rule", delivery="queued", trigger_model="base.automation")
        ids["rule_config"] = rule_config.id
        ids["cron"] = out_config(
            env, sink, "bench cron", is_paginated=True, filter_domain="[('email', '=like', 'c%%%s')]" % TAG
        ).id
        webhook_fields = env["ir.model.fields"].search(
            [("model", "=", "res.partner"), ("name", "in", ["name", "email", "phone", "city"])]
        )
        ids["webhook"] = env["ir.actions.server"].create({
            "name": "bench webhook", "model_id": env.ref("base.model_res_partner").id, "state": "webhook",
            "webhook_url": sink.url("/webhook"), "webhook_field_ids": [Command.set(webhook_fields.ids)],
        }).id
        # The rule exactly as a user gets it from Create Trigger, inactive until its phase.
        rule_config.action_create_trigger()
        automation = env["base.automation"].browse(rule_config.trigger_action_id)
        automation.active = False
        ids["automation"] = automation.id
        # The same rule doing nothing: what Odoo's automation machinery costs by itself.
        noop = automation.copy({"name": "bench no-op rule", "active": False})
        noop.action_server_ids.write({"code": "pass"})
        ids["automation_noop"] = noop.id
        # The same rule on an Immediate configuration: what a save costs when it sends at once.
        rule_now = out_config(env, sink, "bench rule immediate", trigger_model="base.automation")
        rule_now.action_create_trigger()
        immediate_rule = env["base.automation"].browse(rule_now.trigger_action_id)
        immediate_rule.active = False
        ids["automation_immediate"] = immediate_rule.id
        cr.commit()
    ids["setup_seconds"] = time.perf_counter() - started
    return ids


def send(config, partners):
    """One outbound call of ``partners`` through ``config``, committed; returns their number."""
    result = config.env["bj.api.sync.config"]._make_outbound_http_request(partners, config.id)
    config.env.cr.commit()
    if not result.success or result.sent != len(partners):
        raise RuntimeError("%s: %s" % (config.name, dict(result, log_ids="...")))
    return len(partners)


class _NoLogs:
    """Within the block, attempt log rows are dropped instead of written (bench only)."""

    def __enter__(self):
        from odoo.addons.bj_api_sync.services import sender  # noqa: PLC0415

        self.cls = sender.LogBuffer
        self.flush = self.cls.flush
        self.cls.flush = lambda buffer: buffer.pending.clear()

    def __exit__(self, *exc):
        self.cls.flush = self.flush


def child_outbound(args, sink, ids):
    """Outbound push, outbox drain and enqueue overhead; returns table rows."""
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    _odoo, registry = open_registry(args.db)
    from odoo.addons.bj_api_sync.services import outbox, parallel  # noqa: PLC0415

    peak = Peak(lambda: [os.getpid()])
    rows, extra = [], {}
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        Config = env["bj.api.sync.config"]
        configs = {key: Config.browse(ids[key]) for key in ("single", "batched", "immediate", "queued", "rule_config")}
        webhook = env["ir.actions.server"].browse(ids["webhook"])
        push = ensure_partners(env, args.records, PREFIXES["push"])
        records = list(push)

        def send_nolog(config, partners):
            with _NoLogs():
                return send(config, partners)

        def webhook_run(partners):
            for partner in partners:
                webhook.with_context(active_model="res.partner", active_id=partner.id, active_ids=partner.ids).run()
            cr.commit()
            return len(partners)

        # warm-up: connection pools, registry caches, both paths
        send(configs["single"], push[:10])
        send(configs["batched"], push[:100])
        webhook_run(push[:10])

        # 1. per record, one call per record (an automation rule's pattern)
        print("[bench] outbound per record: %d records x %d rounds" % (len(records), args.rounds), flush=True)
        contenders = duel(
            [
                Contender("single", "bj_api_sync per record (1 call/record)", lambda p, r: send(configs["single"], p)),
                Contender("single_nolog", "  same, no log rows", lambda p, r: send_nolog(configs["single"], p)),
                Contender("webhook", "Odoo webhook action (1 run/record)", lambda p, r: webhook_run(p), True),
            ],
            lambda rnd: records,
            args.rounds,
            peak,
        )
        rows += rows_of("outbound push per record", contenders, len(records), "webhook", "per record")

        # 2. pages of 100 records: batched (1 request) and per record (100 requests) in one call
        pages = [push[i:i + 100] for i in range(0, len(push), 100)]
        print("[bench] outbound batched: %d pages of 100 x %d rounds" % (len(pages), args.rounds), flush=True)
        contenders = duel(
            [
                Contender("batched", "bj_api_sync batched (1 request/100)", lambda p, r: send(configs["batched"], p)),
                Contender("batched_nolog", "  same, no log rows", lambda p, r: send_nolog(configs["batched"], p)),
                Contender("bulk", "bj_api_sync per record (1 call/100)", lambda p, r: send(configs["single"], p)),
                Contender("bulk_nolog", "  same, no log rows", lambda p, r: send_nolog(configs["single"], p)),
                Contender("webhook", "Odoo webhook action (1 run/record)", lambda p, r: webhook_run(p), True),
            ],
            lambda rnd: pages,
            args.rounds,
            peak,
        )
        rows += rows_of("outbound push, 100 records per call", contenders, len(push), "webhook", "per 100")

        # 3. outbox: drain of N queued jobs vs immediate delivery of the same records
        queue = ensure_partners(env, args.outbox_jobs, PREFIXES["outbox"])
        print("[bench] outbox: %d jobs x %d rounds" % (len(queue), args.outbox_rounds), flush=True)
        enqueue_seconds = []
        deliver_ms = []
        send_ms = []

        original_run = parallel.Exchange.run

        def timed(samples):
            """``Exchange.run`` (a request's HTTP part, in whatever thread) timed into ``samples``."""

            def run(exchange):
                started = time.perf_counter()
                try:
                    return original_run(exchange)
                finally:
                    samples.append((time.perf_counter() - started) * 1000)

            return run

        def enqueue(_rnd):
            started = time.perf_counter()
            result = Config._make_outbound_http_request(queue, configs["queued"].id)
            cr.commit()
            enqueue_seconds.append(time.perf_counter() - started)
            if len(result.job_ids) != len(queue):
                raise RuntimeError("enqueue: %s jobs for %s records" % (len(result.job_ids), len(queue)))

        def drain(_unit, _rnd):
            parallel.Exchange.run = timed(deliver_ms)
            try:
                done = outbox.process_due_jobs(env, time_budget=3600, commit=True)
            finally:
                parallel.Exchange.run = original_run
            if done != len(queue):
                raise RuntimeError("drain: %s jobs delivered out of %s" % (done, len(queue)))
            return done

        def immediate(_unit, _rnd):
            parallel.Exchange.run = timed(send_ms)
            try:
                return send(configs["immediate"], queue)
            finally:
                parallel.Exchange.run = original_run

        contenders = duel(
            [
                Contender("drain", "outbox drain (process_due_jobs, commit)", drain),
                Contender("immediate", "immediate delivery, same records", immediate, True),
            ],
            lambda rnd: [None],
            args.outbox_rounds,
            peak,
            before_round=enqueue,
        )
        # latency: one job / one request, not the whole drain
        contenders[0].latencies, contenders[1].latencies = deliver_ms, send_ms
        rows += rows_of("queued delivery (outbox)", contenders, len(queue), "immediate", "per job/request")
        extra["enqueue_rate"] = median([len(queue) / s for s in enqueue_seconds])

        # 4. enqueue overhead: partner writes with the queued automation rule vs none
        writes = ensure_partners(env, args.rule_writes, PREFIXES["rule"])
        automation = env["base.automation"].browse(ids["automation"])
        Job = env["bj.api.sync.job"]
        print("[bench] enqueue overhead: %d writes x %d rounds" % (len(writes), args.rounds), flush=True)

        def write(partner, rnd, tag):
            # a new value every time: an unchanged field fires no rule (and queues no job)
            partner.write({"phone": "+1 %s %s %s" % (tag, rnd, partner.id)})
            env.flush_all()
            cr.commit()
            return 1

        noop = env["base.automation"].browse(ids["automation_noop"])
        immediate_rule = env["base.automation"].browse(ids["automation_immediate"])

        def phase(active):
            for rule_record in (automation, noop, immediate_rule):
                rule_record.active = active is rule_record
            cr.commit()

        # Toggling a rule re-registers hooks: phases, not per-unit interleaving. Each round's
        # writes go in chunks of at most 100, every phase taking each chunk in turn (the order
        # turns from chunk to chunk): a contender's rates are per chunk, and each ratio pairs
        # chunks written minutes apart at most, not whole phases (whose rates drifted with the
        # machine: 4-22 % per round for the same code).
        rule = Contender("rule", "partner write + queued automation rule", None)
        idle = Contender("noop", "partner write + the same rule doing nothing", None)
        now = Contender("rule_now", "partner write + the rule on an Immediate config", None)
        plain = Contender("plain", "partner write, no rule", None, True)
        phases = [(rule, automation), (idle, noop), (now, immediate_rule), (plain, None)]
        jobs_before = Job.search_count([("config_id", "=", configs["rule_config"].id)])
        chunk = max(1, min(100, len(writes)))
        turn = 0
        for rnd in range(args.rounds):
            for start in range(0, len(writes), chunk):
                part = list(writes[start:start + chunk])
                for contender, active in phases[turn % len(phases):] + phases[:turn % len(phases)]:
                    phase(active)
                    contender.fn = lambda p, _r, tag=contender.key, rnd=rnd: write(p, rnd, tag)
                    duel([contender], lambda _r, part=part: part, 1, peak)  # one more chunk of this contender
                turn += 1
        phase(None)
        jobs = Job.search_count([("config_id", "=", configs["rule_config"].id)]) - jobs_before
        if jobs != len(writes) * args.rounds:
            raise RuntimeError("the automation rule queued %s jobs for %s writes" % (jobs, len(writes) * args.rounds))
        # leave no pending job behind for a later drain
        cr.execute("UPDATE bj_api_sync_job SET state = 'cancelled' WHERE state = 'pending'")
        cr.commit()
        rows += rows_of("enqueue overhead on a partner write", [rule, idle, now, plain], len(writes), "plain",
                        "per write")
        extra["log_rows"] = env["bj.api.log"].search_count([])
    return {"rows": rows, "extra": extra}


def child_payloads(args, sink, ids):
    """The cost of Log Payloads on the outbound per-record push (one call per record)."""
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    _odoo, registry = open_registry(args.db)
    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        logged, quiet = env["bj.api.sync.config"].browse([ids["single"], ids["single_quiet"]])
        push = ensure_partners(env, args.records, PREFIXES["push"])
        records = list(push)
        for config in (logged, quiet):  # warm-up
            send(config, push[:10])
        print("[bench] payload logging, outbound per record: %d records x %d rounds" % (len(records), args.rounds),
              flush=True)
        contenders = duel(
            [Contender("push_payloads", "bj_api_sync per record, Log Payloads on", lambda p, r: send(logged, p)),
             Contender("push_nopayloads", "bj_api_sync per record, Log Payloads off", lambda p, r: send(quiet, p),
                       True)],
            lambda rnd: records,
            args.rounds,
            Peak(lambda: [os.getpid()]),
        )
    return {"rows": rows_of("payload logging, outbound push per record", contenders, len(records),
                            "push_nopayloads", "per record")}


def child_cron(args, sink, ids):
    """``cron_sync`` over the cron partners in this fresh process: time and peak RSS growth."""
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415

    _odoo, registry = open_registry(args.db)
    from odoo.addons.bj_api_sync.services import push  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        config = env["bj.api.sync.config"].browse(ids["cron"]).with_context(bj_api_sync_commit=True)
        env["bj.api.sync.binding"].search([("config_id", "=", config.id)]).unlink()
        cr.commit()
        env.invalidate_all()
        before = rss_kib()
        resettable = reset_peak_rss()
        print("[bench] cron_sync over %d records" % args.cron_records, flush=True)
        started = time.perf_counter()
        first = push.cron_sync(config)
        seconds = time.perf_counter() - started
        peak = rss_kib("VmHWM")
        cr.commit()
        env.invalidate_all()
        started = time.perf_counter()
        second = push.cron_sync(config)
        seconds_skip = time.perf_counter() - started
        if first.sent != args.cron_records or second.skipped != args.cron_records:
            raise RuntimeError("cron_sync: first run %s, second %s" % (dict(first, log_ids="..."),
                                                                     dict(second, log_ids="...")))
    return {
        "seconds": seconds,
        "rate": args.cron_records / seconds,
        "seconds_unchanged": seconds_skip,
        "rate_unchanged": args.cron_records / seconds_skip,
        "rss_before_mb": before / 1024,
        "peak_mb": peak / 1024,
        "growth_mb": (peak - before) / 1024,
        "peak_reset": resettable,
    }


def child_delivery(args, _sink, _ids):
    """The delivery part (bench/delivery.py) in this fresh process."""
    _odoo, registry = open_registry(args.db)
    helpers = {"Contender": Contender, "rows_of": rows_of, "Peak": Peak,
               "bench_partners": lambda env, prefix, count: ensure_partners(env, count, prefix),
               "out_config": out_config}
    return delivery.child(args, registry, helpers)


# --------------------------------------------------------------------------
# Inbound (over HTTP, against the server's two workers)
# --------------------------------------------------------------------------


def items(count, tag):
    return [
        {"name": "Bench %s %05d" % (tag, i), "email": "bench.%s.%05d@example.com" % (tag.replace(" ", "."), i),
         "phone": "+3280%05d" % i}
        for i in range(count)
    ]


def api_session():
    """A client of the bench endpoint (its bearer token, JSON bodies)."""
    import requests  # noqa: PLC0415

    session = requests.Session()
    session.headers.update({"Authorization": "Bearer %s" % TOKEN, "Content-Type": "application/json"})
    return session


def check(response, status, what):
    if response.status_code != status:
        raise RuntimeError("%s: %s %s" % (what, response.status_code, response.text[:500]))
    return response


def post(session, target, data):
    """POST ``data`` (an object or an array) to ``target``; returns the number of records created."""
    body = check(session.post(target, data=json.dumps(data), timeout=600), 201, "POST").json()
    return len(body) if isinstance(body, list) else 1


def bench_in(args, base, rpc, peak):
    import requests  # noqa: PLC0415

    api = api_session()
    url = "%s/bj_api_sync/v1/%s" % (base, ENDPOINT)

    def api_post(data, target=url):
        return post(api, target, data)

    def rpc_create(data):
        created = rpc.execute("res.partner", "create", data if isinstance(data, list) else [data])
        return len(created)

    # warm-up: registries, caches, both workers
    for i in range(6):
        api_post(items(10, "warm %d" % i))
        rpc_create(items(10, "warmrpc %d" % i))
        check(api.get(url, params={"limit": 10}, timeout=60), 200, "GET")
        rpc.execute("res.partner", "search_read", [], fields=["name", "email", "phone"], limit=10)
    rows = []

    batch = args.batch
    batches = max(1, args.records // batch)
    print("[bench] inbound batch POST: %d x %d records x %d rounds" % (batches, batch, args.rounds), flush=True)
    contenders = duel(
        [
            Contender("post", "bj_api_sync batch POST", lambda i, r: api_post(items(batch, "api %d %d" % (r, i)))),
            Contender("post_tracked", "  same, Track History of Batches",
                      lambda i, r: api_post(items(batch, "apit %d %d" % (r, i)), url + "-tracked")),
            Contender("rpc", "JSON-RPC create (same batches)",
                      lambda i, r: rpc_create(items(batch, "rpc %d %d" % (r, i))), True),
        ],
        lambda rnd: range(batches),
        args.rounds,
        peak,
    )
    rows += rows_of("inbound batch POST (%d/request)" % batch, contenders, batches * batch, "rpc", "per request")

    # The server has two workers: two clients posting at once, each its own batch.
    sessions = []
    for _ in range(2):
        session = requests.Session()
        session.headers.update(api.headers)
        sessions.append((session, JsonRpc(base, args.db)))

    def both(post):
        counts, errors = [0, 0], []

        def run(index):
            try:
                counts[index] = post(index, *sessions[index])
            except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
                errors.append(exc)

        threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        return sum(counts)

    def api_post2(i, r):
        return both(lambda k, session, _rpc: len(check(
            session.post(url, data=json.dumps(items(batch, "api2 %d %d %d" % (r, i, k))), timeout=600), 201, "POST"
        ).json()))

    def rpc_create2(i, r):
        return both(lambda k, _session, client: len(
            client.execute("res.partner", "create", items(batch, "rpc2 %d %d %d" % (r, i, k)))))

    pairs = max(1, batches // 2)
    print("[bench] inbound batch POST, 2 clients: %d x 2 x %d records x %d rounds" % (pairs, batch, args.rounds),
          flush=True)
    contenders = duel(
        [Contender("post2", "bj_api_sync batch POST, 2 clients", api_post2),
         Contender("rpc2", "JSON-RPC create, 2 clients", rpc_create2, True)],
        lambda rnd: range(pairs),
        args.rounds,
        peak,
    )
    rows += rows_of("inbound batch POST (%d/request, 2 clients at once)" % batch, contenders, pairs * 2 * batch,
                    "rpc2", "per 2 requests")

    singles = args.singles
    print("[bench] inbound single POST: %d records x %d rounds" % (singles, args.rounds), flush=True)
    contenders = duel(
        [
            Contender("post1", "bj_api_sync POST one object",
                      lambda i, r: api_post(items(1, "one %d %d" % (r, i))[0])),
            Contender("rpc1", "JSON-RPC create one record",
                      lambda i, r: rpc_create(items(1, "rpcone %d %d" % (r, i))[0]), True),
        ],
        lambda rnd: range(singles),
        args.rounds,
        peak,
    )
    rows += rows_of("inbound single POST", contenders, singles, "rpc1", "per request")

    total = rpc.execute("res.partner", "search_count", [])
    pages = max(1, min(args.records, total) // 100)
    print("[bench] inbound GET list: %d pages of 100 x %d rounds" % (pages, args.rounds), flush=True)

    def api_list(page, _rnd):
        response = check(api.get(url, params={"limit": 100, "offset": page * 100}, timeout=60), 200, "GET list")
        return len(response.json())

    def rpc_list(page, _rnd):
        return len(rpc.execute("res.partner", "search_read", [], fields=["name", "email", "phone"],
                               offset=page * 100, limit=100, order="id"))

    def api_walk(page, _rnd):
        # the same number of pages, none of them the first: what a client walking a long list
        # pays per page once the first page (which counts every matching row) is behind it
        return api_list(page + 1, _rnd)

    contenders = duel(
        [Contender("list", "bj_api_sync GET ?limit=100", api_list),
         Contender("list_walk", "  same, pages after the first (no X-Total-Count count)", api_walk),
         Contender("search_read", "JSON-RPC search_read limit 100", rpc_list, True)],
        lambda rnd: range(pages),
        args.rounds,
        peak,
    )
    rows += rows_of("inbound GET list (100/page)", contenders, pages * 100, "search_read", "per page")

    ids = rpc.execute("res.partner", "search", [("email", "=like", "bench.api.%")])
    rng = random.Random(42)
    print("[bench] inbound GET by id: %d requests x %d rounds" % (args.gets, args.rounds), flush=True)

    def api_get(record_id, _rnd):
        body = check(api.get("%s/%s" % (url, record_id), timeout=60), 200, "GET one").json()
        if body["id"] != record_id:
            raise RuntimeError("GET %s answered %s" % (record_id, body))
        return 1

    def rpc_read(record_id, _rnd):
        return len(rpc.execute("res.partner", "read", [record_id], fields=["name", "email", "phone"]))

    contenders = duel(
        [Contender("get", "bj_api_sync GET /<id>", api_get),
         Contender("read", "JSON-RPC read one record", rpc_read, True)],
        lambda rnd: [rng.choice(ids) for _ in range(args.gets)],
        args.rounds,
        peak,
    )
    rows += rows_of("inbound GET by identifier", contenders, args.gets, "read", "per request")

    print("[bench] inbound PUT by identifier: %d requests x %d rounds" % (args.gets, args.rounds), flush=True)
    counter = iter(range(10**9))

    def changes():
        # a new value every time: a write that changes nothing is skipped by bj_api_sync
        number = next(counter)
        return {"name": "Bench put %d" % number, "phone": "+3290%06d" % number}

    def api_put(record_id, _rnd):
        body = check(api.put("%s/%s" % (url, record_id), data=json.dumps(changes()), timeout=60), 200, "PUT").json()
        if body["id"] != record_id:
            raise RuntimeError("PUT %s answered %s" % (record_id, body))
        return 1

    def rpc_write(record_id, _rnd):
        rpc.execute("res.partner", "write", [record_id], changes())
        return 1

    contenders = duel(
        [Contender("put", "bj_api_sync PUT /<id>", api_put),
         Contender("write", "JSON-RPC write one record", rpc_write, True)],
        lambda rnd: [rng.choice(ids) for _ in range(args.gets)],
        args.rounds,
        peak,
    )
    rows += rows_of("inbound PUT by identifier", contenders, args.gets, "write", "per request")
    return rows


def bench_payloads_in(args, base, peak):
    """The cost of Log Payloads on the inbound batch POST: the bench endpoint and its copy with
    Log Payloads off, batch by batch."""
    api = api_session()
    url = "%s/bj_api_sync/v1/%s" % (base, ENDPOINT)
    for i in range(4):  # warm-up: both configurations on both workers
        post(api, url, items(10, "warmpay %d" % i))
        post(api, url + "-quiet", items(10, "warmpayq %d" % i))
    batch = args.batch
    batches = max(1, args.records // batch)
    print("[bench] payload logging, inbound batch POST: %d x %d records x %d rounds" % (batches, batch, args.rounds),
          flush=True)
    contenders = duel(
        [Contender("post_payloads", "bj_api_sync batch POST, Log Payloads on",
                   lambda i, r: post(api, url, items(batch, "payon %d %d" % (r, i)))),
         Contender("post_nopayloads", "bj_api_sync batch POST, Log Payloads off",
                   lambda i, r: post(api, url + "-quiet", items(batch, "payoff %d %d" % (r, i))), True)],
        lambda rnd: range(batches),
        args.rounds,
        peak,
    )
    return rows_of("payload logging, inbound batch POST (%d/request)" % batch, contenders, batches * batch,
                   "post_nopayloads", "per request")


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def fmt(value, pattern="%.0f"):
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern % value


def cost(rows, key, nolog_key):
    """1 - rate(key) / rate(nolog_key), from the per-round ratios against the same baseline."""
    by_key = {row["key"]: row for row in rows}
    ours, free = by_key[key], by_key[nolog_key]
    per_round = [1 - a / b for a, b in zip(ours["rates"], free["rates"]) if b]
    return median(per_round)


def targets(result):
    by_key = {}
    for row in result["rows"]:
        by_key.setdefault(row["key"], row)
    checks = []

    def check(label, measured, holds, shown):
        checks.append({"target": label, "measured": measured, "holds": bool(holds), "shown": shown})

    for key, what in (("post", "1 client"), ("post2", "2 clients")):
        post = by_key.get(key)
        if post:
            check("inbound batch POST >= 1,000 records/s (%s)" % what, post["rate"], post["rate"] >= 1000,
                  fmt(post["rate"]) + " rec/s")
            check("inbound batch POST >= JSON-RPC create (%s)" % what, post["ratio"], post["ratio"] >= 1.0,
                  "ratio %s" % fmt(post["ratio"], "%.2f"))
    tracked = by_key.get("post_tracked")
    if tracked:
        check("inbound batch POST, history tracked, >= JSON-RPC create (1 client)", tracked["ratio"],
              tracked["ratio"] >= 1.0, "%s rec/s, ratio %s" % (fmt(tracked["rate"]), fmt(tracked["ratio"], "%.2f")))
    get = by_key.get("get")
    if get:
        check("inbound GET by identifier p50 <= 20 ms", get["p50_ms"], get["p50_ms"] <= 20,
              fmt(get["p50_ms"], "%.1f") + " ms")
    batched = by_key.get("batched")
    if batched:
        check("outbound batched push >= 2,000 records/s", batched["rate"], batched["rate"] >= 2000,
              fmt(batched["rate"]) + " rec/s")
    for key, what in (("single", "1 call/record"), ("bulk", "1 call/100 records")):
        row = by_key.get(key)
        if row:
            check("outbound per-record push >= 300 requests/s (%s)" % what, row["rate"], row["rate"] >= 300,
                  fmt(row["rate"]) + " req/s")
    cron = result.get("cron")
    if cron:
        check("%s records synced, peak memory growth < 200 MB" % format(result["args"]["cron_records"], ","),
              cron["growth_mb"], cron["growth_mb"] < 200, "%.0f MB" % cron["growth_mb"])
    flat = result["rows"]
    for key, nolog, what in (("single", "single_nolog", "per record, 1 call/record"),
                             ("bulk", "bulk_nolog", "per record, 1 call/100"),
                             ("batched", "batched_nolog", "batched")):
        if key in by_key and nolog in by_key:
            share = cost([r for r in flat if r["scenario"] == by_key[key]["scenario"]], key, nolog)
            check("logging costs <= 15%% of throughput (%s)" % what, share, share <= 0.15, "%.1f %%" % (share * 100))
    drain = by_key.get("drain")
    if drain:
        share = 1 - drain["ratio"]
        check("outbox costs <= 15% of throughput (drain vs immediate)", share, share <= 0.15,
              "%.1f %%" % (share * 100))
    rule = by_key.get("rule")
    if rule:
        share = 1 - rule["ratio"]
        check("enqueue on a partner write costs <= 15% of its throughput", share, share <= 0.15,
              "%.1f %%" % (share * 100))
        if "noop" in by_key:
            share = cost([r for r in flat if r["scenario"] == rule["scenario"]], "rule", "noop")
            check("enqueue costs <= 15% over an automation rule doing nothing", share, share <= 0.15,
                  "%.1f %%" % (share * 100))
    delivery.targets(by_key, result.get("extra", {}), check)
    checks += _issue16_goals(by_key, flat)
    return checks


def _issue16_goals(by_key, rows):
    """Issue 16: every inbound operation at least as fast as its JSON-RPC counterpart, the batch POST
    1.5x, the per-record push with its log rows at least as fast as the webhook action, logging at
    most 10%."""
    checks = []
    goals = [("list", "inbound GET list >= JSON-RPC search_read", 1.0),
             ("list_walk", "inbound GET list, pages after the first >= JSON-RPC search_read", 1.0),
             ("get", "inbound GET by identifier >= JSON-RPC read", 1.0),
             ("post1", "inbound single POST >= JSON-RPC create", 1.0),
             ("put", "inbound PUT >= JSON-RPC write", 1.0),
             ("post", "inbound batch POST >= 1.5x JSON-RPC create", 1.5),
             ("single", "per-record push with log rows >= the webhook action", 1.0),
             ("drain", "outbox drain >= 0.9 of immediate delivery", 0.9)]
    for key, label, goal in goals:
        row = by_key.get(key)
        if row:
            checks.append({"target": label, "measured": row["ratio"], "holds": row["ratio"] >= goal,
                           "shown": "ratio %s" % fmt(row["ratio"], "%.2f")})
    for key, nolog, what in (("single", "single_nolog", "per record, 1 call/record"),
                             ("bulk", "bulk_nolog", "per record, 1 call/100"),
                             ("batched", "batched_nolog", "batched")):
        if key in by_key and nolog in by_key:
            share = cost([r for r in rows if r["scenario"] == by_key[key]["scenario"]], key, nolog)
            checks.append({"target": "logging costs <= 10%% of throughput (%s)" % what, "measured": share,
                           "holds": share <= 0.10, "shown": "%.1f %%" % (share * 100)})
    return checks


def table_lines(result, markdown=False):
    header = ["scenario", "N", "records/s", "p50 ms", "p95 ms", "latency of", "peak RSS MB", "ratio to baseline"]
    lines = []
    body = []
    scenario = None
    for row in result["rows"]:
        if row["scenario"] != scenario:
            scenario = row["scenario"]
            body.append(["**%s**" % scenario if markdown else scenario, "", "", "", "", "", "", ""])
        label = row["label"] + (" (baseline)" if row["baseline"] else "")
        body.append([
            label if markdown else "  " + label, format(row["n"], ","), fmt(row["rate"]), fmt(row["p50_ms"], "%.1f"),
            fmt(row["p95_ms"], "%.1f"), row["latency_unit"], fmt(row["peak_rss_mb"]), fmt(row["ratio"], "%.2f"),
        ])
    cron = result.get("cron")
    if cron:
        n = result["args"]["cron_records"]
        batched = next((r for r in result["rows"] if r["key"] == "batched"), None)
        ratio = cron["rate"] / batched["rate"] if batched and batched["rate"] else None
        body.append(["**scheduled sync (cron_sync)**" if markdown else "scheduled sync (cron_sync)"] + [""] * 7)
        label = "first run, all sent: %.1f s, peak RSS growth %.0f MB" % (cron["seconds"], cron["growth_mb"])
        body.append([label if markdown else "  " + label, format(n, ","), fmt(cron["rate"]), "-", "-", "",
                     fmt(cron["peak_mb"]), fmt(ratio, "%.2f")])
        label = "second run, all unchanged (skipped): %.1f s" % cron["seconds_unchanged"]
        body.append([label if markdown else "  " + label, format(n, ","), fmt(cron["rate_unchanged"]), "-", "-", "",
                     "-", "-"])
    if markdown:
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join(["---"] + ["---:"] * 4 + ["---"] + ["---:"] * 2) + "|")
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return lines
    widths = [max(len(str(cells[i])) for cells in [header] + body) for i in range(len(header))]
    pattern = "  ".join("%%-%ds" % w if i in (0, 5) else "%%%ds" % w for i, w in enumerate(widths))
    lines.append(pattern % tuple(header))
    lines.append("-" * len(lines[0]))
    lines += [pattern % tuple(cells) for cells in body]
    return lines


def report(result, markdown_path=None):
    print()
    print("bj_api_sync benchmark: %s" % result["machine"])
    print("rates = median of %d rounds (outbox: %d); ratio = median over rounds of rate / baseline rate "
          "(> 1: faster than the baseline)" % (result["args"]["rounds"], result["args"]["outbox_rounds"]))
    print()
    for line in table_lines(result):
        print(line)
    print()
    extra = result.get("extra", {})
    if extra.get("enqueue_rate"):
        print("enqueue of the outbox jobs: %.0f jobs/s (median)" % extra["enqueue_rate"])
    print()
    print("SPEC §8 targets")
    for item in result["checks"]:
        print("  [%s] %-66s %s" % ("ok" if item["holds"] else "NO", item["target"], item["shown"]))
    if markdown_path:
        lines = table_lines(result, markdown=True)
        lines += ["", "| SPEC §8 target | measured | holds |", "|---|---:|---|"]
        lines += ["| %s | %s | %s |" % (c["target"], c["shown"], "yes" if c["holds"] else "**no**")
                  for c in result["checks"]]
        Path(markdown_path).write_text("\n".join(lines) + "\n")


def machine():
    cores = os.cpu_count()
    mem = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = "%.1f GiB RAM" % (int(line.split()[1]) / 1024 / 1024)
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return "%s cores (nproc), %s, %s" % (cores, mem, model or "unknown CPU")


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small N, 2 rounds: checks that everything runs")
    parser.add_argument("--records", type=int, help="records per round for inbound POST/GET list and outbound push")
    parser.add_argument("--batch", type=int, help="records per inbound batch POST (default 500)")
    parser.add_argument("--singles", type=int, help="single POSTs per round (default 300)")
    parser.add_argument("--gets", type=int, help="GET by identifier per round (default 300)")
    parser.add_argument("--outbox-jobs", type=int, help="queued jobs drained per round (default 10,000)")
    parser.add_argument("--outbox-rounds", type=int, help="rounds of the outbox scenario (default 2)")
    parser.add_argument("--rule-writes", type=int, help="partner writes per round and phase (default 500)")
    parser.add_argument("--cron-records", type=int, help="records of the scheduled sync (default 100,000)")
    parser.add_argument("--rounds", type=int, help="rounds of every other scenario (default 3)")
    parser.add_argument("--delivery-jobs", type=int, help="queued jobs drained against a 100 ms remote (default 2,000)")
    parser.add_argument("--delivery-rounds", type=int, help="rounds of the delivery scenarios (default 2)")
    parser.add_argument("--only", default="inbound,outbound,cron,delivery",
                        help="comma-separated parts to run: inbound, outbound, cron, delivery (the default), payloads "
                             "(the cost of Log Payloads, inbound batch POST and outbound per record)")
    parser.add_argument("--latency-ms", type=float, default=0,
                        help="the sink delays every answer by this much (a remote that far away; default 0)")
    parser.add_argument("--db", default="bj_bench_%s" % uuid.uuid4().hex[:8])
    parser.add_argument("--keep", action="store_true", help="keep the database")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--markdown", help="write the table as Markdown to this file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    parser.add_argument("--sink-port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    full = {"records": 2000, "batch": 500, "singles": 300, "gets": 300, "outbox_jobs": 10000, "outbox_rounds": 2,
            "rule_writes": 500, "cron_records": 100000, "rounds": 3, "delivery_jobs": 2000, "delivery_rounds": 2}
    quick = {"records": 200, "batch": 50, "singles": 30, "gets": 30, "outbox_jobs": 200, "outbox_rounds": 2,
             "rule_writes": 30, "cron_records": 1000, "rounds": 2, "delivery_jobs": 200, "delivery_rounds": 2}
    for name, default in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, default)
    args.records = max(args.records, 100)
    return args


def main(argv=None):
    args = parse_args(argv)
    load_env_sh()
    if args.child:
        sink = Sink(args.sink_port)
        ids = json.loads(Path(args.child_out).read_text()) if args.child != "setup" else None
        out = {"setup": lambda: child_setup(args, sink), "outbound": lambda: child_outbound(args, sink, ids),
               "payloads": lambda: child_payloads(args, sink, ids), "cron": lambda: child_cron(args, sink, ids),
               "delivery": lambda: child_delivery(args, sink, ids)}[args.child]()
        Path(args.child_out).write_text(json.dumps(out))
        return 0
    parts = set(args.only.split(","))
    if parts - set(PARTS):
        sys.exit("--only: unknown part(s) %s (parts: %s)" % (", ".join(sorted(parts - set(PARTS))), ", ".join(PARTS)))
    log = logfile("bench-%s.log" % args.db)
    started = time.perf_counter()
    result = {"machine": machine(), "args": vars(args), "rows": [], "extra": {}}
    sink = server = None
    workdir = tempfile.mkdtemp(prefix="bj_bench_")
    try:
        print("[bench] database %s (log %s)" % (args.db, log), flush=True)
        create_database(args.db, log)
        sink = Sink(latency_ms=args.latency_ms)
        ids_file = os.path.join(workdir, "ids.json")
        print("[bench] loading records and configurations ...", flush=True)
        ids = run_child(args, "setup", sink.port, ids_file)
        result["extra"]["setup_seconds"] = ids["setup_seconds"]
        Path(ids_file).write_text(json.dumps(ids))
        if parts & {"inbound", "payloads"}:
            port = free_port()
            base = "http://127.0.0.1:%d" % port
            server = start_server(args.db, port, log)
            wait_for(base + "/web/login", timeout=180)
            peak = Peak(lambda: worker_pids(server.pid))
            if "inbound" in parts:
                result["rows"] += bench_in(args, base, JsonRpc(base, args.db), peak)
            if "payloads" in parts:
                result["rows"] += bench_payloads_in(args, base, peak)
            stop(server)
            server = None
        if "outbound" in parts:
            out = run_child(args, "outbound", sink.port, ids_file)
            result["rows"] += out["rows"]
            result["extra"].update(out["extra"])
            Path(ids_file).write_text(json.dumps(ids))
        if "payloads" in parts:
            result["rows"] += run_child(args, "payloads", sink.port, ids_file)["rows"]
            Path(ids_file).write_text(json.dumps(ids))
        if "cron" in parts:
            result["cron"] = run_child(args, "cron", sink.port, ids_file)
        if "delivery" in parts:
            out = run_child(args, "delivery", sink.port, ids_file)
            result["rows"] += out["rows"]
            result["extra"].update(out["extra"])
    finally:
        stop(server)
        if sink is not None:
            sink.stop()
        if not args.keep:
            drop_database(args.db)
    result["seconds"] = time.perf_counter() - started
    result["checks"] = targets(result)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=str))
    report(result, args.markdown)
    print("\n[bench] done in %.0f s" % result["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
