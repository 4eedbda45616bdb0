//! `repowire daemon`: run it, start it in the background, status, stop.

use super::{CmdResult, Ctx, Failure, duration_arg};
use crate::core::ErrorCode;
use crate::core::policy::Policy;
use crate::daemon::Config;
use clap::{Args, Subcommand};
use std::net::SocketAddr;
use std::time::Duration;

/// With no subcommand, runs the daemon in the foreground until SIGTERM/SIGINT.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct DaemonCmd {
    #[command(subcommand)]
    action: Option<DaemonAction>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum DaemonAction {
    /// Run in the foreground (the same as `repowire daemon`).
    Run(RunArgs),
    /// Start in the background (log: <home>/daemon.log) and wait until it answers.
    Start(RunArgs),
    /// Is a daemon answering? Prints its URL, pid, version and uptime.
    Status,
    /// Ask the daemon to shut down gracefully and wait until it has.
    Stop {
        /// How long to wait for it to exit.
        #[arg(long, default_value = "10s", value_parser = duration_arg)]
        timeout: Duration,
    },
}

/// Where to listen and the daemon's limits. Every flag also reads an env var.
#[derive(Debug, Args, Clone)]
struct RunArgs {
    /// Address to listen on; port 0 picks a free port (recorded in <home>/daemon.json).
    #[arg(long, env = "REPOWIRE_LISTEN", default_value = "127.0.0.1:8377")]
    listen: SocketAddr,
    /// Allow a non-loopback listen address (the API is then reachable from the network).
    #[arg(long)]
    allow_remote: bool,
    /// A peer with no heartbeat for this long is stale (a ghost if it claims to be online).
    #[arg(long, env = "REPOWIRE_STALE_AFTER", default_value = "120s", value_parser = duration_arg)]
    stale_after: Duration,
    /// An ask not picked up after this long is re-delivered once as a reminder.
    #[arg(long, env = "REPOWIRE_REMINDER_AFTER", default_value = "10m", value_parser = duration_arg)]
    reminder_after: Duration,
    /// Default timeout of an ask (it expires after this).
    #[arg(long, env = "REPOWIRE_ASK_TIMEOUT", default_value = "1h", value_parser = duration_arg)]
    ask_timeout: Duration,
    /// Largest message text in bytes.
    #[arg(long, env = "REPOWIRE_MAX_MESSAGE_BYTES", default_value_t = 65536)]
    max_message_bytes: usize,
    /// Most undelivered messages one peer may have waiting.
    #[arg(long, env = "REPOWIRE_MAX_PENDING", default_value_t = 10_000)]
    max_pending: i64,
    /// How long a handed-out delivery stays leased before it is handed out again.
    #[arg(long, env = "REPOWIRE_LEASE", default_value = "30s", value_parser = duration_arg)]
    lease: Duration,
    /// Broadcasts one peer may send per minute.
    #[arg(long, env = "REPOWIRE_BROADCAST_PER_MINUTE", default_value_t = 30)]
    broadcast_per_minute: u32,
    /// Most peers one ask-many may reach.
    #[arg(long, env = "REPOWIRE_MAX_FANOUT", default_value_t = 64)]
    max_fanout: usize,
    /// Events older than this are deleted.
    #[arg(long, env = "REPOWIRE_EVENT_MAX_AGE", default_value = "7d", value_parser = duration_arg)]
    event_max_age: Duration,
    /// At most this many events are kept.
    #[arg(long, env = "REPOWIRE_EVENT_MAX_COUNT", default_value_t = 100_000)]
    event_max_count: i64,
    /// A cancel of a job in progress waits this long for its assignee to confirm.
    #[arg(long, env = "REPOWIRE_CANCEL_GRACE", default_value = "60s", value_parser = duration_arg)]
    cancel_grace: Duration,
    /// A schedule fire later than this counts as missed (the daemon was down).
    #[arg(long, env = "REPOWIRE_MISSED_AFTER", default_value = "60s", value_parser = duration_arg)]
    missed_after: Duration,
    /// First retry delay of a failed schedule fire (doubles each time, at most 5 min).
    #[arg(long, env = "REPOWIRE_SCHEDULE_RETRY", default_value = "5s", value_parser = duration_arg)]
    schedule_retry: Duration,
    /// How long before it is due a plain schedule fire (a note, a reminder
    /// to oneself) is written, invisible until its instant: a burst of
    /// fires due together is then on time. 0 writes each fire when due.
    #[arg(long, env = "REPOWIRE_SCHEDULE_ARM_AHEAD", default_value = "2s", value_parser = duration_arg)]
    schedule_arm_ahead: Duration,
    /// Finished asks and delivered messages older than this are deleted.
    #[arg(long, env = "REPOWIRE_RETAIN_DONE", default_value = "7d", value_parser = duration_arg)]
    retain_done: Duration,
    /// Memory each persona VM may use, in MiB.
    #[arg(long, env = "REPOWIRE_PERSONA_MEMORY_MIB", default_value_t = 16)]
    persona_memory_mib: usize,
    /// Time one persona call may take.
    #[arg(long, env = "REPOWIRE_PERSONA_BUDGET", default_value = "50ms", value_parser = duration_arg)]
    persona_budget: Duration,
    /// How often background tasks (ghosts, reminders, expiry, retention) run.
    #[arg(long, env = "REPOWIRE_TICK", default_value = "1s", value_parser = duration_arg)]
    tick: Duration,
    /// Most HTTP connections served at once; one more gets a 503 `too_many_connections`.
    #[arg(long, env = "REPOWIRE_MAX_CONNECTIONS", default_value_t = 512)]
    max_connections: usize,
    /// A request's head must arrive within this; also how long an idle keep-alive connection stays open.
    #[arg(long, env = "REPOWIRE_HEADER_TIMEOUT", default_value = "10s", value_parser = duration_arg)]
    header_timeout: Duration,
    /// A request's body must arrive within this of its head (408 `timeout`).
    #[arg(long, env = "REPOWIRE_BODY_TIMEOUT", default_value = "30s", value_parser = duration_arg)]
    body_timeout: Duration,
    /// Most event and inbox streams one token may have open (429 `too_many_streams`).
    #[arg(long, env = "REPOWIRE_MAX_STREAMS_PER_TOKEN", default_value_t = 16)]
    max_streams_per_token: usize,
    /// Batches of events a stream may fall behind before it is dropped with a `lagged` event.
    #[arg(
        long,
        env = "REPOWIRE_STREAM_BUFFER",
        default_value_t = 256,
        hide = true
    )]
    stream_buffer: usize,
    /// The tmux binary (the tmux delivery route, pane liveness, spawns).
    #[arg(long, env = "REPOWIRE_TMUX_BIN", default_value = "tmux")]
    tmux_bin: std::path::PathBuf,
    /// The tmux server `peer spawn` uses when it is not run inside tmux: a
    /// socket name (`tmux -L NAME`) or a socket path (`tmux -S PATH`).
    #[arg(long, env = "REPOWIRE_TMUX_SERVER", default_value = "repowire")]
    tmux_server: String,
    /// How often the panes of tmux-routed peers are checked (a pane that is
    /// gone takes its peer offline).
    #[arg(long, env = "REPOWIRE_TMUX_CHECK_EVERY", default_value = "2s", value_parser = duration_arg)]
    tmux_check_every: Duration,
    /// Nothing is typed into a pane until its screen has been still this long.
    #[arg(long, env = "REPOWIRE_TMUX_QUIET", default_value = "300ms", value_parser = duration_arg)]
    tmux_quiet: Duration,
    /// What a spawned backend runs, as BACKEND=COMMAND (repeatable; defaults:
    /// claude-code=claude, codex=codex). A persona's `route.spawn` can start
    /// only the backends listed here.
    #[arg(long = "spawn-command", value_name = "BACKEND=COMMAND", value_parser = spawn_command_arg)]
    spawn_commands: Vec<(String, String)>,
    /// Most spawned sessions alive at once in one circle.
    #[arg(long, env = "REPOWIRE_MAX_SPAWNS_PER_CIRCLE", default_value_t = 8)]
    max_spawns_per_circle: usize,
    /// A spawned session that has not registered within this is reported
    /// and stopped; a job waiting for it is routed again.
    #[arg(long, env = "REPOWIRE_SPAWN_TIMEOUT", default_value = "120s", value_parser = duration_arg)]
    spawn_timeout: Duration,
    /// Tests only: run on a clock that `POST /v1/debug/clock` (admin) moves
    /// forward, so a test crosses a lease, a stale heartbeat or an expiry
    /// without sleeping. Never for real use.
    #[arg(long, hide = true)]
    manual_clock: bool,
}

