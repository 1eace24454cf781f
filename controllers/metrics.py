"""``GET /bj_api_sync/metrics``: Prometheus metrics (services/metrics.py).

Allowed with ``Authorization: Bearer <token>`` when the system parameter
``bj_api_sync.metrics_token`` is set, or from an administrator's session.
"""

import hmac

from odoo import SUPERUSER_ID, http
from odoo.http import request

from ..services import metrics


class BjApiSyncMetrics(http.Controller):
    @http.route("/bj_api_sync/metrics", type="http", auth="public", methods=["GET"], readonly=True,
                csrf=False, save_session=False)
    def bj_api_sync_metrics(self, **_params):
        env = request.env
        if not self._allowed(env):
            user = env.user
            status = 401 if not user or user._is_public() else 403
            headers = [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")]
            if status == 401:
                headers.append(("WWW-Authenticate", 'Bearer realm="bj_api_sync"'))
            message = "Authentication required\n" if status == 401 else "Administrators only\n"
            return request.make_response(message, headers=headers, status=status)
        body = metrics.render(env(user=SUPERUSER_ID, su=True))
        return request.make_response(
            body, headers=[("Content-Type", metrics.CONTENT_TYPE), ("Cache-Control", "no-store")]
        )

    @staticmethod
    def _allowed(env):
        token = env["ir.config_parameter"].sudo().get_param(metrics.TOKEN_PARAM) or ""
        sent = (request.httprequest.headers.get("Authorization") or "").strip()
        scheme, _sep, value = sent.partition(" ")
        if token and scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode()):
            return True
        user = env.user
        return bool(user) and not user._is_public() and user.has_group("base.group_system")
