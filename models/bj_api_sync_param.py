from odoo import api, fields, models
from odoo.exceptions import ValidationError


class BjApiSyncParam(models.Model):
    _name = "bj.api.sync.param"
    _description = "Parameters"
    _order = "config_id, sequence, id"

    config_id = fields.Many2one("bj.api.sync.config", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(default=10)
    model_id = fields.Many2one(related="config_id.model_id", string="Config Model")
    key = fields.Char(required=True, help="Query parameter name, e.g. res_name in ?res_name=Azure.")
    field_id = fields.Many2one(
        "ir.model.fields",
        required=True,
        ondelete="cascade",
        domain="[('model_id', '=', model_id), ('store', '=', True)]",
        help="Field filtered by this parameter.",
    )
    operator = fields.Selection(
        [
            ("=", "is equal"),
            ("!=", "is not equal"),
            (">", "greater than"),
            (">=", "greater than or equal"),
            ("<", "lower than"),
            ("<=", "lower than or equal"),
            ("ilike", "contains"),
            ("not ilike", "does not contain"),
            ("in", "is in"),
            ("not in", "is not in"),
            ("=ilike", "matches (case-insensitive)"),
        ],
        string="Domain Operator",
        required=True,
        default="=",
        help="?key=value adds (field, operator, value) to the domain; "
        "in / not in take comma-separated values.",
    )

    _sql_constraints = [
        ("key_unique", "unique(config_id, key)", "A parameter key is used twice in the same configuration."),
    ]

    @api.constrains("field_id", "config_id")
    def _check_field_model(self):
        for param in self:
            if param.field_id.model_id != param.config_id.model_id:
                raise ValidationError(
                    self.env._("Parameter '%s': the field must belong to the configuration's model.", param.key)
                )
