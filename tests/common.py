"""Shared fixtures for the Odoo tests: configs built the way a user builds them."""

from odoo import Command
from odoo.tests import TransactionCase


class BjCase(TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Config = cls.env["bj.api.sync.config"]
        cls.methods = {m.name: m for m in cls.env["bj.http.method"].search([])}
        cls.partner_model = cls.env.ref("base.model_res_partner")

    @classmethod
    def _field(cls, model, name):
        return cls.env["ir.model.fields"]._get(model, name)

    @classmethod
    def _line(cls, model, field, key, **kw):
        vals = {"field_id": cls._field(model, field).id, "value_type": "plain", "api_key": key}
        vals.update(kw)
        return Command.create(vals)

    @classmethod
    def _config(cls, **vals):
        defaults = {
            "name": "Test config",
            "request_type": "in",
            "endpoint": "test-%s" % len(cls.Config.search([])),
            "model_id": cls.partner_model.id,
            "http_method_ids": [Command.set([cls.methods[m].id for m in ("GET", "POST", "PUT", "DELETE")])],
            "auth_type": "none",
        }
        if vals.get("request_type") == "out":
            defaults.update(endpoint=False, url="https://api.example.com/partners")
            defaults["http_method_ids"] = [Command.set([cls.methods["POST"].id])]
        defaults.update(vals)
        return cls.Config.create(defaults)
