/** @odoo-module **/
/**
 * Operations views in the browser (tests/test_ops.py):
 * - the Dashboard kanban: a card per configuration with its health, then its Statistics
 *   (graph of requests per hour, pivot of durations);
 * - the Sync Status dialog of a contact, opened from the form's Action menu, and its Resend.
 */

import { registry } from "@web/core/registry";

const CARD = '.o_kanban_record:contains("Dashboard Tour Config")';

registry.category("web_tour.tours").add("bj_api_sync_dashboard_tour", {
    steps: () => [
        { content: "The dashboard shows the configuration's card", trigger: `.o_kanban_view ${CARD}` },
        { content: "Its requests of the last 24 hours", trigger: `${CARD} .o_bj_dash_calls:contains(2)` },
        { content: "Half of them failed: Failing", trigger: `${CARD} .badge:contains(Failing)` },
        {
            content: "Open its statistics",
            trigger: `${CARD} button[name="action_view_request_stats"]`,
            run: "click",
        },
        { content: "Requests per hour (graph)", trigger: ".o_graph_view .o_graph_renderer canvas" },
        { content: "Switch to the pivot", trigger: ".o_switch_view.o_pivot", run: "click" },
        { content: "Duration by configuration (pivot)", trigger: '.o_pivot_view .o_pivot th:contains("Dashboard Tour Config")' },
    ],
});

registry.category("web_tour.tours").add("bj_api_sync_status_tour", {
    steps: () => [
        { content: "Open the Action menu", trigger: ".o_form_view .o_cp_action_menus button", run: "click" },
        {
            content: "Sync Status",
            trigger: '.o-dropdown--menu .dropdown-item:contains("Sync Status")',
            run: "click",
        },
        {
            content: "The configuration that synced this contact, with its remote id",
            trigger: '.modal .o_data_row:contains("Out Status"):contains("remote-")',
        },
        { content: "Resend", trigger: '.modal .o_data_row button[name="action_resend"]', run: "click" },
        { content: "Sent again", trigger: '.modal .alert-info:contains("Sent to Out Status.")' },
        { content: "Close", trigger: '.modal .modal-footer button:contains("Close")', run: "click" },
        { content: "Back on the form", trigger: ".o_form_view:not(:has(.modal))" },
    ],
});
