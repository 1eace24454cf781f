"""lib.http_client against real HTTP(S) servers on 127.0.0.1.

No mocks of ``requests``: every test talks to the test sink (tests/http_sink.py, a
``http.server`` running in a thread). Nothing is ever sent to a non-loopback address --
tests that name one rely on the guard refusing before any connection is made.
The guard and address pinning are tested in test_ssrf.py, header redaction in
test_redact.py.
"""

import datetime
import json
import time

import pytest
from http_helpers import LOOPBACK, UTC, SleepRecorder
from lib import http_client
from lib.http_client import (
    HostGuard,
    HttpClient,
    backoff_delay,
    get_client,
    parse_retry_after,
)

from http_sink import HANG, HttpSink, free_port


@pytest.fixture
def client():
    with HttpClient(guard=HostGuard([LOOPBACK])) as c:
        yield c


# --------------------------------------------------------------------------
# Retries
# --------------------------------------------------------------------------


def test_500_500_200_retries_then_succeeds(client):
    seen = []
    sleep = SleepRecorder()
    replies = [
        (500, b"boom"),
        (500, b"boom"),
        (200, b'{"ok": true}', {"Content-Type": "application/json"}),
    ]
    with HttpSink(replies) as server:
        result = client.send(
            "POST",
            server.url("/items"),
            body='{"a": 1}',
            sleep=sleep,
            on_attempt=seen.append,
            headers={"Content-Type": "application/json"},
        )
    assert result.ok and result.status == 200
    assert result.json() == {"ok": True}
    assert [a.status for a in seen] == [500, 500, 200]
    assert [a.number for a in seen] == [1, 2, 3]
    assert [a.will_retry for a in seen] == [True, True, False]
    assert result.attempts == seen
    assert seen[0].text == "boom" and seen[0].error is None
    assert len(sleep.calls) == 2
    # backoff 2.0: 2 s then 4 s, each plus up to 10 % jitter
    assert 2.0 <= sleep.calls[0] <= 2.2 and 4.0 <= sleep.calls[1] <= 4.4
    assert [a.delay for a in seen[:2]] == sleep.calls
    assert [r.body for r in server.requests] == [b'{"a": 1}'] * 3


def test_429_retry_after_is_honoured(client):
    sleep = SleepRecorder()
    replies = [(429, b"slow down", {"Retry-After": "1"}), (200, b"fine")]
    with HttpSink(replies) as server:
        result = client.send("GET", server.url(), backoff=0.01, sleep=sleep)
    assert result.status == 200 and result.text == "fine"
    assert sleep.calls == [1.0]
    assert result.attempts[0].retry_after == 1.0


def test_retry_after_is_capped_at_read_timeout(client):
    sleep = SleepRecorder()
    replies = [(503, b"", {"Retry-After": "120"}), (200, b"")]
    with HttpSink(replies) as server:
        result = client.send(
            "GET", server.url(), timeout=(1, 2), backoff=0.01, sleep=sleep
        )
    assert result.ok
    assert sleep.calls == [2.0]


def test_read_timeout_maps_to_408_in_bounded_time(client):
    sleep = SleepRecorder()
    with HttpSink(lambda received: HANG) as server:  # never answers before the test ends
        started = time.monotonic()
        result = client.send(
            "GET", server.url(), timeout=(1, 0.5), max_retries=1, sleep=sleep
        )
        took = time.monotonic() - started
    assert result.status == 408 and not result.ok
    assert "ReadTimeout" in result.error
    assert [a.status for a in result.attempts] == [408, 408]
    assert [a.will_retry for a in result.attempts] == [True, False]
    assert sleep.calls == [0.5]  # backoff 2 s capped at the read timeout
    assert took < 3.0


def test_400_is_not_retried(client):
    sleep = SleepRecorder()
    seen = []
    with HttpSink([(400, b'{"error": "bad"}')]) as server:
        result = client.send(
            "POST", server.url(), body=b"x", sleep=sleep, on_attempt=seen.append
        )
    assert result.status == 400 and result.json() == {"error": "bad"}
    assert len(seen) == 1 and not seen[0].will_retry
    assert sleep.calls == [] and len(server.requests) == 1


def test_max_retries_zero_means_one_attempt(client):
    with HttpSink([(502, b"")]) as server:
        result = client.send("GET", server.url(), max_retries=0, sleep=SleepRecorder())
    assert (
        result.status == 502 and len(result.attempts) == 1 and len(server.requests) == 1
    )


def test_connection_refused_is_status_0_and_retried(client):
    sleep = SleepRecorder()
    seen = []
    url = f"http://127.0.0.1:{free_port()}/"
    result = client.send("GET", url, max_retries=2, sleep=sleep, on_attempt=seen.append)
    assert result.status == 0 and not result.ok
    assert "ConnectionError" in result.error and "Connection refused" in result.error
    assert len(seen) == 3 and [a.will_retry for a in seen] == [True, True, False]
    assert len(sleep.calls) == 2


# --------------------------------------------------------------------------
# Connection reuse and headers
# --------------------------------------------------------------------------


def test_keep_alive_reuses_one_connection(client):
    with HttpSink([(200, b"pong")]) as server:
        for _ in range(5):
            assert client.send("GET", server.url("/ping")).status == 200
    assert len(server.requests) == 5
    assert len({r.client_port for r in server.requests}) == 1


def test_user_agent_and_host_header(client):
    with HttpSink([(200, b"")]) as server:
        client.send("GET", server.url())
    request = server.requests[0]
    assert request.header("User-Agent") == "bj_api_sync/18.0.1.0.0"
    assert request.header("Host") == f"127.0.0.1:{server.port}"


