#!/usr/bin/env bash
# Regenerates the translation template i18n/bj_api_sync.pot from a fresh database with
# bj_api_sync installed (no demo data), then merges it into every i18n/<lang>.po (i18n/uk.po is
# created when missing): translations of unchanged terms are kept, new terms come in empty,
# terms gone from the code are dropped (no fuzzy matching: Odoo would load a fuzzy guess as
# a real translation). Checks the .po files (msgfmt -c --check-format when gettext is installed,
# and placeholders %s / %(name)s / {name} the same in msgid and msgstr) and prints, per
# language, "N entries, N translated, N untranslated" followed by the untranslated terms.
#
#   scripts/i18n.sh            regenerate, merge, check (exit 1 only on errors)
#   scripts/i18n.sh --check    the same, and exit 1 when a term is untranslated
#
#   BJ_I18N_DB     database used for the export (default bj_api_sync_i18n; dropped and
#                  recreated, dropped again at the end unless BJ_I18N_KEEP_DB=1)
#   BJ_I18N_LANGS  languages whose .po must exist (default "uk")
#   BJ_SKIP_SETUP  1 = do not run scripts/setup.sh
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
strict=0
[ "${1:-}" = "--check" ] && strict=1
if [ "${BJ_SKIP_SETUP:-0}" != 1 ]; then
  bash "$here/scripts/setup.sh" || { echo "i18n: setup failed"; exit 1; }
fi
# shellcheck disable=SC1091
source "${BJ_HOME:-$HOME/.cache/bj_api_sync}/env.sh"
db=${BJ_I18N_DB:-bj_api_sync_i18n}
logdir="$BJ_HOME/logs"; mkdir -p "$logdir"
odoo_log="$logdir/odoo-i18n-$db.log"; : > "$odoo_log"
module=bj_api_sync
pot="$here/i18n/$module.pot"
tmp=$(mktemp -d)
cleanup() {
  rm -rf "$tmp"
  [ "${BJ_I18N_KEEP_DB:-0}" = 1 ] || dropdb --if-exists "$db" >/dev/null 2>&1
}
trap cleanup EXIT
fail() { echo "i18n: $*" >&2; exit 1; }

echo "== installing $module in a fresh database $db (no demo data)"
dropdb --if-exists "$db" >/dev/null 2>&1
createdb "$db" || fail "createdb $db failed"
python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" -i "$module" \
  --without-demo=all --stop-after-init --workers 0 --max-cron-threads 0 \
  --log-level warn --logfile "$odoo_log" \
  || { tail -n 40 "$odoo_log"; fail "installation failed (log: $odoo_log)"; }
grep -qE "ERROR|CRITICAL" "$odoo_log" && { grep -E "ERROR|CRITICAL" "$odoo_log" | head; fail "errors during installation (log: $odoo_log)"; }

echo "== exporting the template"
# Without --language the export is a template (.pot): every msgstr empty.
python "$ODOO_SRC/odoo-bin" -d "$db" --addons-path="$BJ_ADDONS_PATH" \
  --i18n-export="$tmp/$module.pot" --modules="$module" --log-level warn --logfile "$odoo_log" \
  || { tail -n 40 "$odoo_log"; fail "export failed (log: $odoo_log)"; }
[ -s "$tmp/$module.pot" ] || fail "the export wrote nothing (log: $odoo_log)"

echo "== merging into the .po files"
python - "$tmp/$module.pot" "$pot" "$here/i18n" "$strict" ${BJ_I18N_LANGS:-uk} <<'PY' || exit 1
import datetime
import os
import re
import sys

import polib

new_pot_path, pot_path, i18n_dir, strict, *langs = sys.argv[1:]
strict = strict == "1"
PLURALS = {
    "uk": "nplurals=3; plural=(n%10==1 && n%100!=11 ? 0 : n%10>=2 && n%10<=4 && "
          "(n%100<10 || n%100>=20) ? 1 : 2);",
}
PLACEHOLDER = re.compile(r"%(?:\([A-Za-z_][A-Za-z0-9_]*\))?[-+ #0]*\d*(?:\.\d+)?[sdifrxXeEgGc%]|\{[A-Za-z_][A-Za-z0-9_]*\}")


