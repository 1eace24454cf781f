"""How requests are sent: retries, one log row per attempt, bindings, the call's result.

``Sender.send(request)`` sends one ``OutboundRequest`` with the configuration's retries
and records what happened: counts in the ``SyncResult``, a log row per attempt (written
in batches on a detached cursor so that they survive the caller's rollback), bindings
after success, and the outcome for the circuit breaker.
"""

import json
import logging

import psycopg2

from ..lib import signing
from ..lib.api import BODY_METHODS
from ..lib.errors import SyncError
from ..lib.http_client import redact_headers
from . import circuit_breaker, mapping, oauth2, parallel, write_back
from .auth import build_headers
from .client import outbound_client, parsed, timeouts
from .outbound_build import build_requests
from .transaction import under_test

_logger = logging.getLogger(__name__)

LOG_FLUSH_SIZE = 200  # log rows per detached write


class SyncResult(dict):
    """What ``_make_outbound_http_request`` returns.

    A dict that also answers attribute access, so both documented BJET usages,
    ``response.get('success')`` and ``response.status_code``, work.

    Keys: ``success`` (nothing failed), ``status_code`` and ``response`` (parsed
    JSON or text) of the last request -- of the last *failed* one when some
    failed, so that checking ``status_code`` alone does not hide a failure --,
    ``sent``, ``failed``, ``skipped`` (record counts; items for a pull),
    ``log_ids``, ``log_id`` (the last one), ``job_ids``, ``message``.
    """

    def __init__(self, **values):
        super().__init__(
            success=True,
            status_code=0,
            response=None,
            sent=0,
            failed=0,
            skipped=0,
            log_ids=[],
            log_id=False,
            job_ids=[],
            message="",
        )
        self.update(values)

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name, value):
        self[name] = value

    def json(self):
        """The response body, for scripts written against ``requests.Response``."""
        return self["response"]


def summary(env, result):
    return env._(
        "%(sent)s sent, %(failed)s failed, %(skipped)s skipped.",
        sent=result.sent,
        failed=result.failed,
        skipped=result.skipped,
    )


# --------------------------------------------------------------------------
# Log rows
# --------------------------------------------------------------------------


# Per database, ids of configurations a detached cursor has already seen committed.
_COMMITTED_CONFIGS = {}


class LogBuffer:
    """Attempt logs written in batches through a detached cursor (they survive a rollback)."""

    def __init__(self, env, size=LOG_FLUSH_SIZE):
        self.env = env
        self.size = size
        self.pending = []
        self.ids = []
        # can a detached cursor see the config? (checked once); the outbox worker commits
        # each job with its logs, which need no separate cursor then
        self.visible = False if env.context.get("bj_api_sync_logs_in_transaction") else None

    def extend(self, vals_list):
        self.pending.extend(vals_list)
        if len(self.pending) >= self.size:
            self.flush()

    def flush(self):
        if not self.pending:
            return
        vals_list, self.pending = self.pending, []
        Log = self.env["bj.api.log"].sudo()
        if self._detached_possible(vals_list):
            try:
                logs = Log._write_detached(vals_list)
            except psycopg2.Error as exc:
                _logger.warning("bj_api_sync: detached log write failed (%s); logging in the transaction", exc)
                logs = Log._insert_rows(vals_list)
        else:
            logs = Log._insert_rows(vals_list)
        self.ids.extend(logs.ids)

    def _detached_possible(self, vals_list):
        """Whether another cursor can see the config the logs point to.

        A config created in the still-open transaction (a script that creates and uses
        it at once) is invisible to the detached cursor: its logs then go in the
        caller's transaction instead of failing on the foreign key.
        """
        if self.visible is None:
            if under_test(self.env):
                self.visible = True  # _write_detached uses the test cursor itself
            else:
                config_ids = {vals["config_id"] for vals in vals_list if vals.get("config_id")}
                committed = _COMMITTED_CONFIGS.setdefault(self.env.cr.dbname, set())
                if config_ids <= committed:
                    # Seen committed before: ids are never reused, so no cursor is needed to know.
                    self.visible = True
                else:
                    with self.env.registry.cursor() as cr:
                        cr.execute("SELECT id FROM bj_api_sync_config WHERE id IN %s", [tuple(config_ids) or (0,)])
                        found = {row[0] for row in cr.fetchall()}
                    committed |= found
                    self.visible = found == config_ids
        return self.visible


