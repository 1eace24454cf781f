"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) from ``cryptography``.

API keys and webhook secrets are stored encrypted so a database dump alone does
not leak them. The key lives outside the database (``bj_api_sync_encryption_key``
in the server config), as a comma-separated list so it can be rotated: the
first key encrypts, every key decrypts.
"""

import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

# Every Fernet token starts with the version byte 0x80 followed by a 64-bit
# timestamp whose high bytes are zero for the foreseeable future, which
# base64-encodes to this prefix.
TOKEN_PREFIX = "gAAAAA"

DECRYPT_MESSAGE = (
    "Cannot decrypt a stored secret: the encryption key does not match the one it "
    "was encrypted with. Put the old key after the new one in "
    "bj_api_sync_encryption_key to rotate."
)


MEMO_SIZE = 1024  # decrypted tokens kept per box


class CryptoError(ValueError):
    """A key is missing or malformed, or a stored secret cannot be decrypted."""


def generate_key():
    """A fresh Fernet key (urlsafe base64 text) for the server config."""
    return Fernet.generate_key().decode("ascii")


def is_encrypted(value):
    """Heuristic: does this stored value look like a Fernet token?

    Used to migrate plaintext values written before encryption was enabled.
    """
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def _split_keys(keys):
    if keys is None:
        return []
    if isinstance(keys, (bytes, bytearray)):
        keys = keys.decode("utf-8", "replace")
    if isinstance(keys, str):
        keys = keys.split(",")
    return [str(k).strip() for k in keys if k is not None and str(k).strip()]


class SecretBox:
    """Encrypts with the first key, decrypts with any (key rotation)."""

    is_encrypted = staticmethod(is_encrypted)

    def __init__(self, keys):
        key_list = _split_keys(keys)
        if not key_list:
            raise CryptoError(
                "Invalid bj_api_sync encryption key: none configured. "
                "Set bj_api_sync_encryption_key in the server config."
            )
        fernets = []
        for position, key in enumerate(key_list, start=1):
            try:
                fernets.append(Fernet(key.encode("ascii")))
            except (ValueError, TypeError, UnicodeError):
                # Never echo the key itself: error messages end up in logs.
                raise CryptoError(
                    f"Invalid bj_api_sync encryption key: key #{position} of "
                    f"{len(key_list)} is not a 32-byte urlsafe base64 Fernet key."
                ) from None
        self._fernet = MultiFernet(fernets)
        self._clear = {}  # token -> plaintext: every outbound call reads its secrets again

    def encrypt(self, plaintext):
        """Ciphertext as text; empty values pass through so "unset" stays unset."""
        if not plaintext:
            return plaintext
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token):
        """Plaintext; a key mismatch becomes a CryptoError explaining rotation."""
        if not token:
            return "" if token is not None else None
        plaintext = self._clear.get(token)
        if plaintext is None:
            try:
                plaintext = self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
            except (InvalidToken, UnicodeError):
                raise CryptoError(DECRYPT_MESSAGE) from None
            if len(self._clear) >= MEMO_SIZE:
                self._clear.clear()
            self._clear[token] = plaintext
        return plaintext

    def rotate(self, token):
        """Re-encrypt a token (readable by any key) under the first key."""
        if not token:
            return token
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeError):
            raise CryptoError(DECRYPT_MESSAGE) from None


@functools.lru_cache(maxsize=8)
def box_for(keys):
    """The shared ``SecretBox`` of a key list (parsing keys and decrypting cost more than the request).

    A token decrypts to the same plaintext for as long as the keys are the same; changed
    keys (rotation) are another box.
    """
    return SecretBox(keys)
