"""The benchmark's short form runs and computes its ratios (no timing threshold: the
figures depend on the machine; ``python bench/run.py`` gives the real ones).

``bench/run.py --quick`` creates its own database, starts its own Odoo (``--workers 2``)
and HTTP sink, runs every scenario with small N and drops the database: about two
minutes. ``BJ_BENCH=0`` skips it.
"""

import json
import math
import os
import subprocess
import sys
import tempfile
import unittest
import uuid
from pathlib import Path

from odoo.tests import BaseCase, tagged

BENCH = Path(__file__).resolve().parents[1] / "bench" / "run.py"

SCENARIOS = {
    "inbound batch POST (": ("post", "post_tracked", "rpc", "post2", "rpc2"),
    "inbound single POST": ("post1", "rpc1"),
    "inbound GET list": ("list", "list_walk", "search_read"),
    "inbound GET by identifier": ("get", "read"),
    "inbound PUT by identifier": ("put", "write"),
    "outbound push per record": ("single", "single_nolog", "webhook"),
    "outbound push, 100 records per call": ("batched", "batched_nolog", "bulk", "bulk_nolog", "webhook"),
    "queued delivery (outbox)": ("drain", "immediate"),
    "enqueue overhead on a partner write": ("rule", "noop", "rule_now", "plain"),
    "outbox drain against a 100 ms remote": ("drain_seq", "drain_1", "drain_2", "drain_4"),
    "fast config next to a hanging one": ("fast_beside", "fast_alone"),
}


@tagged("post_install", "-at_install")
@unittest.skipIf(os.environ.get("BJ_BENCH") == "0", "BJ_BENCH=0")
class TestBench(BaseCase):
    def test_quick_bench_runs_and_computes_ratios(self):
        with tempfile.TemporaryDirectory(prefix="bj_bench_test_") as tmp:
            out = Path(tmp) / "bench.json"
            markdown = Path(tmp) / "bench.md"
            # named after the test database when one is given (a shared server: one prefix per user)
            db = "%s_bench_%s" % (os.environ.get("BJ_TEST_DB") or "bj_bench_test", uuid.uuid4().hex[:8])
            process = subprocess.run(
                [sys.executable, str(BENCH), "--quick", "--db", db, "--json", str(out), "--markdown", str(markdown)],
                capture_output=True, text=True, timeout=900, check=False,
            )
            log = (process.stdout + process.stderr)[-6000:]
            self.assertEqual(process.returncode, 0, log)
            result = json.loads(out.read_text())
            table = markdown.read_text()

        rows = result["rows"]
        for scenario, keys in SCENARIOS.items():
            found = {row["key"] for row in rows if row["scenario"].startswith(scenario)}
            self.assertEqual(found, set(keys), "scenario %r: %s" % (scenario, log))
        for row in rows:
            label = "%s / %s" % (row["scenario"], row["label"])
            self.assertGreater(row["n"], 0, label)
            self.assertEqual(row["rounds"], len(row["rates"]), label)
            self.assertGreaterEqual(row["rounds"], 2, label)  # medians over repeated rounds
            for name in ("rate", "ratio", "p50_ms", "p95_ms", "peak_rss_mb"):
                self.assertIsInstance(row[name], (int, float), label + ": " + name)
                self.assertTrue(math.isfinite(row[name]) and row[name] > 0, "%s: %s = %r" % (label, name, row[name]))
            self.assertEqual(len(row["ratios"]), row["rounds"], label)
            if row["baseline"]:
                self.assertAlmostEqual(row["ratio"], 1.0, places=6, msg=label)
            self.assertIn(row["label"], table)
        cron = result["cron"]
        for name in ("seconds", "rate", "rate_unchanged", "growth_mb", "peak_mb"):
            self.assertTrue(math.isfinite(cron[name]), name)
        self.assertGreater(cron["rate"], 0)
        # every SPEC §8 target is reported with a figure (whether it holds is the full run's business)
        self.assertGreaterEqual(len(result["checks"]), 15)
        for check in result["checks"]:
            self.assertTrue(math.isfinite(check["measured"]), check)
            self.assertIn(check["target"], table)