def event_vals(config, status, message, res_ids, code=0, method=None, url=None):
    """A log row for something that happened without an HTTP exchange (skip, build error)."""
    return {
        "config_id": config.id,
        "company_id": config.company_id.id,
        "direction": "out",
        "method": method or (config._get_http_method() if config.method_names else False),
        "url": url or config.url,
        "response_code": code,
        "status": status,
        "error_message": message,
        "res_model": config.model_name,
        "res_ids": ",".join(str(i) for i in res_ids) or False,
        "attempt": 0,
    }


def skip(config, records, message):
    """A call refused before anything was built (paused, archived...): one log row."""
    _logger.info("bj_api_sync: %s", message)
    logs = LogBuffer(config.env)
    logs.extend([event_vals(config, "skipped", message, records.ids)])
    logs.flush()
    return SyncResult(success=False, skipped=len(records), message=message, log_ids=logs.ids, log_id=logs.ids[-1])


def config_error(config, records, exc, result):
    """A configuration that cannot send at all (missing secret...): one log row, no raise."""
    logs = LogBuffer(config.env)
    message = exc.message if isinstance(exc, SyncError) else str(exc.args[0] if exc.args else exc)
    logs.extend([event_vals(config, "error", message, records.ids)])
    logs.flush()
    result.update(
        success=False,
        failed=result.failed + len(records),
        status_code=0,
        response=message,
        message=message,
        log_ids=logs.ids,
        log_id=logs.ids[-1],
    )
    return result


# --------------------------------------------------------------------------
# Sending
# --------------------------------------------------------------------------


