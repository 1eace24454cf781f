"""HTTP adapter of the inbound API: werkzeug request in, ``services.inbound`` out.

Kept thin on purpose: everything that decides a status lives in services/inbound.py,
which is tested and benchmarked without werkzeug.
"""

import logging

from werkzeug.exceptions import HTTPException

from odoo import http
from odoo.http import request

from ..lib import values
from ..lib.api import API_PREFIX
from ..services import inbound, openapi

_logger = logging.getLogger(__name__)

_READ_CHUNK = 64 * 1024


class BjApiSyncController(http.Controller):
    @http.route(
        [API_PREFIX + "/<string:endpoint>", API_PREFIX + "/<string:endpoint>/<path:record_id>"],
        type="http",
        auth="none",
        csrf=False,
        save_session=False,
        readonly=False,
    )
    def bj_api_sync_endpoint(self, endpoint, record_id=None, **_params):
        """Every method of ``/bj_api_sync/v1/<endpoint>[/<record_id>]``."""
        if not request.db:
            return self._json_response(404, {}, values.dumps({"message": "Endpoint not found", "status_code": 404}))
        httprequest = request.httprequest
        body_error = None
        try:
            body = self._read_body(httprequest, inbound.max_body_bytes(request.env))
        except (OSError, ValueError, HTTPException) as exc:  # broken chunked encoding, client gone...
            body, body_error = b"", str(exc) or type(exc).__name__
        status, headers, payload = inbound.handle(
            request.env,
            endpoint,
            httprequest.method,
            record_id=record_id,
            query=httprequest.args,
            headers=dict(httprequest.headers.items()),
            body_bytes=body,
            content_type=httprequest.headers.get("Content-Type"),
            url=httprequest.url,
            body_error=body_error,
        )
        return self._json_response(status, headers, payload)

    @http.route(API_PREFIX + "/openapi.json", type="http", auth="public", methods=["GET"], readonly=True)
    def bj_api_sync_openapi(self, endpoint=None, download=None, **_params):
        """OpenAPI 3.1 document of the active inbound endpoints, for administrators."""
        user = request.env.user
        if not user or user._is_public():
            return self._json_response(
                401, {}, values.dumps({"message": "Authentication required", "status_code": 401})
            )
        if not user.has_group("base.group_system"):
            return self._json_response(
                403, {}, values.dumps({"message": "Administrators only", "status_code": 403})
            )
        configs = None
        if endpoint:
            configs = request.env["bj.api.sync.config"].search(
                [("request_type", "=", "in"), ("endpoint", "=", endpoint)]
            )
        document = openapi.build_document(request.env, configs, base_url=request.httprequest.host_url)
        headers = {"Cache-Control": "no-store"}
        if download:
            filename = "bj_api_sync-%s-openapi.json" % (endpoint or "all")
            headers["Content-Disposition"] = 'attachment; filename="%s"' % filename
        return self._json_response(200, headers, openapi.dumps(document))

    @staticmethod
    def _read_body(httprequest, limit):
        """At most ``limit + 1`` bytes: enough to know a body is too large without holding it."""
        declared = httprequest.content_length
        if declared is not None and declared > limit:
            return b""
        # Odoo's HTTPRequest does not expose werkzeug's guarded stream; read it through the
        # wrapped request so a chunked body (no Content-Length) is cut at the limit too.
        wrapped = getattr(httprequest, "_HTTPRequest__wrapped", None)
        if wrapped is None:
            return httprequest.get_data()
        stream = wrapped.stream
        chunks, size = [], 0
        while size <= limit:
            chunk = stream.read(min(_READ_CHUNK, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        return b"".join(chunks)

    @staticmethod
    def _json_response(status, headers, body):
        headers = dict(headers or {})
        if body is not None:
            headers.setdefault("Content-Type", "application/json; charset=utf-8")
        if isinstance(body, str):
            # A lone surrogate (a client's "\ud800" quoted in an error) cannot be UTF-8: written as
            # the same JSON escape instead of failing the whole response.
            body = body.encode("utf-8", "backslashreplace")
        response = request.make_response(
            body if body is not None else b"", headers=list(headers.items()), status=status
        )
        if body is None:
            response.headers.pop("Content-Type", None)  # werkzeug's default text/html, for a 204
        return response
