import logging
from urllib.parse import urlsplit

from odoo import api, fields, models, tools
from odoo.exceptions import UserError, ValidationError
from odoo.tools.safe_eval import datetime as safe_datetime
from odoo.tools.safe_eval import dateutil, safe_eval
from odoo.tools.safe_eval import time as safe_time

from ..lib.api import ENDPOINT_RE, endpoint_path
from ..services import auth, buttons, deletes, push, triggers
from .bj_api_sync_secret_mixin import MASK

_logger = logging.getLogger(__name__)

# Written by the deliveries themselves (circuit breaker, scheduled sync, OAuth2 token) or by
# every write: never in the configuration cache (``_cached_values``), and writing only them
# does not clear it.
DELIVERY_STATE_FIELDS = frozenset(
    {"consecutive_failures", "paused", "pause_reason", "next_probe_at", "last_sync_at",
     "oauth2_token_encrypted", "oauth2_token_expires_at", "write_date", "write_uid"}
)
OAUTH2_CREDENTIALS = frozenset(
    {"auth_type", "oauth2_token_url", "oauth2_client_id", "oauth2_client_secret", "oauth2_scope", "oauth2_audience",
     "oauth2_client_auth"}
)


class BjApiSyncConfig(models.Model):
    _name = "bj.api.sync.config"
    _description = "API Configuration"
    _inherit = ["mail.thread", "mail.activity.mixin", "bj.api.sync.secret.mixin"]
    _order = "name, id"

    _bj_secret_fields = {
        "password": "password_encrypted",
        "bearer_token": "bearer_token_encrypted",
        "hmac_secret": "hmac_secret_encrypted",
        "oauth2_client_secret": "oauth2_client_secret_encrypted",
    }

    # ------------------------------------------------------------------ identity
    name = fields.Char(required=True, tracking=True, help="Descriptive name of this API configuration.")
    active = fields.Boolean(
        default=True,
        tracking=True,
        help="Archived configurations serve 404 on their endpoint and never trigger.",
    )
    request_type = fields.Selection(
        [("in", "In"), ("out", "Out")],
        required=True,
        tracking=True,
        help="In: Odoo exposes an endpoint that external systems call. "
        "Out: Odoo calls the external Request URL.",
    )
    http_method_ids = fields.Many2many(
        "bj.http.method",
        string="HTTP Methods",
        help="In: the methods the endpoint accepts. Out: exactly one method used to call the external API "
        "(GET pulls data into Odoo).",
    )
    has_write_back = fields.Boolean(
        string="Writes Back",
        compute="_compute_has_write_back",
        store=True,
        help="An Out configuration with lines of Direction In: their values are taken from the remote's "
        "answer to a push and written on the record. Stored, so that a push without such lines reads "
        "no line to know it.",
    )
    has_headers = fields.Boolean(
        compute="_compute_has_headers",
        store=True,
        help="Whether the configuration has Headers rows: read with the configuration's row, so that "
        "a request of a configuration without headers (most) reads no header row to know it.",
    )
    method_names = fields.Char(
        compute="_compute_method_names",
        store=True,
        help="The HTTP methods' names, comma-separated: read with the configuration's row, where "
        "every request would otherwise read the relation and the methods.",
    )
    endpoint = fields.Char(
        tracking=True,
        help="Path segment of the inbound endpoint: /bj_api_sync/v1/<endpoint>. "
        "Letters, digits, '-' and '_' only; unique among inbound configurations.",
    )
    url = fields.Char(
        string="Request URL",
        tracking=True,
        help="Full URL of the external API (http or https). May contain {api_key} placeholders "
        "filled from the record's payload, e.g. https://api.example.com/customers/{customer_id}.",
    )
    connect_timeout = fields.Integer(
        string="Connection Timeout in Seconds",
        default=5,
        help="Maximum time to establish the connection to the external API (1-60 s).",
    )
    read_timeout = fields.Integer(
        string="Read Timeout in Seconds",
        default=15,
        help="Maximum time to wait for the external API's response (1-300 s).",
    )

    # ------------------------------------------------------------ authentication
    auth_type = fields.Selection(
        [
            ("none", "No Auth"),
            ("basic", "Basic Auth"),
            ("bearer", "Bearer Token"),
            ("hmac", "HMAC Signature"),
            ("oauth2", "OAuth2 Client Credentials"),
        ],
        string="Authorization Type",
        tracking=True,
        help="How requests are authenticated. HMAC Signature follows the Standard Webhooks "
        "specification (webhook-id, webhook-timestamp, webhook-signature headers). "
        "OAuth2 Client Credentials (outbound only): a token is requested from the Token URL, "
        "cached until it expires and sent as a Bearer token.",
    )
    login = fields.Char(help="User name for Basic Auth.")
    password = fields.Char(
        compute="_compute_secret_masks",
        inverse="_inverse_password",
        help="Password for Basic Auth. Stored encrypted; never shown again once saved.",
    )
    bearer_token = fields.Char(
        compute="_compute_secret_masks",
        inverse="_inverse_bearer_token",
        help="Token for Bearer Token authentication (without the 'Bearer ' prefix; a typed "
        "prefix is removed). Stored encrypted.",
    )
    hmac_secret = fields.Char(
        string="HMAC Secret",
        compute="_compute_secret_masks",
        inverse="_inverse_hmac_secret",
        help="Signing secret (whsec_<base64>, at least 24 random bytes). Stored encrypted.",
    )
    oauth2_token_url = fields.Char(
        string="Token URL",
        help="OAuth2: the authorization server's token endpoint, e.g. "
        "https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token.",
    )
    oauth2_client_id = fields.Char(string="Client ID", help="OAuth2: the client (application) id.")
    oauth2_client_secret = fields.Char(
        string="Client Secret",
        compute="_compute_secret_masks",
        inverse="_inverse_oauth2_client_secret",
        help="OAuth2: the client secret. Stored encrypted; never shown again once saved.",
    )
    oauth2_scope = fields.Char(
        string="Scope",
        help="OAuth2: the scopes asked, separated by spaces (https://graph.microsoft.com/.default); "
        "empty: none is sent.",
    )
    oauth2_audience = fields.Char(
        string="Audience",
        help="OAuth2: the audience parameter some servers require (Auth0: the API identifier); "
        "empty: not sent.",
    )
    oauth2_client_auth = fields.Selection(
        [("body", "Credentials in Body"), ("basic", "HTTP Basic Header")],
        string="Client Authentication",
        default="body",
        help="OAuth2: how the client authenticates to the token endpoint. Credentials in Body sends "
        "client_id and client_secret in the form (client_secret_post: Microsoft Entra, Auth0, Salesforce); "
        "HTTP Basic Header sends them in an Authorization: Basic header (client_secret_basic).",
    )
    oauth2_token_encrypted = fields.Char(copy=False, groups="base.group_system")
    oauth2_token_expires_at = fields.Datetime(
        string="Token Valid Until",
        copy=False,
        readonly=True,
        help="OAuth2: when the cached access token expires. It is shared by every worker and refreshed "
        "before then, or at once when the API answers 401.",
    )
    password_encrypted = fields.Char(copy=False, groups="base.group_system")
    bearer_token_encrypted = fields.Char(copy=False, groups="base.group_system")
    hmac_secret_encrypted = fields.Char(copy=False, groups="base.group_system")
    oauth2_client_secret_encrypted = fields.Char(copy=False, groups="base.group_system")

    # ---------------------------------------------------------------- paging
    limit = fields.Integer(
        default=100,
        help="In: maximum number of records a GET returns per page (0 = no cap). "
        "Out: maximum number of records sent or pulled per run (0 = no cap).",
    )
    is_paginated = fields.Boolean(
        string="Is paginated?",
        help="In: GET lists return Page Size records by default. "
        "Out: records are sent as JSON arrays of Page Size records; pulls page through the remote list.",
    )
    page_size = fields.Integer(default=100, help="Records per page (inbound) or per batch (outbound).")
    pagination_style = fields.Selection(
        [
            ("offset", "Limit / Offset"),
            ("page", "Page Number"),
            ("link", "Link Header"),
            ("cursor", "Cursor"),
            ("next_url", "Next URL in Body"),
        ],
        default="offset",
        required=True,
        help="How a paginated pull (Out + GET) walks the remote list. "
        "Limit / Offset: ?limit=100&offset=0, 100, … until an empty or short page. "
        "Page Number: ?page=1, 2, … of Page Size items until an empty or short page (WooCommerce). "
        "Link Header: follows Link: <…>; rel=\"next\" until there is none (GitHub, Shopify). "
        "Cursor: sends the value found at Cursor Path in each answer as the Cursor Parameter until it "
        "is absent (HubSpot, Stripe). Next URL in Body: follows the URL found at Next URL Path until it "
        "is absent (Microsoft Graph, Salesforce).",
    )
    size_param = fields.Char(
        string="Page Size Parameter",
        default="limit",
        help="Query parameter carrying Page Size (limit, per_page, _limit, $top…); empty: not sent.",
    )
    offset_param = fields.Char(
        string="Offset Parameter",
        default="offset",
        help="Limit / Offset: query parameter carrying the offset (offset, _start, skip…).",
    )
    page_param = fields.Char(
        string="Page Parameter",
        default="page",
        help="Page Number and Link Header: query parameter carrying the page number (page, _page…). "
        "Link Header sends page=1 on the first request only; empty: not sent (Shopify).",
    )
    cursor_param = fields.Char(
        string="Cursor Parameter",
        default="cursor",
        help="Cursor: query parameter carrying the cursor of the next page (after for HubSpot, "
        "starting_after for Stripe).",
    )
    cursor_path = fields.Char(
        help="Cursor: where the next cursor is in the JSON answer, as a dotted path "
        "(paging.next.after for HubSpot, data.-1.id for Stripe: -1 is the last item of a list). "
        "The pull stops when it is absent or empty.",
    )
    next_url_path = fields.Char(
        string="Next URL Path",
        help="Next URL in Body: where the next page's URL is in the JSON answer, as a dotted path "
        "(@odata.nextLink for Microsoft Graph, nextRecordsUrl for Salesforce, links.next). A key that "
        "contains dots is found whole. Relative URLs are resolved against the current page's.",
    )

    # ---------------------------------------------------------------- model
    model_id = fields.Many2one(
        "ir.model",
        required=True,
        ondelete="cascade",
        tracking=True,
        help="The Odoo model synchronized by this configuration.",
    )
    model_name = fields.Char(related="model_id.model", store=True, string="Model Name")
    trigger_model = fields.Selection(
        [
            ("ir.cron", "Scheduled Action"),
            ("base.automation", "Automation Rule"),
            ("ir.actions.server", "Server Action"),
        ],
        string="Trigger Action Model",
        help="Kind of Odoo action that triggers this outbound configuration. "
        "Use Create Trigger to generate it.",
    )
    trigger_action_id = fields.Many2oneReference(
        model_field="trigger_model",
        help="The scheduled action, automation rule or server action that calls this configuration.",
    )
    propagate_deletes = fields.Boolean(
        string="Propagate Deletions",
        help="Create Trigger also creates an automation rule 'On deletion': a record deleted in Odoo is "
        "deleted on the remote with DELETE on the Delete URL, if the remote knows it (it has a Sync "
        "Binding). Queued delivery sends the DELETE only once the deletion is committed.",
    )
    delete_url = fields.Char(
        string="Delete URL",
        help="Where DELETE goes, with {remote_id} (the record's External ID in its Sync Binding) and any "
        "{api_key} of the record's payload, e.g. https://api.example.com/customers/{remote_id}.json. "
        "Empty: the Request URL followed by /{remote_id} (with placeholders: the Request URL, its "
        "record identifier's placeholder filled with the remote identifier).",
    )
    delete_trigger_id = fields.Many2one(
        "base.automation",
        string="Deletion Rule",
        copy=False,
        readonly=True,
        ondelete="set null",
        help="The automation rule 'On deletion' made by Create Trigger for Propagate Deletions.",
    )
    filter_domain = fields.Char(
        default="[]",
        help="Restricts the records synchronized or exposed. Evaluated with datetime, time, "
        "relativedelta, timedelta, context_today, uid and user, e.g. "
        "[('write_date', '>=', (datetime.datetime.now() - relativedelta(hours=1)).strftime('%Y-%m-%d %H:%M:%S'))].",
    )
    company_id = fields.Many2one(
        "res.company",
        required=True,
        default=lambda self: self.env.company,
        help="Company owning this configuration; inbound requests run in this company.",
    )
    user_id = fields.Many2one(
        "res.users",
        string="Run As",
        default=lambda self: self.env.user,
        help="Inbound requests are executed with this user's access rights.",
    )

    # ---------------------------------------------------------------- content
    line_ids = fields.One2many("bj.api.sync.config.line", "config_id", string="Configuration Lines", copy=True)
    header_ids = fields.One2many("bj.api.sync.header", "config_id", string="Headers", copy=True)
    param_ids = fields.One2many("bj.api.sync.param", "config_id", string="Parameters", copy=True)

    # ---------------------------------------------------------------- delivery
    delivery = fields.Selection(
        [("immediate", "Immediate"), ("queued", "Queued")],
        default="immediate",
        required=True,
        help="Immediate: send during the triggering transaction, with retries. "
        "Queued: write Sync Jobs in the transaction; a worker sends them with retries that survive restarts.",
    )
    max_retries = fields.Integer(default=3, help="Retries after a failed attempt (0 = one attempt only).")
    retry_backoff = fields.Integer(
        string="Retry Backoff (s)",
        default=2,
        help="Base of the exponential backoff between retries: backoff * 2^attempt seconds, with jitter.",
    )
    max_consecutive_failures = fields.Integer(
        default=20,
        help="After this many failed deliveries in a row the configuration pauses (0 = never).",
    )
    max_parallel_requests = fields.Integer(
        default=4,
        help="Requests this configuration's remote receives at once, at most: queued jobs over every "
        "worker of the database, and the requests of one immediate call or scheduled sync. A remote "
        "that keeps timing out gets fewer by itself until it answers again. Raise it for an API that "
        "accepts more (its documented concurrency or rate limit), lower it to 1 for one that must "
        "receive requests one at a time.",
    )
    consecutive_failures = fields.Integer(readonly=True, copy=False)
    paused = fields.Boolean(
        default=False,
        tracking=True,
        copy=False,
        help="A paused configuration sends nothing; queued jobs wait. Set automatically by the circuit breaker.",
    )
    pause_reason = fields.Selection(
        [("manual", "Manual"), ("circuit", "Circuit Breaker"), ("neutralized", "Neutralized Database")],
        copy=False,
        help="Why the configuration is paused. Only a circuit-breaker pause is lifted by a successful probe.",
    )
    next_probe_at = fields.Datetime(
        copy=False, help="Circuit breaker: when the worker next tries one pending job to see if the remote is back."
    )
    responsible_id = fields.Many2one(
        "res.users",
        default=lambda self: self.env.user,
        help="Told (activity and chatter) when the configuration pauses or jobs fail.",
    )
    last_sync_at = fields.Datetime(
        string="Last Sync",
        copy=False,
        readonly=True,
        help="Start of the last pull that went through the whole remote list without a failure. "
        "{last_sync} in the Request URL stands for it minus the Overlap, in ISO 8601 UTC "
        "(2024-05-01T12:00:00Z); before the first such pull, or after Reset, for 1970-01-01T00:00:00Z.",
    )
    sync_overlap = fields.Integer(
        string="Overlap (s)",
        default=300,
        help="Seconds subtracted from Last Sync in {last_sync}: records changed on the remote at the "
        "boundary (same timestamp, clocks apart, late commits) are asked again rather than lost. "
        "Unchanged records are not written again.",
    )
    response_root = fields.Char(
        help="Where the list is in a pulled JSON body, as a dotted path (data, items, data.items, "
        "value); empty = the body itself. For a push, where the record is in the remote's answer "
        "for write-back (customer for Shopify, data for Pipedrive).",
    )
    delete_mode = fields.Selection(
        [("unlink", "Delete"), ("archive", "Archive")],
        default="unlink",
        required=True,
        help="What DELETE does on an inbound endpoint.",
    )
    log_payloads = fields.Boolean(
        default=True,
        help="Keep request and response bodies in the logs. Unchecked: only metadata is logged.",
    )
    rate_limit = fields.Integer(
        help="Inbound requests per minute allowed for this endpoint, shared by all workers (0 = unlimited).",
    )
    track_batch_history = fields.Boolean(
        string="Track History of Batches",
        help="Like the option 'Track history during import' of Odoo's import: unchecked (the default), "
        "records created or updated by a batch (a POST of a JSON array) get no creation message, "
        "followers or tracked changes in their chatter, which makes batches about twice as fast. "
        "Requests with one object are always tracked.",
    )

    # ---------------------------------------------------------------- relations & health
    log_ids = fields.One2many("bj.api.log", "config_id", string="Logs")
    job_ids = fields.One2many("bj.api.sync.job", "config_id", string="Sync Jobs")
    log_count = fields.Integer(compute="_compute_counts")
    job_count = fields.Integer(compute="_compute_counts")
    health_calls = fields.Integer(string="Calls (24 h)", compute="_compute_health")
    health_errors = fields.Integer(string="Errors (24 h)", compute="_compute_health")
    health_p50 = fields.Integer(string="p50 Latency (ms)", compute="_compute_health")
    health_p95 = fields.Integer(string="p95 Latency (ms)", compute="_compute_health")
    pending_job_count = fields.Integer(string="Pending Jobs", compute="_compute_counts")
    failed_job_count = fields.Integer(string="Failed Jobs", compute="_compute_counts")
    full_url = fields.Char(string="Full URL", compute="_compute_full_url")

    _sql_constraints = [
        ("limit_positive", 'CHECK("limit" >= 0)', "The limit cannot be negative."),
        ("page_size_positive", "CHECK(page_size >= 0)", "The page size cannot be negative."),
        ("max_retries_positive", "CHECK(max_retries >= 0)", "Max retries cannot be negative."),
        ("retry_backoff_positive", "CHECK(retry_backoff >= 0)", "Retry backoff cannot be negative."),
        ("rate_limit_positive", "CHECK(rate_limit >= 0)", "The rate limit cannot be negative."),
        ("sync_overlap_positive", "CHECK(sync_overlap >= 0)", "The overlap cannot be negative."),
        (
            "max_parallel_requests_positive",
            "CHECK(max_parallel_requests >= 1)",
            "Max Parallel Requests must be at least 1.",
        ),
    ]

    # ---------------------------------------------------------------- secrets
    @api.depends(
        "password_encrypted", "bearer_token_encrypted", "hmac_secret_encrypted", "oauth2_client_secret_encrypted"
    )
    def _compute_secret_masks(self):
        return super()._compute_secret_masks()

    def _inverse_password(self):
        for config in self:
            config._bj_store_secret("password", config.password)

    def _inverse_bearer_token(self):
        for config in self:
            config._bj_store_secret("bearer_token", config.bearer_token)

    def _inverse_hmac_secret(self):
        for config in self:
            config._bj_store_secret("hmac_secret", config.hmac_secret)

    def _inverse_oauth2_client_secret(self):
        for config in self:
            config._bj_store_secret("oauth2_client_secret", config.oauth2_client_secret)

    def _bj_normalize_secret(self, field_name, value):
        value = super()._bj_normalize_secret(field_name, value)
        if field_name == "bearer_token" and value:
            value = auth.strip_bearer(value)  # the rule the inbound check applies to both sides
        return value

    # ---------------------------------------------------------------- computes
    def _compute_counts(self):
        Log = self.env["bj.api.log"].sudo()
        Job = self.env["bj.api.sync.job"].sudo()
        log_counts = dict(Log._read_group([("config_id", "in", self.ids)], ["config_id"], ["__count"]))
        job_counts = {}
        for config, state, count in Job._read_group(
            [("config_id", "in", self.ids)], ["config_id", "state"], ["__count"]
        ):
            job_counts.setdefault(config, {})[state] = count
        for config in self:
            config.log_count = log_counts.get(config, 0)
            states = job_counts.get(config, {})
            config.job_count = sum(states.values())
            config.pending_job_count = states.get("pending", 0) + states.get("running", 0)
            config.failed_job_count = states.get("failed", 0)

    def _compute_health(self):
        stats = {}
        if self.ids:
            # Percentiles have no ORM equivalent: one aggregate query for all configs.
            self.env["bj.api.log"].flush_model(["config_id", "duration_ms", "status", "create_date"])
            self.env.cr.execute(
                """
                SELECT config_id, count(*),
                       count(*) FILTER (WHERE status = 'error'),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms),
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY duration_ms)
                  FROM bj_api_log
                 WHERE config_id IN %s AND create_date >= now() at time zone 'utc' - interval '24 hours'
                 GROUP BY config_id
                """,
                [tuple(self.ids)],
            )
            stats = {row[0]: row[1:] for row in self.env.cr.fetchall()}
        for config in self:
            calls, errors, p50, p95 = stats.get(config.id, (0, 0, 0, 0))
            config.health_calls = calls
            config.health_errors = errors
            config.health_p50 = int(p50 or 0)
            config.health_p95 = int(p95 or 0)

    @api.depends("endpoint", "request_type")
    def _compute_full_url(self):
        base = self.env["ir.config_parameter"].sudo().get_param("web.base.url", "")
        for config in self:
            config.full_url = (
                base.rstrip("/") + endpoint_path(config.endpoint)
                if config.request_type == "in" and config.endpoint
                else False
            )

    # ---------------------------------------------------------------- constraints
    @api.constrains("request_type", "http_method_ids")
    def _check_http_methods(self):
        for config in self:
            if config.request_type == "out" and len(config.http_method_ids) != 1:
                raise ValidationError(
                    self.env._("Outbound configuration '%s' must have exactly one HTTP method.", config.name)
                )

    @api.constrains("request_type", "endpoint", "active")
    def _check_endpoint(self):
        for config in self.filtered(lambda c: c.request_type == "in"):
            if not config.endpoint or not ENDPOINT_RE.fullmatch(config.endpoint):
                raise ValidationError(
                    self.env._(
                        "The endpoint of '%s' must be made of letters, digits, '-' and '_' only "
                        "(it becomes /bj_api_sync/v1/<endpoint>).",
                        config.name,
                    )
                )
            duplicate = self.with_context(active_test=False).search_count(
                [("id", "!=", config.id), ("request_type", "=", "in"), ("endpoint", "=", config.endpoint)],
                limit=1,
            )
            if duplicate:
                raise ValidationError(
                    self.env._("Another inbound configuration already uses the endpoint '%s'.", config.endpoint)
                )

    @api.constrains("request_type", "url")
    def _check_url(self):
        for config in self.filtered(lambda c: c.request_type == "out"):
            parts = urlsplit(config.url or "")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValidationError(
                    self.env._("The Request URL of '%s' must be an http:// or https:// URL.", config.name)
                )

    @api.constrains("request_type", "auth_type", "oauth2_token_url")
    def _check_oauth2(self):
        for config in self.filtered(lambda c: c.auth_type == "oauth2"):
            if config.request_type != "out":
                raise ValidationError(
                    self.env._("OAuth2 Client Credentials authenticates outbound requests only ('%s').", config.name)
                )
            parts = urlsplit(config.oauth2_token_url or "")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValidationError(
                    self.env._("The Token URL of '%s' must be an http:// or https:// URL.", config.name)
                )

    @api.constrains("connect_timeout", "read_timeout")
    def _check_timeouts(self):
        for config in self:
            if not 1 <= config.connect_timeout <= 60:
                raise ValidationError(self.env._("The connection timeout must be between 1 and 60 seconds."))
            if not 1 <= config.read_timeout <= 300:
                raise ValidationError(self.env._("The read timeout must be between 1 and 300 seconds."))

    @api.constrains("line_ids")
    def _check_record_identifier(self):
        for config in self:
            identifiers = config.line_ids.filtered("is_record_identifier")
            if config.line_ids and len(identifiers) != 1:
                raise ValidationError(
                    self.env._(
                        "Configuration '%(name)s' must have exactly one line marked Is Record Identifier "
                        "(it has %(count)s).",
                        name=config.name,
                        count=len(identifiers),
                    )
                )

    @api.constrains("filter_domain", "model_id")
    def _check_filter_domain(self):
        for config in self:
            try:
                domain = config._get_filter_domain()
                self.env[config.model_id.model].sudo()._where_calc(domain)
            except Exception as exc:  # noqa: BLE001 - any evaluation error is a user error here
                raise ValidationError(
                    self.env._("The Filter Domain of '%(name)s' is invalid: %(error)s", name=config.name, error=exc)
                ) from None

    # ---------------------------------------------------------------- ORM
    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("paused") and not vals.get("pause_reason"):
                vals["pause_reason"] = "manual"
        configs = super().create(vals_list)
        configs._post_secret_changes(set().union(*(vals.keys() for vals in vals_list)))
        configs._forget_cached_configs(())
        return configs

    def write(self, vals):
        if vals.get("paused") and "pause_reason" not in vals:
            vals = dict(vals, pause_reason="manual")
        changed = set(vals) & OAUTH2_CREDENTIALS
        if vals.get("oauth2_client_secret") == MASK:
            changed.discard("oauth2_client_secret")  # the form sent the mask back unchanged
        if changed:
            # another client, secret, server or scope: the cached token is not theirs
            vals = dict(vals, oauth2_token_encrypted=False, oauth2_token_expires_at=False)
        result = super().write(vals)
        self._forget_cached_configs(vals)
        self._post_secret_changes(vals.keys())
        if "model_id" in vals:
            self._check_lines_model()
        return result

    @api.ondelete(at_uninstall=False)
    def _unlink_except_used_as_mapping_model(self):
        """A configuration another one still uses as Mapping Model is refused with a message
        naming the line (never the database's foreign-key error: the line's Mapping Model is
        ``ondelete='restrict'``). Skipped at uninstall, where everything goes."""
        user = self.env["bj.api.sync.config.line"].sudo().search(
            [("mapping_config_id", "in", self.ids), ("config_id", "not in", self.ids)], limit=1
        )
        if user:
            raise UserError(
                self.env._(
                    "Configuration '%(config)s' is the Mapping Model of line '%(line)s' of configuration "
                    "'%(user)s': remove that line or delete both configurations together.",
                    config=user.mapping_config_id.name,
                    line=user.api_key,
                    user=user.config_id.name,
                )
            )

    def unlink(self):
        """Deleted together, the lines between the deleted configurations go first, so the
        order of the recordset does not matter."""
        lines = self.env["bj.api.sync.config.line"].sudo().search(
            [("config_id", "in", self.ids), ("mapping_config_id", "in", self.ids)]
        )
        lines.unlink()
        # a deletion rule left behind would make every deletion of its model fail
        triggers.owned_delete_rules(self.sudo()).unlink()
        self._forget_cached_configs(())
        return super().unlink()

    def copy_data(self, default=None):
        vals_list = super().copy_data(default=default)
        for config, vals in zip(self, vals_list):
            if config.request_type == "in" and "endpoint" not in (default or {}):
                vals["endpoint"] = "%s-copy" % config.endpoint
            vals["name"] = self.env._("%s (copy)", config.name)
        return vals_list

    def _post_secret_changes(self, changed):
        """Chatter trace of secret changes, never the value."""
        labels = [
            self._fields[name].get_description(self.env)["string"]
            for name in self._bj_secret_fields
            if name in changed
        ]
        if labels:
            for config in self:
                config.message_post(body=self.env._("Secret changed: %s.", ", ".join(labels)))

    def _check_lines_model(self):
        for config in self:
            wrong = config.line_ids.filtered(lambda line, model=config.model_id: line.field_id.model_id != model)
            if wrong:
                raise ValidationError(
                    self.env._("Change of model: remove the lines whose field belongs to another model first.")
                )

    @api.onchange("request_type")
    def _onchange_request_type(self):
        if self.request_type == "out" and len(self.http_method_ids) > 1:
            self.http_method_ids = self.http_method_ids[:1]

    # ---------------------------------------------------------------- helpers
    def _get_filter_domain(self):
        """The Filter Domain as a list, evaluated with the documented time-aware context."""
        self.ensure_one()
        context = {
            "datetime": safe_datetime,
            "time": safe_time,
            "relativedelta": dateutil.relativedelta.relativedelta,
            "timedelta": safe_datetime.timedelta,
            "context_today": lambda: fields.Date.context_today(self),
            "uid": self.env.uid,
            "user": self.env.user,
        }
        return list(safe_eval(self.filter_domain or "[]", context))

    def _get_identifier_line(self):
        self.ensure_one()
        return self.line_ids.filtered("is_record_identifier")[:1]

    @api.model
    def _resolve_config(self, config_id_ref):
        """A config from an id, a record or an XML id (BJET's ``config_id_ref``)."""
        if isinstance(config_id_ref, models.BaseModel):
            config = config_id_ref
        elif isinstance(config_id_ref, str) and not config_id_ref.isdigit():
            config = self.env.ref(config_id_ref)
        else:
            config = self.browse(int(config_id_ref))
        if config._name != self._name or len(config) != 1 or not config._load_cached_values():
            raise UserError(self.env._("API configuration %s does not exist.", config_id_ref))
        return config

    def _load_cached_values(self):
        """The configuration's settings put in the cache from the registry's (no query);
        False when it does not exist.

        Every outbound call (each save firing an automation rule, each cron run) starts
        here. Any change of a configuration, of its lines, Headers rows or HTTP methods
        clears that cache in every worker (``_forget_cached_configs``); the fields the
        deliveries write (``DELIVERY_STATE_FIELDS``) are not in it and are read when used.
        """
        self.ensure_one()
        found, cached = self._cached_values(self.id)
        self._put_in_cache(cached)
        return found

    @api.model
    @tools.ormcache("config_id")
    def _cached_values(self, config_id):
        fnames = [
            name for name, field in self._fields.items()
            if field.store and field.column_type and field.prefetch is True and name not in DELIVERY_STATE_FIELDS
        ]
        self.flush_model(fnames)  # values computed or written in this transaction, not yet in the table
        config = self.sudo().with_context(active_test=False).search_fetch([("id", "=", config_id)], fnames)
        if not config:
            return False, ()
        return True, config._cached_pairs(fnames)

    @api.depends("request_type", "line_ids.direction")
    def _compute_has_write_back(self):
        for config in self:
            config.has_write_back = config.request_type == "out" and "in" in config.line_ids.mapped("direction")

    @api.depends("header_ids")
    def _compute_has_headers(self):
        for config in self:
            config.has_headers = bool(config.header_ids)

    # ---------------------------------------------------------------- inbound lookup
    @api.model
    def _inbound_config(self, endpoint, fnames):
        """The active inbound configuration of ``endpoint`` with ``fnames`` in the cache (or none).

        Every inbound request starts here: the values come from a registry cache (no query)
        which any change of a configuration, of its Headers rows or of an HTTP method clears,
        in every worker (Odoo's cache signaling), as Odoo does for its access rules.
        """
        config_id, cached = self._inbound_config_values(endpoint, tuple(fnames))
        config = self.browse(config_id)
        if config_id:
            config._put_in_cache(cached)
        return config

    @api.model
    @tools.ormcache("endpoint", "fnames")
    def _inbound_config_values(self, endpoint, fnames):
        self.flush_model(fnames)
        config = self.sudo().with_context(active_test=True).search_fetch(
            [("request_type", "=", "in"), ("endpoint", "=", endpoint)], list(fnames), limit=1
        )
        if not config:
            return 0, ()
        return config.id, config._cached_pairs(fnames)

    def _cached_pairs(self, fnames):
        """``((fname, value in cache format), ...)`` of a fetched configuration: what the registry caches keep."""
        return tuple((fname, self.env.cache.get(self, self._fields[fname])) for fname in fnames)

    def _put_in_cache(self, cached):
        """Values from ``_cached_pairs`` into this environment's cache, where nothing fresher is."""
        for fname, value in cached:
            self.env.cache.insert_missing(self, self._fields[fname], [value])

    def _forget_cached_configs(self, fnames=None):
        """Clear the configuration caches (inbound lookup, outbound settings) now and again
        once the change commits (a request served meanwhile by another thread may have
        cached the values it still saw) or rolls back.

        ``fnames``: the written fields; a write of the deliveries' own fields only
        (``DELIVERY_STATE_FIELDS``: failure counters, pauses, tokens) clears nothing, as the
        cache is the registry's and a failing remote must not flush it on every attempt.
        """
        if fnames and set(fnames) <= DELIVERY_STATE_FIELDS:
            return
        self.env.registry.clear_cache()
        self.env.cr.postcommit.add(self.env.registry.clear_cache)
        # values this transaction cached after the change, and then rolled back, must go too
        self.env.cr.postrollback.add(self.env.registry.clear_cache)

    def _header_rows(self):
        """The Headers rows: none read when the stored ``has_headers`` says there are none."""
        self.ensure_one()
        return self.header_ids if self.has_headers else self.env["bj.api.sync.header"]

    @api.depends("http_method_ids", "http_method_ids.name", "http_method_ids.sequence")
    def _compute_method_names(self):
        for config in self:
            config.method_names = ",".join(name.upper() for name in config.http_method_ids.mapped("name"))

    def _get_http_methods(self):
        """The HTTP methods' names, upper case, in the methods' order."""
        self.ensure_one()
        return [name for name in (self.method_names or "").split(",") if name]

    def _get_http_method(self):
        self.ensure_one()
        return (self._get_http_methods() or ["POST"])[0]

    # ---------------------------------------------------------------- actions
    def action_view_logs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bj_api_sync.bj_api_log_action")
        action["domain"] = [("config_id", "=", self.id)]
        action["context"] = {"default_config_id": self.id}
        return action

    def action_view_jobs(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("bj_api_sync.bj_api_sync_job_action")
        action["domain"] = [("config_id", "=", self.id)]
        action["context"] = {"default_config_id": self.id}
        return action

    def action_resume(self):
        self.write({"paused": False, "pause_reason": False, "next_probe_at": False, "consecutive_failures": 0})
        for config in self:
            config.message_post(body=self.env._("Deliveries resumed."))
        return True

    def action_reset_last_sync(self):
        """Forget Last Sync: the next pull asks for everything ({last_sync} = 1970-01-01T00:00:00Z)."""
        self.write({"last_sync_at": False})
        return True

    def action_test_connection(self):
        self.ensure_one()
        return buttons.test_connection(self)

    def action_preview_payload(self):
        self.ensure_one()
        return buttons.preview_payload(self)

    def action_create_trigger(self):
        self.ensure_one()
        return triggers.create_trigger(self)

    def action_run_now(self):
        self.ensure_one()
        return buttons.run_now(self)

    def action_download_openapi(self):
        self.ensure_one()
        return buttons.download_openapi_action(self)

    # ---------------------------------------------------------------- public entry points (BJET's)
    @api.model
    def _make_outbound_http_request(self, record_ids=None, config_id_ref=None, timeout=None, **kwargs):
        """BJET's entry point, both call styles:

        ``env['bj.api.sync.config']._make_outbound_http_request(record_ids=records, config_id_ref=config.id)``
        ``config._make_outbound_http_request(records, config.id, timeout=60)``
        """
        config = self._resolve_config(config_id_ref if config_id_ref is not None else self)
        return push.make_outbound_request(config, record_ids, timeout=timeout, **kwargs)

    @api.model
    def _propagate_deletion(self, record_ids=None, config_id_ref=None):
        """Delete ``record_ids`` on the remote (the automation rule 'On deletion' of Create Trigger calls this).

        A configuration that no longer exists logs a warning instead of raising: the deletion
        of the records must not fail for it.
        """
        try:
            config = self._resolve_config(config_id_ref if config_id_ref is not None else self)
        except UserError as exc:
            _logger.warning("bj_api_sync: deletion not propagated: %s", exc)
            return False
        return deletes.propagate(config, record_ids)

    @api.model
    def _cron_sync(self, config_id):
        """Scheduled sync of every matching record (the Create Trigger cron calls this)."""
        return push.cron_sync(self._resolve_config(config_id))
