//! The floor under the one-at-a-time rows: what the kernel alone charges a
//! server on this machine for the same exchanges and commits, with no work.
//!
//! `cargo bench --bench floor` (`REPOWIRE_BENCH_QUICK=1` for a smoke run).
//! One raw HTTP/1.1 client (std sockets, one request at a time on keep-alive
//! connections, as the load bench's rows) drives three servers in turn, in
//! interleaved rounds:
//! - the real daemon (`repowire daemon run`, a fresh temp home);
//! - a floor server with no commits: this bench's executable again
//!   (`--floor-server`), one thread serving every connection from an event
//!   loop, that reads a request and writes a canned answer (and, for a
//!   notify or an ask, a canned frame to the open delivery stream): the
//!   network pattern and nothing else;
//! - the same floor server committing one small row to a SQLite file with
//!   the store's settings (WAL, `synchronous=NORMAL`, 1 KiB pages) for each
//!   request the daemon commits for (notify, confirm, ask, answer).
//!
//! The patterns: `GET /health`; a bare notify (nobody reading); a note
//! delivered (notify, the receiver's stream frame, confirm); a blocking ask
//! (the ask held until answered, the answerer's stream frame, the answer,
//! which settles the delivery it holds). The figure is each server's own
//! CPU per operation from `/proc` (user + system), the median of the rounds. A daemon row below its commit floor would be a
//! measuring error; the gap above it is what the daemon's own work costs.
//!
//! Three placements, each its own table: where the scheduler puts client
//! and server; the client on CPU 0 and every server thread on CPU 1; both on
//! CPU 0 (`taskset`; with one CPU or no `taskset`, the first alone). Most of
//! an exchange's cost here is the answer waking a process on the other CPU,
//! so the placement moves every row.

#[allow(dead_code)]
mod common;

use common::{Daemon, cpu_time, pct, sorted, sys_time};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--floor-server") {
        floor_server(args.get(2).map(String::as_str) == Some("commit"));
        return;
    }
    let quick = common::announce(
        "floor",
        &format!(
            "real daemon `{}` vs bare servers",
            common::bin().to_string_lossy()
        ),
    );
    let (n, rounds) = if quick { (1000, 1) } else { (10_000, 3) };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let all = format!("0-{}", cpus - 1);
    // Pinned placements need two CPUs and `taskset` (util-linux).
    let placements: &[Placement] = if cpus >= 2 && pin(std::process::id(), &all) {
        &[Placement::Free, Placement::Apart, Placement::Same]
    } else {
        &[Placement::Free]
    };
    let me = std::process::id();
    for &placement in placements {
        let mut rows: Vec<[Vec<(f64, f64)>; 3]> =
            Pattern::ALL.iter().map(|_| Default::default()).collect();
        for _ in 0..rounds {
            for (server, kind) in [Server::Daemon, Server::Bare, Server::Commit]
                .into_iter()
                .enumerate()
            {
                // Started with every CPU allowed, then placed.
                assert!(placement == Placement::Free || pin(me, &all));
                let target = Target::start(kind);
                if let Some((client, server)) = placement.cpus() {
                    assert!(pin(target.pid, server) && pin(me, client), "taskset");
                }
                for (pattern, row) in rows.iter_mut().enumerate() {
                    row[server].push(target.measure(Pattern::ALL[pattern], n));
                }
            }
        }
        println!();
        println!(
            "{}: one at a time, server CPU per op, median of {rounds} round(s) of {n}: daemon | bare floor (network only) | floor with its commits   (system share in brackets)",
            placement.name()
        );
        for (pattern, row) in Pattern::ALL.iter().zip(&rows) {
            let [d, b, c] = row.clone().map(median);
            println!(
                "{:<40} daemon {:5.1} us ({:4.1}) | floor {:5.1} us ({:4.1}) | with commits {:5.1} us ({:4.1})   daemon / floor with commits {}",
                pattern.name(),
                d.0,
                d.1,
                b.0,
                b.1,
                c.0,
                c.1,
                // Under a clock tick per operation (a quick run) a floor can read 0.
                if c.0 > 0.0 {
                    format!("{:.2}x", d.0 / c.0)
                } else {
                    "n/a (too few operations for the clock tick)".into()
                },
            );
        }
    }
    if placements.len() > 1 {
        pin(me, &all);
    }
}

