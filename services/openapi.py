"""OpenAPI 3.1 description of the inbound endpoints, and the ready ``curl`` command.

Built from the configurations themselves (lines, methods, parameters, auth) so the
document can never drift from what the endpoints do. Secrets are never read here:
only the kind of authentication and the names of required headers appear.
"""

import json
import re
import shlex
from urllib.parse import urlencode

from ..lib import signature_presets
from ..lib.api import endpoint_path

OPENAPI_VERSION = "3.1.0"

_SCHEMA_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")

_ERROR_RESPONSES = {
    "400": ("BadRequest", "Invalid JSON, wrong value type, unknown query parameter or validation error."),
    "401": ("Unauthorized", "Missing or invalid credentials (see WWW-Authenticate)."),
    "403": ("Forbidden", "The Run As user lacks the access rights for this operation."),
    "404": ("NotFound", "Endpoint or record not found (within the Filter Domain)."),
    "405": ("MethodNotAllowed", "Method not enabled on this endpoint (see Allow)."),
    "409": ("Conflict", "The identifier matches several records, or the Idempotency-Key is in use."),
    "413": ("PayloadTooLarge", "Body or batch too large."),
    "415": ("UnsupportedMediaType", "The body is not application/json."),
    "422": ("UnprocessableContent", "The Idempotency-Key was used for a different request."),
    "429": ("TooManyRequests", "Rate Limit of the endpoint reached: retry after Retry-After seconds."),
    "500": ("ServerError", "Unexpected error (details in the server log)."),
}


def schema_name(config):
    """Component name of a config's record schema: its endpoint, else ``config_<id>``."""
    base = config.endpoint if config.request_type == "in" and config.endpoint else "config_%s" % config.id
    return _SCHEMA_NAME_RE.sub("_", base)


def _nullable(schema):
    schema = dict(schema)
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
        if "enum" in schema:
            schema["enum"] = list(schema["enum"]) + [None]
    return schema


def _not_empty(schema):
    """The schema of a Required line's value: never null, blank text or an empty array."""
    schema = dict(schema)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = [k for k in kind if k != "null"]
        schema["type"] = kind[0] if len(kind) == 1 else kind
        if "enum" in schema:
            schema["enum"] = [v for v in schema["enum"] if v is not None]
    if "oneOf" in schema:
        schema["oneOf"] = [s for s in schema["oneOf"] if s != {"type": "null"}]
    if schema.get("type") == "string" and not {"enum", "format", "pattern"} & set(schema):
        schema["pattern"] = r"\S"
    elif schema.get("type") == "array":
        schema["minItems"] = 1
    return schema


def field_schema(field, env=None):
    """JSON Schema of a plain value of an ``ir.model.fields`` record, per SPEC §5.1."""
    ttype = field.ttype
    if ttype in ("char", "text", "html"):
        schema = {"type": "string"}
        if ttype == "char" and field.size:
            schema["maxLength"] = field.size
    elif ttype == "selection":
        schema = {"type": "string"}
        keys = _selection_keys(field, env)
        if keys:
            schema["enum"] = keys
    elif ttype == "integer":
        schema = {"type": "integer"}
    elif ttype in ("float", "monetary"):
        schema = {"type": "number"}
    elif ttype == "boolean":
        return {"type": "boolean"}
    elif ttype == "date":
        schema = {"type": "string", "format": "date"}
    elif ttype == "datetime":
        schema = {"type": "string", "format": "date-time"}
    elif ttype in ("many2one", "many2one_reference"):
        schema = {"type": "integer", "minimum": 1, "description": "Record id"}
    elif ttype in ("one2many", "many2many"):
        return {"type": "array", "items": {"type": "integer", "minimum": 1}}
    elif ttype == "binary":
        schema = {"type": "string", "contentEncoding": "base64"}
    elif ttype == "reference":
        schema = {"type": "string", "pattern": "^[A-Za-z0-9_.]+,[0-9]+$"}
    else:  # json and anything newer: any JSON value
        return {}
    if field.name == "id":
        return {"type": "integer", "minimum": 1}
    return _nullable(schema)


def _selection_keys(field, env):
    if env is not None and field.model in env:
        model_field = env[field.model]._fields.get(field.name)
        if model_field is not None:
            try:
                return [key for key, _label in model_field._description_selection(env)]
            except Exception:  # noqa: BLE001 - dynamic selections may need a context: leave it open
                return []
    return field.selection_ids.mapped("value")


