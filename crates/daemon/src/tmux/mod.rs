//! The daemon's tmux side: the delivery carrier that types deliveries into
//! agents' panes ([`carrier`]), liveness (a pane that is gone takes its peer
//! offline: [`liveness`]), and starting and stopping agent sessions in tmux
//! windows ([`spawn`]); a tmux route is recorded only for a pane whose
//! registration proved it may reach it ([`claim`]). Every tmux command runs through [`cmd::Tmux`]; the
//! pure parts (addresses, what is typed) are `repowire_core::tmux`.

pub mod carrier;
pub mod claim;
pub mod cmd;
pub mod liveness;
pub mod socket;
pub mod spawn;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// How the daemon uses tmux (flags of `repowire daemon run`).
#[derive(Debug, Clone)]
pub struct TmuxConfig {
    /// The tmux binary.
    pub bin: PathBuf,
    /// The server a spawn uses when the caller names none: a socket name
    /// (`-L`) or path (`-S`).
    pub server: String,
    /// How often live tmux peers' panes are checked (one `list-panes` per
    /// server per check).
    pub check_every: Duration,
    /// A pane whose screen changed within this is busy: nothing is typed
    /// into it until it has been still this long.
    pub quiet: Duration,
    /// What each backend runs when spawned (`claude-code` → `claude`, …).
    pub spawn_commands: BTreeMap<String, String>,
    /// Most spawned sessions alive at once in one circle.
    pub max_spawns_per_circle: usize,
    /// A spawned session that has not registered within this is reported
    /// and stopped (and a job waiting for it is routed again).
    pub spawn_timeout: Duration,
}

impl Default for TmuxConfig {
    fn default() -> Self {
        TmuxConfig {
            bin: PathBuf::from("tmux"),
            server: "repowire".into(),
            check_every: Duration::from_secs(2),
            quiet: Duration::from_millis(300),
            spawn_commands: default_spawn_commands(),
            max_spawns_per_circle: 8,
            spawn_timeout: Duration::from_secs(120),
        }
    }
}

/// The commands the agent backends run unless configured otherwise.
pub fn default_spawn_commands() -> BTreeMap<String, String> {
    [("claude-code", "claude"), ("codex", "codex")]
        .into_iter()
        .map(|(b, c)| (b.to_string(), c.to_string()))
        .collect()
}
