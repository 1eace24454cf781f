"""The configuration form's buttons: Run Now, Test Connection, Preview Payload, Download OpenAPI.

Each answers with a notification (``display_notification`` client action) rather than
raising, so that the administrator reads what happened where they pressed the button.
"""

import json
from urllib.parse import urlencode

from odoo.exceptions import UserError

from ..lib import paging
from ..lib.api import API_PREFIX, BODY_METHODS
from ..lib.errors import SyncError
from . import mapping, oauth2, openapi, pull
from .outbound_build import OutboundRequest, fill_url, placeholders, prepare
from .push import cron_sync
from .sender import Sender, summary


def notification(title, message, kind="info", sticky=False, pre=False, reload=False):
    params = {"title": title, "message": message, "type": kind, "sticky": sticky}
    if pre:
        params["className"] = "text-prewrap font-monospace"
    if reload:
        params["next"] = {"type": "ir.actions.client", "tag": "soft_reload"}
    return {"type": "ir.actions.client", "tag": "display_notification", "params": params}


def run_now(config):
    """The Run Now button: one scheduled sync, reported as a notification."""
    env = config.env
    result = cron_sync(config)
    if result.success:
        kind = "success"
    elif result.sent:
        kind = "warning"
    else:
        kind = "danger"
    return notification(env._("Run Now: %s", config.name), result.message or summary(env, result), kind, reload=True)


def _classify(env, outcome):
    """A human reading of a failed connection (guard, DNS, TLS, timeout, refused)."""
    error = outcome.error or ""
    if "Refusing to call" in error:
        return env._("Blocked by the SSRF guard: %s", error)
    if outcome.status == 408:
        return env._("Timed out: %s", error)
    lowered = error.lower()
    if "dns" in lowered or "nameresolution" in lowered or "gaierror" in lowered or "name or service" in lowered:
        return env._("DNS resolution failed: %s", error)
    if "ssl" in lowered or "certificate" in lowered or "tls" in lowered:
        return env._("TLS/SSL error: %s", error)
    if "refused" in lowered:
        return env._("Connection refused: %s", error)
    return error or env._("HTTP status %s", outcome.status)


def test_connection(config):
    """The Test Connection button of either direction."""
    if config.request_type == "in":
        return test_connection_in(config)
    return test_connection_out(config)


def test_connection_out(config):
    """Out: HEAD the URL (GET when HEAD is not allowed) with auth and headers, no body.

    A list pull (GET without record placeholders) GETs its first page instead and reports
    what the pull would find there (items at Response Root, the next page); nothing is written.
    OAuth2: a new token is fetched first, and the token endpoint's refusal (invalid_client…)
    is what the notification tells.
    """
    config = prepare(config)
    env = config.env
    if not config.url:
        raise UserError(env._("Set the Request URL first."))
    if config.auth_type != "oauth2":
        return _test_connection(config)
    try:
        lifetime = oauth2.test_token(config)
    except oauth2.TokenError as exc:
        return notification(env._("Connection test: no OAuth2 token"), exc.message, "danger", sticky=True)
    result = _test_connection(config)
    params = result["params"]
    note = env._("OAuth2 token obtained from %(url)s (valid %(seconds)s s).",
                 url=config.oauth2_token_url, seconds=lifetime)
    params["message"] = "%s\n%s" % (note, params["message"])
    params.setdefault("className", "text-prewrap")
    return result


def _test_connection(config):
    env = config.env
    url = pull.fill_last_sync(config, config.url)
    if placeholders(url):
        url = url[: url.index("{")]  # the part before the first placeholder: host, auth and base path
    try:
        sender = Sender(config)
    except (UserError, SyncError) as exc:
        message = exc.message if isinstance(exc, SyncError) else str(exc.args[0] if exc.args else exc)
        return notification(env._("Connection test failed"), message, "danger", sticky=True)
    sender.log_payloads = False
    headers = {k: v for k, v in sender.headers.items() if k.lower() != "content-type"}
    if config._get_http_method() == "GET" and not placeholders(config.url):
        return _test_pull(config, sender, headers, url)
    request = OutboundRequest(method="HEAD", url=url, headers=headers, res_model=config.model_name)
    outcome, vals_list = sender.transmit(request, max_retries=0)
    sender.logs.extend(vals_list)
    if outcome.status in (405, 501):
        request = OutboundRequest(method="GET", url=url, headers=headers, res_model=config.model_name)
        outcome, vals_list = sender.transmit(request, max_retries=0)
        sender.logs.extend(vals_list)
    sender.flush()
    details = _details(request.method, url, outcome)
    refused = _not_succeeded(env, outcome, details, ok=lambda status: 200 <= status < 400)
    if refused:
        return refused
    return notification(
        env._("Connection test succeeded"),
        env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms.", **details),
        "success",
    )


def _details(method, url, outcome):
    latency = outcome.attempts[-1].elapsed_ms if outcome.attempts else outcome.elapsed_ms
    return {"method": method, "url": url, "status": outcome.status, "ms": latency}


