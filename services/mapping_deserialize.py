"""JSON -> Odoo: ORM values from a payload, identifier lookups and upsert (lines of direction both/in).

Part of the mapping engine; ``services/mapping.py`` is the interface (``deserialize``,
``upsert``, ``find_records``, ``identifier_key``, ``identifier_value``,
``without_unchanged``).

Decisions:

* A key absent from the payload leaves the field alone (defaults apply on create);
  ``null`` empties it. Script lines always run, except on a partial update (PUT/PATCH) when
  their key is absent (a script filling ``name`` from another key must not blank it on a
  PATCH of the phone). The identifier field ``id``, log-access fields and fields that
  cannot be written (computed without inverse) are never written.
* Relational values: a scalar is looked up by the child config's identifier (400 when
  unknown); an object is looked up by its identifier key and updated with the keys it has,
  or created through the child lines when absent (an unknown ``id`` is a 400: ids cannot be
  chosen). one2many items update the record's children matched by identifier and create
  the others; children not mentioned are left alone.
* ``upsert``: an identifier value matching nothing creates the record, except an unknown
  ``id`` (404): a client cannot choose Odoo's ids.
"""

import datetime
from decimal import Decimal

from odoo import Command, models
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression

from ..lib import values
from ..lib.errors import SyncError
from . import scripts
from .mapping_plan import NESTED, SCRIPT, STRING_TYPES, X2MANY, get_plan


def deserialize(config, payload, record=None, *, partial=False, messages=None):
    """ORM values for ``create`` (no ``record``) or ``write`` (``record``) from one JSON object."""
    env = record.env if record else config.env
    plan = get_plan(config, "in", env)
    return _deserialize(plan, payload, record, partial, messages)


def _deserialize(plan, payload, record, partial, messages, line_id=None):
    env = plan.env
    if not isinstance(payload, dict):
        raise SyncError(
            env._("Expected a JSON object, got %s.", _json_kind(payload)), status=400, line_id=line_id
        )
    creating = not record
    if creating:
        record = plan.model()
    config = plan.config.with_env(env)
    vals = {}
    for spec in plan.lines:
        present = spec.key in payload
        if spec.required and (present or creating):
            _check_required(spec, payload, present, env)
        if spec.kind == SCRIPT:
            if partial and not present:
                continue
            has_value, value = scripts.run_script(
                spec.line,
                env=env,
                record=record,
                records=record,
                request_data=payload,
                messages=messages,
                config=config,
            )
            if has_value and spec.writable:
                vals[spec.fname] = _from_script(spec, value, env)
            continue
        if not present or not spec.writable:
            continue
        value = payload[spec.key]
        if spec.kind == NESTED:
            vals[spec.fname] = _nested_in(spec, value, record, messages)
        else:
            vals[spec.fname] = _plain_in(spec, value, env)
    return vals


def _check_required(spec, payload, present, env):
    """A required line's key: present on create, never null or empty (create and update alike).

    Empty is ``null``, a string of blanks or an empty array: a client may not empty a
    required field by an update any more than leave it out on create.
    """
    if not present:
        raise SyncError(env._("Missing required key '%s'", spec.key), status=400, line_id=spec.id)
    value = payload[spec.key]
    if value is None:
        raise SyncError(env._("Required key '%s' cannot be null.", spec.key), status=400, line_id=spec.id)
    if (isinstance(value, str) and not value.strip()) or (isinstance(value, list) and not value):
        raise SyncError(env._("Required key '%s' cannot be empty.", spec.key), status=400, line_id=spec.id)


def _json_kind(value):
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    return type(value).__name__


def _plain_in(spec, value, env):
    try:
        converted = values.from_json(
            spec.ttype,
            value,
            selection=spec.selection,
            line_id=spec.id,
            label=spec.key,
            size=spec.size,
            digits=spec.digits,
        )
    except SyncError as exc:
        exc.translate(env._)  # lib's message, in the user's language
        raise
    if spec.ttype == "many2one" and converted:
        _check_ids(spec, [converted], env)
    elif spec.ttype in X2MANY and converted:
        _check_ids(spec, converted[0][2], env)
    return converted


