"""The per-call plan of the mapping engine: a configuration's lines read once, and cached.

``services/mapping.py`` is the interface; this module is what both directions
(``mapping_serialize``, ``mapping_deserialize``) start from. It knows which lines a
configuration has for a direction, of which kind (plain field, nested Mapping Model,
script), with the field facts the conversions need, so that mapping a record never reads
the configuration again.

Decisions:

* The configuration is read once per call into a plan (lines, fields, child plans), as the
  caller's user with superuser rights (``config.sudo()`` keeps the uid), so that a Run As
  user without access to the configuration models can still be served, and ``uid``/``user``
  in the Filter Domain are the caller's. The records themselves are read and written with
  the caller's rights. Cycles between Mapping Models and nesting deeper than ``MAX_DEPTH``
  are refused (400, naming the line) before any record is touched.
* Built plans are kept per registry and reused while the rows they were built from are
  unchanged (see "Plan cache" below); ``plan_scope()`` checks that once per call.
"""

import contextlib
import contextvars
import weakref

from odoo.tools import SQL

from ..lib import values
from ..lib.errors import SyncError

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

    def fetch_columns(self):
        """The fields the lines read that have a column: what a ``search_fetch`` can bring."""
        fields_ = self.env[self.model_name]._fields
        return [fname for fname in self.fetch_fnames if fields_[fname].column_type]


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


def version_probe(env, config_id, directions=("in", "out")):
    """Read the versions of ``config_id``'s cached plans inside a query the caller runs anyway.

    Returns ``(sql, prime)``: ``sql`` is a scalar subquery to select, ``prime(value)`` hands
    its value to the current ``plan_scope()``, which then checks these plans without a
    query of its own (the same versions ``_version`` would read, in the same transaction).
    ``(None, None)`` outside a scope or when no plan of the configuration is cached yet.
    """
    scope = _SCOPE.get()
    cache = _plan_cache(env.registry)
    id_sets = {cache[config_id, d][1].config_ids for d in directions if (config_id, d) in cache}
    if scope is None or not id_sets:
        return None, None
    env["bj.api.sync.config.line"].flush_model()
    env["bj.api.sync.config"].flush_model()
    union = tuple(sorted(set().union(*id_sets)))
    sql = SQL("(SELECT array_agg(ARRAY[v.id::text, v.version]) FROM (%s) v (id, version))", SQL(_VERSION_SQL, union))

    def prime(value):
        rows = {(int(cid), version) for cid, version in value or ()}
        for ids in id_sets:
            scope[ids] = frozenset(row for row in rows if row[0] in ids)

    return sql, prime


def get_plan(config, direction, env):
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