def _not_succeeded(env, outcome, details, ok):
    """The Test Connection notification of an answer that is not ``ok(status)``, else None."""
    status = outcome.status
    if outcome.error or not status or status == 408:
        return notification(env._("Connection test failed"), _classify(env, outcome), "danger", sticky=True)
    if status in (401, 403):
        return notification(
            env._("Connection test: authentication refused"),
            env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms: check the credentials.", **details),
            "warning",
            sticky=True,
        )
    if not ok(status):
        return notification(
            env._("Connection test: server answered with an error"),
            env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms.", **details),
            "warning" if status < 500 else "danger",
            sticky=True,
        )
    return None


def _test_pull(config, sender, headers, url):
    """GET the first page of a list pull and say what the pull would do with it."""
    env = config.env
    pages = pull.pager(config, url) if config.is_paginated else None
    if pages:
        url = pages.first()
    request = OutboundRequest(method="GET", url=url, headers=headers, res_model=config.model_name)
    outcome, vals_list = sender.transmit(request, max_retries=0)
    sender.logs.extend(vals_list)
    sender.flush()
    details = _details("GET", url, outcome)
    refused = _not_succeeded(env, outcome, details, ok=lambda status: 200 <= status < 300)
    if refused:
        return refused
    lines = [env._("%(method)s %(url)s answered HTTP %(status)s in %(ms)s ms.", **details)]
    body = outcome.json()
    try:
        items = pull.extract_list(body, config.response_root, env)
    except SyncError as exc:
        lines.append(exc.message)
        return notification(env._("Connection test: unexpected answer"), "\n".join(lines), "warning", sticky=True)
    lines.append(env._("%s item(s) found at Response Root on the first page (nothing was written).", len(items)))
    if pages:
        try:
            following = pages.next(outcome.headers, body, len(items))
        except paging.PagingError as exc:
            following = None
            lines.append(env._("Next page %s would not be followed (another host, or this page again).", exc.url))
        if following:
            lines.append(env._("Next page: %s", following))
        elif len(lines) == 2:
            lines.append(env._("No next page: the pull would stop after this one."))
    return notification(env._("Connection test succeeded"), "\n".join(lines), "success", pre=True)


def preview_payload(config):
    """The request the first matching record would produce; nothing is sent."""
    config = prepare(config)
    env = config.env
    Model = env[config.model_name]
    record = Model.search(config._get_filter_domain(), order="id", limit=1)
    if not record:
        return notification(env._("Preview Payload"), env._("No record matches the Filter Domain."), "warning")
    try:
        payload = mapping.serialize(config, record)[0]
        url = fill_url(config.url, payload, env) if placeholders(config.url or "") else config.url
    except SyncError as exc:
        return notification(env._("Preview Payload"), exc.message, "danger", sticky=True)
    method = config._get_http_method()
    text = json.dumps(payload, indent=2, ensure_ascii=False, default=str)
    lines = ["%s %s" % (method, url)]
    if method not in BODY_METHODS:
        lines.append(env._("(no body is sent with %s; payload shown for reference)", method))
    elif config.is_paginated and not placeholders(config.url or ""):
        lines.append(env._("(sent as one item of a JSON array of up to %s records)", config.page_size))
    lines += ["", text]
    return notification(
        env._("Preview Payload: %s", record.display_name), "\n".join(lines), "info", sticky=True, pre=True
    )


def test_connection_in(config):
    """In: check the config is usable and show its URL with a ready ``curl`` command."""
    env = config.env
    problems = []
    if not config.active:
        problems.append(env._("The configuration is archived: its endpoint answers 404."))
    if not config.endpoint:
        problems.append(env._("No endpoint is set."))
    if not config.http_method_ids:
        problems.append(env._("No HTTP method is selected: every request gets 405."))
    if not config.line_ids:
        problems.append(env._("No Configuration Lines: records would be empty."))
    elif not config._get_identifier_line():
        problems.append(env._("No line is marked Is Record Identifier."))
    if not config.user_id:
        problems.append(env._("No Run As user."))
    auth_type = config.auth_type or "none"
    if auth_type == "basic" and not (config.login and config._get_secret("password")):
        problems.append(env._("Basic Auth needs a login and a password."))
    elif auth_type == "bearer" and not config._get_secret("bearer_token"):
        problems.append(env._("Bearer Token authentication needs a token."))
    elif auth_type == "hmac" and not config._get_secret("hmac_secret"):
        problems.append(env._("HMAC Signature authentication needs a secret."))
    for header in config.header_ids.filtered("required"):
        if not header._get_value():
            problems.append(env._("Required header '%s' has no value.", header.key))
    url = config.full_url or ""
    curl = openapi.curl_command(config)
    if problems:
        message = "%s\n\n%s\n%s" % ("\n".join("• " + p for p in problems), url, curl)
        kind, title = "danger", env._("Configuration incomplete")
    else:
        message = "%s\n\n%s" % (url, curl)
        kind, title = "success", env._("Endpoint ready")
    return notification(title, message, kind, sticky=True)


def download_openapi_action(config):
    """Open the OpenAPI document of this endpoint as a download."""
    return {
        "type": "ir.actions.act_url",
        "url": "%s/openapi.json?%s" % (API_PREFIX, urlencode({"endpoint": config.endpoint or "", "download": 1})),
        "target": "new",
    }
