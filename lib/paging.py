"""How a pull walks a remote list: pagination styles, Link headers, dotted paths (pure).

A ``Pager`` computes the first request's URL and, from each answer (its headers, its
parsed JSON body and the number of items it carried), the next one, or None at the end:

- ``offset`` (Limit / Offset): ``?limit=<n>&offset=<o>``, until an empty or short page;
- ``page`` (Page Number): ``?page=1, 2, …&limit=<page size>``, until an empty or short page;
- ``link`` (Link Header): the first request carries ``page=1`` and ``limit=<page size>``
  (each only when its parameter name is set), then follows ``Link: <…>; rel="next"``;
- ``cursor``: ``?cursor=<value found at cursor_path in the body>`` until the value is absent;
- ``next_url`` (Next URL in Body): the URL found at ``next_url_path`` until it is absent.

The same next URL twice (link, cursor, next URL) is a loop: ``PagingLoop``. A next URL on
another origin than the Request URL's is never followed (``ForeignOrigin``): every page
carries the configuration's credentials.

No Odoo import: ``tests/unit/test_paging.py`` tests this module with plain pytest.
"""

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

STYLES = ("offset", "page", "link", "cursor", "next_url")
MISSING = object()


class PagingError(Exception):
    """A next page that must not be fetched; ``url`` is where the remote pointed."""

    def __init__(self, url):
        super().__init__(url)
        self.url = url


class PagingLoop(PagingError):
    """The remote pointed at a page already fetched in this run."""


class ForeignOrigin(PagingError):
    """The remote pointed at another origin (scheme, host, port): the credentials would go there."""


def origin(url):
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or {"http": 80, "https": 443}.get(scheme)
    except ValueError:
        port = None
    return scheme, (parts.hostname or "").lower(), port


# --------------------------------------------------------------------------
# Dotted paths
# --------------------------------------------------------------------------


def get_path(data, path):
    """The value at dotted ``path`` in parsed JSON ``data``, or ``MISSING``.

    ``paging.next.after`` walks three keys; a key that itself contains dots
    (``@odata.nextLink``) is found whole: at each level the longest run of segments
    that is a key wins. A segment that is an integer indexes a list (``-1``: the last
    item, e.g. ``data.-1.id`` for Stripe's ``starting_after``). An empty path is ``data``.
    """
    if not path:
        return data
    return _walk(data, path.split("."))


def _walk(data, parts):
    if not parts:
        return data
    if isinstance(data, dict):
        for size in range(len(parts), 0, -1):
            key = ".".join(parts[:size])
            if key in data:
                found = _walk(data[key], parts[size:])
                if found is not MISSING:
                    return found
        return MISSING
    if isinstance(data, list):
        try:
            index = int(parts[0])
        except ValueError:
            return MISSING
        if -len(data) <= index < len(data):
            return _walk(data[index], parts[1:])
    return MISSING


# --------------------------------------------------------------------------
# URLs and Link headers
# --------------------------------------------------------------------------


def with_query(url, **params):
    """``url`` with these query parameters set (replacing the same names); None values are left out."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend((k, str(v)) for k, v in params.items() if v is not None)
    # "$" (OData's $top), ":" and "@" are legal in a query: kept readable
    return urlunsplit(parts._replace(query=urlencode(query, safe="$:@,")))


def _query(url, **params):
    """``with_query`` for parameter names that may be empty (an empty name is not sent)."""
    return with_query(url, **{name: value for name, value in params.items() if name})


_LINK_RE = re.compile(r"<([^>]*)>([^<]*)")
_PARAM_RE = re.compile(r';\s*([^\s=;,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;,]*))?')


def parse_link_header(value):
    """``[(url, {param: value})]`` of an RFC 8288 ``Link`` header (several headers joined by commas)."""
    links = []
    for match in _LINK_RE.finditer(value or ""):
        params = {}
        for name, raw in _PARAM_RE.findall(match.group(2)):
            raw = raw.strip()
            if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
                raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
            params.setdefault(name.lower(), raw)
        links.append((match.group(1).strip(), params))
    return links


def next_link(value, base_url=""):
    """The absolute URL of the ``rel="next"`` link of a ``Link`` header, or None."""
    for url, params in parse_link_header(value):
        if "next" in params.get("rel", "").lower().split():
            return urljoin(base_url, url) if base_url else url
    return None


def header(headers, name):
    """A response header, whatever the spelling of its name."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        for key, item in headers.items():
            if str(key).lower() == name.lower():
                return item
    return value


# --------------------------------------------------------------------------
# Pager
# --------------------------------------------------------------------------


@dataclass
class Paging:
    """A configuration's pagination settings."""

    style: str = "offset"
    page_size: int = 100
    size_param: str = "limit"
    offset_param: str = "offset"
    page_param: str = "page"
    cursor_param: str = "cursor"
    cursor_path: str = ""
    next_url_path: str = ""


class Pager:
    """The URLs of one pull run.

    ``cap``: the most items the run may take (None: no cap). The pull asks ``first()``,
    then after each page ``next(headers, body, count)`` with the page's response headers,
    parsed body and item count; None ends the run. ``want`` is the size the current page
    was asked for (offset style asks no more than the cap leaves).
    """

    def __init__(self, url, paging, cap=None):
        if paging.style not in STYLES:
            raise ValueError("unknown pagination style %r" % paging.style)
        self.base = url
        self.paging = paging
        self.size = max(int(paging.page_size or 0), 1)
        self.cap = cap
        self.taken = 0
        self.offset = 0
        self.page = 1
        self.url = None
        self.want = self.size
        self.seen = set()

    def _remaining(self):
        return None if self.cap is None else max(self.cap - self.taken, 0)

    def first(self):
        p = self.paging
        if p.style == "offset":
            remaining = self._remaining()
            self.want = self.size if remaining is None else min(self.size, remaining)
            url = _query(self.base, **{p.size_param: self.want, p.offset_param: 0})
        elif p.style in ("page", "link"):
            url = _query(self.base, **{p.page_param: 1, p.size_param: self.size})
        else:  # cursor, next_url
            url = _query(self.base, **{p.size_param: self.size})
        self.url = url
        self.seen.add(url)
        return url

    def next(self, headers, body, count):
        """The next page's URL, or None when the run is over; raises ``PagingLoop`` / ``ForeignOrigin``."""
        p = self.paging
        self.taken += count
        remaining = self._remaining()
        if remaining is not None and remaining <= 0:
            return None
        if p.style == "offset":
            if not count or count < self.want:
                return None
            self.offset += count
            self.want = self.size if remaining is None else min(self.size, remaining)
            url = _query(self.base, **{p.size_param: self.want, p.offset_param: self.offset})
        elif p.style == "page":
            if not count or count < self.size:
                return None
            self.page += 1
            url = _query(self.base, **{p.page_param: self.page, p.size_param: self.size})
        elif p.style == "link":
            url = next_link(header(headers, "Link"), self.url)
        elif p.style == "cursor":
            value = get_path(body, p.cursor_path)
            if value is MISSING or value is None or value == "" or isinstance(value, (dict, list, bool)):
                return None
            url = _query(self.url, **{p.cursor_param: value})
        else:  # next_url
            value = get_path(body, p.next_url_path)
            if not isinstance(value, str) or not value.strip():
                return None
            url = urljoin(self.url, value.strip())
        if not url:
            return None
        if origin(url) != origin(self.base):
            raise ForeignOrigin(url)
        if url in self.seen:
            raise PagingLoop(url)
        self.seen.add(url)
        self.url = url
        return url