/// Where the client (this process) and the server run.
#[derive(Clone, Copy, PartialEq)]
enum Placement {
    /// Wherever the scheduler puts them.
    Free,
    /// The client on CPU 0, every thread of the server on CPU 1: each
    /// answer wakes a process on the other CPU.
    Apart,
    /// Both on CPU 0: no wake-up crosses CPUs.
    Same,
}

impl Placement {
    fn name(self) -> &'static str {
        match self {
            Placement::Free => "placed by the scheduler",
            Placement::Apart => "client on CPU 0, server on CPU 1",
            Placement::Same => "client and server on CPU 0",
        }
    }

    /// The CPUs of the client and the server, when pinned.
    fn cpus(self) -> Option<(&'static str, &'static str)> {
        match self {
            Placement::Free => None,
            Placement::Apart => Some(("0", "1")),
            Placement::Same => Some(("0", "0")),
        }
    }
}

/// Every thread of process `pid` to the CPUs `cpus` (`taskset -a -p -c`);
/// threads it starts later inherit that. Whether it worked.
fn pin(pid: u32, cpus: &str) -> bool {
    Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The median of (total, system) pairs, each by itself.
fn median(v: Vec<(f64, f64)>) -> (f64, f64) {
    let total = sorted(v.iter().map(|x| x.0).collect());
    let sys = sorted(v.iter().map(|x| x.1).collect());
    (pct(&total, 50.0), pct(&sys, 50.0))
}

#[derive(Clone, Copy)]
enum Server {
    Daemon,
    Bare,
    Commit,
}

#[derive(Clone, Copy)]
enum Pattern {
    Health,
    Notify,
    Delivered,
    Ask,
}

impl Pattern {
    const ALL: [Pattern; 4] = [
        Pattern::Health,
        Pattern::Notify,
        Pattern::Delivered,
        Pattern::Ask,
    ];

    fn name(self) -> &'static str {
        match self {
            Pattern::Health => "GET /health",
            Pattern::Notify => "bare notify (nobody reading)",
            Pattern::Delivered => "note delivered (notify, frame, confirm)",
            Pattern::Ask => "blocking ask (ask held, frame, answer)",
        }
    }
}

/// A server under measurement: its process and address, and the admin
/// token (the daemon's; the floor server takes any).
struct Target {
    pid: u32,
    addr: String,
    admin: String,
    _daemon: Option<Daemon>,
    _floor: Option<FloorChild>,
}

impl Target {
    fn start(kind: Server) -> Target {
        match kind {
            Server::Daemon => {
                let (d, ..) =
                    Daemon::start("repowire-floor-", &["--max-pending", "1000000"], |c| {
                        c.env_remove("REPOWIRE_URL");
                    });
                Target {
                    pid: d.pid,
                    addr: d.url.trim_start_matches("http://").to_string(),
                    admin: d.admin_token(),
                    _daemon: Some(d),
                    _floor: None,
                }
            }
            Server::Bare | Server::Commit => {
                let f = FloorChild::start(matches!(kind, Server::Commit));
                Target {
                    pid: f.child.id(),
                    addr: f.addr.clone(),
                    admin: "floor".into(),
                    _daemon: None,
                    _floor: Some(f),
                }
            }
        }
    }

