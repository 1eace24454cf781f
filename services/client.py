"""The process-wide outbound HTTP client and how its answers are read.

One pooled client per process (keep-alive connections are reused across calls and
across the outbox worker's jobs), guarded by the SSRF allow list system parameter.
"""

from odoo.modules import module as odoo_module

from ..lib.http_client import ALLOWED_HOSTS_PARAM, get_client
from .parallel import total_limit

_MODULE = __name__.split(".")[2]
CLIENT_KEY = "bj_api_sync.outbound"

_user_agent = None


def user_agent():
    """``bj_api_sync/<version>``: remotes can tell our requests apart in their logs."""
    global _user_agent
    if _user_agent is None:
        manifest = odoo_module.get_manifest(_MODULE) or {}
        _user_agent = "bj_api_sync/%s" % manifest.get("version", "18.0")
    return _user_agent


def pool_size(env):
    """Keep-alive connections kept per host: every request a worker may have in flight, for a few
    workers of this process (beyond it, connections are opened and closed per request)."""
    return max(10, 4 * total_limit(env))


def outbound_client(env):
    """The pooled client, with the allow list read from the system parameters."""
    allowed = env["ir.config_parameter"].sudo().get_param(ALLOWED_HOSTS_PARAM) or ""
    return get_client(CLIENT_KEY, allowed=allowed, user_agent=user_agent(), pool_size=pool_size(env))


def timeouts(config, timeout=None):
    """``(connect, read)`` seconds: a call's own timeout overrides the config's read timeout."""
    read = timeout[1] if isinstance(timeout, (tuple, list)) else timeout
    return (float(config.connect_timeout or 5), float(read or config.read_timeout or 15))


def parsed(outcome):
    """Parsed JSON body, else its text, else the error (no response at all)."""
    data = outcome.json()
    if data is not None:
        return data
    return outcome.text or outcome.error or ""
