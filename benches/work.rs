//! Jobs and schedules at scale, on a real daemon over loopback:
//! job creation rate and latency as the table grows to 100,000 jobs, the
//! paginated job list, and the lateness of 10,000 schedules due at the same
//! instant. `cargo bench --bench work`; `REPOWIRE_BENCH_QUICK=1` for a smoke run.

// Keeps its own percentile (below).
#[allow(dead_code)]
mod common;

use common::{Daemon, cpu_time, ms};
use repowire::api::{JobCreateReq, RegisterReq, ScheduleReq, UsePersonaReq};
use repowire::client::Client;
use std::time::{Duration, Instant};

/// The value at index `round((n - 1) * p)` of `v` sorted, `p` in 0..=1: not
/// common's nearest rank, so that the numbers stay comparable with earlier runs.
fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn main() {
    let quick = std::env::var_os("REPOWIRE_BENCH_QUICK").is_some();
    let (jobs, routed, schedules) = if quick {
        (5_000, 2_000, 1_000)
    } else {
        (100_000, 100_000, 10_000)
    };
    // Stopped (SIGTERM, then SIGKILL) when main returns or panics.
    let (d, ..) = Daemon::start(
        "repowire-bench-work-",
        &["--max-pending", "10000000"],
        |_| {},
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let admin = Client::new(&d.url, Some(d.admin_token()), None);
        let reg = |name: &str| RegisterReq { name: name.into(), ..Default::default() };
        let olga = admin.with_identity(admin.register(&reg("olga")).await.unwrap().token, None);
        let bob = admin.register(&reg("bob")).await.unwrap();
        let bob = admin.with_identity(bob.token, None);
        olga.claim_orchestrator(false).await.unwrap();

        // 1. Jobs: 4 concurrent creators; latency per batch of 10% of the total.
        println!("repowire work bench: {jobs} jobs, {schedules} schedules, real daemon on loopback, 2 CPUs\n");
        let per = jobs / 4;
        let cpu0 = cpu_time(d.pid);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let c = olga.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let req = JobCreateReq { title: format!("job {w}-{i}"), assign: Some("olga".into()), ..Default::default() };
                    let t = Instant::now();
                    c.create_job(&req).await.unwrap();
                    lat.push(ms(t.elapsed()));
                }
                lat
            }));
        }
        let mut lats: Vec<Vec<f64>> = Vec::new();
        for t in tasks {
            lats.push(t.await.unwrap());
        }
        let rate = jobs as f64 / start.elapsed().as_secs_f64();
        let cpu = per_op_us(cpu_time(d.pid) - cpu0, jobs);
        println!("create jobs      {rate:>8.0} jobs/s, daemon CPU {cpu:.0} us/job  (target >= 5,000/s {}; repowire 0.17: 27/s)", if rate >= 5000.0 { "PASS" } else { "MISS" });
        println!("{}", by_tenth(&lats));

        // 2. Jobs routed by the persona: no assignee, so each create runs
        // the circle's persona (the shipped `default`, in Luau) on the mesh
        // snapshot; no agent has the job's tag, so every job is deferred and
        // stays queued (as repowire 0.17's harness does it).
        admin
            .use_persona(&UsePersonaReq { name: "default".into(), circle: Some("solo".into()) })
            .await
            .unwrap();
        let lone = admin.with_identity(
            admin.register(&RegisterReq { name: "lone".into(), circle: Some("solo".into()), ..Default::default() }).await.unwrap().token,
            None,
        );
        let per_r = routed / 4;
        let cpu0 = cpu_time(d.pid);
        let start = Instant::now();
        let mut tasks = Vec::new();
        for w in 0..4 {
            let c = lone.clone();
            tasks.push(tokio::spawn(async move {
                let mut lat = Vec::with_capacity(per_r);
                for i in 0..per_r {
                    let req = JobCreateReq {
                        title: format!("routed {w}-{i}"),
                        tags: Some(vec!["unroutable".into()]),
                        ..Default::default()
                    };
                    let t = Instant::now();
                    let job = c.create_job(&req).await.unwrap();
                    lat.push(ms(t.elapsed()));
                    assert_eq!(job.state.as_str(), "queued", "a routed job with nobody to take it stays queued");
                }
                lat
            }));
        }
        let mut lats: Vec<Vec<f64>> = Vec::new();
        for t in tasks {
            lats.push(t.await.unwrap());
        }
        let rate = routed as f64 / start.elapsed().as_secs_f64();
        let cpu = per_op_us(cpu_time(d.pid) - cpu0, routed);
        let tenths = tenths(&lats);
        let ratio = tenths[9] / tenths[0];
        println!(
            "create routed jobs {rate:>6.0} jobs/s, daemon CPU {cpu:.0} us/job, last tenth / first {ratio:.2}  (target flat: <= 1.10 {})",
            if ratio <= 1.10 { "PASS" } else { "MISS" }
        );
        println!("{}", by_tenth(&lats));

        // 3. The paginated list, with the table full.
        let cpu0 = cpu_time(d.pid);
        let mut list_lat = Vec::new();
        for i in 0..200u32 {
            let q = [("limit", "50".to_string()), ("offset", ((i * 97) % 1000).to_string())];
            let t = Instant::now();
            let page = olga.list_jobs(&q).await.unwrap();
            list_lat.push(ms(t.elapsed()));
            assert_eq!(page.len(), 50);
        }
        let cpu = per_op_us(cpu_time(d.pid) - cpu0, list_lat.len());
        let p99 = pct(&mut list_lat, 0.99);
        println!(
            "job list (50/page) p50 {:.2} ms  p99 {p99:.2} ms, daemon CPU {cpu:.0} us/page  (target <= 5 ms {})",
            pct(&mut list_lat, 0.5),
            if p99 <= 5.0 { "PASS" } else { "MISS" }
        );

        // 4. Schedules all due at one instant.
        let due_in = if quick { 5_000 } else { 25_000 };
        let at = repowire::core::time::now_ms() + due_in;
        let at_s = repowire::core::time::fmt_ms(at);
        for i in 0..schedules {
            let req = ScheduleReq { to: "bob".into(), text: format!("tick {i}"), fire_at: Some(at_s.clone()), ..Default::default() };
            olga.create_schedule(&req).await.unwrap();
        }
        assert!(repowire::core::time::now_ms() < at, "creating the schedules took past their due time; lower the count");
        // The daemon's CPU from just before the due instant to 2 s after it,
        // with nothing else asked of it: what the fires cost.
        let left = |ms: i64| Duration::from_millis((ms - repowire::core::time::now_ms()).max(0) as u64);
        // Bob waits in a long-poll from before the instant: when does the
        // first fire reach a waiting consumer?
        tokio::time::sleep(left(at - 300)).await;
        let first = tokio::spawn(async move {
            let req = repowire::api::LeaseReq { max: Some(1), wait_ms: Some(5_000), ..Default::default() };
            let got = bob.lease(&req).await.unwrap();
            (repowire::core::time::now_ms(), got.deliveries.len())
        });
        tokio::time::sleep(left(at - 100)).await;
        let cpu0 = cpu_time(d.pid);
        tokio::time::sleep(left(at + 2_000)).await;
        let cpu = per_op_us(cpu_time(d.pid) - cpu0, schedules);
        let (first_at, n) = first.await.unwrap();
        assert_eq!(n, 1, "bob's long-poll ended without a fire");
        loop {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let all = olga.list_schedules(false).await.unwrap();
            if all.iter().all(|s| s.last_fired_ms.is_some()) {
                let mut late: Vec<f64> = all.iter().map(|s| (s.last_fired_ms.unwrap() - at) as f64).collect();
                let p99 = pct(&mut late, 0.99);
                println!(
                    "{schedules} schedules due together: lateness p50 {:.0} ms  p99 {p99:.0} ms  max {:.0} ms, daemon CPU {cpu:.0} us/fire  (target p99 <= 5 ms {}; repowire 0.17: 200 due → p99 132 ms)",
                    pct(&mut late, 0.5),
                    pct(&mut late, 1.0),
                    if p99 <= 5.0 { "PASS" } else { "MISS" }
                );
                println!(
                    "  a consumer waiting in a long-poll got the first fire {} ms after the instant (lateness: when each fire became visible, its recorded last_fired_ms)",
                    first_at - at
                );
                break;
            }
        }
    });
}

/// Microseconds of `cpu` per operation.
fn per_op_us(cpu: Duration, ops: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / ops.max(1) as f64
}

/// The p50 latency of each tenth of every creator's run, in order.
fn tenths(lats: &[Vec<f64>]) -> Vec<f64> {
    (0..10)
        .map(|k| {
            let mut slice: Vec<f64> = lats
                .iter()
                .flat_map(|l| l[k * l.len() / 10..(k + 1) * l.len() / 10].iter().copied())
                .collect();
            pct(&mut slice, 0.5)
        })
        .collect()
}

/// `tenths` as a line.
fn by_tenth(lats: &[Vec<f64>]) -> String {
    let mut line = String::from("  p50 latency by tenth of the table (ms):");
    for t in tenths(lats) {
        line.push_str(&format!(" {t:.2}"));
    }
    line
}
