import base64
import logging

from odoo import models

from ..services import config_transfer

_logger = logging.getLogger(__name__)


class BjApiSyncConfig(models.Model):
    _inherit = "bj.api.sync.config"

    def action_export_config(self):
        """Download these configs and every mapping model they use as one JSON file (no secrets).

        The file is kept as an attachment of the (first) config, overwritten by the next export, so
        that the last export stays downloadable from the record.
        """
        if not self:
            return False
        root = self[0]
        content = config_transfer.dumps(config_transfer.export_configs(self))
        filename = "%s.bj_api_sync.json" % config_transfer.export_key(root)
        Attachment = self.env["ir.attachment"]
        attachment = Attachment.search(
            [("res_model", "=", self._name), ("res_id", "=", root.id), ("name", "=", filename)], limit=1
        )
        vals = {"datas": base64.b64encode(content.encode()), "mimetype": "application/json"}
        if attachment:
            attachment.write(vals)
        else:
            attachment = Attachment.create(
                dict(
                    vals,
                    name=filename,
                    res_model=self._name,
                    res_id=root.id,
                    description=self.env._("Configuration export"),
                )
            )
        _logger.info("Exported API configuration %s (%s) to attachment %s", root.name, root.id, attachment.id)
        return {
            "type": "ir.actions.act_url",
            "url": "/web/content/%s?download=true" % attachment.id,
            "target": "self",
        }
