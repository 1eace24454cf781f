"""SSRF guard for outbound HTTP: which addresses may be called, and connecting only to those.

Pure Python (``requests`` only, no ``odoo``). ``lib.http_client`` mounts the adapter on
every session it makes; the guard is also usable on its own (``HostGuard().check(url)``).

Pieces
------
``HostGuard``
    Resolves a URL's host once with ``socket.getaddrinfo`` and refuses it when
    any resolved address is not globally routable (loopback, RFC 1918 and
    unique-local, link-local incl. cloud metadata 169.254.169.254,
    unspecified, multicast, reserved, CGNAT 100.64.0.0/10, and IPv4 addresses
    embedded in IPv6: mapped ``::ffff:a.b.c.d``, 6to4, NAT64) unless the host
    name or the address is allowed. Decimal/octal/hex/short IPv4 spellings
    (``2130706433``, ``0177.0.0.1``, ``127.1``) are normalised by
    ``getaddrinfo`` before the check, so they cannot slip through.

``PinnedAdapter``
    A ``requests`` transport adapter that runs the guard right before every
    send (so every redirect hop too) and makes the connection pool connect to
    the address that was checked, instead of letting urllib3 resolve the name
    a second time. The ``Host`` header, TLS SNI and certificate verification
    still use the original host name (urllib3 ``server_hostname`` /
    ``assert_hostname`` pool arguments). Pools are keyed by that address (and
    TLS name), so a kept-alive connection is only ever reused for the address
    it was opened to.

    DNS rebinding window: closed for the connection itself -- the name is
    resolved exactly once per request (per redirect hop) and the socket goes
    to the address that passed the check. What remains: (1) environment
    proxies are deliberately ignored (``trust_env = False``); a proxy would
    resolve the name again on its side. (2) With ``guard=False`` nothing is
    checked at all (tests/trusted set-ups only).
"""

import ipaddress
import re
import socket
import threading
from collections import namedtuple
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

try:  # requests 2.32.0 / 2.32.1 only: later versions have build_connection_pool_key_attributes
    from requests.adapters import _urllib3_request_context
except ImportError:  # requests < 2.32 never calls get_connection_with_tls_context
    _urllib3_request_context = None

ALLOWED_HOSTS_PARAM = "bj_api_sync.allowed_hosts"

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


class SSRFError(Exception):
    """The guard refused a URL (scheme, malformed host or non-global address)."""


# --------------------------------------------------------------------------
# Guard
# --------------------------------------------------------------------------

Target = namedtuple("Target", "scheme hostname port host_header ips")
Target.__doc__ = (
    """A checked URL: the host as written, its port and the vetted addresses."""
)