fn spawn_command_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((b, c)) if !b.trim().is_empty() && !c.trim().is_empty() => {
            crate::core::peer::validate_name("backend", b.trim()).map_err(|e| e.message)?;
            Ok((b.trim().to_string(), c.to_string()))
        }
        _ => Err(format!("expected BACKEND=COMMAND, not {s:?}")),
    }
}

/// Milliseconds, capped at 100 years (a larger flag value means "never").
fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis())
        .unwrap_or(i64::MAX)
        .min(100 * 365 * 86_400_000)
}

impl RunArgs {
    fn config(&self, ctx: &Ctx) -> Result<Config, Failure> {
        if self.max_message_bytes == 0 || self.max_pending <= 0 || self.event_max_count <= 0 {
            return Err(Failure::usage("limits must be positive"));
        }
        if self.tick.is_zero() {
            return Err(Failure::usage("--tick must be positive"));
        }
        if self.max_connections == 0
            || self.max_streams_per_token == 0
            || self.stream_buffer == 0
            || self.header_timeout.is_zero()
            || self.body_timeout.is_zero()
        {
            return Err(Failure::usage(
                "connection and stream limits and timeouts must be positive",
            ));
        }
        Ok(Config {
            home: ctx.home.clone(),
            listen: self.listen,
            allow_remote: self.allow_remote,
            tick: self.tick,
            clock: if self.manual_clock {
                crate::core::time::Clock::manual()
            } else {
                crate::core::time::Clock::system()
            },
            persona_limits: crate::persona::Limits {
                memory_bytes: self.persona_memory_mib.max(1) << 20,
                budget: self.persona_budget,
                ..Default::default()
            },
            net: crate::daemon::NetLimits {
                max_connections: self.max_connections,
                header_timeout: self.header_timeout,
                body_timeout: self.body_timeout,
                max_streams_per_token: self.max_streams_per_token,
                stream_buffer: self.stream_buffer,
            },
            tmux: crate::daemon::TmuxConfig {
                bin: self.tmux_bin.clone(),
                server: self.tmux_server.clone(),
                check_every: self.tmux_check_every.max(Duration::from_millis(100)),
                quiet: self.tmux_quiet,
                spawn_commands: {
                    let mut m = crate::daemon::tmux::default_spawn_commands();
                    m.extend(self.spawn_commands.iter().cloned());
                    m
                },
                max_spawns_per_circle: self.max_spawns_per_circle,
                spawn_timeout: self.spawn_timeout,
            },
            policy: Policy {
                stale_after_ms: ms(self.stale_after),
                reminder_after_ms: ms(self.reminder_after),
                ask_timeout_ms: ms(self.ask_timeout),
                max_message_bytes: self.max_message_bytes,
                max_pending_per_peer: self.max_pending,
                lease_ms: ms(self.lease).max(1),
                broadcast_per_minute: self.broadcast_per_minute,
                max_fanout: self.max_fanout,
                event_max_age_ms: ms(self.event_max_age),
                event_max_count: self.event_max_count,
                done_max_age_ms: ms(self.retain_done),
                cancel_grace_ms: ms(self.cancel_grace),
                missed_after_ms: ms(self.missed_after),
                schedule_retry_ms: ms(self.schedule_retry).max(1),
                schedule_arm_ahead_ms: ms(self.schedule_arm_ahead),
            },
        })
    }

