//! Load benchmark of the real daemon process, on loopback only.
//!
//! `cargo bench --bench load` (set `REPOWIRE_BENCH_QUICK=1` for a ~10x smaller
//! smoke run). It spawns the release `repowire` binary with a fresh temp home
//! per daemon and measures: cold start to `/health`, idle RSS, notify
//! throughput (sequential and 16 concurrent clients), a note delivered to a
//! live consumer (notify, its delivery stream, confirm; one at a time and from
//! 16 senders at once), the ask round trip (one at a time, 16 pairs at
//! once, and 16 pairs among 400 idle delivery streams), and the floor under them all (a
//! `GET /health` that does nothing). `REPOWIRE_BENCH_ONLY=delivered` runs the
//! delivered-note rows alone, `REPOWIRE_BENCH_ONLY=asks` the round trips of 16
//! pairs at once (to profile the daemon under them).
//! Every daemon is SIGTERMed (then SIGKILLed) by a guard, also on panic.

mod common;

use common::{Daemon, bin, cpu_time, ms, pct, rss_mib, sorted, sys_time};
use repowire::api::{LeaseReq, NotifyReq, RegisterReq};
use repowire::client::Client;
use repowire::core::delivery::DeliveryKind;
use std::time::{Duration, Instant};

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
    registrations: usize,
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
                registrations: 1_000,
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
                registrations: 10_000,
            }
        }
    }
}

/// A daemon as this bench runs it: the caller's environment but for `REPOWIRE_URL`.
/// Returns the daemon and its cold-start timings (to `daemon.json`, to `/health`).
fn start(extra: &[&str]) -> (Daemon, Duration, Duration) {
    Daemon::start("repowire-bench-", extra, |cmd| {
        cmd.env_remove("REPOWIRE_URL");
    })
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
    /// The kernel's share of `daemon_cpu`.
    daemon_sys: Duration,
    bench_cpu: Duration,
    /// Writes per commit (the daemon's doctor report, before and after).
    per_commit: Option<f64>,
}

impl Throughput {
    fn rate(&self) -> f64 {
        self.msgs as f64 / self.elapsed.as_secs_f64()
    }
    fn detail(&self) -> String {
        format!(
            "n={} in {:.0} ms; daemon CPU {:.0} us/msg (system {:.0}), bench-client CPU {:.0} us/msg",
            self.msgs,
            ms(self.elapsed),
            self.daemon_cpu.as_secs_f64() * 1e6 / self.msgs as f64,
            self.daemon_sys.as_secs_f64() * 1e6 / self.msgs as f64,
            self.bench_cpu.as_secs_f64() * 1e6 / self.msgs as f64,
        ) + &self
            .per_commit
            .map(|w| format!(", {w:.2} writes/commit"))
            .unwrap_or_default()
    }
}

/// Commits and the writes they held so far (the doctor's report).
async fn commits(d: &Daemon) -> (u64, u64) {
    let admin = Client::new(&d.url, Some(d.admin_token()), None);
    let r = admin.doctor().await.expect("doctor");
    (r.commits, r.writes)
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
    let (c0, s0, b0) = (
        cpu_time(d.pid),
        sys_time(d.pid),
        cpu_time(std::process::id()),
    );
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
        daemon_cpu: cpu_time(d.pid) - c0,
        daemon_sys: sys_time(d.pid) - s0,
        bench_cpu: cpu_time(std::process::id()) - b0,
        per_commit: None,
    }
}

