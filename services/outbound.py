"""Outbound sync: select, batch, send or enqueue, pull, bindings."""

from odoo import _
from odoo.exceptions import UserError


def _not_yet(what):
    raise UserError(_("%s is not available yet.", what))


def test_connection(config):
    return _not_yet(_("Test Connection"))


def preview_payload(config):
    return _not_yet(_("Preview Payload"))


def create_trigger(config):
    return _not_yet(_("Create Trigger"))


def run_now(config):
    return _not_yet(_("Run Now"))


def make_outbound_request(config, records, timeout=None, **kwargs):
    return _not_yet(_("Outbound requests"))


def cron_sync(config):
    return _not_yet(_("Scheduled sync"))
