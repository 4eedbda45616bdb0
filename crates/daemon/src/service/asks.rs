//! Asks and messages: ask, ask-many, answer and the other moves of an ask,
//! notes, broadcasts (the inbox is `inbox`). Who may read or move an ask is
//! [`crate::policy`]'s (its parties never change, so the check may come
//! before the move).

use crate::DaemonHandle;
use crate::auth::Caller;
use crate::policy::{self, Action, Target};
use crate::service::events::{self, Look};
use repowire_client::api::{AskManyReq, AskReq, BroadcastReq, NotifyReq};
use repowire_core::ask::{Ask, AskAction, AskManyResult, AskManySent, AskSent};
use repowire_core::delivery::{Broadcasted, Notified};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::{AskGroupId, AskId};

pub fn ask(h: &DaemonHandle, c: &Caller, req: AskReq) -> Result<AskSent, Error> {
    let bypass = policy::bypass(c, req.bypass_circle)?;
    h.store.ask(&c.me()?.id, &req.try_into()?, bypass)
}

/// Ask, then wait up to `wait_ms` (at most an hour) for the ask to end:
/// what was sent, with the ask as it is at the end of the wait, and whether
/// it ended. A wait cut short by the daemon's shutdown answers with the ask
/// still open (done: false), so the asker keeps its id.
pub async fn ask_and_wait(
    h: &DaemonHandle,
    c: &Caller,
    req: AskReq,
    wait_ms: u64,
) -> Result<(AskSent, bool), Error> {
    let bypass = policy::bypass(c, req.bypass_circle)?;
    // The asker is registered as waiting by the write that creates the ask
    // (so whatever ends it wakes the wait), as a blocking ask's: an answer
    // writes its reply delivered, as this response will carry it.
    let (mut sent, watch) = h
        .store
        .ask_blocking(&c.me()?.id, &req.try_into()?, bypass)?;
    let id = sent.ask.correlation_id.clone();
    // A grouped request's write commits with its group: the wait starts
    // once it landed (and fails as the request does when it did not).
    repowire_store::deferred_so_far().landed().await?;
    let end = events::until_ended(h, c, &id, Some(wait_ms), &watch, Look::Skip).await?;
    // Over first, then the ask as it is: an answer that wrote its reply
    // delivered is in what is read now.
    let settled = watch.end();
    let done = match end {
        Some((a, true)) => {
            sent.ask = a;
            true
        }
        _ => {
            sent.ask = h.store.get_ask(&id, c.viewer().map(|p| &p.id))?;
            sent.ask.state.is_terminal()
        }
    };
    // An answer that came once the wait was over left its reply in the
    // inbox: confirmed here, as the response carries it (not confirmed, it
    // would be shown again, and pile up for a client that only asks this
    // way).
    if done
        && !settled
        && (sent.ask.answer.is_some() || sent.ask.ack_message.is_some())
        && let Err(e) = h.store.confirm_replies(c.me()?, &id)
    {
        tracing::warn!(error = %e, ask = %id, "a blocking ask's reply was not confirmed");
    }
    Ok((sent, done))
}

pub fn ask_many(h: &DaemonHandle, c: &Caller, req: AskManyReq) -> Result<AskManySent, Error> {
    let bypass = policy::bypass(c, req.bypass_circle)?;
    h.store.ask_many(&c.me()?.id, &req.into(), bypass)
}

/// Who answered an ask-many (its asker, or the admin).
pub fn ask_many_result(
    h: &DaemonHandle,
    c: &Caller,
    id: &AskGroupId,
) -> Result<AskManyResult, Error> {
    let viewer = c.viewer().map(|p| &p.id);
    h.store.ask_many_result(id, viewer)
}

/// Which asks of the caller a list shows.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    Sent,
    Received,
    All,
}

impl Direction {
    /// `sent`, `received` or `all` (default).
    pub fn parse(s: Option<&str>) -> Result<Self, Error> {
        match s.unwrap_or("all") {
            "sent" => Ok(Self::Sent),
            "received" => Ok(Self::Received),
            "all" => Ok(Self::All),
            other => Err(Error::bad_request(format!(
                "dir must be sent, received or all, not {other:?}"
            ))),
        }
    }
}

pub fn list(
    h: &DaemonHandle,
    c: &Caller,
    dir: Direction,
    open: bool,
    limit: Option<u32>,
) -> Result<Vec<Ask>, Error> {
    let (sent, received) = match dir {
        Direction::Sent => (true, false),
        Direction::Received => (false, true),
        Direction::All => (true, true),
    };
    let limit = limit.unwrap_or(100).clamp(1, 1000);
    h.store.list_asks(&c.me()?.id, sent, received, open, limit)
}

/// The parties and circle of an ask, for the policy.
fn parties(a: &Ask) -> Target<'_> {
    Target {
        circle: Some(&a.circle),
        asker: Some(&a.from_peer_id),
        recipient: Some(&a.to_peer_id),
        ..Target::default()
    }
}

/// An ask, visible to its asker, its recipient or the admin.
pub fn get(h: &DaemonHandle, c: &Caller, id: &AskId) -> Result<Ask, Error> {
    let a = h.store.get_ask(id, None)?;
    policy::authorize(c, Action::ReadAsk, parties(&a))?;
    Ok(a)
}

/// Pick up, ack, answer or cancel an ask as the caller.
pub fn act(
    h: &DaemonHandle,
    c: &Caller,
    id: &AskId,
    action: AskAction,
    text: Option<&str>,
) -> Result<Ask, Error> {
    // Who may act is the policy's rule (`core::access`), checked by the
    // store on the row it moves, in the same transaction.
    h.store.act_on_ask(c, id, action, text)
}

/// A refusal closes the ask like an ack; the asker reads the reason.
pub fn decline(h: &DaemonHandle, c: &Caller, id: &AskId, reason: &str) -> Result<Ask, Error> {
    if reason.trim().is_empty() {
        return Err(Error::bad_request("a decline needs a reason"));
    }
    let message = format!("Declined: {}", reason.trim());
    act(h, c, id, AskAction::Ack, Some(&message))
}

pub fn notify(h: &DaemonHandle, c: &Caller, req: NotifyReq) -> Result<Notified, Error> {
    let bypass = policy::bypass(c, req.bypass_circle)?;
    h.store.notify(c.me()?, &req.into(), bypass)
}

/// Send to every peer of a circle, within the sender's per-minute budget
/// (a refused broadcast does not use it up).
pub fn broadcast(h: &DaemonHandle, c: &Caller, req: BroadcastReq) -> Result<Broadcasted, Error> {
    let me = c.me()?;
    let bypass = policy::bypass(c, req.bypass_circle)?;
    h.store.policy.check_text("message", &req.text)?;
    if !h.allow_broadcast(&me.id) {
        return Err(Error::new(
            ErrorCode::RateLimited,
            format!(
                "{} sent {} broadcasts in the last minute, the limit (broadcast_per_minute)",
                me.name, h.store.policy.broadcast_per_minute
            ),
        ));
    }
    let sent = h.store.broadcast(&me.id, &req.into(), bypass);
    if sent.is_err() {
        h.refund_broadcast(&me.id);
    }
    sent
}
