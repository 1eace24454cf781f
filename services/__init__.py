"""Odoo-aware orchestration (mapping, scripts, inbound, outbound): no HTTP framework objects."""
