"""Configuration export/import: a config and its mapping models as one portable JSON document.

The document names everything by what survives a move between databases: models and fields by
technical name, HTTP methods by verb, mapping models by a key local to the file. It carries no
database ids, companies, users, trigger actions, runtime state (pause, failure counters) nor secrets:
secret header values are written as ``null`` (the header itself and its "secret" flag travel).

Which scalar fields travel is derived from the models (stored, copied by ``copy()``, not a secret), so a
field added to a configuration later is exported and imported without touching this file.
"""

import json
import logging
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from odoo import Command, models
from odoo.exceptions import UserError

_logger = logging.getLogger(__name__)

FORMAT = "bj_api_sync.config"
VERSION = 1

SCALAR_TYPES = ("char", "text", "html", "integer", "float", "monetary", "boolean", "selection", "date", "datetime")

CONFIG = "bj.api.sync.config"
LINE = "bj.api.sync.config.line"
HEADER = "bj.api.sync.header"
PARAM = "bj.api.sync.param"

# Keys of each record kind that are not plain field values (handled explicitly on both sides).
CONFIG_KEYS = ("key", "name", "request_type", "model", "http_methods", "lines", "headers", "params")
LINE_KEYS = ("field", "mapping")
HEADER_KEYS = ("key", "value", "secret")
PARAM_KEYS = ("key", "field")
# Columns never read nor written generically: relations or values with a dedicated key.
SKIP_COLUMNS = {
    CONFIG: {"name", "request_type"},
    LINE: set(),
    HEADER: {"key", "value_plain", "secret"},
    PARAM: {"key"},
}


# ---------------------------------------------------------------------------------------- helpers
def _transfer_fields(model):
    """Names of the scalar fields of ``model`` that a configuration file carries, in file order."""
    secret_names = set()
    for visible, column in getattr(model, "_bj_secret_fields", {}).items():
        secret_names.update((visible, column))
    names = [
        name
        for name, fld in model._fields.items()
        if fld.store
        and fld.copy
        and fld.type in SCALAR_TYPES
        and name not in models.MAGIC_COLUMNS
        and name not in secret_names
        and not name.endswith("_encrypted")
        and name not in SKIP_COLUMNS[model._name]
    ]
    return sorted(names)


def _json_value(record, name):
    fld = record._fields[name]
    value = record[name]
    if fld.type == "boolean":
        return bool(value)
    if fld.type in ("integer", "float", "monetary"):
        return value or 0
    if value is False:
        return None
    if fld.type in ("date", "datetime"):
        return fld.to_string(value)
    return value


def _slug(text):
    return re.sub(r"[^a-z0-9_-]+", "-", (text or "").lower()).strip("-") or "config"


def export_key(config):
    """A config's key in a file: its endpoint for In configs, else its name as a slug."""
    return config.endpoint if config.request_type == "in" and config.endpoint else _slug(config.name)


def dumps(document):
    """The file's text: stable key order and indentation, so two exports can be diffed."""
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def loads(env, text):
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise UserError(env._("The file is not valid JSON: %s", exc)) from None
    return document


# ---------------------------------------------------------------------------------------- export
def export_configs(configs):
    """The document for ``configs`` (roots first, in order) and every mapping model they reach."""
    ordered = []
    seen = set()
    stack = list(configs)[::-1]
    while stack:
        config = stack.pop()
        if config.id in seen:
            continue  # shared mapping model, or a cycle: each config is written once
        seen.add(config.id)
        ordered.append(config)
        children = config.line_ids.sorted(lambda line: (line.sequence, line.id)).mapping_config_id
        stack.extend(reversed(children.filtered(lambda child: child.id not in seen)))

    keys = {}
    used = set()
    for config in ordered:
        base = export_key(config)
        key, suffix = base, 1
        while key in used:
            suffix += 1
            key = "%s-%s" % (base, suffix)
        used.add(key)
        keys[config.id] = key

    return {
        "format": FORMAT,
        "version": VERSION,
        "configs": [_export_config(config, keys) for config in ordered],
    }


