"""Operations columns and indexes of the API log: the API client of a request, and the indexes
the dashboard, the metrics and the Sync Status dialog read through."""

from odoo import fields, models, tools

from .bj_api_log import use_lz4

HOUR_FORMAT = "%Y-%m-%d %H:00"


class BjApiLog(models.Model):
    _inherit = "bj.api.log"

    def _default_create_hour(self):
        return fields.Datetime.now().strftime(HOUR_FORMAT)

    duration_ms = fields.Integer(aggregator="avg")  # the pivot's "duration by configuration" is an average
    # The web client groups dates by day at the finest: the hour of a request, as text that sorts
    # chronologically, is what the "requests per hour" graph groups by.
    create_hour = fields.Char(string="Hour (UTC)", default=lambda self: self._default_create_hour(), readonly=True)
    client_id = fields.Many2one("bj.api.sync.client", string="API Client", ondelete="set null", index="btree_not_null")

    def _init_column(self, column_name):
        if column_name == "create_hour":  # existing rows: their own hour, not the upgrade's
            self.env.cr.execute(
                "UPDATE bj_api_log SET create_hour = to_char(create_date, 'YYYY-MM-DD HH24:00') "
                "WHERE create_hour IS NULL"
            )
            return
        super()._init_column(column_name)

    def init(self):
        result = super().init()
        # Newest success / error of a configuration, and its counts by status over a time range.
        # Covering (INCLUDE duration_ms): the 24 h counts and percentiles are an index-only scan.
        self.env.cr.execute(
            "CREATE INDEX IF NOT EXISTS bj_api_log_config_status_date_idx ON bj_api_log "
            "(config_id, status, create_date) INCLUDE (duration_ms)"
        )
        # The graph and pivot views' "last 24 hours" over every configuration.
        tools.create_index(self.env.cr, "bj_api_log_create_date_idx", self._table, ["create_date"])
        use_lz4(self.env.cr, self._table, ["request_data", "response_data"])
        return result
