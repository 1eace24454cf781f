"""lib.redact: secret header values are never logged."""

from lib.redact import redact_headers


def test_redact_headers():
    headers = {
        "Authorization": "Bearer x",
        "proxy-authorization": "Basic y",
        "COOKIE": "a=b",
        "Set-Cookie": "c=d",
        "X-Api-Key": "k",
        "Webhook-Signature": "v1,abc",
        "X-Tenant-Secret": "s",
        "Content-Type": "application/json",
    }
    redacted = redact_headers(headers, secret_names=["x-tenant-secret"])
    assert redacted == {
        "Authorization": "***",
        "proxy-authorization": "***",
        "COOKIE": "***",
        "Set-Cookie": "***",
        "X-Api-Key": "***",
        "Webhook-Signature": "***",
        "X-Tenant-Secret": "***",
        "Content-Type": "application/json",
    }
    assert headers["Authorization"] == "Bearer x"  # original untouched
    assert redact_headers(None) == {}
