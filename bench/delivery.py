#!/usr/bin/env python3
"""Delivery against remotes that take their time (issue 14): the ``delivery`` part of bench/run.py.

``python bench/run.py --only delivery`` (or any ``--only`` list with ``delivery``) runs, in a
fresh process with its own registry, against local remotes in their own processes that
answer after a delay (``common.Sink`` with a latency):

* **outbox drain against a 100 ms remote**: ``--delivery-jobs`` queued jobs of one
  configuration (Max Parallel Requests 64, so that the workers are the bound) drained by
  ``process_due_jobs(commit=True)`` in 1, 2 and 4 worker threads at once (each with its own
  cursor, as cron threads have), against the same drain with one request at a time
  (``bj_api_sync.max_parallel_requests_total`` = 1: what the worker did before, the baseline);
* **fast config next to a hanging one**: a configuration's 20 jobs to the 100 ms remote,
  queued after 20 jobs of another configuration whose remote answers in 5 s, drained by one
  worker; against the same 20 jobs drained alone (baseline). Its rate is 20 jobs over the
  time until the last of them was sent; p50/p95 are the delays of those jobs from the start
  of the drain.

Rates are medians over ``--delivery-rounds`` rounds and ratios medians of the per-round
ratios, as for the other scenarios; latency is per request (its HTTP time, in whatever
thread). The SPEC-style targets of the issue are checked in ``targets``.
"""

import os
import sys
import threading
import time
from pathlib import Path

from common import Sink

HERE = Path(__file__).resolve().parent
PREFIX = "d"  # the bench partners of this part: d<N>@bj-bench.test
LATENCY = 0.1  # a typical SaaS API
HANG = 5.0  # a remote that hangs: 5 s per answer
THREADS = (1, 2, 4)
FAST_JOBS = 20


# --------------------------------------------------------------------------
# The scenarios (in the bench's child process: odoo imported, registry open)
# --------------------------------------------------------------------------


