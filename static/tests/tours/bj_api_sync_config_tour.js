/** @odoo-module **/
/**
 * Builds an inbound API configuration through the form, as an administrator would:
 * name, Request Type In, HTTP Methods GET + POST, endpoint "tour-partners", model Contact,
 * No Auth, two Configuration Lines (ID -> "id" as record identifier, Name -> "name"), save.
 * tests/test_tour.py then checks the record and calls GET /bj_api_sync/v1/tour-partners.
 */

import { registry } from "@web/core/registry";
import { stepUtils } from "@web_tour/tour_service/tour_utils";

const AUTOCOMPLETE_ITEM = ".o-autocomplete--dropdown-menu .o-autocomplete--dropdown-item a";
const LINE_ROW = 'div[name="line_ids"] .o_data_row.o_selected_row';

/** Type into a many2one/many2many input, then pick the suggestion whose whole label matches. */
function pickRecord(inputSelector, text, labelRegex, content) {
    return [
        { content: `${content}: type "${text}"`, trigger: inputSelector, run: `edit ${text}` },
        {
            content: `${content}: pick it`,
            trigger: `${AUTOCOMPLETE_ITEM}:contains(${labelRegex})`,
            run: "click",
        },
    ];
}

/** One Configuration Line: field (by its "Label (Contact)" name), Plain, external key. */
function addLine(fieldLabel, apiKey, { identifier = false } = {}) {
    const steps = [
        {
            content: `Add a configuration line for ${fieldLabel}`,
            trigger: 'div[name="line_ids"] .o_field_x2many_list_row_add a',
            run: "click",
        },
        ...pickRecord(
            `${LINE_ROW} .o_field_widget[name="field_id"] input`,
            fieldLabel,
            `/^${fieldLabel} \\(Contact\\)$/`,
            `Line field ${fieldLabel}`
        ),
        {
            content: "Value Calculation Type: Plain",
            trigger: `${LINE_ROW} .o_field_widget[name="value_type"] select`,
            run: 'select "plain"',
        },
        {
            content: `External API Key: ${apiKey}`,
            trigger: `${LINE_ROW} .o_field_widget[name="api_key"] input`,
            run: `edit ${apiKey}`,
        },
    ];
    if (identifier) {
        steps.push(
            {
                content: "Mark the line as the record identifier",
                trigger: `${LINE_ROW} .o_field_widget[name="is_record_identifier"] input:not(:checked)`,
                run: "click",
            },
            {
                content: "The identifier toggle is on",
                trigger: `${LINE_ROW} .o_field_widget[name="is_record_identifier"] input:checked`,
            }
        );
    }
    return steps;
}

registry.category("web_tour.tours").add("bj_api_sync_config_form_tour", {
    url: "/odoo/action-bj_api_sync.bj_api_sync_config_action",
    steps: () => [
        {
            content: "Create a new API configuration",
            trigger: ".o_control_panel .o_list_button_add",
            run: "click",
        },
        {
            content: "Name",
            trigger: '.o_form_view .o_field_widget[name="name"] input',
            run: "edit Tour Partners",
        },
        {
            content: "Request Type: In",
            trigger: '.o_field_widget[name="request_type"] select',
            run: 'select "in"',
        },
        ...pickRecord('.o_field_widget[name="http_method_ids"] input', "GET", "/^GET$/", "HTTP Methods GET"),
        {
            content: "GET is a tag",
            trigger: '.o_field_widget[name="http_method_ids"] .o_tag:contains(GET)',
        },
        ...pickRecord('.o_field_widget[name="http_method_ids"] input', "POST", "/^POST$/", "HTTP Methods POST"),
        {
            content: "POST is a tag",
            trigger: '.o_field_widget[name="http_method_ids"] .o_tag:contains(POST)',
        },
        {
            content: "Endpoint (visible once the Request Type is In)",
            trigger: '.o_field_widget[name="endpoint"] input',
            run: "edit tour-partners",
        },
        ...pickRecord('.o_field_widget[name="model_id"] input', "Contact", "/^Contact$/", "Model Contact"),
        {
            content: "Authorization Type: No Auth",
            trigger: '.o_field_widget[name="auth_type"] select',
            run: 'select "none"',
        },
        ...addLine("ID", "id", { identifier: true }),
        ...addLine("Name", "name"),
        ...stepUtils.saveForm(),
        {
            content: "Saved: the breadcrumb shows the name",
            trigger: ".o_breadcrumb:contains(Tour Partners)",
        },
        {
            content: "The ID line is listed",
            trigger: 'div[name="line_ids"] .o_data_row td[name="api_key"]:contains(/^id$/)',
        },
        {
            content: "The Name line is listed",
            trigger: 'div[name="line_ids"] .o_data_row td[name="api_key"]:contains(/^name$/)',
        },
    ],
});
