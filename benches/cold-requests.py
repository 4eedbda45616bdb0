#!/usr/bin/env python3
"""Daemon CPU of a request that finds the daemon idle, builds side by side.

Agents call seconds apart, so nearly every request they make arrives at a
daemon that has slept since the last one; on this VM a CPU that idles comes
back with cold caches (docs/benchmarks.md, "Cold requests"). This starts one
release daemon per binary given (each in a temporary home on 127.0.0.1, all
on CPU DCPU, default 1, with this client on another CPU when it is pinned
with `taskset`), registers an asker and an answerer with a delivery stream
on each, warms each up, then runs N rounds: one operation on each daemon in
a random order, then GAP ms of idle time. The CPU each operation cost its
daemon is read from /proc/<pid>/task/*/schedstat (nanoseconds, every
thread) before it and 2 ms after it. Running the builds side by side, one
operation each per round, lets the host's noise fall on all of them alike.

  taskset -c 0 python3 benches/cold-requests.py BIN[,BIN...] N GAP_MS FLOW

FLOW: health   GET /health
      note     a note delivered: POST /v1/notify, the receiver's stream
               frame, POST /v1/inbox/confirm
      ask      a blocking ask: POST /v1/asks with wait_ms, the answerer's
               stream frame, POST /v1/asks/{id}/answer, the ask's answer

Each daemon's CPU for an operation is read before it and again after the
gap (at least 2 ms), so work it does after its answer counts too. Side by
side, a daemon idles for at least two gaps and the other daemons'
operations between two of its own. Prints, per binary, the median, mean
and quartiles in microseconds. The daemons and their homes are removed at
the end, also when a run fails.
"""
import http.client, json, os, random, shutil, socket, statistics, subprocess, sys, tempfile, time

USAGE = "usage: cold-requests.py BIN[,BIN...] N GAP_MS health|note|ask"
try:
    BINS = sys.argv[1].split(",")
    N = int(sys.argv[2])
    GAP = float(sys.argv[3]) / 1000
    FLOW = sys.argv[4]
except (IndexError, ValueError):
    sys.exit(USAGE)
if FLOW not in ("health", "note", "ask") or N < 1 or GAP < 0:
    sys.exit(USAGE)
for b in BINS:
    if not (os.path.isfile(b) and os.access(b, os.X_OK)):
        sys.exit("cold-requests: %s is not an executable file" % b)
TIMEOUT = 30  # seconds for any one answer or frame: a lost one fails the run


class Daemon:
    def __init__(self, binary):
        self.home = tempfile.mkdtemp(prefix="cold-requests-")
        self.p = None
        cmd = [binary, "daemon", "run", "--listen", "127.0.0.1:0", "--home", self.home]
        self.log = open(self.home + "/daemon.log", "wb")
        self.p = subprocess.Popen(["taskset", "-c", os.environ.get("DCPU", "1")] + cmd,
                                  stdout=self.log, stderr=subprocess.STDOUT)
        d = None
        for _ in range(600):
            try:
                d = json.load(open(self.home + "/daemon.json"))
                break
            except (OSError, ValueError):
                if self.p.poll() is not None:
                    break
                time.sleep(0.1)
        if d is None:
            out = open(self.home + "/daemon.log", errors="replace").read()[-2000:]
            self.stop()
            raise SystemExit("cold-requests: %s did not start (on CPU %s):\n%s" % (
                binary, os.environ.get("DCPU", "1"), out))
        host, port = d["url"].split("//")[1].split(":")
        self.addr = (host, int(port))
        admin = open(self.home + "/token").read().strip()
        self.ca = http.client.HTTPConnection(*self.addr, timeout=TIMEOUT)
        self.cb = http.client.HTTPConnection(*self.addr, timeout=TIMEOUT)
        self.a = self.call(self.ca, "POST", "/v1/peers", admin, {"name": "a"})["token"]
        self.b = self.call(self.ca, "POST", "/v1/peers", admin, {"name": "b"})["token"]
        self.stream = socket.create_connection(self.addr, timeout=TIMEOUT)
        self.stream.sendall(("GET /v1/inbox/stream?max=50 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                             "Authorization: Bearer %s\r\n\r\n" % self.b).encode())
        self.f = self.stream.makefile("rb")
        while self.f.readline() not in (b"\r\n", b""):
            pass
        self.cpu = []

    def call(self, c, method, path, tok, body=None):
        h = {"Authorization": "Bearer " + tok}
        if body is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=None if body is None else json.dumps(body), headers=h)
        r = c.getresponse()
        out = r.read()
        assert r.status < 300, (method, path, r.status, out)
        return json.loads(out) if out else None

    def frame(self):
        data = None
        while True:
            line = self.f.readline()
            assert line, "the delivery stream ended"
            if line.startswith(b"data:"):
                data = json.loads(line[5:])
            elif line.strip() == b"" and data:
                return data

    def ns(self):
        total = 0
        for t in os.listdir("/proc/%d/task" % self.p.pid):
            try:
                total += int(open("/proc/%d/task/%s/schedstat" % (self.p.pid, t)).read().split()[0])
            except OSError:
                pass  # a thread that ended meanwhile
        return total

    def one(self, i):
        if FLOW == "health":
            self.call(self.ca, "GET", "/health", "")
        elif FLOW == "note":
            self.call(self.ca, "POST", "/v1/notify", self.a, {"to": "b", "text": "note %d" % i})
            self.call(self.cb, "POST", "/v1/inbox/confirm", self.b, {"ids": [self.frame()["delivery_id"]]})
        else:
            body = json.dumps({"to": "b", "text": "ping %d" % i, "wait_ms": 10000})
            self.ca.request("POST", "/v1/asks", body=body, headers={
                "Authorization": "Bearer " + self.a, "Content-Type": "application/json"})
            ask = self.frame()["correlation_id"]
            self.call(self.cb, "POST", "/v1/asks/%s/answer" % ask, self.b, {"text": "pong"})
            r = self.ca.getresponse()
            out = r.read()
            assert r.status == 200 and json.loads(out).get("done"), out

    def measure(self, i):
        before = self.ns()
        self.one(i)
        time.sleep(max(GAP, 0.002))  # the gap, and what the daemon does after its answer
        self.cpu.append((self.ns() - before) / 1000)

    def stop(self):
        if self.p is not None:
            self.p.kill()
            self.p.wait()
        self.log.close()
        shutil.rmtree(self.home, ignore_errors=True)


daemons = []
try:
    for b in BINS:
        daemons.append(Daemon(b))
    for d in daemons:
        for i in range(30):
            d.one(i)
    for i in range(N):
        for d in random.sample(daemons, len(daemons)):
            d.measure(i)
    for b, d in zip(BINS, daemons):
        c = sorted(d.cpu)
        print("%s, idle gap %g ms, %s: median %.1f us, mean %.1f, quartiles %.1f-%.1f (%d operations)" % (
            FLOW, GAP * 1000, b, statistics.median(c), statistics.mean(c),
            c[len(c) // 4], c[3 * len(c) // 4], len(c)))
finally:
    for d in daemons:
        d.stop()
