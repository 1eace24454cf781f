"""Durable outbox (queued delivery) against real HTTP servers on 127.0.0.1."""

import json
import threading
import uuid
from datetime import timedelta

import psycopg2

from odoo import Command, api, fields
from odoo.tests import tagged

from ..services import outbox
from ..services.outbound_build import OutboundRequest
from .common import BjCase
from .http_sink import HttpSink

DOMAIN = "[('email', '=ilike', '%@bj-outbox.test')]"


@tagged("post_install", "-at_install")
class TestOutbox(BjCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        cls.partners = cls.env["res.partner"].create(
            [{"name": "Q%s" % i, "email": "q%s@bj-outbox.test" % i} for i in range(3)]
        )

    def setUp(self):
        super().setUp()
        self.replies = []
        self.sink = HttpSink(self.respond).start()
        self.addCleanup(self.sink.stop)

    def respond(self, received):
        if self.replies:
            return self.replies.pop(0)
        return 200, {"ok": True}

    def queued_config(self, **vals):
        defaults = {
            "name": "Queued %s" % uuid.uuid4().hex[:6],
            "request_type": "out",
            "delivery": "queued",
            "url": self.sink.url("/hook"),
            "http_method_ids": [Command.set([self.methods["POST"].id])],
            "filter_domain": DOMAIN,
            "retry_backoff": 30,
            "max_retries": 3,
            "line_ids": [
                self._line("res.partner", "id", "id", is_record_identifier=True, sequence=1),
                self._line("res.partner", "name", "name", sequence=2),
            ],
        }
        defaults.update(vals)
        return self._config(**defaults)

    def drain(self, runs=1):
        """Run the worker ``runs`` times, making every pending job due before each run."""
        done = 0
        for _run in range(runs):
            self.env["bj.api.sync.job"].search([("state", "=", "pending")]).next_attempt_at = (
                fields.Datetime.now() - timedelta(seconds=1)
            )
            done += outbox.process_due_jobs(self.env)
        return done

    def test_enqueue_returns_202_and_sends_nothing_until_the_worker_runs(self):
        config = self.queued_config()
        result = config._make_outbound_http_request(self.partners, config.id)
        self.assertEqual(result.status_code, 202)
        self.assertEqual(len(result.job_ids), 3)
        jobs = self.env["bj.api.sync.job"].browse(result.job_ids)
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        self.assertEqual(len(set(jobs.mapped("idempotency_key"))), 3)
        self.assertEqual(self.sink.requests, [])
        cron = self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker")
        self.assertTrue(self.env["ir.cron.trigger"].search([("cron_id", "=", cron.id)]))
        self.assertEqual(self.drain(), 3)
        self.assertEqual(set(jobs.mapped("state")), {"done"})
        self.assertEqual(
            sorted(r.header("Idempotency-Key") for r in self.sink.requests), sorted(jobs.mapped("idempotency_key"))
        )
        self.assertEqual(jobs[0].log_ids.mapped("attempt"), [1])

    def test_rolled_back_transaction_leaves_no_job(self):
        config = self.queued_config()
        before = self.env["bj.api.sync.job"].search_count([])
        with self.assertRaises(ZeroDivisionError), self.env.cr.savepoint():
            config._make_outbound_http_request(self.partners, config.id)
            1 / 0  # noqa: B018 - the caller's transaction fails after enqueueing
        self.env.invalidate_all()
        self.assertEqual(self.env["bj.api.sync.job"].search_count([]), before)
        self.drain()
        self.assertEqual(self.sink.requests, [])

    def test_outage_then_recovery_delivers_each_job_once_in_order(self):
        config = self.queued_config(max_retries=5)
        partner = self.partners[0]
        jobs = self.env["bj.api.sync.job"]
        for name in ("first", "second", "third"):
            partner.name = name
            jobs |= self.env["bj.api.sync.job"].browse(
                config._make_outbound_http_request(partner, config.id).job_ids
            )
        self.replies = [503, 503]
        self.drain()  # first job fails once: later jobs of the same record wait behind it
        self.assertEqual(len(self.sink.requests), 1)
        self.assertEqual(jobs.mapped("state"), ["pending"] * 3)
        self.assertEqual(jobs[0].attempts, 1)
        self.drain()  # fails again
        self.drain()  # remote is back
        self.assertEqual(jobs.mapped("state"), ["done"] * 3)
        names = [r.json()["name"] for r in self.sink.requests]
        self.assertEqual(names, ["first", "first", "first", "second", "third"])
        keys = [r.header("Idempotency-Key") for r in self.sink.requests]
        self.assertEqual(keys[0], keys[1])
        self.assertEqual(keys[1], keys[2])
        self.assertEqual(len(set(keys)), 3)
        self.assertEqual(jobs[0].log_ids.sorted("id").mapped("attempt"), [1, 2, 3])

    def test_a_batch_reads_its_configuration_once_and_keeps_each_outcome(self):
        partners = self.env["res.partner"].create(
            [{"name": "B%s" % i, "email": "b%s@bj-outbox.test" % i} for i in range(40)]
        )
        config = self.queued_config(max_retries=0)
        jobs = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(partners, config.id).job_ids)
        self.assertEqual(len(jobs), 40)
        self.replies = [200] * 10 + [422] + [200] * 29  # the 11th job of the batch fails
        self.env.flush_all()
        queries = self.cr.sql_log_count
        self.assertEqual(outbox.process_due_jobs(self.env, batch=50), 40)
        queries = self.cr.sql_log_count - queries
        # One Sender, one log INSERT and grouped state UPDATEs for the batch; a commit and
        # a fresh read of the configuration per job cost about ten queries each.
        self.assertLess(queries, 60, "the worker reads or writes per job again")
        # the claim's transaction does not JIT-compile (300 ms per claim on a long queue)
        self.cr.execute("SHOW jit")
        self.assertEqual(self.cr.fetchone()[0], "off")
        self.assertEqual(len(self.sink.requests), 40)
        self.assertEqual(sorted(jobs.mapped("state")), ["done"] * 39 + ["failed"])
        failed = jobs.filtered(lambda job: job.state == "failed")
        self.assertEqual(failed.response_code, 422)
        self.assertEqual(len(jobs.log_ids), 40)
        self.assertEqual(failed.log_ids.status, "error")
        self.assertEqual(set((jobs - failed).log_ids.mapped("status")), {"success"})
        # bindings of the delivered records carry the payload hashes stored at enqueue
        bindings = self.env["bj.api.sync.binding"].search([("config_id", "=", config.id)])
        self.assertEqual(
            {binding.res_id: binding.payload_hash for binding in bindings},
            {int(job.res_ids): job.payload_hashes for job in jobs - failed},
        )
        job = jobs[0]
        self.assertEqual(job.payload_hashes, self.env["bj.api.sync.binding"]._payload_hash(json.loads(job.payload)))

    def test_backoff_schedules_next_attempt(self):
        config = self.queued_config(retry_backoff=60, max_retries=2)
        job = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners[0], config.id).job_ids)
        self.replies = [(429, "", {"Retry-After": "600"})]
        self.drain()
        self.assertEqual(job.state, "pending")
        self.assertGreaterEqual(job.next_attempt_at, fields.Datetime.now() + timedelta(seconds=590))
        outbox.process_due_jobs(self.env)  # not due yet: nothing sent
        self.assertEqual(len(self.sink.requests), 1)

    def test_retries_exhausted_then_manual_retry(self):
        config = self.queued_config(max_retries=1)
        config.message_subscribe(partner_ids=self.env.user.partner_id.ids)
        job = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners[0], config.id).job_ids)
        self.replies = [500, 500]
        self.drain(2)
        self.assertEqual(job.state, "failed")
        self.assertEqual(job.attempts, 2)
        message = config.message_ids[0]
        self.assertIn("failed after 2 attempts", message.body)
        self.assertIn(self.env.user.partner_id, message.notified_partner_ids | message.partner_ids | config.message_follower_ids.partner_id)
        self.drain()
        self.assertEqual(len(self.sink.requests), 2)  # dead letter: no more attempts
        job.action_retry()
        self.assertEqual(job.state, "pending")
        self.drain()
        self.assertEqual(job.state, "done")
        self.assertEqual(len(self.sink.requests), 3)

    def test_client_error_is_not_retried(self):
        config = self.queued_config(max_retries=3)
        job = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners[0], config.id).job_ids)
        self.replies = [400]
        self.drain(2)
        self.assertEqual(job.state, "failed")
        self.assertEqual(len(self.sink.requests), 1)

    def test_stale_running_job_is_requeued(self):
        config = self.queued_config()
        job = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners[0], config.id).job_ids)
        claimed = outbox.claim(self.env, 10)
        self.assertEqual(claimed, job)
        self.assertEqual(job.state, "running")
        # the worker dies here; a second worker does not touch a fresh running job
        self.drain()
        self.assertEqual(job.state, "running")
        self.assertEqual(self.sink.requests, [])
        job.started_at = fields.Datetime.now() - timedelta(minutes=11)
        self.drain()
        self.assertEqual(job.state, "done")
        self.assertEqual(len(self.sink.requests), 1)

    def test_cancel(self):
        config = self.queued_config()
        jobs = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners, config.id).job_ids)
        jobs.action_cancel()
        self.drain()
        self.assertEqual(set(jobs.mapped("state")), {"cancelled"})
        self.assertEqual(self.sink.requests, [])

    def test_circuit_breaker_pauses_and_probe_resumes(self):
        config = self.queued_config(max_retries=0, max_consecutive_failures=2)
        config.responsible_id = self.env.user
        jobs = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners, config.id).job_ids)
        self.replies = [500, 500]
        self.drain()
        self.assertTrue(config.paused)
        self.assertEqual(config.pause_reason, "circuit")
        self.assertEqual(len(self.sink.requests), 2)
        self.assertTrue(config.activity_ids.filtered(lambda a: a.user_id == self.env.user))
        self.assertIn("Deliveries paused", config.message_ids[0].body)
        # paused: the third job waits
        self.drain()
        self.assertEqual(len(self.sink.requests), 2)
        self.assertEqual(jobs[2].state, "pending")
        # immediate calls are refused while paused
        # probe time: one job is tried, succeeds, deliveries resume
        config.next_probe_at = fields.Datetime.now() - timedelta(seconds=1)
        self.drain()
        self.assertFalse(config.paused)
        self.assertEqual(jobs[2].state, "done")

    def test_gone_pauses_at_once(self):
        config = self.queued_config(max_consecutive_failures=20)
        config._make_outbound_http_request(self.partners, config.id)
        self.replies = [410]
        self.drain()
        self.assertTrue(config.paused)
        self.assertEqual(len(self.sink.requests), 1)

    def test_enqueue_coalesces_unchanged_bodies_and_adds_one_trigger(self):
        config = self.queued_config()
        cron = self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker")
        Trigger = self.env["ir.cron.trigger"]
        Trigger.search([("cron_id", "=", cron.id)]).unlink()
        partner = self.partners[0]
        first = config._make_outbound_http_request(partner, config.id).job_ids
        self.assertEqual(len(first), 1)
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), 1)
        # due before this (test) transaction began, as a trigger of an earlier save is
        Trigger.search([("cron_id", "=", cron.id)]).call_at = fields.Datetime.to_datetime("2000-01-01")
        # the same record with the same body waits already: no second job, no second trigger
        self.assertEqual(config._make_outbound_http_request(partner, config.id).job_ids, [])
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), 1)
        # a changed body is a new job; the due trigger serves it too
        partner.name = "Changed before delivery"
        second = config._make_outbound_http_request(partner, config.id).job_ids
        self.assertEqual(len(second), 1)
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), 1)
        # no trigger due (the worker consumed it): the next job adds one
        Trigger.search([("cron_id", "=", cron.id)]).unlink()
        self.partners[1].name = "Another"
        self.assertEqual(len(config._make_outbound_http_request(self.partners[1], config.id).job_ids), 1)
        self.assertEqual(Trigger.search_count([("cron_id", "=", cron.id)]), 1)
        self.assertEqual(self.drain(), 3)

    def test_one_statement_queues_a_call_and_skips_only_bodies_already_waiting(self):
        config = self.queued_config().sudo()
        url = self.sink.url("/hook")

        def request(record, body, method="POST"):
            return OutboundRequest(method=method, url=url, headers={}, body=body, res_model="res.partner",
                                   res_ids=[record.id])

        one, two = self.partners[:2]
        waiting = outbox.enqueue(config, [request(one, b'{"v": 1}')])
        self.assertEqual(len(waiting), 1)
        # a worker trigger is due (as after an earlier save): the call adds none
        cron = self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker")
        self.env["ir.cron.trigger"].create({"cron_id": cron.id, "call_at": fields.Datetime.to_datetime("2000-01-01")})
        self.env.flush_all()
        queries = self.cr.sql_log_count
        jobs = outbox.enqueue(config, [
            request(one, b'{"v": 1}'),  # waits already: skipped
            request(one, b'{"v": 2}'),
            request(one, b'{"v": 2}'),  # the same as the job before it in this call: skipped
            request(one, b'{"v": 1}'),  # differs from the job before it: queued, although equal to the waiting one
            request(two, b'{"v": 1}'),  # another record
            request(one, None, method="DELETE"),  # another method, no body
            request(one, None, method="DELETE"),
        ])
        self.assertEqual(self.cr.sql_log_count - queries, 1, "queuing a call is one statement")
        self.assertEqual(
            [(job.res_ids, job.method, job.payload) for job in jobs],
            [(str(one.id), "POST", '{"v": 2}'), (str(one.id), "POST", '{"v": 1}'), (str(two.id), "POST", '{"v": 1}'),
             (str(one.id), "DELETE", False)],
        )
        self.assertEqual(set(jobs.mapped("state")), {"pending"})
        self.assertEqual(jobs.config_id, config)
        self.assertEqual(jobs.company_id, config.company_id)
        self.assertTrue(all(job.idempotency_key for job in jobs))
        self.assertLessEqual(max(jobs.mapped("next_attempt_at")), fields.Datetime.now(), "due at once")
        self.assertEqual(config.job_ids, waiting | jobs, "the configuration's jobs include the new rows")
        # a job tried once no longer coalesces a save with the same body: the remote may have missed it
        (waiting | jobs).filtered(lambda job: job.method == "POST").attempts = 1
        self.assertEqual(len(outbox.enqueue(config, [request(one, b'{"v": 1}')])), 1)

    def test_queue_and_log_rows_pay_only_for_the_indexes_and_compression_they_need(self):
        """Every job row version and every log row writes an entry in each full index of its table."""

        def full_indexes(table):
            self.env.cr.execute(
                "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexdef NOT LIKE '%% WHERE %%'",
                [table],
            )
            return {name for (name,) in self.env.cr.fetchall()}

        self.assertEqual(
            full_indexes("bj_api_sync_job"),
            {"bj_api_sync_job_pkey", "bj_api_sync_job_idempotency_key_unique", "bj_api_sync_job__config_id_index"},
        )
        self.assertEqual(
            full_indexes("bj_api_log"),
            {"bj_api_log_pkey", "bj_api_log__status_index", "bj_api_log_config_id_create_date_idx",
             "bj_api_log_config_status_date_idx", "bj_api_log_create_date_idx"},
        )
        # the worker's searches on open states still find an index
        self.env.cr.execute("SET LOCAL enable_seqscan = off")
        self.env.cr.execute("EXPLAIN SELECT count(*) FROM bj_api_sync_job WHERE state = 'pending'")
        plan = "\n".join(row[0] for row in self.env.cr.fetchall())
        self.env.cr.execute("SET LOCAL enable_seqscan = on")
        self.assertIn("bj_api_sync_job_config_due_idx", plan)
        # bodies over 2 kB are compressed on every insert: with lz4 where PostgreSQL has it
        try:
            with self.env.cr.savepoint(flush=False):
                self.env.cr.execute("SET LOCAL default_toast_compression = 'lz4'")
            expected = "l"
        except psycopg2.Error:
            expected = ""
        self.env.cr.execute(
            "SELECT attrelid::regclass::text || '.' || attname, attcompression FROM pg_attribute"
            " WHERE (attrelid, attname) IN (('bj_api_log'::regclass, 'request_data'),"
            " ('bj_api_log'::regclass, 'response_data'), ('bj_api_sync_job'::regclass, 'payload'))"
        )
        self.assertEqual(dict(self.env.cr.fetchall()), {
            "bj_api_log.request_data": expected, "bj_api_log.response_data": expected,
            "bj_api_sync_job.payload": expected,
        })

    def test_neutralized_pause_is_never_probed(self):
        config = self.queued_config()
        job = self.env["bj.api.sync.job"].browse(config._make_outbound_http_request(self.partners[0], config.id).job_ids)
        config.write({"paused": True, "pause_reason": "neutralized", "next_probe_at": fields.Datetime.now()})
        self.drain()
        self.assertEqual(job.state, "pending")
        self.assertEqual(self.sink.requests, [])

    def test_automation_rule_enqueues_in_the_write_transaction(self):
        config = self.queued_config()
        self.env["base.automation"].create(
            {
                "name": "queue partners",
                "model_id": self.partner_model.id,
                "trigger": "on_create_or_write",
                "filter_domain": DOMAIN,
                "action_server_ids": [
                    Command.create(
                        {
                            "name": "send",
                            "model_id": self.partner_model.id,
                            "state": "code",
                            "code": "env['bj.api.sync.config']._make_outbound_http_request("
                            "record_ids=records, config_id_ref=%d)" % config.id,
                        }
                    )
                ],
            }
        )
        partner = self.env["res.partner"].create({"name": "Auto", "email": "auto@bj-outbox.test"})
        jobs = self.env["bj.api.sync.job"].search([("config_id", "=", config.id)])
        self.assertEqual(jobs.mapped("res_ids"), [str(partner.id)])
        self.assertEqual(self.sink.requests, [])
        self.drain()
        self.assertEqual(self.sink.requests[0].json()["name"], "Auto")


