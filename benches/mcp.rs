//! MCP tool-call round trips through real `repowire mcp` sessions, on loopback only.
//!
//! `cargo bench --bench mcp` (set `REPOWIRE_BENCH_QUICK=1` for a ~10x smaller
//! smoke run). It spawns the release `repowire` binary as a daemon in a fresh
//! temp home, then two `repowire mcp` child processes driven by a real MCP
//! client (rmcp over stdio): `a` (`--delivery pull`) and `b` (`--delivery
//! push`); `c` is a plain registered peer that nothing leases. It measures:
//!
//! 1. the ask cycle: a's `ask` → b's push (the `notifications/claude/channel`
//!    event carrying the correlation id) → b's `answer` → a's `wait_on_ack`
//!    returning `done=true`, timed as a whole and by part;
//! 2. `notify_peer` a → b: one tool call, waited for, one at a time;
//! 3. the same note sent by a's own peer identity with the HTTP client
//!    (`repowire::client::Client::notify`), interleaved with 2 in blocks so
//!    both see the same machine and daemon state: the MCP / HTTP ratio.
//!
//! 2 and 3 are repeated to c, where no push traffic follows each note.
//! Each series also reports the p50 of its first and last tenth, since a
//! recipient's lease gets slower as its delivered history grows.
//! Every child (the daemon and both sessions) is stopped by a guard, also on
//! panic.

#[allow(dead_code)]
mod common;

use common::{Daemon, bin, cpu_time, ms, pct, rss_mib, signal, sorted};
use repowire::api::{NotifyReq, RegisterReq};
use repowire::client::Client;
use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::service::{RoleClient, RunningService, Service};
use rmcp::transport::{ConfigureCommandExt, TokioChildProcess};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long any single tool call or push may take before the bench gives up
/// (a hang guard, not a measurement).
const STUCK: Duration = Duration::from_secs(30);

/// How much work each phase does.
struct Counts {
    notify_warmup: usize,
    notifies: usize,
    block: usize,
    ask_warmup: usize,
    asks: usize,
}

impl Counts {
    fn new(quick: bool) -> Self {
        if quick {
            Counts {
                notify_warmup: 20,
                notifies: 200,
                block: 50,
                ask_warmup: 5,
                asks: 50,
            }
        } else {
            Counts {
                notify_warmup: 100,
                notifies: 2000,
                block: 100,
                ask_warmup: 50,
                asks: 500,
            }
        }
    }
}

/// The pids of the `repowire mcp` children. On drop (normal end or panic),
/// any that is still running is SIGTERMed, then SIGKILLed. The sessions are
/// also spawned with `kill_on_drop`, and closed gracefully on the normal path;
/// this guard is for a panic, where rmcp's own cleanup (a spawned task) may
/// never run.
#[derive(Default)]
struct Reaper(Mutex<Vec<u32>>);

impl Reaper {
    fn add(&self, pid: u32) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    }
}

/// Is `pid` still a live (not zombie) `repowire` child of this process?
/// (A pid that was reaped and reused by something else is left alone.)
fn our_live_child(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let Some((head, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    let comm_ok = head.ends_with("(repowire");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let state_ok = f.first().is_some_and(|s| *s != "Z" && *s != "X");
    let ppid_ok = f.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(std::process::id());
    comm_ok && state_ok && ppid_ok
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let pids = std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()));
        let live: Vec<u32> = pids.into_iter().filter(|&p| our_live_child(p)).collect();
        if live.is_empty() {
            return;
        }
        for &p in &live {
            signal("-TERM", p);
        }
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline && live.iter().any(|&p| our_live_child(p)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for &p in &live {
            if our_live_child(p) {
                eprintln!("mcp session pid {p} ignored SIGTERM for 3s; killing");
                signal("-KILL", p);
            }
        }
    }
}

/// `repowire mcp --name NAME --backend claude-code --delivery DELIVERY` in
/// the daemon's home; its stderr goes to a log file next to the home.
fn transport(d: &Daemon, reaper: &Reaper, name: &str, delivery: &str) -> TokioChildProcess {
    let home = d.home.clone();
    let log = std::fs::File::create(d.dir.path().join(format!("mcp-{name}.log"))).expect("log");
    let cmd = tokio::process::Command::new(bin()).configure(|c| {
        c.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("REPOWIRE_HOME", &home)
            .args(["mcp", "--backend", "claude-code"])
            .args(["--name", name, "--delivery", delivery])
            .kill_on_drop(true);
    });
    let (t, _) = TokioChildProcess::builder(cmd)
        .stderr(log)
        .spawn()
        .expect("spawn repowire mcp");
    reaper.add(t.id().expect("the session's pid"));
    t
}