    /// `n` operations of `pattern` (after a warm-up), and the server's CPU
    /// per operation in µs: (user + system, system).
    fn measure(&self, pattern: Pattern, n: usize) -> (f64, f64) {
        let mut admin = Conn::open(&self.addr);
        let tag = format!(
            "{}",
            std::time::UNIX_EPOCH.elapsed().unwrap().as_nanos() % 1_000_000_007
        );
        let token = |admin: &mut Conn, name: &str| -> String {
            let (status, body) = admin.call(
                "POST",
                "/v1/peers",
                &self.admin,
                Some(&format!("{{\"name\":\"{name}\"}}")),
            );
            assert_eq!(
                status,
                200,
                "register {name}: {}",
                String::from_utf8_lossy(&body)
            );
            let v: serde_json::Value = serde_json::from_slice(&body).expect("register answer");
            v["token"].as_str().expect("a token").to_string()
        };
        let (sender, receiver) = (format!("s{tag}"), format!("r{tag}"));
        let s_tok = token(&mut admin, &sender);
        let r_tok = token(&mut admin, &receiver);
        let mut a = Conn::open(&self.addr);
        let mut c = Conn::open(&self.addr);
        let mut stream = match pattern {
            Pattern::Delivered | Pattern::Ask => Some(Stream::open(&self.addr, &r_tok)),
            _ => None,
        };
        let notify = |a: &mut Conn, i: usize| {
            let body = format!("{{\"to\":\"{receiver}\",\"text\":\"hello {i}\"}}");
            let (status, answer) = a.call("POST", "/v1/notify", &s_tok, Some(&body));
            assert_eq!(status, 200, "notify: {}", String::from_utf8_lossy(&answer));
        };
        let mut one = |i: usize| match pattern {
            Pattern::Health => {
                let (status, _) = a.call("GET", "/health", "", None);
                assert_eq!(status, 200);
            }
            Pattern::Notify => notify(&mut a, i),
            Pattern::Delivered => {
                notify(&mut a, i);
                let (id, _) = stream.as_mut().expect("a stream").next_event();
                let body = format!("{{\"ids\":[\"{id}\"]}}");
                let (status, answer) = c.call("POST", "/v1/inbox/confirm", &r_tok, Some(&body));
                assert_eq!(status, 200, "confirm: {}", String::from_utf8_lossy(&answer));
            }
            Pattern::Ask => {
                // The ask is held until answered (the daemon's `wait_ms`); the
                // answerer hears of it on its stream and answers, which settles
                // the delivery it holds (no confirm), as `repowire mcp` does.
                let body =
                    format!("{{\"to\":\"{receiver}\",\"text\":\"ping {i}\",\"wait_ms\":10000}}");
                a.send("POST", "/v1/asks", &s_tok, Some(&body));
                let (_, data) = stream.as_mut().expect("a stream").next_event();
                let d: serde_json::Value = serde_json::from_str(&data).expect("a delivery");
                let ask = d["correlation_id"].as_str().expect("an ask's delivery");
                let path = format!("/v1/asks/{ask}/answer");
                let (status, answer) = c.call("POST", &path, &r_tok, Some("{\"text\":\"pong\"}"));
                assert_eq!(status, 200, "answer: {}", String::from_utf8_lossy(&answer));
                let (status, answer) = a.answer("POST /v1/asks");
                let v: serde_json::Value = serde_json::from_slice(&answer).expect("ask answer");
                assert!(status == 200 && v["done"] == true, "ask: {v}");
            }
        };
        for i in 0..(n / 20).max(20) {
            one(i);
        }
        let (c0, s0) = (cpu_time(self.pid), sys_time(self.pid));
        for i in 0..n {
            one(i);
        }
        let (c1, s1) = (cpu_time(self.pid), sys_time(self.pid));
        let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
        (per(c1 - c0), per(s1 - s0))
    }
}

/// A client connection: no Nagle delay, and a read that gives up after 10 s
/// (a lost answer fails the bench instead of hanging it).
fn connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s
}

/// One keep-alive connection, one request at a time.
struct Conn {
    r: BufReader<TcpStream>,
    host: String,
}

impl Conn {
    fn open(addr: &str) -> Conn {
        Conn {
            r: BufReader::new(connect(addr)),
            host: addr.to_string(),
        }
    }

    /// A request and its answer's status and body (`content-length` bodies only).
    fn call(
        &mut self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&str>,
    ) -> (u16, Vec<u8>) {
        self.send(method, path, token, body);
        self.answer(&format!("{method} {path}"))
    }

