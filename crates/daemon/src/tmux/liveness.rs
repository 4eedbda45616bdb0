//! Liveness of peers routed to a tmux pane: every `--tmux-check-every`
//! (default 2 s) one `list-panes -a` per tmux server names the panes that
//! exist, with the peer each is bound to (`claim`). A peer whose pane is
//! there and bound to it is alive (a sign of life, written at
//! most every quarter of `--stale-after`, so a pane-bound agent that never
//! heartbeats does not turn into a ghost); a peer whose pane is gone or
//! bound to another peer (a restarted server reuses pane ids), or whose
//! server no longer runs, goes offline with a `peer_gone` event, and
//! its running jobs follow the executor-lost rule at the next maintenance
//! tick. A server that cannot be asked (tmux fails otherwise) changes
//! nothing: the next check asks again.
//!
//! The cost is one tmux process per server per check, whatever the number
//! of panes (the servers are asked at once), and one read of the peers
//! table.

use crate::DaemonHandle;
use repowire_core::peer::Peer;
use repowire_core::tmux::PaneAddr;
use std::collections::BTreeMap;

/// Run until the daemon stops.
pub async fn run(h: DaemonHandle) {
    let mut tick = tokio::time::interval(h.tmux.check_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
    loop {
        tokio::select! {
            _ = &mut stopping => return,
            _ = tick.tick() => check(&h).await,
        }
    }
}

/// One check of every tmux-routed peer that is not offline.
pub async fn check(h: &DaemonHandle) {
    let peers = match h.store.tmux_peers() {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "tmux liveness: reading peers failed");
            return;
        }
    };
    if peers.is_empty() {
        return;
    }
    let mut by_server: BTreeMap<String, Vec<(Peer, PaneAddr)>> = BTreeMap::new();
    for p in peers {
        match PaneAddr::parse(&p.route) {
            Ok(a) => by_server.entry(a.server.clone()).or_default().push((p, a)),
            Err(e) => {
                tracing::debug!(peer = %p.name, error = %e, "tmux liveness: unreadable route")
            }
        }
    }
    // One list per server, all at once: a server that hangs holds up only
    // its own peers (each tmux call has its deadline).
    let mut lists = tokio::task::JoinSet::new();
    for (server, peers) in by_server {
        let tmux = h.tmux_cmd.clone();
        lists.spawn(async move { (tmux.panes(&server).await, server, peers) });
    }
    let mut alive = Vec::new();
    while let Some(done) = lists.join_next().await {
        let Ok((listed, server, peers)) = done else {
            continue;
        };
        let live = match listed {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(%server, error = %e, "tmux liveness: cannot list panes");
                continue;
            }
        };
        for (p, a) in peers {
            let why = match live.get(&a.pane) {
                Some(mark) if mark == p.id.as_str() => {
                    alive.push(p);
                    continue;
                }
                Some(_) => format!(
                    "its tmux pane {} now belongs to another session (the server restarted?)",
                    a.pane
                ),
                None if live.is_empty() => format!("its tmux server {} is gone", a.server),
                None => format!("its tmux pane {} is gone", a.pane),
            };
            match h.store.mark_gone(&p.id, &why) {
                Ok(Some(_)) => {
                    super::spawn::forget_token(h, &p.id);
                    tracing::info!(peer = %p.name, %why, "peer offline")
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(peer = %p.name, error = %e, "tmux liveness: marking offline failed")
                }
            }
        }
    }
    if let Err(e) = h
        .store
        .panes_alive(&alive, (h.store.policy.stale_after_ms / 4).max(1))
    {
        tracing::warn!(error = %e, "tmux liveness: refreshing peers failed");
    }
}
