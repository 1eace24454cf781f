from odoo import fields, models


class BjApiSyncBinding(models.Model):
    _name = "bj.api.sync.binding"
    _description = "Sync Binding"
    _order = "synced_at desc, id desc"

    config_id = fields.Many2one(
        "bj.api.sync.config", string="Configuration", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="config_id.company_id", store=True)
    res_model = fields.Char(string="Model", required=True)
    res_id = fields.Many2oneReference(string="Record ID", model_field="res_model", required=True)
    external_id = fields.Char(string="External ID", index=True, help="Remote id found in the response.")
    payload_hash = fields.Char(help="SHA-256 of the last payload sent; unchanged payloads are skipped.")
    synced_at = fields.Datetime(string="Synced At")

    _sql_constraints = [
        ("record_unique", "unique(config_id, res_model, res_id)", "One binding per record and configuration."),
    ]
