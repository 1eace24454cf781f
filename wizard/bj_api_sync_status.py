"""The "Sync Status" dialog of a business record: per configuration, what was synced and what failed.

Opened by the server action bound to the models of Out configurations (see
models/bj_api_sync_config_ops.py); the Resend button sends the record again, even unchanged.
"""

from odoo import api, fields, models


class BjApiSyncStatus(models.TransientModel):
    _name = "bj.api.sync.status"
    _description = "Sync Status"

    res_model = fields.Char(string="Model", readonly=True)
    res_id = fields.Integer(string="Record ID", readonly=True)
    record_name = fields.Char(string="Record", readonly=True)
    message = fields.Char(readonly=True)
    line_ids = fields.One2many("bj.api.sync.status.line", "status_id", string="Configurations", readonly=True)

    @api.model
    def _action_open(self, res_model, res_id):
        status = self.create({"res_model": res_model, "res_id": res_id})
        status._fill()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Sync Status"),
            "res_model": self._name,
            "res_id": status.id,
            "view_mode": "form",
            "target": "new",
        }

    def _fill(self):
        self.ensure_one()
        record = self.env[self.res_model].browse(self.res_id).exists()
        self.record_name = record.display_name if record else False
        Config = self.env["bj.api.sync.config"].with_context(active_test=False)
        configs = Config.search([("model_name", "=", self.res_model)])
        if not configs:
            return
        bindings = {
            b.config_id: b for b in self.env["bj.api.sync.binding"].search(
                [("config_id", "in", configs.ids), ("res_model", "=", self.res_model), ("res_id", "=", self.res_id)]
            )
        }
        # The newest error log of this record per configuration (res_ids is "1,2,3"): a backward scan of
        # the configuration's error rows (index config_id, status, create_date), never of all its logs.
        self.env["bj.api.log"].flush_model()
        self.env.cr.execute(
            r"""
            SELECT c.id,
                   (SELECT l.id FROM bj_api_log l
                     WHERE l.config_id = c.id AND l.status = 'error' AND l.res_model = %(model)s
                       AND l.res_ids ~ %(pattern)s
                     ORDER BY l.create_date DESC, l.id DESC LIMIT 1)
              FROM unnest(%(ids)s::int[]) AS c(id)
            """,
            {"model": self.res_model, "pattern": r"(^|,)%d(,|$)" % self.res_id, "ids": configs.ids},
        )
        Log = self.env["bj.api.log"]
        lines = []
        for config_id, last_error_id in self.env.cr.fetchall():
            config = Config.browse(config_id)
            binding = bindings.get(config)
            if not (binding or last_error_id):
                continue
            error = Log.browse(last_error_id)
            failed_last = bool(error) and (not binding or not binding.synced_at
                                           or error.create_date >= binding.synced_at)
            lines.append({
                "config_id": config_id,
                "binding_id": binding.id if binding else False,
                "external_id": binding.external_id if binding else False,
                "synced_at": binding.synced_at if binding else False,
                "last_status": "error" if failed_last else "success",
                "last_error_id": last_error_id or False,
                "last_error": (error.error_message or "").strip().splitlines()[0][:500]
                if error and error.error_message else False,
                "last_error_at": error.create_date if error else False,
            })
        self.line_ids = [fields.Command.create(vals) for vals in lines]


class BjApiSyncStatusLine(models.TransientModel):
    _name = "bj.api.sync.status.line"
    _description = "Sync Status Line"

    status_id = fields.Many2one("bj.api.sync.status", required=True, ondelete="cascade")
    config_id = fields.Many2one("bj.api.sync.config", string="Configuration", readonly=True)
    request_type = fields.Selection(related="config_id.request_type")
    binding_id = fields.Many2one("bj.api.sync.binding", readonly=True)
    external_id = fields.Char(string="Remote ID", readonly=True)
    synced_at = fields.Datetime(string="Last Payload Sent", readonly=True)
    last_status = fields.Selection([("success", "Success"), ("error", "Error")], readonly=True)
    last_error_id = fields.Many2one("bj.api.log", string="Last Error Log", readonly=True)
    last_error = fields.Char(readonly=True)
    last_error_at = fields.Datetime(readonly=True)

    def action_resend(self):
        """Send the record again through this configuration, even when its payload is unchanged."""
        self.ensure_one()
        status = self.status_id
        if self.binding_id:
            self.binding_id.sudo().payload_hash = False
        config = self.config_id
        result = config._make_outbound_http_request(record_ids=[status.res_id], config_id_ref=config.id)
        status.line_ids.unlink()
        status._fill()
        if result.get("job_ids"):
            message = self.env._("Queued for %s.", config.name)
        elif result.get("success"):
            message = self.env._("Sent to %s.", config.name)
        else:
            message = self.env._("Sending to %(config)s failed: %(message)s", config=config.name,
                                 message=result.get("message") or result.get("status_code"))
        status.message = message
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Sync Status"),
            "res_model": status._name,
            "res_id": status.id,
            "view_mode": "form",
            "target": "new",
        }

    def action_open_log(self):
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "res_model": "bj.api.log",
            "res_id": self.last_error_id.id,
            "view_mode": "form",
        }