class _Builder:
    """Accumulates the components while walking the configs."""

    def __init__(self, env, base_url):
        self.env = env
        self.base_url = (base_url or "").rstrip("/")
        self.schemas = {
            "Error": {
                "oneOf": [
                    {"$ref": "#/components/schemas/MessageError"},
                    {"$ref": "#/components/schemas/LineError"},
                ]
            },
            "MessageError": {
                "type": "object",
                "required": ["message", "status_code"],
                "properties": {"message": {"type": "string"}, "status_code": {"type": "integer"}},
            },
            "LineError": {
                "type": "object",
                "description": "A failure caused by one Configuration Line.",
                "required": ["error", "line_id", "status_code"],
                "properties": {
                    "error": {"type": "string"},
                    "line_id": {"type": "integer"},
                    "status_code": {"type": "integer"},
                },
            },
        }
        self.security_schemes = {}
        self.paths = {}
        self._done = set()

    # ---------------------------------------------------------------- schemas
    def record_schemas(self, config):
        """Register the output, create and update schemas of ``config`` (and of its mapping configs)."""
        name = schema_name(config)
        if name in self._done:
            return name
        self._done.add(name)
        out_props, in_props, required = {}, {}, []
        for line in config.line_ids.sorted("sequence"):
            schema = self._line_schema(line)
            if line.field_id.help:
                schema = dict(schema, description=line.field_id.help)
            schema.setdefault("title", line.field_id.field_description or line.api_key)
            if line.direction in ("both", "out"):
                out_props[line.api_key] = schema
            if line.direction in ("both", "in"):
                in_props[line.api_key] = _not_empty(schema) if line.required else schema
                if line.required:
                    required.append(line.api_key)
        title = config.name
        self.schemas[name] = {"type": "object", "title": title, "properties": out_props}
        create = {"type": "object", "title": "%s (create)" % title, "properties": in_props}
        if required:
            create["required"] = required
        self.schemas[name + ".create"] = create
        self.schemas[name + ".update"] = {"type": "object", "title": "%s (update)" % title, "properties": in_props}
        return name

    def _line_schema(self, line):
        field = line.field_id
        if line.value_type == "relational" and line.mapping_config_id:
            ref = {"$ref": "#/components/schemas/%s" % self.record_schemas(line.mapping_config_id)}
            if field.ttype == "many2one":
                return {"oneOf": [ref, {"type": "integer"}, {"type": "null"}]}
            return {"type": "array", "items": {"oneOf": [ref, {"type": "integer"}]}}
        if line.value_type in ("python_plain", "python_relational"):
            return {"description": "Computed by a Python script."}
        return field_schema(field, self.env)

    # ---------------------------------------------------------------- security
    def security(self, config):
        requirement = {}
        auth = config.auth_type or "none"
        if auth == "basic":
            self.security_schemes["basicAuth"] = {"type": "http", "scheme": "basic"}
            requirement["basicAuth"] = []
        elif auth in ("bearer", "api_client", "odoo_api_key"):  # one Bearer token (an API client's, an Odoo key)
            self.security_schemes["bearerAuth"] = {"type": "http", "scheme": "bearer"}
            requirement["bearerAuth"] = []
        elif auth == "hmac" and (config.hmac_preset or "standard") != "standard":
            header = signature_presets.header_name(config.hmac_preset, config.hmac_header) or "signature"
            self.security_schemes["signature_%s" % _SCHEMA_NAME_RE.sub("_", header)] = {
                "type": "apiKey", "in": "header", "name": header,
                "description": "HMAC-SHA256 signature (%s preset)." % config.hmac_preset,
            }
            requirement["signature_%s" % _SCHEMA_NAME_RE.sub("_", header)] = []
        elif auth == "hmac":
            self.security_schemes["webhookSignature"] = {
                "type": "apiKey",
                "in": "header",
                "name": "webhook-signature",
                "description": "Standard Webhooks v1: also send webhook-id and webhook-timestamp (unix "
                "seconds, within 5 minutes); the signature is v1,<base64 HMAC-SHA256 of "
                "'{webhook-id}.{webhook-timestamp}.{body}'>.",
            }
            requirement["webhookSignature"] = []
        for header in config.header_ids.filtered("required"):
            scheme = "header_%s" % _SCHEMA_NAME_RE.sub("_", header.key)
            self.security_schemes[scheme] = {"type": "apiKey", "in": "header", "name": header.key}
            requirement[scheme] = []
        return [requirement] if requirement else []

    # ---------------------------------------------------------------- paths
    def add_config(self, config):
        name = self.record_schemas(config)
        methods = set(config._get_http_methods())
        security = self.security(config)
        ref = {"$ref": "#/components/schemas/%s" % name}
        create_ref = {"$ref": "#/components/schemas/%s.create" % name}
        update_ref = {"$ref": "#/components/schemas/%s.update" % name}
        identifier = config._get_identifier_line()
        op_base = _SCHEMA_NAME_RE.sub("_", config.endpoint)
        collection, item = {}, {}

        def operation(op_id, summary, responses, errors, parameters=None, body=None):
            op = {
                "operationId": "%s_%s" % (op_base, op_id),
                "summary": summary,
                "tags": [config.name],
                "security": security,
                "responses": dict(
                    responses,
                    **{code: {"$ref": "#/components/responses/%s" % _ERROR_RESPONSES[code][0]} for code in errors},
                ),
            }
            if parameters:
                op["parameters"] = parameters
            if body is not None:
                op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
            return op

        def ok(description, schema, headers=None):
            response = {"description": description, "content": {"application/json": {"schema": schema}}}
            if headers:
                response["headers"] = headers
            return response

        common_errors = ["401", "403", "500"] + (["429"] if config.rate_limit else [])
        if "GET" in methods:
            collection["get"] = operation(
                "list", "List %s" % config.name,
                {"200": ok("Records, ordered by id.", {"type": "array", "items": ref}, {
                    "X-Total-Count": {
                        "description": "Number of matching records: on the first and the last page, and on every "
                        "page with Prefer: count=exact.",
                        "schema": {"type": "integer"},
                    },
                    "Link": {"description": 'Next page: <url>; rel="next".', "schema": {"type": "string"}},
                })},
                ["400"] + common_errors,
                parameters=self._list_parameters(config),
            )
            item["get"] = operation("read", "Read one %s" % config.name, {"200": ok("The record.", ref)},
                                    ["400", "404", "409"] + common_errors)
        if "POST" in methods:
            collection["post"] = operation(
                "upsert", "Create or update (by identifier) %s; an array is an all-or-nothing batch" % config.name,
                {
                    "200": ok("Updated.", ref),
                    "201": ok("Created (a batch returns an array).", {"oneOf": [ref, {"type": "array", "items": ref}]}),
                },
                ["400", "409", "413", "415", "422"] + common_errors,
                parameters=[_idempotency_parameter()],
                body={"oneOf": [create_ref, {"type": "array", "items": create_ref, "minItems": 1}]},
            )
        for method in ("PUT", "PATCH"):
            if method in methods:
                verb = method.lower()
                item[verb] = operation(
                    "%s_one" % verb, "Update one %s (partial)" % config.name, {"200": ok("Updated.", ref)},
                    ["400", "404", "409", "413", "415", "422"] + common_errors,
                    parameters=[_idempotency_parameter()], body=update_ref,
                )
                collection[verb] = operation(
                    "%s_by_body" % verb,
                    "Update one %s identified by '%s' in the body" % (config.name, identifier.api_key or "?"),
                    {"200": ok("Updated.", ref)},
                    ["400", "404", "409", "413", "415", "422"] + common_errors,
                    parameters=[_idempotency_parameter()], body=update_ref,
                )
        if "DELETE" in methods:
            item["delete"] = operation(
                "delete", "Delete (or archive) one %s" % config.name, {"200": ok("The record as it was.", ref)},
                ["404", "409", "422"] + common_errors, parameters=[_idempotency_parameter()],
            )
        path = endpoint_path(config.endpoint)
        if collection:
            self.paths[path] = collection
        if item:
            id_schema = field_schema(identifier.field_id, self.env) if identifier else {"type": "string"}
            id_schema = {k: v for k, v in id_schema.items() if k not in ("title", "description")}
            if isinstance(id_schema.get("type"), list):
                id_schema["type"] = [t for t in id_schema["type"] if t != "null"][0]
                id_schema.pop("enum", None)
            item_path = {
                "parameters": [{
                    "name": "record_id",
                    "in": "path",
                    "required": True,
                    "description": "Value of the record identifier '%s'." % (identifier.api_key or "?"),
                    "schema": id_schema,
                }],
            }
            item_path.update(item)
            self.paths[path + "/{record_id}"] = item_path

    def _list_parameters(self, config):
        params = [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1},
             "description": "Page size (capped by the endpoint's limit)."},
            {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}},
            {"name": "Prefer", "in": "header", "schema": {"type": "string"},
             "description": "count=exact: X-Total-Count on every page (else on the first and last pages only)."},
        ]
        seen = {"limit", "offset"}
        for param in config.param_ids:
            if param.key in seen:
                continue
            seen.add(param.key)
            if param.operator in ("in", "not in"):
                schema = {"type": "string"}
            else:
                schema = _query_schema(param.field_id, self.env)
            params.append({
                "name": param.key, "in": "query", "schema": schema,
                "description": "%s %s (%s)%s" % (
                    param.field_id.field_description, param.operator, param.field_id.name,
                    ", comma-separated" if param.operator in ("in", "not in") else "",
                ),
            })
        for line in config.line_ids:
            if line.value_type == "plain" and line.api_key not in seen:
                seen.add(line.api_key)
                params.append({
                    "name": line.api_key, "in": "query", "schema": _query_schema(line.field_id, self.env),
                    "description": "Equal to (%s)." % line.field_id.name,
                })
        return params

    def document(self):
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": "BJET API Synchronization: inbound endpoints",
                "version": "1",
                "description": "Endpoints served by the Odoo addon bj_api_sync. Success bodies are the data "
                "itself; errors are {message, status_code} or, for a Configuration Line, "
                "{error, line_id, status_code}.",
            },
            "servers": [{"url": self.base_url or "/"}],
            "paths": self.paths,
            "components": {
                "schemas": self.schemas,
                "responses": {
                    name: {
                        "description": description,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                    }
                    for name, description in _ERROR_RESPONSES.values()
                },
                "securitySchemes": self.security_schemes,
            },
        }


