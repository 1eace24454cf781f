"""Circuit breaker: a configuration whose remote keeps failing pauses itself.

After ``max_consecutive_failures`` failed deliveries in a row (or at once on 410 Gone)
the configuration is paused, its responsible user told; a probe request is sent every
``bj_api_sync.probe_interval_minutes`` and deliveries resume when one succeeds.
Counts are written in a transaction of their own for immediate delivery (the user's
save must neither contend on the config row nor forget a failure on rollback).
"""

import logging
from datetime import timedelta

from odoo import fields

from .auth import build_headers
from .client import outbound_client, timeouts
from .transaction import detached_env

_logger = logging.getLogger(__name__)

PROBE_MINUTES_PARAM = "bj_api_sync.probe_interval_minutes"


def param_int(env, key, default):
    try:
        return int(env["ir.config_parameter"].sudo().get_param(key, default))
    except (TypeError, ValueError):
        return default


def may_send(config):
    """False while paused, except for the circuit breaker's due probe."""
    if not config.paused:
        return True
    return config.pause_reason == "circuit" and (config.next_probe_at or fields.Datetime.now()) <= fields.Datetime.now()


def record_success(config):
    config = config.sudo()
    vals = {}
    if config.consecutive_failures:
        vals["consecutive_failures"] = 0
    if config.paused and config.pause_reason == "circuit":
        vals.update(paused=False, pause_reason=False, next_probe_at=False)
        config.message_post(body=config.env._("A probe request succeeded: deliveries resumed."))
    if vals:
        config.write(vals)


def record_failure(config, status, count=1):
    """Pause after max_consecutive_failures failures in a row, or at once on 410."""
    config = config.sudo()
    failures = config.consecutive_failures + count
    vals = {"consecutive_failures": failures}
    threshold = config.max_consecutive_failures
    if config.paused and config.pause_reason == "circuit":
        vals["next_probe_at"] = fields.Datetime.now() + timedelta(
            minutes=param_int(config.env, PROBE_MINUTES_PARAM, 5)
        )
    elif not config.paused and (status == 410 or (threshold and failures >= threshold)):
        reason = (
            config.env._("the remote answered 410 Gone")
            if status == 410
            else config.env._("%s failed deliveries in a row", failures)
        )
        pause(config, reason)
        return
    config.write(vals)


def record_outcomes(config, succeeded, failed, last_status=None):
    """The outcome of an immediate call, counted in a transaction of its own."""
    if not (succeeded or failed) or (not failed and not config.consecutive_failures and not config.paused):
        return
    with detached_env(config.env) as env:
        config = config.with_env(env).sudo()
        if failed:
            record_failure(config, last_status, count=failed)
        else:
            record_success(config)


def probe_immediate(env):
    """Probe configs paused by the circuit breaker that have no queued job to probe with."""
    now = fields.Datetime.now()
    configs = env["bj.api.sync.config"].sudo().search(
        [("paused", "=", True), ("pause_reason", "=", "circuit"), ("next_probe_at", "<=", now),
         ("delivery", "=", "immediate")]
    )
    for config in configs:
        if env["bj.api.sync.job"].sudo().search_count([("config_id", "=", config.id), ("state", "=", "pending")]):
            continue
        try:
            headers, _secrets = build_headers(config, body=False)
            outcome = outbound_client(env).send(
                "HEAD", config.url.split("{", 1)[0], headers=headers, max_retries=0,
                timeout=timeouts(config),
            )
            reachable = outcome.status and outcome.status < 500 and outcome.status not in (408, 410, 429)
        except Exception:  # noqa: BLE001 - a probe failing is the expected case
            reachable = False
        if reachable:
            record_success(config)
        else:
            record_failure(config, None)


def pause(config, reason):
    """Pause a config by the circuit breaker, tell its responsible user."""
    minutes = param_int(config.env, PROBE_MINUTES_PARAM, 5)
    config.write(
        {
            "paused": True,
            "pause_reason": "circuit",
            "consecutive_failures": max(config.consecutive_failures + 1, config.max_consecutive_failures),
            "next_probe_at": fields.Datetime.now() + timedelta(minutes=minutes),
        }
    )
    message = config.env._(
        "Deliveries paused: %(reason)s. Pending jobs wait; a probe is sent every %(minutes)s minutes "
        "and deliveries resume when it succeeds, or press Resume.",
        reason=reason,
        minutes=minutes,
    )
    config.message_post(body=message, message_type="comment", subtype_xmlid="mail.mt_comment")
    if config.responsible_id:
        config.activity_schedule(
            "mail.mail_activity_data_todo",
            summary=config.env._("API deliveries paused"),
            note=message,
            user_id=config.responsible_id.id,
        )
