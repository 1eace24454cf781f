"""Odoo-aware orchestration (mapping, scripts, inbound, outbound): no HTTP framework objects."""
from . import mapping, scripts