def test_allowed_by_host_name_keeps_host_header():
    with (
        HttpClient(guard=HostGuard("LocalHost")) as c,
        HttpSink([(200, b"hi")]) as server,
    ):
        result = c.send("GET", server.url("/x", host="localhost"))
    assert result.status == 200 and result.text == "hi"
    assert server.requests[0].header("Host") == f"localhost:{server.port}"


def test_cookies_are_not_kept(client):
    replies = [(200, b"", {"Set-Cookie": "sid=secret; Path=/"}), (200, b"")]
    with HttpSink(replies) as server:
        client.send("GET", server.url())
        client.send("GET", server.url())
    assert server.requests[1].header("Cookie") is None


# --------------------------------------------------------------------------
# Redirects
# --------------------------------------------------------------------------


def test_redirect_to_internal_address_is_refused(client):
    seen = []
    with HttpSink([(302, b"", {"Location": "http://10.0.0.1/steal"})]) as server:
        started = time.monotonic()
        result = client.send(
            "GET",
            server.url(),
            max_retries=3,
            sleep=SleepRecorder(),
            on_attempt=seen.append,
        )
        took = time.monotonic() - started
    assert result.status == 0 and not result.ok
    assert result.error.startswith(
        "Refusing to call http://10.0.0.1/steal: 10.0.0.1 is a private address"
    )
    assert "bj_api_sync.allowed_hosts" in result.error
    assert seen[0].url == "http://10.0.0.1/steal"
    assert len(seen) == 1 and not seen[0].will_retry  # guard refusals are never retried
    assert len(server.requests) == 1
    assert took < 1.0  # refused up front, not a connect timeout


def test_redirect_to_other_scheme_is_refused(client):
    with HttpSink([(301, b"", {"Location": "file:///etc/passwd"})]) as server:
        result = client.send("GET", server.url(), sleep=SleepRecorder())
    assert result.status == 0 and "only http and https" in result.error


def test_redirects_are_followed_with_method_rules(client):
    def respond(received):
        if received.path == "/see-other":
            return 303, b"", {"Location": "/result"}
        if received.path == "/temporary":
            return 307, b"", {"Location": "/result"}
        return 200, b"done"

    with HttpSink(respond) as server:
        r303 = client.send(
            "POST",
            server.url("/see-other"),
            body=b"payload",
            headers={"Content-Type": "text/plain"},
        )
        r307 = client.send("POST", server.url("/temporary"), body=b"payload")
    assert r303.status == 200 and r303.url == server.url("/result")
    assert r307.status == 200
    methods = [(r.method, r.path, r.body) for r in server.requests]
    assert methods == [
        ("POST", "/see-other", b"payload"),
        ("GET", "/result", b""),
        ("POST", "/temporary", b"payload"),
        ("POST", "/result", b"payload"),
    ]
    assert server.requests[1].header("Content-Type") is None
    assert len(r303.attempts) == 1  # redirects are hops of one attempt


def test_too_many_redirects(client):
    with HttpSink([(302, b"", {"Location": "/again"})]) as server:
        result = client.send("GET", server.url(), sleep=SleepRecorder())
    assert result.status == 302 and not result.ok
    assert "TooManyRedirects" in result.error
    assert len(server.requests) == http_client.MAX_REDIRECTS + 1
    assert len(result.attempts) == 1


def test_cross_origin_redirect_drops_credentials(client):
    with HttpSink([(200, b"other")]) as other:
        replies = [(302, b"", {"Location": other.url("/landing")})]
        with HttpSink(replies) as server:
            result = client.send(
                "GET",
                server.url(),
                headers={
                    "Authorization": "Bearer s3cret",
                    "X-Custom-Token": "t",
                    "Accept": "application/json",
                },
            )
    assert result.status == 200 and result.text == "other"
    assert server.requests[0].header("Authorization") == "Bearer s3cret"
    landed = other.requests[0]
    assert landed.header("Authorization") is None and landed.header("X-Custom-Token") is None
    assert landed.header("Accept") == "application/json"


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def test_parse_retry_after():
    now = datetime.datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(" 0 ") == 0.0
    assert parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now) == 30.0
    assert (
        parse_retry_after("Wed, 01 May 2024 12:00:30 GMT", now=now.timestamp()) == 30.0
    )
    assert parse_retry_after("Wed, 01 May 2024 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("-5") is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("") is None
    assert parse_retry_after(None) is None


def test_backoff_delay():
    assert backoff_delay(0, 2.0, rand=lambda: 0.0) == 2.0
    assert backoff_delay(2, 2.0, rand=lambda: 1.0) == pytest.approx(8.8)
    assert backoff_delay(0, 2.0, retry_after=10, rand=lambda: 0.5) == 10.0
    assert backoff_delay(0, 2.0, retry_after=0.5, rand=lambda: 0.0) == 2.0
    assert backoff_delay(5, 2.0, cap=3.0) == 3.0


def test_result_json_and_ok():
    result = http_client.Result(
        status=204, headers={}, text="", elapsed_ms=1, attempts=[]
    )
    assert result.ok and result.json() is None
    result = http_client.Result(
        status=500, headers={}, text="<html>", elapsed_ms=1, attempts=[]
    )
    assert not result.ok and result.json() is None


def test_get_client_caches_per_key_and_config():
    try:
        a = get_client("t1", allowed=[LOOPBACK])
        assert get_client("t1", allowed=[LOOPBACK]) is a
        assert get_client("t2", allowed=[LOOPBACK]) is not a
        b = get_client("t1", allowed=["10.0.0.0/8"])
        assert b is not a and get_client("t1", allowed=["10.0.0.0/8"]) is b
        with HttpSink([(200, json.dumps({"n": 1}))]) as server:
            assert get_client("t3", allowed=LOOPBACK).send(
                "GET", server.url()
            ).json() == {"n": 1}
    finally:
        http_client.close_clients()
