"""What the tests of lib.http_client and lib.ssrf share (not a test module: pytest collects test_*.py)."""

import datetime

LOOPBACK = "127.0.0.1/32"
UTC = datetime.timezone.utc  # noqa: UP017 - keep Python 3.10 (Odoo 18)


class SleepRecorder:
    def __init__(self):
        self.calls = []

    def __call__(self, seconds):
        self.calls.append(seconds)
