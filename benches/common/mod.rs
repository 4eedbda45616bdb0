//! What the benches that drive the real daemon share: a guard for a daemon
//! process in a fresh temp home, the statistics, and the `/proc` readers.
//! A plain module (`mod common;` in each bench), not a bench target.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_repowire");

/// The binary the benches run: `REPOWIRE_BENCH_BIN` when set (to compare two
/// builds with one bench executable, interleaved), else this build's.
pub fn bin() -> std::ffi::OsString {
    std::env::var_os("REPOWIRE_BENCH_BIN").unwrap_or_else(|| BIN.into())
}

/// A daemon process with its own temp home; SIGTERMed (then SIGKILLed) on
/// drop, also on panic, and the home removed.
pub struct Daemon {
    child: Child,
    pub pid: u32,
    pub url: String,
    pub home: PathBuf,
    /// Holds `home` and the daemon's log. Dropped after `Drop::drop` has
    /// stopped the process.
    pub dir: tempfile::TempDir,
}

impl Daemon {
    /// Spawn `repowire --home <fresh> daemon run --listen 127.0.0.1:0 <extra>`
    /// in a temp dir named `<prefix>…`, with `env` applied to the command
    /// (its environment), and wait until `/health` answers. Returns the
    /// daemon and its cold-start timings: from the spawn to `daemon.json`
    /// naming it, and to the first `/health` that answers ok.
    pub fn start(
        prefix: &str,
        extra: &[&str],
        env: impl FnOnce(&mut Command),
    ) -> (Daemon, Duration, Duration) {
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("temp dir");
        // The home itself does not exist yet: the daemon creates it, as on a first start.
        let home = dir.path().join("home");
        let log_file = std::fs::File::create(dir.path().join("daemon.log")).expect("log file");
        let mut cmd = Command::new(bin());
        env(&mut cmd);
        cmd.arg("--home")
            .arg(&home)
            .args(["daemon", "run", "--listen", "127.0.0.1:0"])
            .args(extra)
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
            dir,
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
            if let Some(to_record) = to_record
                && raw_health_ok(&d.url)
            {
                let to_health = t0.elapsed();
                return (d, to_record, to_health);
            }
            std::thread::sleep(Duration::from_micros(100));
        }
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.home.join("token"))
            .expect("admin token")
            .trim()
            .to_string()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// SIGTERM, wait up to 3s, then SIGKILL.
    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal("-TERM", self.pid);
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
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill SIG PID`, quietly.
pub fn signal(sig: &str, pid: u32) {
    let _ = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
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

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile of an ascending slice.
pub fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// User + system CPU time of process `pid` so far (`utime + stime` from
/// `/proc/<pid>/stat`; zero if it cannot be read).
pub fn cpu_time(pid: u32) -> Duration {
    stat_time(pid, &[11, 12])
}

/// System CPU time of process `pid` so far (`stime`): the kernel's share
/// of [`cpu_time`] (system calls, the loopback TCP stack, WAL writes).
pub fn sys_time(pid: u32) -> Duration {
    stat_time(pid, &[12])
}

/// The sum of clock-tick fields of `/proc/<pid>/stat`, counted after the
/// `(comm)`: state is field 0 there, utime 11, stime 12.
fn stat_time(pid: u32, fields: &[usize]) -> Duration {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
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

/// `(VmRSS, VmHWM)` of process `pid` in MiB (NaN if it cannot be read).
pub fn rss_mib(pid: u32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> f64 {
        s.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(f64::NAN, |kb| kb / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Print the bench's first line, `repowire NAME bench (MODE mode): WHAT,
/// loopback 127.0.0.1, N CPUs`, and return whether this is the quick run
/// (`REPOWIRE_BENCH_QUICK` set, and not empty or `0`: a ~10x smaller smoke run).
pub fn announce(name: &str, what: &str) -> bool {
    let quick = std::env::var("REPOWIRE_BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0");
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "repowire {name} bench ({} mode): {what}, loopback 127.0.0.1, {cpus} CPUs",
        if quick { "QUICK" } else { "full" }
    );
    quick
}