def _check_ids(spec, ids, env):
    """Ids sent for a relational field must exist: a 400 beats a foreign-key error."""
    if not ids:
        return
    existing = set(env[spec.comodel].browse(ids).exists()._ids)
    missing = [record_id for record_id in ids if record_id not in existing]
    if missing:
        raise SyncError(
            env._(
                "Field '%(key)s': no %(model)s record with id %(ids)s.",
                key=spec.key,
                model=spec.comodel,
                ids=", ".join(str(record_id) for record_id in missing),
            ),
            status=400,
            line_id=spec.id,
        )


def _from_script(spec, value, env):
    """A script's value as ``write`` expects it for the line's field.

    Relational fields take an id, ids, a recordset or a command list; date and
    datetime fields take Python dates as well as text; everything else goes
    through the same type checks as a JSON value.
    """
    ttype = spec.ttype
    if isinstance(value, models.BaseModel):
        if ttype == "many2one":
            if len(value) > 1:
                raise SyncError(
                    env._("Line '%(key)s': the script returned %(count)s records for a single value.",
                          key=spec.key, count=len(value)),
                    status=400,
                    line_id=spec.id,
                )
            return value.id or False
        if ttype in X2MANY:
            return [Command.set(list(value._ids))]
        raise SyncError(
            env._("Line '%(key)s': the script returned records for a field of type %(type)s.",
                  key=spec.key, type=ttype),
            status=400,
            line_id=spec.id,
        )
    if ttype == "boolean" and value is None:
        return False
    if ttype != "boolean" and (value is None or value is False):
        return [Command.set([])] if ttype in X2MANY else False
    if ttype in X2MANY:
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if isinstance(value, (list, tuple)) and value and all(isinstance(item, (list, tuple)) for item in value):
            return _check_commands(spec, value, env)
        if isinstance(value, tuple):
            value = list(value)
    elif ttype == "date":
        if isinstance(value, datetime.datetime):
            return value.date()
        if isinstance(value, datetime.date):
            return value
    elif ttype == "datetime":
        if isinstance(value, datetime.datetime):
            if value.tzinfo is not None and value.utcoffset() is not None:
                value = value.astimezone(datetime.UTC)
            return value.replace(tzinfo=None, microsecond=0)
        if isinstance(value, datetime.date):
            return datetime.datetime.combine(value, datetime.time.min)
    elif ttype == "binary" and isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("ascii")
        except UnicodeDecodeError:
            raise SyncError(
                env._("Line '%s': the script must return base64 data for a binary field.", spec.key),
                status=400,
                line_id=spec.id,
            ) from None
    elif isinstance(value, Decimal):
        value = float(value)
    return _plain_in(spec, value, env)


def _check_commands(spec, commands, env):
    for command in commands:
        if not (
            len(command) in (2, 3)
            and isinstance(command[0], int)
            and not isinstance(command[0], bool)
            and 0 <= command[0] <= 6
        ):
            raise SyncError(
                env._("Line '%s': the script returned an invalid x2many command list.", spec.key),
                status=400,
                line_id=spec.id,
            )
    return [tuple(command) for command in commands]


def _nested_in(spec, value, record, messages):
    """A relational line's value resolved through its Mapping Model."""
    env = spec.child.env
    if spec.ttype == "many2one":
        if value is None:
            return False
        return _resolve_one(spec, value, messages).id
    if value is None:
        value = []
    if not isinstance(value, list):
        raise SyncError(
            env._("Field '%(key)s': expected an array, got %(kind)s.", key=spec.key, kind=_json_kind(value)),
            status=400,
            line_id=spec.id,
        )
    if spec.ttype == "many2many":
        ids = []
        for item in value:
            record_id = _resolve_one(spec, item, messages).id
            if record_id not in ids:
                ids.append(record_id)
        return [Command.set(ids)]
    return _one2many_commands(spec, value, record, messages)


