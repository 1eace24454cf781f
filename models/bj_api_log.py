import json
import logging
from datetime import timedelta

from odoo import _, api, fields, models
from odoo.modules import module as odoo_module

_logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TRUNCATION_MARKER = "\n… [truncated by bj_api_sync: %d bytes in total]"


def truncate_body(body, limit=MAX_BODY):
    """Bodies over 64 KiB are cut with a marker so logs stay cheap to write and read."""
    if body is None or body is False:
        return False
    if not isinstance(body, str):
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        else:
            body = json.dumps(body, ensure_ascii=False, default=str)
    if len(body) > limit:
        return body[:limit] + TRUNCATION_MARKER % len(body.encode("utf-8", errors="replace"))
    return body


class BjApiLog(models.Model):
    _name = "bj.api.log"
    _description = "API Log"
    _order = "create_date desc, id desc"
    _rec_name = "name"

    name = fields.Char(compute="_compute_name", store=True, readonly=False)
    config_id = fields.Many2one("bj.api.sync.config", string="Configuration", ondelete="cascade", index=True)
    company_id = fields.Many2one(
        "res.company", compute="_compute_company_id", store=True, index=True, string="Company"
    )
    direction = fields.Selection([("in", "In"), ("out", "Out")], index=True)
    method = fields.Char()
    url = fields.Char(string="URL")
    request_headers = fields.Text(help="Request headers; secrets are redacted.")
    request_data = fields.Text(string="Request Body")
    response_code = fields.Integer(string="Status Code", index=True)
    response_data = fields.Text(string="Response Body")
    status = fields.Selection(
        [("success", "Success"), ("error", "Error"), ("skipped", "Skipped"), ("retrying", "Retrying")],
        default="success",
        index=True,
    )
    error_message = fields.Text(help="Error, with the traceback for unexpected errors.")
    script_messages = fields.Text(help="Messages written by line scripts with log(message).")
    res_model = fields.Char(string="Model")
    res_ids = fields.Char(string="Record IDs", help="Comma-separated ids of the records concerned.")
    duration_ms = fields.Integer(string="Duration (ms)")
    attempt = fields.Integer(default=1)
    job_id = fields.Many2one("bj.api.sync.job", string="Sync Job", ondelete="set null", index=True)
    request_data_pretty = fields.Text(string="Request Body (formatted)", compute="_compute_pretty")
    response_data_pretty = fields.Text(string="Response Body (formatted)", compute="_compute_pretty")

    @api.depends("direction", "method", "url", "config_id")
    def _compute_name(self):
        for log in self:
            if not log.name:
                log.name = " ".join(filter(None, [log.method, log.url])) or log.config_id.name or _("Log")

    @api.depends("config_id.company_id")
    def _compute_company_id(self):
        for log in self:
            log.company_id = log.config_id.company_id

    @api.depends("request_data", "response_data")
    def _compute_pretty(self):
        for log in self:
            log.request_data_pretty = _pretty(log.request_data)
            log.response_data_pretty = _pretty(log.response_data)

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            for key in ("request_data", "response_data"):
                if key in vals:
                    vals[key] = truncate_body(vals[key])
            # BJET examples pass extra keys (model, record_id, details...): keep what maps, ignore the rest.
            if "model" in vals and "res_model" not in vals:
                vals["res_model"] = vals["model"]
            if "record_id" in vals and "res_ids" not in vals:
                vals["res_ids"] = str(vals["record_id"])
            if "duration" in vals and "duration_ms" not in vals:
                vals["duration_ms"] = int(float(vals["duration"] or 0) * 1000)
            for key in [k for k in vals if k not in self._fields]:
                vals.pop(key)
        return super().create(vals_list)

    @api.model
    def _write_detached(self, vals_list):
        """Write logs that must outlive the caller's transaction.

        Outside tests they go through a new cursor committed at once; under the test
        runner (one shared transaction) the current cursor is used.
        """
        if not vals_list:
            return self.browse()
        if odoo_module.current_test or self.env.registry.in_test_mode():
            return self.sudo().create(vals_list)
        with self.env.registry.cursor() as cr:
            env = api.Environment(cr, self.env.uid, self.env.context)
            ids = env[self._name].sudo().create(vals_list).ids
        return self.browse(ids)

    @api.model
    def _purge_old_logs(self):
        """Daily retention cron: keep bj_api_sync.log_retention_days days of logs (default 30)."""
        days = int(self.env["ir.config_parameter"].sudo().get_param("bj_api_sync.log_retention_days", 30))
        if days <= 0:
            return 0
        limit_date = fields.Datetime.now() - timedelta(days=days)
        old = self.sudo().search([("create_date", "<", limit_date)])
        count = len(old)
        old.unlink()
        _logger.info("bj_api_sync: deleted %d logs older than %d days", count, days)
        return count


def _pretty(text):
    if not text:
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return text