def _export_config(config, keys):
    env = config.env
    data = {
        "key": keys[config.id],
        "name": config.name,
        "request_type": config.request_type,
        "model": config.model_id.model,
        "http_methods": config.http_method_ids.sorted(lambda m: (m.sequence, m.id)).mapped("name"),
    }
    for name in _transfer_fields(config):
        data[name] = _json_value(config, name)
    line_fields = _transfer_fields(env[LINE])
    data["lines"] = []
    for line in config.line_ids.sorted(lambda line: (line.sequence, line.id)):
        item = {"field": line.field_id.name, "mapping": keys.get(line.mapping_config_id.id)}
        item.update((name, _json_value(line, name)) for name in line_fields)
        data["lines"].append(item)

    header_fields = _transfer_fields(env[HEADER])
    data["headers"] = []
    for header in config.header_ids.sorted(lambda h: (h.sequence, h.id)):
        item = {
            "key": header.key,
            "value": None if header.secret else (header.value_plain or None),
            "secret": bool(header.secret),
        }
        item.update((name, _json_value(header, name)) for name in header_fields)
        data["headers"].append(item)

    param_fields = _transfer_fields(env[PARAM])
    data["params"] = []
    for param in config.param_ids.sorted(lambda p: (p.sequence, p.id)):
        item = {"key": param.key, "field": param.field_id.name}
        item.update((name, _json_value(param, name)) for name in param_fields)
        data["params"].append(item)
    return data


# ---------------------------------------------------------------------------------------- import
@dataclass
class _Plan:
    """One config of the file, resolved against this database."""

    key: str
    name: str
    entry: dict
    vals: dict
    model: object = None
    lines: list = dataclass_field(default_factory=list)  # (vals, mapping key or None, label)
    headers: list = dataclass_field(default_factory=list)
    params: list = dataclass_field(default_factory=list)
    ignored: list = dataclass_field(default_factory=list)
    record: object = None
    existing: object = None


@dataclass
class ImportResult:
    root: object
    created: object
    updated: object
    renamed: dict  # config record -> (endpoint in the file, endpoint given here)


