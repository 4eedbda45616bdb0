//! Shared helpers: a daemon process in a temp home, CLI runs, clients.

use repowire::api::RegisterReq;
use repowire::client::{Client, ClientError};
use repowire::core::ErrorCode;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_repowire");

/// A real daemon process; killed on drop.
pub struct Daemon {
    pub home: tempfile::TempDir,
    pub url: String,
    pub child: Option<Child>,
    pub args: Vec<String>,
}

impl Daemon {
    /// Start with fast background ticks plus `extra` daemon flags.
    pub fn start(extra: &[&str]) -> Self {
        let home = tempfile::tempdir().expect("tempdir");
        let args: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut d = Daemon {
            home,
            url: String::new(),
            child: None,
            args,
        };
        d.spawn();
        d
    }

    pub fn home_path(&self) -> &Path {
        self.home.path()
    }

    /// The names `peer list --json` shows, in its order.
    pub fn peer_names(&self) -> Vec<String> {
        self.cli(&["peer", "list", "--json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect()
    }

    /// (Re)start the process on the same home.
    pub fn spawn(&mut self) {
        let _ = std::fs::remove_file(self.home.path().join("daemon.json"));
        let child = Command::new(BIN)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("RUST_LOG", "warn")
            .arg("--home")
            .arg(self.home.path())
            .args(["daemon", "run", "--listen", "127.0.0.1:0"])
            // Fast background ticks unless the test sets its own.
            .args(if self.args.iter().any(|a| a == "--tick") {
                &[][..]
            } else {
                &["--tick", "100ms"][..]
            })
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn daemon");
        let pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = std::fs::read_to_string(self.home.path().join("daemon.json"))
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&s)
                && v["pid"].as_u64() == Some(pid as u64)
            {
                self.url = v["url"].as_str().unwrap().to_string();
                break;
            }
            assert!(Instant::now() < deadline, "daemon did not start");
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("daemon exited at start: {st}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// Send a signal with the `kill` command and wait for the exit status.
    pub fn signal_and_wait(&mut self, sig: &str) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let st = Command::new("kill")
            .args([sig, &c.id().to_string()])
            .status()
            .unwrap();
        assert!(st.success());
        wait_timeout(&mut c, Duration::from_secs(10)).expect("daemon did not exit")
    }

    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.home.path().join("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn admin(&self) -> Client {
        Client::new(&self.url, Some(self.admin_token()), None)
    }

    /// Register `name` in `circle` and return a client acting as it.
    pub async fn peer(&self, name: &str, circle: Option<&str>) -> Client {
        let token = self.peer_token(name, circle).await;
        Client::new(&self.url, Some(token), None)
    }

    /// Register `name` in `circle` and return its peer token.
    pub async fn peer_token(&self, name: &str, circle: Option<&str>) -> String {
        let r = self
            .admin()
            .register(&RegisterReq {
                name: name.into(),
                circle: circle.map(str::to_string),
                ..Default::default()
            })
            .await
            .expect("register");
        r.token.expect("a new peer gets a token")
    }

    /// Run the CLI against this daemon (admin identity unless `env` says).
    pub fn cli(&self, args: &[&str]) -> Run {
        self.cli_env(args, &[])
    }

    /// The open asks `name` received, as `peer asks --received --open --json`
    /// prints them.
    pub fn open_asks_to(&self, name: &str) -> serde_json::Value {
        let args = [
            "--as",
            name,
            "peer",
            "asks",
            "--received",
            "--open",
            "--json",
        ];
        self.cli(&args).ok().json()
    }

    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        run_cli(self.home.path(), args, env)
    }

    pub async fn healthy(&self) -> bool {
        Client::new(&self.url, None, None).health().await.is_ok()
    }

    /// Move the clock of a daemon started with `--manual-clock` forward by
    /// `ms`; returns once the background work now due has run.
    pub async fn advance_clock(&self, ms: u64) -> i64 {
        let r = reqwest::Client::new()
            .post(format!("{}/v1/debug/clock", self.url))
            .bearer_auth(self.admin_token())
            .json(&serde_json::json!({ "advance_ms": ms }))
            .send()
            .await
            .unwrap();
        let status = r.status();
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(status.is_success(), "advance_clock: {status} {body}");
        body["now_ms"].as_i64().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            return;
        }
        // A daemon this test started in the background (`daemon start`) is
        // not our child: find it by the home's daemon.json and stop it, or it
        // outlives the test run on a deleted home.
        let Ok(rec) = std::fs::read_to_string(self.home.path().join("daemon.json")) else {
            return;
        };
        let Some(pid) = serde_json::from_str::<serde_json::Value>(&rec)
            .ok()
            .and_then(|v| v["pid"].as_u64())
        else {
            return;
        };
        let ours = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| String::from_utf8_lossy(&c).contains(&*self.home.path().to_string_lossy()))
            .unwrap_or(false);
        if ours {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

pub fn wait_timeout(c: &mut Child, t: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + t;
    loop {
        if let Some(st) = c.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A finished CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }

    /// Assert failure with this exit code and error code.
    pub fn fails(&self, exit: i32, code: &str) -> &Self {
        assert_eq!(
            self.code, exit,
            "expected exit {exit}\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        assert!(
            self.stderr.contains(&format!("error[{code}]")),
            "expected error[{code}] in stderr: {}",
            self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }
}

impl From<Output> for Run {
    fn from(o: Output) -> Self {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

pub fn cli_command(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("REPOWIRE_HOME", home)
        .args(args)
        .stdin(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

pub fn run_cli(home: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    cli_command(home, args, env)
        .output()
        .expect("run cli")
        .into()
}

/// Unwrap a client result that must be a coded error.
pub fn code_of<T: std::fmt::Debug>(r: Result<T, ClientError>) -> ErrorCode {
    match r {
        Err(ClientError::Api(e)) => e.code,
        other => panic!("expected a coded error, got {other:?}"),
    }
}

/// Poll `f` until it returns Some, or panic after `t`.
pub async fn eventually<T, F, Fut>(t: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + t;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

pub fn tmp_path() -> PathBuf {
    tempfile::tempdir().unwrap().keep()
}