/// Notes delivered to a live consumer, one at a time: the sender notifies,
/// the receiver's delivery stream hands the note over, the receiver
/// confirms it; the next note goes when that confirm is answered (what
/// `repowire mcp` and the yardstick's live peer do per message). The
/// latencies are notify sent -> confirm answered.
async fn delivered_sequential(d: &Daemon, admin: &Client, n: usize) -> (Throughput, Vec<f64>) {
    use futures_util::StreamExt;
    let sender = register(admin, "dsender").await;
    let receiver = register(admin, "dreceiver").await;
    let mut stream = Box::pin(receiver.delivery_stream(50).await.expect("delivery stream"));
    let warmup = (n / 60).max(5);
    let mut lat = Vec::with_capacity(n);
    let (mut c0, mut s0, mut b0) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    let mut t0 = Instant::now();
    for i in 0..warmup + n {
        if i == warmup {
            (c0, s0, b0) = (
                cpu_time(d.pid),
                sys_time(d.pid),
                cpu_time(std::process::id()),
            );
            t0 = Instant::now();
        }
        let t = Instant::now();
        let sent = sender
            .notify(&notify_req("dreceiver", i))
            .await
            .expect("notify");
        let got = loop {
            match stream.next().await {
                Some(Ok(Some(got))) => break got,
                Some(Ok(None)) => continue, // keep-alive
                Some(Err(e)) => panic!("delivery stream: {e}"),
                None => panic!("the delivery stream ended"),
            }
        };
        assert_eq!(
            got.delivery_id, sent.delivery_id,
            "one note at a time, in order"
        );
        receiver
            .confirm(vec![got.delivery_id])
            .await
            .expect("confirm");
        if i >= warmup {
            lat.push(ms(t.elapsed()));
        }
    }
    let elapsed = t0.elapsed();
    let t = Throughput {
        msgs: n,
        elapsed,
        daemon_cpu: cpu_time(d.pid) - c0,
        daemon_sys: sys_time(d.pid) - s0,
        bench_cpu: cpu_time(std::process::id()) - b0,
        per_commit: None,
    };
    (t, sorted(lat))
}

