"""API Clients of an In configuration: several keys per endpoint, each with its own rights.

A key is shown once, when generated, and stored as its SHA-256 (with an 8-character
index to find it), like Odoo's own API keys. A key is 32 random bytes: a fast hash is
enough (nothing to brute-force), and checking it costs one indexed query per request.
"""

import hashlib
import hmac
import secrets

from odoo import api, fields, models
from odoo.exceptions import UserError

from ..services import transaction

KEY_PREFIX = "bjk_"
INDEX_SIZE = 8


def hash_key(key):
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def key_index(key):
    """The lookup part of a key: the first characters after the prefix."""
    return key.removeprefix(KEY_PREFIX)[:INDEX_SIZE]


# One statement on a short transaction of its own: count the request in the client's
# current minute unless its budget is spent (no row then), and note when it was last used.
_USE = """
    WITH w AS (SELECT date_trunc('minute', now() AT TIME ZONE 'UTC') AS start, now() AT TIME ZONE 'UTC' AS at)
    UPDATE bj_api_sync_client c
       SET rate_window = w.start,
           rate_hits = CASE WHEN c.rate_window = w.start THEN c.rate_hits + 1 ELSE 1 END,
           last_used = w.at
      FROM w
     WHERE c.id = %(id)s
       AND (%(limit)s = 0 OR c.rate_window IS DISTINCT FROM w.start OR c.rate_hits < %(limit)s)
 RETURNING c.rate_hits
"""


class BjApiSyncClient(models.Model):
    _name = "bj.api.sync.client"
    _description = "API Client"
    _order = "config_id, name, id"

    name = fields.Char(required=True, help="Who calls with this key (a shop, a partner system...).")
    config_id = fields.Many2one(
        "bj.api.sync.config", string="Configuration", required=True, ondelete="cascade", index=True,
        domain=[("request_type", "=", "in")],
    )
    company_id = fields.Many2one(related="config_id.company_id", store=True)
    active = fields.Boolean(default=True)
    key_index = fields.Char(readonly=True, copy=False, index=True)
    key_hash = fields.Char(readonly=True, copy=False, groups="base.group_system")
    key_hint = fields.Char(string="Key", compute="_compute_key_hint", help="The start of the key, to recognise it.")
    http_method_ids = fields.Many2many(
        "bj.http.method", string="Allowed Methods",
        help="Methods this client may call; empty: every method of the configuration.",
    )
    expiration_date = fields.Datetime(string="Expires On", help="After this date the key is refused.")
    last_used = fields.Datetime(readonly=True, copy=False)
    rate_limit = fields.Integer(
        string="Rate Limit (per minute)", help="Requests per minute for this client (0 = no own limit)."
    )
    rate_window = fields.Datetime(readonly=True, copy=False)
    rate_hits = fields.Integer(readonly=True, copy=False)
    log_ids = fields.One2many("bj.api.log", "client_id", string="Logs")

    _sql_constraints = [
        ("rate_limit_positive", "CHECK(rate_limit >= 0)", "The rate limit cannot be negative."),
    ]

    @api.depends("key_index")
    def _compute_key_hint(self):
        for client in self:
            client.key_hint = "%s%s…" % (KEY_PREFIX, client.key_index) if client.key_index else False

    def _generate_key(self):
        """A new key for this client (the previous one stops working); returned once, never stored."""
        self.ensure_one()
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        self.sudo().write({"key_index": key_index(key), "key_hash": hash_key(key)})
        return key

    def action_generate_key(self):
        self.ensure_one()
        if not self.id:
            raise UserError(self.env._("Save the client first."))
        # As Odoo's API keys: the key travels in the dialog's defaults only, never saved in a table.
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("API Key"),
            "res_model": "bj.api.sync.client.key",
            "view_mode": "form",
            "target": "new",
            "context": {"default_key": self._generate_key(), "default_client_id": self.id},
        }

    def action_view_logs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bj_api_sync.bj_api_log_action")
        action["domain"] = [("client_id", "=", self.id)]
        action["context"] = {}
        return action

    @api.model
    def _find(self, config, key):
        """The active, unexpired client of ``config`` holding ``key``, else an empty recordset."""
        if not key or not key.startswith(KEY_PREFIX):
            return self.browse()
        self.env.cr.execute(
            """
            SELECT id, key_hash FROM bj_api_sync_client
             WHERE config_id = %s AND key_index = %s AND active
               AND (expiration_date IS NULL OR expiration_date >= now() AT TIME ZONE 'UTC')
            """,
            [config.id, key_index(key)],
        )
        digest = hash_key(key)
        found = self.browse()
        for client_id, stored in self.env.cr.fetchall():
            if stored and hmac.compare_digest(stored, digest):
                found = self.browse(client_id)
        return found

    def _use(self):
        """Count one request of this client; True when within its rate limit."""
        self.ensure_one()
        params = {"id": self.id, "limit": self.rate_limit or 0}

        def use(cr):
            cr.execute(_USE, params)
            return bool(cr.fetchone())

        # committed at once, one round trip on the log connection (services.transaction)
        return transaction.run_detached(self.env, use, isolation="READ COMMITTED")