def _display_url(url):
    """The URL for messages: no credentials, no query string, no fragment."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<invalid URL>"
    netloc = parts.netloc.rpartition("@")[2]
    if not parts.scheme:
        return url.split("?", 1)[0][:200]
    return f"{parts.scheme}://{netloc}{parts.path or '/'}"


def _normalise_name(name):
    name = name.strip().strip("[]").rstrip(".").lower()
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name


def _article(phrase):
    return ("an " if phrase[:1] in "aeiouAEIOU" else "a ") + phrase


def _basic_reason(ip):
    """The checks IPv4 and IPv6 share, in the order both make them, or None."""
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    return None


def _non_global_reason(ip):
    """Why ``ip`` must not be called ("a loopback address", ...), or None."""
    if ip.version == 4:
        if ip in _THIS_NETWORK:
            return "an unspecified address"
        basic = _basic_reason(ip)
        if basic:
            return basic
        if ip in _CGNAT:
            return "a shared (CGNAT 100.64.0.0/10) address"
        if ip.is_reserved:
            return "a reserved address"
        if ip.is_private:
            return "a private address"
        if not ip.is_global:
            return "a special-purpose (not globally routable) address"
        return None
    mapped = ip.ipv4_mapped
    if mapped is not None:
        inner = _non_global_reason(mapped)
        return inner and _article(f"IPv4-mapped {inner.split(' ', 1)[1]} ({mapped})")
    embedded = None
    if ip.sixtofour is not None:
        embedded = ("6to4", ip.sixtofour)
    elif ip in _NAT64:
        embedded = ("NAT64", ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if embedded is not None:
        inner = _non_global_reason(embedded[1])
        if inner:
            return f"a {embedded[0]} address embedding {embedded[1]}, {inner}"
    basic = _basic_reason(ip)
    if basic:
        return basic
    if ip in _UNIQUE_LOCAL:
        return "a private (unique local) address"
    if ip.is_site_local:
        return "a site-local address"
    if ip in _NAT64_LOCAL:
        return "a local-use NAT64 address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved:
        return "a reserved address"
    if not ip.is_global:
        return "a special-purpose (not globally routable) address"
    return None


class HostGuard:
    """Refuses URLs whose host resolves to a non-global address.

    ``allowed``: host names (exact, case-insensitive) and networks/addresses
    (``10.0.0.0/8``, ``127.0.0.1/32``, ``::1/128``, ``192.168.1.5``), as an
    iterable or one string separated by commas and/or whitespace -- the format
    of the system parameter ``bj_api_sync.allowed_hosts``.

    ``resolver``: replacement for ``socket.getaddrinfo`` (same signature);
    tests use it to map made-up names.
    """

    def __init__(self, allowed=(), resolver=None):
        if allowed is None:
            allowed = ()
        if isinstance(allowed, str):
            allowed = re.split(r"[\s,]+", allowed)
        names, networks = set(), []
        for entry in allowed:
            entry = str(entry).strip()
            if not entry:
                continue
            try:
                network = ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:  # not an address or a network: a host name
                names.add(_normalise_name(entry))
            else:
                networks.append(network)
        self.names = frozenset(names)
        self.networks = tuple(networks)
        self._getaddrinfo = resolver or socket.getaddrinfo

    def __repr__(self):
        entries = sorted(self.names) + [str(n) for n in self.networks]
        return f"HostGuard({entries!r})"

    def config_key(self):
        """Hashable description of the allow list (client caches use it)."""
        return (self.names, self.networks, self._getaddrinfo)

    def is_address_allowed(self, ip):
        ip = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
        for net in self.networks:
            if ip in net:
                return True
            if ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped in net:
                return True
        return False

    def _refuse(self, url, reason):
        return SSRFError(f"Refusing to call {_display_url(url)}: {reason}")

    def _refuse_address(self, url, hostname, ip, why):
        try:
            literal = ipaddress.ip_address(hostname.strip("[]")) == ip
        except ValueError:
            literal = False
        subject = str(ip) if literal else f"{hostname} resolves to {ip}, which"
        return self._refuse(
            url,
            f"{subject} is {why}. Add the host or its network to the system parameter "
            f"{ALLOWED_HOSTS_PARAM} to allow it.",
        )

    def split(self, url):
        """Syntax part of the check: scheme, host and port (no DNS)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except (ValueError, TypeError) as exc:
            raise self._refuse(url, f"invalid URL ({exc})") from None
        scheme = (parts.scheme or "").lower()
        if scheme not in ALLOWED_SCHEMES:
            raise self._refuse(
                url,
                "only http and https URLs are allowed, not %r"
                % (scheme or "(no scheme)"),
            )
        hostname = parts.hostname
        if not hostname:
            raise self._refuse(url, "the URL has no host")
        netloc = parts.netloc.rpartition("@")[2]
        return scheme, hostname, port or DEFAULT_PORTS[scheme], netloc

    def inspect(self, url):
        """Check ``url`` and return a ``Target`` (raises ``SSRFError``).

        DNS failures propagate as ``socket.gaierror`` (a network problem, not a
        refusal).
        """
        scheme, hostname, port, netloc = self.split(url)
        infos = self._getaddrinfo(hostname, port, 0, socket.SOCK_STREAM)
        ips = []
        for info in infos:
            address = info[4][0]
            if address not in ips:
                ips.append(address)
        if not ips:
            raise socket.gaierror(f"no address for {hostname}")
        name_allowed = _normalise_name(hostname) in self.names
        for address in ips:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                raise self._refuse(
                    url, f"{hostname} resolved to an unusable address {address!r}"
                ) from None
            if name_allowed or self.is_address_allowed(ip):
                continue
            why = _non_global_reason(ip)
            if why:
                raise self._refuse_address(url, hostname, ip, why)
        return Target(scheme, hostname, port, netloc, ips)

    def check(self, url):
        """Raise ``SSRFError`` unless ``url`` may be called; return its IPs."""
        return list(self.inspect(url).ips)


