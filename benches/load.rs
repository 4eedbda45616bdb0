//! Load benchmark of the real daemon process, on loopback only.
//!
//! `cargo bench --bench load` (set `REPOWIRE_BENCH_QUICK=1` for a ~10x smaller
//! smoke run). It spawns the release `repowire` binary with a fresh temp home
//! per daemon and measures: cold start to `/health`, idle RSS, notify
//! throughput (sequential and 16 concurrent clients) and the ask round trip.
//! Every daemon is SIGTERMed (then SIGKILLed) by a guard, also on panic.

use repowire::api::{LeaseReq, NotifyReq, RegisterReq};
use repowire::client::Client;
use repowire::core::delivery::DeliveryKind;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_repowire");

/// The predecessor (Python repowire 0.17) on this machine, and the targets.
const PY_COLD_MS: f64 = 1600.0;
const PY_RSS_MIB: f64 = 97.0;
const PY_NOTIFY_PER_S: f64 = 376.0;
const PY_ASK_P99_MS: f64 = 11.0;
const TARGET_COLD_MS: f64 = 20.0;
const TARGET_RSS_MIB: f64 = 10.0;
const TARGET_NOTIFY_PER_S: f64 = 20.0 * PY_NOTIFY_PER_S;
const TARGET_ASK_P99_MS: f64 = 1.0;

/// How much work each phase does.
struct Counts {
    cold_runs: usize,
    rss_runs: usize,
    seq_notifies: usize,
    conc_clients: usize,
    conc_total: usize,
    ask_warmup: usize,
    asks: usize,
}

impl Counts {
    fn new(quick: bool) -> Self {
        if quick {
            Counts {
                cold_runs: 3,
                rss_runs: 3,
                seq_notifies: 300,
                conc_clients: 16,
                conc_total: 800,
                ask_warmup: 5,
                asks: 100,
            }
        } else {
            Counts {
                cold_runs: 15,
                rss_runs: 5,
                seq_notifies: 3000,
                conc_clients: 16,
                conc_total: 8000,
                ask_warmup: 50,
                asks: 1000,
            }
        }
    }
}

/// A daemon process with its own temp home; killed (and the home removed) on drop.
struct Daemon {
    child: Child,
    pid: u32,
    url: String,
    home: PathBuf,
    log: PathBuf,
    // Dropped after `Drop::drop` has stopped the process.
    _dir: tempfile::TempDir,
}

/// What a cold start took.
struct Boot {
    to_record: Duration,
    to_health: Duration,
}