def import_configs(env, document, update_existing=False):
    """Recreate the configs of ``document`` here; all or nothing, every problem reported at once."""
    entries = _check_document(env, document)
    problems = []
    plans = [_resolve(env, entry, problems) for entry in entries]
    by_key = {plan.key: plan for plan in plans}
    for plan in plans:
        for _vals, mapping, label in plan.lines:
            if mapping and mapping not in by_key:
                problems.append(
                    env._(
                        "Line '%(line)s' of configuration '%(config)s' uses the mapping model '%(key)s', "
                        "which is not in the file.",
                        line=label,
                        config=plan.name,
                        key=mapping,
                    )
                )
    if not problems:
        _match_existing(env, plans, update_existing, problems)
    if problems:
        raise UserError(
            env._("The configuration file cannot be imported:\n%s", "\n".join("• %s" % p for p in problems))
        )

    ordered = _children_first(plans, by_key)
    renamed = _free_endpoints(env, [plan for plan in ordered if not plan.existing])
    Config = env[CONFIG]

    # Updated configs: drop their old content, keeping the encrypted values of secret headers by key.
    kept_secrets = {}
    updating = [plan for plan in ordered if plan.existing]
    if updating:
        existing = Config.browse([plan.existing.id for plan in updating])
        for header in existing.header_ids.filtered("secret"):
            kept_secrets[(header.config_id.id, header.key)] = header.sudo().value_encrypted
        existing.line_ids.unlink()
        existing.header_ids.unlink()
        existing.param_ids.unlink()
    for plan in updating:
        plan.existing.write(_config_vals(plan, kept_secrets))
        plan.record = plan.existing

    # New configs in one batch, children before parents; their lines in a second batch, so that a
    # line can point to any config of the file.
    creating = [plan for plan in ordered if not plan.existing]
    records = Config.create([_config_vals(plan, kept_secrets) for plan in creating])
    for plan, record in zip(creating, records, strict=True):
        plan.record = record

    line_vals = []
    for plan in ordered:
        for vals, mapping, _label in plan.lines:
            line_vals.append(
                dict(vals, config_id=plan.record.id, mapping_config_id=mapping and by_key[mapping].record.id)
            )
    env[LINE].create(line_vals)

    created = Config.browse([plan.record.id for plan in creating])
    updated = Config.browse([plan.record.id for plan in updating])
    renamed_by_record = {}
    for plan in ordered:
        notes = []
        if plan.existing:
            notes.append(env._("Updated from an imported configuration file; the secrets already set here were kept."))
        else:
            notes.append(env._("Imported; set the secrets (password/token/HMAC secret/secret headers) again."))
        secrets = _missing_secrets(plan.record)
        if secrets:
            notes.append(env._("To set: %s.", ", ".join(secrets)))
        if plan.key in renamed:
            old, new = renamed[plan.key]
            renamed_by_record[plan.record] = (old, new)
            notes.append(
                env._(
                    "The endpoint '%(old)s' is already used here: this configuration serves '%(new)s'.",
                    old=old,
                    new=new,
                )
            )
        if plan.ignored:
            notes.append(env._("Ignored keys unknown to this version: %s.", ", ".join(sorted(set(plan.ignored)))))
        plan.record.message_post(body=" ".join(notes))
    _logger.info(
        "Imported API configurations: %d created, %d updated, %d endpoints renamed",
        len(created),
        len(updated),
        len(renamed),
    )
    return ImportResult(root=plans[0].record, created=created, updated=updated, renamed=renamed_by_record)


def _missing_secrets(config):
    """Labels of the secrets ``config`` needs (by its auth type and secret headers) and lacks."""
    env = config.env
    needed = {
        "basic": "password", "bearer": "bearer_token", "hmac": "hmac_secret", "oauth2": "oauth2_client_secret"
    }.get(config.auth_type)
    labels = []
    if needed and not config._get_secret(needed):
        labels.append(config._fields[needed].get_description(env)["string"])
    for header in config.header_ids.filtered("secret"):
        if not header._get_value():
            labels.append(env._("header %s", header.key))
    return labels


def _check_document(env, document):
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UserError(env._('This is not a BJET API configuration file (expected "format": "%s").', FORMAT))
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UserError(env._("The configuration file has no valid format version."))
    if version > VERSION:
        raise UserError(
            env._(
                "The configuration file has format version %(found)s; this module reads version %(known)s. "
                "Update the module first.",
                found=version,
                known=VERSION,
            )
        )
    entries = document.get("configs")
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise UserError(env._("The configuration file contains no configuration."))
    keys = set()
    for index, entry in enumerate(entries, 1):
        key = entry.get("key")
        if not isinstance(key, str) or not key:
            raise UserError(env._("Configuration #%s of the file has no key.", index))
        if key in keys:
            raise UserError(env._("The key '%s' is used by two configurations of the file.", key))
        keys.add(key)
        if not isinstance(entry.get("name"), str) or not entry["name"].strip():
            raise UserError(env._("Configuration '%s' of the file has no name.", key))
        for part in ("lines", "headers", "params"):
            items = entry.get(part) or []
            if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
                raise UserError(
                    env._(
                        "'%(part)s' of configuration '%(name)s' must be a list of objects.",
                        part=part,
                        name=entry["name"],
                    )
                )
    return entries


