"""Authentication of both flows: outbound headers and inbound checks.

Outbound: the headers every request of a configuration carries (Basic, Bearer, custom
headers; the HMAC signature is per request, added by the sender). Inbound: the checks
of an endpoint's credentials.
"""

import base64

from odoo.exceptions import UserError

from . import oauth2
from .client import user_agent

# --------------------------------------------------------------------------
# Outbound headers
# --------------------------------------------------------------------------


def set_header(headers, key, value):
    """Set a header replacing any spelling of the same name (header names are case-insensitive)."""
    for existing in [k for k in headers if k.lower() == key.lower()]:
        del headers[existing]
    headers[key] = value


def _basic_header(config):
    credentials = "%s:%s" % (config.login or "", config._get_secret("password"))
    return "Basic " + base64.b64encode(credentials.encode("utf-8")).decode("ascii")


def _bearer_header(config):
    return "Bearer " + config._get_secret("bearer_token")


def _hmac_header(config):
    """HMAC signs each request (``signing.signature_headers``); here only the secret is checked."""
    if not config._get_secret("hmac_secret"):
        raise UserError(
            config.env._("Configuration '%s' signs requests with HMAC but has no HMAC secret.", config.name)
        )
    return None


# auth_type -> the Authorization header of every request (None: no such header)
AUTHORIZATION = {
    "basic": _basic_header,
    "bearer": _bearer_header,
    "hmac": _hmac_header,
    "oauth2": oauth2.authorization,  # fetched once, cached and refreshed: services/oauth2.py
}


def build_headers(config, body=True):
    """Headers of every request of ``config`` except the per-request ones (idempotency, signature).

    Returns ``(headers, secret_names)``; the names are redacted from logs.
    """
    headers = {"Accept": "application/json", "User-Agent": user_agent()}
    if body:
        headers["Content-Type"] = "application/json"
    authorization = AUTHORIZATION.get(config.auth_type)
    value = authorization(config) if authorization else None
    if value:
        headers["Authorization"] = value
    secret_names = []
    for row in config.header_ids:
        key = (row.key or "").strip()
        if not key:
            continue
        set_header(headers, key, row._get_value())
        if row.secret:
            secret_names.append(key)
    return headers, secret_names
