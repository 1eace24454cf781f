"""Shared fixtures for the Odoo tests: configs built the way a user builds them.

- ``line(env, model, field, key, **kw)``: a plain mapping line, as a ``Command.create``;
- ``in_config(env, endpoint, methods=..., fields=..., **vals)``: an inbound config of partners;
- ``BjCase`` (TransactionCase): ``_config``, ``_line``, and ``ConfigMixin``'s ``Config``,
  ``methods``, ``_field``, ``_line_of``;
- ``InboundCase`` (HttpCase, with ``ConfigMixin`` too): real HTTP requests to ``API``,
  ``_in_config``, ``call``, ``assertStatus``, ``assertError``.
"""

import json

from odoo import Command
from odoo.tests import HttpCase, TransactionCase

API = "/bj_api_sync/v1"
ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def line(env, model, field, key, **kw):
    """A plain line mapping ``model.field`` to ``key`` (``kw`` adds or overrides values)."""
    vals = {"field_id": env["ir.model.fields"]._get(model, field).id, "value_type": "plain", "api_key": key}
    vals.update(kw)
    return Command.create(vals)


def in_config(env, endpoint, methods=ALL_METHODS, fields=("email", "phone"), **vals):
    """An inbound config of res.partner on ``API/<endpoint>``: no authentication, run as admin,
    ``id`` the record identifier, ``name`` required, then one plain line per name in ``fields``;
    ``vals`` override any of it."""
    by_name = {m.name: m for m in env["bj.http.method"].search([])}
    defaults = {
        "name": "Test %s" % endpoint,
        "request_type": "in",
        "endpoint": endpoint,
        "model_id": env.ref("base.model_res_partner").id,
        "http_method_ids": [Command.set([by_name[m].id for m in methods])],
        "auth_type": "none",
        "user_id": env.ref("base.user_admin").id,
        "line_ids": [
            line(env, "res.partner", "id", "id", is_record_identifier=True),
            line(env, "res.partner", "name", "name", required=True),
        ]
        + [line(env, "res.partner", name, name) for name in fields],
    }
    defaults.update(vals)
    return env["bj.api.sync.config"].create(defaults)


class ConfigMixin:
    """What both test bases have: ``Config``, ``methods`` (by name), ``_field``, ``_line_of``."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Config = cls.env["bj.api.sync.config"]
        cls.methods = {m.name: m for m in cls.env["bj.http.method"].search([])}

    @classmethod
    def _field(cls, model, name):
        return cls.env["ir.model.fields"]._get(model, name)

    def _line_of(self, config, key):
        return config.line_ids.filtered(lambda line: line.api_key == key)


class BjCase(ConfigMixin, TransactionCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.partner_model = cls.env.ref("base.model_res_partner")

    @classmethod
    def _line(cls, model, field, key, **kw):
        return line(cls.env, model, field, key, **kw)

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


class InboundCase(ConfigMixin, HttpCase):
    """Real HTTP requests against the demo configs and configs built like a user would."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.Partner = cls.env["res.partner"]
        cls.Log = cls.env["bj.api.log"]
        cls.partners_config = cls.env.ref("bj_api_sync.demo_config_partners")
        cls.public_config = cls.env.ref("bj_api_sync.demo_config_public")
        cls.person = cls.Partner.create({"name": "Inbound Person", "email": "person@example.com", "phone": "+100"})
        cls.company = cls.Partner.create({"name": "Inbound Company", "is_company": True})

    @classmethod
    def _line(cls, field, key, model="res.partner", **kw):
        return line(cls.env, model, field, key, **kw)

    @classmethod
    def _in_config(cls, endpoint, methods=ALL_METHODS, **vals):
        return in_config(cls.env, endpoint, methods, **{"filter_domain": "[('is_company', '=', False)]", **vals})

    def call(self, method, path, body=None, *, token="demo-token", headers=None, raw=None, content_type=None):
        headers = dict(headers or {})
        if token is not None:
            headers.setdefault("Authorization", "Bearer %s" % token)
        data = raw
        if data is None and body is not None:
            data = json.dumps(body)
        if data is not None:
            headers.setdefault("Content-Type", content_type or "application/json")
        return self.opener.request(method, self.base_url() + API + path, data=data, headers=headers, timeout=60)

    def assertStatus(self, response, status):
        self.assertEqual(response.status_code, status, response.text[:2000])

    def assertError(self, response, status, fragment=None):
        self.assertStatus(response, status)
        body = response.json()
        self.assertEqual(body["status_code"], status)
        message = body.get("message", body.get("error"))
        self.assertTrue(message)
        if "error" in body:
            self.assertEqual(set(body), {"error", "line_id", "status_code"})
        else:
            self.assertEqual(set(body), {"message", "status_code"})
        if fragment:
            self.assertIn(fragment, message)
        return body

    def last_log(self):
        return self.Log.search([("direction", "=", "in")], order="id desc", limit=1)
