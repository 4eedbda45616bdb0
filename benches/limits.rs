//! Connection and stream limits of the real daemon process, on loopback only.
//!
//! `cargo bench --bench limits` (set `REPOWIRE_BENCH_QUICK=1` for a ~10x
//! smaller smoke run). Two figures:
//! 1. **Half-open connections and memory:** the daemon's RSS when idle, with
//!    5,000 connections that each sent half a request head, and after they
//!    close; once with the default connection cap (the excess is refused)
//!    and once with a cap above 5,000 (all of them held). Goal: after they
//!    close, RSS ≤ 2× idle.
//! 2. **Writes with open event streams:** sequential notes/s with 0, 50 and
//!    250 open `GET /v1/events/stream` streams (each its own peer token and
//!    reader), in one run. Goal: 250 streams ≥ 80% of none.
//!
//! Every daemon is SIGTERMed (then SIGKILLed) by a guard, also on panic.

#[allow(dead_code)]
mod common;

use common::{Daemon, cpu_time, rss_mib};
use repowire::api::{NotifyReq, RegisterReq};
use repowire::client::Client;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;

fn start(extra: &[&str]) -> Daemon {
    Daemon::start("repowire-bench-limits-", extra, |cmd| {
        cmd.env_remove("REPOWIRE_URL");
    })
    .0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "PASS" } else { "MISS" }
}

/// RSS once it has settled (two reads 300 ms apart within 2%).
fn settled_rss(pid: u32) -> f64 {
    let mut prev = rss_mib(pid).0;
    for _ in 0..20 {
        std::thread::sleep(Duration::from_millis(300));
        let now = rss_mib(pid).0;
        if (now - prev).abs() <= prev * 0.02 {
            return now;
        }
        prev = now;
    }
    prev
}

/// Open `n` connections that each send half a request head; returns them
/// and how many were answered with the `too_many_connections` refusal.
async fn half_open(addr: &str, n: usize) -> (Vec<tokio::net::TcpStream>, usize) {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n {
        let mut s = match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("connect {i} failed: {e}");
                break;
            }
        };
        let head = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nX-Half: {i:0>64}");
        let _ = s.write_all(head.as_bytes()).await;
        conns.push(s);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut refused = 0;
    let mut buf = [0u8; 512];
    for s in &conns {
        if let Ok(k) = s.try_read(&mut buf)
            && buf[..k].starts_with(b"HTTP/1.1 503")
            && buf[..k].windows(20).any(|w| w == b"too_many_connections")
        {
            refused += 1;
        }
    }
    (conns, refused)
}

struct MemRun {
    idle: f64,
    held: f64,
    after: f64,
    refused: usize,
}

async fn memory(extra: &[&str], n: usize) -> MemRun {
    let d = start(extra);
    let addr = d.url.trim_start_matches("http://").to_string();
    // Warm: a few ordinary requests, so "idle" is a daemon that has served.
    let admin = Client::new(&d.url, Some(d.admin_token()), None);
    for _ in 0..20 {
        admin.health().await.expect("health");
    }
    let idle = settled_rss(d.pid);
    let (conns, refused) = half_open(&addr, n).await;
    let held = rss_mib(d.pid).0;
    drop(conns);
    tokio::time::sleep(Duration::from_secs(1)).await;
    admin.health().await.expect("health after the flood");
    let after = settled_rss(d.pid);
    MemRun {
        idle,
        held,
        after,
        refused,
    }
}

fn mem_line(what: &str, n: usize, r: &MemRun) -> bool {
    let ok = r.after <= 2.0 * r.idle;
    println!(
        "  {what}: idle {:.1} MiB | {n} half-open ({} refused) {:.1} MiB | after they close {:.1} MiB = {:.2}x idle  [goal <= 2x: {}]",
        r.idle,
        r.refused,
        r.held,
        r.after,
        r.after / r.idle,
        verdict(ok)
    );
    ok
}

