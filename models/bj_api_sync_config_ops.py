"""Operations fields of the configuration: signature presets, API clients, dashboard health,
and the "Sync Status" action bound to the models of Out configurations.

Kept apart from models/bj_api_sync_config.py (``_inherit``) so the core model stays readable.
"""

from odoo import api, fields, models

from ..lib import signature_presets
from ..services import inbound

# The inbound pipeline reads its config in one query: the preset fields too.
for _name in ("hmac_preset", "hmac_header", "hmac_encoding"):
    if _name not in inbound.CONFIG_FIELDS:
        inbound.CONFIG_FIELDS.append(_name)

SYNC_ACTION_CODE = "action = env['bj.api.sync.status']._action_open(model._name, record.id)"
ERROR_RATE_WARNING = 0.05
ERROR_RATE_CRITICAL = 0.5

# health state -> kanban colour (Odoo's colour picker indexes)
HEALTH_COLORS = {"ok": 10, "warning": 2, "error": 1, "paused": 3, "idle": 0}


class BjApiSyncConfig(models.Model):
    _inherit = "bj.api.sync.config"

    auth_type = fields.Selection(
        selection_add=[("api_client", "API Clients"), ("odoo_api_key", "Odoo API Key")],
        ondelete={"api_client": "set null", "odoo_api_key": "set null"},
    )
    # ------------------------------------------------------------ signature presets (HMAC)
    hmac_preset = fields.Selection(
        [
            (signature_presets.STANDARD, "Standard Webhooks"),
            (signature_presets.STRIPE, "Stripe"),
            (signature_presets.GITHUB, "GitHub"),
            (signature_presets.SHOPIFY, "Shopify"),
            (signature_presets.GENERIC, "HMAC-SHA256 of the body"),
        ],
        string="Signature Preset",
        default=signature_presets.STANDARD,
        help="How inbound webhooks are signed: Standard Webhooks (webhook-* headers), Stripe "
        "(Stripe-Signature), GitHub (X-Hub-Signature-256), Shopify (X-Shopify-Hmac-Sha256) or an "
        "HMAC-SHA256 of the body in the header below.",
    )
    hmac_header = fields.Char(
        string="Signature Header", help="Header holding the HMAC-SHA256 of the body (e.g. X-Signature)."
    )
    hmac_encoding = fields.Selection(
        [(signature_presets.HEX, "Hexadecimal"), (signature_presets.BASE64, "Base64")],
        string="Signature Encoding",
        default=signature_presets.HEX,
    )
    # ------------------------------------------------------------ API clients
    client_ids = fields.One2many("bj.api.sync.client", "config_id", string="API Clients")
    client_count = fields.Integer(compute="_compute_client_count")
    # ------------------------------------------------------------ dashboard
    # The Health tab's fields come from the dashboard's queries too (one computation for all).
    health_calls = fields.Integer(compute="_compute_dashboard")
    health_errors = fields.Integer(compute="_compute_dashboard")
    health_p50 = fields.Integer(compute="_compute_dashboard")
    health_p95 = fields.Integer(compute="_compute_dashboard")
    health_error_rate = fields.Float(string="Error Rate (24 h)", compute="_compute_dashboard", digits=(16, 4))
    health_success_count = fields.Integer(string="Successes (24 h)", compute="_compute_dashboard")
    queue_depth = fields.Integer(compute="_compute_dashboard",
                                 help="Sync jobs pending or running.")
    oldest_pending_at = fields.Datetime(string="Oldest Pending Job", compute="_compute_dashboard")
    last_success_at = fields.Datetime(string="Last Success", compute="_compute_dashboard")
    last_error_at = fields.Datetime(string="Last Error", compute="_compute_dashboard")
    health_state = fields.Selection(
        [("ok", "Healthy"), ("warning", "Degraded"), ("error", "Failing"), ("paused", "Paused"), ("idle", "Idle")],
        string="Health",
        compute="_compute_dashboard",
    )
    health_color = fields.Integer(compute="_compute_dashboard")

    def _compute_client_count(self):
        counts = dict(self.env["bj.api.sync.client"].sudo()._read_group(
            [("config_id", "in", self.ids)], ["config_id"], ["__count"]
        ))
        for config in self:
            config.client_count = counts.get(config, 0)

    @api.depends("paused", "request_type")
    def _compute_dashboard(self):
        stats = self.env["bj.api.sync.config"]._dashboard_stats(self.ids)
        for config in self:
            row = stats.get(config.id, {})
            calls = row.get("calls", 0)
            errors = row.get("errors", 0)
            rate = errors / calls if calls else 0.0
            config.health_calls = calls
            config.health_errors = errors
            config.health_p50 = row.get("p50", 0)
            config.health_p95 = row.get("p95", 0)
            config.health_error_rate = rate
            config.health_success_count = row.get("successes", 0)
            config.oldest_pending_at = row.get("oldest_pending")
            config.queue_depth = row.get("pending_jobs", 0)
            config.last_success_at = row.get("last_success")
            config.last_error_at = row.get("last_error")
            if config.paused:
                state = "paused"
            elif not calls and not row.get("oldest_pending"):
                state = "idle"
            elif rate >= ERROR_RATE_CRITICAL or row.get("failed_jobs"):
                state = "error"
            elif rate > ERROR_RATE_WARNING:
                state = "warning"
            else:
                state = "ok"
            config.health_state = state
            config.health_color = HEALTH_COLORS[state]

    @api.model
    def _dashboard_stats(self, config_ids):
        """``{config_id: {calls, errors, successes, p50, p95, last_success, last_error, oldest_pending,
        pending_jobs, failed_jobs}}`` in three queries, whatever the number of configurations.

        Every log query is a range of the ``(config_id, status, create_date)`` index: the last
        24 hours, or the newest row of one status (a backward index scan that stops at once).
        """
        if not config_ids:
            return {}
        cr = self.env.cr
        self.env["bj.api.log"].flush_model(["config_id", "status", "create_date", "duration_ms"])
        self.env["bj.api.sync.job"].flush_model(["config_id", "state", "create_date"])
        ids = list(config_ids)
        stats = {cid: {} for cid in ids}
        cr.execute(
            """
            SELECT config_id, count(*),
                   count(*) FILTER (WHERE status = 'error'),
                   count(*) FILTER (WHERE status = 'success'),
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
                   percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
              FROM bj_api_log
             WHERE config_id = ANY(%s) AND status = ANY(%s)
               AND create_date >= (now() AT TIME ZONE 'UTC') - interval '24 hours'
             GROUP BY config_id
            """,
            # every status listed: one index range per (configuration, status), none scanned whole
            [ids, [value for value, _label in self.env["bj.api.log"]._fields["status"].selection]],
        )
        for cid, calls, errors, successes, p50, p95 in cr.fetchall():
            stats[cid].update(calls=calls, errors=errors, successes=successes, p50=int(p50 or 0),
                              p95=int(p95 or 0))
        cr.execute(
            """
            SELECT c.id,
                   (SELECT l.create_date FROM bj_api_log l
                     WHERE l.config_id = c.id AND l.status = 'success' ORDER BY l.create_date DESC LIMIT 1),
                   (SELECT l.create_date FROM bj_api_log l
                     WHERE l.config_id = c.id AND l.status = 'error' ORDER BY l.create_date DESC LIMIT 1)
              FROM unnest(%s::int[]) AS c(id)
            """,
            [ids],
        )
        for cid, last_success, last_error in cr.fetchall():
            stats[cid].update(last_success=last_success, last_error=last_error)
        cr.execute(
            """
            SELECT config_id,
                   min(create_date) FILTER (WHERE state IN ('pending', 'running')),
                   count(*) FILTER (WHERE state IN ('pending', 'running')),
                   count(*) FILTER (WHERE state = 'failed')
              FROM bj_api_sync_job
             WHERE config_id = ANY(%s) AND state IN ('pending', 'running', 'failed')
             GROUP BY config_id
            """,
            [ids],
        )
        for cid, oldest, pending, failed in cr.fetchall():
            stats[cid].update(oldest_pending=oldest, pending_jobs=pending, failed_jobs=failed)
        return stats

    def action_view_clients(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("API Clients"),
            "res_model": "bj.api.sync.client",
            "view_mode": "list,form",
            "domain": [("config_id", "=", self.id)],
            "context": {"default_config_id": self.id},
        }

    def action_view_request_stats(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bj_api_sync.bj_api_log_action_stats")
        action["domain"] = [("config_id", "=", self.id)]
        return action

    # ------------------------------------------------------------ the Sync Status action
    @api.model_create_multi
    def create(self, vals_list):
        configs = super().create(vals_list)
        configs._refresh_sync_actions()
        return configs

    def write(self, vals):
        result = super().write(vals)
        if {"request_type", "model_id", "active"} & set(vals):
            self._refresh_sync_actions()
        return result

    def _refresh_sync_actions(self):
        """One "Sync Status" action in the Action menu of every model an Out configuration syncs."""
        models_ = self.sudo().search([("request_type", "=", "out")]).model_id
        Action = self.env["ir.actions.server"].sudo()
        existing = Action.with_context(active_test=False).search([("code", "=", SYNC_ACTION_CODE)])
        by_model = {action.model_id: action for action in existing}
        for model in models_:
            if model not in by_model:
                Action.create({
                    "name": self.env._("Sync Status"),
                    "model_id": model.id,
                    "binding_model_id": model.id,
                    "binding_view_types": "form",
                    "state": "code",
                    "code": SYNC_ACTION_CODE,
                    "groups_id": [(6, 0, [self.env.ref("base.group_system").id])],
                })
        existing.filtered(lambda a: a.model_id not in models_).unlink()
