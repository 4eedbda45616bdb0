//! The event log, read and followed, and waiting on an ask: a caller sees
//! its circle's events (the admin any circle's, or all), and an ask its
//! parties can read.

use super::wake::{self, Wake};
use crate::DaemonHandle;
use crate::auth::Caller;
use crate::streams::{self, Slot};
use bytes::Bytes;
use repowire_core::ask::Ask;
use repowire_core::error::Error;
use repowire_core::event::EventRecord;
use repowire_core::ids::AskId;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where to start reading the log.
pub struct From {
    pub since: Option<i64>,
    /// The newest N events (ignored when `since` is given).
    pub tail: Option<u32>,
    pub circle: Option<String>,
}

/// The circle the caller may read, and the seq to start after.
fn start(h: &DaemonHandle, c: &Caller, from: From) -> Result<(Option<String>, i64), Error> {
    let circle = c.scope_circle(from.circle)?;
    let since = match (from.since, from.tail) {
        (Some(s), _) => s,
        (None, Some(n)) => h.store.tail_start(n, circle.as_deref())?,
        (None, None) => 0,
    };
    Ok((circle, since))
}

/// Events after a point, at most `limit`.
pub fn list(
    h: &DaemonHandle,
    c: &Caller,
    from: From,
    limit: Option<u32>,
) -> Result<Vec<EventRecord>, Error> {
    let (circle, since) = start(h, c, from)?;
    let limit = limit.unwrap_or(1000).clamp(1, 10_000);
    h.store.events_since(since, limit, circle.as_deref())
}

/// Follow the log: the backlog after the start, then live events (see
/// `streams.rs`: serialized once for every stream, a stream that falls
/// behind ends with a `lagged` event). The slot counts it against the
/// caller's streams until the body holding it ends.
pub fn follow(
    h: &DaemonHandle,
    c: &Caller,
    from: From,
    conn: Option<crate::serve::Conn>,
) -> Result<(Arc<Slot>, mpsc::Receiver<Bytes>), Error> {
    let (circle, since) = start(h, c, from)?;
    let slot = Arc::new(streams::open_slot(h, c)?);
    let rx = streams::events(h, circle, since, conn, Arc::downgrade(&slot));
    Ok((slot, rx))
}

/// Long-poll until the ask is terminal or `timeout_ms` (default 10 min, at
/// most an hour) passes; the ask as it is then, and whether it is done.
pub async fn wait_ask(
    h: &DaemonHandle,
    c: &Caller,
    id: &AskId,
    timeout_ms: Option<u64>,
) -> Result<(Ask, bool), Error> {
    // Registered before the first look: whatever ends the ask after it
    // wakes the wait.
    let watch = h.store.watch_ask(id);
    // The first look reads only the ask's state (and whether the caller may
    // see it): usually it is still open.
    until_ended(h, c, id, timeout_ms, &watch, Look::Light)
        .await?
        .ok_or_else(|| super::inbox::shutting_down("wait"))
}

/// How a wait takes its first look at the ask.
pub(super) enum Look {
    /// Whether it ended (its state only); the whole ask once it did.
    Light,
    /// None: the caller just sent it, saw it committed, and its watch was
    /// registered by the write that created it, so it is open and
    /// whatever ends it wakes the watch.
    Skip,
}

/// Wait (`timeout_ms`: default 10 min, at most an hour) for `watch` (on
/// ask `id`) to be woken by what ends the ask; the ask as it is then and
/// whether it ended, or `None` when the daemon began shutting down.
pub(super) async fn until_ended(
    h: &DaemonHandle,
    c: &Caller,
    id: &AskId,
    timeout_ms: Option<u64>,
    watch: &repowire_store::AskWatch<'_>,
    first: Look,
) -> Result<Option<(Ask, bool)>, Error> {
    let viewer = c.viewer().map(|p| p.id.clone());
    let timeout = Duration::from_millis(timeout_ms.unwrap_or(600_000).min(3_600_000));
    let deadline = tokio::time::Instant::now() + timeout;
    // The whole ask is read once it may have ended (by the first look only
    // if it had); after a wake-up it usually comes from the write that
    // ended it instead.
    let mut look = Some(first);
    loop {
        let ended = match look.take() {
            Some(Look::Skip) => None,
            Some(Look::Light) => {
                h.store.open_group_landed().await;
                h.store.ended_ask(id, viewer.as_ref())?
            }
            None => Some(h.store.get_ask(id, viewer.as_ref())?).filter(|a| a.state.is_terminal()),
        };
        if let Some(a) = ended {
            return Ok(Some((a, true)));
        }
        // Only a move to a terminal state wakes the watch (not a pick-up,
        // nor an answer apart from its close), and the write that made it
        // usually hands the ask over with the wake-up.
        // Woken now and then before the deadline: a peer waiting on its ask
        // is alive (as one long-polling its inbox), and not turned stale
        // or a ghost by a long wait.
        let nap = tokio::time::Instant::now() + wake::nap(h);
        match wake::next(h, watch.woken(), deadline.min(nap)).await {
            Wake::Event => {
                // The write that ended it handed it over as it committed:
                // nothing to read (the wait's first look was the caller's
                // right to it, and an ask's parties never change).
                if let Some(a) = watch.ended() {
                    return Ok(Some((a, true)));
                }
                h.store.open_group_landed().await
            }
            Wake::Done if tokio::time::Instant::now() < deadline => {
                if let Some(me) = &viewer
                    && let Err(e) = h.store.touch(me, h.store.policy.stale_after_ms / 4)
                {
                    tracing::debug!(error = %e, "a waiting peer's sign of life was not written");
                }
                // And a look at the ask, in case an event was missed.
                h.store.open_group_landed().await;
            }
            Wake::Done => {
                h.store.open_group_landed().await;
                let a = h.store.get_ask(id, viewer.as_ref())?;
                let done = a.state.is_terminal();
                return Ok(Some((a, done)));
            }
            Wake::Stopping => return Ok(None),
        }
    }
}
