import base64
import binascii
import logging

from odoo import fields, models
from odoo.exceptions import UserError

from ..services import config_transfer

_logger = logging.getLogger(__name__)


class BjApiSyncImportWizard(models.TransientModel):
    _name = "bj.api.sync.import.wizard"
    _description = "Import API Configurations"

    file = fields.Binary(
        string="Configuration File",
        attachment=False,
        help="A file written by the Export button of an API configuration.",
    )
    filename = fields.Char()
    json_text = fields.Text(string="Or Paste JSON", help="The content of an export file, pasted.")
    update_existing = fields.Boolean(
        string="Update Existing Configurations",
        help="Checked: an inbound configuration with the same endpoint, or an outbound one with the same "
        "name, is updated in place (its secrets are kept). Unchecked: new configurations are always "
        "created, and an endpoint already used here gets a -2, -3… suffix.",
    )

    def _read_text(self):
        self.ensure_one()
        if self.file:
            try:
                return base64.b64decode(self.file).decode("utf-8-sig")
            except (binascii.Error, UnicodeDecodeError):
                raise UserError(self.env._("The file is not a UTF-8 text file.")) from None
        if self.json_text and self.json_text.strip():
            return self.json_text
        raise UserError(self.env._("Choose a configuration file, or paste its content."))

    def action_import(self):
        """Recreate the file's configurations here and open the first (root) one."""
        self.ensure_one()
        document = config_transfer.loads(self.env, self._read_text())
        result = config_transfer.import_configs(self.env, document, update_existing=self.update_existing)
        _logger.info("Configuration file %s imported by user %s", self.filename or "(pasted)", self.env.uid)
        return {
            "type": "ir.actions.act_window",
            "name": self.env._("API Configuration"),
            "res_model": "bj.api.sync.config",
            "res_id": result.root.id,
            "view_mode": "form",
            "views": [(False, "form")],
            "target": "current",
        }