def _one2many_commands(spec, items, record, messages):
    child = spec.child
    ident = child.identifier
    existing = {}
    children = record[spec.fname] if record else None
    if children and ident:
        for child_record in children:
            existing.setdefault(_record_identifier(ident, child_record), child_record)
    commands = []
    for item in items:
        if not isinstance(item, dict):
            commands.append(Command.link(_resolve_one(spec, item, messages).id))
            continue
        raw = item.get(ident.key) if ident else None
        match = None
        if raw is not None and existing:
            match = existing.get(_identifier_in(ident, raw, child.env, spec.id))
        if match:
            vals = _deserialize(child, item, match, True, messages, spec.id)
            if vals:
                commands.append(Command.update(match.id, vals))
        else:
            commands.append(Command.create(_deserialize(child, item, None, False, messages, spec.id)))
    return commands


def _record_identifier(ident, record):
    value = record[ident.fname]
    if isinstance(value, models.BaseModel):
        return value.id or None
    return value


def _resolve_one(spec, item, messages):
    """The related record an item designates: looked up, updated or created."""
    child = spec.child
    env = child.env
    ident = child.identifier
    if isinstance(item, dict):
        raw = item.get(ident.key) if ident else None
        found = _lookup(spec, raw) if raw is not None else child.model()
        if found:
            vals = without_unchanged(found, _deserialize(child, item, found, True, messages, spec.id))
            if vals:
                _orm(spec, env, found.write, vals)
            return found
        if raw is not None and ident.fname == "id":
            raise _unknown(spec, raw)
        vals = _deserialize(child, item, None, False, messages, spec.id)
        return _orm(spec, env, child.model().create, vals)
    if isinstance(item, list):
        raise SyncError(
            env._("Field '%s': expected an object or an identifier, got an array.", spec.key),
            status=400,
            line_id=spec.id,
        )
    if item is None:
        raise SyncError(
            env._("Field '%s': expected an object or an identifier, got null.", spec.key),
            status=400,
            line_id=spec.id,
        )
    found = _lookup(spec, item)
    if not found:
        raise _unknown(spec, item)
    return found


def _lookup(spec, raw):
    child = spec.child
    env = child.env
    if not child.identifier:
        raise SyncError(
            env._(
                "Line '%(key)s': Mapping Model '%(config)s' has no Record Identifier line.",
                key=spec.key,
                config=child.config.name,
            ),
            status=400,
            line_id=spec.id,
        )
    found = _search(child, _identifier_in(child.identifier, raw, env, spec.id))
    if len(found) > 1:
        raise SyncError(
            env._(
                "Field '%(key)s': %(count)s %(model)s records match %(ident)s %(value)s.",
                key=spec.key,
                count=len(found),
                model=child.model_name,
                ident=child.identifier.key,
                value=_shown(raw),
            ),
            status=409,
            line_id=spec.id,
        )
    return found


def _unknown(spec, raw):
    child = spec.child
    return SyncError(
        child.env._(
            "Field '%(key)s': no %(model)s record with %(ident)s %(value)s.",
            key=spec.key,
            model=child.model_name,
            ident=child.identifier.key if child.identifier else "?",
            value=_shown(raw),
        ),
        status=400,
        line_id=spec.id,
    )


def _shown(raw):
    text = repr(raw) if isinstance(raw, str) else str(raw)
    return text if len(text) <= 60 else text[:60] + "..."


def _orm(spec, env, method, vals):
    """Write or create a related record, errors naming the line."""
    try:
        return method(vals)
    except AccessError as exc:
        raise SyncError(exc.args[0], status=403, line_id=spec.id) from exc
    except UserError as exc:
        raise SyncError(
            env._("Field '%(key)s': %(error)s", key=spec.key, error=exc.args[0]), status=400, line_id=spec.id
        ) from exc


# ---------------------------------------------------------------------------
# Identifiers
# ---------------------------------------------------------------------------

