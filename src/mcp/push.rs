//! Push delivery: the peer's deliveries go into the session as Claude Code
//! channel events, each once, confirmed after they were sent. This is the
//! channel route of `core::delivery` ([`ROUTE`]), riding on the daemon's
//! stream route; the session runs it when its route is [`ROUTE`].
//!
//! [`Seen`] is shared by the push loop and the `inbox` tool: what the agent
//! was shown, so that a delivery handed out again (its confirmation was lost
//! to a daemon restart, say) is confirmed but never shown twice, and the
//! last ones shown can be read again (`inbox` with `recent`).

use crate::api::{DeliveryInfo, LeaseReq};
use crate::client::{Client, ClientError};
use crate::core::delivery::{DeliveryKind, DeliveryRoute};
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The delivery route this pusher carries. Its promises
/// (`DeliveryRoute::Channel.route()`) say it confirms what it sent: the
/// loop below does so (a test ties the two together).
pub(super) const ROUTE: DeliveryRoute = DeliveryRoute::Channel;

/// What this session has shown its agent. Bounded: the oldest ids are
/// forgotten first.
#[derive(Default)]
pub(super) struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
    /// Shown but not yet confirmed to the daemon.
    unconfirmed: Vec<String>,
    /// The last deliveries shown, oldest first.
    recent: VecDeque<DeliveryInfo>,
}

pub(super) type Shared = Arc<Mutex<Seen>>;

impl Seen {
    const KEEP: usize = 10_000;
    pub(super) const RECENT: usize = 100;

    /// Take `d` (handed out to this session): it is to be confirmed;
    /// true if it was never shown before (so show it now).
    fn take(&mut self, d: &DeliveryInfo) -> bool {
        self.unconfirmed.push(d.delivery_id.clone());
        self.first_time(d)
    }

    /// Record `d` as shown; false if it was shown before.
    fn first_time(&mut self, d: &DeliveryInfo) -> bool {
        if !self.ids.insert(d.delivery_id.clone()) {
            return false;
        }
        self.order.push_back(d.delivery_id.clone());
        if self.order.len() > Self::KEEP
            && let Some(old) = self.order.pop_front()
        {
            self.ids.remove(&old);
        }
        self.recent.push_back(d.clone());
        if self.recent.len() > Self::RECENT {
            self.recent.pop_front();
        }
        true
    }

    /// The daemon took these as delivered: so `recent` shows them.
    fn confirmed(&mut self, ids: &[String]) {
        for d in self
            .recent
            .iter_mut()
            .filter(|d| ids.contains(&d.delivery_id))
        {
            d.state = crate::core::delivery::DeliveryState::Delivered;
            d.lease_until_ms = None;
        }
    }

