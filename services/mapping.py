"""Records ⇄ payloads through a config's lines: the one engine both directions use.

Interface (stable; inbound, outbound and pull call only these):

- ``serialize(config, records) -> list[dict]``: one JSON-ready dict per record, lines of
  direction both/out in sequence; relational lines nest the Mapping Model config.
- ``deserialize(config, payload, record=None, *, partial=False) -> dict``: ORM values
  (x2many as commands) from one JSON object; lines of direction both/in. ``record`` is the
  existing record on update (empty/None on create); ``partial`` (PUT/PATCH) maps only the
  keys present; ``required`` lines must be present on create and are never null or
  empty (``""``, blanks, ``[]``) on create or update.
- ``find_records(config, value, domain=None) -> recordset``: records whose identifier field
  equals ``value`` (converted to the field's type) within the Filter Domain.
- ``upsert(config, payload) -> (record, created)``: find by the identifier key of the payload,
  write or create.
- ``identifier_value(config, payload)`` / ``identifier_key(config)``.
- ``without_unchanged(record, vals)``: ``vals`` minus what ``record`` already holds (no-op
  writes are skipped).
- ``plan_scope()``: a context manager around one request or one outbound call, within
  which each configuration is checked against the database once (see "Plan cache" in
  ``mapping_plan``); ``version_probe(env, config_id)``: that check made by a query the
  caller runs anyway (the inbound request's Run As user query).

Every failure raises ``lib.errors.SyncError`` with ``status`` (400 user/type error, 404,
409, 500 unexpected) and ``line_id`` when a line caused it.

``serialize``, ``deserialize`` and ``upsert`` also take ``messages=`` (a list): the
``log(message)`` calls of the line scripts are appended to it, for the API log.

The engine is cut by concept, and this module only gathers its interface (callers keep
writing ``mapping.<name>``):

- ``mapping_plan``: the per-call plan (a configuration's lines read once, cached per
  registry, checked for cycles and depth) and ``plan_scope()``;
- ``mapping_serialize``: Odoo -> JSON;
- ``mapping_deserialize``: JSON -> Odoo values, identifier lookups, ``upsert``,
  ``without_unchanged``.

The parts import ``mapping_plan`` and nothing of each other; nothing imports this module
from inside the engine.
"""

from .mapping_deserialize import (
    deserialize,
    find_records,
    identifier_key,
    identifier_value,
    upsert,
    without_unchanged,
)
from .mapping_plan import MAX_DEPTH, plan_scope, version_probe
from .mapping_serialize import runs_scripts, search, serialize

__all__ = [
    "MAX_DEPTH",
    "deserialize",
    "find_records",
    "identifier_key",
    "identifier_value",
    "plan_scope",
    "search",
    "runs_scripts",
    "serialize",
    "upsert",
    "version_probe",
    "without_unchanged",
]
