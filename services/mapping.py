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
  which each configuration is checked against the database once (see "Plan cache").

Every failure raises ``lib.errors.SyncError`` with ``status`` (400 user/type error, 404,
409, 500 unexpected) and ``line_id`` when a line caused it.

``serialize``, ``deserialize`` and ``upsert`` also take ``messages=`` (a list): the
``log(message)`` calls of the line scripts are appended to it, for the API log.

Decisions:

* The configuration is read once per call into a plan (lines, fields, child plans), as the
  caller's user with superuser rights (``config.sudo()`` keeps the uid), so that a Run As
  user without access to the configuration models can still be served, and ``uid``/``user``
  in the Filter Domain are the caller's. The records themselves are read and written with
  the caller's rights. Cycles between Mapping Models and nesting deeper than ``MAX_DEPTH``
  are refused (400, naming the line) before any record is touched.
* Serialization is batched: the fields of all plain and relational lines are fetched for
  the whole recordset at once, and each relational line serializes the union of the
  related records once, then picks from it by id. Scripts run per record (user code).
* Inbound, a key absent from the payload leaves the field alone (defaults apply on create);
  ``null`` empties it. Script lines always run, except on a partial update (PUT/PATCH) when
  their key is absent (a script filling ``name`` from another key must not blank it on a
  PATCH of the phone). The identifier field ``id``, log-access fields and fields that
  cannot be written (computed without inverse) are never written.
* Relational values inbound: a scalar is looked up by the child config's identifier (400
  when unknown); an object is looked up by its identifier key and updated with the keys
  it has, or created through the child lines when absent (an unknown ``id`` is a 400: ids
  cannot be chosen). one2many items update the record's children matched by identifier and
  create the others; children not mentioned are left alone.
* ``upsert``: an identifier value matching nothing creates the record, except an unknown
  ``id`` (404): a client cannot choose Odoo's ids.
"""

import contextlib
import contextvars
import datetime
import logging
import weakref
from decimal import Decimal

from odoo import Command, models
from odoo.exceptions import AccessError, UserError
from odoo.osv import expression

from ..lib import values
from ..lib.errors import SyncError
from . import scripts

_logger = logging.getLogger(__name__)

__all__ = [
    "MAX_DEPTH",
    "deserialize",
    "find_records",
    "identifier_key",
    "identifier_value",
    "plan_scope",
    "runs_scripts",
    "serialize",
    "upsert",
    "without_unchanged",
]

# Levels of Mapping Models below the configuration being mapped.
MAX_DEPTH = 8

X2MANY = frozenset({"one2many", "many2many"})
RELATIONAL = X2MANY | {"many2one"}
STRING_TYPES = frozenset({"char", "text", "html", "selection"})
# Never written from a payload: Odoo sets them itself.
NOT_WRITTEN = frozenset({"id", "create_uid", "create_date", "write_uid", "write_date", "display_name"})

DIRECTIONS = {"out": ("both", "out"), "in": ("both", "in")}

PLAIN, NESTED, SCRIPT = "plain", "nested", "script"


# ---------------------------------------------------------------------------
# Plans: a configuration read once per call
# ---------------------------------------------------------------------------

class _Line:
    """What one configuration line needs at run time, read once."""

    __slots__ = (
        "child",
        "comodel",
        "digits",
        "field",
        "fname",
        "id",
        "key",
        "kind",
        "line",
        "required",
        "selection",
        "size",
        "ttype",
        "writable",
    )


class _Plan:
    """A configuration's lines for one direction, with the plans of its Mapping Models."""

    __slots__ = (
        "_domain",
        "config",
        "config_id",
        "config_ids",
        "env",
        "fetch_fnames",
        "height",
        "identifier",
        "lines",
        "model_name",
    )

    def domain(self):
        if self._domain is None:
            self._domain = self.config._get_filter_domain()
        return self._domain

    def model(self):
        return self.env[self.model_name]


