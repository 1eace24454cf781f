#!/usr/bin/env python3
"""Outbox drain against immediate delivery of the same records, in one process, rounds balanced.

The full run (``bench/run.py``) measures the drain in two rounds of 10,000 jobs among other
scenarios; this script isolates it to compare worker settings, alternating their order every
round (the second drain of a round finds the first one's dead row versions vacuumed or not).
Works on a database made by ``python bench/run.py --keep --db NAME``.

    python bench/outbox_ab.py --db NAME --jobs 3000 --rounds 6 --claims 100:25,250:60

``--claims``: ``batch:prefetch`` pairs (jobs per claim, ``services.outbox.PREFETCH``).
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import PARTNER_TAG, kept_database, point_outbound_at  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--claims", default="100:25", help="comma-separated batch:prefetch pairs")
    args = parser.parse_args()
    variants = [tuple(int(n) for n in pair.split(":")) for pair in args.claims.split(",")]
    with kept_database(args.db) as (registry, sink):
        run(registry, sink, args, variants)


def run(registry, sink, args, variants):
    from odoo import SUPERUSER_ID, api  # noqa: PLC0415
    from odoo.addons.bj_api_sync.services import outbox  # noqa: PLC0415

    with registry.cursor() as cr:
        env = api.Environment(cr, SUPERUSER_ID, {})
        Config = point_outbound_at(env, sink)
        partners = env["res.partner"].search([("email", "=like", "%" + PARTNER_TAG)], order="id", limit=args.jobs)
        queued = Config.search([("name", "=", "bench queued")])
        immediate = Config.search([("name", "=", "bench immediate")])
        seconds = {variant: [] for variant in variants}
        seconds["immediate"] = []
        prefetch = outbox.PREFETCH
        try:
            for rnd in range(args.rounds):
                for variant in variants if rnd % 2 == 0 else variants[::-1]:
                    batch, outbox.PREFETCH = variant
                    Config._make_outbound_http_request(partners, queued.id)
                    cr.commit()
                    started = time.perf_counter()
                    done = outbox.process_due_jobs(env, batch=batch, time_budget=3600, commit=True)
                    seconds[variant].append(time.perf_counter() - started)
                    if done != len(partners):
                        raise RuntimeError("drain: %s jobs delivered out of %s" % (done, len(partners)))
                started = time.perf_counter()
                Config._make_outbound_http_request(partners, immediate.id)
                cr.commit()
                seconds["immediate"].append(time.perf_counter() - started)
                print("round %d: %s" % (rnd, ", ".join("%s %.2f s" % (key, values[-1])
                                                       for key, values in seconds.items())), flush=True)
        finally:
            outbox.PREFETCH = prefetch
        reference = statistics.median(seconds["immediate"])
        for key, values in seconds.items():
            label = "immediate" if key == "immediate" else "drain, claims of %d, prefetch %d" % key
            print("%-34s median %6.2f s  %5.0f jobs/s  ratio to immediate %.3f"
                  % (label, statistics.median(values), len(partners) / statistics.median(values),
                     reference / statistics.median(values)))


if __name__ == "__main__":
    main()
