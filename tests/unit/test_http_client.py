"""lib.http_client against real HTTP(S) servers on 127.0.0.1.

No mocks of ``requests``: every test talks to the test sink (tests/http_sink.py, a
``http.server`` running in a thread). Nothing is ever sent to a non-loopback address --
tests that name one rely on the guard refusing before any connection is made.
"""

import datetime
import json
import socket
import ssl
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from lib import http_client
from lib.http_client import (
    HostGuard,
    HttpClient,
    SSRFError,
    backoff_delay,
    get_client,
    parse_retry_after,
    redact_headers,
)

from http_sink import HANG, HttpSink, free_port

LOOPBACK = "127.0.0.1/32"
UTC = datetime.timezone.utc  # noqa: UP017 - keep Python 3.10 (Odoo 18)


@pytest.fixture
def client():
    with HttpClient(guard=HostGuard([LOOPBACK])) as c:
        yield c


class SleepRecorder:
    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)


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
# Guard
# --------------------------------------------------------------------------

BLOCKED = [
    ("http://127.0.0.1/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://2130706433/", "127.0.0.1"),
    ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"),
    ("http://0x7f.0.0.1/", "127.0.0.1"),
    ("http://10.1.2.3/", "private"),
    ("http://192.168.0.1/", "private"),
    ("http://172.16.0.1/", "private"),
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "unique local"),
    ("http://0.0.0.0/", "unspecified"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://[::ffff:10.0.0.1]/", "IPv4-mapped"),
    ("http://[2002:a00:1::]/", "6to4"),
    ("http://[64:ff9b::7f00:1]/", "NAT64"),
    ("ftp://example.com/", "only http and https"),
    ("file:///etc/passwd", "only http and https"),
    ("gopher://127.0.0.1/", "only http and https"),
    ("http:///nohost", "no host"),
]


@pytest.mark.parametrize("url,why", BLOCKED)
def test_guard_blocks(url, why):
    with pytest.raises(SSRFError) as info:
        HostGuard().check(url)
    message = str(info.value)
    assert message.startswith("Refusing to call ")
    assert why in message


def test_guard_message_is_helpful_and_hides_secrets():
    with pytest.raises(SSRFError) as info:
        HostGuard().check("http://user:pw@127.0.0.1:8000/?api_key=abc")
    assert str(info.value) == (
        "Refusing to call http://127.0.0.1:8000/: 127.0.0.1 is a loopback address. Add the host or its "
        "network to the system parameter bj_api_sync.allowed_hosts to allow it."
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://0x7f000001/",
        "http://127.0.0.1/",
    ],
)
def test_getaddrinfo_normalises_ipv4_spellings(url):
    assert HostGuard([LOOPBACK]).check(url) == ["127.0.0.1"]


def test_guard_allows_public_addresses_without_traffic():
    # numeric hosts: getaddrinfo answers locally, nothing is sent anywhere
    assert HostGuard().check("https://8.8.8.8/") == ["8.8.8.8"]
    assert HostGuard().check("http://[2001:4860:4860::8888]:8080/") == [
        "2001:4860:4860::8888"
    ]


def test_guard_allow_list_forms():
    guard = HostGuard("10.0.0.0/8, api.local  ::1/128,192.168.1.5")
    assert guard.names == {"api.local"}
    assert guard.check("http://10.200.3.4/") == ["10.200.3.4"]
    assert guard.check("http://[::1]:9/") == ["::1"]
    assert guard.check("http://192.168.1.5/") == ["192.168.1.5"]
    assert guard.check("http://[::ffff:10.0.0.7]/") == ["::ffff:10.0.0.7"]
    with pytest.raises(SSRFError):
        guard.check("http://192.168.1.6/")
    with pytest.raises(SSRFError):
        guard.check("http://172.16.0.1/")


def test_guard_allows_by_host_name_case_insensitive():
    assert "127.0.0.1" in HostGuard(["LOCALHOST"]).check("http://LocalHost:1234/")
    assert "127.0.0.1" in HostGuard(["localhost."]).check("http://LOCALHOST/")


def test_guard_refusal_through_client_never_connects():
    with HttpClient() as c:  # default guard: nothing internal allowed
        result = c.send("GET", "http://127.0.0.1:9/", sleep=SleepRecorder())
    assert result.status == 0 and result.error.startswith(
        "Refusing to call http://127.0.0.1:9/"
    )
    assert len(result.attempts) == 1


def test_dns_failure_is_a_connection_error():
    def resolver(host, port, *args):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with HttpClient(guard=HostGuard(resolver=resolver)) as c:
        result = c.send(
            "GET",
            "http://does-not-exist.invalid/",
            max_retries=1,
            sleep=SleepRecorder(),
        )
    assert result.status == 0
    assert "DNS resolution failed for does-not-exist.invalid" in result.error
    assert len(result.attempts) == 2  # transient: retried