@tagged("post_install", "-at_install")
class TestOutboxConcurrency(BjCase):
    """Two workers with their own committed transactions drain the same jobs."""

    def test_two_workers_send_each_job_once(self):
        sink = HttpSink(lambda received: (200, {"ok": True})).start()
        self.addCleanup(sink.stop)
        registry = self.env.registry
        with registry.cursor() as cr:
            env = api.Environment(cr, self.env.uid, {})
            env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
            config = env["bj.api.sync.config"].create(
                {
                    "name": "Concurrency %s" % uuid.uuid4().hex[:6],
                    "request_type": "out",
                    "delivery": "queued",
                    "url": sink.url("/hook"),
                    "model_id": env.ref("base.model_res_partner").id,
                    "http_method_ids": [Command.set([env.ref("bj_api_sync.http_method_post").id])],
                    "max_consecutive_failures": 0,
                }
            )
            config_id = config.id
            env["bj.api.sync.job"].create(
                [
                    {
                        "config_id": config_id,
                        "url": sink.url("/hook"),
                        "method": "POST",
                        "payload": '{"n": %d}' % n,
                        "res_model": "res.partner",
                        "res_ids": str(n),
                    }
                    for n in range(1000)
                ]
            )
            cr.commit()  # pylint: disable=invalid-commit

        def cleanup():
            with registry.cursor() as cr:
                cr.execute("DELETE FROM bj_api_log WHERE config_id = %s", [config_id])
                cr.execute("DELETE FROM bj_api_sync_job WHERE config_id = %s", [config_id])
                cr.execute("DELETE FROM bj_api_sync_config WHERE id = %s", [config_id])
                cr.commit()  # pylint: disable=invalid-commit

        self.addCleanup(cleanup)
        errors = []

        def worker(env):
            try:
                with env.cr:
                    while outbox.process_due_jobs(env, batch=20, commit=True):
                        pass
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)

        # Environments are made here: during the test run this thread holds the registry
        # lock, which a worker thread would wait for forever when creating its first one.
        envs = [api.Environment(registry.cursor(), self.env.uid, {}) for _i in range(2)]
        threads = [threading.Thread(target=worker, args=(env,)) for env in envs]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        self.assertEqual(errors, [])
        keys = [r.header("Idempotency-Key") for r in sink.requests]
        self.assertEqual(len(keys), 1000)
        self.assertEqual(len(set(keys)), 1000)
        with registry.cursor() as cr:
            cr.execute("SELECT state, count(*) FROM bj_api_sync_job WHERE config_id = %s GROUP BY state", [config_id])
            self.assertEqual(dict(cr.fetchall()), {"done": 1000})


