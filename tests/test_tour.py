from odoo.tests import HttpCase, common, tagged

from .common import API


@tagged("post_install", "-at_install")
class TestTour(HttpCase):
    """The configuration form driven in headless Chromium (static/tests/tours/bj_api_sync_config_tour.js)."""

    def setUp(self):
        super().setUp()
        # Odoo skips a tour silently without these; scripts/setup.sh installs both, so a missing
        # one is a broken set-up that must show as a failure, not as a passed (skipped) test.
        if common.websocket is None:
            self.fail("websocket-client is not installed (requirements-dev.txt)")
        try:
            common._find_executable()
        except Exception as exc:  # noqa: BLE001 - Odoo raises a bare exception when nothing is found
            self.fail("Chromium not found (apt-get install chromium): %s" % exc)

    def test_config_form_tour(self):
        Config = self.env["bj.api.sync.config"]
        self.assertFalse(Config.with_context(active_test=False).search([("endpoint", "=", "tour-partners")]))
        self.start_tour(
            "/odoo/action-bj_api_sync.bj_api_sync_config_action", "bj_api_sync_config_form_tour", login="admin"
        )

        config = Config.search([("endpoint", "=", "tour-partners")])
        self.assertEqual(len(config), 1)
        self.assertEqual(config.name, "Tour Partners")
        self.assertEqual(config.request_type, "in")
        self.assertEqual(sorted(config.http_method_ids.mapped("name")), ["GET", "POST"])
        self.assertEqual(config.model_id.model, "res.partner")
        self.assertEqual(config.auth_type, "none")
        self.assertEqual(config.user_id, self.env.ref("base.user_admin"))
        lines = config.line_ids.sorted("sequence")
        self.assertEqual(
            [(line.field_id.name, line.value_type, line.api_key, line.is_record_identifier) for line in lines],
            [("id", "plain", "id", True), ("name", "plain", "name", False)],
        )

        # The endpoint built through the UI serves at once, without authentication.
        response = self.url_open(API + "/tour-partners")
        self.assertEqual(response.status_code, 200, response.text[:2000])
        self.assertTrue(response.headers["Content-Type"].startswith("application/json"))
        records = response.json()
        self.assertIsInstance(records, list)
        self.assertTrue(records)
        self.assertEqual(set(records[0]), {"id", "name"})
        self.assertGreaterEqual(int(response.headers["X-Total-Count"]), len(records))
        # POST is among the methods chosen in the form; PUT is not.
        response = self.url_open(API + "/tour-partners", data='{"name": "Created after the tour"}',
                                 headers={"Content-Type": "application/json"})
        self.assertEqual(response.status_code, 201, response.text[:2000])
        self.assertEqual(response.json()["name"], "Created after the tour")
        response = self.opener.request("PUT", self.base_url() + API + "/tour-partners/%s" % records[0]["id"],
                                       data="{}", headers={"Content-Type": "application/json"}, timeout=60)
        self.assertEqual(response.status_code, 405, response.text[:2000])