/// Notes from `clients` concurrent senders to one live consumer: its
/// delivery stream hands them over, and it confirms whatever arrived
/// meanwhile in one call (as `repowire mcp` and the yardstick's live peer
/// do), reading on while a confirm is under way. Measured from the first
/// send until every note is confirmed.
async fn delivered_concurrent(
    d: &Daemon,
    admin: &Client,
    clients: usize,
    total: usize,
) -> Throughput {
    use futures_util::StreamExt;
    let per = total / clients;
    let receiver = register(admin, "creceiver").await;
    let mut stream = Box::pin(
        receiver
            .delivery_stream(1000)
            .await
            .expect("delivery stream"),
    );
    let mut senders = Vec::new();
    for k in 0..clients {
        senders.push(register(admin, &format!("csender-{k:02}")).await);
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let reader = tokio::spawn(async move {
        while let Some(item) = stream.next().await {
            match item {
                Ok(Some(got)) => {
                    if tx.send(got.delivery_id).is_err() {
                        return;
                    }
                }
                Ok(None) => {} // keep-alive
                Err(e) => panic!("delivery stream: {e}"),
            }
        }
        panic!("the delivery stream ended");
    });
    // Warm every sender's connection and the consumer's, then drain.
    for (k, s) in senders.iter().enumerate() {
        s.notify(&notify_req("creceiver", k))
            .await
            .expect("warmup notify");
    }
    let mut warm = Vec::new();
    while warm.len() < clients {
        warm.push(rx.recv().await.expect("warmup delivery"));
    }
    receiver.confirm(warm).await.expect("warmup confirm");
    let confirmer = async move {
        let mut confirmed = 0;
        while confirmed < per * clients {
            let mut ids = vec![rx.recv().await.expect("a delivery")];
            while ids.len() < 1000 {
                match rx.try_recv() {
                    Ok(id) => ids.push(id),
                    Err(_) => break,
                }
            }
            confirmed += receiver.confirm(ids).await.expect("confirm").confirmed;
        }
    };
    let work = senders.into_iter().map(|s| {
        Box::pin(async move {
            for i in 0..per {
                s.notify(&notify_req("creceiver", i)).await.expect("notify");
            }
        }) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    });
    let t = concurrently(
        d,
        per * clients,
        work.chain(std::iter::once(Box::pin(confirmer) as _)),
    )
    .await;
    reader.abort();
    t
}

/// The same floor from `clients` concurrent clients, each its own connection.
async fn health_concurrent(d: &Daemon, clients: usize, total: usize) -> Throughput {
    let per = total / clients;
    let pool: Vec<Client> = (0..clients)
        .map(|_| Client::new(&d.url, None, None))
        .collect();
    for c in &pool {
        c.health().await.expect("warm the connection");
    }
    let work = pool.into_iter().map(|c| async move {
        for _ in 0..per {
            c.health().await.expect("health");
        }
    });
    let mut t = concurrently(d, per * clients, work).await;
    t.per_commit = None;
    t
}

/// The floor under every operation above: a request that does nothing
/// (`GET /health`, no token, no store), one at a time on one connection.
async fn health_sequential(d: &Daemon, admin: &Client, n: usize) -> Throughput {
    for _ in 0..(n / 60).max(5) {
        admin.health().await.expect("warmup health");
    }
    let (c0, s0, b0) = (
        cpu_time(d.pid),
        sys_time(d.pid),
        cpu_time(std::process::id()),
    );
    let t0 = Instant::now();
    for _ in 0..n {
        admin.health().await.expect("health");
    }
    Throughput {
        msgs: n,
        elapsed: t0.elapsed(),
        daemon_cpu: cpu_time(d.pid) - c0,
        daemon_sys: sys_time(d.pid) - s0,
        bench_cpu: cpu_time(std::process::id()) - b0,
        per_commit: None,
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
    let work = senders.into_iter().map(|(s, to)| async move {
        for i in 0..per {
            s.notify(&notify_req(&to, i)).await.expect("notify");
        }
    });
    concurrently(d, per * clients, work).await
}

/// Run every client's share of `ops` operations at once, each on its own
/// task, and measure them together.
async fn concurrently<F>(d: &Daemon, ops: usize, work: impl Iterator<Item = F>) -> Throughput
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let before = commits(d).await;
    let (c0, s0, b0) = (
        cpu_time(d.pid),
        sys_time(d.pid),
        cpu_time(std::process::id()),
    );
    let t0 = Instant::now();
    let tasks: Vec<_> = work.map(tokio::spawn).collect();
    for t in tasks {
        t.await.expect("client task");
    }
    let (elapsed, daemon_cpu) = (t0.elapsed(), cpu_time(d.pid) - c0);
    let daemon_sys = sys_time(d.pid) - s0;
    let bench_cpu = cpu_time(std::process::id()) - b0;
    let after = commits(d).await;
    Throughput {
        msgs: ops,
        elapsed,
        daemon_cpu,
        daemon_sys,
        bench_cpu,
        per_commit: Some((after.1 - before.1) as f64 / (after.0 - before.0).max(1) as f64),
    }
}

/// `total` new peers registered by `clients` concurrent admin clients
/// (each its own connection), each given its own token.
async fn register_concurrent(d: &Daemon, clients: usize, total: usize) -> Throughput {
    let per = total / clients;
    let admins: Vec<Client> = (0..clients)
        .map(|_| Client::new(&d.url, Some(d.admin_token()), None))
        .collect();
    for a in &admins {
        a.health().await.expect("warm the connection");
    }
    let work = admins.into_iter().enumerate().map(|(k, a)| async move {
        for i in 0..per {
            let r = a
                .register(&RegisterReq {
                    name: format!("w{k:02}-{i:05}"),
                    ..Default::default()
                })
                .await
                .expect("register");
            assert!(r.token.is_some(), "a new peer gets its own token");
        }
    });
    concurrently(d, per * clients, work).await
}

struct AskStats {
    rtt: Vec<f64>,
    post: Vec<f64>,
    /// The daemon's CPU over the measured round trips.
    daemon_cpu: Duration,
}

/// An answerer's long-poll of its inbox (up to 100, waiting up to 5 s).
async fn long_poll(b: &Client) -> repowire::api::InboxResp {
    b.lease(&LeaseReq {
        max: Some(100),
        wait_ms: Some(5000),
        ..Default::default()
    })
    .await
    .expect("lease")
}

/// A asks B; B long-polls its inbox, (optionally) confirms, and answers; A
/// waits. Without the explicit confirm, the answer itself settles the
/// delivery B holds (the daemon marks it delivered).
async fn ask_round_trips(
    d: &Daemon,
    admin: &Client,
    warmup: usize,
    n: usize,
    confirm: bool,
) -> AskStats {
    let tag = if confirm { "c" } else { "n" };
    let a = register(admin, &format!("asker-{tag}")).await;
    let b = register(admin, &format!("answerer-{tag}")).await;
    let answerer = tokio::spawn(async move {
        loop {
            let inbox = long_poll(&b).await;
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
        daemon_cpu: Duration::ZERO,
    };
    let mut c0 = Duration::ZERO;
    for i in 0..warmup + n {
        if i == warmup {
            c0 = cpu_time(d.pid);
        }
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
    stats.daemon_cpu = cpu_time(d.pid) - c0;
    answerer.abort();
    stats
}

/// How the 16 pairs' round trips go.
#[derive(Clone, Copy, PartialEq)]
enum AskFlow {
    /// Ask, then wait; the answerer long-polls its inbox.
    AskWait,
    /// Ask and wait in one request (`wait_ms`); the answerer long-polls.
    Blocking,
    /// Ask and wait in one request; the answerer follows its delivery
    /// stream (as `repowire mcp` does): the ask comes as a frame.
    BlockingStream,
    /// The same among [`IDLE`] other peers following their delivery
    /// streams, to whom nothing comes (idle `repowire mcp` sessions): what
    /// waiters that are not concerned cost each round trip.
    BlockingCrowd,
}

/// Idle peers around [`AskFlow::BlockingCrowd`]'s pairs.
const IDLE: usize = 400;

impl AskFlow {
    const ALL: [AskFlow; 4] = [
        Self::AskWait,
        Self::Blocking,
        Self::BlockingStream,
        Self::BlockingCrowd,
    ];
    fn tag(self) -> &'static str {
        match self {
            Self::AskWait => "p",
            Self::Blocking => "b",
            Self::BlockingStream => "s",
            Self::BlockingCrowd => "c",
        }
    }

    /// Whether the answerer follows its delivery stream.
    fn streams(self) -> bool {
        matches!(self, Self::BlockingStream | Self::BlockingCrowd)
    }
}

/// `pairs` conversations at once: each asker asks its own answerer and
/// waits for the answer, `per` times, as `flow` says; each answerer answers
/// what it is handed (the answer settles the delivery). Returns the
/// throughput (one "msg" = one round trip) and each round trip in ms.
async fn ask_concurrent(
    d: &Daemon,
    admin: &Client,
    pairs: usize,
    per: usize,
    flow: AskFlow,
) -> (Throughput, Vec<f64>) {
    use futures_util::StreamExt;
    let tag = flow.tag();
    let blocking = flow != AskFlow::AskWait;
    let mut askers = Vec::new();
    let mut answerers = Vec::new();
    let idle = if flow == AskFlow::BlockingCrowd {
        IDLE
    } else {
        0
    };
    for k in 0..idle {
        let p = register(admin, &format!("{tag}idle-{k:03}")).await;
        answerers.push(tokio::spawn(async move {
            let mut stream = Box::pin(p.delivery_stream(50).await.expect("delivery stream"));
            while let Some(item) = stream.next().await {
                item.expect("delivery stream");
            }
            panic!("an idle delivery stream ended");
        }));
    }
    for k in 0..pairs {
        askers.push(register(admin, &format!("{tag}asker-{k:02}")).await);
        let b = register(admin, &format!("{tag}answerer-{k:02}")).await;
        let answer = async |b: &Client, d: &repowire::api::DeliveryInfo| {
            if d.kind == DeliveryKind::Ask
                && let Some(id) = &d.correlation_id
            {
                b.answer(id, "pong").await.expect("answer");
            }
        };
        answerers.push(tokio::spawn(async move {
            if !flow.streams() {
                loop {
                    for d in &long_poll(&b).await.deliveries {
                        answer(&b, d).await;
                    }
                }
            }
            let mut stream = Box::pin(b.delivery_stream(50).await.expect("delivery stream"));
            while let Some(item) = stream.next().await {
                if let Some(d) = item.expect("delivery stream") {
                    answer(&b, &d).await;
                }
            }
            panic!("the delivery stream ended");
        }));
    }
    async fn round_trip(a: &Client, to: &str, i: usize, blocking: bool) -> f64 {
        let req = repowire::api::AskReq {
            to: to.to_string(),
            text: format!("ping {i}"),
            wait_ms: blocking.then_some(10_000),
            ..Default::default()
        };
        let t0 = Instant::now();
        let sent = a.ask(&req).await.expect("ask");
        let (id, done, state) = if blocking {
            (
                sent.ask.correlation_id,
                sent.done == Some(true),
                sent.ask.state,
            )
        } else {
            let id = sent.ask.correlation_id;
            let w = a.wait(&id, Duration::from_secs(10)).await.expect("wait");
            (id, w.done, w.ask.state)
        };
        assert!(done, "ask {id} not done after 10s (state {state:?})");
        ms(t0.elapsed())
    }
    // Warm every connection: one round trip per pair.
    for (k, a) in askers.iter().enumerate() {
        round_trip(a, &format!("{tag}answerer-{k:02}"), 0, blocking).await;
    }
    let rtts = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(pairs * per)));
    let work = askers.into_iter().enumerate().map(|(k, a)| {
        let rtts = rtts.clone();
        async move {
            let to = format!("{tag}answerer-{k:02}");
            for i in 0..per {
                let rtt = round_trip(&a, &to, i, blocking).await;
                rtts.lock().unwrap().push(rtt);
            }
        }
    });
    let t = concurrently(d, pairs * per, work).await;
    for a in &answerers {
        if a.is_finished() {
            panic!("an answerer loop stopped");
        }
        a.abort();
    }
    let rtts = std::mem::take(&mut *rtts.lock().unwrap());
    (t, rtts)
}

/// How much of `src/link-order.txt` the binary has (idle RSS depends on
/// it: src/build.rs). A list written for another toolchain, lock file or
/// profile names symbols the build no longer has. (That the names are
/// there does not prove the linker used the list: see the idle RSS.)
fn link_order() -> String {
    let list = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/link-order.txt"))
        .unwrap_or_default();
    let out = std::process::Command::new("nm").arg(bin()).output();
    let Some(out) = out
        .ok()
        .filter(|o| o.status.success() && !o.stdout.is_empty())
    else {
        return "link order              not checked (no `nm`, or a stripped binary)".into();
    };
    let symbols: std::collections::HashSet<&str> = std::str::from_utf8(&out.stdout)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2))
        .collect();
    let listed: Vec<&str> = list.lines().filter(|l| !l.is_empty()).collect();
    let found = listed.iter().filter(|f| symbols.contains(*f)).count();
    format!(
        "link order              {found} of {} listed functions in the binary{}",
        listed.len(),
        if found * 10 < listed.len() * 9 {
            "   (stale: `bash benches/link-order.sh` rewrites it)"
        } else {
            ""
        }
    )
}

