#!/usr/bin/env bash
# Kill test of the outbox: two Odoo servers (odoo-bin, one cron thread each) drain one queue of
# jobs to a local remote answering in 100 ms, and one of them is killed with SIGKILL mid-batch
# (tests/delivery/kill_check.py). Checks that every job is delivered, none lost, duplicates only
# with the same Idempotency-Key, the order of two jobs of one record kept, and the dead server's
# jobs requeued through its released advisory lock. Prints the figures and ends with
# "delivery: N passed, N failed"; exits non-zero on any failure.
#
#   BJ_DELIVERY_DB     database (default bj_api_sync_delivery), always recreated, dropped at the end
#   BJ_DELIVERY_PORT   first HTTP port tried (default 8569; four free ones are taken: two servers'
#                      HTTP and websocket ports)
#   BJ_DELIVERY_JOBS   jobs to drain (default 1500)
#   BJ_SKIP_SETUP      1 = do not run scripts/setup.sh (scripts/test.sh already did)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
bj_init delivery
db=${BJ_DELIVERY_DB:-bj_api_sync_delivery}
logdir="$BJ_HOME/logs"; mkdir -p "$logdir"
odoo_log="$logdir/odoo-delivery-$db.log"; : > "$odoo_log"
read -r p1 g1 p2 g2 < <(bj_free_ports "${BJ_DELIVERY_PORT:-8569}" 4) || true
[ -n "${g2:-}" ] || bj_fail "no free ports from ${BJ_DELIVERY_PORT:-8569}"

echo "== delivery: creating database $db with bj_api_sync (no demo data)"
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db" || bj_fail "createdb $db failed"
trap 'dropdb --if-exists "$db" >/dev/null 2>&1' EXIT
python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" -i bj_api_sync --without-demo=all \
  --stop-after-init --workers 0 --max-cron-threads 0 --log-level warn --logfile "$odoo_log" \
  || bj_fail "installing bj_api_sync failed (see $odoo_log)"

python "$here/tests/delivery/kill_check.py" --db "$db" --ports "$p1,$g1,$p2,$g2" --logdir "$logdir" \
  --jobs "${BJ_DELIVERY_JOBS:-1500}"
exit $?