impl Daemon {
    /// Spawn `repowire --home <fresh> daemon run --listen 127.0.0.1:0 <extra>`
    /// and wait until `/health` answers, timing both steps.
    fn start(extra: &[&str]) -> (Daemon, Boot) {
        let dir = tempfile::Builder::new()
            .prefix("repowire-bench-")
            .tempdir()
            .expect("temp dir");
        // The home itself does not exist yet: the daemon creates it, as on a first start.
        let home = dir.path().join("home");
        let log = dir.path().join("daemon.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(BIN);
        cmd.arg("--home")
            .arg(&home)
            .args(["daemon", "run", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env_remove("REPOWIRE_URL")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file);
        let t0 = Instant::now();
        let child = cmd.spawn().expect("spawn the repowire daemon");
        let pid = child.id();
        let mut d = Daemon {
            child,
            pid,
            url: String::new(),
            home,
            log,
            _dir: dir,
        };
        let record = d.home.join("daemon.json");
        let mut to_record = None;
        loop {
            if t0.elapsed() > Duration::from_secs(10) {
                panic!(
                    "daemon did not answer /health within 10s; log:\n{}",
                    d.log_text()
                );
            }
            if let Some(st) = d.child.try_wait().expect("try_wait") {
                panic!("daemon exited at start ({st}); log:\n{}", d.log_text());
            }
            if to_record.is_none()
                && let Some(url) = read_record_url(&record, pid)
            {
                to_record = Some(t0.elapsed());
                d.url = url;
            }
            if to_record.is_some() && raw_health_ok(&d.url) {
                let boot = Boot {
                    to_record: to_record.unwrap_or_default(),
                    to_health: t0.elapsed(),
                };
                return (d, boot);
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    fn admin_token(&self) -> String {
        std::fs::read_to_string(self.home.join("token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGTERM, wait up to 3s, then SIGKILL.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        eprintln!("daemon pid {} ignored SIGTERM for 3s; killing", self.pid);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `(VmRSS, VmHWM)` in MiB.
    fn rss_mib(&self) -> (f64, f64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid))
            .expect("/proc/<pid>/status");
        let field = |name: &str| -> f64 {
            s.lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|kb| kb.parse::<f64>().ok())
                .map(|kb| kb / 1024.0)
                .unwrap_or(f64::NAN)
        };
        (field("VmRSS:"), field("VmHWM:"))
    }

    /// User + system CPU time of the daemon so far.
    fn cpu(&self) -> Duration {
        proc_cpu(&format!("/proc/{}/stat", self.pid))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `utime + stime` from a `/proc/.../stat` file.
fn proc_cpu(path: &str) -> Duration {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| f.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    Duration::from_secs_f64(ticks as f64 / clk_tck())
}

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// The `url` of `daemon.json`, once it describes process `pid`.
fn read_record_url(path: &Path, pid: u32) -> Option<String> {
    let s = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&s).ok()?;
    if v["pid"].as_u64() != Some(u64::from(pid)) {
        return None;
    }
    v["url"].as_str().map(str::to_string)
}

/// A bare `GET /health` over a fresh TCP connection: no client library in the timing.
fn raw_health_ok(url: &str) -> bool {
    let Some(addr) = url.strip_prefix("http://") else {
        return false;
    };
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf.starts_with(b"HTTP/1.1 200") && buf.windows(9).any(|w| w == b"\"ok\":true")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of an ascending slice.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

async fn register(admin: &Client, name: &str) -> Client {
    let resp = admin
        .register(&RegisterReq {
            name: name.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("register {name}: {e}"));
    let token = resp.token.expect("a new peer gets a token");
    // Its own reqwest pool: one client (and its connections) per peer.
    Client::new(&admin.base(), Some(token), None)
}

fn notify_req(to: &str, i: usize) -> NotifyReq {
    NotifyReq {
        to: to.to_string(),
        text: format!("bench note {i}: the build is green, carry on"),
        ..Default::default()
    }
}

struct Throughput {
    msgs: usize,
    elapsed: Duration,
    daemon_cpu: Duration,
    bench_cpu: Duration,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.msgs as f64 / self.elapsed.as_secs_f64()
    }
    fn detail(&self) -> String {
        format!(
            "n={} in {:.0} ms; daemon CPU {:.0} us/msg, bench-client CPU {:.0} us/msg",
            self.msgs,
            ms(self.elapsed),
            self.daemon_cpu.as_secs_f64() * 1e6 / self.msgs as f64,
            self.bench_cpu.as_secs_f64() * 1e6 / self.msgs as f64,
        )
    }
}

async fn notify_sequential(d: &Daemon, admin: &Client, n: usize) -> Throughput {
    let sender = register(admin, "sender").await;
    register(admin, "receiver").await;
    for i in 0..(n / 60).max(5) {
        sender
            .notify(&notify_req("receiver", i))
            .await
            .expect("warmup notify");
    }
    let (c0, b0) = (d.cpu(), proc_cpu("/proc/self/stat"));
    let t0 = Instant::now();
    for i in 0..n {
        sender
            .notify(&notify_req("receiver", i))
            .await
            .expect("notify");
    }
    let elapsed = t0.elapsed();
    Throughput {
        msgs: n,
        elapsed,
        daemon_cpu: d.cpu() - c0,
        bench_cpu: proc_cpu("/proc/self/stat") - b0,
    }
}

/// `clients` senders, each its own peer and connection pool; all to one
/// receiver (`shared`) or each to its own.
async fn notify_concurrent(
    d: &Daemon,
    admin: &Client,
    clients: usize,
    total: usize,
    tag: &str,
    shared: bool,
) -> Throughput {
    let per = total / clients;
    let mut senders = Vec::new();
    for k in 0..clients {
        let s = register(admin, &format!("{tag}-s{k:02}")).await;
        let to = if shared {
            format!("{tag}-r")
        } else {
            format!("{tag}-r{k:02}")
        };
        if !shared || k == 0 {
            register(admin, &to).await;
        }
        // Warm the connection pool.
        s.notify(&notify_req(&to, 0)).await.expect("warmup notify");
        senders.push((s, to));
    }
    let (c0, b0) = (d.cpu(), proc_cpu("/proc/self/stat"));
    let t0 = Instant::now();
    let tasks: Vec<_> = senders
        .into_iter()
        .map(|(s, to)| {
            tokio::spawn(async move {
                for i in 0..per {
                    s.notify(&notify_req(&to, i)).await.expect("notify");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("sender task");
    }
    let elapsed = t0.elapsed();
    Throughput {
        msgs: per * clients,
        elapsed,
        daemon_cpu: d.cpu() - c0,
        bench_cpu: proc_cpu("/proc/self/stat") - b0,
    }
}

struct AskStats {
    rtt: Vec<f64>,
    post: Vec<f64>,
}

/// A asks B; B long-polls its inbox, (optionally) confirms, and answers; A
/// waits. Without the explicit confirm, the answer itself settles the
/// delivery B holds (the daemon marks it delivered).
async fn ask_round_trips(admin: &Client, warmup: usize, n: usize, confirm: bool) -> AskStats {
    let tag = if confirm { "c" } else { "n" };
    let a = register(admin, &format!("asker-{tag}")).await;
    let b = register(admin, &format!("answerer-{tag}")).await;
    let answerer = tokio::spawn(async move {
        loop {
            let inbox = b
                .lease(&LeaseReq {
                    max: Some(100),
                    wait_ms: Some(5000),
                    lease_ms: None,
                })
                .await
                .expect("lease");
            if inbox.deliveries.is_empty() {
                continue;
            }
            let ids: Vec<String> = inbox
                .deliveries
                .iter()
                .map(|d| d.delivery_id.clone())
                .collect();
            if confirm {
                b.confirm(ids).await.expect("confirm");
            }
            for d in &inbox.deliveries {
                if d.kind == DeliveryKind::Ask
                    && let Some(id) = &d.correlation_id
                {
                    b.answer(id, "pong").await.expect("answer");
                }
            }
        }
    });
    let mut stats = AskStats {
        rtt: Vec::with_capacity(n),
        post: Vec::with_capacity(n),
    };
    for i in 0..warmup + n {
        let req = repowire::api::AskReq {
            to: format!("answerer-{tag}"),
            text: format!("ping {i}"),
            ..Default::default()
        };
        let t0 = Instant::now();
        let resp = a.ask(&req).await.expect("ask");
        let posted = t0.elapsed();
        let id = resp.ask.correlation_id;
        let w = a.wait(&id, Duration::from_secs(10)).await.expect("wait");
        let rtt = t0.elapsed();
        if answerer.is_finished() {
            panic!("the answerer loop stopped");
        }
        assert!(
            w.done,
            "ask {id} not done after 10s (state {:?})",
            w.ask.state
        );
        if i >= warmup {
            stats.rtt.push(ms(rtt));
            stats.post.push(ms(posted));
        }
    }
    answerer.abort();
    stats
}

fn main() {
    let quick = std::env::var("REPOWIRE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let c = Counts::new(quick);
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "repowire load bench ({} mode): real daemon `{BIN}`, loopback 127.0.0.1, {cpus} CPUs",
        if quick { "QUICK" } else { "full" }
    );

    // 1 + 2: cold start and idle RSS. One untimed start first to warm the page cache.
    drop(Daemon::start(&[]));
    let mut to_health = Vec::new();
    let mut to_record = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    for i in 0..c.cold_runs {
        let (d, boot) = Daemon::start(&[]);
        to_health.push(ms(boot.to_health));
        to_record.push(ms(boot.to_record));
        if i < c.rss_runs {
            std::thread::sleep(Duration::from_secs(1));
            let (r, h) = d.rss_mib();
            rss.push(r);
            hwm.push(h);
        }
        drop(d);
    }
    let to_health = sorted(to_health);
    let to_record = sorted(to_record);
    let rss = sorted(rss);
    let hwm = sorted(hwm);

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");

    // 3: notify throughput, one daemon.
    let (seq, conc, conc1, loaded_rss) = rt.block_on(async {
        let (d, _) = Daemon::start(&["--max-pending", "1000000"]);
        let admin = Client::new(&d.url, Some(d.admin_token()), None);
        admin.health().await.expect("typed client /health");
        let seq = notify_sequential(&d, &admin, c.seq_notifies).await;
        let conc = notify_concurrent(&d, &admin, c.conc_clients, c.conc_total, "m", false).await;
        let conc1 = notify_concurrent(&d, &admin, c.conc_clients, c.conc_total, "o", true).await;
        let loaded = d.rss_mib();
        (seq, conc, conc1, loaded)
    });

    // 4: ask round trips, a fresh daemon.
    let asks = rt.block_on(async {
        let (d, _) = Daemon::start(&["--max-pending", "1000000"]);
        let admin = Client::new(&d.url, Some(d.admin_token()), None);
        let full = ask_round_trips(&admin, c.ask_warmup, c.asks, true).await;
        let short = ask_round_trips(&admin, c.ask_warmup, c.asks, false).await;
        drop(d);
        (full, short)
    });

    let cold = pct(&to_health, 50.0);
    let rss_med = pct(&rss, 50.0);
    println!();
    println!(
        "cold start -> /health   median {:7.2} ms  p90 {:7.2} ms  (n={}; daemon.json at median {:.2} ms)   target <= {TARGET_COLD_MS} ms {}   vs py0.17 {PY_COLD_MS} ms: {:.0}x faster",
        cold,
        pct(&to_health, 90.0),
        to_health.len(),
        pct(&to_record, 50.0),
        verdict(cold <= TARGET_COLD_MS),
        PY_COLD_MS / cold,
    );
    println!(
        "idle RSS (1s after up)  median {:7.2} MiB (VmHWM {:.2} MiB, n={})   target <= {TARGET_RSS_MIB} MiB {}   vs py0.17 {PY_RSS_MIB} MiB: {:.1}x smaller",
        rss_med,
        pct(&hwm, 50.0),
        rss.len(),
        verdict(rss_med <= TARGET_RSS_MIB),
        PY_RSS_MIB / rss_med,
    );
    for (name, t) in [
        ("notify, 1 client seq  ", &seq),
        ("notify, 16 clients->16", &conc),
        ("notify, 16 clients->1 ", &conc1),
    ] {
        println!(
            "{name}  {:8.0} msg/s  ({})   target >= {TARGET_NOTIFY_PER_S:.0}/s {}   vs py0.17 {PY_NOTIFY_PER_S}/s: {:.1}x",
            t.rate(),
            t.detail(),
            verdict(t.rate() >= TARGET_NOTIFY_PER_S),
            t.rate() / PY_NOTIFY_PER_S,
        );
    }
    for (name, stats) in [
        ("ask rtt: lease, confirm, answer", asks.0),
        ("ask rtt: lease, answer        ", asks.1),
    ] {
        let rtt = sorted(stats.rtt);
        let post = sorted(stats.post);
        let p99 = pct(&rtt, 99.0);
        println!(
            "{name}  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={}; ask POST alone p50 {:.3} ms)   target p99 <= {TARGET_ASK_P99_MS} ms {}   vs py0.17 p99 {PY_ASK_P99_MS} ms: {:.1}x faster",
            pct(&rtt, 50.0),
            pct(&rtt, 90.0),
            p99,
            pct(&rtt, 100.0),
            rtt.len(),
            pct(&post, 50.0),
            verdict(p99 <= TARGET_ASK_P99_MS),
            PY_ASK_P99_MS / p99,
        );
    }
    println!(
        "RSS after notify load   VmRSS {:.2} MiB  VmHWM {:.2} MiB",
        loaded_rss.0, loaded_rss.1
    );
}