# ---------------------------------------------------------------------------
# Plan cache
# ---------------------------------------------------------------------------
# Building a plan reads the configuration, its lines and their fields (4 queries and
# about a millisecond of Python per configuration, on every request). Built plans are
# kept per registry and reused as long as the rows they were built from are unchanged.
# The "version" of a plan is, for each configuration in it, the row version of the
# configuration and of each of its lines: PostgreSQL's ``xmin`` (the transaction that
# wrote the row) and ``ctid`` (where that version of the row is stored), read in one
# query. Any UPDATE gives the row a new ctid, even inside the transaction that made it,
# and a row written by another transaction has another xmin; inserted and deleted
# lines change the list. So a plan is never used once what it was built from changed,
# whoever changed it, committed or not (tests change lines inside their transaction).
# Fields come from the registry, which is rebuilt (and this cache with it) when they
# change. Within a ``plan_scope()`` (one inbound request, one outbound call) the version
# is read once per set of configurations and bound plans are shared.

_PLANS = {}  # database -> (registry weakref, {(config id, direction): (version, plan)})
_SCOPE = contextvars.ContextVar("bj_api_sync_plan_scope", default=None)
_VERSION_SQL = """
    SELECT config.id, config.xmin::text || ':' || config.ctid::text || '/' || COALESCE((
               SELECT string_agg(line.xmin::text || ':' || line.ctid::text, ',' ORDER BY line.id)
                 FROM bj_api_sync_config_line line
                WHERE line.config_id = config.id), '')
      FROM bj_api_sync_config config
     WHERE config.id IN %s
"""


@contextlib.contextmanager
def plan_scope():
    """Within the block, each configuration's plan is checked against the database once.

    For one request or one outbound call: the configuration does not change under it.
    """
    if _SCOPE.get() is not None:
        yield
        return
    token = _SCOPE.set({})
    try:
        yield
    finally:
        _SCOPE.reset(token)


def _version(env, config_ids, scope):
    if scope is not None and config_ids in scope:
        return scope[config_ids]
    # Pending ORM writes of configurations or lines must be rows before their versions are read.
    env["bj.api.sync.config.line"].flush_model()
    env["bj.api.sync.config"].flush_model()
    env.cr.execute(_VERSION_SQL, [tuple(config_ids)])
    version = frozenset(env.cr.fetchall())
    if scope is not None:
        scope[config_ids] = version
    return version


def _plan(config, direction, env):
    """The plan of ``config`` for ``direction`` ("in"/"out"), checked for cycles and depth."""
    if not config or len(config) != 1:
        raise SyncError(env._("An API configuration is required."), status=500)
    scope = _SCOPE.get()
    key = (config.id, direction)
    if scope is not None and (key, env) in scope:
        return scope[key, env]
    cache = _plan_cache(env.registry)
    entry = cache.get(key)
    if entry is not None and _version(env, entry[1].config_ids, scope) == entry[0]:
        plan = _bind(entry[1], env, {})
    else:
        plan = _build_plan(config, direction, env, {}, (), None)
        cache[key] = (_version(env, plan.config_ids, scope), _bind(plan, None, {}))
    if scope is not None:
        scope[key, env] = plan
    return plan


def _plan_cache(registry):
    """The plans of this registry: a reloaded registry (new fields, new code) starts afresh."""
    ref, cache = _PLANS.get(registry.db_name, (None, None))
    if ref is None or ref() is not registry:
        cache = {}
        _PLANS[registry.db_name] = (weakref.ref(registry), cache)
    return cache


def _bind(plan, env, bound):
    """A copy of ``plan`` for ``env``: its own records, selections, digits and domain.

    With ``env=None``, a copy without any record, what the cache keeps (holding no
    environment, so no cursor nor record cache of a finished transaction).
    """
    if plan.config_id in bound:
        return bound[plan.config_id]
    copy = _Plan()
    for name in ("config_id", "config_ids", "fetch_fnames", "height", "model_name"):
        setattr(copy, name, getattr(plan, name))
    copy.env = env
    copy.config = env["bj.api.sync.config"].browse(plan.config_id).sudo() if env is not None else None
    copy._domain = None
    bound[plan.config_id] = copy
    specs = {}
    for old in [plan.identifier, *plan.lines]:
        if old is None or old.id in specs:
            continue
        spec = _Line()
        for name in _Line.__slots__:
            setattr(spec, name, getattr(old, name))
        if env is None:
            spec.line = spec.selection = spec.digits = None
        else:
            spec.line = env["bj.api.sync.config.line"].browse(old.id)
            spec.selection = old.field.get_values(env) if spec.ttype == "selection" else None
            spec.digits = old.field.get_digits(env) if spec.ttype == "float" else None
        if old.child is not None:
            spec.child = _bind(old.child, env, bound)
        specs[old.id] = spec
    copy.identifier = specs[plan.identifier.id] if plan.identifier else None
    copy.lines = [specs[old.id] for old in plan.lines]
    return copy


