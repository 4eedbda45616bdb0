//! The daemon runtime: boot, the shared handle, the HTTP API, background tasks.
//!
//! Lifecycle: [`start`] takes the home's lock, opens the store, binds the
//! listener, writes `daemon.json`, spawns the background tasks and serves
//! until [`Running::stop`] (or `POST /v1/shutdown`, or a signal via
//! [`run_until_signal`]).
//!
//! Where things live: `http` (handlers: parse, one service call, render),
//! `service` (every rule, one function per thing a caller can do),
//! `policy` (who may do what: `core::access`, one table), `pipeline` (decide and act: one
//! path from persona to route carried out), background tasks (`scheduler`,
//! `observe`, `tasks`, `streams`), and the persona host (`persona_host`).
#![forbid(unsafe_code)]

mod auth;
mod commit;
mod dashboard;
pub mod edge;
mod http;
mod observe;
mod persona_host;
mod pipeline;
mod policy;
mod scheduler;
mod serve;
mod service;
mod streams;
mod tasks;
pub mod tmux;

pub use serve::NetLimits;
pub use tmux::TmuxConfig;

use anyhow::{Context, Result, bail};
use repowire_client::home::{DaemonRecord, Home};
use repowire_core::policy::Policy;
use repowire_core::time::Clock;
use repowire_store::Store;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How the daemon is configured (flags of `repowire daemon`).
#[derive(Debug, Clone)]
pub struct Config {
    pub home: Home,
    pub listen: SocketAddr,
    pub allow_remote: bool,
    pub policy: Policy,
    /// How often background tasks (ghosts, reminders, expiry, retention) run.
    pub tick: Duration,
    /// Persona budgets (memory, time per call).
    pub persona_limits: repowire_persona::Limits,
    /// Connection and stream limits.
    pub net: NetLimits,
    /// Where "now" comes from: the system clock, or (`--manual-clock`, tests
    /// only) one that `POST /v1/debug/clock` moves forward.
    pub clock: Clock,
    /// How tmux is used: the delivery route, liveness, spawns.
    pub tmux: TmuxConfig,
}

/// The daemon's state: one cheap `Clone` handle.
#[derive(Clone)]
pub struct DaemonHandle(Arc<Inner>);

/// What the handle holds. Only this crate reads it: other crates get the
/// daemon through [`Running`] and the HTTP API.
pub struct Inner {
    pub(crate) store: Store,
    pub(crate) admin_token: String,
    pub(crate) url: String,
    pub(crate) home: Home,
    pub(crate) started_at_ms: i64,
    /// The store's clock: every deadline is measured against it.
    pub(crate) clock: Clock,
    /// Held by a background-maintenance pass: the periodic one and the one a
    /// manual clock move runs at once never overlap.
    maintenance: Mutex<()>,
    /// A task is queued to commit the writes requests deferred.
    commit_queued: std::sync::atomic::AtomicBool,
    /// Woken when a manual clock moves: long polls and inbox streams look
    /// again (a lease may have run out).
    clock_moved: tokio::sync::Notify,
    pub(crate) personas: persona_host::PersonaHost,
    /// Woken when schedules change, so the scheduler re-reads the next due time.
    pub(crate) schedules_changed: tokio::sync::Notify,
    /// Connection and stream limits.
    pub(crate) net: NetLimits,
    /// Event fan-out to streams, and open-stream counts.
    streams: streams::Streams,
    shutdown: watch::Sender<bool>,
    broadcasts: Mutex<HashMap<String, VecDeque<Instant>>>,
    /// How tmux is used, and the one runner of tmux commands.
    pub(crate) tmux: TmuxConfig,
    pub(crate) tmux_cmd: tmux::cmd::Tmux,
    /// Woken when a tmux-routed peer may have something to type (a
    /// delivery queued, a status change).
    pub(crate) tmux_wake: tokio::sync::Notify,
    /// Dashboard login codes and sessions.
    pub(crate) dashboard: dashboard::Logins,
}

impl std::ops::Deref for DaemonHandle {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl DaemonHandle {
    /// A reference that does not keep the daemon's state alive (for what the
    /// state itself holds, such as a snapshot's job-list reader).
    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    pub fn request_shutdown(&self) {
        let _ = self.shutdown.send(true);
    }

    /// Whether shutdown was requested.
    pub fn shutdown_flag(&self) -> tokio::sync::watch::Ref<'_, bool> {
        self.shutdown.borrow()
    }

    /// Resolves once shutdown was requested: long-polls and streams select on
    /// it so a graceful stop never waits for them.
    pub async fn stopping(&self) {
        let mut rx = self.shutdown.subscribe();
        let _ = rx.wait_for(|v| *v).await;
    }

    /// Give back the slot of a broadcast that was refused after counting.
    pub fn refund_broadcast(&self, peer_id: &str) {
        let mut map = self.broadcasts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = map.get_mut(peer_id) {
            q.pop_back();
        }
    }

