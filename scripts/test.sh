#!/usr/bin/env bash
# Runs every test: plain-Python tests (pytest), the linters (scripts/lint.sh: ruff, pylint-odoo),
# the Odoo tests in a fresh database, then the
# vendor's Postman collection with newman against a live Odoo (scripts/newman.sh; BJ_NEWMAN=0 skips it)
# and the bounded fuzz campaign (scripts/fuzz.sh, one test per goal; BJ_FUZZ=0 skips it), and the
# outbox kill test with two Odoo servers (scripts/delivery.sh, one test per goal; BJ_DELIVERY=0 skips it).
# Does all set-up first (scripts/setup.sh). Exits non-zero on any failure, or when the
# Odoo tests did not run. Ends with one summary line "N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
bash "$here/scripts/setup.sh" || { echo "setup failed"; exit 1; }
# shellcheck disable=SC1091
source "${BJ_HOME:-$HOME/.cache/bj_api_sync}/env.sh"
db=${BJ_TEST_DB:-bj_api_sync_test}
port=${BJ_TEST_PORT:-8169}
tags=${BJ_TEST_TAGS:-/bj_api_sync}
logdir="${BJ_HOME}/logs"; mkdir -p "$logdir"
odoo_log="$logdir/odoo-test-$db.log"; : > "$odoo_log"

echo "== plain-Python tests (tests/unit)"
unit_out="$logdir/unit-$db.txt"
(cd "$here" && python -m pytest tests/unit -q -p no:cacheprovider) | tee "$unit_out"
unit_rc=${PIPESTATUS[0]}
unit_passed=$(grep -Eo '[0-9]+ passed' "$unit_out" | tail -n1 | grep -Eo '[0-9]+' || echo 0)
unit_failed=$(tail -n1 "$unit_out" | grep -Eo '[0-9]+ (failed|errors?)' | awk '{s+=$1} END {print s+0}')
if [ "$unit_rc" -ne 0 ] && [ "$unit_failed" -eq 0 ]; then unit_failed=1; fi

echo "== lint: ruff and pylint-odoo (scripts/lint.sh; BJ_LINT=0 skips it)"
lint_out="$logdir/lint-$db.txt"
bj_suite lint "${BJ_LINT:-1}" "$lint_out" '^== lint: ruff' BJ_SKIP_SETUP=1 bash "$here/scripts/lint.sh"
l_passed=$suite_passed l_failed=$suite_failed

echo "== Odoo tests (database $db, tags $tags)"
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db"
python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" \
  -i bj_api_sync --test-enable --test-tags "$tags" --stop-after-init \
  --http-port "$port" --workers 0 --max-cron-threads 0 --log-level info \
  --logfile "$odoo_log"
odoo_rc=$?
grep -E "(ERROR|FAIL:|CRITICAL|odoo.tests.result|Traceback)" "$odoo_log" | grep -v "^$" | head -200
result=$(grep -E "odoo.tests.result: [0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests" "$odoo_log" | tail -n1)
if [ -z "$result" ]; then
  echo "Odoo tests did not run (no odoo.tests.result line in $odoo_log)"
  tail -n 60 "$odoo_log"
  echo "$((unit_passed + l_passed)) passed, $((unit_failed + l_failed + 1)) failed"
  exit 1
fi

echo "== newman: the vendor's Postman collection against a live Odoo with the demo data"
newman_out="$logdir/newman-$db.txt"
bj_suite newman "${BJ_NEWMAN:-1}" "$newman_out" '^request  ' \
  BJ_SKIP_SETUP=1 BJ_NEWMAN_FRESH=1 BJ_NEWMAN_DB="${db}_newman" BJ_NEWMAN_PORT="${BJ_NEWMAN_PORT:-$((port + 200))}" \
  bash "$here/scripts/newman.sh"
n_passed=$suite_passed n_failed=$suite_failed

echo "== fuzz: bounded campaign (schemathesis + malformed input) against a live Odoo with the demo data"
fuzz_out="$logdir/fuzz-$db.txt"
bj_suite fuzz "${BJ_FUZZ:-1}" "$fuzz_out" '^== fuzz campaign goals' \
  BJ_SKIP_SETUP=1 BJ_FUZZ_QUICK=1 BJ_FUZZ_DB="${db}_fuzz" BJ_FUZZ_PORT="${BJ_FUZZ_PORT:-$((port + 300))}" \
  bash "$here/scripts/fuzz.sh"
f_passed=$suite_passed f_failed=$suite_failed

echo "== delivery: two Odoo servers drain one outbox, one is killed with SIGKILL mid-batch"
delivery_out="$logdir/delivery-$db.txt"
bj_suite delivery "${BJ_DELIVERY:-1}" "$delivery_out" '^== delivery: [0-9]' \
  BJ_SKIP_SETUP=1 BJ_DELIVERY_DB="${db}_delivery" BJ_DELIVERY_PORT="${BJ_DELIVERY_PORT:-$((port + 50))}" \
  bash "$here/scripts/delivery.sh"
d_passed=$suite_passed d_failed=$suite_failed

o_failed=$(sed -E 's/.*result: ([0-9]+) failed, ([0-9]+) error.*/\1/' <<<"$result")
o_errors=$(sed -E 's/.*failed, ([0-9]+) error\(s\) of ([0-9]+) tests.*/\1/' <<<"$result")
o_total=$(sed -E 's/.*error\(s\) of ([0-9]+) tests.*/\1/' <<<"$result")
# Errors outside test methods (module load, setUpClass) count as failures too.
load_errors=$(grep -cE " (ERROR|CRITICAL) $db odoo\.modules" "$odoo_log" || true)
o_bad=$((o_failed + o_errors))
if [ "$o_total" -eq 0 ]; then
  echo "Odoo tests did not run: 0 tests"; o_bad=$((o_bad + 1))
fi
o_passed=$((o_total - o_failed - o_errors))
passed=$((unit_passed + l_passed + o_passed + n_passed + f_passed + d_passed))
failed=$((unit_failed + l_failed + o_bad + load_errors + n_failed + f_failed + d_failed))
echo "unit: $unit_passed passed, $unit_failed failed; lint: $l_passed passed, $l_failed failed; odoo: $o_passed passed, $o_bad failed of $o_total; load errors: $load_errors; newman: $n_passed passed, $n_failed failed (full output: $newman_out); fuzz: $f_passed passed, $f_failed failed (full output: $fuzz_out); delivery: $d_passed passed, $d_failed failed (full output: $delivery_out)"
if [ "$odoo_rc" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