    /// The same flags, for a re-exec of `daemon run`.
    fn to_args(&self) -> Vec<String> {
        let d = |d: Duration| format!("{}ms", d.as_millis());
        let mut v = vec![
            "--listen".into(),
            self.listen.to_string(),
            "--stale-after".into(),
            d(self.stale_after),
            "--reminder-after".into(),
            d(self.reminder_after),
            "--ask-timeout".into(),
            d(self.ask_timeout),
            "--max-message-bytes".into(),
            self.max_message_bytes.to_string(),
            "--max-pending".into(),
            self.max_pending.to_string(),
            "--lease".into(),
            d(self.lease),
            "--broadcast-per-minute".into(),
            self.broadcast_per_minute.to_string(),
            "--max-fanout".into(),
            self.max_fanout.to_string(),
            "--event-max-age".into(),
            d(self.event_max_age),
            "--event-max-count".into(),
            self.event_max_count.to_string(),
            "--retain-done".into(),
            d(self.retain_done),
            "--cancel-grace".into(),
            d(self.cancel_grace),
            "--missed-after".into(),
            d(self.missed_after),
            "--schedule-retry".into(),
            d(self.schedule_retry),
            "--schedule-arm-ahead".into(),
            d(self.schedule_arm_ahead),
            "--tick".into(),
            d(self.tick),
            "--persona-memory-mib".into(),
            self.persona_memory_mib.to_string(),
            "--persona-budget".into(),
            d(self.persona_budget),
            "--max-connections".into(),
            self.max_connections.to_string(),
            "--header-timeout".into(),
            d(self.header_timeout),
            "--body-timeout".into(),
            d(self.body_timeout),
            "--max-streams-per-token".into(),
            self.max_streams_per_token.to_string(),
            "--stream-buffer".into(),
            self.stream_buffer.to_string(),
            "--tmux-bin".into(),
            self.tmux_bin.display().to_string(),
            "--tmux-server".into(),
            self.tmux_server.clone(),
            "--tmux-check-every".into(),
            d(self.tmux_check_every),
            "--tmux-quiet".into(),
            d(self.tmux_quiet),
            "--max-spawns-per-circle".into(),
            self.max_spawns_per_circle.to_string(),
            "--spawn-timeout".into(),
            d(self.spawn_timeout),
        ];
        for (b, c) in &self.spawn_commands {
            v.push(format!("--spawn-command={b}={c}"));
        }
        if self.allow_remote {
            v.push("--allow-remote".into());
        }
        if self.manual_clock {
            v.push("--manual-clock".into());
        }
        v
    }
}