def _build_plan(config, direction, env, built, path, via_line):
    sconfig = config.with_env(env).sudo()
    if sconfig.id in path:
        raise SyncError(
            env._(
                "Line '%(key)s': Mapping Model '%(config)s' is already used higher in the chain (cycle).",
                key=via_line.api_key,
                config=sconfig.name,
            ),
            status=400,
            line_id=via_line.id,
        )
    depth = len(path)
    if depth > MAX_DEPTH or (sconfig.id in built and depth + built[sconfig.id].height > MAX_DEPTH):
        raise SyncError(
            env._(
                "Line '%(key)s': Mapping Models are nested deeper than %(max)s levels.",
                key=via_line.api_key,
                max=MAX_DEPTH,
            ),
            status=400,
            line_id=via_line.id,
        )
    if sconfig.id in built:
        return built[sconfig.id]

    plan = _Plan()
    plan.config = sconfig
    plan.config_id = sconfig.id
    plan.config_ids = frozenset([sconfig.id])
    plan.env = env
    plan.model_name = sconfig.model_name
    plan.lines = []
    plan.identifier = None
    plan.fetch_fnames = []
    plan.height = 0
    plan._domain = None
    if plan.model_name not in env:
        raise SyncError(
            env._("Configuration '%s' works on a model that is not installed.", sconfig.name), status=500
        )
    model = env[plan.model_name]
    directions = DIRECTIONS[direction]
    lines = sconfig.line_ids
    lines.field_id.mapped("ttype")  # one read for all the lines' fields
    for line in lines:
        spec = _line_spec(line, model, env)
        if line.is_record_identifier:
            plan.identifier = spec
        if line.direction not in directions:
            continue
        if spec.kind == NESTED:
            spec.child = _build_plan(line.mapping_config_id, direction, env, built, path + (sconfig.id,), line)
            plan.height = max(plan.height, spec.child.height + 1)
            plan.config_ids |= spec.child.config_ids
        if spec.kind != SCRIPT and spec.fname not in plan.fetch_fnames:
            plan.fetch_fnames.append(spec.fname)
        plan.lines.append(spec)
    built[sconfig.id] = plan
    return plan


def _line_spec(line, model, env):
    spec = _Line()
    spec.line = line.with_env(env)
    spec.id = line.id
    spec.key = line.api_key
    spec.fname = line.field_id.name
    spec.ttype = line.field_id.ttype
    spec.required = line.required
    spec.child = None
    field = model._fields.get(spec.fname)
    if field is None:
        raise SyncError(
            env._("Line '%(key)s': field %(field)s does not exist.", key=spec.key, field=spec.fname),
            status=500,
            line_id=spec.id,
        )
    spec.field = field
    spec.comodel = field.comodel_name if spec.ttype in RELATIONAL else None
    if line.value_type in ("python_plain", "python_relational") and (line.python_script or "").strip():
        spec.kind = SCRIPT
    elif line.value_type == "relational" and line.mapping_config_id and spec.ttype in RELATIONAL:
        spec.kind = NESTED
    else:
        spec.kind = PLAIN
    if spec.kind == PLAIN and spec.ttype not in values.SUPPORTED_TYPES:
        raise SyncError(
            env._("Line '%(key)s': fields of type %(type)s cannot be mapped.", key=spec.key, type=spec.ttype),
            status=400,
            line_id=spec.id,
        )
    spec.writable = spec.fname not in NOT_WRITTEN and bool(
        field.store or field.inverse or (field.related and not field.readonly)
    )
    spec.selection = field.get_values(env) if spec.ttype == "selection" else None
    spec.size = getattr(field, "size", None) if spec.ttype == "char" else None
    spec.digits = field.get_digits(env) if spec.ttype == "float" else None
    return spec


