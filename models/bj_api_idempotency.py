import json
import logging

from psycopg2 import errors as pg_errors

from odoo import api, fields, models

_logger = logging.getLogger(__name__)

TTL_HOURS = 24
# How long a request waits for a concurrent request holding the same key before
# answering 409 "in progress" instead of blocking its worker any longer.
CLAIM_LOCK_TIMEOUT_MS = 10000


class BjApiIdempotency(models.Model):
    """First response to an inbound ``Idempotency-Key``, replayed for 24 hours.

    A request claims its key with an INSERT on the unique (config, key) index
    before doing any work, so two concurrent requests with the same key can
    never both write: the second one waits on the first one's row and then
    replays its response (or gets 409 while the first one is still running).
    """

    _name = "bj.api.idempotency"
    _description = "Inbound Idempotency Key"
    _order = "id desc"
    _rec_name = "key"

    config_id = fields.Many2one("bj.api.sync.config", required=True, ondelete="cascade", index=True)
    key = fields.Char(required=True)
    fingerprint = fields.Char(
        help="SHA-256 of method, record id and body: a key reused for another request is refused."
    )
    response_status = fields.Integer(help="Empty while the first request is still running.")
    response_headers = fields.Text()
    response_body = fields.Text()

    _sql_constraints = [
        ("config_key_unique", "unique(config_id, key)", "An idempotency key is stored once per configuration."),
    ]

    @api.model
    def _claim(self, config_id, key, fingerprint, lock_timeout_ms=CLAIM_LOCK_TIMEOUT_MS):
        """Claim ``key`` for this request or report why not.

        Returns ``("claimed", row_id)``, ``("replay", status, headers, body)``,
        ``("busy",)`` (another request holds the key) or ``("mismatch",)`` (the
        key was used for a different request). A conflicting claim committed
        after this transaction started raises a serialization failure: the
        caller lets it through so Odoo retries the whole request, which then
        replays the stored response. Raw SQL because the ORM has no
        ``ON CONFLICT DO NOTHING``, which is what makes the claim atomic.
        """
        cr = self.env.cr
        cr.execute("SELECT current_setting('lock_timeout')")
        previous_timeout = cr.fetchone()[0]
        cr.execute("SELECT set_config('lock_timeout', %s, true)", [f"{int(lock_timeout_ms)}ms"])
        try:
            with cr.savepoint(flush=False):
                cr.execute(
                    """
                    DELETE FROM bj_api_idempotency
                     WHERE config_id = %s AND key = %s
                       AND create_date < (now() AT TIME ZONE 'UTC') - make_interval(hours => %s)
                    """,
                    [config_id, key, TTL_HOURS],
                )
                cr.execute(
                    """
                    INSERT INTO bj_api_idempotency
                           (config_id, key, fingerprint, create_uid, write_uid, create_date, write_date)
                    VALUES (%s, %s, %s, %s, %s, now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC')
                    ON CONFLICT (config_id, key) DO NOTHING
                    RETURNING id
                    """,
                    [config_id, key, fingerprint, self.env.uid, self.env.uid],
                    log_exceptions=False,  # lock timeouts and serialization failures are expected here
                )
                row = cr.fetchone()
        except pg_errors.LockNotAvailable:
            return ("busy",)
        finally:
            cr.execute("SELECT set_config('lock_timeout', %s, true)", [previous_timeout])
        if row:
            return ("claimed", row[0])
        cr.execute(
            """
            SELECT fingerprint, response_status, response_headers, response_body
              FROM bj_api_idempotency
             WHERE config_id = %s AND key = %s
            """,
            [config_id, key],
        )
        existing = cr.fetchone()
        if not existing or not existing[1]:
            return ("busy",)
        if existing[0] != fingerprint:
            return ("mismatch",)
        try:
            headers = json.loads(existing[2] or "{}")
        except ValueError:
            headers = {}
        return ("replay", existing[1], headers, existing[3])

    @api.model
    def _store(self, row_id, status, headers, body):
        """Keep the response of a claimed key (in the request's transaction)."""
        self.env.cr.execute(
            """
            UPDATE bj_api_idempotency
               SET response_status = %s, response_headers = %s, response_body = %s,
                   write_date = now() AT TIME ZONE 'UTC'
             WHERE id = %s
            """,
            [status, json.dumps(headers or {}), body, row_id],
        )

    @api.model
    def _release(self, row_id):
        """Forget a claim whose request failed on our side: the client may retry it."""
        self.env.cr.execute("DELETE FROM bj_api_idempotency WHERE id = %s", [row_id])

    @api.model
    def _purge_expired(self):
        """Drop keys older than 24 hours (called by the daily log retention cron)."""
        self.env.cr.execute(
            """
            DELETE FROM bj_api_idempotency
             WHERE create_date < (now() AT TIME ZONE 'UTC') - make_interval(hours => %s)
            """,
            [TTL_HOURS],
        )
        count = self.env.cr.rowcount
        self.invalidate_model()
        _logger.info("bj_api_sync: deleted %d expired idempotency keys", count)
        return count
