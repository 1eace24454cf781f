#!/usr/bin/env bash
# Fuzz campaign against the inbound API of a live Odoo (fresh database with the demo data):
# schemathesis driven by our own /bj_api_sync/v1/openapi.json, then a hand-written pass of
# malformed input (broken UTF-8, huge numbers, deep nesting, wrong types, path traversal, SQL
# metacharacters, NUL bytes, very long headers...). tests/fuzz/campaign.py checks the goals:
# zero 5xx, every request that reached an inbound route logged, no secret in any response or
# database column, nothing written by a rejected request. Prints the figures and ends with
# "fuzz: N passed, N failed"; exits non-zero on any failure.
#
#   BJ_FUZZ_QUICK     1 = the bounded form scripts/test.sh runs (a few examples per operation)
#   BJ_FUZZ_EXAMPLES  schemathesis examples per operation (default 100; quick: 8)
#   BJ_FUZZ_DB        database (default bj_api_sync_fuzz), always recreated
#   BJ_FUZZ_PORT      first HTTP port tried (default 8469; the next free one is taken)
#   BJ_SKIP_SETUP     1 = do not run scripts/setup.sh (scripts/test.sh already did)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
bj_init fuzz
command -v st >/dev/null 2>&1 || bj_fail "schemathesis is not installed (requirements-dev.txt; run scripts/setup.sh)"
db=${BJ_FUZZ_DB:-bj_api_sync_fuzz}
quick=${BJ_FUZZ_QUICK:-0}
if [ "$quick" = 1 ]; then examples=${BJ_FUZZ_EXAMPLES:-8}; else examples=${BJ_FUZZ_EXAMPLES:-100}; fi
logdir="$BJ_HOME/logs"; mkdir -p "$logdir"
odoo_log="$logdir/odoo-fuzz-$db.log"; : > "$odoo_log"
workdir="$logdir/fuzz-$db"; rm -rf "$workdir"; mkdir -p "$workdir"

# Two free ports: HTTP, and the websocket port Odoo binds too.
read -r port gevent_port < <(bj_free_ports "${BJ_FUZZ_PORT:-8469}" 2) || true
[ -n "${gevent_port:-}" ] || bj_fail "no free ports from ${BJ_FUZZ_PORT:-8469}"
base_url="http://127.0.0.1:$port"
odoo=(python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" --max-cron-threads 0
      --http-interface 127.0.0.1 --http-port "$port" --gevent-port "$gevent_port"
      --log-level info --logfile "$odoo_log")

echo "== fuzz: creating database $db with bj_api_sync and demo data"
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db" || bj_fail "createdb $db failed"
"${odoo[@]}" --workers 0 -i bj_api_sync --without-demo= --stop-after-init \
  || bj_fail "installing bj_api_sync failed (see $odoo_log)"

# The threaded server (as scripts/newman.sh): every request in its own thread, one process to stop.
echo "== fuzz: Odoo on $base_url (database $db, log $odoo_log)"
bj_start_odoo "${odoo[@]}" --workers 0 --db-filter="^$db\$"
trap bj_stop_odoo EXIT
bj_wait_odoo "$base_url" "$odoo_log"

python "$here/tests/fuzz/campaign.py" --base-url "$base_url" --db "$db" --workdir "$workdir" \
  --examples "$examples" --odoo-log "$odoo_log" $([ "$quick" = 1 ] && echo --quick)
exit $?