class Sender:
    """Sends requests of one configuration and keeps the run's counts, logs and bindings."""

    def __init__(self, config, timeout=None, result=None):
        self.config = config
        self.env = config.env
        self.method = config._get_http_method()
        self.timeout = timeouts(config, timeout)
        self.headers, self.secret_names = build_headers(config, body=self.method in BODY_METHODS)
        self.hmac_secret = config._get_secret("hmac_secret") if config.auth_type == "hmac" else None
        self.oauth2 = config.auth_type == "oauth2"
        self.write_back = write_back.for_config(config)  # lines of Direction "in": values from the answer
        self.client = outbound_client(self.env)
        self.log_payloads = config.log_payloads
        self.company_id = config.company_id.id
        self.identifier_key = mapping.identifier_key(config)
        self.result = result if result is not None else SyncResult()
        self.logs = LogBuffer(self.env)
        self.bindings = {}
        self.last = None
        self.last_failure = None
        self.deliveries = [0, 0]  # [succeeded, failed] HTTP deliveries, for the circuit breaker
        self.answered = False  # a request of this sender succeeded (parallel requests from then on)

    # -- one request ---------------------------------------------------------

    def transmit(self, request, max_retries=None):
        """Send with retries; returns ``(http_client.Result, log vals per attempt)``."""
        exchange = self.exchange(request, max_retries=max_retries).run()
        return self.settle(exchange, max_retries=max_retries)

    def exchange(self, request, max_retries=None):
        """The HTTP part of sending ``request``, as a ``parallel.Exchange`` that any thread may run.

        Everything that needs the environment (the decrypted secret, retry settings) is read
        here, on the calling thread; the exchange itself signs the request (pure Python: the
        signature's timestamp is the moment it is sent, not when it was queued) and calls the
        HTTP client. The headers sent are kept for the log rows (``attempt_vals``).
        """
        client, secret = self.client, self.hmac_secret
        headers = request.headers
        if self.oauth2:
            headers = oauth2.with_token(self.config, headers)  # refreshed before it expires
        sent = {"headers": headers}
        options = {
            "body": request.body,
            "timeout": self.timeout,
            "max_retries": self.config.max_retries if max_retries is None else max_retries,
            "backoff": self.config.retry_backoff,
        }

        def send():
            headers = sent["headers"]
            if secret:
                headers = dict(headers)
                headers.update(signing.signature_headers(secret, request.idempotency_key, request.body or b""))
                sent["headers"] = headers
            return client.send(request.method, request.url, headers=headers, **options)

        return parallel.Exchange(send, context=(request, sent))

    def attempt_vals(self, exchange):
        """The log row of each attempt of a run ``exchange`` (on the calling thread)."""
        request, sent = exchange.context
        logged_headers = json.dumps(redact_headers(sent["headers"], self.secret_names), ensure_ascii=False, indent=1)
        return [self._attempt_vals(request, logged_headers, attempt) for attempt in exchange.outcome.attempts]

    def settle(self, exchange, max_retries=None):
        """``(outcome, log vals)`` of a run ``exchange``, on the calling thread.

        An OAuth2 token the API refused (401) is replaced and the request sent once more
        here, not in the pool thread: getting a token reads and writes the configuration.
        """
        outcome, vals_list = exchange.outcome, self.attempt_vals(exchange)
        if self.oauth2 and outcome.status == 401:
            request, sent = exchange.context
            logged_headers = vals_list[-1]["request_headers"] if vals_list else "{}"

            def on_attempt(attempt):
                vals_list.append(self._attempt_vals(request, logged_headers, attempt))

            outcome = oauth2.after_401(self, request, sent["headers"], outcome, vals_list, on_attempt, max_retries)
        return outcome, vals_list

    def transmit_many(self, requests, max_retries=None):
        """``transmit`` for many requests, up to Max Parallel Requests of them in flight.

        Yields ``(request, outcome, log vals)`` in the order of ``requests``, each processed
        by the caller on this thread while the next ones are in flight. The bound is
        the configuration's (lowered while its remote times out, ``parallel.Throttle``)
        and the worker's (``bj_api_sync.max_parallel_requests_total``).
        """
        exchanges = [self.exchange(request, max_retries=max_retries) for request in requests]
        config = self.config
        maximum = parallel.Throttle.maximum(config)
        size = min(parallel.total_limit(self.env), maximum)

        def limit():
            # Slow start: one request until the remote has answered once; one at a time again
            # while it fails (and the circuit breaker counts).
            if not self.answered or (self.last and not 200 <= self.last[0] < 300):
                return 1
            return parallel.Throttle.limit(config, maximum)

        for exchange in parallel.run_ordered(exchanges, limit, size):
            parallel.Throttle.record(config, exchange.outcome, exchange.sent_at, maximum)
            outcome, vals_list = self.settle(exchange, max_retries=max_retries)
            self.answered = self.answered or outcome.ok
            yield exchange.context[0], outcome, vals_list

    def _attempt_vals(self, request, logged_headers, attempt):
        env = self.env
        ok = 200 <= attempt.status < 300 and not attempt.error
        if attempt.will_retry:
            status = "retrying"
        else:
            status = "success" if ok else "error"
        error = attempt.error or (not ok and env._("HTTP status %s", attempt.status)) or False
        if attempt.will_retry:
            error = env._("%(error)s; retrying in %(delay).1f s", error=error, delay=attempt.delay)
        return {
            "name": env["bj.api.log"]._name_for(request.method, request.url),  # saves the model a recompute
            "config_id": self.config.id,
            "company_id": self.company_id,
            "direction": "out",
            "method": request.method,
            "url": request.url,
            "request_headers": logged_headers,
            "request_data": request.body if (self.log_payloads and request.body) else False,
            "response_code": attempt.status,
            "response_data": attempt.text if self.log_payloads else False,
            "status": status,
            "error_message": error,
            "res_model": request.res_model,
            "res_ids": ",".join(str(i) for i in request.res_ids) or False,
            "duration_ms": attempt.elapsed_ms,
            "attempt": attempt.number,
            "job_id": request.job_id or False,
            "script_messages": request.script_messages or False,
        }

    def send(self, request, max_retries=None):
        """Send one push request, count it, log it, remember bindings; returns the outcome."""
        outcome, vals_list = self.transmit(request, max_retries=max_retries)
        return self.record(request, outcome, vals_list)

    def record(self, request, outcome, vals_list):
        """Count, log and bind the outcome of one sent push request; returns the outcome."""
        self.logs.extend(vals_list)
        response = parsed(outcome)
        self.last = (outcome.status, response)
        if outcome.ok:
            self.result.sent += len(request.res_ids)
            self.deliveries[0] += 1
            if request.method in BODY_METHODS:
                self.remember_bindings(request, response)
                if self.write_back:
                    self.write_back(self, request, response)
        else:
            self.result.failed += len(request.res_ids)
            self.deliveries[1] += 1
            self.last_failure = (outcome.status, response)
        return outcome

    def remember_bindings(self, request, response):
        """Bind the request's records to the identifiers found in the remote's answer."""
        key = self.identifier_key
        if isinstance(response, list) and len(response) == len(request.res_ids):
            objects = response
        elif isinstance(response, dict) and len(request.res_ids) == 1:
            objects = [response]
        else:
            objects = [None] * len(request.res_ids)
        Binding = self.env["bj.api.sync.binding"]
        hashes = request.hashes or [Binding._payload_hash(p) for p in request.payloads]
        for rid, digest, obj in zip(request.res_ids, hashes, objects):
            external = obj.get(key) if key and isinstance(obj, dict) else None
            if isinstance(external, (dict, list)) or external is False or "\x00" in str(external):
                external = None  # not an identifier (NUL: PostgreSQL text cannot even store it)
            self.bindings[rid] = (None if external is None else str(external), digest)

    def fail(self, failure, method=None, url=None, status="error"):
        """A failure before any HTTP (serialization, placeholder, configuration): one log row."""
        self.result.failed += len(failure.res_ids)
        self.last_failure = (failure.status, {"message": failure.message, "status_code": failure.status})
        message = failure.message
        if failure.details:
            message = "%s\n\n%s" % (message, failure.details)
        self.logs.extend([event_vals(self.config, status, message, failure.res_ids, failure.status, method, url)])

    # -- batches -------------------------------------------------------------

    def push(self, records, skip_unchanged=False, max_records=None):
        build = build_requests(
            self.config, records, headers=self.headers, skip_unchanged=skip_unchanged, max_records=max_records
        )
        self.result.skipped += len(build.skipped_ids)
        for failure in build.failures:
            self.fail(failure)
        for request, outcome, vals_list in self.transmit_many(build.requests):
            self.record(request, outcome, vals_list)
        return build

    def flush(self):
        self.logs.flush()
        self.env["bj.api.sync.binding"]._upsert(self.config, self.bindings)
        self.bindings = {}

    def finish(self):
        self.flush()
        succeeded, failed = self.deliveries
        last_status = (self.last_failure or self.last or (0, None))[0]
        circuit_breaker.record_outcomes(self.config, succeeded, failed, last_status)
        result = self.result
        result.log_ids = list(self.logs.ids)
        result.log_id = result.log_ids[-1] if result.log_ids else False
        picked = self.last_failure or self.last
        if picked:
            result.status_code, result.response = picked
        result.success = not result.failed and not self.last_failure
        if not result.message:
            result.message = summary(self.env, result)
        return result


def checkpoint(runner, commit, done=None, remaining=None):
    """End of a batch: logs and bindings written, progress reported, committed in a cron."""
    runner.flush()
    if done is not None:
        runner.env["ir.cron"]._notify_progress(done=done, remaining=remaining or 0)
    if commit:
        runner.env.cr.commit()
        runner.env.invalidate_all()