async fn register(admin: &Client, name: &str) -> String {
    admin
        .register(&RegisterReq {
            name: name.to_string(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|e| panic!("register {name}: {e}"))
        .token
        .expect("a new peer gets a token")
}

/// Open event streams read in the background, on their own thread and
/// runtime (as separate consumer processes would be: the writer's requests
/// never queue behind them), over raw TCP: bytes counted, drops noted.
struct Readers {
    rt: tokio::runtime::Runtime,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    bytes: Arc<AtomicU64>,
    dropped: Arc<AtomicBool>,
}

impl Readers {
    fn new() -> Self {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("readers runtime");
        Readers {
            rt,
            tasks: Vec::new(),
            bytes: Arc::new(AtomicU64::new(0)),
            dropped: Arc::new(AtomicBool::new(false)),
        }
    }

    fn open(&mut self, addr: String, token: String) {
        let (bytes, dropped) = (self.bytes.clone(), self.dropped.clone());
        self.tasks.push(self.rt.spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut s = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            let req = format!(
                "GET /v1/events/stream?tail=0 HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\r\n"
            );
            s.write_all(req.as_bytes()).await.expect("open stream");
            let mut buf = vec![0u8; 64 * 1024];
            let mut first = true;
            loop {
                let n = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                if first {
                    assert!(buf.starts_with(b"HTTP/1.1 200"), "stream refused");
                    first = false;
                }
                bytes.fetch_add(n as u64, Ordering::Relaxed);
                if buf[..n].windows(13).any(|w| w == b"event: lagged") {
                    dropped.store(true, Ordering::Relaxed);
                }
            }
        }));
    }

    fn len(&self) -> usize {
        self.tasks.len()
    }
}

/// `n` sequential notes; notes per second and daemon CPU per note.
async fn notes(d: &Daemon, sender: &Client, n: usize) -> (f64, f64) {
    let c0 = cpu_time(d.pid);
    let t0 = Instant::now();
    for i in 0..n {
        sender
            .notify(&NotifyReq {
                to: "receiver".into(),
                text: format!("bench note {i}: the build is green, carry on"),
                ..Default::default()
            })
            .await
            .expect("notify");
    }
    let el = t0.elapsed();
    let cpu = cpu_time(d.pid) - c0;
    (
        n as f64 / el.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / n as f64,
    )
}

#[tokio::main]
async fn main() {
    let quick = common::announce(
        "limits",
        "half-open connections and RSS; notes/s with open event streams",
    );
    let half = if quick { 500 } else { 5000 };
    let per_phase = if quick { 300 } else { 3000 };

    println!("\n[1] memory with {half} half-open connections (each half a request head)");
    let capped = memory(&[], half).await;
    let ok1 = mem_line("default cap (512)", half, &capped);
    let cap = (half + 1000).to_string();
    let all = memory(
        &["--max-connections", &cap, "--header-timeout", "60s"],
        half,
    )
    .await;
    let ok2 = mem_line(&format!("cap {cap}, all held"), half, &all);

    println!("\n[2] sequential notes/s with open event streams (one run, one daemon)");
    let d = start(&[]);
    let admin = Client::new(&d.url, Some(d.admin_token()), None);
    let sender = Client::new(&d.url, Some(register(&admin, "sender").await), None);
    register(&admin, "receiver").await;
    let mut tokens = Vec::new();
    for i in 0..250 {
        tokens.push(register(&admin, &format!("watcher{i:03}")).await);
    }
    notes(&d, &sender, per_phase / 10).await; // warm-up
    let addr = d.url.trim_start_matches("http://").to_string();
    let mut readers = Readers::new();
    let mut rates = Vec::new();
    for want in [0usize, 50, 250] {
        while readers.len() < want {
            readers.open(addr.clone(), tokens[readers.len()].clone());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        let b0 = readers.bytes.load(Ordering::Relaxed);
        let me0 = cpu_time(std::process::id());
        let (rate, cpu) = notes(&d, &sender, per_phase).await;
        let bench_cpu = (cpu_time(std::process::id()) - me0).as_secs_f64() * 1e6 / per_phase as f64;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let streamed = readers.bytes.load(Ordering::Relaxed) - b0;
        println!(
            "  {want:>3} streams: {rate:>7.0} notes/s  (daemon CPU {cpu:.0} us/note, bench CPU {bench_cpu:.0} us/note; {:.1} MiB streamed to readers)",
            streamed as f64 / 1048576.0
        );
        rates.push(rate);
    }
    let ratio = rates[2] / rates[0];
    let ok3 = ratio >= 0.8;
    println!(
        "  250 streams / none = {:.0}%  [goal >= 80%: {}]; a stream dropped as lagging: {}",
        ratio * 100.0,
        verdict(ok3),
        readers.dropped.load(Ordering::Relaxed)
    );
    for t in &readers.tasks {
        t.abort();
    }
    readers.rt.shutdown_background();
    println!(
        "\nsummary: memory {} / {}, streams {}",
        verdict(ok1),
        verdict(ok2),
        verdict(ok3)
    );
}
