"""Schemathesis hooks of the fuzz campaign (loaded through SCHEMATHESIS_HOOKS by campaign.py).

Every request schemathesis sends gets a unique ``X-Fuzz-Id`` header and a line in a journal
(``BJ_FUZZ_JOURNAL``, one JSON object per line): what was sent, then what came back. The
campaign matches the ids with the ``bj.api.log`` rows to find requests that were not logged.
A check fails any response that contains one of the secrets listed in ``BJ_FUZZ_SECRETS``.
"""

import itertools
import json
import os
import threading

import schemathesis

_JOURNAL = os.environ.get("BJ_FUZZ_JOURNAL")
_PREFIX = os.environ.get("BJ_FUZZ_PREFIX", "st")
_SECRETS = [s for s in os.environ.get("BJ_FUZZ_SECRETS", "").split("\n") if s]
_counter = itertools.count(1)
_lock = threading.Lock()


def _write(entry):
    if not _JOURNAL:
        return
    with _lock, open(_JOURNAL, "a", encoding="utf-8") as journal:
        journal.write(json.dumps(entry) + "\n")


def _header(response, name):
    for key, value in response.headers.items():
        if key.lower() == name.lower():
            return value[0] if isinstance(value, list) and value else value
    return ""


def _secret_in(response):
    text = (response.content or b"").decode("utf-8", "replace")
    headers = json.dumps(dict(response.headers.items()))
    return [i for i, secret in enumerate(_SECRETS) if secret in text or secret in headers]


@schemathesis.hook
def before_call(context, case, kwargs):
    fuzz_id = "%s-%d" % (_PREFIX, next(_counter))
    case.headers = dict(case.headers or {}, **{"X-Fuzz-Id": fuzz_id})
    _write({"id": fuzz_id, "method": case.method, "path": case.formatted_path})


@schemathesis.hook
def after_call(context, case, response):
    fuzz_id = (case.headers or {}).get("X-Fuzz-Id")
    _write({
        "id": fuzz_id,
        "status": response.status_code,
        "content_type": _header(response, "Content-Type"),
        "secrets": _secret_in(response),
    })


@schemathesis.check
def no_secret_in_response(ctx, response, case):
    """No configured secret (token, password, HMAC secret, secret header, encryption key) comes back."""
    found = _secret_in(response)
    if found:
        raise AssertionError("secret #%s in the response" % found)
