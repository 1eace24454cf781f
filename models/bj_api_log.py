import json
import logging
from collections import defaultdict
from datetime import timedelta

import psycopg2

from odoo import api, fields, models, tools
from odoo.tools import SQL
from odoo.tools.sql import drop_index

from ..services import transaction

_logger = logging.getLogger(__name__)

MAX_BODY = 64 * 1024
TRUNCATION_MARKER = "\n… [truncated by bj_api_sync: %d bytes in total]"


def truncate_body(body, limit=MAX_BODY):
    """Bodies over 64 KiB are cut with a marker so logs stay cheap to write and read."""
    if body is None or body is False:
        return False
    if not isinstance(body, str):
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        else:
            body = json.dumps(body, ensure_ascii=False, default=str)
    if len(body) > limit:
        return body[:limit] + TRUNCATION_MARKER % len(body.encode("utf-8", errors="replace"))
    return body


class BjApiLog(models.Model):
    _name = "bj.api.log"
    _description = "API Log"
    _order = "create_date desc, id desc"
    _rec_name = "name"

    name = fields.Char(compute="_compute_name", store=True, readonly=False)
    # Every request writes a row: each index is paid on every request. config_id is served by
    # the (config_id, create_date) and (config_id, status, create_date) indexes (init); company
    # and direction have a handful of values (an index would not be used).
    config_id = fields.Many2one("bj.api.sync.config", string="Configuration", ondelete="cascade")
    company_id = fields.Many2one("res.company", compute="_compute_company_id", store=True)
    direction = fields.Selection([("in", "In"), ("out", "Out")])
    method = fields.Char()
    url = fields.Char(string="URL")
    request_headers = fields.Text(help="Request headers; secrets are redacted.")
    request_data = fields.Text(string="Request Body")
    response_code = fields.Integer(string="Status Code")
    response_data = fields.Text(string="Response Body")
    status = fields.Selection(
        [("success", "Success"), ("error", "Error"), ("skipped", "Skipped"), ("retrying", "Retrying")],
        default="success",
        index=True,
    )
    error_message = fields.Text(help="Error, with the traceback for unexpected errors.")
    script_messages = fields.Text(help="Messages written by line scripts with log(message).")
    res_model = fields.Char(string="Model")
    res_ids = fields.Char(string="Record IDs", help="Comma-separated ids of the records concerned.")
    duration_ms = fields.Integer(string="Duration (ms)")
    attempt = fields.Integer(default=1)
    job_id = fields.Many2one(  # inbound rows have none: not in the index
        "bj.api.sync.job", string="Sync Job", ondelete="set null", index="btree_not_null"
    )
    request_data_pretty = fields.Text(string="Request Body (formatted)", compute="_compute_pretty")
    response_data_pretty = fields.Text(string="Response Body (formatted)", compute="_compute_pretty")

    def init(self):
        # The inbound rate limit and the config health count a config's logs of the last minutes.
        tools.create_index(
            self.env.cr, "bj_api_log_config_id_create_date_idx", self._table, ["config_id", "create_date"]
        )
        # Odoo keeps the index of a field no longer indexed: the ones earlier versions made go here
        # (job_id's full index is made again by Odoo as a partial one).
        drop_full_indexes(self.env.cr, self._table, ["company_id", "config_id", "direction", "response_code", "job_id"])

    @api.depends("direction", "method", "url", "config_id")
    def _compute_name(self):
        for log in self:
            if not log.name:
                log.name = self._name_for(log.method, log.url, log.config_id.name)

    @api.model
    def _name_for(self, method, url, config_name=None):
        """The name rule of a log row: ``METHOD URL``, else the configuration's name."""
        return " ".join(filter(None, [method, url])) or config_name or self.env._("Log")

    @api.depends("config_id.company_id")
    def _compute_company_id(self):
        for log in self:
            log.company_id = log.config_id.company_id

    @api.depends("request_data", "response_data")
    def _compute_pretty(self):
        for log in self:
            log.request_data_pretty = _pretty(log.request_data)
            log.response_data_pretty = _pretty(log.response_data)

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            self._normalize_vals(vals)
        return super().create(vals_list)

    @api.model
    def _normalize_vals(self, vals):
        """Bodies truncated, NUL characters spelled out; BJET's keys mapped, unknown keys dropped (in place)."""
        for key in ("request_data", "response_data"):
            if key in vals:
                vals[key] = truncate_body(vals[key])
        # BJET examples pass extra keys (model, record_id, details...): keep what maps, ignore the rest.
        if "model" in vals and "res_model" not in vals:
            vals["res_model"] = vals["model"]
        if "record_id" in vals and "res_ids" not in vals:
            vals["res_ids"] = str(vals["record_id"])
        if "duration" in vals and "duration_ms" not in vals:
            vals["duration_ms"] = int(float(vals["duration"] or 0) * 1000)
        for key in [k for k in vals if k not in self._fields or k == "id"]:
            vals.pop(key)
        for key, value in vals.items():
            if isinstance(value, str) and "\x00" in value:
                # PostgreSQL text cannot hold NUL: spelled out, so that a client's NUL or a remote's
                # binary answer neither loses the log row nor fails the caller's transaction.
                vals[key] = value.replace("\x00", "\\u0000")
        return vals

    @api.model
    def _insert_rows(self, vals_list, savepoint=None, cr=None):
        """Insert log rows in one multi-row INSERT; returns them. The hot path of every request.

        ``savepoint``: a ``services.transaction.LazySavepoint`` the INSERT opens (one round trip);
        ``cr``: a cursor of another connection (psycopg2's, ``services.log_connection``)
        that runs the queries instead: the rows are then another transaction's, so this
        environment's cache (one2many inverses) is left alone, as with a detached cursor.
        """
        if not vals_list:
            return self.browse()
        own_cursor = cr is None or cr is self.env.cr
        cr = self.env.cr if cr is None else cr
        query, vals_list, fields_ = self._insert_query(vals_list, cr)
        if savepoint is not None:
            query = savepoint.prefixed(query)
        cr.execute(query.code, query.params)  # either cursor: Odoo's takes what psycopg2's does
        ids = [row[0] for row in cr.fetchall()]
        # As create() does: one2many values already in this cursor's cache (a job's or a
        # configuration's log_ids) get the new rows.
        for field in fields_ if own_cursor else ():
            if field.type == "many2one" and self.pool.field_inverses[field]:
                groups = defaultdict(list)
                for log_id, vals in zip(ids, vals_list, strict=True):
                    if vals.get(field.name):
                        groups[field.convert_to_cache(vals[field.name], self, validate=False)].append(log_id)
                for value, group in groups.items():
                    field._update_inverses(self.browse(group), value)
        return self.browse(ids)

    @api.model
    def _insert_query(self, vals_list, cr=None):
        """``(INSERT ... RETURNING id, the rows' values as stored, their fields)`` for ``vals_list``.

        Stores what ``create`` would store, without its per-row work: ``name`` and
        ``company_id`` (stored computes, which ``create`` fills with a SELECT of the
        configurations and an UPDATE of the new rows) are computed here first (``cr``
        reads the configurations when the values lack them), defaults applied, values
        converted by the fields themselves. No access check: callers are the inbound and
        outbound services, as superuser.
        """
        stored = {name for name, field in self._fields.items() if field.store and field.column_type}
        vals_list = [
            {key: value for key, value in self._normalize_vals(dict(vals)).items() if key in stored}
            for vals in vals_list
        ]
        missing = {
            vals["config_id"] for vals in vals_list
            if vals.get("config_id") and ("company_id" not in vals or not (vals.get("name") or vals.get("method")
                                                                          or vals.get("url")))
        }
        configs = {}
        cr = self.env.cr if cr is None else cr
        if missing:
            cr.execute("SELECT id, company_id, name FROM bj_api_sync_config WHERE id IN %s", [tuple(missing)])
            configs = {row[0]: row[1:] for row in cr.fetchall()}
        defaults = {
            name: field.default(self)
            for name, field in self._fields.items()
            if field.store and field.default and name not in models.MAGIC_COLUMNS
        }
        for vals in vals_list:
            for name, value in defaults.items():
                vals.setdefault(name, value)
            company_id, config_name = configs.get(vals.get("config_id"), (None, None))
            if "company_id" not in vals:
                vals["company_id"] = company_id or False
            if not vals.get("name"):
                vals["name"] = self._name_for(vals.get("method"), vals.get("url"), config_name)
        magic = {"create_uid": self.env.uid, "write_uid": self.env.uid}
        dates = ("create_date", "write_date")  # the transaction's time, always
        columns = sorted({name for vals in vals_list for name in vals if name not in dates} | set(magic))
        fields_ = [self._fields[name] for name in columns]
        # One row template and flat parameters (an SQL object per value costs more than the
        # INSERT itself for a worker's batch of rows).
        template = "(%s)" % ", ".join(["%s"] * len(columns) + ["(now() AT TIME ZONE 'UTC')"] * len(dates))
        columns += dates
        params = [
            field.convert_to_column_insert(vals[field.name], self, vals) if field.name in vals
            else magic.get(field.name)
            for vals in vals_list
            for field in fields_
        ]
        query = SQL(
            "INSERT INTO %s (%s) VALUES %s RETURNING id",
            SQL.identifier(self._table),
            SQL(", ").join(SQL.identifier(name) for name in columns),
            SQL(", ".join([template] * len(vals_list)), *params),
        )
        return query, vals_list, fields_

    @api.model
    def _write_detached(self, vals_list):
        """Write logs that must outlive the caller's transaction; returns them in the caller's env.

        Outside tests they go in one round trip on the process's log connection
        (``services.log_connection``: autocommit, asynchronous commit: a crash may lose
        the last log rows, never data), else, when it fails, through a new cursor
        committed at once; under the test runner (one shared transaction) the current
        cursor is used (``services.transaction.run_detached``).
        """
        if not vals_list:
            return self.browse()
        # On another connection, rows of another transaction: _insert_rows leaves this
        # environment's cache alone (under tests, the current cursor: it updates it).
        ids = transaction.run_detached(
            self.env, lambda cr: self.sudo()._insert_rows(vals_list, cr=cr).ids, synchronous=False
        )
        return self.browse(ids)

    @api.model
    def _purge_old_logs(self):
        """Daily retention cron: keep bj_api_sync.log_retention_days days of logs (default 30).

        Sync jobs done or cancelled before then go too (their logs first): an automation
        rule queues a job per save, and the queue table must not grow forever. Expired
        idempotency keys go every day, whatever the retention.
        """
        self.env["bj.api.idempotency"]._purge_expired()
        days = int(self.env["ir.config_parameter"].sudo().get_param("bj_api_sync.log_retention_days", 30))
        if days <= 0:
            return 0
        limit_date = fields.Datetime.now() - timedelta(days=days)
        old = self.sudo().search([("create_date", "<", limit_date)])
        count = len(old)
        old.unlink()
        _logger.info("bj_api_sync: deleted %d logs older than %d days", count, days)
        self.env["bj.api.sync.job"]._purge_finished(limit_date)
        return count