@tagged("post_install", "-at_install")
class TestImmediateCircuitBreaker(BjCase):
    def test_immediate_failures_pause_and_probe_resumes(self):
        self.env["ir.config_parameter"].sudo().set_param("bj_api_sync.allowed_hosts", "127.0.0.1")
        replies = [500, 500, 500]
        sink = HttpSink(lambda received: replies.pop(0) if replies else 200).start()
        self.addCleanup(sink.stop)
        partner = self.env["res.partner"].create({"name": "Imm", "email": "imm@bj-outbox.test"})
        config = self._config(
            request_type="out",
            url=sink.url("/hook"),
            max_retries=0,
            max_consecutive_failures=3,
            filter_domain=DOMAIN,
            line_ids=[self._line("res.partner", "id", "id", is_record_identifier=True)],
        )
        for _i in range(3):
            self.assertFalse(config._make_outbound_http_request(partner, config.id).success)
        self.assertTrue(config.paused)
        self.assertEqual(config.pause_reason, "circuit")
        self.assertIn("Deliveries paused", config.message_ids[0].body)
        result = config._make_outbound_http_request(partner, config.id)
        self.assertEqual(len(sink.requests), 3)  # paused: nothing sent
        self.assertFalse(result.sent)
        config.next_probe_at = fields.Datetime.now() - timedelta(seconds=1)
        outbox.process_due_jobs(self.env)
        self.assertEqual(sink.requests[-1].method, "HEAD")
        self.assertFalse(config.paused)
        self.assertEqual(config.consecutive_failures, 0)
        self.assertTrue(config._make_outbound_http_request(partner, config.id).success)
