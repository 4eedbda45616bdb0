//! Push delivery: the peer's deliveries go into the session as Claude Code
//! channel events, each once, as live hints that are never confirmed: the
//! server cannot tell whether the client shows channel events (Claude Code
//! listens only in a session started with channels). After sending, the
//! pusher records them pushed (`POST /v1/inbox/pushed`): the daemon ends
//! the stream's lease and never streams them again, and the `inbox` tool or
//! a hook shows them, marked, and confirms them. This is the channel route
//! of `core::delivery` ([`ROUTE`]), riding on the daemon's stream route;
//! the session runs it when its route is [`ROUTE`].
//!
//! [`Seen`] is shared by the push loop and the `inbox` tool: what the
//! `inbox` tool showed the agent, so that a delivery handed out again (its
//! confirmation was lost to a daemon restart, say) is confirmed but never
//! shown twice; what was hinted, so that nothing is hinted twice; and the
//! last ones shown or hinted, to read again (`inbox` with `recent`).

use crate::api::{DeliveryInfo, LeaseReq};
use crate::client::{Client, ClientError};
use crate::core::ErrorCode;
use crate::core::delivery::{DeliveryKind, DeliveryRoute};
use serde_json::json;
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The delivery route this pusher carries. Its promises
/// (`DeliveryRoute::Channel.route()`) say it only hints and never confirms:
/// the loop below records what it sent as pushed and confirms nothing (a
/// test ties the two together).
pub(super) const ROUTE: DeliveryRoute = DeliveryRoute::Channel;

/// What this session has shown (the `inbox` tool) or hinted (channel
/// push) to its agent. Bounded: the oldest ids are forgotten first.
#[derive(Default)]
pub(super) struct Seen {
    order: VecDeque<String>,
    ids: HashSet<String>,
    /// Hinted by channel push, oldest first.
    hinted_order: VecDeque<String>,
    hinted: HashSet<String>,
    /// Shown but not yet confirmed to the daemon.
    unconfirmed: Vec<String>,
    /// Hinted but not yet recorded as pushed with the daemon.
    unrecorded: Vec<String>,
    /// The last deliveries shown or hinted, oldest first, each once.
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
        if !remember(&mut self.ids, &mut self.order, &d.delivery_id) {
            return false;
        }
        self.keep_recent(d);
        true
    }

    /// Hint `d` (streamed to this session): it is to be recorded as pushed;
    /// true if it was neither hinted nor shown before (so send it now).
    fn hint(&mut self, d: &DeliveryInfo) -> bool {
        self.unrecorded.push(d.delivery_id.clone());
        if self.ids.contains(&d.delivery_id)
            || !remember(&mut self.hinted, &mut self.hinted_order, &d.delivery_id)
        {
            return false;
        }
        self.keep_recent(d);
        true
    }

    /// Keep `d` among the recent ones (once: a later copy replaces it).
    fn keep_recent(&mut self, d: &DeliveryInfo) {
        self.recent.retain(|r| r.delivery_id != d.delivery_id);
        self.recent.push_back(d.clone());
        if self.recent.len() > Self::RECENT {
            self.recent.pop_front();
        }
    }

    /// The daemon recorded these as pushed: so `recent` shows them.
    fn recorded(&mut self, ids: &[String]) {
        for d in self
            .recent
            .iter_mut()
            .filter(|d| ids.contains(&d.delivery_id) && !d.pushed)
        {
            d.pushed = true;
        }
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

/// Add `id` to a bounded set; false if it was there.
fn remember(set: &mut HashSet<String>, order: &mut VecDeque<String>, id: &str) -> bool {
    if !set.insert(id.to_string()) {
        return false;
    }
    order.push_back(id.to_string());
    if order.len() > Seen::KEEP
        && let Some(old) = order.pop_front()
    {
        set.remove(&old);
    }
    true
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

/// Record what was hinted but not recorded yet as pushed (kept for later
/// when the daemon cannot be reached). The daemon refusing them (a coded
/// error: not this peer's, say) drops them: their stream lease runs out.
async fn record_pushed(client: &Client, seen: &Shared) -> Result<(), ClientError> {
    let ids = std::mem::take(&mut lock(seen).unrecorded);
    if ids.is_empty() {
        return Ok(());
    }
    match client.pushed(ids.clone()).await {
        Ok(_) => {
            lock(seen).recorded(&ids);
            Ok(())
        }
        Err(e) if matches!(e.code(), Some(ErrorCode::NotFound | ErrorCode::BadRequest)) => {
            tracing::warn!("push delivery: the daemon did not record {ids:?} as pushed: {e}");
            Ok(())
        }
        Err(e) => {
            lock(seen).unrecorded.extend(ids);
            Err(e)
        }
    }
}

/// Lease deliveries and keep those never shown; every one leased is to be
/// confirmed (those shown before are confirmed without being shown again;
/// those only hinted by channel push are shown, marked `pushed`).
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
/// events (`notifications/claude/channel`), each once, recorded as pushed
/// after it was sent, never confirmed. They come from the daemon's
/// delivery stream (SSE), which leases each as it sends it and never sends
/// one recorded as pushed. A record that fails is retried; one that is lost
/// comes back after its lease and is recorded without being sent again; one
/// leased but never received comes back after its lease and is sent. So a
/// daemon restart or a dropped connection loses and doubles nothing, and
/// what the agent never saw waits for the `inbox` tool or a hook.
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
    /// The stream or a record failed: reconnect after a pause.
    Broke(ClientError),
}

/// Follow the delivery stream until it ends: send each delivery neither
/// hinted nor shown before, then record what arrived as pushed (in batches,
/// when no more is waiting). It confirms nothing.
async fn follow(client: &Client, seen: &Shared, peer: &rmcp::Peer<rmcp::RoleServer>) -> Follow {
    use futures_util::{FutureExt, StreamExt};
    use rmcp::model::{CustomNotification, ServerNotification};
    const QUIET: Duration = Duration::from_secs(60);
    if let Err(e) = record_pushed(client, seen).await {
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
        // Whatever else is already waiting joins the batch (one record).
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
            if !lock(seen).hint(d) {
                continue; // hinted or shown before: only recorded
            }
            let n = ServerNotification::CustomNotification(CustomNotification::new(
                "notifications/claude/channel",
                Some(channel_event(d)),
            ));
            if peer.send_notification(n).await.is_err() {
                return Follow::SessionGone; // their leases expire and they come back
            }
        }
        if let Err(e) = record_pushed(client, seen).await {
            return Follow::Broke(e);
        }
        if let Some(e) = ended {
            return Follow::Broke(e);
        }
    }
}

