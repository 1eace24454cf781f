import json
import logging
import uuid

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..lib.api import BODY_METHODS
from ..services import outbox, workers
from ..services.outbound_build import OutboundRequest
from .bj_api_log import _pretty, drop_full_indexes, use_lz4

_logger = logging.getLogger(__name__)


class BjApiSyncJob(models.Model):
    _name = "bj.api.sync.job"
    _description = "Sync Job"
    _order = "id desc"

    name = fields.Char(compute="_compute_name")
    config_id = fields.Many2one(
        "bj.api.sync.config", string="Configuration", required=True, ondelete="cascade", index=True
    )
    # A job is two or three row versions (queued, claimed, done), each paying for every index:
    # company and state have a handful of values; the searches on open states use the partial
    # indexes of init().
    company_id = fields.Many2one(related="config_id.company_id", store=True)
    res_model = fields.Char(string="Model")
    res_ids = fields.Char(string="Record IDs", help="Comma-separated ids of the records in this job.")
    payload = fields.Text(help="The JSON body to send, built when the job was queued.")
    payload_hashes = fields.Char(
        help="The hash of each record's payload, comma-separated: stored in the bindings once sent, "
        "so the worker does not parse and hash the body again.",
    )
    url = fields.Char(string="URL")
    method = fields.Char()
    state = fields.Selection(
        [
            ("pending", "Pending"),
            ("running", "Running"),
            ("done", "Done"),
            ("failed", "Failed"),
            ("cancelled", "Cancelled"),
        ],
        default="pending",
        required=True,
    )
    attempts = fields.Integer(readonly=True)
    next_attempt_at = fields.Datetime(  # indexed for the claim by bj_api_sync_job_config_due_idx (init)
        string="Next Attempt", default=fields.Datetime.now, help="Not sent before this time."
    )
    started_at = fields.Datetime(readonly=True, help="When a worker claimed the job (stale detection).")
    claimed_by = fields.Integer(
        string="Worker",
        readonly=True,
        copy=False,
        help="Token of the worker delivering this running job: while that worker lives it holds a "
        "PostgreSQL advisory lock with this number; a job whose worker is gone goes back to pending.",
    )
    done_at = fields.Datetime(readonly=True)
    last_error = fields.Text(readonly=True)
    response_code = fields.Integer(string="Last Status Code", readonly=True)
    idempotency_key = fields.Char(
        required=True,
        copy=False,
        default=lambda self: str(uuid.uuid4()),
        help="Sent as Idempotency-Key (and webhook-id) on every attempt of this job.",
    )
    log_ids = fields.One2many("bj.api.log", "job_id", string="Logs")
    log_count = fields.Integer(compute="_compute_log_count")
    payload_pretty = fields.Text(string="Payload (formatted)", compute="_compute_payload_pretty")

    _sql_constraints = [
        ("idempotency_key_unique", "unique(idempotency_key)", "Idempotency keys must be unique."),
    ]

    def init(self):
        # The worker's claim looks for earlier unfinished jobs of the same record (ordering).
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS bj_api_sync_job_open_idx ON bj_api_sync_job "
            "(config_id, res_model, res_ids, id) WHERE state IN ('pending', 'running', 'failed')"
        )
        # The claim takes due jobs configuration by configuration (fair shares): one range scan
        # of this index per configuration with work. It replaces the global (next_attempt_at, id)
        # index of the first-come claim.
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS bj_api_sync_job_config_due_idx ON bj_api_sync_job "
            "(config_id, next_attempt_at, id) WHERE state = 'pending'"
        )
        self.env.cr.execute("DROP INDEX IF EXISTS bj_api_sync_job_due_idx")
        drop_full_indexes(self.env.cr, self._table, ["company_id", "state"])  # no longer indexed (see the fields)
        use_lz4(self.env.cr, self._table, ["payload"])
        # Running jobs per configuration (its share of Max Parallel Requests over all workers)
        # and per worker (jobs of a worker that is gone).
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS bj_api_sync_job_running_idx ON bj_api_sync_job "
            "(config_id, claimed_by) WHERE state = 'running'"
        )

    @api.depends("config_id", "res_model", "res_ids")
    def _compute_name(self):
        for job in self:
            job.name = "%s #%s" % (job.config_id.name or self.env._("Job"), job.id or "")

    def _compute_log_count(self):
        counts = dict(self.env["bj.api.log"]._read_group([("job_id", "in", self.ids)], ["job_id"], ["__count"]))
        for job in self:
            job.log_count = counts.get(job, 0)

    @api.depends("payload")
    def _compute_payload_pretty(self):
        for job in self:
            job.payload_pretty = _pretty(job.payload)

    # -- the job row of an OutboundRequest, and back ----------------------------

    @api.model
    def _vals_from_request(self, config, request):
        """The row that stores ``request`` (no headers: secrets are never stored)."""
        return {
            "config_id": config.id,
            "company_id": config.company_id.id,  # the related field's value: no UPDATE after the INSERT
            "url": request.url,
            "method": request.method,
            "payload": request.body.decode("utf-8") if request.body is not None else None,
            "res_model": request.res_model,
            "res_ids": ",".join(str(i) for i in request.res_ids),
            "payload_hashes": ",".join(request.hashes) if request.method in BODY_METHODS and request.hashes else None,
            "idempotency_key": request.idempotency_key,
        }

    def _to_request(self, headers, method=None, url=None):
        """The ``OutboundRequest`` this job sends, with the config's current ``headers``.

        ``method`` and ``url``: the config's, for a job row written without them.
        """
        self.ensure_one()
        res_ids = [int(i) for i in (self.res_ids or "").split(",") if i.strip()]
        hashes = self.payload_hashes.split(",") if self.payload_hashes else []
        payloads = []
        if not hashes and self.payload and self.method in BODY_METHODS:
            # a job queued before payload hashes were stored: its body is hashed again
            try:
                data = json.loads(self.payload)
                payloads = data if isinstance(data, list) else [data]
            except ValueError:
                payloads = []
        headers = dict(headers)
        headers["Idempotency-Key"] = self.idempotency_key
        return OutboundRequest(
            method=self.method or method,
            url=self.url or url,
            headers=headers,
            body=self.payload.encode("utf-8") if self.payload else None,
            res_model=self.res_model,
            res_ids=res_ids,
            payloads=payloads if len(payloads) == len(res_ids) else [],
            hashes=hashes if len(hashes) == len(res_ids) else [],
            idempotency_key=self.idempotency_key,
            job_id=self.id,
        )

    # -- buttons and crons -------------------------------------------------------

    def action_retry(self):
        retriable = self.filtered(lambda job: job.state in ("failed", "cancelled", "pending"))
        if not retriable:
            raise UserError(self.env._("Only failed, cancelled or pending jobs can be retried."))
        retriable.write(
            {"state": "pending", "attempts": 0, "next_attempt_at": fields.Datetime.now(), "last_error": False}
        )
        retriable._trigger_worker()
        return True

    def action_cancel(self):
        self.filtered(lambda job: job.state in ("pending", "failed")).write({"state": "cancelled"})
        return True

    def action_view_logs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bj_api_sync.bj_api_log_action")
        action["domain"] = [("job_id", "=", self.id)]
        return action

    def _trigger_worker(self):
        cron = self.env.ref("bj_api_sync.ir_cron_bj_api_sync_job_worker", raise_if_not_found=False)
        if cron:
            cron._trigger()

    @api.model
    def _purge_finished(self, before):
        """Delete jobs done or cancelled before ``before`` (failed and waiting jobs stay)."""
        finished = self.sudo().search(
            [("state", "in", ("done", "cancelled")), ("write_date", "<", before)]
        )
        count = len(finished)
        finished.unlink()
        _logger.info("bj_api_sync: deleted %d finished sync jobs", count)
        return count

    @api.model
    def _cron_process_jobs(self, worker=None):
        """Outbox worker entry point (the delivery logic lives in services.outbox).

        ``worker``: the number of an extra worker cron (``services.workers``); the first
        worker also keeps the number of worker crons in line with ``bj_api_sync.worker_crons``.
        """
        if not worker:
            workers.ensure_worker_crons(self.env)
        return outbox.process_due_jobs(self.env)

    @api.model
    def _sync_worker_crons(self):
        """Create or archive worker crons to match ``bj_api_sync.worker_crons`` (install, update)."""
        workers.ensure_worker_crons(self.env)
        return True