/// The client side of the push session: ask events go to the bench, other
/// channel events (the notes) are only counted.
#[derive(Clone)]
struct Catcher {
    asks: tokio::sync::mpsc::UnboundedSender<Value>,
    notes: Arc<AtomicUsize>,
}

impl rmcp::ClientHandler for Catcher {
    async fn on_custom_notification(
        &self,
        n: rmcp::model::CustomNotification,
        _ctx: rmcp::service::NotificationContext<RoleClient>,
    ) {
        if n.method != "notifications/claude/channel" {
            return;
        }
        let params = n.params.unwrap_or(Value::Null);
        if params["meta"]["kind"] == "ask" {
            let _ = self.asks.send(params);
        } else {
            self.notes.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Call a tool and return its structured content; panics on an error result.
async fn call<C: Service<RoleClient>>(
    s: &RunningService<RoleClient, C>,
    tool: &str,
    args: Value,
) -> Value {
    let mut p = CallToolRequestParams::new(tool.to_string());
    if let Value::Object(m) = args {
        p = p.with_arguments(m);
    }
    let r = tokio::time::timeout(STUCK, s.call_tool(p))
        .await
        .unwrap_or_else(|_| panic!("{tool}: no result after {STUCK:?}"))
        .unwrap_or_else(|e| panic!("{tool}: {e}"));
    let v = r.structured_content.unwrap_or(Value::Null);
    if r.is_error.unwrap_or(false) {
        panic!("{tool} failed: {v}");
    }
    v
}

fn note(i: usize) -> String {
    format!("bench note {i}: the build is green, carry on")
}

/// Latencies in run order (ms).
struct Series(Vec<f64>);

impl Series {
    fn sorted(&self) -> Vec<f64> {
        sorted(self.0.clone())
    }
    fn p(&self, q: f64) -> f64 {
        pct(&self.sorted(), q)
    }
    /// p50 of the first and of the last tenth of the run.
    fn drift(&self) -> (f64, f64) {
        let k = (self.0.len() / 10).max(1);
        let head = sorted(self.0[..k].to_vec());
        let tail = sorted(self.0[self.0.len() - k..].to_vec());
        (pct(&head, 50.0), pct(&tail, 50.0))
    }
    fn line(&self, name: &str) -> String {
        let v = self.sorted();
        let (h, t) = self.drift();
        format!(
            "{name}  p50 {:7.3} ms  p90 {:7.3} ms  p99 {:7.3} ms  max {:7.3} ms  (n={}; p50 first/last tenth {h:.3}/{t:.3})",
            pct(&v, 50.0),
            pct(&v, 90.0),
            pct(&v, 99.0),
            pct(&v, 100.0),
            v.len()
        )
    }
}

/// One notify pairing: the same note by MCP and by HTTP, to one recipient.
struct NotifyPair {
    mcp: Series,
    http: Series,
    /// CPU of a's `repowire mcp` process per `notify_peer` call.
    a_cpu_us: f64,
    /// The daemon's CPU per note sent by MCP, and by HTTP (to b: with what
    /// b's session does to receive it in the meantime).
    d_cpu_us: (f64, f64),
}

struct Results {
    cycle: Series,
    /// The cycle's parts, in order: ask tool, push arrival after the ask
    /// returned, answer tool, wait_on_ack tool.
    parts: [Series; 4],
    to_b: NotifyPair,
    to_c: NotifyPair,
    rss: (f64, f64),
    /// The daemon's CPU per ask cycle.
    cycle_d_cpu_us: f64,
}

struct Peers<'a, C: Service<RoleClient>> {
    a: &'a RunningService<RoleClient, C>,
    a_pid: u32,
    /// The daemon's pid.
    d_pid: u32,
    /// The HTTP client acting as a.
    http: &'a Client,
}

/// `warmup` then `n` notes to `to`: `block` by MCP, then `block` by HTTP, and so on.
async fn notify_pair<C: Service<RoleClient>>(p: &Peers<'_, C>, to: &str, c: &Counts) -> NotifyPair {
    let by_mcp = |i: usize| async move {
        let t0 = Instant::now();
        let r = call(
            p.a,
            "notify_peer",
            json!({"peer_name": to, "message": note(i)}),
        )
        .await;
        let t = t0.elapsed();
        assert!(r["delivery_id"].is_string(), "{r}");
        ms(t)
    };
    let by_http = |i: usize| async move {
        let req = NotifyReq {
            to: to.to_string(),
            text: note(i),
            ..Default::default()
        };
        let t0 = Instant::now();
        p.http.notify(&req).await.expect("HTTP notify");
        ms(t0.elapsed())
    };
    for i in 0..c.notify_warmup {
        by_mcp(i).await;
        by_http(i).await;
    }
    let mut mcp = Vec::with_capacity(c.notifies);
    let mut http = Vec::with_capacity(c.notifies);
    let mut a_cpu = Duration::ZERO;
    let (mut d_mcp, mut d_http) = (Duration::ZERO, Duration::ZERO);
    let mut i = 0;
    while i < c.notifies {
        let n = c.block.min(c.notifies - i);
        let (cpu0, d0) = (cpu_time(p.a_pid), cpu_time(p.d_pid));
        for k in i..i + n {
            mcp.push(by_mcp(k).await);
        }
        a_cpu += cpu_time(p.a_pid).saturating_sub(cpu0);
        let d1 = cpu_time(p.d_pid);
        d_mcp += d1.saturating_sub(d0);
        for k in i..i + n {
            http.push(by_http(k).await);
        }
        d_http += cpu_time(p.d_pid).saturating_sub(d1);
        i += n;
    }
    let per = |d: Duration| d.as_secs_f64() * 1e6 / c.notifies as f64;
    NotifyPair {
        mcp: Series(mcp),
        http: Series(http),
        a_cpu_us: per(a_cpu),
        d_cpu_us: (per(d_mcp), per(d_http)),
    }
}

async fn run(d: &Daemon, reaper: &Reaper, c: &Counts) -> Results {
    let admin = Client::new(&d.url, Some(d.admin_token()), None);
    admin.health().await.expect("daemon /health");
    // c: a peer with no session that never takes its inbox (notes to it are only stored).
    admin
        .register(&RegisterReq {
            name: "c".into(),
            ..Default::default()
        })
        .await
        .expect("register c");

    // The sessions. `b` first, so that it exists when `a` sends to it.
    let (ask_tx, mut ask_rx) = tokio::sync::mpsc::unbounded_channel();
    let notes = Arc::new(AtomicUsize::new(0));
    let tb = transport(d, reaper, "b", "push");
    let b_pid = tb.id().expect("b's pid");
    let b = Catcher {
        asks: ask_tx,
        notes: notes.clone(),
    }
    .serve(tb)
    .await
    .expect("b's MCP session");
    let ta = transport(d, reaper, "a", "pull");
    let a_pid = ta.id().expect("a's pid");
    let a = ().serve(ta).await.expect("a's MCP session");
    let me = call(&a, "whoami", json!({})).await;
    assert_eq!(me["name"], "a", "{me}");

    // The direct HTTP client acts as the same peer `a`, with its session's token.
    let circle = me["circle"]
        .as_str()
        .unwrap_or(repowire::core::peer::DEFAULT_CIRCLE);
    let token = std::fs::read_to_string(d.home.join("mcp").join(format!("{circle}@a.token")))
        .expect("a's peer token");
    let http = Client::new(&d.url, Some(token.trim().to_string()), None);

    // 1: ask → push to b → answer → wait_on_ack. First, while b's delivery
    // history is short (docs/benchmarks.md: leases once cost more as it grew; migrations 7 and 12).
    let mut cycle = Vec::with_capacity(c.asks);
    let mut parts: [Vec<f64>; 4] = Default::default();
    let mut d_cpu0 = Duration::ZERO;
    for i in 0..c.ask_warmup + c.asks {
        if i == c.ask_warmup {
            d_cpu0 = cpu_time(d.pid);
        }
        let t0 = Instant::now();
        let asked = call(
            &a,
            "ask",
            json!({"peer_name": "b", "query": format!("ping {i}: which branch?")}),
        )
        .await;
        let t_ask = t0.elapsed();
        let id = asked["correlation_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no correlation_id: {asked}"))
            .to_string();
        let ev = tokio::time::timeout(STUCK, ask_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("ask {id} was not pushed to b"))
            .expect("b's session is gone");
        let t_push = t0.elapsed();
        assert_eq!(ev["meta"]["correlation_id"], id.as_str(), "{ev}");
        call(&b, "answer", json!({"correlation_id": id, "text": "main"})).await;
        let t_answer = t0.elapsed();
        let w = call(
            &a,
            "wait_on_ack",
            json!({"correlation_id": id, "timeout_seconds": 10}),
        )
        .await;
        let t_wait = t0.elapsed();
        assert_eq!(w["done"], true, "ask {id} not done: {w}");
        if i >= c.ask_warmup {
            cycle.push(ms(t_wait));
            parts[0].push(ms(t_ask));
            parts[1].push(ms(t_push - t_ask));
            parts[2].push(ms(t_answer - t_push));
            parts[3].push(ms(t_wait - t_answer));
        }
    }

    let cycle_d_cpu_us =
        (cpu_time(d.pid).saturating_sub(d_cpu0)).as_secs_f64() * 1e6 / c.asks as f64;

    // 2 + 3: notify a → b (pushed into b's session) by MCP and by HTTP, interleaved.
    let peers = Peers {
        a: &a,
        a_pid,
        d_pid: d.pid,
        http: &http,
    };
    let to_b = notify_pair(&peers, "b", c).await;
    // Let b's push catch up with every note (untimed), so the next phase starts quiet.
    let sent = 2 * (c.notify_warmup + c.notifies);
    let t0 = Instant::now();
    while notes.load(Ordering::Relaxed) < sent {
        assert!(
            t0.elapsed() < STUCK,
            "b was pushed {} of {sent} notes",
            notes.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The same to c, whom nothing leases: the MCP overhead without push traffic.
    let to_c = notify_pair(&peers, "c", c).await;
    let rss = (rss_mib(a_pid).0, rss_mib(b_pid).0);

    // Close both sessions the normal way (stdin closed; each marks its peer offline).
    a.cancel().await.expect("close a");
    b.cancel().await.expect("close b");

    Results {
        cycle: Series(cycle),
        parts: parts.map(Series),
        to_b,
        to_c,
        rss,
        cycle_d_cpu_us,
    }
}

fn main() {
    let c = Counts::new(common::announce(
        "MCP",
        &format!(
            "real daemon and `repowire mcp` sessions of `{}`",
            bin().to_string_lossy()
        ),
    ));
    // Dropped in reverse order: the sessions' reaper, then the daemon.
    // A clean environment: only PATH, and the daemon logs warnings only.
    let (daemon, ..) = Daemon::start(
        "repowire-bench-mcp-",
        &["--max-pending", "1000000"],
        |cmd| {
            cmd.env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUST_LOG", "warn");
        },
    );
    let reaper = Reaper::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let t0 = Instant::now();
    // Ctrl-C becomes a panic, so that the guards below still stop every child.
    let r = rt.block_on(async {
        tokio::select! {
            r = run(&daemon, &reaper, &c) => r,
            _ = tokio::signal::ctrl_c() => panic!("interrupted"),
        }
    });
    let took = t0.elapsed();
    drop(rt);
    drop(reaper);
    drop(daemon);

    println!();
    println!("{}", r.cycle.line("ask -> push -> answer -> wait (MCP)"));
    let names = ["ask tool", "push to b", "answer tool", "wait_on_ack tool"];
    let parts: Vec<String> = names
        .iter()
        .zip(&r.parts)
        .map(|(n, v)| format!("{n} {:.3}/{:.3}", v.p(50.0), v.p(99.0)))
        .collect();
    println!("  cycle parts, p50/p99 ms: {}", parts.join(", "));
    println!("  daemon CPU {:.0} us per cycle", r.cycle_d_cpu_us);
    for (to, pair) in [("b, push session", &r.to_b), ("c, never leased", &r.to_c)] {
        println!("notify a -> {to}:");
        println!("{}", pair.mcp.line("  notify_peer via MCP              "));
        println!("{}", pair.http.line("  notify via HTTP client           "));
        println!(
            "  daemon CPU per note: {:.0} us via MCP, {:.0} us via HTTP",
            pair.d_cpu_us.0, pair.d_cpu_us.1
        );
        println!(
            "  MCP / HTTP                         p50 {:.2}x  p90 {:.2}x  p99 {:.2}x  (MCP adds {:.3} ms at p50; a's mcp process CPU {:.0} us per notify_peer)",
            pair.mcp.p(50.0) / pair.http.p(50.0),
            pair.mcp.p(90.0) / pair.http.p(90.0),
            pair.mcp.p(99.0) / pair.http.p(99.0),
            pair.mcp.p(50.0) - pair.http.p(50.0),
            pair.a_cpu_us,
        );
    }
    println!(
        "mcp session RSS at the end: a {:.1} MiB, b {:.1} MiB; run took {:.1} s",
        r.rss.0,
        r.rss.1,
        took.as_secs_f64()
    );
}
