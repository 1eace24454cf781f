#!/usr/bin/env bash
# Idempotent set-up on a fresh machine: Odoo 18 from ../shared/vendor, a venv with its
# requirements, PostgreSQL 15 started with a superuser role for the current OS user.
# Everything lands in $BJ_HOME (default ~/.cache/bj_api_sync) so a second run is instant.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
: "${BJ_HOME:=$HOME/.cache/bj_api_sync}"
: "${ODOO_VENDOR:=$here/../shared/vendor}"
mkdir -p "$BJ_HOME"
log() { printf '[setup] %s\n' "$*" >&2; }

# 1. Odoo source: $ODOO_SRC if given, else the vendored archive, else a shallow clone of 18.0
if [ -n "${ODOO_SRC:-}" ] && [ -f "$ODOO_SRC/odoo-bin" ]; then
  log "using Odoo from \$ODOO_SRC=$ODOO_SRC"
elif [ -f "$BJ_HOME/odoo-18.0/odoo-bin" ]; then
  ODOO_SRC="$BJ_HOME/odoo-18.0"
else
  tarball=$(ls "$ODOO_VENDOR"/odoo-18.0-*.tar.xz 2>/dev/null | head -n1 || true)
  if [ -n "$tarball" ]; then
    log "unpacking $(basename "$tarball")"
    tar -xJf "$tarball" -C "$BJ_HOME"
  else
    log "no Odoo archive in $ODOO_VENDOR: cloning Odoo 18.0"
    git clone -q --depth 1 -b 18.0 https://github.com/odoo/odoo "$BJ_HOME/odoo-18.0"
  fi
  ODOO_SRC="$BJ_HOME/odoo-18.0"
fi

# 2. System packages (PostgreSQL server is preinstalled on these machines, but not everywhere)
need_apt=()
command -v pg_ctlcluster >/dev/null 2>&1 || need_apt+=(postgresql)
# Browser tours (HttpCase.start_tour) need Chromium; the Postman collection runs with newman (npm).
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# 3. Python venv
venv="$BJ_HOME/venv"
if [ ! -f "$venv/.bj_ready" ]; then
  log "creating venv and installing Odoo requirements (about 5 minutes)"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check --upgrade pip 'setuptools<70' wheel >>"$BJ_HOME/pip.log" 2>&1 || { tail -n 40 "$BJ_HOME/pip.log"; exit 1; }
  sed -e 's/^psycopg2==.*/psycopg2-binary==2.9.9/' \
      -e '/^python-ldap/d' \
      -e 's/^cbor2==5.4.2.*/cbor2==5.6.2/' \
      "$ODOO_SRC/requirements.txt" > "$BJ_HOME/requirements-odoo.txt"
  "$venv/bin/pip" install -q --disable-pip-version-check --no-build-isolation -r "$BJ_HOME/requirements-odoo.txt" >>"$BJ_HOME/pip.log" 2>&1 || { tail -n 40 "$BJ_HOME/pip.log"; exit 1; }
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps -e "$ODOO_SRC" >>"$BJ_HOME/pip.log" 2>&1 || { tail -n 40 "$BJ_HOME/pip.log"; exit 1; }
  touch "$venv/.bj_ready"
fi
if [ ! -f "$venv/.bj_extra_$(sha1sum "$here/requirements-dev.txt" | cut -c1-12)" ]; then
  log "installing module and test requirements"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt" -r "$here/requirements-dev.txt" >>"$BJ_HOME/pip.log" 2>&1 || { tail -n 40 "$BJ_HOME/pip.log"; exit 1; }
  rm -f "$venv"/.bj_extra_*
  touch "$venv/.bj_extra_$(sha1sum "$here/requirements-dev.txt" | cut -c1-12)"
fi

# 3b. newman (Postman's command-line runner) for scripts/newman.sh, in $BJ_HOME/node
if [ ! -x "$BJ_HOME/node/node_modules/.bin/newman" ]; then
  log "installing newman with npm into $BJ_HOME/node"
  # npm install --prefix ignores the global npmrc: hand its CA file on explicitly when one is set
  npm_ca=()
  cafile=$(npm config get cafile 2>/dev/null || true)
  if [ -n "$cafile" ] && [ "$cafile" != "null" ] && [ "$cafile" != "undefined" ]; then npm_ca=(--cafile "$cafile"); fi
  npm install --prefix "$BJ_HOME/node" ${npm_ca[@]+"${npm_ca[@]}"} --no-audit --no-fund --loglevel=error newman@6 >>"$BJ_HOME/npm.log" 2>&1 \
    || log "WARNING: npm install newman failed (see $BJ_HOME/npm.log): scripts/newman.sh will fail"
fi

# 4. Addons path: the checkout may have any name, Odoo needs it as bj_api_sync
mkdir -p "$BJ_HOME/addons"
ln -sfn "$here" "$BJ_HOME/addons/bj_api_sync"

# 5. PostgreSQL
if ! pg_isready -q 2>/dev/null; then
  ver=$(ls /usr/lib/postgresql | sort -n | tail -n1)
  if ! pg_lsclusters -h | grep -q "^$ver main"; then pg_createcluster "$ver" main >/dev/null; fi
  log "starting PostgreSQL $ver"
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 30); do pg_isready -q && break; sleep 1; done
fi
me=$(id -un)
if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='$me'\"" | grep -q 1; then
  su postgres -c "createuser -s $me"
fi

cat > "$BJ_HOME/env.sh" <<ENV
export BJ_HOME="$BJ_HOME"
export ODOO_SRC="$ODOO_SRC"
export PATH="$venv/bin:\$PATH"
export BJ_ADDONS_PATH="$ODOO_SRC/addons,$ODOO_SRC/odoo/addons,$BJ_HOME/addons"
ENV
log "ready: source $BJ_HOME/env.sh"
