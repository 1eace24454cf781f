{
    "name": "BJET API Synchronization",
    "summary": "Connect Odoo to any REST API in both directions: inbound endpoints, "
    "outbound sync, field mapping, scripts, durable delivery and logs",
    "version": "18.0.1.0.0",
    "category": "Technical",
    "license": "LGPL-3",
    "author": "bj_api_sync contributors",
    "website": "https://github.com/bj-api-sync/bj_api_sync",
    "depends": ["base", "mail", "base_automation"],
    "external_dependencies": {"python": ["requests", "cryptography"]},
    "data": [
        "security/bj_api_sync_security.xml",
        "security/ir.model.access.csv",
        "data/bj_http_method_data.xml",
        "data/ir_cron_data.xml",
        "views/bj_api_sync_config_views.xml",
        "views/bj_api_sync_config_line_views.xml",
        "views/bj_api_log_views.xml",
        "views/bj_api_sync_job_views.xml",
        "views/bj_api_sync_binding_views.xml",
        "views/bj_http_method_views.xml",
        "wizard/bj_api_sync_import_wizard_views.xml",
        "views/bj_api_sync_menus.xml",
        "views/bj_api_sync_client_views.xml",
        "wizard/bj_api_sync_status_views.xml",
        "views/bj_api_sync_dashboard_views.xml",
    ],
    "demo": [
        "demo/bj_api_sync_demo.xml",
    ],
    "assets": {
        "web.assets_tests": [
            "bj_api_sync/static/tests/tours/*.js",
        ],
    },
}
