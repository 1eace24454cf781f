"""Outbound HTTP for bj_api_sync: SSRF guard, pooled sessions, retries.

Pure Python (``requests`` only, no ``odoo``), so it is tested with plain pytest
against real servers on 127.0.0.1.

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

``HttpClient.send``
    Follows at most ``MAX_REDIRECTS`` redirects itself (each hop goes through
    the guard), retries connection errors, timeouts, 408, 429 and 5xx with
    exponential backoff, and always returns a ``Result`` (it does not raise
    for HTTP or network failures).

    Delay before retry *n* (0-based): ``backoff * 2**n`` plus a random jitter
    of up to 10 % of that. When the response carries ``Retry-After`` (seconds
    or HTTP date) the delay is ``max(retry_after, computed)``: the server's
    value is a floor, our own backoff never becomes shorter because of it.
    Every delay is then capped at the read timeout, so a single call stays
    bounded even when a server asks for minutes.

    Status mapping for failures without a response: timeout -> 408, other
    connection problems (refused, DNS, TLS, reset) -> 0 with an error text
    that keeps the exception class name; a guard refusal -> 0 with the
    guard's message, never retried.

Redirects that change origin (scheme, host or port) only carry the caller's
headers named in ``CROSS_ORIGIN_SAFE_HEADERS``; credentials never follow a
redirect to another origin. Cookies are never stored: the client is
stateless between calls.
"""

import email.utils
import ipaddress
import json
import os
import random
import re
import socket
import threading
import time
from collections import namedtuple
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

DEFAULT_USER_AGENT = "bj_api_sync/18.0.1.0.0"
DEFAULT_TIMEOUT = (5.0, 30.0)
MAX_REDIRECTS = 5
ALLOWED_HOSTS_PARAM = "bj_api_sync.allowed_hosts"
_UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs 3.11, Odoo 18 runs on 3.10

ALLOWED_SCHEMES = ("http", "https")
DEFAULT_PORTS = {"http": 80, "https": 443}

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
RETRY_STATUSES = frozenset({408, 429})

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
# Caller headers that may follow a redirect to another origin; all others
# (credentials, API keys, custom tokens) are dropped.
CROSS_ORIGIN_SAFE_HEADERS = frozenset(
    {"accept", "accept-language", "content-language", "content-type", "user-agent"}
)
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})

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


def _non_global_reason(ip):
    """Why ``ip`` must not be called ("a loopback address", ...), or None."""
    if ip.version == 4:
        if ip in _THIS_NETWORK or ip.is_unspecified:
            return "an unspecified address"
        if ip.is_loopback:
            return "a loopback address"
        if ip.is_link_local:
            return "a link-local address"
        if ip.is_multicast:
            return "a multicast address"
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
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
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
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            names.add(_normalise_name(entry))
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
            f"{subject} is {why}. Add the host or its network to the system parameter {ALLOWED_HOSTS_PARAM} to allow it.",
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
        super().__setstate__(state)
        self._local = threading.local()

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
            from requests.adapters import _urllib3_request_context

            _host_params, pool_kwargs = _urllib3_request_context(
                request, verify, cert, self.poolmanager
            )
        return self._pinned_pool(pin, pool_kwargs)


# --------------------------------------------------------------------------
# Retry helpers
# --------------------------------------------------------------------------


def parse_retry_after(value, now=None):
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP
    date), never negative; None when absent or unparsable.

    ``now``: epoch seconds or a datetime (naive = UTC); default: current time.
    """
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_UTC)
    if now is None:
        now_ts = time.time()
    elif isinstance(now, datetime):
        now_ts = (now if now.tzinfo else now.replace(tzinfo=_UTC)).timestamp()
    else:
        now_ts = float(now)
    return max(0.0, when.timestamp() - now_ts)


def backoff_delay(
    retry_index, backoff=2.0, retry_after=None, cap=None, rand=random.random
):
    """Delay before retry ``retry_index`` (0 = first retry); see module doc."""
    base = float(backoff) * (2**retry_index)
    delay = base + base * 0.1 * rand()
    if retry_after is not None:
        delay = max(delay, float(retry_after))
    if cap is not None:
        delay = min(delay, float(cap))
    return max(0.0, delay)


def redact_headers(headers, secret_names=()):
    """Copy of ``headers`` with secret values replaced by ``***``."""
    if isinstance(secret_names, str):
        secret_names = [secret_names]
    secrets = SECRET_HEADERS | {str(name).lower() for name in secret_names or ()}
    return {
        key: ("***" if str(key).lower() in secrets else value)
        for key, value in dict(headers or {}).items()
    }


def _split_timeout(timeout):
    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, (tuple, list)):
        connect, read = timeout
        return (connect, read)
    return (timeout, timeout)


def _describe_error(exc):
    """``ClassName: message`` with urllib3's wrapping peeled off."""
    name = type(exc).__name__
    inner = exc.args[0] if exc.args else None
    reason = getattr(inner, "reason", None)
    if isinstance(reason, BaseException):
        inner = reason
    if isinstance(inner, BaseException):
        message = re.sub(r"^<[^>]*>: ", "", str(inner))
        inner_name = type(inner).__name__
        if inner_name != name:
            return f"{name}: {message} ({inner_name})"
        return f"{name}: {message}"
    return f"{name}: {exc}"