def drop_full_indexes(cr, table, columns):
    """Drop the full (not partial) Odoo-made indexes of ``columns`` on ``table``, if any."""
    cr.execute(
        "SELECT indexname FROM pg_indexes WHERE tablename = %s AND indexname = ANY(%s) AND indexdef NOT LIKE %s",
        [table, [tools.make_index_name(table, column) for column in columns], "% WHERE %"],
    )
    for (name,) in cr.fetchall():
        drop_index(cr, name, table)


def use_lz4(cr, table, columns):
    """Bodies over 2 kB are compressed by PostgreSQL on every insert: lz4 (PostgreSQL 14+, when
    built with it) does it in a fifth of the time of the default pglz, for the same size."""
    cr.execute(
        "SELECT attname FROM pg_attribute"
        " WHERE attrelid = %s::regclass AND attname = ANY(%s) AND attcompression <> 'l'",
        [table, columns],
    )
    for (column,) in cr.fetchall():
        try:
            with cr.savepoint(flush=False):
                cr.execute(SQL("ALTER TABLE %s ALTER COLUMN %s SET COMPRESSION lz4",
                               SQL.identifier(table), SQL.identifier(column)))
        except psycopg2.Error:
            _logger.info("bj_api_sync: PostgreSQL without lz4: %s.%s keeps the default compression", table, column)
            return


def _pretty(text):
    if not text:
        return text
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except (ValueError, TypeError):
        return text