    pub(super) fn recent(&self, n: usize) -> Vec<DeliveryInfo> {
        let skip = self.recent.len().saturating_sub(n);
        self.recent.iter().skip(skip).cloned().collect()
    }
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Seen> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// Confirm what was shown but not confirmed yet (kept for later on failure).
pub(super) async fn confirm_pending(client: &Client, seen: &Shared) -> Result<(), ClientError> {
    let ids = std::mem::take(&mut lock(seen).unconfirmed);
    if ids.is_empty() {
        return Ok(());
    }
    match client.confirm(ids.clone()).await {
        Ok(_) => {
            lock(seen).confirmed(&ids);
            Ok(())
        }
        Err(e) => {
            lock(seen).unconfirmed.extend(ids);
            Err(e)
        }
    }
}

/// Lease deliveries and keep those never shown; every one leased is to be
/// confirmed (those shown before are confirmed without being shown again).
pub(super) async fn take_new(
    client: &Client,
    seen: &Shared,
    req: &LeaseReq,
) -> Result<Vec<DeliveryInfo>, ClientError> {
    confirm_pending(client, seen).await?;
    let leased = client.lease(req).await?.deliveries;
    let mut s = lock(seen);
    Ok(leased.into_iter().filter(|d| s.take(d)).collect())
}

/// Push this peer's deliveries into the session as Claude Code channel
/// events (`notifications/claude/channel`), each once, confirmed after it
/// was sent. They come from the daemon's delivery stream (SSE), which
/// leases each as it sends it. A confirmation that fails is retried; one
/// that is lost comes back after its lease and is confirmed without being
/// shown again; one leased but never received comes back after its lease
/// and is shown. So a daemon restart or a dropped connection loses and
/// doubles nothing.
pub(super) async fn push(client: Client, seen: Shared, peer: rmcp::Peer<rmcp::RoleServer>) {
    let mut backoff = Duration::from_millis(200);
    let mut failures = 0u32;
    loop {
        match follow(&client, &seen, &peer).await {
            Follow::SessionGone => return,
            Follow::Silent => {
                backoff = Duration::from_millis(200);
                failures = 0;
                continue;
            }
            Follow::Broke(e) => {
                failures += 1;
                if failures == 3 || failures.is_multiple_of(60) {
                    tracing::warn!("push delivery: {e} ({failures} failures in a row); retrying");
                } else {
                    tracing::debug!("push delivery: {e}; retrying");
                }
            }
        }
        // (A daemon that restarted elsewhere is followed by the client.)
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// How one connection to the delivery stream ended.
enum Follow {
    /// The session's client went away: stop.
    SessionGone,
    /// Not even a keep-alive (the daemon sends one every 15 s) for a
    /// minute: the connection is dead without having said so (a frozen
    /// daemon, say); reconnect at once.
    Silent,
    /// The stream or a confirmation failed: reconnect after a pause.
    Broke(ClientError),
}

/// Follow the delivery stream until it ends: show each delivery never shown
/// before, then confirm what arrived (in batches, when no more is waiting).
async fn follow(client: &Client, seen: &Shared, peer: &rmcp::Peer<rmcp::RoleServer>) -> Follow {
    use futures_util::{FutureExt, StreamExt};
    use rmcp::model::{CustomNotification, ServerNotification};
    const QUIET: Duration = Duration::from_secs(60);
    if let Err(e) = confirm_pending(client, seen).await {
        return Follow::Broke(e);
    }
    let stream = match client.delivery_stream(50).await {
        Ok(s) => s,
        Err(e) => return Follow::Broke(e),
    };
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = match tokio::time::timeout(QUIET, stream.next()).await {
            Err(_) => return Follow::Silent,
            Ok(None) => return Follow::Broke(ended_stream()),
            Ok(Some(Err(e))) => return Follow::Broke(e),
            Ok(Some(Ok(None))) => continue, // a keep-alive: the stream lives
            Ok(Some(Ok(Some(d)))) => d,
        };
        // Whatever else is already waiting joins the batch (one confirm).
        let mut batch = vec![next];
        let mut ended = None;
        loop {
            match stream.next().now_or_never() {
                Some(Some(Ok(Some(d)))) => batch.push(d),
                Some(Some(Ok(None))) => {}
                Some(Some(Err(e))) => break ended = Some(e),
                Some(None) => break ended = Some(ended_stream()),
                None => break,
            }
        }
        for d in &batch {
            if !lock(seen).take(d) {
                continue; // shown before: only confirmed
            }
            let n = ServerNotification::CustomNotification(CustomNotification::new(
                "notifications/claude/channel",
                Some(channel_event(d)),
            ));
            if peer.send_notification(n).await.is_err() {
                return Follow::SessionGone; // their leases expire and they come back
            }
        }
        if let Err(e) = confirm_pending(client, seen).await {
            return Follow::Broke(e);
        }
        if let Some(e) = ended {
            return Follow::Broke(e);
        }
    }
}

fn ended_stream() -> ClientError {
    ClientError::Other("the delivery stream ended".into())
}

/// What a pushed message says: who, what kind, the id to act on.
fn channel_text(d: &DeliveryInfo) -> String {
    let from = d.from.as_deref().unwrap_or("repowire");
    let mut s = match (d.kind, d.correlation_id.as_deref()) {
        (DeliveryKind::Ask | DeliveryKind::Reminder, Some(id)) => format!(
            "{from} asks ({}): {}\n(Reply with the answer tool, correlation_id {id}; or ack / decline.)",
            d.kind, d.text
        ),
        (DeliveryKind::Reply, Some(id)) => format!("{from} answered your ask {id}: {}", d.text),
        (kind, _) => format!("{kind} from {from}: {}", d.text),
    };
    if let Some(r) = &d.reply_to {
        s.push_str(&format!("\n(This follows up ask {r}.)"));
    }
    if let Some(j) = &d.job_id {
        s.push_str(&format!(
            "\n(Job {j}: see job_show, move it with job_update.)"
        ));
    }
    s
}

/// The params of one channel event: `{content, meta}`; every meta value is
/// a string (Claude Code reads meta as string attributes).
fn channel_event(d: &DeliveryInfo) -> serde_json::Value {
    let mut meta = json!({
        "kind": d.kind.as_str(),
        "from": d.from.as_deref().unwrap_or("repowire"),
        "delivery_id": d.delivery_id,
    });
    for (k, v) in [
        ("correlation_id", &d.correlation_id),
        ("job_id", &d.job_id),
        ("reply_to", &d.reply_to),
    ] {
        if let Some(v) = v {
            meta[k] = json!(v);
        }
    }
    json!({"content": channel_text(d), "meta": meta})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::delivery::DeliveryState;

    fn delivery(id: &str) -> DeliveryInfo {
        DeliveryInfo {
            delivery_id: id.into(),
            seq: 1,
            kind: DeliveryKind::Notify,
            from: None,
            from_circle: None,
            correlation_id: None,
            text: "hi".into(),
            state: DeliveryState::Leased,
            attempts: 1,
            created_at_ms: 0,
            lease_until_ms: None,
            job_id: None,
            reply_to: None,
        }
    }

    /// The pusher confirms each delivery once sent, as its route promises;
    /// a channel that only hints (issue 12: `confirms()` false) needs a
    /// pusher that leaves its deliveries unconfirmed, and this fails until
    /// it has one.
    #[test]
    fn the_pusher_keeps_its_routes_promises() {
        use crate::core::delivery::Route;
        assert!(
            ROUTE.confirms(),
            "push::follow confirms what it sent: change it with the promise"
        );
        assert!(!ROUTE.needs_poll(), "a pushed delivery needs no inbox call");
        assert!(ROUTE.recordable(), "the session records its route");
    }

    #[test]
    fn a_delivery_is_shown_once_and_old_ids_are_forgotten() {
        let mut s = Seen::default();
        assert!(s.first_time(&delivery("dlv-1")));
        assert!(
            !s.first_time(&delivery("dlv-1")),
            "a second hand-out is not shown"
        );
        for i in 0..Seen::KEEP {
            assert!(s.first_time(&delivery(&format!("x-{i}"))));
        }
        assert_eq!(s.ids.len(), Seen::KEEP, "bounded");
        assert_eq!(s.recent.len(), Seen::RECENT, "bounded");
        assert_eq!(
            s.recent(2).last().unwrap().delivery_id,
            format!("x-{}", Seen::KEEP - 1)
        );
        assert!(s.first_time(&delivery("dlv-1")), "the oldest was forgotten");
    }

    #[test]
    fn meta_values_are_strings_and_system_notes_come_from_repowire() {
        let mut d = delivery("dlv-2");
        d.kind = DeliveryKind::System;
        d.job_id = Some("job-1".into());
        let ev = channel_event(&d);
        let meta = ev["meta"].as_object().unwrap();
        assert!(meta.values().all(|v| v.is_string()), "{meta:?}");
        assert_eq!(meta["from"], "repowire");
        assert_eq!(meta["job_id"], "job-1");
        assert!(!meta.contains_key("correlation_id"));
        assert!(ev["content"].as_str().unwrap().contains("job_show"));
    }
}
