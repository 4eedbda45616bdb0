#!/usr/bin/env python3
"""Instructions (callgrind) or wall time per ask round trip, one at a time.

Starts a release daemon (BIN) in a temporary home on 127.0.0.1 with its
background pass held off (REPOWIRE_TICK=1h), registers an asker and an
answerer with the admin token, then runs N round trips: POST /v1/asks,
the answerer's POST /v1/inbox/lease, POST /v1/asks/{id}/answer, the
asker's GET /v1/asks/{id}/wait. Prints the run's total instructions
(valgrind's callgrind). Per round trip: (total(600) - total(100)) / 500,
which leaves start-up and registration out.

  BIN=target/release/repowire python3 benches/ask-instructions.py 600
  NOVG=1 ...   no valgrind: microseconds per round trip (client included),
               and the daemon's CPU per round trip (user and system, /proc)
  WAL=1 ...    also print the WAL's frames after the run (before shutdown)
  PAGES=1 ...  also print, over the second half of the round trips, the WAL
               frames each request wrote and the frames by b-tree (table or
               index, from SQLite's dbstat on a copy), per round trip. Keep
               N * 23 under 10,000 frames (the WAL starts over at a
               checkpoint): 300 round trips.
  KEEP=1 ...   keep the home (and its cg.out for callgrind_annotate)
  WAITING=1 ...  the flow of agents that wait (and of the load bench's 16
               pairs): the answerer's lease long-polls before the ask comes
               (the ask is handed to it by the transaction that queues it),
               and the asker's wait long-polls before the answer comes. Each
               side starts DELAY seconds (0.05 under valgrind, 0.005
               without) before the other acts. Not with PAGES.
  BLOCKING=1 ... as WAITING, but the asker asks and waits in one request
               (POST /v1/asks with wait_ms): three requests a round trip.
"""
import collections, http.client, threading, json, os, shutil, sqlite3, struct, subprocess, sys, tempfile, time

BIN = os.environ["BIN"]
N = int(sys.argv[1])
home = tempfile.mkdtemp(prefix="ask-instr-")
novg = os.environ.get("NOVG")
cmd = [BIN, "daemon", "run", "--listen", "127.0.0.1:0", "--home", home]
if not novg:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + home + "/cg.out"] + cmd
env = dict(os.environ, REPOWIRE_TICK="1h")
p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(600):
    try:
        d = json.load(open(home + "/daemon.json"))
        break
    except Exception:
        time.sleep(0.1)
host, port = d["url"].split("//")[1].split(":")
admin = open(home + "/token").read().strip()


def conn():
    return http.client.HTTPConnection(host, int(port))


def req(c, m, path, tok, body=None):
    h = {"Authorization": "Bearer " + tok}
    if body is not None:
        h["Content-Type"] = "application/json"
    c.request(m, path, body=json.dumps(body) if body is not None else None, headers=h)
    r = c.getresponse()
    data = r.read()
    if r.status >= 300:
        raise SystemExit(f"{m} {path}: {r.status} {data}")
    return json.loads(data) if data else None


c = conn()
a = req(c, "POST", "/v1/peers", admin, {"name": "asker"})["token"]
b = req(c, "POST", "/v1/peers", admin, {"name": "answerer"})["token"]
ca, cb = conn(), conn()


def cpu():
    f = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(f[11]) / tick, int(f[12]) / tick


wal = home + "/state.db-wal"
FRAME = 1024 + 24
pages = os.environ.get("PAGES")
by_request = collections.Counter()


def frames():
    return os.path.getsize(wal) // FRAME if pages else 0


waiting = os.environ.get("WAITING")
delay = float(os.environ.get("DELAY", "0.005" if novg else "0.05"))


def started(f):
    """Run f on a thread of its own; give it `delay` to reach the daemon."""
    box = {}
    t = threading.Thread(target=lambda: box.update(r=f()))
    t.start()
    time.sleep(delay)
    return t, box


