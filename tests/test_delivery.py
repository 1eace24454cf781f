"""Concurrent, fair delivery (issue 14) against real HTTP servers on 127.0.0.1 with a delay.

Timings on a shared 2-core machine are noisy: the assertions keep wide margins (a few
times sequential, not the bench's figures; ``python bench/run.py --only delivery`` gives
those).
"""

import time
import uuid
from datetime import timedelta

from odoo import Command, fields
from odoo.tests import tagged

from ..services import outbox, parallel, push, workers
from .common import BjCase
from .http_sink import slow_sink

DOMAIN = "[('email', '=ilike', '%@bj-delivery.test')]"


@tagged("post_install", "-at_install")
class TestDelivery(BjCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        cls.partners = cls.env["res.partner"].create(
            [{"name": "D%s" % i, "email": "d%s@bj-delivery.test" % i} for i in range(200)]
        )

    def setUp(self):
        super().setUp()
        parallel.Throttle.reset()
        self.addCleanup(parallel.Throttle.reset)

    def remote(self, delay, reply=(200, {"ok": True})):
        sink, remote = slow_sink(delay, reply)
        self.addCleanup(sink.stop)
        return sink, remote

    def config(self, sink, **vals):
        defaults = {
            "name": "Delivery %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "delivery": "queued",
            "url": sink.url("/hook"),
            "http_method_ids": [Command.set([self.methods["POST"].id])],
            "filter_domain": DOMAIN,
            "limit": 0,
            "retry_backoff": 30,
            "max_retries": 3,
            "line_ids": [
                self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
                self._line("res.partner", "name", "name", sequence=2),
            ],
        }
        defaults.update(vals)
        return self._config(**defaults)

    def enqueue(self, config, records):
        return self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(records, config.id).job_ids)

    # ------------------------------------------------------------------ throughput
    def test_queued_jobs_to_a_slow_remote_are_sent_in_parallel(self):
        sink, remote = self.remote(0.1)
        config = self.config(sink, max_parallel_requests=16)
        jobs = self.enqueue(config, self.partners)
        self.assertEqual(len(jobs), 200)
        started = time.monotonic()
        self.assertEqual(outbox.process_due_jobs(self.env), 200)
        elapsed = time.monotonic() - started
        # one request at a time: 200 x 100 ms = 20 s; the bench measures about 10x that
        self.assertLess(elapsed, 20 / 3, "not even 3x faster than sequential delivery")
        self.assertGreater(remote.max_concurrency, 4)
        self.assertLessEqual(remote.max_concurrency, 16)  # Max Parallel Requests and the worker's bound
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        keys = [r.header("Idempotency-Key") for r in sink.requests]
        self.assertEqual(sorted(keys), sorted(jobs.mapped("idempotency_key")))
        # every outcome processed on the worker's cursor: one log row per job, bindings
        self.assertEqual(len(jobs.log_ids), 200)
        self.assertEqual(set(jobs.log_ids.mapped("status")), {"success"})
        bindings = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual(set(bindings.mapped("res_id")), set(self.partners.ids))

    def test_the_worker_bound_and_max_parallel_requests_hold(self):
        self.env["ir.config_parameter"].sudo().set_param(parallel.TOTAL_PARAM, "3")
        sink, remote = self.remote(0.05)
        config = self.config(sink, max_parallel_requests=10)
        self.enqueue(config, self.partners[:30])
        outbox.process_due_jobs(self.env)
        self.assertEqual(remote.max_concurrency, 3)
        self.env["ir.config_parameter"].sudo().set_param(parallel.TOTAL_PARAM, "16")
        sink2, remote2 = self.remote(0.05)
        config2 = self.config(sink2, max_parallel_requests=2)
        self.enqueue(config2, self.partners[:30])
        outbox.process_due_jobs(self.env)
        self.assertEqual(remote2.max_concurrency, 2)

    def test_immediate_call_sends_its_requests_in_parallel_and_processes_them_in_order(self):
        sink, remote = self.remote(0.1, lambda received: (201, {"id": "r-%s" % received.json()["id"]}))
        config = self.config(sink, delivery="immediate", max_parallel_requests=8)
        records = self.partners[:80]
        started = time.monotonic()
        result = config._make_outbound_http_request(records, config.id)
        elapsed = time.monotonic() - started
        self.assertTrue(result.success, result.message)
        self.assertEqual(result.sent, 80)
        self.assertLess(elapsed, 8.0 / 3, "not even 3x faster than sequential delivery")  # about 1 s
        self.assertGreater(remote.max_concurrency, 2)
        self.assertLessEqual(remote.max_concurrency, 8)
        logs = self.env["bj.api.log"].search([("config_id", "=", config.id)], order="id")
        self.assertEqual(logs.mapped("res_ids"), [str(i) for i in records.ids])  # in the records' order
        bindings = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual({b.res_id: b.external_id for b in bindings}, {i: "r-%s" % i for i in records.ids})

    def test_scheduled_sync_pages_go_in_parallel(self):
        sink, remote = self.remote(0.1)
        config = self.config(sink, delivery="immediate", is_paginated=True, page_size=2, max_parallel_requests=8)
        started = time.monotonic()
        result = push.cron_sync(config)
        elapsed = time.monotonic() - started
        self.assertEqual(result.sent, 200)
        self.assertEqual(len(sink.requests), 100)
        self.assertLess(elapsed, 10.0 / 3, "not even 3x faster than sequential delivery")  # about 1.5 s
        self.assertGreater(remote.max_concurrency, 2)

    # ------------------------------------------------------------------ fairness
    def test_a_hanging_remote_does_not_hold_back_another_configuration(self):
        hanging_sink, hanging = self.remote(5.0)
        fast_sink, _fast = self.remote(0.0)
        slow = self.config(hanging_sink, read_timeout=15)
        fast = self.config(fast_sink)
        slow_jobs = self.enqueue(slow, self.partners[:20])  # queued first
        fast_jobs = self.enqueue(fast, self.partners[20:40])
        started = time.monotonic()
        outbox.process_due_jobs(self.env, time_budget=2)
        fast_last = max(r.at for r in fast_sink.requests)
        self.assertEqual(len(fast_sink.requests), 20)
        self.assertLess(fast_last - started, 2.0, "the fast configuration waited for the hanging one")
        self.assertEqual(set(fast_jobs.mapped("state")), {"done"})
        # the hanging remote never answered before the end of the run: one request at a time
        # (a remote gets more only once it answered), the others back to pending
        self.assertEqual(hanging.max_concurrency, 1)
        self.assertEqual(sorted(slow_jobs.mapped("state")), ["done"] + ["pending"] * 19)

    def test_a_remote_that_times_out_is_throttled_before_the_circuit_breaker(self):
        hanging_sink, _hanging = self.remote(60)
        fast_sink, _fast = self.remote(0.0)
        slow = self.config(hanging_sink, read_timeout=1, retry_backoff=0, max_retries=10, max_parallel_requests=4)
        fast = self.config(fast_sink)
        slow_jobs = self.enqueue(slow, self.partners[:20])
        fast_jobs = self.enqueue(fast, self.partners[20:60])
        started = time.monotonic()
        outbox.process_due_jobs(self.env, time_budget=3.5)
        self.assertLess(max(r.at for r in fast_sink.requests) - started, 2.0)
        self.assertEqual(set(fast_jobs.mapped("state")), {"done"})
        # one request at a time, each a read timeout (408), retried: no more than the run allows
        # (the remote's handlers go on waiting after the client gave up: arrival times tell)
        arrivals = sorted(r.at for r in hanging_sink.requests)
        self.assertTrue(all(later - earlier > 0.8 for earlier, later in zip(arrivals, arrivals[1:])), arrivals)
        self.assertLessEqual(len(arrivals), 5)
        attempts = slow_jobs.filtered("attempts")
        self.assertTrue(attempts)
        self.assertEqual(set(attempts.mapped("response_code")), {408})
        self.assertEqual(set(slow_jobs.mapped("state")), {"pending"})
        self.assertLess(parallel.Throttle.limit(slow), 4)
        self.assertFalse(slow.paused)  # the circuit breaker (20 in a row) has not tripped
        self.assertGreater(slow.consecutive_failures, 0)

    def test_claims_are_shared_between_configurations(self):
        sink, _remote = self.remote(0.0)
        configs = [self.config(sink, max_parallel_requests=10) for _i in range(3)]
        for config in configs:  # the first configuration's jobs are the oldest
            self.enqueue(config, self.partners[:20])
        claimed = outbox.claim(self.env, 6)
        self.assertEqual(
            sorted(claimed.mapped("config_id").ids), sorted(c.id for c in configs)
        )
        self.assertEqual([len(claimed.filtered(lambda j, c=c: j.config_id == c)) for c in configs], [2, 2, 2])
        # a configuration's running jobs count against its share, on every worker
        configs[0].max_parallel_requests = 3
        again = outbox.claim(self.env, 30)
        self.assertEqual(len(again.filtered(lambda j: j.config_id == configs[0])), 1)  # 3 - 2 running
        self.assertEqual(len(again.filtered(lambda j: j.config_id == configs[1])), 8)  # 10 - 2

    # ------------------------------------------------------------------ guarantees
    def test_two_jobs_of_one_record_are_never_in_flight_together(self):
        sink, remote = self.remote(lambda received: 0.02 + (hash(received.body) % 5) / 100)
        config = self.config(sink, max_parallel_requests=8)
        chained = self.partners[:10]
        for step in ("first", "second", "third"):
            for partner in chained:
                partner.name = "%s %s" % (step, partner.id)
            self.enqueue(config, chained)
        self.enqueue(config, self.partners[10:40])  # other records, in flight alongside
        self.assertEqual(outbox.process_due_jobs(self.env), 60)
        self.assertGreater(remote.max_concurrency, 2)
        by_record = {}
        for received in sink.requests:
            by_record.setdefault(received.json()["id"], []).append(received)
        for partner in chained:
            requests = by_record[partner.id]
            self.assertEqual(
                [r.json()["name"].split()[0] for r in requests], ["first", "second", "third"], partner.name
            )
            for earlier, later in zip(requests, requests[1:]):
                answered = remote.answered[earlier.header("Idempotency-Key")][-1]
                self.assertGreaterEqual(later.at, answered, "two jobs of one record were in flight together")

    def test_jobs_of_a_worker_that_is_gone_are_requeued_at_once(self):
        sink, _remote = self.remote(0.0)
        config = self.config(sink)
        jobs = self.enqueue(config, self.partners[:3])
        # a worker claimed them, then its process was killed: its advisory lock is gone
        claimed = outbox._claim(self.env, 10, False, token=4242)[0]
        self.assertEqual(claimed, jobs)
        self.assertEqual(set(jobs.mapped("claimed_by")), {4242})
        # a live worker's running jobs stay where they are
        with workers.WorkerLock(self.env.cr) as alive:
            jobs[2].claimed_by = alive.token
            jobs.flush_recordset()
            requeued = outbox.requeue_stale(self.env)
            self.assertEqual(requeued, jobs[:2])
        self.assertEqual(jobs.mapped("state"), ["pending", "pending", "running"])
        self.assertEqual(outbox.process_due_jobs(self.env), 3)  # the third one's worker is gone now
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        self.assertEqual(sorted(r.header("Idempotency-Key") for r in sink.requests), sorted(jobs.mapped("idempotency_key")))

    def test_a_config_paused_mid_run_keeps_its_jobs(self):
        sink, _remote = self.remote(0.0, 500)
        config = self.config(sink, max_retries=0, max_consecutive_failures=3, max_parallel_requests=8)
        jobs = self.enqueue(config, self.partners[:10])
        outbox.process_due_jobs(self.env)
        # failing: one request at a time, so the breaker stops it after exactly 3
        self.assertTrue(config.paused)
        self.assertEqual(len(sink.requests), 3)
        self.assertEqual(sorted(jobs.mapped("state")), ["failed"] * 3 + ["pending"] * 7)
        config.next_probe_at = fields.Datetime.now() - timedelta(seconds=1)
        outbox.process_due_jobs(self.env)
        self.assertEqual(len(sink.requests), 4)  # one probe, still failing: paused again

    # ------------------------------------------------------------------ worker crons
    def test_worker_crons_follow_the_parameter(self):
        ICP = self.env["ir.config_parameter"].sudo()
        crons = workers.worker_crons(self.env)
        self.assertEqual(sorted(crons), [1, 2])  # the default: two workers
        self.assertTrue(all(cron.active for cron in crons.values()))
        self.assertEqual(crons[2].code, "model._cron_process_jobs(worker=2)")
        ICP.set_param(workers.WORKERS_PARAM, "4")
        crons = workers.ensure_worker_crons(self.env)
        self.assertEqual(sorted(n for n, cron in crons.items() if cron.active), [1, 2, 3, 4])
        self.assertEqual(self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker_4"), crons[4])
        ICP.set_param(workers.WORKERS_PARAM, "1")
        crons = workers.ensure_worker_crons(self.env)
        self.assertEqual([n for n, cron in crons.items() if cron.active], [1])
        ICP.set_param(workers.WORKERS_PARAM, "3")
        crons[1].active = False  # delivery stopped by hand: the extra workers follow
        crons = workers.ensure_worker_crons(self.env)
        self.assertFalse(any(cron.active for cron in crons.values()))
        crons[1].active = True
        crons = workers.ensure_worker_crons(self.env)
        self.assertEqual(sorted(n for n, cron in crons.items() if cron.active), [1, 2, 3])

    def test_a_worker_with_more_work_than_it_takes_wakes_the_others(self):
        self.env["ir.config_parameter"].sudo().set_param(parallel.TOTAL_PARAM, "2")
        sink, _remote = self.remote(0.0)
        config = self.config(sink, max_parallel_requests=20)
        self.enqueue(config, self.partners[:20])
        helper = workers.worker_crons(self.env)[2]
        Trigger = self.env["ir.cron.trigger"]
        Trigger.search([("cron_id", "=", helper.id)]).unlink()
        main = self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker")
        outbox.process_due_jobs(self.env(context=dict(self.env.context, cron_id=main.id)))
        self.assertTrue(Trigger.search([("cron_id", "=", helper.id)]))
        # a worker that takes everything there is wakes nobody
        Trigger.search([("cron_id", "=", helper.id)]).unlink()
        self.env["ir.config_parameter"].sudo().set_param(parallel.TOTAL_PARAM, "16")
        self.enqueue(config, self.partners[20:25])
        outbox.process_due_jobs(self.env(context=dict(self.env.context, cron_id=main.id)))
        self.assertFalse(Trigger.search([("cron_id", "=", helper.id)]))
