"""OAuth2 client credentials: the access token a configuration sends, fetched once, shared.

Where a token is looked for, in order:

1. this process's memo (per database, configuration and credentials' fingerprint);
2. the configuration row, ``oauth2_token_encrypted`` (Fernet-encrypted JSON: token, expiry,
   lifetime, fingerprint) as the caller's transaction sees it: what another worker or
   process stored;
3. a refresh, on a cursor of its own under a PostgreSQL advisory lock per configuration:
   the row is read again in READ COMMITTED (another process may have refreshed it while
   this one waited), else a token is requested from the Token URL and stored, committed
   at once, so every worker and process shares it and a rollback of the caller never
   loses it. A configuration that another cursor cannot see yet (created in the caller's
   still-open transaction, as under the test runner) is refreshed on the caller's cursor.

A token is refreshed before it expires (``lib.oauth2.is_fresh``: a minute before, or a
tenth of a short lifetime) and once when the API answers 401 (``after_401``: the
rejected token is never used again). Tokens and the client secret never reach a log
row: Authorization is redacted, the token request's body and answer are logged with
``***`` in their place.
"""

import hashlib
import json
import logging
import threading
import time
from datetime import datetime, timezone

import psycopg2

from ..lib import oauth2
from ..lib.errors import SyncError
from ..lib.http_client import redact_headers
from .client import outbound_client, timeouts

_logger = logging.getLogger(__name__)

LOCK_NAMESPACE = 0x626A5F6F  # pg_advisory_xact_lock(namespace, config id): "bj_o"
ROW_LOCK_TIMEOUT = "2s"  # the caller itself may hold the config row: then its cursor stores the token

_memo = {}  # (dbname, config id) -> (fingerprint, token, expires_at, lifetime)
_memo_lock = threading.Lock()


class TokenError(SyncError):
    """The token endpoint refused or failed; ``error`` is the ``lib.oauth2.OAuth2Error``."""

    def __init__(self, message, error):
        super().__init__(message, status=401 if error.status in (400, 401, 403) else 502)
        self.error = error


# --------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------


def authorization(config):
    """The Authorization header value (``services.auth.AUTHORIZATION['oauth2']``); raises ``TokenError``."""
    return "Bearer " + access_token(config)


def with_token(config, headers):
    """``headers`` with the current token (a fresh one when the cached one is about to expire).

    Called before every request of a long run (the scheduled sync, the outbox worker), so
    a token that expires mid-run is refreshed in time. A failing token endpoint leaves
    the headers as they were: the API's 401 then tells, and ``after_401`` tries once more.
    """
    try:
        value = authorization(config)
    except TokenError as exc:
        _logger.warning("bj_api_sync: %s: %s", config.name, exc.message)
        return headers
    headers = dict(headers)
    headers["Authorization"] = value
    return headers


def after_401(sender, request, headers, outcome, vals_list, on_attempt, max_retries=None):
    """The API refused the token: forget it, get another one and send ``request`` once more.

    Called by ``Sender.settle`` on the calling thread (its ``on_attempt`` appends the new attempts' log rows to
    ``vals_list``). Returns the outcome to report: the second one, or the 401 when no new
    token could be had.
    """
    config = sender.config
    env = config.env
    rejected = (headers.get("Authorization") or "")[len("Bearer ") :]
    try:
        token = access_token(config, rejected=rejected)
    except TokenError as exc:
        if vals_list:
            vals_list[-1]["error_message"] = env._(
                "HTTP status 401; the OAuth2 token could not be refreshed: %s", exc.message
            )
        return outcome
    if vals_list:
        vals_list[-1].update(
            status="retrying",
            error_message=env._("HTTP status 401: the OAuth2 token was refused; a new one was fetched, retrying once"),
        )
    headers = dict(headers)
    headers["Authorization"] = "Bearer " + token
    first = len(vals_list)
    second = sender.client.send(
        request.method,
        request.url,
        headers=headers,
        body=request.body,
        timeout=sender.timeout,
        max_retries=config.max_retries if max_retries is None else max_retries,
        backoff=config.retry_backoff,
        on_attempt=on_attempt,
    )
    for number, vals in enumerate(vals_list[first:], start=first + 1):
        vals["attempt"] = number  # numbered after the refused attempt(s)
    return second


