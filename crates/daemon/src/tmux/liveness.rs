//! Liveness of tmux-routed peers: a pane that no longer exists takes its
//! peer offline.

use crate::DaemonHandle;

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let _ = h;
}
