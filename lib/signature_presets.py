"""Inbound webhook signatures the way each provider signs them (pure Python, no odoo import).

``standard`` is Standard Webhooks (``lib/signing.py``); the others are:

- ``stripe``: ``Stripe-Signature: t=<unix time>,v1=<hex>[,v1=<hex>...]``, HMAC-SHA256 of
  ``"<t>.<body>"`` with the endpoint secret (``whsec_...``, used whole as the key), and a
  timestamp tolerance (Stripe's libraries default to 300 s);
- ``github``: ``X-Hub-Signature-256: sha256=<hex>``, HMAC-SHA256 of the body;
- ``shopify``: ``X-Shopify-Hmac-Sha256: <base64>``, HMAC-SHA256 of the body;
- ``generic``: HMAC-SHA256 of the body in a header you name, hex or base64 (an optional
  ``sha256=`` prefix is accepted).

Unlike Standard Webhooks, these providers use the secret's text as the key as it is (no
base64 decoding). :func:`verify` takes one secret or several (rotation: any one may match)
and raises :class:`lib.signing.SignatureError` with a translatable ``Msg``.
"""

import base64
import binascii
import hashlib
import hmac
import time

from . import signing
from .errors import Msg, _lt
from .signing import SignatureError

STANDARD = "standard"
STRIPE = "stripe"
GITHUB = "github"
SHOPIFY = "shopify"
GENERIC = "generic"
PRESETS = (STANDARD, STRIPE, GITHUB, SHOPIFY, GENERIC)

HEX = "hex"
BASE64 = "base64"
ENCODINGS = (HEX, BASE64)

# preset -> (header, encoding) of the signature
PRESET_HEADERS = {
    STRIPE: ("stripe-signature", HEX),
    GITHUB: ("x-hub-signature-256", HEX),
    SHOPIFY: ("x-shopify-hmac-sha256", BASE64),
}
DEFAULT_TOLERANCE = 300
_MISMATCH = Msg(_lt("Webhook signature does not match: wrong secret or altered body."))


def _key(secret):
    return secret if isinstance(secret, bytes) else str(secret).encode("utf-8")


def _body(body):
    if body is None:
        return b""
    return body if isinstance(body, (bytes, bytearray)) else str(body).encode("utf-8")


def hmac_sha256(secret, content):
    """The raw HMAC-SHA256 digest of ``content`` with ``secret`` (text or bytes)."""
    return hmac.new(_key(secret), _body(content), hashlib.sha256).digest()


def encode(digest, encoding):
    if encoding == BASE64:
        return base64.b64encode(digest).decode("ascii")
    return digest.hex()


def sign(preset, secret, body, timestamp=None, encoding=HEX):
    """The header value a provider would send for ``body`` (for tests and senders)."""
    if preset == STRIPE:
        timestamp = int(time.time() if timestamp is None else timestamp)
        digest = hmac_sha256(secret, b"%d." % timestamp + _body(body))
        return "t=%d,v1=%s" % (timestamp, digest.hex())
    if preset == GITHUB:
        return "sha256=" + hmac_sha256(secret, body).hex()
    if preset == SHOPIFY:
        return encode(hmac_sha256(secret, body), BASE64)
    return encode(hmac_sha256(secret, body), encoding)


def header_name(preset, header=None):
    """The (lower-case) header a preset reads its signature from."""
    if preset in PRESET_HEADERS:
        return PRESET_HEADERS[preset][0]
    if preset == STANDARD:
        return signing.HEADER_SIGNATURE
    return (header or "").strip().lower()


def _decode(value, encoding):
    """The digest bytes of a header value, or None when it is not valid in ``encoding``."""
    value = value.strip()
    if value[:7].lower() == "sha256=":
        value = value[7:]
    try:
        if encoding == BASE64:
            return base64.b64decode(value, validate=True)
        return bytes.fromhex(value)
    except (binascii.Error, ValueError):
        return None


def _secrets(secrets):
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    secrets = [s for s in (secrets or []) if s]
    if not secrets:
        raise SignatureError(Msg(_lt("No webhook secret is configured to verify the signature with.")))
    return secrets


def _any_match(secrets, content, candidates):
    """Whether one of the candidate digests is the HMAC of ``content`` with one of the secrets.

    Every comparison runs (no early exit on a match): timing tells nothing about which one failed.
    """
    ok = False
    for secret in secrets:
        expected = hmac_sha256(secret, content)
        for candidate in candidates:
            ok |= hmac.compare_digest(expected, candidate)
    return ok


def verify(preset, secrets, headers, body, *, header=None, encoding=HEX, tolerance=DEFAULT_TOLERANCE, now=None):
    """Raise SignatureError unless ``body`` is signed by one of ``secrets`` as ``preset`` signs.

    ``headers`` is any mapping (names compared case-insensitively); ``header`` and
    ``encoding`` are used by the ``generic`` preset only.
    """
    if preset in (None, False, "", STANDARD):
        signing.verify(secrets, headers, body, tolerance=tolerance, now=now)
        return
    if preset not in PRESETS:
        raise SignatureError(Msg(_lt("Unknown signature preset '%(preset)s'."), preset=preset))
    secrets = _secrets(secrets)
    lowered = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    name = header_name(preset, header)
    if not name:
        raise SignatureError(Msg(_lt("No signature header is configured.")))
    value = lowered.get(name, "").strip()
    if not value:
        raise SignatureError(Msg(_lt("Missing webhook signature header(s): %(headers)s."), headers=name))
    if preset == STRIPE:
        _verify_stripe(secrets, value, _body(body), tolerance, now)
        return
    if preset in PRESET_HEADERS:
        encoding = PRESET_HEADERS[preset][1]
    elif encoding not in ENCODINGS:
        encoding = HEX
    candidates = [d for d in (_decode(part, encoding) for part in value.replace(",", " ").split()) if d]
    if not candidates:
        raise SignatureError(Msg(_lt("Malformed signature header %(header)s."), header=name))
    if not _any_match(secrets, body, candidates):
        raise SignatureError(_MISMATCH)


def _verify_stripe(secrets, value, body, tolerance, now):
    timestamp, candidates = None, []
    for item in value.split(","):
        key, _sep, val = item.strip().partition("=")
        if key == "t" and timestamp is None:
            timestamp = val.strip()
        elif key == "v1":
            digest = _decode(val, HEX)
            if digest:
                candidates.append(digest)
    if timestamp is None or not timestamp.isdigit() or not candidates:
        raise SignatureError(Msg(_lt("Malformed signature header %(header)s."), header="Stripe-Signature"))
    now = int(time.time() if now is None else now)
    timestamp_int = int(timestamp)
    # The same messages as Standard Webhooks' (one translation).
    if tolerance and timestamp_int < now - tolerance:
        raise SignatureError(Msg(
            _lt("Webhook timestamp is too old (%(seconds)s s in the past, tolerance %(tolerance)s s): "
                "possible replay, or the sender's clock is wrong."),
            seconds=now - timestamp_int, tolerance=tolerance,
        ))
    if tolerance and timestamp_int > now + tolerance:
        raise SignatureError(Msg(
            _lt("Webhook timestamp is too new (%(seconds)s s in the future, tolerance %(tolerance)s s): "
                "the sender's clock is wrong."),
            seconds=timestamp_int - now, tolerance=tolerance,
        ))
    if not _any_match(secrets, timestamp.encode("ascii") + b"." + body, candidates):
        raise SignatureError(_MISMATCH)