def child(args, registry, helpers):
    """Both scenarios; returns ``{"rows": [...], "extra": {...}}``.

    ``helpers``: bench/run.py's ``Contender``, ``rows_of``, ``Peak``, ``bench_partners``,
    ``out_config`` (one definition of the table's rows and of the bench records).
    """
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.addons.bj_api_sync.services import outbox, parallel  # noqa: PLC0415

    Contender, rows_of, Peak = helpers["Contender"], helpers["rows_of"], helpers["Peak"]
    peak = Peak(lambda: [os.getpid()])
    remote, hanging = Sink(latency_ms=LATENCY * 1000), Sink(latency_ms=HANG * 1000)
    rows, extra = [], {}
    samples = {}  # contender key -> HTTP ms of its requests
    original_run = parallel.Exchange.run
    timing = {"key": None}

    def timed_run(exchange):
        started = time.perf_counter()
        try:
            return original_run(exchange)
        finally:
            if timing["key"]:
                samples.setdefault(timing["key"], []).append((time.perf_counter() - started) * 1000)

    parallel.Exchange.run = timed_run
    try:
        with registry.cursor() as cr:
            env = api.Environment(cr, SUPERUSER_ID, {})
            icp = env["ir.config_parameter"]
            total_before = icp.get_param(parallel.TOTAL_PARAM)
            partners = helpers["bench_partners"](env, PREFIX, args.delivery_jobs)
            drain_config = helpers["out_config"](env, remote, "bench delivery drain", delivery="queued",
                                                 max_parallel_requests=64, limit=0)
            fast = helpers["out_config"](env, remote, "bench delivery fast", delivery="queued", limit=0)
            slow = helpers["out_config"](env, hanging, "bench delivery hanging", delivery="queued", limit=0,
                                         read_timeout=30, max_retries=0)
            cr.commit()

            def enqueue(config, records):
                result = config._make_outbound_http_request(records, config.id)
                cr.commit()
                return result.job_ids

            def drain(threads, total=None):
                """Drain every due job with ``threads`` workers at once; returns (jobs, seconds)."""
                icp.set_param(parallel.TOTAL_PARAM, str(total or parallel.DEFAULT_TOTAL))
                cr.commit()
                done, errors = [0] * threads, []

                def work(index, worker_env):
                    try:
                        with worker_env.cr:
                            while True:
                                count = outbox.process_due_jobs(worker_env, time_budget=3600, commit=True)
                                done[index] += count
                                if not count:
                                    break
                    except Exception as exc:  # noqa: BLE001 - re-raised below
                        errors.append(exc)

                envs = [api.Environment(registry.cursor(), SUPERUSER_ID, {}) for _i in range(threads)]
                workers = [threading.Thread(target=work, args=(i, e)) for i, e in enumerate(envs)]
                started = time.perf_counter()
                for worker in workers:
                    worker.start()
                for worker in workers:
                    worker.join()
                seconds = time.perf_counter() - started
                if errors:
                    raise errors[0]
                return sum(done), seconds

            # 1. drain against a 100 ms remote: one request at a time (before), 1, 2, 4 threads
            sequential_jobs = max(20, args.delivery_jobs // 10)  # 10 jobs/s: a sample is enough
            print("[bench] delivery: drain of %d jobs against a %.0f ms remote in 1, 2 and 4 worker threads, "
                  "and %d one request at a time, x %d rounds" % (len(partners), LATENCY * 1000, sequential_jobs,
                                                                 args.delivery_rounds), flush=True)
            contenders = [Contender("drain_seq", "one request at a time, as before (%d of the jobs)" % sequential_jobs,
                                    None, True)]
            contenders += [Contender("drain_%d" % n, "%d worker thread%s" % (n, "s" if n > 1 else ""), None)
                           for n in THREADS]
            for rnd in range(args.delivery_rounds):
                order = contenders if rnd % 2 == 0 else contenders[::-1]
                for contender in order:
                    records = partners[:sequential_jobs] if contender.key == "drain_seq" else partners
                    jobs = enqueue(drain_config, records)
                    threads = 1 if contender.key == "drain_seq" else int(contender.key.split("_")[1])
                    peak.reset()
                    timing["key"] = contender.key
                    count, seconds = drain(threads, total=1 if contender.key == "drain_seq" else None)
                    timing["key"] = None
                    contender.peak_kib = max(contender.peak_kib, peak.read())
                    if count != len(jobs):
                        raise RuntimeError("%s: %s jobs delivered out of %s" % (contender.label, count, len(jobs)))
                    contender.seconds.append(seconds)
                    contender.counts.append(count)
            for contender in contenders:
                contender.latencies = samples.get(contender.key, [])
            rows += rows_of("outbox drain against a %.0f ms remote" % (LATENCY * 1000), contenders,
                            len(partners), "drain_seq", "per request")

            # 2. a fast configuration's jobs queued after a hanging one's
            print("[bench] delivery: %d jobs of a configuration queued after %d of one whose remote answers in "
                  "%.0f s, x %d rounds" % (FAST_JOBS, FAST_JOBS, HANG, args.delivery_rounds), flush=True)
            alone = Contender("fast_alone", "the fast configuration alone", None, True)
            beside = Contender("fast_beside", "the fast configuration after the hanging one's jobs", None)
            Job = env["bj.api.sync.job"]
            for rnd in range(args.delivery_rounds):
                for contender in (alone, beside) if rnd % 2 == 0 else (beside, alone):
                    slow_ids = enqueue(slow, partners[:FAST_JOBS]) if contender is beside else []
                    fast_ids = enqueue(fast, partners[FAST_JOBS:2 * FAST_JOBS])
                    icp.set_param(parallel.TOTAL_PARAM, str(parallel.DEFAULT_TOTAL))
                    cr.commit()
                    peak.reset()
                    started = time.perf_counter()
                    delays = []
                    original_finish = outbox.JobDeliveries.finish

                    def finish(self, sender, exchange, attempt, delays=delays, started=started,
                               original=original_finish):
                        if sender.config.id == fast.id:
                            delays.append((time.perf_counter() - started) * 1000)
                        return original(self, sender, exchange, attempt)

                    outbox.JobDeliveries.finish = finish
                    try:
                        with registry.cursor() as worker_cr:
                            # the drain stops claiming after 2 s (the hanging remote's requests in
                            # flight then end within its 5 s)
                            outbox.process_due_jobs(api.Environment(worker_cr, SUPERUSER_ID, {}), time_budget=2,
                                                    commit=True)
                    finally:
                        outbox.JobDeliveries.finish = original_finish
                    contender.peak_kib = max(contender.peak_kib, peak.read())
                    cr.commit()
                    env.invalidate_all()
                    fast_jobs = Job.browse(fast_ids)
                    if set(fast_jobs.mapped("state")) != {"done"} or len(delays) != FAST_JOBS:
                        raise RuntimeError("%s: the fast jobs were not all delivered" % contender.label)
                    contender.seconds.append(max(delays) / 1000)
                    contender.counts.append(FAST_JOBS)
                    contender.latencies += delays
                    if slow_ids:  # what the hanging remote did not get stays out of the next rounds
                        Job.browse(slow_ids).filtered(lambda j: j.state in ("pending", "failed")).action_cancel()
                        cr.commit()
            rows += rows_of("fast config next to a hanging one (5 s per answer)", [beside, alone], FAST_JOBS,
                            "fast_alone", "per job, from the start")
            extra["fast_beside_delay_s"] = max(0.0, _median([s for s in beside.seconds]) -
                                               _median([s for s in alone.seconds]))
            extra["fast_beside_last_s"] = _median(beside.seconds)
            icp.set_param(parallel.TOTAL_PARAM, total_before or str(parallel.DEFAULT_TOTAL))
            cr.commit()
    finally:
        parallel.Exchange.run = original_run
        remote.stop()
        hanging.stop()
    return {"rows": rows, "extra": extra}


def _median(values):
    values = sorted(values)
    if not values:
        return 0.0
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def targets(by_key, extra, check):
    """The issue's goals, with what this run measured (``check(label, measured, holds, shown)``)."""
    one, two, seq = by_key.get("drain_1"), by_key.get("drain_2"), by_key.get("drain_seq")
    if one:
        check("outbox drain against a 100 ms remote >= 100 jobs/s (1 worker thread)", one["rate"],
              one["rate"] >= 100, "%.0f jobs/s" % one["rate"])
    if one and seq:
        check("outbox drain against a 100 ms remote >= 10x one request at a time", one["ratio"],
              one["ratio"] >= 10, "%.1fx (%.1f jobs/s before)" % (one["ratio"], seq["rate"]))
    if one and two:
        ratios = [a / b for a, b in zip(two["rates"], one["rates"]) if b]
        ratio = _median(ratios)
        check("outbox drain, 2 worker threads >= 1.8x one", ratio, ratio >= 1.8, "%.2fx" % ratio)
    if "fast_beside_delay_s" in extra:
        delay = extra["fast_beside_delay_s"]
        check("a hanging remote delays another configuration's jobs by < 2 s", delay, delay < 2,
              "%.2f s (its last job sent after %.2f s)" % (delay, extra["fast_beside_last_s"]))


if __name__ == "__main__":
    sys.exit("Run through bench/run.py: python bench/run.py --only delivery")
