"""Outbound HTTP for bj_api_sync: pooled sessions, redirects, retries.

Pure Python (``requests`` only, no ``odoo``), so it is tested with plain pytest
against real servers on 127.0.0.1. Every session connects through the SSRF guard
of ``lib.ssrf`` (``HostGuard``, ``PinnedAdapter``); ``SSRFError``, ``HostGuard``,
``ALLOWED_HOSTS_PARAM`` and ``redact_headers`` (``lib.redact``) are importable from
here too, as callers always did.

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

import contextlib
import email.utils
import json
import os
import random
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.cookiejar import DefaultCookiePolicy
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter

from .redact import SECRET_HEADERS, redact_headers
from .ssrf import (
    ALLOWED_HOSTS_PARAM,
    DEFAULT_PORTS,
    HostGuard,
    PinnedAdapter,
    SSRFError,
)

__all__ = [
    "ALLOWED_HOSTS_PARAM",
    "CROSS_ORIGIN_SAFE_HEADERS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_USER_AGENT",
    "MAX_REDIRECTS",
    "REDIRECT_STATUSES",
    "RETRY_STATUSES",
    "SECRET_HEADERS",
    "Attempt",
    "HostGuard",
    "HttpClient",
    "PinnedAdapter",
    "Result",
    "SSRFError",
    "backoff_delay",
    "close_clients",
    "get_client",
    "parse_retry_after",
    "redact_headers",
]

DEFAULT_USER_AGENT = "bj_api_sync/18.0.1.0.0"
DEFAULT_TIMEOUT = (5.0, 30.0)
MAX_REDIRECTS = 5
_UTC = timezone.utc  # noqa: UP017 - datetime.UTC needs 3.11, Odoo 18 runs on 3.10

REDIRECT_STATUSES = (301, 302, 303, 307, 308)
RETRY_STATUSES = frozenset({408, 429})

# Caller headers that may follow a redirect to another origin; all others
# (credentials, API keys, custom tokens) are dropped.
CROSS_ORIGIN_SAFE_HEADERS = frozenset(
    {"accept", "accept-language", "content-language", "content-type", "user-agent"}
)
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})


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
                with contextlib.suppress(UnicodeError):  # not UTF-8 after all: keep it as decoded
                    location = location.encode("latin1").decode("utf-8")
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
