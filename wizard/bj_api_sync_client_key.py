from odoo import fields, models


class BjApiSyncClientKey(models.TransientModel):
    """The dialog that shows a new key once (opened with it in its defaults, never saved)."""

    _name = "bj.api.sync.client.key"
    _description = "API Client Key"

    client_id = fields.Many2one("bj.api.sync.client", ondelete="cascade", readonly=True)
    key = fields.Char(readonly=True)
