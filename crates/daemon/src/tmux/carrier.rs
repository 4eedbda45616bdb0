//! The tmux delivery carrier: types each delivery of a peer routed to a tmux
//! pane (`tmux:<server>:<pane>`) into that pane, one line per delivery
//! (`send-keys -l`, then Enter), and confirms it once tmux took the keys.
//!
//! The route is not safe while the agent is busy
//! ([`repowire_core::delivery::Route::safe_while_busy`]), so a delivery is
//! typed only when the agent is idle: its peer does not say `busy` (the
//! hooks say so for Claude Code and Codex), its pane is in no tmux mode
//! (copy mode would take the keys) and not synchronised with others, it is
//! still bound to the peer with the same program in its foreground
//! (`claim`), and its screen has been still for `--tmux-quiet` (an agent
//! printing is not waiting for input). One delivery
//! is leased at a time and the checks run again before the next, so a reply
//! the agent starts printing holds the rest back.
//!
//! A failure (tmux refuses, the pane is gone) ends the lease at once,
//! records a `delivery_failed` event (in `repowire trace`) and waits with
//! backoff (1 s doubling to 60 s) before that peer is tried again.

use super::cmd::PaneState;
use crate::DaemonHandle;
use repowire_core::delivery::{DeliveryRoute, Route};
use repowire_core::ids::PeerId;
use repowire_core::peer::{Peer, Status};
use repowire_core::tmux::{PaneAddr, typed_line};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often the carrier looks even when nothing woke it (leases that ran
/// out, a pane that became still, backoffs that ended).
const TICK: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// What the carrier remembers per peer.
#[derive(Default)]
struct Carrying {
    /// Peers with a carry task running.
    busy: HashSet<PeerId>,
    /// Of those, the ones found due again while their task ran: the task
    /// may have looked for a lease just before that delivery came, so the
    /// carrier looks again once it ends (not at its next tick).
    again: HashSet<PeerId>,
    /// Failures in a row, and when the peer may be tried again.
    backoff: HashMap<PeerId, (u32, Instant)>,
}

type Shared = Arc<Mutex<Carrying>>;

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let shared: Shared = Arc::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
    loop {
        // Woken once for every commit since the last look that may give a
        // tmux peer something to type (not once per event).
        tokio::select! {
            _ = &mut stopping => return,
            _ = tick.tick() => {}
            _ = h.tmux_wake.notified() => {}
            _ = h.store.tmux_news().notified() => {}
        }
        // Most meshes have no tmux peer: then nothing is read per delivery.
        let due = match h.store.tmux_routed().and_then(|any| {
            if any {
                h.store.tmux_due()
            } else {
                Ok(Vec::new())
            }
        }) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(error = %e, "tmux carrier: reading peers failed");
                continue;
            }
        };
        for peer in due {
            if !claim(&shared, &peer.id) {
                continue;
            }
            let (h, shared) = (h.clone(), shared.clone());
            tokio::spawn(async move {
                let id = peer.id.clone();
                carry(&h, peer, &shared).await;
                if release(&shared, &id) {
                    h.tmux_wake.notify_one();
                }
            });
        }
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Carrying> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Take the peer for one carry task, unless one runs (then it is looked
/// at again when that ends) or it backs off.
fn claim(s: &Shared, id: &PeerId) -> bool {
    let mut c = lock(s);
    if c.busy.contains(id) {
        c.again.insert(id.clone());
        return false;
    }
    if c.backoff.get(id).is_some_and(|(_, t)| Instant::now() < *t) {
        return false;
    }
    c.busy.insert(id.clone());
    true
}

/// The peer's carry task ended: whether the carrier should look again now
/// (it was found due meanwhile).
fn release(s: &Shared, id: &PeerId) -> bool {
    let mut c = lock(s);
    c.busy.remove(id);
    c.again.remove(id)
}

/// Type the peer's deliveries while it stays idle; stop at the first thing
/// that says it is not (the next wake-up looks again).
async fn carry(h: &DaemonHandle, peer: Peer, shared: &Shared) {
    let route = DeliveryRoute::Tmux;
    let addr = match PaneAddr::parse(&peer.route) {
        Ok(a) => a,
        Err(e) => {
            tracing::warn!(peer = %peer.name, error = %e, "tmux carrier: unreadable route");
            return;
        }
    };
    loop {
        // The agent's own word first: busy (or gone) means wait.
        let now = match h.store.peer_by_id(&peer.id) {
            Ok(Some(p)) => p,
            _ => return,
        };
        if !route.safe_while_busy() && matches!(now.status, Status::Busy | Status::Offline) {
            return;
        }
        if !now.route.starts_with(repowire_core::tmux::PREFIX) || now.route != peer.route {
            return; // it moved to another route or pane: the next look uses that
        }
        match idle(h, &addr, &now).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(peer = %peer.name, error = %e, "tmux carrier: pane not ready");
                return;
            }
        }
        let leased = match h.store.lease(&peer.id, 1, h.store.policy.lease_ms, route) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(peer = %peer.name, error = %e, "tmux carrier: lease failed");
                return;
            }
        };
        let Some(d) = leased.into_iter().next() else {
            return;
        };
        let typed = typed_line(
            d.kind,
            &d.delivery_id,
            d.from.as_deref(),
            d.correlation_id.as_deref(),
            &d.text,
        );
        let buffer = format!("repowire-{}", d.delivery_id);
        match h
            .tmux_cmd
            .type_line(&addr, peer.id.as_str(), &buffer, &typed.line)
            .await
        {
            Ok(()) => {
                lock(shared).backoff.remove(&peer.id);
                if route.confirms()
                    && let Err(e) = h.store.confirm(&peer, std::slice::from_ref(&d.delivery_id))
                {
                    tracing::warn!(peer = %peer.name, error = %e, "tmux carrier: confirm failed");
                    return;
                }
            }
            Err(e) => {
                let wait = {
                    let mut c = lock(shared);
                    let n = c.backoff.get(&peer.id).map_or(0, |(n, _)| *n) + 1;
                    let wait = Duration::from_secs(1 << (n - 1).min(6)).min(BACKOFF_MAX);
                    c.backoff
                        .insert(peer.id.clone(), (n, Instant::now() + wait));
                    wait
                };
                let retry = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
                if let Err(e2) = h.store.delivery_failed(&now, &d, route, &e.0, retry) {
                    tracing::warn!(peer = %peer.name, error = %e2, "tmux carrier: recording a failure failed");
                }
                tracing::info!(peer = %peer.name, pane = %addr.pane, error = %e, "tmux carrier: typing failed");
                return;
            }
        }
    }
}

