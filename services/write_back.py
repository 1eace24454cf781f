"""Write-back: an Out configuration's lines of Direction "in" read the remote's answer to a push.

After a successful POST/PUT/PATCH, each record's object in the answer (at Response Root
when it is set: the object itself for one record, the item at the same index of an
aligned array for a batch, as for the bindings) is mapped through the lines of Direction "in" only (lines of
Direction "both" are what was sent: their keys are left out) and written on the record,
unchanged values skipped, each record in its own savepoint (a failure is an error log
row; the delivery stays a success). Immediate delivery writes in the caller's
transaction, the outbox worker in the batch's transaction after delivery.

The write carries the context key ``bj_api_sync_write_back`` (configuration ids): an
outbound call of one of those configurations made from that write (its own automation
rule, generated or hand-written) sends nothing (``push.make_outbound_request``), so a
write-back never sends the record back to where its values came from.
"""

import logging

from ..lib import paging
from ..lib.errors import SyncError
from . import mapping

_logger = logging.getLogger(__name__)

CONTEXT_KEY = "bj_api_sync_write_back"


def for_config(config):
    """The write-back of ``config``, or None when it has no line of Direction "in"."""
    if not config.has_write_back:  # stored on the configuration's row: no line read for most pushes
        return None
    lines = config.line_ids
    in_keys = {line.api_key for line in lines if line.direction == "in"}
    if not in_keys:
        return None
    sent_keys = {line.api_key for line in lines if line.direction == "both"} - in_keys
    return WriteBack(config, in_keys, sent_keys)


def suppressed(config):
    """Whether this call comes from a write-back of ``config`` (its trigger must not send it back)."""
    return config.id in (config.env.context.get(CONTEXT_KEY) or ())


def _objects(response, count):
    if isinstance(response, list) and len(response) == count:
        return response
    if isinstance(response, dict) and count == 1:
        return [response]
    return [None] * count


class WriteBack:
    def __init__(self, config, in_keys, sent_keys):
        self.config = config
        self.in_keys = in_keys
        self.sent_keys = sent_keys

    def __call__(self, sender, request, response):
        """Write the answer's values on the request's records; returns the ids written."""
        config = self.config
        env = config.env
        root = (config.response_root or "").strip()
        if root and isinstance(response, dict):  # {"customer": {...}} (Shopify), {"data": {...}} (Pipedrive)
            nested = paging.get_path(response, root)
            if isinstance(nested, (dict, list)):
                response = nested
        objects = _objects(response, len(request.res_ids))
        written_by = tuple(env.context.get(CONTEXT_KEY) or ()) + (config.id,)
        Model = env[config.model_name].with_context(**{CONTEXT_KEY: written_by})
        written = []
        for rid, obj in zip(request.res_ids, objects):
            if not isinstance(obj, dict) or not self.in_keys & obj.keys():
                continue
            record = Model.browse(rid).exists()
            if not record:
                continue  # deleted meanwhile (a queued job delivered later)
            data = {key: value for key, value in obj.items() if key not in self.sent_keys}
            try:
                with env.cr.savepoint():
                    vals = mapping.deserialize(config, data, record=record, partial=True)
                    vals = mapping.without_unchanged(record, vals)
                    if vals:
                        record.write(vals)
                        written.append(rid)
            except Exception as exc:  # noqa: BLE001 - the delivery succeeded; the record keeps its values
                message = exc.message if isinstance(exc, SyncError) else "%s: %s" % (type(exc).__name__, exc)
                message = env._("Write-back from the answer failed: %s", message)
                _logger.info("bj_api_sync: %s: record %s: %s", config.name, rid, message)
                from .sender import event_vals  # noqa: PLC0415 - sender imports this module

                sender.logs.extend([event_vals(config, "error", message, [rid], 0, request.method, request.url)])
        return written
