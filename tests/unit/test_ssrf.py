"""lib.ssrf: the guard's verdicts and address pinning, against real servers on 127.0.0.1.

Nothing is ever sent to a non-loopback address -- tests that name one rely on the
guard refusing before any connection is made; made-up names resolve through a fake
resolver.
"""

import datetime
import socket
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from http_helpers import LOOPBACK, UTC, SleepRecorder
from lib.http_client import HttpClient
from lib.ssrf import HostGuard, SSRFError

from http_sink import HttpSink

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
