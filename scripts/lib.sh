# shellcheck shell=bash
# Shell helpers shared by scripts/newman.sh, scripts/fuzz.sh and scripts/test.sh. Sourced, never
# run: defining the functions has no side effect.
#
#   bj_init NAME            set-up for a suite script: "NAME: ..." failure summaries (bj_fail),
#                           scripts/setup.sh unless BJ_SKIP_SETUP=1, then env.sh
#   bj_fail MESSAGE         print "NAME: MESSAGE" and "NAME: 0 passed, 1 failed", exit 1
#   bj_free_ports START N   the first N free local TCP ports from START (space-separated)
#   bj_start_odoo CMD...    start an Odoo server in the background (odoo_pid)
#   bj_stop_odoo            stop it (SIGTERM, up to 30 s, then SIGKILL) and reap it
#   bj_wait_odoo URL LOG    wait up to 180 s for the demo's public endpoint to answer 200;
#                           else print the end of LOG and bj_fail
#   bj_suite NAME ENABLED OUT SHOW_FROM [VAR=value...] CMD...
#                           (scripts/test.sh) run a suite script into OUT unless ENABLED is 0,
#                           print OUT from the line matching SHOW_FROM, and set suite_passed /
#                           suite_failed from its "NAME: N passed, N failed" line (a missing line
#                           or a non-zero exit with nothing failed counts as one failure)

bj_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bj_init() {
  bj_suite_name=$1
  if [ "${BJ_SKIP_SETUP:-0}" != 1 ]; then
    bash "$bj_here/scripts/setup.sh" || bj_fail "setup failed"
  fi
  # shellcheck disable=SC1091
  source "${BJ_HOME:-$HOME/.cache/bj_api_sync}/env.sh"
}

bj_fail() {
  echo "$bj_suite_name: $*"
  echo "$bj_suite_name: 0 passed, 1 failed"
  exit 1
}

# Free ports: parallel runs (other checkouts, other databases) must not collide.
bj_free_ports() {
  python - "$1" "$2" <<'PY'
import socket, sys
start, count = int(sys.argv[1]), int(sys.argv[2])
found = []
for port in range(start, start + 200 * count):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        found.append(port)
        if len(found) == count:
            break
print(*found)
PY
}

bj_start_odoo() {
  "$@" &
  odoo_pid=$!
}

bj_stop_odoo() {
  [ -n "${odoo_pid:-}" ] || return 0
  if kill -0 "$odoo_pid" 2>/dev/null; then
    kill "$odoo_pid" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$odoo_pid" 2>/dev/null || break; sleep 1; done
    kill -9 "$odoo_pid" 2>/dev/null
  fi
  wait "$odoo_pid" 2>/dev/null
}

# Ready when the demo's public endpoint answers (the registry is loaded and the routes are live).
bj_wait_odoo() {
  local base_url=$1 log=$2 code
  for _ in $(seq 180); do
    kill -0 "$odoo_pid" 2>/dev/null || break
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$base_url/bj_api_sync/v1/public?limit=1" || true)
    [ "$code" = 200 ] && return 0
    sleep 1
  done
  tail -n 40 "$log"
  bj_fail "Odoo did not serve $base_url/bj_api_sync/v1/public"
}

bj_suite() {
  local name=$1 enabled=$2 out=$3 show_from=$4 rc line
  shift 4
  if [ "$enabled" = 0 ]; then
    echo "$name: skipped (BJ_${name^^}=0)"
    echo "$name: 0 passed, 0 failed" > "$out"
    rc=0
  else
    env "$@" > "$out" 2>&1
    rc=$?
  fi
  sed -n "/$show_from/,\$p" "$out"
  line=$(grep -E "^$name: [0-9]+ passed, [0-9]+ failed$" "$out" | tail -n1)
  if [ -z "$line" ]; then
    tail -n 40 "$out"
    line="$name: 0 passed, 1 failed"
  fi
  suite_passed=$(sed -E "s/^$name: ([0-9]+) passed.*/\\1/" <<<"$line")
  suite_failed=$(sed -E 's/.* ([0-9]+) failed$/\1/' <<<"$line")
  if [ "$rc" -ne 0 ] && [ "$suite_failed" -eq 0 ]; then suite_failed=1; fi
}