def test_token(config):
    """Fetch a new token (Test Connection); returns its lifetime in seconds, raises ``TokenError``."""
    token = _refresh(config, _fingerprint(config), rejected=None, force=True)
    return max(int(token[1] - time.time()), 0)


def forget(config):
    """Drop this process's memo of ``config``'s token (the row's copy is cleared by ``write``)."""
    with _memo_lock:
        _memo.pop((config.env.cr.dbname, config.id), None)


# --------------------------------------------------------------------------
# The token
# --------------------------------------------------------------------------


def access_token(config, rejected=None):
    """A token to send now: memo, then the row, then a refresh. ``rejected``: never that one."""
    config = config.sudo()
    fingerprint = _fingerprint(config)
    now = time.time()
    key = (config.env.cr.dbname, config.id)
    with _memo_lock:
        memo = _memo.get(key)
    if memo and memo[0] == fingerprint and memo[1] != rejected and oauth2.is_fresh(memo[2], now, memo[3]):
        return memo[1]
    stored = _decode(config, config.oauth2_token_encrypted, fingerprint)
    if _usable(stored, rejected, now):
        _remember(config, fingerprint, stored)
        return stored[0]
    return _refresh(config, fingerprint, rejected)[0]


def _fingerprint(config):
    """What a token was issued for: another client, secret, server, scope or audience needs another."""
    parts = [
        config.oauth2_token_url or "",
        config.oauth2_client_id or "",
        config.sudo().oauth2_client_secret_encrypted or "",
        config.oauth2_scope or "",
        config.oauth2_audience or "",
        config.oauth2_client_auth or "",
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:32]


def _usable(token, rejected, now):
    return bool(token) and token[0] != rejected and oauth2.is_fresh(token[1], now, token[2])


def _remember(config, fingerprint, token):
    with _memo_lock:
        _memo[(config.env.cr.dbname, config.id)] = (fingerprint, token[0], token[1], token[2])


def _decode(config, encrypted, fingerprint):
    """``(token, expires_at, lifetime)`` of a stored token issued for ``fingerprint``, else None."""
    if not encrypted:
        return None
    try:
        data = json.loads(config._bj_secret_box().decrypt(encrypted))
    except Exception:  # noqa: BLE001 - a key rotated away or garbage: fetch a new token
        return None
    if not isinstance(data, dict) or data.get("fp") != fingerprint or not data.get("t"):
        return None
    return data["t"], float(data.get("exp") or 0), float(data.get("life") or 0)


def _encode(config, fingerprint, token):
    text = json.dumps({"t": token[0], "exp": token[1], "life": token[2], "fp": fingerprint})
    return config._bj_secret_box().encrypt(text)


def _expiry_column(expires_at):
    return datetime.fromtimestamp(expires_at, timezone.utc).replace(tzinfo=None, microsecond=0)


def _refresh(config, fingerprint, rejected, force=False):
    """A new (or just refreshed by someone else) token ``(token, expires_at, lifetime)``."""
    env = config.env
    fetched = None
    if not env.registry.in_test_mode():
        connect, read = timeouts(config)
        wait = int(connect + read) + 5  # at most one token request of another process
        stage = "lock"
        try:
            with env.registry.cursor() as cr:
                cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
                cr.execute("SET LOCAL lock_timeout = %s", ["%ss" % wait])
                cr.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, config.id])
                cr.execute("SELECT oauth2_token_encrypted FROM bj_api_sync_config WHERE id = %s", [config.id])
                row = cr.fetchone()
                if row is not None:  # committed: the row is where every process finds the token
                    stored = _decode(config, row[0], fingerprint)
                    if not force and _usable(stored, rejected, time.time()):
                        _remember(config, fingerprint, stored)
                        return stored
                    fetched = _fetch(config)
                    stage = "store"
                    cr.execute("SET LOCAL lock_timeout = %s", [ROW_LOCK_TIMEOUT])
                    _store(cr, config, fingerprint, fetched)
                    _remember(config, fingerprint, fetched)
                    return fetched
        except psycopg2.errors.LockNotAvailable:
            if stage == "lock":
                # another process has been refreshing for longer than a token request may take
                _logger.warning("bj_api_sync: %s: OAuth2 token lock not granted; fetching without it", config.name)
                fetched = _fetch(config)
                _remember(config, fingerprint, fetched)
                return fetched
            # the caller's own transaction holds the config row (it wrote the configuration): it stores
            _logger.info("bj_api_sync: %s: OAuth2 token stored in the caller's transaction", config.name)
        except psycopg2.OperationalError as exc:  # no connection left: the caller's cursor will do
            _logger.warning("bj_api_sync: %s: OAuth2 token cursor failed (%s)", config.name, exc)
    # Not visible to another cursor (created in this transaction, or the test runner's shared
    # one), or locked by the caller itself: the caller's transaction stores the token.
    if fetched is None:
        fetched = _fetch(config)
    env.flush_all()
    _store(env.cr, config, fingerprint, fetched)
    config.invalidate_recordset(["oauth2_token_encrypted", "oauth2_token_expires_at"])
    _remember(config, fingerprint, fetched)
    return fetched


