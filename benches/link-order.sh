#!/usr/bin/env bash
# Writes src/link-order.txt: the functions a release daemon runs while it
# starts and idles (first), then those it runs for a few common requests,
# in the order the linker should lay them out (src/build.rs passes the file
# to LLD as --symbol-ordering-file). Needs valgrind (callgrind).
#
#   bash benches/link-order.sh            # build, profile, write the list
#   LINK_ORDER_BIN=path bash benches/link-order.sh   # profile that build
#
# The build is the ordinary release build (its symbol table names every
# function; the order it was linked in does not change which run); the
# daemon runs under callgrind in a temporary home on 127.0.0.1. Re-run it
# when the start-up path changed a lot: a stale list only costs memory
# (docs/benchmarks.md, "Idle memory: link order").
set -euo pipefail
[ -n "${LINK_ORDER_BIN:-}" ] && LINK_ORDER_BIN=$(realpath "$LINK_ORDER_BIN")
cd "$(dirname "$0")/.."
if [ -z "${LINK_ORDER_BIN:-}" ]; then
  cargo build --release --locked --bin repowire
fi
bin=$(realpath "${LINK_ORDER_BIN:-${CARGO_TARGET_DIR:-target}/release/repowire}")
work=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
  [ -n "${LINK_ORDER_KEEP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
home=$work/home
valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg" \
  "$bin" --home "$home" daemon run --listen 127.0.0.1:0 >"$work/log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -f "$home/daemon.json" ] && break
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if [ ! -f "$home/daemon.json" ]; then
  echo "link-order: the daemon did not start under callgrind:" >&2
  cat "$work/log" >&2
  exit 1
fi
# The daemon's first idle second (the memory benchmark measures 1 s after
# start) under callgrind's ~50x slowdown, then a dump: part 1.
sleep 5
callgrind_control --dump=startup "$pid" >/dev/null
cli() { "$bin" --home "$home" "$@" >/dev/null; }
cli peer register alice
cli peer register bob
for i in 1 2 3; do cli --as alice peer notify bob "note $i"; done
cli --as bob peer inbox
cli --as alice peer ask bob "a question?"
cli --as bob peer inbox
cli peer list
cli jobs create "a job" --as alice || true
cli jobs list
cli events --tail 5
sleep 2
kill -TERM "$pid"
wait "$pid" || true
pid=
python3 - "$bin" "$work" src/link-order.txt <<'PY'
import glob, re, sys
binary, work, out = sys.argv[1:]
def executed(path):
    # Callgrind names a function or object once, as "(id) name", in
    # whichever line first mentions it (fn=, cfn=, ob=, cob=), then by id.
    names, obs, ob, seen = {}, {}, None, []
    def define(table, rest):
        key, _, name = rest.strip().partition(" ")
        if name:
            table[key] = name
        return key
    for line in open(path, errors="replace"):
        field, eq, rest = line.partition("=")
        if not eq:
            continue
        if field in ("ob", "cob"):
            key = define(obs, rest)
            if field == "ob":
                ob = obs.get(key)
        elif field in ("fn", "cfn"):
            key = define(names, rest)
            if field == "fn" and ob == binary and key in names:
                # fn'2: callgrind's name for a recursion level.
                seen.append(re.sub(r"'[0-9]+$", "", names[key]))
    return seen
# Dumps are cg.1, cg.2, ...; what ran after the last dump is in cg.
parts = sorted(glob.glob(work + "/cg.*"), key=lambda p: int(p.rsplit(".", 1)[1])) + [work + "/cg"]
# Each part's new functions sorted by name: what matters is that a part's
# functions sit together, and a sorted list changes little between runs.
order, have = [], set()
for part in parts:
    # Skip what has no symbol: addresses, "(below main)".
    new = {n for n in executed(part) if n not in have and not n.startswith(("0x", "("))}
    have |= new
    order += sorted(new)
if len(order) < 500:
    sys.exit(f"{out} not written: only {len(order)} functions of {binary} ran "
             "(no symbol table? see the release profile's strip)")
open(out, "w").write("\n".join(order) + "\n")
print(f"{out}: {len(order)} functions from {len(parts)} profile parts")
PY
