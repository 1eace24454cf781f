#!/usr/bin/env bash
# Runs the vendor's Postman collection (../shared/reference/postman) with newman against a
# live Odoo serving bj_api_sync and its demo data, and checks every request's status
# (tests/newman/expected.json). Prints a table and ends with "newman: N passed, N failed";
# exits non-zero on any failure.
#
#   BJ_NEWMAN_DB     database (default bj_api_sync_newman); reused when bj_api_sync is
#                    installed in it (then updated with -u), else created with demo data
#   BJ_NEWMAN_FRESH  1 = drop and recreate the database first
#   BJ_NEWMAN_PORT   first HTTP port tried (default 8369; the next free one is taken)
#   BJ_SKIP_SETUP    1 = do not run scripts/setup.sh (scripts/test.sh already did)
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
bj_init newman
db=${BJ_NEWMAN_DB:-bj_api_sync_newman}
collection=${BJ_POSTMAN_COLLECTION:-$here/../shared/reference/postman/bjet-api-sync-collection.json}
newman="$BJ_HOME/node/node_modules/.bin/newman"
logdir="$BJ_HOME/logs"; mkdir -p "$logdir"
odoo_log="$logdir/odoo-newman-$db.log"; : > "$odoo_log"
[ -f "$collection" ] || bj_fail "collection not found: $collection"
[ -x "$newman" ] || bj_fail "newman is not installed in $BJ_HOME/node (scripts/setup.sh installs it with npm)"

port=$(bj_free_ports "${BJ_NEWMAN_PORT:-8369}" 1) || true
[ -n "$port" ] || bj_fail "no free port from ${BJ_NEWMAN_PORT:-8369}"
base_url="http://127.0.0.1:$port"
odoo=(python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" --workers 0 --max-cron-threads 0
      --http-interface 127.0.0.1 --http-port "$port" --log-level info --logfile "$odoo_log")

installed=$(psql -d "$db" -tAc "SELECT state FROM ir_module_module WHERE name = 'bj_api_sync'" 2>/dev/null || true)
if [ "${BJ_NEWMAN_FRESH:-0}" = 1 ] || [ "$installed" != installed ]; then
  echo "== newman: creating database $db with bj_api_sync and demo data"
  dropdb --if-exists "$db" >/dev/null 2>&1
  createdb "$db" || bj_fail "createdb $db failed"
  "${odoo[@]}" -i bj_api_sync --without-demo= --stop-after-init \
    || bj_fail "installing bj_api_sync failed (see $odoo_log)"
else
  echo "== newman: reusing database $db (updating bj_api_sync)"
  "${odoo[@]}" -u bj_api_sync --stop-after-init || bj_fail "updating bj_api_sync failed (see $odoo_log)"
fi

echo "== newman: Odoo on $base_url (database $db, log $odoo_log)"
bj_start_odoo "${odoo[@]}" --db-filter="^$db\$"
workdir=
trap 'bj_stop_odoo; [ -n "$workdir" ] && rm -rf "$workdir"' EXIT
bj_wait_odoo "$base_url" "$odoo_log"

workdir=$(mktemp -d)
python "$here/tests/newman/newman_check.py" --base-url "$base_url" --db "$db" \
  --collection "$collection" --newman "$newman" --workdir "$workdir"
rc=$?
exit "$rc"