def _identifier_in(ident, raw, env, line_id=None):
    """An identifier value from JSON or a URL, in the identifier field's type."""
    ttype = ident.ttype
    if ttype in STRING_TYPES and isinstance(raw, int) and not isinstance(raw, bool):
        raw = str(raw)
    elif ttype == "many2one" and isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    try:
        if ttype in STRING_TYPES:
            # A lookup is not a write: no size or selection check.
            return values.from_json("char", raw, line_id=line_id or ident.id, label=ident.key)
        value = values.from_json(ttype, raw, line_id=line_id or ident.id, label=ident.key)
    except SyncError as exc:
        exc.translate(env._)
        raise
    if ttype == "many2one" or ident.fname == "id":
        if not isinstance(value, int) or value <= 0:
            raise SyncError(
                env._("Field '%(key)s': expected a record id (positive integer), got %(value)s.",
                      key=ident.key, value=_shown(raw)),
                status=400,
                line_id=line_id or ident.id,
            )
    return value


def _search(plan, value, domain=None):
    field_domain = [(plan.identifier.fname, "=", value)]
    model = plan.model()
    # The lines' columns come with the search (one query): what serializing the record or
    # comparing it with a payload reads next.
    return model.search_fetch(expression.AND([plan.domain(), field_domain, domain or []]), plan.fetch_columns())


def without_unchanged(record, vals):
    """``vals`` without the values ``record`` already has.

    A write that changes nothing is skipped by the callers: no UPDATE, no recomputation,
    no ``write_date`` change, no automation rule "on update" fired (an outbound rule
    would otherwise send back what was just received). Values are compared in the
    ORM's cache format, as the ORM would store them; x2many values are compared only
    when they replace the whole set (``Command.set``), and whatever cannot be compared
    is kept.
    """
    if not vals or len(record) != 1:
        return vals
    changed = {}
    for fname, value in vals.items():
        field = record._fields.get(fname)
        try:
            if field is None:
                same = False
            elif field.type in X2MANY:
                same = (
                    isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], (list, tuple))
                    and len(value[0]) == 3 and value[0][0] == Command.SET
                    and set(value[0][2]) == set(record[fname]._ids)
                )
            else:
                same = field.convert_to_cache(value, record, validate=False) == field.convert_to_cache(
                    record[fname], record, validate=False
                )
        except Exception:  # noqa: BLE001 - when in doubt, write
            same = False
        if not same:
            changed[fname] = value
    return changed


def identifier_key(config):
    """The api_key of the config's Record Identifier line, or None."""
    try:
        plan = get_plan(config, "in", config.env)  # cached: no query for the lines
    except SyncError:
        line = config.sudo()._get_identifier_line()
        return line.api_key if line else None
    return plan.identifier.key if plan.identifier else None


def identifier_value(config, payload):
    """The raw identifier value in ``payload`` (None when absent or not an object)."""
    key = identifier_key(config)
    if key is None or not isinstance(payload, dict):
        return None
    return payload.get(key)


def find_records(config, value, domain=None):
    """Records whose identifier equals ``value``, within the Filter Domain (and ``domain``)."""
    plan = get_plan(config, "in", config.env)
    if not plan.identifier:
        raise SyncError(
            config.env._("Configuration '%s' has no Record Identifier line.", plan.config.name), status=400
        )
    if value is None or value is False or value == "":
        return plan.model()
    return _search(plan, _identifier_in(plan.identifier, value, plan.env), domain)


def upsert(config, payload, *, messages=None):
    """Write the record the payload identifies, or create it; return ``(record, created)``."""
    env = config.env
    plan = get_plan(config, "in", env)
    if not isinstance(payload, dict):
        raise SyncError(env._("Expected a JSON object, got %s.", _json_kind(payload)), status=400)
    ident = plan.identifier
    raw = payload.get(ident.key) if ident else None
    record = plan.model()
    if raw is not None:
        record = _search(plan, _identifier_in(ident, raw, env))
        if len(record) > 1:
            raise SyncError(
                env._(
                    "%(count)s records match %(key)s %(value)s.", count=len(record), key=ident.key, value=_shown(raw)
                ),
                status=409,
            )
        if not record and ident.fname == "id":
            raise SyncError(env._("Record %s not found.", _shown(raw)), status=404)
    if record:
        vals = without_unchanged(record, _deserialize(plan, payload, record, False, messages))
        if vals:
            record.write(vals)
        return record, False
    vals = _deserialize(plan, payload, None, False, messages)
    return plan.model().create(vals), True