def waiting_round_trip(i):
    lease, got = started(lambda: req(cb, "POST", "/v1/inbox/lease", b, {"max": 100, "wait_ms": 30000}))
    aid = req(ca, "POST", "/v1/asks", a, {"to": "answerer", "text": f"q{i}"})["ask"]["correlation_id"]
    lease.join()
    assert [d["correlation_id"] for d in got["r"]["deliveries"]] == [aid], got
    wait, w = started(lambda: req(ca, "GET", f"/v1/asks/{aid}/wait?timeout_ms=30000", a))
    req(cb, "POST", f"/v1/asks/{aid}/answer", b, {"text": "a"})
    wait.join()
    assert w["r"]["done"], w


def blocking_round_trip(i):
    lease, got = started(lambda: req(cb, "POST", "/v1/inbox/lease", b, {"max": 100, "wait_ms": 30000}))
    body = {"to": "answerer", "text": f"q{i}", "wait_ms": 30000}
    ask, r = started(lambda: req(ca, "POST", "/v1/asks", a, body))
    lease.join()
    [d] = got["r"]["deliveries"]
    req(cb, "POST", f"/v1/asks/{d['correlation_id']}/answer", b, {"text": "a"})
    ask.join()
    assert r["r"]["done"] and r["r"]["ask"]["answer"] == "a", r


blocking = os.environ.get("BLOCKING")
if blocking:
    waiting = None
c0 = cpu() if novg else None
t0 = time.perf_counter()
for i in range(N if waiting else 0):
    waiting_round_trip(i)
for i in range(N if blocking else 0):
    blocking_round_trip(i)
for i in range(0 if waiting or blocking else N):
    f0 = frames()
    aid = req(ca, "POST", "/v1/asks", a, {"to": "answerer", "text": f"q{i}"})["ask"]["correlation_id"]
    f1 = frames()
    req(cb, "POST", "/v1/inbox/lease", b, {"max": 100})
    f2 = frames()
    req(cb, "POST", f"/v1/asks/{aid}/answer", b, {"text": "a"})
    f3 = frames()
    w = req(ca, "GET", f"/v1/asks/{aid}/wait?timeout_ms=10000", a)
    assert w["done"], w
    if pages and i >= N // 2:
        f4 = frames()
        for name, x, y in [("ask", f0, f1), ("lease", f1, f2), ("answer", f2, f3), ("wait", f3, f4)]:
            by_request[name] += y - x
dt = time.perf_counter() - t0
c1 = cpu() if novg else None
if os.environ.get("WAL"):
    print("wal_frames", (os.path.getsize(wal) - 32) / FRAME)
if pages:
    half = N - N // 2
    print("frames per request:", {k: round(v / half, 2) for k, v in by_request.items()})
    data = open(wal, "rb").read()
    n = (len(data) - 32) // FRAME
    written = collections.Counter(
        struct.unpack(">I", data[32 + f * FRAME : 36 + f * FRAME])[0] for f in range(n - sum(by_request.values()), n)
    )
    copy = tempfile.mkdtemp(prefix="ask-pages-")
    shutil.copy(home + "/state.db", copy + "/state.db")
    shutil.copy(wal, copy + "/state.db-wal")
    owner = dict((pg, name) for name, pg in sqlite3.connect(copy + "/state.db").execute("SELECT name, pageno FROM dbstat"))
    shutil.rmtree(copy, ignore_errors=True)
    trees = collections.Counter()
    for pg, k in written.items():
        trees[owner.get(pg, "?")] += k
    for name, k in trees.most_common():
        print(f"{k / half:6.2f}  {name}")
# A fresh connection: the first one may have idled past the daemon's keep-alive.
req(conn(), "POST", "/v1/shutdown", admin, {})
p.wait()
if novg:
    print(f"{dt / N * 1e6:.1f} us/round trip")
    user, system = ((c1[i] - c0[i]) / N * 1e6 for i in (0, 1))
    print(f"daemon CPU {user + system:.1f} us/round trip (user {user:.1f}, system {system:.1f})")
else:
    for line in open(home + "/cg.out"):
        if line.startswith(("summary:", "totals:")):
            print(line.split()[1])
            break
if os.environ.get("KEEP"):
    print(home)
else:
    shutil.rmtree(home, ignore_errors=True)