def _is_read_timeout(exc):
    inner = exc.args[0] if exc.args else None
    return type(inner).__name__ in ("ReadTimeoutError", "ConnectTimeoutError")


def _decode(response):
    encoding = response.encoding or "utf-8"
    try:
        return response.content.decode(encoding, errors="replace")
    except LookupError:
        return response.content.decode("utf-8", errors="replace")


def _origin(url):
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return (scheme, (parts.hostname or "").lower(), port)


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class Attempt:
    """One try (redirects included) as reported to ``on_attempt``."""

    number: int
    status: int
    headers: dict = field(default_factory=dict)
    text: str = ""
    elapsed_ms: int = 0
    error: str = None
    will_retry: bool = False
    delay: float = 0.0
    url: str = ""
    retry_after: float = None
    retryable: bool = field(default=False, repr=False)


@dataclass
class Result:
    """Outcome of ``HttpClient.send`` (the last attempt's response).

    ``elapsed_ms`` is the wall time of the whole call: all attempts and the
    delays between them.
    """

    status: int
    headers: dict
    text: str
    elapsed_ms: int
    attempts: list
    error: str = None
    url: str = ""

    @property
    def ok(self):
        return 200 <= self.status < 300

    def json(self):
        """The body parsed as JSON, or None (empty or not JSON)."""
        if not self.text:
            return None
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class _Outcome(Exception):
    """Internal: an attempt that ended without a usable response."""

    def __init__(self, status, error, retryable, url=""):
        super().__init__(error)
        self.status = status
        self.error = error
        self.retryable = retryable
        self.url = url


# --------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------


class _NoCookies(DefaultCookiePolicy):
    def set_ok(self, cookie, request):
        return False

    def return_ok(self, cookie, request):
        return False


