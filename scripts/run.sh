#!/usr/bin/env bash
# Runs Odoo 18 on http://localhost:8069 with bj_api_sync and its demo configuration
# in the database bj_api_sync_demo (login admin / password admin). Does all set-up first.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bash "$here/scripts/setup.sh"
# shellcheck disable=SC1091
source "${BJ_HOME:-$HOME/.cache/bj_api_sync}/env.sh"
db=${BJ_DEMO_DB:-bj_api_sync_demo}
port=${BJ_PORT:-8069}
if ! psql -lqt | cut -d'|' -f1 | grep -qw "$db"; then
  echo "[run] creating database $db with bj_api_sync and demo data"
  createdb "$db"
  python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" -i bj_api_sync \
    --stop-after-init --without-demo= --log-level warn
else
  python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" -u bj_api_sync \
    --stop-after-init --log-level warn
fi
echo "[run] Odoo on http://localhost:$port (database $db, admin / admin)"
exec python "$ODOO_SRC/odoo-bin" -d "$db" --db-filter="^$db\$" --addons-path="$BJ_ADDONS_PATH" \
  --http-port "$port" "$@"