# ---------------------------------------------------------------------------
# Odoo -> JSON
# ---------------------------------------------------------------------------

def runs_scripts(config, env, direction="out"):
    """Whether the plan of ``config`` (Mapping Models included) evaluates line scripts.

    Without scripts, serializing only reads fields: nothing that could leave a failed
    statement in the caller's transaction, so callers can spare a savepoint.
    """
    return _runs_scripts(_plan(config, direction, env))


def _runs_scripts(plan):
    return any(spec.kind == SCRIPT or (spec.child is not None and _runs_scripts(spec.child)) for spec in plan.lines)


def serialize(config, records, *, messages=None):
    """One JSON-ready dict per record of ``records``, in their order."""
    plan = _plan(config, "out", records.env)
    return _serialize(plan, records, messages)


def _serialize(plan, records, messages):
    if not records:
        return []
    cache = records.env.cache
    if any(
        next(cache.get_missing_ids(records, records._fields[fname]), None)
        for fname in plan.fetch_fnames
        if fname != "id"  # never in the cache: the records' ids themselves
    ):
        records.fetch(plan.fetch_fnames)
    else:
        # Everything is cached already (by the search that found the records, with their
        # record rules): fetch() would only evaluate those rules again in Python, reading
        # every field they use. Field access (groups) is still checked.
        records.check_field_access_rights("read", plan.fetch_fnames)
    nested = {}
    for spec in plan.lines:
        if spec.kind == NESTED and spec.id not in nested:
            related = records.mapped(spec.fname)
            nested[spec.id] = dict(zip(related._ids, _serialize(spec.child, related, messages)))
    config = plan.config.with_env(records.env)
    payloads = []
    for record in records:
        payload = {}
        for spec in plan.lines:
            kind = spec.kind
            if kind == PLAIN:
                payload[spec.key] = values.to_json(spec.ttype, record[spec.fname])
            elif kind == NESTED:
                related = record[spec.fname]
                index = nested[spec.id]
                if spec.ttype == "many2one":
                    payload[spec.key] = index[related._ids[0]] if related else None
                else:
                    payload[spec.key] = [index[record_id] for record_id in related._ids]
            else:
                has_value, value = scripts.run_script(
                    spec.line,
                    env=records.env,
                    record=record,
                    records=records,
                    request_data=payload,
                    messages=messages,
                    config=config,
                )
                if has_value:
                    payload[spec.key] = _jsonable(spec.ttype, value)
        payloads.append(payload)
    return payloads


def _jsonable(ttype, value):
    """A script's value made JSON-ready for a line of field type ``ttype``.

    ``False`` is Odoo's "empty" and gives null unless the field is a boolean;
    records give an id (many2one) or a list of ids; dates ISO text.
    """
    if value is False and ttype != "boolean":
        return None
    if isinstance(value, models.BaseModel) and ttype in X2MANY:
        return list(value._ids)
    return _jsonable_item(value)


def _jsonable_item(value):
    if isinstance(value, models.BaseModel):
        return (value.id or None) if len(value) <= 1 else list(value._ids)
    if isinstance(value, datetime.datetime):
        return values.to_json("datetime", value)
    if isinstance(value, datetime.date):
        return values.to_json("date", value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return values.to_json("binary", value)
    if isinstance(value, Decimal):
        return values.to_json("float", value)
    if isinstance(value, dict):
        return {str(key): _jsonable_item(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable_item(item) for item in value]
    return value


# ---------------------------------------------------------------------------
# JSON -> Odoo
# ---------------------------------------------------------------------------

def deserialize(config, payload, record=None, *, partial=False, messages=None):
    """ORM values for ``create`` (no ``record``) or ``write`` (``record``) from one JSON object."""
    env = record.env if record else config.env
    plan = _plan(config, "in", env)
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
    columns = [fname for fname in plan.fetch_fnames if model._fields[fname].column_type]
    return model.search_fetch(expression.AND([plan.domain(), field_domain, domain or []]), columns)


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
        plan = _plan(config, "in", config.env)  # cached: no query for the lines
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
    plan = _plan(config, "in", config.env)
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
    plan = _plan(config, "in", env)
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