def _scalar_vals(model, item, explicit, where, problems, ignored):
    """Field values of ``item`` for ``model``, type-checked; unknown keys go to ``ignored``."""
    env = model.env
    allowed = _transfer_fields(model)
    vals = {}
    for name, value in item.items():
        if name in explicit:
            continue
        if name not in allowed:
            ignored.append(name)
            continue
        fld = model._fields[name]
        ok = True
        if value is None:
            value = 0 if fld.type in ("integer", "float", "monetary") else False
        elif fld.type == "boolean":
            ok = isinstance(value, bool)
        elif fld.type == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif fld.type in ("float", "monetary"):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        elif fld.type == "selection":
            ok = value in fld.get_values(model.env)
        else:
            ok = isinstance(value, str)
        if not ok:
            problems.append(
                env._("Invalid value %(value)r for '%(field)s' (%(where)s).", value=value, field=name, where=where)
            )
            continue
        vals[name] = value
    return vals


def _resolve(env, entry, problems):
    name = entry["name"]
    where = env._("configuration '%s'", name)
    plan = _Plan(key=entry["key"], name=name, entry=entry, vals={})
    plan.vals = _scalar_vals(env[CONFIG], entry, CONFIG_KEYS, where, problems, plan.ignored)
    request_type = entry.get("request_type")
    if request_type not in ("in", "out"):
        problems.append(env._("Configuration '%s' needs a request_type 'in' or 'out'.", name))
    plan.vals.update(name=name, request_type=request_type)

    methods = entry.get("http_methods") or []
    if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
        problems.append(env._("'http_methods' of configuration '%s' must be a list of names.", name))
        methods = []
    found = env["bj.http.method"].search([("name", "in", [m.upper() for m in methods])])
    by_name = {method.name.upper(): method for method in found}
    for method in methods:
        if method.upper() not in by_name:
            problems.append(
                env._("HTTP method '%(method)s' does not exist (configuration '%(name)s').", method=method, name=name)
            )
    plan.vals["http_method_ids"] = [Command.set([by_name[m.upper()].id for m in methods if m.upper() in by_name])]

    model_name = entry.get("model")
    plan.model = env["ir.model"]._get(model_name) if isinstance(model_name, str) else env["ir.model"]
    if not plan.model:
        problems.append(
            env._("Model '%(model)s' is not installed (configuration '%(name)s').", model=model_name, name=name)
        )
        return plan  # its fields cannot be checked
    plan.vals["model_id"] = plan.model.id

    def field_of(item, label, kind):
        field_name = item.get("field")
        fld = env["ir.model.fields"]._get(model_name, field_name) if isinstance(field_name, str) else None
        if not fld:
            problems.append(
                env._(
                    "Field '%(field)s' does not exist on %(model)s (%(kind)s '%(label)s' of configuration '%(name)s').",
                    field=field_name,
                    model=model_name,
                    kind=kind,
                    label=label,
                    name=name,
                )
            )
        return fld

    for item in entry.get("lines") or []:
        label = item.get("api_key") or item.get("field")
        fld = field_of(item, label, env._("line"))
        vals = _scalar_vals(env[LINE], item, LINE_KEYS, env._("line '%s'", label), problems, plan.ignored)
        mapping = item.get("mapping")
        if mapping is not None and not isinstance(mapping, str):
            problems.append(env._("Line '%s': 'mapping' must be the key of a configuration of the file.", label))
            mapping = None
        if fld:
            vals["field_id"] = fld.id
            plan.lines.append((vals, mapping, label))

    for item in entry.get("headers") or []:
        if not isinstance(item.get("key"), str) or not item["key"]:
            problems.append(env._("A header of configuration '%s' has no key.", name))
            continue
        vals = _scalar_vals(env[HEADER], item, HEADER_KEYS, env._("header '%s'", item["key"]), problems, plan.ignored)
        vals.update(key=item["key"], secret=bool(item.get("secret")))
        # Secret values are never taken from a file: they are entered again in this database.
        if not vals["secret"] and isinstance(item.get("value"), str):
            vals["value"] = item["value"]
        plan.headers.append(vals)

    for item in entry.get("params") or []:
        label = item.get("key")
        fld = field_of(item, label, env._("parameter"))
        vals = _scalar_vals(env[PARAM], item, PARAM_KEYS, env._("parameter '%s'", label), problems, plan.ignored)
        if fld:
            vals.update(key=label, field_id=fld.id)
            plan.params.append(vals)
    return plan


