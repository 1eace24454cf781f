"""Webhook signatures following Standard Webhooks v1 (standardwebhooks.com).

A receiver can then verify our calls with any Standard Webhooks library, and we
verify BJET's the same way. The signed content is ``"{id}.{timestamp}.{body}"``
so a captured body cannot be replayed under another id or at another time;
the timestamp tolerance bounds how long a captured request stays usable.
"""

import base64
import binascii
import hashlib
import hmac
import os
import re
import time

from .errors import Msg, _lt

SECRET_PREFIX = "whsec_"
VERSION = "v1"
DEFAULT_TOLERANCE = 300  # seconds, the value the specification recommends

HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"

_INTEGER = re.compile(r"-?[0-9]+")


class SignatureError(ValueError):
    """A webhook request whose signature headers do not check out.

    Raised with a ``Msg`` (kept in ``msg``): ``str()`` is English, the Odoo side
    translates it with ``errors.translate_error(exc, env._)``.
    """

    def __init__(self, message):
        self.msg = message if isinstance(message, Msg) else None
        self.translated = False
        super().__init__(str(message))


def generate_secret():
    """A new ``whsec_`` secret holding 32 random bytes (base64)."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(32)).decode("ascii")


def secret_bytes(secret):
    """The HMAC key behind a secret.

    A ``whsec_`` prefix is dropped and the rest base64-decoded, as the
    specification prescribes. A secret that is not valid base64 (typed by hand
    on the other side, say) is used as its raw UTF-8 bytes, whole, instead of
    being refused. Note that a hand-typed secret that happens to be valid
    base64 is decoded: both sides must derive the key with this same rule.
    """
    if isinstance(secret, bytes):
        return secret
    text = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return secret.encode("utf-8")


def _to_bytes(value):
    return value if isinstance(value, (bytes, bytearray)) else str(value).encode("utf-8")


def _digest(key, msg_id, timestamp, body):
    # Bytes, not text: the body must be signed exactly as sent.
    content = b".".join((_to_bytes(msg_id), _to_bytes(int(timestamp)), _to_bytes(body)))
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest())


def sign(secret, msg_id, timestamp, body):
    """The ``v1,<base64 HMAC-SHA256>`` signature of one message."""
    digest = _digest(secret_bytes(secret), msg_id, timestamp, body)
    return f"{VERSION},{digest.decode('ascii')}"


def signature_headers(secret, msg_id, body, timestamp=None):
    """The three headers to send with an outgoing webhook."""
    if timestamp is None:
        timestamp = int(time.time())
    timestamp = int(timestamp)
    return {
        HEADER_ID: str(msg_id),
        HEADER_TIMESTAMP: str(timestamp),
        HEADER_SIGNATURE: sign(secret, msg_id, timestamp, body),
    }


def verify(secrets, headers, body, tolerance=DEFAULT_TOLERANCE, now=None):
    """Raise SignatureError unless the request is signed by an active secret.

    ``secrets`` is one secret or a list of them: during a rotation both the old
    and the new one are accepted. ``headers`` is any mapping; names are
    compared case-insensitively. The signature header may list several
    space-separated signatures (the sender is rotating too); one match with
    any secret suffices, and versions other than ``v1`` are ignored.
    """
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]
    secrets = [s for s in (secrets or []) if s]
    if not secrets:
        raise SignatureError(Msg(_lt("No webhook secret is configured to verify the signature with.")))

    lowered = {str(k).lower(): v for k, v in (headers or {}).items()}
    missing = [h for h in (HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE) if not lowered.get(h)]
    if missing:
        raise SignatureError(Msg(_lt("Missing webhook signature header(s): %(headers)s."), headers=", ".join(missing)))
    msg_id = str(lowered[HEADER_ID])
    raw_timestamp = str(lowered[HEADER_TIMESTAMP]).strip()

    if not _INTEGER.fullmatch(raw_timestamp):
        raise SignatureError(Msg(_lt("Invalid webhook-timestamp header: not an integer number of seconds.")))
    timestamp = int(raw_timestamp)
    now = int(time.time() if now is None else now)
    if timestamp < now - tolerance:
        raise SignatureError(
            Msg(
                _lt(
                    "Webhook timestamp is too old (%(seconds)s s in the past, tolerance %(tolerance)s s): "
                    "possible replay, or the sender's clock is wrong."
                ),
                seconds=now - timestamp,
                tolerance=tolerance,
            )
        )
    if timestamp > now + tolerance:
        raise SignatureError(
            Msg(
                _lt(
                    "Webhook timestamp is too new (%(seconds)s s in the future, tolerance %(tolerance)s s): "
                    "the sender's clock is wrong."
                ),
                seconds=timestamp - now,
                tolerance=tolerance,
            )
        )

    candidates = []
    for entry in str(lowered[HEADER_SIGNATURE]).split():
        version, _, signature = entry.partition(",")
        if version == VERSION and signature:
            candidates.append(signature.encode("utf-8"))

    expected = [_digest(secret_bytes(s), msg_id, timestamp, body) for s in secrets]
    # Check every pair without stopping early so timing reveals nothing.
    matched = False
    for signature in candidates:
        for digest in expected:
            matched |= hmac.compare_digest(signature, digest)
    if not matched:
        raise SignatureError(Msg(_lt("Webhook signature does not match: wrong secret or altered body.")))