class HttpClient:
    """Pooled, guarded HTTP client (one keep-alive ``requests.Session``).

    ``guard``: a ``HostGuard``, an allow list for one (iterable or string),
    None for a guard that allows no internal address, or False for no guard
    at all (trusted set-ups/tests only: no SSRF check, no address pinning).
    ``verify``: TLS verification as in requests (True or a CA bundle path).
    """

    def __init__(
        self, guard=None, pool_size=10, user_agent=DEFAULT_USER_AGENT, verify=True
    ):
        if guard is None:
            guard = HostGuard()
        elif guard is False:
            guard = None
        elif not isinstance(guard, HostGuard):
            guard = HostGuard(guard)
        self.guard = guard
        self.verify = verify
        self.pool_size = pool_size
        self.user_agent = user_agent
        session = requests.Session()
        session.trust_env = (
            False  # no env proxies/netrc: the guard pins the real target
        )
        session.cookies.set_policy(_NoCookies())
        session.max_redirects = MAX_REDIRECTS
        if user_agent:
            session.headers["User-Agent"] = user_agent
        if guard is not None:
            adapter = PinnedAdapter(
                guard, pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
            )
        else:
            adapter = HTTPAdapter(
                pool_connections=pool_size, pool_maxsize=pool_size, max_retries=0
            )
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        self.session = session

    def close(self):
        self.session.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def send(
        self,
        method,
        url,
        *,
        headers=None,
        body=None,
        timeout=DEFAULT_TIMEOUT,
        max_retries=3,
        backoff=2.0,
        sleep=time.sleep,
        on_attempt=None,
    ):
        """Send with redirects and retries; always returns a ``Result``."""
        method = (method or "GET").upper()
        if isinstance(body, str):
            body = body.encode("utf-8")
        timeout = _split_timeout(timeout)
        read_timeout = timeout[1]
        started = time.monotonic()
        attempts = []
        number = 0
        while True:
            number += 1
            attempt = self._attempt(number, method, url, headers, body, timeout)
            attempt.will_retry = attempt.retryable and number <= max_retries
            if attempt.will_retry:
                attempt.delay = backoff_delay(
                    number - 1, backoff, attempt.retry_after, read_timeout
                )
            attempts.append(attempt)
            if on_attempt is not None:
                on_attempt(attempt)
            if not attempt.will_retry:
                break
            if attempt.delay > 0:
                sleep(attempt.delay)
        last = attempts[-1]
        return Result(
            status=last.status,
            headers=last.headers,
            text=last.text,
            elapsed_ms=int((time.monotonic() - started) * 1000),
            attempts=attempts,
            error=last.error,
            url=last.url,
        )

    # -- one attempt, redirects included ------------------------------------

    def _attempt(self, number, method, url, headers, body, timeout):
        started = time.monotonic()
        try:
            response, current_url, error = self._follow(
                method, url, headers, body, timeout
            )
        except _Outcome as outcome:
            return Attempt(
                number=number,
                status=outcome.status,
                error=outcome.error,
                elapsed_ms=int((time.monotonic() - started) * 1000),
                url=outcome.url or url,
                retryable=outcome.retryable,
            )
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return Attempt(
            number=number,
            status=status,
            headers=response.headers,
            text=_decode(response),
            elapsed_ms=int((time.monotonic() - started) * 1000),
            error=error,
            url=current_url,
            retry_after=retry_after,
            retryable=error is None
            and (status in RETRY_STATUSES or 500 <= status <= 599),
        )

    def _send_once(self, method, url, headers, body, timeout):
        if self.guard is not None:
            self.guard.split(url)  # scheme check before requests picks an adapter
        request = requests.Request(method, url, headers=headers, data=body)
        prepared = self.session.prepare_request(request)
        try:
            return self.session.send(
                prepared, allow_redirects=False, timeout=timeout, verify=self.verify
            )
        except SSRFError:
            raise
        except requests.exceptions.Timeout as exc:
            raise _Outcome(408, _describe_error(exc), True) from exc
        except requests.exceptions.ConnectionError as exc:
            if _is_read_timeout(exc):
                raise _Outcome(408, _describe_error(exc), True) from exc
            raise _Outcome(0, _describe_error(exc), True) from exc
        except requests.exceptions.ChunkedEncodingError as exc:
            raise _Outcome(0, _describe_error(exc), True) from exc
        except requests.exceptions.RequestException as exc:
            raise _Outcome(0, _describe_error(exc), False) from exc
        except (OSError, ValueError) as exc:
            raise _Outcome(0, _describe_error(exc), False) from exc

    def _follow(self, method, url, headers, body, timeout):
        """Returns (response, final_url, error) or raises ``_Outcome``."""
        headers = dict(headers or {})
        try:
            for hop in range(MAX_REDIRECTS + 1):
                response = self._send_once(method, url, headers, body, timeout)
                location = response.headers.get("Location")
                if response.status_code not in REDIRECT_STATUSES or not location:
                    return response, url, None
                if hop == MAX_REDIRECTS:
                    return (
                        response,
                        url,
                        f"TooManyRedirects: more than {MAX_REDIRECTS} redirects",
                    )
                # requests decodes headers as latin-1; servers send UTF-8.
                try:
                    location = location.encode("latin1").decode("utf-8")
                except UnicodeError:
                    pass
                next_url = urljoin(url, location.strip())
                response.close()
                status = response.status_code
                if (status == 303 and method != "HEAD") or (
                    status in (301, 302) and method == "POST"
                ):
                    method = "GET"
                    body = None
                    headers = {
                        k: v
                        for k, v in headers.items()
                        if k.lower() not in _BODY_HEADERS
                    }
                if _origin(next_url) != _origin(url):
                    headers = {
                        k: v
                        for k, v in headers.items()
                        if k.lower() in CROSS_ORIGIN_SAFE_HEADERS
                    }
                url = next_url
        except SSRFError as exc:
            raise _Outcome(0, str(exc), False, url) from exc
        except _Outcome as outcome:
            outcome.url = url
            raise
        raise AssertionError("unreachable")  # pragma: no cover


# --------------------------------------------------------------------------
# Shared clients
# --------------------------------------------------------------------------

_clients = {}
_clients_lock = threading.Lock()


def get_client(
    key="default",
    *,
    allowed=None,
    pool_size=10,
    user_agent=DEFAULT_USER_AGENT,
    verify=True,
):
    """A process-wide ``HttpClient`` per ``key`` (keep-alive across calls).

    A new client replaces the cached one when the configuration (allow list,
    pool size, user agent, verify) changes or the process was forked. The
    session is shared by threads: urllib3 pools are thread-safe, the adapter
    keeps its per-request state thread-local and the client never mutates the
    session after construction.
    """
    guard = allowed if isinstance(allowed, HostGuard) else HostGuard(allowed or ())
    config = (os.getpid(), guard.config_key(), pool_size, user_agent, verify)
    with _clients_lock:
        cached = _clients.get(key)
        if cached is not None and cached[0] == config:
            return cached[1]
        client = HttpClient(
            guard=guard, pool_size=pool_size, user_agent=user_agent, verify=verify
        )
        _clients[key] = (config, client)
    # A replaced client is not closed here: another thread may still be in a
    # call with it; its pools close when it is garbage collected.
    return client


def close_clients():
    """Close and forget every cached client (tests, module reload)."""
    with _clients_lock:
        cached = list(_clients.values())
        _clients.clear()
    for _config, client in cached:
        client.close()