def key(entry):
    return (entry.msgctxt, entry.msgid)


def signature(po):
    return [(key(e), tuple(e.occurrences), e.comment, tuple(e.flags)) for e in po]


new_pot = polib.pofile(new_pot_path, wrapwidth=78)
# Keep the old file (and its POT-Creation-Date) when nothing but the date changed: no noise in git.
if os.path.exists(pot_path) and signature(polib.pofile(pot_path)) == signature(new_pot):
    pot = polib.pofile(pot_path, wrapwidth=78)
    print("template unchanged: %s (%d entries)" % (os.path.relpath(pot_path), len(pot)))
else:
    pot = new_pot
    pot.save(pot_path)
    print("template written: %s (%d entries)" % (os.path.relpath(pot_path), len(pot)))

now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M+0000")
po_paths = {os.path.splitext(f)[0]: os.path.join(i18n_dir, f) for f in os.listdir(i18n_dir) if f.endswith(".po")}
for lang in langs:
    po_paths.setdefault(lang, os.path.join(i18n_dir, lang + ".po"))

errors = untranslated_total = 0
for lang, path in sorted(po_paths.items()):
    old = polib.pofile(path, wrapwidth=78) if os.path.exists(path) else None
    known = {}
    if old is not None:
        for entry in old:
            if not entry.obsolete and entry.msgstr and "fuzzy" not in entry.flags:
                known[key(entry)] = entry.msgstr
    po = polib.POFile(wrapwidth=78)
    po.header = pot.header
    po.metadata = dict(old.metadata) if old is not None else dict(pot.metadata)
    po.metadata.update({
        "Project-Id-Version": pot.metadata.get("Project-Id-Version", ""),
        "POT-Creation-Date": pot.metadata.get("POT-Creation-Date", now),
        "Language": lang,
        "MIME-Version": "1.0",
        "Content-Type": "text/plain; charset=UTF-8",
        "Content-Transfer-Encoding": "",
    })
    if lang in PLURALS:
        po.metadata["Plural-Forms"] = PLURALS[lang]
    for tentry in pot:
        po.append(polib.POEntry(
            msgid=tentry.msgid, msgctxt=tentry.msgctxt, msgstr=known.get(key(tentry), ""),
            occurrences=list(tentry.occurrences), comment=tentry.comment, flags=list(tentry.flags),
        ))
    if old is None or str(po) != str(old):
        if old is not None and [(key(e), e.msgstr) for e in po] != [(key(e), e.msgstr) for e in old if not e.obsolete]:
            po.metadata["PO-Revision-Date"] = now
        po.save(path)
    missing = [e for e in po if not e.msgstr]
    untranslated_total += len(missing)
    print("%s: %d entries, %d translated, %d untranslated" % (
        os.path.relpath(path), len(po), len(po) - len(missing), len(missing)))
    for entry in missing:
        print("  untranslated: %r" % entry.msgid)
    for entry in po:
        if entry.msgstr and sorted(PLACEHOLDER.findall(entry.msgid)) != sorted(PLACEHOLDER.findall(entry.msgstr)):
            errors += 1
            print("  placeholders differ: %r -> %r" % (entry.msgid, entry.msgstr))
if errors:
    sys.exit(1)
if strict and untranslated_total:
    print("i18n: %d untranslated terms" % untranslated_total)
    sys.exit(1)
PY

if command -v msgfmt >/dev/null 2>&1; then
  echo "== msgfmt -c --check-format"
  for po in "$here"/i18n/*.po; do
    msgfmt -c --check-format -o /dev/null "$po" || fail "msgfmt found errors in $po"
  done
  echo "msgfmt: ok"
fi
