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
  KEEP=1 ...   keep the home (and its cg.out for callgrind_annotate)
"""
import http.client, json, os, shutil, subprocess, sys, tempfile, time

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


c0 = cpu() if novg else None
t0 = time.perf_counter()
for i in range(N):
    aid = req(ca, "POST", "/v1/asks", a, {"to": "answerer", "text": f"q{i}"})["ask"]["correlation_id"]
    req(cb, "POST", "/v1/inbox/lease", b, {"max": 100})
    req(cb, "POST", f"/v1/asks/{aid}/answer", b, {"text": "a"})
    w = req(ca, "GET", f"/v1/asks/{aid}/wait?timeout_ms=10000", a)
    assert w["done"], w
dt = time.perf_counter() - t0
c1 = cpu() if novg else None
if os.environ.get("WAL"):
    print("wal_frames", (os.path.getsize(home + "/state.db-wal") - 32) / (1024 + 24))
req(c, "POST", "/v1/shutdown", admin, {})
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
