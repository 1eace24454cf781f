"""Authentication on the wire: outbound headers and inbound checks.

One file for what a credential looks like in a request, whichever side builds or
reads it, so both directions and the configuration's secret fields follow the same
rules: one Bearer rule (:func:`strip_bearer`), one challenge realm.

Outbound, each Authorization Type that sends an ``Authorization`` header is one
function in ``AUTHORIZATION`` (the HMAC signature is per request, added by the sender).
Inbound, each Authorization Type is one check function in ``INBOUND_CHECKS``: a new
type is one function and one dict entry. A check receives the request being served
(``services.inbound._Call``), reads its ``env``, ``config``, ``endpoint``, ``headers``
(lower-case names) and ``body``, and returns nothing or raises the 401
:class:`SyncError` the client gets. Secrets are compared in constant time.
"""

import base64
import binascii
import hmac
import logging

from odoo.exceptions import UserError

from ..lib import signature_presets, signing
from ..lib.errors import SyncError, translate_error
from . import api_clients, oauth2
from .client import user_agent

_logger = logging.getLogger(__name__)

REALM = 'realm="bj_api_sync"'
HMAC_TOLERANCE = 300  # seconds, SPEC §6
_BEARER = "bearer "


def strip_bearer(token):
    """``token`` without surrounding spaces and any ``Bearer `` prefix (typed by hand, sent twice...).

    The one Bearer rule: the configuration stores its token through it and the
    inbound check compares both sides through it.
    """
    token = (token or "").strip()
    while token[:len(_BEARER)].lower() == _BEARER:
        token = token[len(_BEARER):].strip()
    return token


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
    for row in config._header_rows():
        key = (row.key or "").strip()
        if not key:
            continue
        set_header(headers, key, row._get_value())
        if row.secret:
            secret_names.append(key)
    return headers, secret_names


# ---------------------------------------------------------------------------
# Inbound checks
# ---------------------------------------------------------------------------


def authenticate(call):
    """Step 3 of SPEC §3: the config's Authorization Type, then its Required headers."""
    check = INBOUND_CHECKS.get(call.config.auth_type or "none")
    if check is not None:
        check(call)
    _check_required_headers(call)


def unauthorized(message, challenge):
    """The 401 of a failed check, with its ``WWW-Authenticate`` challenge."""
    return SyncError(message, status=401, headers={"WWW-Authenticate": challenge})


def _same(a, b):
    """Constant-time comparison of two texts."""
    return hmac.compare_digest((a or "").encode("utf-8"), (b or "").encode("utf-8"))


def _authorization(headers, scheme):
    """``(credentials after the scheme, whether the scheme is scheme)``; ``(None, False)`` when absent."""
    value = (headers.get("authorization") or "").strip()
    if not value:
        return None, False
    found, _sep, credentials = value.partition(" ")
    return credentials.strip(), found.lower() == scheme.lower()


def _check_none(call):
    """No Auth: anyone may call (Required headers still apply)."""


def _check_basic(call):
    env = call.env
    challenge = 'Basic %s, charset="UTF-8"' % REALM
    credentials, right_scheme = _authorization(call.headers, "Basic")
    if credentials is None:
        raise unauthorized(env._("Authentication required (Basic)."), challenge)
    if not right_scheme:
        raise unauthorized(env._("Wrong authentication scheme: Basic expected."), challenge)
    try:
        decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise unauthorized(env._("Malformed Basic credentials."), challenge) from None
    login, _sep, password = decoded.partition(":")
    expected_login = call.config.login or ""
    expected_password = call.config._get_secret("password")
    if not expected_login or not expected_password:
        _logger.warning("bj_api_sync: endpoint %r uses Basic Auth without login or password", call.endpoint)
    # Both comparisons always run: timing tells nothing about which one failed.
    ok = _same(login, expected_login) & _same(password, expected_password)
    if not (ok and expected_login and expected_password):
        raise unauthorized(env._("Invalid credentials."), challenge)