def _query_schema(field, env):
    schema = field_schema(field, env)
    schema = {k: v for k, v in schema.items() if k not in ("title", "description")}
    if isinstance(schema.get("type"), list):
        schema["type"] = [t for t in schema["type"] if t != "null"][0]
        if "enum" in schema:
            schema["enum"] = [v for v in schema["enum"] if v is not None]
    if schema.get("type") == "array":
        schema = {"type": "integer", "minimum": 1}
    return schema or {"type": "string"}


def _idempotency_parameter():
    return {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "maxLength": 255},
        "description": "A repeated key within 24 h replays the first response instead of writing again.",
    }


def build_document(env, configs=None, base_url=None):
    """The OpenAPI document of ``configs`` (default: every active inbound config)."""
    Config = env["bj.api.sync.config"].sudo()
    if configs is None:
        configs = Config.search([("request_type", "=", "in")], order="endpoint, id")
    configs = configs.sudo().filtered(lambda c: c.request_type == "in" and c.endpoint and c.active)
    if base_url is None:
        base_url = env["ir.config_parameter"].sudo().get_param("web.base.url", "")
    builder = _Builder(env, base_url)
    for config in configs:
        builder.add_config(config)
    return builder.document()


def dumps(document):
    return json.dumps(document, indent=2, ensure_ascii=False)


