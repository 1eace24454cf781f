from odoo import fields, models


class BjHttpMethod(models.Model):
    _name = "bj.http.method"
    _description = "HTTP Method"
    _order = "sequence, id"

    name = fields.Char(required=True, help="HTTP verb, upper case (GET, POST, PUT, DELETE, PATCH).")
    sequence = fields.Integer(default=10)

    _sql_constraints = [
        ("name_unique", "unique(name)", "An HTTP method with this name already exists."),
    ]

    def write(self, vals):
        result = super().write(vals)
        if {"name", "sequence"} & set(vals):
            self.env["bj.api.sync.config"]._forget_cached_configs()  # the configurations' method_names
        return result
