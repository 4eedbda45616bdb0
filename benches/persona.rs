//! Persona benchmark: decisions per second and per-decision latency with
//! 1,000 peers in the mesh (in-process, the same host code the daemon runs),
//! and hot-reload latency on a real daemon (file saved → new generation
//! live). `cargo bench --bench persona`; `REPOWIRE_BENCH_QUICK=1` for a smoke run.

use repowire::core::mesh::{JobInput, MeshSnapshot, PeerSnap, ReviewInput};
use repowire::persona::{self, Limits, builtin, catalog};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_repowire");
const TARGET_PER_S: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 1.0;
const TARGET_RELOAD_MS: f64 = 300.0;

fn mesh(n: usize) -> Arc<MeshSnapshot> {
    let backends = ["claude-code", "codex", "gemini", "opencode"];
    let tags = [
        "rust",
        "api",
        "docs",
        "infra",
        "frontend",
        "hours-0-8",
        "hours-8-16",
        "hours-16-24",
    ];
    let peers = (0..n)
        .map(|i| PeerSnap {
            name: format!("peer-{i:04}"),
            circle: "default".into(),
            role: if i == 0 {
                "orchestrator".into()
            } else {
                "agent".into()
            },
            backend: backends[i % backends.len()].into(),
            tags: vec![
                tags[i % tags.len()].into(),
                tags[(i / 3) % tags.len()].into(),
            ],
            status: if i % 7 == 0 {
                "offline".into()
            } else {
                "online".into()
            },
            load: (i * 31 % 9) as i64,
            description: format!("works on {} and {}", tags[i % 5], tags[(i + 2) % 5]),
            last_seen_age_s: (i % 60) as i64,
        })
        .collect();
    Arc::new(MeshSnapshot {
        circle: "default".into(),
        now_ms: 1_795_510_800_000,
        peers,
        jobs: Default::default(),
    })
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn reload_latency(rounds: usize) -> Vec<f64> {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bench.lua");
    let script = |i: usize| {
        format!(
            "function dispatch(job, mesh)\n  return route.defer(\"{}s\", \"v{i}\")\nend\n",
            i + 1
        )
    };
    std::fs::write(&file, script(0)).unwrap();
    let _d = Guard(
        Command::new(BIN)
            .args([
                "--home",
                home.path().to_str().unwrap(),
                "daemon",
                "run",
                "--listen",
                "127.0.0.1:0",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let cli = |args: &[&str]| -> serde_json::Value {
        let out = Command::new(BIN)
            .args(["--home", home.path().to_str().unwrap(), "--json"])
            .args(args)
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
    };
    let t0 = Instant::now();
    while !home.path().join("daemon.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100));
    cli(&["orchestrator", "persona", "use", "bench"]);
    let url = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(home.path().join("daemon.json")).unwrap(),
    )
    .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let token = std::fs::read_to_string(home.path().join("token")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = repowire::client::Client::new(&url, Some(token.trim().to_string()), None);
    let mut out = Vec::new();
    for i in 1..=rounds {
        let before = rt
            .block_on(client.persona_status(None))
            .unwrap()
            .generation
            .unwrap();
        std::thread::sleep(Duration::from_millis(150)); // let the previous batch settle
        let t = Instant::now();
        std::fs::write(&file, script(i)).unwrap();
        loop {
            let g = rt
                .block_on(client.persona_status(None))
                .unwrap()
                .generation
                .unwrap();
            if g > before {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "reload {i} never went live"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

fn main() {
    let quick = std::env::var_os("REPOWIRE_BENCH_QUICK").is_some();
    let n = if quick { 2_000 } else { 20_000 };
    let m = mesh(1_000);
    let job = JobInput {
        id: "job-1".into(),
        title: "Fix the api rate limiter".into(),
        brief: "rust api work".into(),
        tags: vec!["rust".into()],
        ..Default::default()
    };
    let item = ReviewInput {
        reference: "pr-1".into(),
        head_sha: "abc".into(),
        author: "peer-0001".into(),
        requested_by: "peer-0000".into(),
        tags: vec![],
    };
    println!("repowire persona bench: 1,000 peers, {n} decisions per row, one thread\n");
    let home = std::path::Path::new("/nonexistent");
    for (name, _) in catalog::SHIPPED {
        let p = catalog::find(home, name)
            .unwrap()
            .compile(Limits::default())
            .unwrap();
        for (entry, is_review) in [("dispatch", false), ("review", true)] {
            let mut times = Vec::with_capacity(n);
            let start = Instant::now();
            let mut fallbacks = 0;
            for _ in 0..n {
                let t = Instant::now();
                let d = if is_review {
                    persona::decide_review(Some(&p), &item, &m)
                } else {
                    persona::decide_dispatch(Some(&p), &job, &m)
                };
                fallbacks += usize::from(d.error.is_some());
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            let rate = n as f64 / start.elapsed().as_secs_f64();
            times.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let p99 = pct(&times, 0.99);
            println!(
                "{name:<15} {entry:<8} {rate:>9.0} decisions/s  p50 {:.3} ms  p99 {:.3} ms  (fallbacks {fallbacks})  {}",
                pct(&times, 0.5),
                p99,
                if rate >= TARGET_PER_S && p99 <= TARGET_P99_MS {
                    "PASS"
                } else {
                    "MISS"
                }
            );
        }
    }
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(builtin::dispatch(&job, &m));
    }
    println!(
        "{:<15} {:<8} {:>9.0} decisions/s  (the Rust built-in policy, for scale)",
        "builtin",
        "dispatch",
        n as f64 / start.elapsed().as_secs_f64()
    );
    let mut reload = reload_latency(if quick { 3 } else { 15 });
    reload.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "\nhot reload (save -> new generation live, real daemon): p50 {:.0} ms  max {:.0} ms  (n={})  target <= {TARGET_RELOAD_MS} ms {}",
        pct(&reload, 0.5),
        pct(&reload, 1.0),
        reload.len(),
        if pct(&reload, 1.0) <= TARGET_RELOAD_MS {
            "PASS"
        } else {
            "MISS"
        }
    );
}
