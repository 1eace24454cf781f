"""Header redaction: what may be logged of a request's or a response's headers.

Pure Python. Used for the API log of inbound requests and outbound calls alike, so it
stands apart from the HTTP client.
"""

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "webhook-signature",
    }
)


def redact_headers(headers, secret_names=()):
    """Copy of ``headers`` with secret values replaced by ``***``."""
    if isinstance(secret_names, str):
        secret_names = [secret_names]
    secrets = SECRET_HEADERS | {str(name).lower() for name in secret_names or ()}
    return {
        key: ("***" if str(key).lower() in secrets else value)
        for key, value in dict(headers or {}).items()
    }