def _match_existing(env, plans, update_existing, problems):
    """With ``update_existing``: In configs are matched by endpoint, Out configs by name."""
    if not update_existing:
        return
    Config = env[CONFIG].with_context(active_test=False)
    endpoints = [plan.vals.get("endpoint") for plan in plans if plan.vals["request_type"] == "in"]
    names = [plan.name for plan in plans if plan.vals["request_type"] == "out"]
    ins = Config.search([("request_type", "=", "in"), ("endpoint", "in", [e for e in endpoints if e])])
    outs = Config.search([("request_type", "=", "out"), ("name", "in", names)])
    in_by_endpoint = {config.endpoint: config for config in ins}
    claimed = {}
    for plan in plans:
        if plan.vals["request_type"] == "in":
            match = in_by_endpoint.get(plan.vals.get("endpoint"), Config)
        else:
            match = outs.filtered(lambda c, name=plan.name: c.name == name)
            if len(match) > 1:
                problems.append(
                    env._(
                        "Several outbound configurations are named '%s' here: rename them, or import without "
                        "updating existing configurations.",
                        plan.name,
                    )
                )
                continue
        if not match:
            continue
        if match.model_id != plan.model:
            problems.append(
                env._(
                    "Configuration '%(name)s' exists here on model %(here)s but the file has it on %(file)s: "
                    "import without updating existing configurations.",
                    name=match.name,
                    here=match.model_id.model,
                    file=plan.model.model,
                )
            )
            continue
        if match.id in claimed:
            problems.append(
                env._(
                    "Configurations '%(a)s' and '%(b)s' of the file both match '%(here)s'.",
                    a=claimed[match.id],
                    b=plan.key,
                    here=match.name,
                )
            )
            continue
        claimed[match.id] = plan.key
        plan.existing = match


def _children_first(plans, by_key):
    """Depth-first post-order over the mapping links: a config comes after the configs it maps to."""
    ordered, done, visiting = [], set(), set()

    def visit(plan):
        if plan.key in done or plan.key in visiting:
            return  # visiting: a cycle, broken here (lines are created after all configs anyway)
        visiting.add(plan.key)
        for _vals, mapping, _label in plan.lines:
            if mapping:
                visit(by_key[mapping])
        visiting.discard(plan.key)
        done.add(plan.key)
        ordered.append(plan)

    for plan in plans:
        visit(plan)
    return ordered


def _free_endpoints(env, plans):
    """New In configs whose endpoint is taken get ``<endpoint>-2``, ``-3``… Returns {key: (old, new)}."""
    wanted = [plan for plan in plans if plan.vals["request_type"] == "in" and plan.vals.get("endpoint")]
    if not wanted:
        return {}
    Config = env[CONFIG].with_context(active_test=False)
    taken = set(Config.search([("request_type", "=", "in"), ("endpoint", "!=", False)]).mapped("endpoint"))
    renamed = {}
    for plan in wanted:
        endpoint = base = plan.vals["endpoint"]
        suffix = 1
        while endpoint in taken:
            suffix += 1
            endpoint = "%s-%s" % (base, suffix)
        taken.add(endpoint)
        if endpoint != base:
            plan.vals["endpoint"] = endpoint
            renamed[plan.key] = (base, endpoint)
    return renamed


def _config_vals(plan, kept_secrets):
    vals = dict(plan.vals)
    headers = []
    for header in plan.headers:
        header = dict(header)
        secret = plan.existing and header["secret"] and kept_secrets.get((plan.existing.id, header["key"]))
        if secret:
            header["value_encrypted"] = secret
        headers.append(Command.create(header))
    vals["header_ids"] = headers
    vals["param_ids"] = [Command.create(param) for param in plan.params]
    return vals
