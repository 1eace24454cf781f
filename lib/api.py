"""The names of the inbound API that code on both sides of it must agree on.

One definition of the route prefix, the endpoint pattern and the method sets: the
controller, the configuration's constraint, OpenAPI and both flows read them here.
"""

import re

API_PREFIX = "/bj_api_sync/v1"
ENDPOINT_RE = re.compile(r"[A-Za-z0-9_-]+")  # use fullmatch: a whole path segment
KNOWN_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def endpoint_path(endpoint):
    """``/bj_api_sync/v1/<endpoint>``."""
    return "%s/%s" % (API_PREFIX, endpoint or "")
