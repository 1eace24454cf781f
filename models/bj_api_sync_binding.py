import hashlib
import json

from odoo import api, fields, models
from odoo.tools import SQL

UPSERT_CHUNK = 1000


class BjApiSyncBinding(models.Model):
    _name = "bj.api.sync.binding"
    _description = "Sync Binding"
    _order = "synced_at desc, id desc"

    config_id = fields.Many2one(
        "bj.api.sync.config", string="Configuration", required=True, ondelete="cascade", index=True
    )
    company_id = fields.Many2one(related="config_id.company_id", store=True)
    res_model = fields.Char(string="Model", required=True)
    res_id = fields.Many2oneReference(string="Record ID", model_field="res_model", required=True)
    external_id = fields.Char(string="External ID", index=True, help="Remote id found in the response.")
    payload_hash = fields.Char(help="SHA-256 of the last payload sent; unchanged payloads are skipped.")
    synced_at = fields.Datetime()

    _sql_constraints = [
        ("record_unique", "unique(config_id, res_model, res_id)", "One binding per record and configuration."),
    ]

    @api.model
    def _payload_hash(self, payload):
        """SHA-256 of a payload in a canonical form (key order does not matter)."""
        text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @api.model
    def _known_hashes(self, config, res_ids):
        """``{res_id: payload_hash}`` of the bindings of these records."""
        if not res_ids:
            return {}
        bindings = self.sudo().search_fetch(
            [("config_id", "=", config.id), ("res_model", "=", config.model_name), ("res_id", "in", list(res_ids))],
            ["res_id", "payload_hash"],
        )
        return {b.res_id: b.payload_hash for b in bindings}

    @api.model
    def _upsert(self, config, bindings):
        """Upsert bindings ``{res_id: (external_id, payload_hash)}`` in one statement.

        ``INSERT ... ON CONFLICT`` rather than search-then-create: an automation rule and
        the scheduled sync may bind the same record in concurrent transactions, and a
        unique-constraint error would then fail the user's save. An ``external_id`` of
        None keeps the one already known.
        """
        if not bindings:
            return
        self.flush_model()
        now = fields.Datetime.now()
        uid = self.env.uid
        company_id = config.company_id.id or None
        items = sorted(bindings.items())
        for start in range(0, len(items), UPSERT_CHUNK):
            rows = SQL(", ").join(
                SQL(
                    "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    config.id,
                    company_id,
                    config.model_name,
                    res_id,
                    external_id,
                    digest,
                    now,
                    uid,
                    now,
                    uid,
                    now,
                )
                for res_id, (external_id, digest) in items[start : start + UPSERT_CHUNK]
            )
            self.env.cr.execute(
                SQL(
                    """
                    INSERT INTO bj_api_sync_binding
                           (config_id, company_id, res_model, res_id, external_id, payload_hash, synced_at,
                            create_uid, create_date, write_uid, write_date)
                    VALUES %s
                    ON CONFLICT (config_id, res_model, res_id) DO UPDATE
                       SET external_id = COALESCE(EXCLUDED.external_id, bj_api_sync_binding.external_id),
                           payload_hash = EXCLUDED.payload_hash,
                           synced_at = EXCLUDED.synced_at,
                           write_uid = EXCLUDED.write_uid,
                           write_date = EXCLUDED.write_date
                    """,
                    rows,
                )
            )
        self.invalidate_model(["external_id", "payload_hash", "synced_at", "write_uid", "write_date"])