# --------------------------------------------------------------------------
# Transport adapter: connect to the checked address
# --------------------------------------------------------------------------

_Pin = namedtuple("_Pin", "ip hostname scheme port verify")


def _is_ip_literal(host):
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _connect_failed(exc):
    """True when no byte reached the server (safe to try another address)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    return (
        type(reason).__name__ == "NewConnectionError"
        or type(inner).__name__ == "NewConnectionError"
    )


class PinnedAdapter(HTTPAdapter):
    """``HTTPAdapter`` that checks every request with a ``HostGuard`` and
    connects to the vetted address, keeping Host/SNI/cert checks on the name.

    If the name resolves to several addresses (all vetted), they are tried in
    order while the connection itself fails.
    """

    def __init__(self, guard, **kwargs):
        self.guard = guard
        self._local = threading.local()
        super().__init__(**kwargs)

    def __setstate__(self, state):  # pragma: no cover - pickling support
        result = super().__setstate__(state)
        self._local = threading.local()
        return result

    def send(
        self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None
    ):
        try:
            target = self.guard.inspect(request.url)
        except socket.gaierror as exc:
            raise requests.exceptions.ConnectionError(
                f"DNS resolution failed for {urlsplit(request.url).hostname}: {exc}",
                request=request,
            ) from exc
        request = request.copy()
        request.headers["Host"] = target.host_header
        last = None
        for index, ip in enumerate(target.ips):
            self._local.pin = _Pin(
                ip, target.hostname, target.scheme, target.port, verify
            )
            try:
                return super().send(
                    request,
                    stream=stream,
                    timeout=timeout,
                    verify=verify,
                    cert=cert,
                    proxies=proxies,
                )
            except requests.exceptions.ConnectionError as exc:
                if index + 1 < len(target.ips) and _connect_failed(exc):
                    last = exc
                    continue
                raise
            finally:
                self._local.pin = None
        raise last  # pragma: no cover - loop always returns or raises

    def _pinned_pool(self, pin, pool_kwargs):
        kwargs = dict(pool_kwargs or {})
        if pin.scheme == "https" and not _is_ip_literal(pin.hostname):
            kwargs["server_hostname"] = pin.hostname
            if pin.verify:
                kwargs["assert_hostname"] = pin.hostname
        return self.poolmanager.connection_from_host(
            pin.ip, port=pin.port, scheme=pin.scheme, pool_kwargs=kwargs
        )

    # requests < 2.32
    def get_connection(self, url, proxies=None):
        pin = getattr(self._local, "pin", None)
        if pin is None:
            return super().get_connection(url, proxies)
        return self._pinned_pool(pin, None)

    # requests >= 2.32
    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        pin = getattr(self._local, "pin", None)
        if pin is None:
            return super().get_connection_with_tls_context(
                request, verify, proxies=proxies, cert=cert
            )
        build = getattr(self, "build_connection_pool_key_attributes", None)
        if build is not None:
            _host_params, pool_kwargs = build(request, verify, cert)
        else:  # 2.32.0 / 2.32.1
            _host_params, pool_kwargs = _urllib3_request_context(
                request, verify, cert, self.poolmanager
            )
        return self._pinned_pool(pin, pool_kwargs)