/// Whether the pane waits for input: [`ready`], and its screen still for
/// `quiet`, and ready still after that wait (copy mode entered meanwhile
/// would take the keys).
async fn idle(
    h: &DaemonHandle,
    addr: &PaneAddr,
    peer: &Peer,
) -> Result<bool, super::cmd::TmuxError> {
    if !ready(&h.tmux_cmd.pane_state(addr).await?, peer) {
        return Ok(false);
    }
    if h.tmux.quiet.is_zero() {
        return Ok(true);
    }
    let before = h.tmux_cmd.screen(addr).await?;
    tokio::time::sleep(h.tmux.quiet).await;
    let after = h.tmux_cmd.screen(addr).await?;
    Ok(before == after && ready(&h.tmux_cmd.pane_state(addr).await?, peer))
}

/// Whether keys typed into the pane now reach the peer's program and it
/// alone: in no tmux mode, alive, not synchronised with other panes, bound
/// to this peer, the foreground it was bound with, and not a shell prompt
/// an agent client left behind.
fn ready(s: &PaneState, peer: &Peer) -> bool {
    let why = if s.in_mode {
        "in a mode"
    } else if s.dead {
        "dead"
    } else if s.synchronized {
        "synchronize-panes is on"
    } else if s.mark != peer.id.as_str() {
        "bound to another peer, or to none"
    } else if !s.same_foreground() {
        "another program holds its terminal"
    } else if shell_left_behind(&peer.backend, &s.command) {
        "the agent left a shell prompt"
    } else {
        return true;
    };
    tracing::debug!(peer = %peer.name, command = %s.command, "tmux carrier: not typing: {why}");
    false
}

/// An agent client's pane whose foreground program is a shell: the agent
/// ended and left the shell it was started from, and typed text would run
/// as a command. (A `shell`-backend peer is a script the operator chose.)
fn shell_left_behind(backend: &str, command: &str) -> bool {
    const SHELLS: &[&str] = &[
        "sh", "bash", "zsh", "fish", "dash", "ksh", "mksh", "tcsh", "csh", "nu", "elvish", "xonsh",
    ];
    const AGENTS: &[&str] = &["claude-code", "codex", "gemini", "opencode"];
    let command = command.trim_start_matches('-');
    AGENTS.contains(&backend) && SHELLS.contains(&command)
}

#[cfg(test)]
mod tests {
    /// A peer found due while its carry task runs is looked at again when
    /// the task ends: a delivery that came after the task's last lease is
    /// not left for the next tick.
    #[test]
    fn a_peer_due_while_carried_is_looked_at_again() {
        use super::{Shared, claim, release};
        use repowire_core::ids::PeerId;
        let s = Shared::default();
        let (a, b) = (PeerId::generate(1), PeerId::generate(1));
        assert!(claim(&s, &a) && claim(&s, &b));
        assert!(!release(&s, &b), "nothing came for b meanwhile");
        assert!(!claim(&s, &a), "a's task still runs");
        assert!(release(&s, &a), "a was due meanwhile: look again");
        assert!(claim(&s, &a), "free again");
        assert!(!release(&s, &a), "looked at once only");
    }

    #[test]
    fn an_agent_that_left_a_shell_is_not_typed_into() {
        use super::shell_left_behind as left;
        assert!(left("claude-code", "bash"));
        assert!(left("codex", "-zsh"));
        assert!(!left("claude-code", "node"));
        assert!(!left("codex", "codex"));
        assert!(!left("shell", "sh"), "a script the operator chose");
        assert!(!left("", "bash"));
    }
}