impl DaemonCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        match self.action {
            None => run_foreground(self.run, ctx).await,
            Some(DaemonAction::Run(a)) => run_foreground(a, ctx).await,
            Some(DaemonAction::Start(a)) => start_background(a, ctx).await,
            Some(DaemonAction::Status) => status(ctx).await,
            Some(DaemonAction::Stop { timeout }) => stop(ctx, timeout).await,
        }
    }
}

async fn run_foreground(a: RunArgs, ctx: &Ctx) -> CmdResult {
    let cfg = a.config(ctx)?;
    crate::daemon::run_until_signal(cfg).await?;
    Ok(())
}

/// Whether the disk holding `dir` has no room left for a small write.
fn no_space_in(dir: &std::path::Path) -> bool {
    let probe = dir.join(".space-probe");
    let wrote =
        std::fs::write(&probe, [0u8; 4096]).and_then(|()| std::fs::File::open(&probe)?.sync_all());
    let _ = std::fs::remove_file(&probe);
    matches!(wrote, Err(e) if e.kind() == std::io::ErrorKind::StorageFull)
}

async fn start_background(a: RunArgs, ctx: &Ctx) -> CmdResult {
    let cfg = a.config(ctx)?;
    let client = ctx.admin_client();
    if let Ok(h) = client.health().await {
        return Err(Failure::new(
            ErrorCode::AlreadyRunning,
            format!("a daemon already answers at {} (pid {})", h.url, h.pid),
        ));
    }
    cfg.home.ensure_dir()?;
    let log_path = cfg.home.dir.join("daemon.log");
    let log = crate::home::private_file()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| Failure::from(anyhow::anyhow!("while opening {}: {e}", log_path.display())))?;
    let exe = std::env::current_exe().map_err(|e| Failure::from(anyhow::anyhow!(e)))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--home")
        .arg(&cfg.home.dir)
        .arg("daemon")
        .arg("run")
        .args(a.to_args())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(log);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .map_err(|e| Failure::from(anyhow::anyhow!("could not start the daemon: {e}")))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(st) = child
            .try_wait()
            .map_err(|e| Failure::from(anyhow::anyhow!(e)))?
        {
            // On a full disk the daemon cannot even log why: say it here.
            if no_space_in(&cfg.home.dir) {
                return Err(Failure::new(ErrorCode::StorageFull, format!(
                        "the daemon exited at start ({st}): the disk holding {} is full; free space and retry",
                        cfg.home.dir.display()
                    )).exit(5));
            }
            return Err(Failure::new(
                ErrorCode::DaemonFailed,
                format!(
                    "the daemon exited at start ({st}); see {}",
                    log_path.display()
                ),
            ));
        }
        if let Some(rec) = cfg.home.read_record().filter(|r| r.pid == child.id()) {
            let c = crate::client::Client::new(&rec.url, None, None);
            if let Ok(h) = c.health().await {
                ctx.out(&h, |h| {
                    format!(
                        "daemon started: {} (pid {}), log {}",
                        h.url,
                        h.pid,
                        log_path.display()
                    )
                });
                return Ok(());
            }
        }
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                ErrorCode::DaemonFailed,
                "the daemon did not answer within 10s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn status(ctx: &Ctx) -> CmdResult {
    let h = ctx.admin_client().health().await?;
    ctx.out(&h, |h| {
        format!(
            "running: {} (pid {}, version {}, up {}, home {})",
            h.url,
            h.pid,
            h.version,
            crate::core::time::fmt_age(h.uptime_ms),
            h.home
        )
    });
    Ok(())
}

async fn stop(ctx: &Ctx, timeout: Duration) -> CmdResult {
    let client = ctx.admin_client();
    let h = client.health().await?;
    client.shutdown().await?;
    let deadline = std::time::Instant::now() + timeout;
    while client.health().await.is_ok() {
        if std::time::Instant::now() > deadline {
            return Err(Failure::new(
                ErrorCode::Timeout,
                format!(
                    "the daemon (pid {}) is still answering after {timeout:?}",
                    h.pid
                ),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ctx.out(
        &serde_json::json!({"stopped": true, "pid": h.pid, "url": h.url}),
        |_| format!("stopped daemon pid {} at {}", h.pid, h.url),
    );
    Ok(())
}