    /// Send a request, not waiting for its answer.
    fn send(&mut self, method: &str, path: &str, token: &str, body: Option<&str>) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {}\r\n", self.host);
        if !token.is_empty() {
            req += &format!("authorization: Bearer {token}\r\n");
        }
        if let Some(b) = body {
            req += &format!(
                "content-type: application/json\r\ncontent-length: {}\r\n\r\n{b}",
                b.len()
            );
        } else {
            req += "\r\n";
        }
        self.r.get_mut().write_all(req.as_bytes()).expect("send");
    }

    /// The answer to the request sent last: its status and body.
    fn answer(&mut self, what: &str) -> (u16, Vec<u8>) {
        let (status, headers) = read_head(&mut self.r);
        let len = header(&headers, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or_else(|| panic!("{what}: no content-length in {headers:?}"));
        let mut body = vec![0; len];
        self.r.read_exact(&mut body).expect("answer body");
        (status, body)
    }
}

/// A status line and headers, lower-cased names.
fn read_head(r: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut line = String::new();
    r.read_line(&mut line).expect("status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).expect("header");
        let l = line.trim_end();
        if l.is_empty() {
            return (status, headers);
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// The receiver's delivery stream: Server-Sent Events in a chunked answer.
struct Stream {
    r: BufReader<TcpStream>,
    text: String,
}

impl Stream {
    fn open(addr: &str, token: &str) -> Stream {
        let mut r = BufReader::new(connect(addr));
        let req = format!(
            "GET /v1/inbox/stream?max=50 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {token}\r\n\r\n"
        );
        r.get_mut().write_all(req.as_bytes()).expect("send");
        let (status, headers) = read_head(&mut r);
        assert_eq!(status, 200, "stream: {headers:?}");
        assert_eq!(header(&headers, "transfer-encoding"), Some("chunked"));
        Stream {
            r,
            text: String::new(),
        }
    }

    /// The `id:` and `data:` of the next event that has an id (keep-alives skipped).
    fn next_event(&mut self) -> (String, String) {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                let field = |name: &str| {
                    event
                        .lines()
                        .find_map(|l| l.strip_prefix(name))
                        .map(|v| v.trim().to_string())
                };
                if let Some(id) = field("id:") {
                    return (id, field("data:").unwrap_or_default());
                }
            }
            let mut size = String::new();
            self.r.read_line(&mut size).expect("chunk size");
            let len = usize::from_str_radix(size.trim(), 16).expect("chunk size");
            assert!(len > 0, "the delivery stream ended");
            let mut data = vec![0; len + 2];
            self.r.read_exact(&mut data).expect("chunk");
            self.text
                .push_str(std::str::from_utf8(&data[..len]).expect("utf-8"));
        }
    }
}

/// The floor server as a child process, stopped on drop.
struct FloorChild {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl FloorChild {
    fn start(commit: bool) -> FloorChild {
        let dir = tempfile::Builder::new()
            .prefix("repowire-floor-")
            .tempdir()
            .expect("temp dir");
        let mut child = Command::new(std::env::current_exe().expect("this executable"))
            .arg("--floor-server")
            .arg(if commit { "commit" } else { "bare" })
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the floor server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the floor server's address");
        FloorChild {
            child,
            addr: line.trim().to_string(),
            _dir: dir,
        }
    }
}

impl Drop for FloorChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The floor server: prints its address, serves until its stdin closes.
/// One thread, an event loop (tokio's current-thread runtime, as the
/// daemon's sockets are served): no hop between threads that the pattern
/// does not need. With `commit`, one row committed per notify, confirm,
/// ask and answer to `floor.db` in the working directory.
fn floor_server(commit: bool) {
    let db = commit.then(|| {
        let c = rusqlite::Connection::open("floor.db").expect("floor.db");
        c.pragma_update(None, "page_size", 1024).expect("page_size");
        let mode: String = c
            .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
            .expect("wal");
        assert_eq!(mode, "wal");
        c.pragma_update(None, "synchronous", "NORMAL")
            .expect("sync");
        c.pragma_update(None, "wal_autocheckpoint", 10_000)
            .expect("checkpoint");
        c.execute_batch("CREATE TABLE t (seq INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .expect("table");
        c
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        std::thread::spawn(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0);
        });
        let shared = Arc::new(Shared {
            db: db.map(Mutex::new),
            stream: Mutex::new(None),
            frames: Mutex::new(0),
            answered: Mutex::new(0),
            answer: tokio::sync::Notify::new(),
        });
        loop {
            let (conn, _) = listener.accept().await.expect("accept");
            conn.set_nodelay(true).expect("nodelay");
            tokio::spawn(serve_floor(conn, shared.clone()));
        }
    });
}

/// What the floor server's connections share: the SQLite file (with
/// `commit`), the open delivery stream, and the answers given so far (a
/// held ask waits for the next one).
struct Shared {
    db: Option<Mutex<rusqlite::Connection>>,
    stream: Mutex<Option<tokio::net::tcp::OwnedWriteHalf>>,
    frames: Mutex<u64>,
    answered: Mutex<u64>,
    answer: tokio::sync::Notify,
}

/// All of `bytes` to a socket with room for them (a frame or an answer head
/// into an empty send buffer: one `write`, no waiting).
fn put(w: &tokio::net::tcp::OwnedWriteHalf, bytes: &[u8]) {
    assert_eq!(
        w.try_write(bytes).expect("write"),
        bytes.len(),
        "a short write"
    );
}

impl Shared {
    /// A canned delivery frame to the open stream, if one is open.
    fn frame(&self, kind: &str) {
        if let Some(s) = self.stream.lock().expect("stream").as_ref() {
            let mut n = self.frames.lock().expect("frames");
            *n += 1;
            let event = format!(
                "event: delivery\nid: dlv-floor-{n}\ndata: {{\"delivery_id\":\"dlv-floor-{n}\",\"kind\":\"{kind}\",\"correlation_id\":\"ask-floor-{n}\",\"from\":\"s\",\"text\":\"hello\"}}\n\n"
            );
            put(s, format!("{:x}\r\n{event}\r\n", event.len()).as_bytes());
        }
    }

    fn commit(&self, body: &[u8]) {
        if let Some(db) = &self.db {
            let mut c = db.lock().expect("db");
            let tx = c.transaction().expect("begin");
            tx.prepare_cached("INSERT INTO t (v) VALUES (?1)")
                .expect("insert")
                .execute([String::from_utf8_lossy(body)])
                .expect("insert");
            tx.commit().expect("commit");
        }
    }
}

async fn serve_floor(conn: tokio::net::TcpStream, shared: Arc<Shared>) {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};
    let (r, w) = conn.into_split();
    let mut r = tokio::io::BufReader::new(r);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
        let mut len = 0;
        loop {
            line.clear();
            r.read_line(&mut line).await.expect("header");
            if line.trim_end().is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse().expect("content-length");
            }
        }
        let mut body = vec![0; len];
        r.read_exact(&mut body).await.expect("body");
        let answer = match path.as_str() {
            "/v1/peers" => "{\"token\":\"floor\"}",
            "/v1/notify" => {
                shared.commit(&body);
                "{\"delivery_id\":\"dlv-floor\",\"queued_offline\":false}"
            }
            "/v1/inbox/confirm" => {
                shared.commit(&body);
                "{\"confirmed\":1}"
            }
            "/v1/asks" => {
                shared.commit(&body);
                let next = *shared.answered.lock().expect("answered") + 1;
                shared.frame("ask");
                while *shared.answered.lock().expect("answered") < next {
                    shared.answer.notified().await;
                }
                "{\"done\":true}"
            }
            p if p.starts_with("/v1/asks/") => {
                shared.commit(&body);
                *shared.answered.lock().expect("answered") += 1;
                shared.answer.notify_waiters();
                "{\"ok\":true}"
            }
            p if p.starts_with("/v1/inbox/stream") => {
                // Taken as the stream before its head goes out: a request
                // sent once the head is read finds it.
                let mut slot = shared.stream.lock().expect("stream");
                put(
                    &w,
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
                );
                *slot = Some(w);
                return;
            }
            _ => "{\"ok\":true}",
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
            answer.len()
        );
        put(&w, head.as_bytes());
        if path == "/v1/notify" {
            shared.frame("notify");
        }
    }
}