type Delivered = ((Throughput, Vec<f64>), Throughput);

/// Phase 3b: notes delivered to a live consumer, on a fresh daemon.
async fn delivered(c: &Counts) -> Delivered {
    let (d, ..) = start(&[]);
    let admin = Client::new(&d.url, Some(d.admin_token()), None);
    let seq = delivered_sequential(&d, &admin, c.seq_notifies).await;
    let conc = delivered_concurrent(&d, &admin, c.conc_clients, c.conc_total).await;
    (seq, conc)
}

fn print_delivered(delivered: &Delivered) {
    println!(
        "note delivered, live    {:8.0} msg/s  ({}; notify -> stream -> confirm p50 {:.3} ms  p99 {:.3} ms)   target daemon CPU <= 50 us/msg {}",
        delivered.0.0.rate(),
        delivered.0.0.detail(),
        pct(&delivered.0.1, 50.0),
        pct(&delivered.0.1, 99.0),
        verdict(delivered.0.0.daemon_cpu.as_secs_f64() * 1e6 / delivered.0.0.msgs as f64 <= 50.0),
    );
    println!(
        "note delivered, 16->1 live {:6.0} msg/s  ({}; confirms batched as they come)   target daemon CPU <= 50 us/msg {}",
        delivered.1.rate(),
        delivered.1.detail(),
        verdict(delivered.1.daemon_cpu.as_secs_f64() * 1e6 / delivered.1.msgs as f64 <= 50.0),
    );
}

