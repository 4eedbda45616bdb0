#!/usr/bin/env bash
# Writes src/link-order.txt: the functions a release daemon runs while it
# starts and idles (first), then those it runs for the requests agents make
# all day (health, notify, a delivered note, a blocking ask, an ask and its
# wait, the inbox), then those of a few CLI commands, in the order the
# linker should lay them out (src/build.rs passes the file to LLD as
# --symbol-ordering-file). Needs valgrind (callgrind) and python3.
#
#   bash benches/link-order.sh            # build, profile, write the list
#   LINK_ORDER_BIN=path bash benches/link-order.sh   # profile that build
#
# The build is the ordinary release build (its symbol table names every
# function; the order it was linked in does not change which run); the
# daemon runs under callgrind in a temporary home on 127.0.0.1. A binary
# given as LINK_ORDER_BIN must come from `cargo build --release` too: one
# that `cargo bench` or `cargo test --release` linked has the
# dev-dependencies' features unified in, so other hashes in its generic
# functions' names, which a plain build does not have. Re-run it when the
# start-up or request paths changed a lot: a stale list only costs memory
# and a cold request's time (docs/benchmarks.md, "Idle memory: link order"
# and "Cold requests").
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
callgrind_control --dump=startup "$pid" >/dev/null 2>&1
# The requests agents make all day over raw HTTP on 127.0.0.1, after their
# set-up (its own part, 2), each flow its own part (3-8): their functions
# are laid out next, the code every flow runs in one run, so that a request
# arriving at an idle daemon touches few code pages (docs/benchmarks.md,
# "Cold requests").
python3 - "$home" "$pid" <<'PY'
import http.client, json, socket, subprocess, sys
home, pid = sys.argv[1:]
d = json.load(open(home + "/daemon.json"))
host, port = d["url"].split("//")[1].split(":")
admin = open(home + "/token").read().strip()
def conn():
    return http.client.HTTPConnection(host, int(port), timeout=60)
def call(c, method, path, tok, body=None):
    h = {"Authorization": "Bearer " + tok}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
    r = c.getresponse()
    out = r.read()
    assert r.status < 300, (method, path, r.status, out)
    return json.loads(out) if out else None
c, c2 = conn(), conn()
tok = {n: call(c, "POST", "/v1/peers", admin, {"name": n})["token"] for n in ("lo-a", "lo-b", "lo-c")}
s = socket.create_connection((host, int(port)), timeout=60)
s.sendall(("GET /v1/inbox/stream?max=50 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n\r\n" % tok["lo-b"]).encode())
f = s.makefile("rb")
while f.readline() not in (b"\r\n", b""):
    pass
def dump(name):
    subprocess.run(["callgrind_control", "--dump=" + name, pid],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
dump("setup")
def frame():
    data = None
    while True:
        line = f.readline()
        assert line, "the stream ended"
        if line.startswith(b"data:"):
            data = json.loads(line[5:])
        elif line.strip() == b"" and data:
            return data
def health():
    call(c, "GET", "/health", "")
def notify():
    call(c, "POST", "/v1/notify", tok["lo-a"], {"to": "lo-c", "text": "note"})
def delivered():
    call(c, "POST", "/v1/notify", tok["lo-a"], {"to": "lo-b", "text": "note"})
    call(c2, "POST", "/v1/inbox/confirm", tok["lo-b"], {"ids": [frame()["delivery_id"]]})
def blocking():
    c.request("POST", "/v1/asks", body=json.dumps({"to": "lo-b", "text": "q?", "wait_ms": 60000}),
              headers={"Authorization": "Bearer " + tok["lo-a"], "Content-Type": "application/json"})
    ask = frame()["correlation_id"]
    call(c2, "POST", "/v1/asks/%s/answer" % ask, tok["lo-b"], {"text": "a"})
    r = c.getresponse()
    assert r.status == 200, r.read()
    r.read()
def asked():
    ask = call(c, "POST", "/v1/asks", tok["lo-a"], {"to": "lo-b", "text": "q?"})["ask"]["correlation_id"]
    d = frame()
    call(c2, "POST", "/v1/inbox/confirm", tok["lo-b"], {"ids": [d["delivery_id"]]})
    call(c2, "POST", "/v1/asks/%s/answer" % ask, tok["lo-b"], {"text": "a"})
    call(c, "GET", "/v1/asks/%s/wait?timeout_ms=60000" % ask, tok["lo-a"])
def inbox():
    call(c, "GET", "/v1/inbox", tok["lo-c"])
for flow in (health, notify, delivered, blocking, asked, inbox):
    for _ in range(20):
        flow()
    dump(flow.__name__)
s.close()
PY
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
# Part 1 (start-up and idle) first, ending with those of its functions the
# flows run too; then the flows' other functions. Flow functions go by how
# many flows run them, then by the first flow that ran them: fewest first
# in the start-up group, most first after it, so that the code every flow
# runs sits in one run across the two and a request arriving at an idle
# daemon touches few code pages. The rest (the flows' set-up, the CLI's
# requests) by part, sorted by name: what matters is that a group's
# functions sit together, and a sorted list changes little between runs.
order, have = [], set()
def named(part):
    # Skip what has no symbol: addresses, "(below main)".
    return {n for n in executed(part) if not n.startswith(("0x", "("))}
startup = named(parts[0])
ran = {}
# Parts: start-up, the flows' set-up, one per flow, the CLI's requests.
for i, part in enumerate(parts[2:-1]):
    for n in named(part):
        ran.setdefault(n, []).append(i)
flow_key = lambda n: (-len(ran[n]), ran[n][0], n)
order += sorted(startup - ran.keys())
order += sorted(startup & ran.keys(), key=flow_key, reverse=True)
order += sorted(ran.keys() - startup, key=flow_key)
have = startup | ran.keys()
for part in (parts[1], parts[-1]):
    new = named(part) - have
    have |= new
    order += sorted(new)
if len(order) < 500:
    sys.exit(f"{out} not written: only {len(order)} functions of {binary} ran "
             "(no symbol table? see the release profile's strip)")
open(out, "w").write("\n".join(order) + "\n")
print(f"{out}: {len(order)} functions from {len(parts)} profile parts")
PY
