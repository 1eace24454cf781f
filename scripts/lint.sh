#!/usr/bin/env bash
# Lints the module: ruff (ruff.toml) and pylint with OCA's pylint-odoo checks (.pylintrc).
# One test per linter; ends with "lint: N passed, N failed" (scripts/test.sh reads that line).
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$here/scripts/lib.sh"
bj_init lint
cd "$here" || bj_fail "no checkout"
passed=0 failed=0
echo "== lint: ruff $(ruff --version | cut -d' ' -f2)"
if ruff check --no-cache .; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "== lint: pylint-odoo"
if pylint --rcfile=.pylintrc --output-format=text . ; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
echo "lint: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