fn print_ask_concurrent(t: &Throughput, rtts: Vec<f64>, flow: AskFlow) {
    let rtts = sorted(rtts);
    let (name, flow) = match flow {
        AskFlow::AskWait => ("ask rtt, 16 pairs at once", "ask, wait / lease, answer"),
        AskFlow::Blocking => (
            "blocking ask, 16 pairs  ",
            "ask with wait_ms / lease, answer",
        ),
        AskFlow::BlockingStream => (
            "blocking ask, 16 streams",
            "ask with wait_ms / stream frame, answer",
        ),
        AskFlow::BlockingCrowd => (
            "same, 400 idle streams  ",
            "as above, among 400 idle peers following their delivery streams",
        ),
    };
    println!(
        "{name} {:6.0} asks/s  ({}; \"msg\" = a round trip: {flow}; p50 {:.3} ms  p99 {:.3} ms)   target daemon CPU <= 100 us/ask {}",
        t.rate(),
        t.detail(),
        pct(&rtts, 50.0),
        pct(&rtts, 99.0),
        verdict(t.daemon_cpu.as_secs_f64() * 1e6 / t.msgs as f64 <= 100.0),
    );
}

fn main() {
    let c = Counts::new(common::announce(
        "load",
        &format!("real daemon `{}`", bin().to_string_lossy()),
    ));

    if std::env::var("REPOWIRE_BENCH_ONLY").as_deref() == Ok("delivered") {
        // The delivered-note rows alone, for profiling the daemon under them.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        print_delivered(&rt.block_on(delivered(&c)));
        return;
    }
    if std::env::var("REPOWIRE_BENCH_ONLY").as_deref() == Ok("asks") {
        // The concurrent ask row alone, for profiling the daemon under it.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        for flow in AskFlow::ALL {
            let (t, rtts) = rt.block_on(async {
                let (d, ..) = start(&["--max-pending", "1000000"]);
                let admin = Client::new(&d.url, Some(d.admin_token()), None);
                let per = c.asks / c.conc_clients * 4;
                ask_concurrent(&d, &admin, c.conc_clients, per, flow).await
            });
            print_ask_concurrent(&t, rtts, flow);
        }
        return;
    }

    // 1 + 2: cold start and idle RSS. One untimed start first to warm the page cache.
    drop(start(&[]));
    let mut to_health = Vec::new();
    let mut to_record = Vec::new();
    let mut rss = Vec::new();
    let mut hwm = Vec::new();
    for i in 0..c.cold_runs {
        let (d, rec, health) = start(&[]);
        to_health.push(ms(health));
        to_record.push(ms(rec));
        if i < c.rss_runs {
            std::thread::sleep(Duration::from_secs(1));
            let (r, h) = rss_mib(d.pid);
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
    let (floor, seq, conc, conc1, loaded_rss) = rt.block_on(async {
        let (d, ..) = start(&["--max-pending", "1000000"]);
        let admin = Client::new(&d.url, Some(d.admin_token()), None);
        admin.health().await.expect("typed client /health");
        let floor = (
            health_sequential(&d, &admin, c.seq_notifies).await,
            health_concurrent(&d, c.conc_clients, c.conc_total).await,
        );
        let seq = notify_sequential(&d, &admin, c.seq_notifies).await;
        let conc = notify_concurrent(&d, &admin, c.conc_clients, c.conc_total, "m", false).await;
        let conc1 = notify_concurrent(&d, &admin, c.conc_clients, c.conc_total, "o", true).await;
        let loaded = rss_mib(d.pid);
        (floor, seq, conc, conc1, loaded)
    });

    // 3b: notes delivered to a live consumer, a fresh daemon.
    let delivered = rt.block_on(delivered(&c));

    // 4: ask round trips, a fresh daemon.
    let asks = rt.block_on(async {
        let (d, ..) = start(&["--max-pending", "1000000"]);
        let admin = Client::new(&d.url, Some(d.admin_token()), None);
        let full = ask_round_trips(&d, &admin, c.ask_warmup, c.asks, true).await;
        let short = ask_round_trips(&d, &admin, c.ask_warmup, c.asks, false).await;
        let per = c.asks / c.conc_clients * 4;
        let mut conc = Vec::new();
        for flow in AskFlow::ALL {
            conc.push((
                ask_concurrent(&d, &admin, c.conc_clients, per, flow).await,
                flow,
            ));
        }
        drop(d);
        (full, short, conc)
    });

    // 5: registrations, a fresh daemon.
    let regs = rt.block_on(async {
        let (d, ..) = start(&[]);
        register_concurrent(&d, c.conc_clients, c.registrations).await
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
    println!("{}", link_order());
    for (name, t) in [
        ("GET /health, 1 client seq", &floor.0),
        ("GET /health, 16 clients  ", &floor.1),
    ] {
        println!(
            "{name} {:6.0} req/s  ({}; the floor: a request that does nothing)",
            t.rate(),
            t.detail(),
        );
    }
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
    print_delivered(&delivered);
    for (name, stats) in [
        ("ask rtt: lease, confirm, answer", asks.0),
        ("ask rtt: lease, answer        ", asks.1),
    ] {
        let rtt = sorted(stats.rtt);
        let post = sorted(stats.post);
        let p99 = pct(&rtt, 99.0);
        println!(
            "{name}  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (n={}; ask POST alone p50 {:.3} ms; daemon CPU {:.0} us/ask)   target p99 <= {TARGET_ASK_P99_MS} ms {}   vs py0.17 p99 {PY_ASK_P99_MS} ms: {:.1}x faster",
            pct(&rtt, 50.0),
            pct(&rtt, 90.0),
            p99,
            pct(&rtt, 100.0),
            rtt.len(),
            pct(&post, 50.0),
            stats.daemon_cpu.as_secs_f64() * 1e6 / rtt.len() as f64,
            verdict(p99 <= TARGET_ASK_P99_MS),
            PY_ASK_P99_MS / p99,
        );
    }
    for ((t, rtts), flow) in asks.2 {
        print_ask_concurrent(&t, rtts, flow);
    }
    println!(
        "register, 16 clients    {:8.0} peers/s  ({}, \"msg\" = a registration)   target >= 10,000/s {}",
        regs.rate(),
        regs.detail(),
        verdict(regs.rate() >= 10_000.0),
    );
    println!(
        "RSS after notify load   VmRSS {:.2} MiB  VmHWM {:.2} MiB",
        loaded_rss.0, loaded_rss.1
    );
}
