"""Inbound API: (config, method, id, query, headers, body) → (status, headers, body)."""

from odoo import _
from odoo.exceptions import UserError


def test_connection(config):
    raise UserError(_("Test Connection is not available yet for inbound configurations."))


def download_openapi_action(config):
    raise UserError(_("Download OpenAPI is not available yet."))