    /// Count a broadcast by `peer_id` against the per-minute limit.
    pub fn allow_broadcast(&self, peer_id: &str) -> bool {
        let limit = self.store.policy.broadcast_per_minute as usize;
        let now = Instant::now();
        let mut map = self.broadcasts.lock().unwrap_or_else(|p| p.into_inner());
        let q = map.entry(peer_id.to_string()).or_default();
        while q
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            q.pop_front();
        }
        if q.len() >= limit {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// A daemon started in this process.
pub struct Running {
    pub url: String,
    pub addr: SocketAddr,
    pub handle: DaemonHandle,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    tasks: tokio::task::JoinHandle<()>,
    _watcher: Box<dyn Send>,
    _lock: File,
}

impl Running {
    /// Resolve when a shutdown was requested (API or [`Running::stop`]).
    pub async fn shutdown_requested(&self) {
        self.handle.stopping().await
    }

    /// Stop serving, finish in-flight requests, clear the record.
    pub async fn stop(self) -> Result<()> {
        self.handle.request_shutdown();
        let res = self.server.await;
        self.tasks.abort();
        if let Err(e) = self.handle.store.checkpoint(true) {
            tracing::warn!(error = %e, "final WAL checkpoint failed");
        }
        self.handle.home.clear_record(std::process::id());
        res.context("server task")?.context("server")?;
        Ok(())
    }
}

fn is_loopback(addr: &SocketAddr) -> bool {
    addr.ip().is_loopback()
}

/// Boot the daemon and serve in the background of this runtime.
pub async fn start(cfg: Config) -> Result<Running> {
    if !cfg.allow_remote && !is_loopback(&cfg.listen) {
        bail!(
            "refusing to listen on {}: not a loopback address (pass --allow-remote to expose the daemon beyond this machine)",
            cfg.listen
        );
    }
    cfg.home.ensure_dir()?;
    let lock = cfg.home.open_lock()?;
    if lock.try_lock().is_err() {
        let at = cfg
            .home
            .read_record()
            .map(|r| format!(" (pid {}, {})", r.pid, r.url))
            .unwrap_or_default();
        bail!(
            "another repowire daemon is already running with home {}{at}",
            cfg.home.dir.display()
        );
    }
    let admin_token = cfg.home.ensure_token()?;
    let store = Store::open(&cfg.home.db(), cfg.policy.clone())
        .map_err(anyhow::Error::new)
        .context("while opening the store")?
        .with_clock(cfg.clock.clone());
    if cfg.clock.is_manual() {
        tracing::warn!("manual clock (--manual-clock): for tests only");
    }
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("while binding {}", cfg.listen))?;
    let addr = listener.local_addr()?;
    let url = format!("http://{addr}");
    let (shutdown, _) = watch::channel(false);
    let handle = DaemonHandle(Arc::new(Inner {
        store,
        admin_token,
        url: url.clone(),
        home: cfg.home.clone(),
        started_at_ms: cfg.clock.now_ms(),
        clock: cfg.clock.clone(),
        maintenance: Mutex::new(()),
        commit_queued: Default::default(),
        clock_moved: tokio::sync::Notify::new(),
        personas: persona_host::PersonaHost::new(
            cfg.home.dir.clone(),
            cfg.persona_limits.clone(),
            cfg.clock.clone(),
        ),
        schedules_changed: tokio::sync::Notify::new(),
        net: cfg.net.clone(),
        streams: streams::Streams::new(cfg.net.max_streams_per_token, cfg.net.stream_buffer),
        shutdown,
        broadcasts: Mutex::new(HashMap::new()),
        tmux_cmd: tmux::cmd::Tmux::new(cfg.tmux.bin.clone()),
        tmux: cfg.tmux.clone(),
        tmux_wake: tokio::sync::Notify::new(),
        dashboard: dashboard::Logins::new(&url),
    }));
    cfg.home.write_record(&DaemonRecord {
        url: url.clone(),
        pid: std::process::id(),
        started_at_ms: handle.started_at_ms,
        version: env!("CARGO_PKG_VERSION").to_string(),
    })?;
    service::personas::load_active(&handle);
    let watcher = service::personas::watch(handle.clone())
        .context("while watching the personas directory")?;
    let tasks = tokio::spawn(tasks::run(handle.clone(), cfg.tick));
    tokio::spawn(observe::run(handle.clone()));
    tokio::spawn(scheduler::run(handle.clone()));
    tokio::spawn(streams::run(handle.clone()));
    tokio::spawn(tmux::carrier::run(handle.clone()));
    tokio::spawn(tmux::liveness::run(handle.clone()));
    tokio::spawn(tmux::spawn::watch(handle.clone()));
    let app = http::router(handle.clone());
    let server = tokio::spawn(serve::serve(listener, app, handle.clone(), cfg.net.clone()));
    tracing::info!(%url, home = %cfg.home.dir.display(), "repowire daemon listening");
    Ok(Running {
        url,
        addr,
        handle,
        server,
        tasks,
        _watcher: Box::new(watcher),
        _lock: lock,
    })
}

/// Run until SIGTERM, SIGINT or an API shutdown, then stop gracefully.
pub async fn run_until_signal(cfg: Config) -> Result<()> {
    // Handlers first: a SIGTERM that arrives as soon as daemon.json exists
    // must still mean a graceful stop.
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let running = start(cfg).await?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        _ = running.shutdown_requested() => tracing::info!("shutdown requested over the API"),
    }
    running.stop().await?;
    tracing::info!("stopped");
    Ok(())
}
