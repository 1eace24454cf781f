from odoo import api, fields, models
from odoo.exceptions import ValidationError

RELATIONAL_TTYPES = ("many2one", "one2many", "many2many")


class BjApiSyncConfigLine(models.Model):
    _name = "bj.api.sync.config.line"
    _description = "Configuration Lines"
    _order = "config_id, sequence, id"

    config_id = fields.Many2one("bj.api.sync.config", required=True, ondelete="cascade", index=True)
    sequence = fields.Integer(default=10)
    model_id = fields.Many2one(related="config_id.model_id", string="Config Model")
    field_id = fields.Many2one(
        "ir.model.fields",
        required=True,
        ondelete="cascade",
        domain="[('model_id', '=', model_id)]",
        help="Odoo field of the configuration's model.",
    )
    field_name = fields.Char(related="field_id.name", string="Field Name")
    field_ttype = fields.Selection(related="field_id.ttype", string="Field Type")
    value_type = fields.Selection(
        [
            ("plain", "Plain"),
            ("relational", "Relational with Mapping Model"),
            ("python_plain", "Python Script for Plain Value"),
            ("python_relational", "Relational with Python Script"),
        ],
        string="Value Calculation Type",
        required=True,
        help="Plain: copy the value. Relational with Mapping Model: nest or resolve related records "
        "through another configuration. Python types: compute the value with the line's script.",
    )
    api_key = fields.Char(
        string="External API Key",
        required=True,
        help="Key of this value in the external JSON payload.",
    )
    mapping_config_id = fields.Many2one(
        "bj.api.sync.config",
        string="Mapping Model",
        ondelete="restrict",
        help="Configuration of the related model used to serialize and resolve relational values.",
    )
    is_record_identifier = fields.Boolean(
        help="The field that identifies a record between Odoo and the external system. "
        "Exactly one per configuration.",
    )
    script_mode = fields.Selection(
        [("eval", "Evaluate"), ("exec", "Execute")],
        string="Script Evaluation Mode",
        default="eval",
        help="Evaluate: the expression's value is used. Execute: statements run; "
        "the value of 'result', if assigned, is used.",
    )
    python_script = fields.Text(
        help="Python code run with odoo.tools.safe_eval; see the Script button for the variables.",
    )
    required = fields.Boolean(
        help="Inbound: a create without this key, or a create or update setting it to null or empty, is refused "
        "with 400."
    )
    direction = fields.Selection(
        [("both", "Both"), ("in", "In"), ("out", "Out")],
        default="both",
        required=True,
        help="Directions in which this line applies. In on an Out configuration: write-back, the "
        "value is taken from the remote's answer to a push (its id, a status) and written on the record.",
    )

    # A line's direction decides its configuration's stored has_write_back, which the
    # configuration cache holds: recomputed without a write of the configuration.
    @api.model_create_multi
    def create(self, vals_list):
        lines = super().create(vals_list)
        self.env["bj.api.sync.config"]._forget_cached_configs()
        return lines

    def write(self, vals):
        result = super().write(vals)
        if {"direction", "config_id"} & set(vals):
            self.env["bj.api.sync.config"]._forget_cached_configs()
        return result

    def unlink(self):
        self.env["bj.api.sync.config"]._forget_cached_configs()
        return super().unlink()

    @api.depends("field_id", "api_key")
    def _compute_display_name(self):
        for line in self:
            line.display_name = "%s → %s" % (line.field_id.display_name or "", line.api_key or "")

    @api.constrains("field_id", "config_id")
    def _check_field_model(self):
        for line in self:
            if line.field_id.model_id != line.config_id.model_id:
                raise ValidationError(
                    self.env._(
                        "Field '%(field)s' does not belong to the model %(model)s of configuration '%(config)s'.",
                        field=line.field_id.display_name,
                        model=line.config_id.model_id.model,
                        config=line.config_id.name,
                    )
                )

    @api.constrains("value_type", "mapping_config_id", "field_id")
    def _check_mapping(self):
        for line in self:
            if line.mapping_config_id and line.mapping_config_id == line.config_id:
                raise ValidationError(
                    self.env._("Configuration '%s' cannot be its own Mapping Model.", line.config_id.name)
                )
            if line.value_type in ("relational", "python_relational") and line.field_id.ttype not in RELATIONAL_TTYPES:
                raise ValidationError(
                    self.env._(
                        "Line '%s': a relational value type needs a many2one, one2many or many2many field.",
                        line.api_key,
                    )
                )
            if line.value_type == "relational":
                if not line.mapping_config_id:
                    raise ValidationError(
                        self.env._("Line '%s': Relational with Mapping Model needs a Mapping Model.", line.api_key)
                    )
                if line.mapping_config_id.model_id.model != line.field_id.relation:
                    raise ValidationError(
                        self.env._(
                            "Line '%(key)s': the Mapping Model works on %(mapped)s "
                            "but the field points to %(comodel)s.",
                            key=line.api_key,
                            mapped=line.mapping_config_id.model_id.model,
                            comodel=line.field_id.relation,
                        )
                    )

    @api.constrains("is_record_identifier", "config_id")
    def _check_single_identifier(self):
        self.config_id._check_record_identifier()

    def action_open_script(self):
        """The Script dialog: the line's script fields and the in-app manual."""
        self.ensure_one()
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("Python Script"),
            "res_model": self._name,
            "res_id": self.id,
            "view_mode": "form",
            "view_id": self.env.ref("bj_api_sync.bj_api_sync_config_line_view_form_script").id,
            "target": "new",
        }
