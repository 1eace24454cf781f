"""Inbound checks of the "API Clients" and "Odoo API Key" Authorization Types (services/auth.py
dispatches to them through ``INBOUND_CHECKS``).

API Clients: ``Authorization: Bearer bjk_...``, one key per client of the configuration
(models/bj_api_sync_client.py), each with its allowed methods, expiry and rate limit; the
request's log row names the client. Odoo API Key: ``Authorization: Bearer <key>`` made in
Preferences › Account Security (global keys, or keys of scope ``bj_api_sync``), and the request
runs as that key's user instead of the configuration's Run As user.
"""

import logging
import time

from ..lib.errors import SyncError

_logger = logging.getLogger(__name__)

REALM = 'realm="bj_api_sync"'
ODOO_KEY_SCOPE = "bj_api_sync"


def _unauthorized(message, error=None):
    challenge = "Bearer %s" % REALM
    if error:
        challenge += ', error="%s"' % error
    return SyncError(message, status=401, headers={"WWW-Authenticate": challenge})


def bearer_token(call):
    """The token of ``Authorization: Bearer <token>`` (or a bare token); raises the 401 when absent."""
    env = call.env
    value = (call.headers.get("authorization") or "").strip()
    if not value:
        raise _unauthorized(env._("Authentication required (Bearer token)."))
    scheme, _sep, token = value.partition(" ")
    if not token:
        return scheme
    if scheme.lower() != "bearer":
        raise _unauthorized(env._("Wrong authentication scheme: Bearer expected."))
    return token.strip()


def check_api_client(call):
    env = call.env
    client = env["bj.api.sync.client"]._find(call.config, bearer_token(call))
    if not client:
        raise _unauthorized(env._("Invalid token."), "invalid_token")
    call.client = client
    allowed = client.http_method_ids.mapped("name")
    method = "GET" if call.method == "HEAD" else call.method
    if allowed and method not in {name.upper() for name in allowed}:
        raise SyncError(
            env._("Method %(method)s is not allowed for API client '%(client)s'.", method=call.method,
                  client=client.name),
            status=403,
        )
    if not client._use():
        raise SyncError(
            env._("Rate limit exceeded: %s requests per minute.", client.rate_limit),
            status=429, headers={"Retry-After": str(60 - int(time.time()) % 60)},
        )


def check_odoo_api_key(call):
    env = call.env
    token = bearer_token(call)
    uid = env["res.users.apikeys"]._check_credentials(scope=ODOO_KEY_SCOPE, key=token) if token else None
    if not uid:
        raise _unauthorized(env._("Invalid token."), "invalid_token")
    call.run_as_uid = uid
