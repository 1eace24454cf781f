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
summary_fail() { echo "newman: $*"; echo "newman: 0 passed, 1 failed"; exit 1; }
if [ "${BJ_SKIP_SETUP:-0}" != 1 ]; then
  bash "$here/scripts/setup.sh" || summary_fail "setup failed"
fi
# shellcheck disable=SC1091
source "${BJ_HOME:-$HOME/.cache/bj_api_sync}/env.sh"
db=${BJ_NEWMAN_DB:-bj_api_sync_newman}
collection=${BJ_POSTMAN_COLLECTION:-$here/../shared/reference/postman/bjet-api-sync-collection.json}
newman="$BJ_HOME/node/node_modules/.bin/newman"
logdir="$BJ_HOME/logs"; mkdir -p "$logdir"
odoo_log="$logdir/odoo-newman-$db.log"; : > "$odoo_log"
[ -f "$collection" ] || summary_fail "collection not found: $collection"
[ -x "$newman" ] || summary_fail "newman is not installed in $BJ_HOME/node (scripts/setup.sh installs it with npm)"

# A free port: parallel runs (other checkouts, other databases) must not collide.
port=$(python - "${BJ_NEWMAN_PORT:-8369}" <<'PY'
import socket, sys
start = int(sys.argv[1])
for port in range(start, start + 200):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        print(port)
        break
PY
) || true
[ -n "$port" ] || summary_fail "no free port from ${BJ_NEWMAN_PORT:-8369}"
base_url="http://127.0.0.1:$port"
odoo=(python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" --workers 0 --max-cron-threads 0
      --http-interface 127.0.0.1 --http-port "$port" --log-level info --logfile "$odoo_log")

installed=$(psql -d "$db" -tAc "SELECT state FROM ir_module_module WHERE name = 'bj_api_sync'" 2>/dev/null || true)
if [ "${BJ_NEWMAN_FRESH:-0}" = 1 ] || [ "$installed" != installed ]; then
  echo "== newman: creating database $db with bj_api_sync and demo data"
  dropdb --if-exists "$db" >/dev/null 2>&1
  createdb "$db" || summary_fail "createdb $db failed"
  "${odoo[@]}" -i bj_api_sync --without-demo= --stop-after-init \
    || summary_fail "installing bj_api_sync failed (see $odoo_log)"
else
  echo "== newman: reusing database $db (updating bj_api_sync)"
  "${odoo[@]}" -u bj_api_sync --stop-after-init || summary_fail "updating bj_api_sync failed (see $odoo_log)"
fi

echo "== newman: Odoo on $base_url (database $db, log $odoo_log)"
"${odoo[@]}" --db-filter="^$db\$" &
odoo_pid=$!
stop_odoo() {
  if kill -0 "$odoo_pid" 2>/dev/null; then
    kill "$odoo_pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$odoo_pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$odoo_pid" 2>/dev/null
  fi
  wait "$odoo_pid" 2>/dev/null
  [ -n "${workdir:-}" ] && rm -rf "$workdir"
}
trap stop_odoo EXIT
# Ready when the demo's public endpoint answers (the registry is loaded and the routes are live).
ready=0
for _ in $(seq 180); do
  kill -0 "$odoo_pid" 2>/dev/null || break
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base_url/bj_api_sync/v1/public?limit=1" || true)
  if [ "$code" = 200 ]; then ready=1; break; fi
  sleep 1
done
if [ "$ready" != 1 ]; then
  tail -n 40 "$odoo_log"
  summary_fail "Odoo did not serve $base_url/bj_api_sync/v1/public"
fi

workdir=$(mktemp -d)
python "$here/tests/newman/newman_check.py" --base-url "$base_url" --db "$db" \
  --collection "$collection" --newman "$newman" --workdir "$workdir"
rc=$?
exit "$rc"