# --------------------------------------------------------------------------
# Address pinning (DNS rebinding) and TLS on the original name
# --------------------------------------------------------------------------


def fake_resolver(answers):
    """getaddrinfo for made-up names: ``answers[name]`` is a list of IPs
    returned in turn (the last one repeats); counts lookups."""
    calls = []

    def resolve(host, port, family=0, type=0, proto=0, flags=0):
        calls.append(host)
        if host not in answers:
            return socket.getaddrinfo(host, port, family, type, proto, flags)
        queue = answers[host]
        ip = queue.pop(0) if len(queue) > 1 else queue[0]
        fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
        return [(fam, socket.SOCK_STREAM, 6, "", (ip, port))]

    resolve.calls = calls
    return resolve


def test_connection_goes_to_checked_address_only():
    # "rebind.test" exists only in our resolver: first 127.0.0.1 (allowed),
    # then 10.0.0.1. urllib3 never resolves it itself.
    resolver = fake_resolver({"rebind.test": ["127.0.0.1", "10.0.0.1"]})
    guard = HostGuard([LOOPBACK], resolver=resolver)
    with HttpClient(guard=guard) as c, HttpSink([(200, b"pinned")]) as server:
        first = c.send("GET", server.url("/", host="rebind.test"))
        second = c.send(
            "GET", server.url("/", host="rebind.test"), sleep=SleepRecorder()
        )
    assert first.status == 200 and first.text == "pinned"
    assert server.requests[0].header("Host") == f"rebind.test:{server.port}"
    assert resolver.calls == ["rebind.test", "rebind.test"]
    assert second.status == 0
    assert (
        "rebind.test resolves to 10.0.0.1, which is a private address" in second.error
    )
    assert len(server.requests) == 1


def test_falls_back_to_next_vetted_address():
    def two_addresses(host, port, *args):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.2", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    guard = HostGuard(["127.0.0.0/8"], resolver=two_addresses)
    # 127.0.0.2 has nothing on the port -> refused -> next address
    with HttpSink([(200, b"second")]) as server, HttpClient(guard=guard) as c:
        result = c.send(
            "GET", server.url("/", host="multi.test"), timeout=(1, 5), max_retries=0
        )
    assert result.status == 200 and result.text == "second"


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):

    now = datetime.datetime.now(UTC).replace(tzinfo=None)

    def build(subject, issuer, public_key, signing_key, ca, san=None, issuer_key=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(
                x509.BasicConstraints(ca=ca, path_length=None), critical=True
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    issuer_key or public_key
                ),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    False, False, False, False, False, True, True, False, False
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.KeyUsage(
                    True, False, False, False, False, False, False, False, False
                ),
                critical=True,
            )
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName(name) for name in san]),
                critical=False,
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = build("bj test CA", "bj test CA", ca_key.public_key(), ca_key, True)
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = build(
        "pinned.test",
        "bj test CA",
        leaf_key.public_key(),
        ca_key,
        False,
        ["pinned.test"],
        issuer_key=ca_key.public_key(),
    )
    folder = tmp_path_factory.mktemp("tls")
    ca_path, cert_path, key_path = (
        folder / "ca.pem",
        folder / "leaf.pem",
        folder / "leaf.key",
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        leaf_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(ca_path), str(cert_path), str(key_path)


def tls_server(tls_files, sni_seen):
    _ca, cert, key = tls_files
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda sock, name, ctx: sni_seen.append(name)
    return HttpSink([(200, b"secure")], ssl_context=context)


def test_tls_uses_original_name_for_sni_and_verification(tls_files):
    sni = []
    resolver = fake_resolver(
        {"pinned.test": ["127.0.0.1"], "other.test": ["127.0.0.1"]}
    )
    guard = HostGuard([LOOPBACK], resolver=resolver)
    with (
        tls_server(tls_files, sni) as server,
        HttpClient(guard=guard, verify=tls_files[0]) as c,
    ):
        good = c.send("GET", server.url("/", host="pinned.test"))
        # same address, but the certificate does not cover other.test
        bad = c.send("GET", server.url("/", host="other.test"), max_retries=0)
    assert good.status == 200 and good.text == "secure"
    assert server.requests[0].header("Host") == f"pinned.test:{server.port}"
    assert sni[0] == "pinned.test"
    assert bad.status == 0 and "SSLError" in bad.error
    assert "other.test" in bad.error or "hostname" in bad.error.lower()


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