def _check_bearer(call):
    env = call.env
    challenge = "Bearer %s" % REALM
    value = (call.headers.get("authorization") or "").strip()
    if not value:
        raise unauthorized(env._("Authentication required (Bearer token)."), challenge)
    if " " in value:
        scheme, _sep, token = value.partition(" ")
        if scheme.lower() != "bearer":
            raise unauthorized(env._("Wrong authentication scheme: Bearer expected."), challenge)
    else:
        token = value  # a bare token, as some clients send it
    token = strip_bearer(token)
    expected = strip_bearer(call.config._get_secret("bearer_token"))
    if not expected:
        _logger.warning("bj_api_sync: endpoint %r uses a Bearer token but none is set", call.endpoint)
    if not (_same(token, expected) and expected):
        raise unauthorized(env._("Invalid token."), '%s, error="invalid_token"' % challenge)


def _hmac_secrets(call, challenge):
    """The configuration's HMAC secrets; refuses a call when none is set or its body is too large."""
    secret = call.config._get_secret("hmac_secret")
    # Several secrets separated by spaces or commas are all accepted (rotation).
    secrets = [s for s in secret.replace(",", " ").split() if s]
    if not secrets:
        _logger.warning("bj_api_sync: endpoint %r uses HMAC but no secret is set", call.endpoint)
        raise unauthorized(call.env._("Invalid signature."), challenge)
    if call.body_too_large():
        # The signature covers the whole body, which was not read: refuse on size.
        raise call.too_large_error()
    return secrets


def _check_hmac(call):
    """Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` over the body."""
    env = call.env
    challenge = 'Webhook-Signature %s, headers="webhook-id webhook-timestamp webhook-signature"' % REALM
    secrets = _hmac_secrets(call, challenge)
    try:
        signing.verify(secrets, call.headers, call.body, tolerance=HMAC_TOLERANCE)
    except signing.SignatureError as exc:
        raise unauthorized(str(translate_error(exc, env._)), challenge) from None


def _check_required_headers(call):
    """Headers rows marked Required: each must be sent with its configured value."""
    for header in call.config._header_rows().filtered("required"):
        sent = call.headers.get((header.key or "").strip().lower())
        expected = header._get_value()
        if sent is None or not expected or not _same(sent, expected):
            raise unauthorized(
                call.env._("Missing or invalid header '%s'.", header.key),
                'ApiKey %s, header="%s"' % (REALM, header.key),
            )


# auth_type -> check, one entry per value of the config's auth_type selection. A value missing
# here gets no check, like "none" (as before this table): add the entry with the selection value.
INBOUND_CHECKS = {
    "none": _check_none,
    "basic": _check_basic,
    "bearer": _check_bearer,
    "hmac": _check_hmac,
}


# ---------------------------------------------------------------------------
# Signature presets, API clients, Odoo API keys (readme/OPERATIONS.md)
# ---------------------------------------------------------------------------


def _check_hmac_preset(call):
    """HMAC Signature, as the configuration's Signature Preset signs (Standard Webhooks by default)."""
    preset = call.config.hmac_preset or signature_presets.STANDARD
    if preset == signature_presets.STANDARD:
        _check_hmac(call)
        return
    env = call.env
    header = signature_presets.header_name(preset, call.config.hmac_header) or "signature"
    challenge = 'HMAC-SHA256 %s, header="%s"' % (REALM, header)
    secrets = _hmac_secrets(call, challenge)
    try:
        signature_presets.verify(
            preset, secrets, call.headers, call.body, header=call.config.hmac_header,
            encoding=call.config.hmac_encoding, tolerance=HMAC_TOLERANCE,
        )
    except signing.SignatureError as exc:
        raise unauthorized(str(translate_error(exc, env._)), challenge) from None


INBOUND_CHECKS.update({
    "hmac": _check_hmac_preset,
    "api_client": api_clients.check_api_client,
    "odoo_api_key": api_clients.check_odoo_api_key,
})