/// A delivery as the `inbox` tool shows it: one a channel push already
/// sent live says so in a `note` (the flag `pushed` is in it too).
pub(super) fn marked(d: &DeliveryInfo) -> serde_json::Value {
    let mut v = serde_json::to_value(d).unwrap_or_default();
    if d.pushed {
        v["note"] = json!("pushed live earlier, unconfirmed");
    }
    v
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
            pushed: false,
            pushed_at_ms: None,
        }
    }

    /// The pusher records what it sent as pushed and confirms nothing, as
    /// its route promises (a hint: it cannot know the agent saw it). A
    /// route that confirmed would need a pusher that confirms.
    #[test]
    fn the_pusher_keeps_its_routes_promises() {
        use crate::core::delivery::Route;
        assert!(
            !ROUTE.confirms() && !ROUTE.knows_seen(),
            "push::follow records pushes and never confirms: change it with the promise"
        );
        assert!(
            !ROUTE.takes_pushed(),
            "the stream it rides never hands out what it already pushed"
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

    /// A hint is sent once and always recorded; what the inbox already
    /// showed is not hinted; what was hinted is still shown by the inbox.
    #[test]
    fn a_hint_is_sent_once_and_the_inbox_still_shows_it() {
        let mut s = Seen::default();
        assert!(s.hint(&delivery("dlv-1")));
        assert!(!s.hint(&delivery("dlv-1")), "not hinted twice");
        assert_eq!(s.unrecorded, ["dlv-1", "dlv-1"], "both recorded");
        s.recorded(&["dlv-1".to_string()]);
        assert!(s.recent(1)[0].pushed);
        assert!(s.take(&delivery("dlv-1")), "the inbox shows a hinted one");
        assert_eq!(s.recent.len(), 1, "once among the recent ones");
        assert!(s.take(&delivery("dlv-2")));
        assert!(!s.hint(&delivery("dlv-2")), "shown by the inbox: no hint");
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
