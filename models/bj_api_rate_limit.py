import logging

from odoo import api, fields, models

from ..services import transaction

_logger = logging.getLogger(__name__)

# One statement, atomic under concurrency: the row of the current minute is created
# or incremented, unless it already reached the limit (then nothing is returned).
# The timestamps are PostgreSQL's, so every worker and every host use one clock.
_CONSUME = """
    WITH w AS (
        SELECT date_trunc('minute', now() AT TIME ZONE 'UTC') AS start, now() AT TIME ZONE 'UTC' AS at
    ), hit AS (
        INSERT INTO bj_api_rate_limit AS r (config_id, window_start, hits)
        SELECT %(config_id)s, w.start, 1 FROM w
        ON CONFLICT (config_id, window_start) DO UPDATE SET hits = r.hits + 1 WHERE r.hits < %(limit)s
        RETURNING r.hits
    )
    SELECT (SELECT hits FROM hit), EXTRACT(EPOCH FROM w.start + interval '1 minute' - w.at) FROM w
"""


class BjApiRateLimit(models.Model):
    """Inbound requests per configuration and per minute (fixed windows), shared by all workers.

    Written only through :meth:`_consume` in a short transaction of its own, so the row
    lock of a busy endpoint is held for one statement, never for a whole request.
    """

    _name = "bj.api.rate.limit"
    _description = "Inbound Rate Limit Counter"
    _log_access = False
    _order = "window_start desc"

    config_id = fields.Many2one("bj.api.sync.config", required=True, ondelete="cascade")
    window_start = fields.Datetime(required=True, help="Start of the minute (UTC) this counter covers.")
    hits = fields.Integer(help="Authenticated requests accepted in this minute.")

    _sql_constraints = [
        ("config_window_unique", "unique(config_id, window_start)", "One counter per configuration and minute."),
    ]

    @api.model
    def _peek(self, config_id, limit):
        """Seconds until the window ends when this minute's budget is spent, else 0 (reads only)."""
        self.env.cr.execute(
            """
            SELECT EXTRACT(EPOCH FROM window_start + interval '1 minute' - (now() AT TIME ZONE 'UTC'))
              FROM bj_api_rate_limit
             WHERE config_id = %s AND window_start = date_trunc('minute', now() AT TIME ZONE 'UTC')
               AND hits >= %s
            """,
            [config_id, limit],
        )
        row = self.env.cr.fetchone()
        return _retry_after(row[0]) if row else 0

    @api.model
    def _consume(self, config_id, limit):
        """Count one request; return 0 when accepted, else the seconds until the next window.

        Outside tests the counter commits at once in READ COMMITTED (on the log
        connection, one round trip, else a cursor of its own): the request's transaction
        (REPEATABLE READ) would hold the row lock until it ends and fail with a
        serialization error on a counter updated meanwhile. Under the test runner
        everything shares one transaction (``services.transaction.run_detached``).
        """
        return transaction.run_detached(
            self.env, lambda cr: self._consume_on(cr, config_id, limit), isolation="READ COMMITTED"
        )

    @api.model
    def _consume_on(self, cr, config_id, limit):
        cr.execute(_CONSUME, {"config_id": config_id, "limit": limit})
        hits, remaining = cr.fetchone()
        if hits == 1:
            # First request of a new minute: drop this config's older windows.
            cr.execute(
                """
                DELETE FROM bj_api_rate_limit
                 WHERE config_id = %s AND window_start < date_trunc('minute', now() AT TIME ZONE 'UTC')
                """,
                [config_id],
            )
        return 0 if hits else _retry_after(remaining)


def _retry_after(seconds):
    """Whole seconds to wait, at least 1 (``Retry-After`` takes an integer)."""
    return max(1, min(60, int(float(seconds or 0)) + 1))
