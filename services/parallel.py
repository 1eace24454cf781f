"""Bounded concurrency for outbound HTTP: only the HTTP exchange runs in threads.

Odoo's cursor and environment are not thread-safe. A request is therefore prepared
(headers, signature, body) on the calling thread, its HTTP exchange alone
(``HttpClient.send``: DNS, guard, connection, retries with their sleeps) runs in a pool
thread, and what it brings back (log rows, bindings, job states, circuit breaker,
translated messages) is processed on the calling thread again, with its cursor and
transaction rules. Nothing given to a pool thread reads a record or the environment.

Bounds:

* per configuration, **Max Parallel Requests** (``max_parallel_requests``): what one remote
  receives at once. The outbox counts it over every worker sharing the database (running
  jobs in PostgreSQL); an immediate call or a scheduled sync keeps it within the call;
* per worker (one outbox worker, one immediate call), the system parameter
  ``bj_api_sync.max_parallel_requests_total``;
* a configuration whose requests time out is throttled by itself (``Throttle``, additive
  increase / multiplicative decrease, like TCP's congestion window): each wave of timeouts
  halves its bound, down to one request at a time, and every answer in time adds back one
  request per round. A hanging remote then holds one slot of the worker, not
  ``max_parallel_requests`` slots for a read timeout each, long before the circuit breaker
  pauses it.
"""

import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

TOTAL_PARAM = "bj_api_sync.max_parallel_requests_total"
DEFAULT_TOTAL = 16
DEFAULT_PER_CONFIG = 4
MAX_TOTAL = 256  # threads of one worker, whatever the parameter says


def total_limit(env):
    """Requests one worker (or one immediate call) keeps in flight at most."""
    try:
        value = int(env["ir.config_parameter"].sudo().get_param(TOTAL_PARAM, DEFAULT_TOTAL))
    except (TypeError, ValueError):
        value = DEFAULT_TOTAL
    return max(1, min(value, MAX_TOTAL))


def timed_out(outcome):
    """Whether an ``http_client.Result`` ended without an answer in time (timeout: 408, no response)."""
    last = outcome.attempts[-1] if outcome.attempts else None
    return bool(last and last.status == 408 and last.error and not last.headers)


class Throttle:
    """Process-wide bound of each configuration's parallel requests while its remote times out.

    Keyed by database and configuration id; shared by the cron threads of one process
    (each Odoo process learns by itself: a throttled remote costs each of them one
    request per timeout). A configuration that never timed out has no entry.
    """

    _lock = threading.Lock()
    _state = {}  # (dbname, config id) -> [bound (float), monotonic time of the last decrease]

    @staticmethod
    def maximum(config):
        return max(1, config.max_parallel_requests or DEFAULT_PER_CONFIG)

    @classmethod
    def limit(cls, config, maximum=None):
        """The configuration's bound now: Max Parallel Requests, or less while throttled."""
        maximum = cls.maximum(config) if maximum is None else maximum
        with cls._lock:
            state = cls._state.get((config.env.cr.dbname, config.id))
        if state is None:
            return maximum
        return max(1, min(maximum, int(state[0])))

    @classmethod
    def throttled(cls, env):
        """``{config id: bound}`` of the database's configurations that are throttled now."""
        dbname = env.cr.dbname
        with cls._lock:
            return {cid: max(1, int(state[0])) for (db, cid), state in cls._state.items() if db == dbname}

    @classmethod
    def record(cls, config, outcome, sent_at, maximum=None):
        """Feed one exchange's outcome: a timeout halves the bound (once per wave), an answer adds."""
        key = (config.env.cr.dbname, config.id)
        late = timed_out(outcome)
        maximum = cls.maximum(config) if maximum is None else maximum
        with cls._lock:
            state = cls._state.get(key)
            if late:
                if state is None:
                    state = cls._state[key] = [float(maximum), 0.0]
                # Requests sent before the last decrease belong to the wave that caused it.
                if sent_at >= state[1]:
                    state[0] = max(1.0, min(state[0], maximum) / 2)
                    state[1] = time.monotonic()
            elif state is not None:
                state[0] += 1.0 / max(state[0], 1.0)
                if state[0] >= maximum:
                    del cls._state[key]

    @classmethod
    def reset(cls, env=None, config_id=None):
        """Forget the bounds (of one configuration, one database, or all)."""
        with cls._lock:
            for key in list(cls._state):
                if env is None or (key[0] == env.cr.dbname and config_id in (None, key[1])):
                    del cls._state[key]


class Exchange:
    """The HTTP part of one request, ready to run in any thread (it touches no database).

    ``run()`` calls ``send`` (a callable returning an ``http_client.Result``) and keeps
    the result in ``outcome`` and the start time in ``sent_at``; ``context`` is what the
    calling thread needs to process it afterwards.
    """

    __slots__ = ("send", "context", "sent_at", "outcome")

    def __init__(self, send, context=None):
        self.send = send
        self.context = context
        self.sent_at = None
        self.outcome = None

    def run(self):
        self.sent_at = time.monotonic()
        self.outcome = self.send()
        return self


class HttpPool:
    """Threads for ``Exchange.run``, at most ``size`` at once; created on first use."""

    def __init__(self, size):
        self.size = max(1, int(size))
        self._executor = None

    def submit(self, exchange):
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="bj_api_sync.http")
        return self._executor.submit(exchange.run)

    def close(self, wait_for_them=True):
        if self._executor is not None:
            self._executor.shutdown(wait=wait_for_them, cancel_futures=not wait_for_them)
            self._executor = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_exc):
        # On an error in the caller, requests not started yet are not sent; those in
        # flight are waited for (bounded by their timeouts) so that none outlives the call.
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=exc_type is not None)
            self._executor = None


def run_ordered(exchanges, limit, size):
    """Run ``exchanges`` with at most ``limit()`` in flight; yield each one, done, in order.

    ``limit`` is called on this thread whenever a slot could be filled (a throttled
    configuration lowers it while the call runs); ``size`` bounds the threads. The caller
    processes each yielded exchange (on this thread) while the next ones are in flight.
    """
    if len(exchanges) <= 1 or size <= 1:
        for exchange in exchanges:  # nothing to overlap: no thread
            yield exchange.run()
        return
    with HttpPool(min(size, len(exchanges))) as pool:
        inflight = {}
        finished = set()
        submitted = 0
        for index, exchange in enumerate(exchanges):
            while submitted < len(exchanges) and len(inflight) < max(1, min(limit(), size)):
                inflight[pool.submit(exchanges[submitted])] = submitted
                submitted += 1
            while index not in finished:
                done, _pending = wait(list(inflight), return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()  # an exception of the HTTP thread is the caller's
                    finished.add(inflight.pop(future))
                while submitted < len(exchanges) and len(inflight) < max(1, min(limit(), size)):
                    inflight[pool.submit(exchanges[submitted])] = submitted
                    submitted += 1
            finished.discard(index)
            yield exchange
