import logging
import os

from odoo import api, models, tools
from odoo.exceptions import UserError

from ..lib import crypto

_logger = logging.getLogger(__name__)

MASK = "********"
KEY_PARAM = "bj_api_sync.encryption_key"


class BjApiSyncSecretMixin(models.AbstractModel):
    """Secret fields stored Fernet-encrypted.

    A model lists ``_bj_secret_fields = {visible_field: encrypted_column}``.
    The visible field is computed: it shows a mask when a secret is set, its
    inverse encrypts what the user typed. Code reads plaintext only through
    :meth:`_get_secret`, so a plain ``read()`` never exposes it.
    """

    _name = "bj.api.sync.secret.mixin"
    _description = "Encrypted secret fields"

    _bj_secret_fields = {}

    @api.model
    def _bj_secret_box(self):
        keys = tools.config.get("bj_api_sync_encryption_key") or os.environ.get(
            "BJ_API_SYNC_ENCRYPTION_KEY"
        )
        if not keys:
            icp = self.env["ir.config_parameter"].sudo()
            keys = icp.get_param(KEY_PARAM)
            if not keys:
                _logger.warning(
                    "No bj_api_sync_encryption_key in the Odoo configuration nor "
                    "BJ_API_SYNC_ENCRYPTION_KEY in the environment: generating one into "
                    "the system parameter %s. Move it to the configuration file so a "
                    "database dump does not carry the key with the secrets.",
                    KEY_PARAM,
                )
                keys = crypto.generate_key()
                icp.set_param(KEY_PARAM, keys)
        try:
            return crypto.box_for(keys)
        except crypto.CryptoError as exc:
            raise UserError(str(exc)) from None

    @api.model_create_multi
    def create(self, vals_list):
        records = super().create(vals_list)
        records._bj_forget_clear_values()
        return records

    def write(self, vals):
        result = super().write(vals)
        self._bj_forget_clear_values()
        return result

    def _bj_forget_clear_values(self):
        """The ORM caches what was typed into an inverse field: drop it so only the mask is read."""
        self.invalidate_recordset(list(self._bj_secret_fields) + self._bj_masked_extra_fields())

    def _bj_masked_extra_fields(self):
        return []

    def _compute_secret_masks(self):
        for record in self:
            for field_name, column in self._bj_secret_fields.items():
                record[field_name] = MASK if record.sudo()[column] else False

    def _bj_store_secret(self, field_name, plaintext):
        """Encrypt ``plaintext`` into the column behind ``field_name``."""
        column = self._bj_secret_fields[field_name]
        if plaintext == MASK:
            return  # the form sent the mask back unchanged
        value = self._bj_normalize_secret(field_name, plaintext)
        box = self._bj_secret_box()
        for record in self:
            record.sudo()[column] = box.encrypt(value) if value else False

    def _bj_normalize_secret(self, field_name, value):
        return value.strip() if isinstance(value, str) else value

    def _get_secret(self, field_name):
        """The one accessor that returns a secret in clear text (for sending and checking)."""
        self.ensure_one()
        column = self._bj_secret_fields[field_name]
        token = self.sudo()[column]
        if not token:
            return ""
        try:
            return self._bj_secret_box().decrypt(token)
        except crypto.CryptoError as exc:
            raise UserError(str(exc)) from None

    def _bj_secret_columns(self):
        return list(self._bj_secret_fields.values())
