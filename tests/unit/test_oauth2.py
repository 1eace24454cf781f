import base64
import json
from urllib.parse import parse_qsl

import pytest
from lib import oauth2
from lib.oauth2 import OAuth2Error


def test_token_request_credentials_in_body():
    body, headers = oauth2.token_request("cid", "s3c&r=t", scope="api://x/.default", audience=None)
    assert headers == {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    assert parse_qsl(body.decode()) == [
        ("grant_type", "client_credentials"),
        ("client_id", "cid"),
        ("client_secret", "s3c&r=t"),
        ("scope", "api://x/.default"),
    ]


def test_token_request_basic_and_audience():
    body, headers = oauth2.token_request("my id", "p:w", audience="https://api.example.com", client_auth="basic")
    assert parse_qsl(body.decode()) == [("grant_type", "client_credentials"), ("audience", "https://api.example.com")]
    user, _sep, password = base64.b64decode(headers["Authorization"][6:]).decode().partition(":")
    assert (user, password) == ("my%20id", "p%3Aw")  # RFC 6749 2.3.1: form-encoded, then Basic


def test_parse_success():
    answer = json.dumps({"access_token": "abc", "token_type": "bearer", "expires_in": 3599, "scope": "read"})
    token = oauth2.parse_token_response(200, answer, now=1000.0)
    assert (token.access_token, token.token_type, token.expires_at, token.scope) == ("abc", "Bearer", 4599.0, "read")
    # expires_in absent, a string, zero or garbage: the default lifetime
    for value in (None, "120", 0, "soon", -5):
        answer = {"access_token": "abc", "token_type": "Bearer"}
        if value is not None:
            answer["expires_in"] = value
        expected = 1120.0 if value == "120" else 1000.0 + oauth2.DEFAULT_LIFETIME
        assert oauth2.parse_token_response(200, json.dumps(answer), now=1000.0).expires_at == expected
    # no token_type at all (some servers): Bearer
    assert oauth2.parse_token_response(200, '{"access_token": "x"}', 0).token_type == "Bearer"
    # a form-encoded answer
    assert oauth2.parse_token_response(200, "access_token=f&token_type=bearer", 0).access_token == "f"


@pytest.mark.parametrize(
    "status, text, error",
    [
        (401, '{"error": "invalid_client", "error_description": "Bad secret"}', "invalid_client"),
        (400, '{"error": "invalid_scope"}', "invalid_scope"),
        (200, '{"error": "unauthorized_client"}', "unauthorized_client"),
        (500, "<html>down</html>", "http_error"),
        (200, "<html>login page</html>", "invalid_response"),
        (200, '{"token_type": "Bearer"}', "invalid_response"),
        (200, '{"access_token": "  "}', "invalid_response"),
        (200, '{"access_token": "x", "token_type": "mac"}', "invalid_response"),
        (200, "[1, 2]", "invalid_response"),
        (200, "", "invalid_response"),
    ],
)
def test_parse_errors(status, text, error):
    with pytest.raises(OAuth2Error) as info:
        oauth2.parse_token_response(status, text, now=0)
    assert info.value.error == error
    assert info.value.status == status


def test_error_descriptions_and_hints():
    with pytest.raises(OAuth2Error) as info:
        oauth2.parse_token_response(401, '{"error": "invalid_client", "error_description": "Bad secret"}', 0)
    assert str(info.value) == "invalid_client: Bad secret"
    assert "Client Secret" in info.value.hint
    assert OAuth2Error("something_else").hint is None
    assert str(OAuth2Error("invalid_scope")) == "invalid_scope"


def test_freshness():
    assert oauth2.is_fresh(1000.0, now=900.0)
    assert not oauth2.is_fresh(1000.0, now=950.0)  # inside the minute before expiry
    assert not oauth2.is_fresh(None, now=0)
    assert not oauth2.is_fresh(0, now=0)
    # a short-lived token (30 s) is refreshed 3 s before it expires, not a minute
    assert oauth2.refresh_margin(30) == 3.0
    assert oauth2.is_fresh(1030.0, now=1020.0, lifetime=30)
    assert not oauth2.is_fresh(1030.0, now=1028.0, lifetime=30)
    assert oauth2.refresh_margin(7200) == oauth2.REFRESH_MARGIN


def test_redaction():
    body, _headers = oauth2.token_request("cid", "top-secret", scope="a b")
    logged = oauth2.redact_form(body)
    assert "top-secret" not in logged
    assert "client_secret=***" in logged
    assert "client_id=cid" in logged
    answer = json.dumps({"access_token": "tok-1", "refresh_token": "r", "expires_in": 60, "token_type": "Bearer"})
    logged = oauth2.redact_answer(answer)
    assert "tok-1" not in logged and '"r"' not in logged
    assert json.loads(logged)["expires_in"] == 60
    assert oauth2.redact_answer("access_token=tok-1") == ""
    assert oauth2.redact_answer("") == ""
