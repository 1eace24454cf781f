"""Records ⇄ payloads through a config's lines: the one engine both directions use.

Interface (stable; inbound, outbound and pull call only these):

- ``serialize(config, records) -> list[dict]``: one JSON-ready dict per record, lines of
  direction both/out in sequence; relational lines nest the Mapping Model config.
- ``deserialize(config, payload, record=None, *, partial=False) -> dict``: ORM values
  (x2many as commands) from one JSON object; lines of direction both/in. ``record`` is the
  existing record on update (empty/None on create); ``partial`` (PUT/PATCH) maps only the
  keys present; ``required`` lines are enforced on create only.
- ``find_records(config, value, domain=None) -> recordset``: records whose identifier field
  equals ``value`` (converted to the field's type) within the Filter Domain.
- ``upsert(config, payload) -> (record, created)``: find by the identifier key of the payload,
  write or create.
- ``identifier_value(config, payload)`` / ``identifier_key(config)``.

Every failure raises ``lib.errors.SyncError`` with ``status`` (400 user/type error, 404,
409, 500 unexpected) and ``line_id`` when a line caused it.
"""