def _store(cr, config, fingerprint, token):
    cr.execute(
        "UPDATE bj_api_sync_config SET oauth2_token_encrypted = %s, oauth2_token_expires_at = %s WHERE id = %s",
        [_encode(config, fingerprint, token), _expiry_column(token[1]), config.id],
    )


def _fetch(config):
    """Ask the Token URL for a token (one log row per attempt, secrets redacted); raises ``TokenError``."""
    env = config.env
    body, headers = oauth2.token_request(
        config.oauth2_client_id or "",
        config._get_secret("oauth2_client_secret"),
        scope=(config.oauth2_scope or "").strip() or None,
        audience=(config.oauth2_audience or "").strip() or None,
        client_auth=config.oauth2_client_auth or "body",
    )
    url = config.oauth2_token_url
    vals_list = []
    logged_headers = json.dumps(redact_headers(headers), ensure_ascii=False, indent=1)

    def on_attempt(attempt):
        vals_list.append(_attempt_vals(config, url, logged_headers, body, attempt))

    outcome = outbound_client(env).send(
        "POST",
        url,
        headers=headers,
        body=body,
        timeout=timeouts(config),
        max_retries=config.max_retries,
        backoff=config.retry_backoff,
        on_attempt=on_attempt,
    )
    try:
        if outcome.error and not outcome.status:
            raise oauth2.OAuth2Error("http_error", outcome.error, 0)
        token = oauth2.parse_token_response(outcome.status, outcome.text, time.time())
    except oauth2.OAuth2Error as error:
        message = _message(env, url, error)
        if vals_list:
            vals_list[-1].update(status="error", error_message=message)
        _log(env, vals_list)
        raise TokenError(message, error) from None
    _log(env, vals_list)
    return token.access_token, token.expires_at, max(token.expires_at - time.time(), 0)


def _message(env, url, error):
    text = env._("OAuth2 token request to %(url)s failed: %(error)s", url=url, error=str(error))
    if error.hint:
        text = "%s (%s)" % (text, env._(error.hint))
    return text


def _attempt_vals(config, url, logged_headers, body, attempt):
    env = config.env
    ok = 200 <= attempt.status < 300 and not attempt.error
    status = "retrying" if attempt.will_retry else ("success" if ok else "error")
    error = attempt.error or (not ok and env._("HTTP status %s", attempt.status)) or False
    return {
        "config_id": config.id,
        "company_id": config.company_id.id,
        "direction": "out",
        "method": "POST",
        "url": url,
        "request_headers": logged_headers,
        "request_data": oauth2.redact_form(body) if config.log_payloads else False,
        "response_code": attempt.status,
        "response_data": oauth2.redact_answer(attempt.text) if config.log_payloads else False,
        "status": status,
        "error_message": error,
        "res_model": False,
        "res_ids": False,
        "duration_ms": attempt.elapsed_ms,
        "attempt": attempt.number,
    }


def _log(env, vals_list):
    from .sender import LogBuffer  # noqa: PLC0415 - sender imports auth, which imports this module

    logs = LogBuffer(env)
    logs.extend(vals_list)
    logs.flush()
