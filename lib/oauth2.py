"""OAuth2 client credentials (RFC 6749 §4.4), the pure part: requests, answers, expiry.

``token_request`` builds the form body and headers of a token request,
``parse_token_response`` reads the authorization server's answer (a ``Token`` or an
``OAuth2Error`` naming the RFC 6749 §5.2 error code), ``is_fresh`` says whether a cached
token may still be sent, and ``redact_*`` keep secrets out of the logs. The HTTP call,
the cache and the refresh live in ``services/oauth2.py``.

No Odoo import: ``tests/unit/test_oauth2.py`` tests this module with plain pytest.
"""

import base64
import json
from dataclasses import dataclass
from urllib.parse import parse_qsl, quote, urlencode

from .errors import _lt

DEFAULT_LIFETIME = 3600  # seconds, when the server gives no expires_in (RFC 6749 §5.1 makes it optional)
REFRESH_MARGIN = 60  # seconds: a token that expires sooner is refreshed before it is sent
MASK = "***"
SECRET_FORM_KEYS = frozenset({"client_secret", "client_assertion", "password", "refresh_token"})
SECRET_ANSWER_KEYS = frozenset({"access_token", "refresh_token", "id_token"})

# RFC 6749 §5.2 error codes -> what to check (English templates, translated by the Odoo side)
HINTS = {
    "invalid_client": _lt("check the Client ID and the Client Secret (and Client Authentication)"),
    "invalid_scope": _lt("check the Scope"),
    "unauthorized_client": _lt("this client may not use the client credentials grant"),
    "unsupported_grant_type": _lt("the server does not offer the client credentials grant at this Token URL"),
    "invalid_request": _lt("the server refused the request: check the Token URL, Scope and Audience"),
    "invalid_grant": _lt("the server refused the grant: check the Scope and Audience"),
    "invalid_target": _lt("check the Audience"),
}


@dataclass
class Token:
    access_token: str
    token_type: str
    expires_at: float  # seconds since the epoch
    scope: str = None


class OAuth2Error(Exception):
    """A token request that failed: ``error`` is RFC 6749's code (or ours: ``http_error``,
    ``invalid_response``), ``description`` the server's words, ``status`` the HTTP status."""

    def __init__(self, error, description="", status=0):
        self.error = error or "invalid_response"
        self.description = description or ""
        self.status = status
        super().__init__("%s: %s" % (self.error, self.description) if self.description else self.error)

    @property
    def hint(self):
        return HINTS.get(self.error)


def token_request(client_id, client_secret, scope=None, audience=None, client_auth="body"):
    """``(body bytes, headers)`` of a client-credentials token request.

    ``client_auth``: ``"body"`` sends ``client_id``/``client_secret`` in the form
    (client_secret_post: Microsoft Entra, Auth0, Salesforce, HubSpot); ``"basic"`` in an
    ``Authorization: Basic`` header (client_secret_basic, RFC 6749 §2.3.1: both values
    form-encoded first). ``audience`` is sent when set (Auth0, Okta custom servers).
    """
    form = [("grant_type", "client_credentials")]
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    if client_auth == "basic":
        pair = "%s:%s" % (quote(client_id or "", safe=""), quote(client_secret or "", safe=""))
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode("utf-8")).decode("ascii")
    else:
        form += [("client_id", client_id or ""), ("client_secret", client_secret or "")]
    if scope:
        form.append(("scope", scope))
    if audience:
        form.append(("audience", audience))
    return urlencode(form).encode("ascii"), headers


def expires_at(now, expires_in, default=DEFAULT_LIFETIME):
    """When a token given ``expires_in`` seconds at ``now`` expires (``default`` when absent or bad)."""
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError):
        seconds = default
    if seconds != seconds or seconds <= 0:  # NaN, zero, negative: take the default
        seconds = default
    return now + seconds


def refresh_margin(lifetime):
    """Seconds before expiry at which a token is refreshed: a minute, or a tenth of a short lifetime."""
    return min(REFRESH_MARGIN, max(lifetime, 0) / 10.0)


def is_fresh(expiry, now, lifetime=None):
    """Whether a token expiring at ``expiry`` may still be sent at ``now``."""
    if not expiry:
        return False
    margin = REFRESH_MARGIN if lifetime is None else refresh_margin(lifetime)
    return expiry - margin > now


def parse_token_response(status, text, now):
    """The ``Token`` of a token endpoint's answer, or raises ``OAuth2Error``."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        data = None
    if not isinstance(data, dict):
        # a few servers answer form-encoded (GitHub's OAuth apps without Accept)
        form = dict(parse_qsl(text or "", keep_blank_values=True)) if text and "=" in text else {}
        data = form or None
    if not 200 <= status < 300:
        if isinstance(data, dict) and data.get("error"):
            raise OAuth2Error(str(data["error"]), str(data.get("error_description") or ""), status)
        raise OAuth2Error("http_error", "HTTP status %s" % status, status)
    if not isinstance(data, dict):
        raise OAuth2Error("invalid_response", "the answer is not a JSON object", status)
    if data.get("error"):
        raise OAuth2Error(str(data["error"]), str(data.get("error_description") or ""), status)
    token = data.get("access_token")
    if not isinstance(token, str) or not token.strip():
        raise OAuth2Error("invalid_response", "the answer has no access_token", status)
    token_type = str(data.get("token_type") or "Bearer")
    if token_type.lower() not in ("bearer", "bearertoken"):
        raise OAuth2Error("invalid_response", "unsupported token_type %s" % token_type, status)
    return Token(token.strip(), "Bearer", expires_at(now, data.get("expires_in")), data.get("scope"))


def redact_form(body):
    """A token request's form body for the logs: secrets replaced by ``***``."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else (body or "")
    pairs = parse_qsl(text, keep_blank_values=True)
    return urlencode([(k, MASK if k in SECRET_FORM_KEYS else v) for k, v in pairs], safe="*")


def redact_answer(text):
    """A token endpoint's answer for the logs: tokens replaced by ``***`` (text that is not JSON is dropped)."""
    try:
        data = json.loads(text) if text else None
    except ValueError:
        return ""
    if isinstance(data, dict):
        data = {k: (MASK if k in SECRET_ANSWER_KEYS else v) for k, v in data.items()}
        return json.dumps(data, ensure_ascii=False)
    return ""