def curl_command(config):
    """A ready ``curl`` call of the endpoint; credentials appear as placeholders only."""
    url = config.full_url or endpoint_path(config.endpoint)
    methods = set(config._get_http_methods())
    parts = ["curl", "-i"]
    body = None
    if "GET" in methods or not methods:
        parts += ["-X", "GET", shlex.quote("%s?%s" % (url, urlencode({"limit": 1})))]
    else:
        method = "POST" if "POST" in methods else sorted(methods)[0]
        parts += ["-X", method, shlex.quote(url), "-H", shlex.quote("Content-Type: application/json")]
        body = json.dumps(_example_body(config))
    auth = config.auth_type or "none"
    if auth == "basic":
        parts += ["-u", shlex.quote("%s:<password>" % (config.login or "<login>"))]
    elif auth in ("bearer", "api_client", "odoo_api_key"):
        parts += ["-H", shlex.quote("Authorization: Bearer <token>")]
    elif auth == "hmac":
        parts += [
            "-H", shlex.quote("webhook-id: <unique message id>"),
            "-H", shlex.quote("webhook-timestamp: <unix seconds>"),
            "-H", shlex.quote("webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>"),
        ]
    for header in config.header_ids.filtered("required"):
        parts += ["-H", shlex.quote("%s: <%s>" % (header.key, header.key))]
    if body is not None:
        parts += ["-d", shlex.quote(body)]
    return " ".join(parts)


_EXAMPLES = {
    "char": "text", "text": "text", "html": "<p>text</p>", "selection": "value", "integer": 1, "float": 1.5,
    "monetary": 1.5, "boolean": True, "date": "2024-01-31", "datetime": "2024-01-31T12:00:00Z",
    "many2one": 1, "one2many": [1], "many2many": [1],
}


def _example_body(config):
    example = {}
    for line in config.line_ids:
        if line.direction == "out" or line.field_id.name == "id":
            continue
        example[line.api_key] = _EXAMPLES.get(line.field_id.ttype, "value")
    return example
