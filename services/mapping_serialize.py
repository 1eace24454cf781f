"""Odoo -> JSON: records serialized through a configuration's plan (lines of direction both/out).

Part of the mapping engine; ``services/mapping.py`` is the interface
(``serialize``, ``runs_scripts``).

Decisions:

* Serialization is batched: the fields of all plain and relational lines are fetched for
  the whole recordset at once, and each relational line serializes the union of the
  related records once, then picks from it by id. Scripts run per record (user code).
* A script's value is made JSON-ready for the line's field type: ``False`` is Odoo's
  "empty" (null unless boolean), records give ids, dates ISO text.
"""

import datetime
from decimal import Decimal

from odoo import models
from odoo.exceptions import AccessError

from ..lib import values
from . import scripts
from .mapping_plan import NESTED, PLAIN, SCRIPT, X2MANY, get_plan


def runs_scripts(config, env, direction="out"):
    """Whether the plan of ``config`` (Mapping Models included) evaluates line scripts.

    Without scripts, serializing only reads fields: nothing that could leave a failed
    statement in the caller's transaction, so callers can spare a savepoint.
    """
    return _runs_scripts(get_plan(config, direction, env))


def _runs_scripts(plan):
    return any(spec.kind == SCRIPT or (spec.child is not None and _runs_scripts(spec.child)) for spec in plan.lines)


def search(config, domain, **kwargs):
    """``search`` of the records to serialize, with the columns serializing reads (one query).

    When the user may not read one of those fields, a plain search instead: the page is
    then refused (403) only if it has records, as a ``search`` then ``read`` would.
    """
    plan = get_plan(config, "out", config.env)
    model = plan.model()
    columns = plan.fetch_columns()
    try:
        model.check_field_access_rights("read", columns)
    except AccessError:
        return model.search(domain, **kwargs)
    return model.search_fetch(domain, columns, **kwargs)


def serialize(config, records, *, messages=None):
    """One JSON-ready dict per record of ``records``, in their order."""
    plan = get_plan(config, "out", records.env)
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
