from odoo import api, fields, models


class BjApiSyncHeader(models.Model):
    _name = "bj.api.sync.header"
    _description = "Headers"
    _inherit = ["bj.api.sync.secret.mixin"]
    _order = "config_id, sequence, id"

    _bj_secret_fields = {"secret_value": "value_encrypted"}

    config_id = fields.Many2one("bj.api.sync.config", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(default=10)
    key = fields.Char(required=True, help="Header name, e.g. X-API-Key.")
    value = fields.Char(
        compute="_compute_value",
        inverse="_inverse_value",
        help="Header value. Secret values are stored encrypted and shown masked.",
    )
    value_plain = fields.Char(copy=True)
    secret_value = fields.Char(compute="_compute_secret_masks")
    value_encrypted = fields.Char(copy=True, groups="base.group_system")
    secret = fields.Boolean(help="Store the value encrypted, mask it and redact it from logs.")
    required = fields.Boolean(
        help="Inbound only: callers must send this header with exactly this value, else 401. "
        "Rows not required are added to every response.",
    )

    @api.depends("value_encrypted")
    def _compute_secret_masks(self):
        return super()._compute_secret_masks()

    @api.depends("value_plain", "value_encrypted", "secret")
    def _compute_value(self):
        self._compute_secret_masks()
        for header in self:
            header.value = header.secret_value if header.secret else header.value_plain

    def _inverse_value(self):
        for header in self:
            if header.secret:
                header._bj_store_secret("secret_value", header.value)
                header.value_plain = False
            else:
                header.value_plain = header.value

    def _bj_masked_extra_fields(self):
        return ["value"]

    @api.model_create_multi
    def create(self, vals_list):
        headers = super().create(vals_list)
        headers.config_id._forget_cached_configs(())  # the configuration's has_headers
        return headers

    def unlink(self):
        self.config_id._forget_cached_configs(())
        return super().unlink()

    def write(self, vals):
        result = super().write(vals)
        if "config_id" in vals:
            self.env["bj.api.sync.config"]._forget_cached_configs()  # the old and the new configuration
        if vals.get("secret"):
            # A row turned secret: move its clear value into the encrypted column.
            for header in self.filtered("value_plain"):
                header._bj_store_secret("secret_value", header.value_plain)
                header.value_plain = False
            self._bj_forget_clear_values()
        return result

    def _get_value(self):
        """Header value in clear text, for sending and comparing only."""
        self.ensure_one()
        return self._get_secret("secret_value") if self.secret else (self.value_plain or "")
