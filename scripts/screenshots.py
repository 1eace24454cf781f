"""Screenshots of the running module (scripts/run.sh) for the README, with headless Chromium.

Usage: python scripts/screenshots.py [base_url] [out_dir]
Needs Debian's chromium and the playwright package (no browser download: /usr/bin/chromium is used).
"""

import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

BASE = sys.argv[1] if len(sys.argv) > 1 else "http://localhost:8069"
OUT = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).resolve().parent.parent / "readme" / "img")
FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


def shot(page, url, name, wait="css=.o_form_view, .o_list_view", click=None):
    page.goto(BASE + url)
    page.wait_for_selector(wait, timeout=30000)
    if click:
        page.click(click)
    page.wait_for_timeout(1200)
    page.screenshot(path=str(OUT / name), full_page=False)
    print("wrote", OUT / name)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1500, "height": 880})
        page.goto(BASE + "/web/login")
        page.fill("input[name=login]", "admin")
        page.fill("input[name=password]", "admin")
        page.click("button[type=submit]")
        page.wait_for_url("**/odoo**", timeout=30000)
        page.wait_for_timeout(1000)
        shot(page, "/odoo/action-bj_api_sync.bj_api_sync_config_action", "config-list.png")
        ids = page.evaluate(
            """async () => {
                const r = await fetch('/web/dataset/call_kw', {method: 'POST', headers: {'Content-Type': 'application/json'},
                  body: JSON.stringify({jsonrpc: '2.0', method: 'call', params: {model: 'bj.api.sync.config',
                  method: 'search_read', args: [[], ['name', 'request_type', 'endpoint']], kwargs: {}}})});
                return (await r.json()).result;
            }"""
        )
        for config in ids:
            if config["request_type"] == "in":
                name = "config-form-in-%s.png" % config["endpoint"]
            else:
                name = "config-form-out.png"
            shot(page, "/odoo/action-bj_api_sync.bj_api_sync_config_action/%s" % config["id"], name)
        shot(page, "/odoo/action-bj_api_sync.bj_api_log_action", "logs-list.png")
        browser.close()


if __name__ == "__main__":
    main()
