//! Asks and ask groups: create, move through the state machine (one
//! compare-and-swap per move), reminders, expiry, and ends for removed peers.

use super::deliveries::{NewDelivery, drop_for_ask, enqueue, settle_for_ask, target};
use super::peers::{by_id, must, must_shared, shared_by_id};
use super::{AskWatch, NewEvent, Store, Tx, parse_col, states_in};
use repowire_core::access::{Action, Caller, Target, authorize};
use repowire_core::ask::{
    Ask, AskAction, AskManyEntry, AskManyResult, AskManySent, AskSent, AskState, NewAsk, NewAskMany,
};
use repowire_core::delivery::DeliveryKind;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::{AskMove, Event};
use repowire_core::ids::{AskGroupId, AskId, DeliveryId, PeerId};
use repowire_core::peer::Peer;
use rusqlite::{Connection, OptionalExtension, Row, params};
use std::collections::HashSet;

/// The ask row `$t` (a table name or alias) whose id is `$id` (a
/// parameter or a column): found by the key the id carries
/// ([`AskId::with_seq`], `rw_key`), or, for an id made before migration 28,
/// through `asks_legacy`; the row's id must match either way. (Ask rows
/// have no index on their id: it was a 1 KiB WAL page and a half of every
/// ask.) One key, not `IN (…)`, which builds a temporary table.
macro_rules! at_ask {
    ($t:literal, $id:literal) => {
        concat!(
            $t,
            ".seq = COALESCE((SELECT l.seq FROM asks l WHERE l.id = ",
            $id,
            " AND l.legacy = 1), rw_key(",
            $id,
            ")) AND ",
            $t,
            ".id = ",
            $id
        )
    };
}
pub(crate) use at_ask;

macro_rules! cols {
    () => {
        "id, parent_id, from_peer, from_name, to_peer, to_name, circle, text, state, \
                    answer, ack_message, created_ms, updated_ms, expires_ms, reminded_ms, closed_ms, reply_to, job_id"
    };
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Ask> {
    Ok(Ask {
        correlation_id: r.get(0)?,
        parent_id: r.get(1)?,
        from_peer_id: r.get(2)?,
        from: r.get(3)?,
        to_peer_id: r.get(4)?,
        to: r.get(5)?,
        circle: r.get(6)?,
        text: r.get(7)?,
        state: parse_col(r.get(8)?, AskState::parse)?,
        answer: r.get(9)?,
        ack_message: r.get(10)?,
        created_at_ms: r.get(11)?,
        updated_at_ms: r.get(12)?,
        expires_at_ms: r.get(13)?,
        reminded_at_ms: r.get(14)?,
        closed_at_ms: r.get(15)?,
        reply_to: r.get(16)?,
        job_id: r.get(17)?,
    })
}

fn get(c: &Connection, id: &AskId) -> Result<Ask> {
    Ok(get_keyed(c, id)?.0)
}

/// [`get`], with the keys of its copies (`copy_seq`, `reminder_seq`: the
/// ask and its reminder, where the row keeps them).
fn get_keyed(c: &Connection, id: &AskId) -> Result<(Ask, [Option<i64>; 2])> {
    c.prepare_cached(concat!(
        "SELECT ",
        cols!(),
        ", copy_seq, reminder_seq FROM asks WHERE ",
        at_ask!("asks", "?1")
    ))?
    .query_row([id], |r| Ok((from_row(r)?, [r.get(18)?, r.get(19)?])))
    .optional()?
    .ok_or_else(|| Error::new(ErrorCode::UnknownAsk, format!("no ask {id}")))
}

/// Whether `caller` (None: admin) may read an ask with these `parties`. Its
/// parties read it by id, without a look-up (also one removed while it
/// waited: it reads the ask its removal failed); anyone else gets the
/// policy's refusal.
fn may_read(c: &Connection, caller: Option<&PeerId>, parties: Target<'_>) -> Result<()> {
    if let Some(p) = caller
        && Some(p.as_str()) != parties.asker
        && Some(p.as_str()) != parties.recipient
    {
        authorize(&viewer(c, p)?, Action::ReadAsk, parties)?;
    }
    Ok(())
}

/// An ask's facts, as [`authorize`] reads them.
fn parties(a: &Ask) -> Target<'_> {
    Target {
        circle: Some(&a.circle),
        asker: Some(a.from_peer_id.as_str()),
        recipient: Some(a.to_peer_id.as_str()),
        ..Target::default()
    }
}

/// The peer `id` reading, as a caller: a peer that is gone reads as a
/// stranger to everything.
fn viewer(c: &Connection, id: &PeerId) -> Result<Caller> {
    match by_id(c, id)? {
        Some(p) => Ok(Caller::Peer(p.into())),
        None => Err(Error::forbidden(format!("peer {id} is not registered"))),
    }
}

fn ask_event(t: &mut Tx<'_>, a: &Ask, event: Event) -> Result<()> {
    t.event(NewEvent {
        subject: &a.correlation_id,
        related: a.parent_id.as_deref(),
        circle: Some(&a.circle),
        event,
    })
}

/// Compare-and-swap the state: `UPDATE … WHERE state IN (allowed)`. Returns
/// the ask after the move, or `invalid_state` naming where it actually is.
fn cas(t: &mut Tx<'_>, id: &AskId, action: AskAction) -> Result<Ask> {
    let allowed: Vec<&'static str> = action.allowed_from().iter().map(|s| s.as_str()).collect();
    let [s1, s2, s3] = states_in::<3>(&allowed)?;
    let to = action.target();
    let closed = to.is_terminal().then_some(t.now);
    // Equalities, not `IN (?, ?, ?)` (nor `RETURNING`): SQLite builds a
    // temporary table for either on every execution, which costs more than
    // the statement that reads the row back.
    let n = t
        .conn()
        .prepare_cached(concat!(
            "UPDATE asks SET state = ?2, updated_ms = ?3, closed_ms = COALESCE(?4, closed_ms)
             WHERE ",
            at_ask!("asks", "?1"),
            " AND (state = ?5 OR state = ?6 OR state = ?7)"
        ))?
        .execute(params![id, to.as_str(), t.now, closed, s1, s2, s3])?;
    let a = get(t.conn(), id)?;
    if n == 0 {
        action.apply(id, a.state)?;
    }
    Ok(a)
}

/// What a move writes beside the state, in the same row write.
#[derive(Default)]
struct Texts<'a> {
    answer: Option<&'a str>,
    ack_message: Option<&'a str>,
}

/// Move an ask just read in this transaction (`prior`) by `action` to `to`
/// (its target, or past it when the ask goes on at once: an answer closes
/// its ask in one row write), writing `texts` with it. The row after the
/// move is `prior` moved, not read again.
fn move_read(
    t: &mut Tx<'_>,
    mut prior: Ask,
    action: AskAction,
    to: AskState,
    texts: Texts<'_>,
) -> Result<Ask> {
    let id = prior.correlation_id.clone();
    action.apply(&id, prior.state)?;
    let closed = to.is_terminal().then_some(t.now);
    let n = t
        .conn()
        .prepare_cached(concat!(
            "UPDATE asks SET state = ?2, updated_ms = ?3, closed_ms = COALESCE(?4, closed_ms),
               answer = COALESCE(?5, answer), ack_message = COALESCE(?6, ack_message)
             WHERE ",
            at_ask!("asks", "?1")
        ))?
        .execute(params![
            id,
            to.as_str(),
            t.now,
            closed,
            texts.answer,
            texts.ack_message
        ])?;
    if n != 1 {
        return Err(Error::internal(format!("ask {id} was read but not moved")));
    }
    prior.state = to;
    prior.updated_at_ms = t.now;
    prior.closed_at_ms = closed.or(prior.closed_at_ms);
    if let Some(answer) = texts.answer {
        prior.answer = Some(answer.to_string());
    }
    if let Some(ack) = texts.ack_message {
        prior.ack_message = Some(ack.to_string());
    }
    Ok(prior)
}

/// A move that is skipped quietly when the ask is already past it (used when
/// a delivery confirmation arrives after the ask moved on).
pub(super) fn transition_quiet(t: &mut Tx<'_>, id: &AskId, action: AskAction) -> Result<()> {
    match cas(t, id, action) {
        Ok(a) => ask_event(
            t,
            &a,
            Event::ask_moved(a.state, AskMove::To { to: a.to.clone() }),
        ),
        Err(e) if e.code == ErrorCode::InvalidState => Ok(()),
        Err(e) => Err(e),
    }
}

pub(super) fn create_in(
    t: &mut Tx<'_>,
    from: &Peer,
    to: &Peer,
    text: &str,
    timeout_ms: i64,
    parent: Option<&AskGroupId>,
    reply_to: Option<&AskId>,
) -> Result<AskSent> {
    if to.id == from.id {
        return Err(Error::bad_request(format!(
            "{} cannot ask itself",
            from.name
        )));
    }
    let seq = t.keys.take_ask()?;
    let id = AskId::with_seq(t.now, seq);
    // The key its copy will take: the next delivery made (checked below).
    let copy_seq = t.keys.delivery;
    t.conn()
        .prepare_cached(
            "INSERT INTO asks (id, parent_id, from_peer, from_name, to_peer, to_name, circle, text,
               state, created_ms, updated_ms, expires_ms, reply_to, copy_seq, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?9, ?10, ?11, ?12, ?13)",
        )?
        .execute(params![
            id,
            parent,
            from.id,
            from.name,
            to.id,
            to.name,
            to.circle,
            text,
            t.now,
            t.now + timeout_ms,
            reply_to,
            copy_seq,
            seq
        ])?;
    let queued_offline = !to.reachable(t.now, t.policy.stale_after_ms);
    // The row as just written (not read back: a statement and a row
    // decoded; the asks tests compare it with a read).
    let a = Ask {
        correlation_id: id.clone(),
        parent_id: parent.cloned(),
        from: from.name.clone(),
        from_peer_id: from.id.clone(),
        to: to.name.clone(),
        to_peer_id: to.id.clone(),
        circle: to.circle.clone(),
        text: text.to_string(),
        state: AskState::Queued,
        answer: None,
        ack_message: None,
        created_at_ms: t.now,
        updated_at_ms: t.now,
        expires_at_ms: t.now + timeout_ms,
        reminded_at_ms: None,
        closed_at_ms: None,
        reply_to: reply_to.cloned(),
        job_id: None,
    };
    let queued = AskMove::Queued {
        from: from.name.clone(),
        to: to.name.clone(),
        expires_at_ms: a.expires_at_ms,
        recipient_offline: queued_offline,
        reply_to: reply_to.map(AskId::to_string),
    };
    ask_event(t, &a, Event::AskQueued(queued))?;
    let delivery_id = enqueue(
        t,
        NewDelivery {
            to,
            from: Some(from),
            kind: DeliveryKind::Ask,
            ask_id: Some(&id),
            job_id: None,
            text,
        },
    )?;
    debug_assert_eq!(
        delivery_id.seq(),
        copy_seq,
        "an ask's copy takes the next key"
    );
    if delivery_id.seq() != copy_seq {
        keep_copy(t, KEEP_COPY, &id, &delivery_id)?;
    }
    Ok(AskSent {
        ask: a,
        delivery_id,
        queued_offline,
    })
}

fn timeout(policy_default: i64, req: Option<u64>) -> Result<i64> {
    match req {
        None => Ok(policy_default),
        Some(0) => Err(Error::bad_request("timeout_ms must be positive")),
        Some(ms) if ms > 30 * 86_400_000 => Err(Error::bad_request("timeout_ms is over 30 days")),
        Some(ms) => Ok(ms as i64),
    }
}

/// Withdraw an ended ask's undelivered copies; if the recipient may already
/// have seen it, send it a notice saying why (so a late answer is no surprise).
fn withdraw(t: &mut Tx<'_>, a: &Ask, why: &str) -> Result<()> {
    let seen = drop_for_ask(t, &a.correlation_id)?;
    if seen && let Some(rcpt) = by_id(t, &a.to_peer_id)? {
        enqueue(
            t,
            NewDelivery {
                to: &rcpt,
                from: None,
                kind: DeliveryKind::System,
                ask_id: Some(&a.correlation_id),
                job_id: None,
                text: &format!(
                    "Ask {} from {} is withdrawn: {why}. No answer is needed.",
                    a.correlation_id, a.from
                ),
            },
        )?;
    }
    Ok(())
}

/// End the open asks of a peer being removed: asks to it fail, asks from it
/// are canceled.
pub(super) fn end_for_removed_peer(t: &mut Tx<'_>, p: &Peer) -> Result<()> {
    let ids: Vec<(AskId, bool)> = t
        .conn()
        .prepare_cached(
            "SELECT id, to_peer = ?1 FROM asks
             WHERE (to_peer = ?1 OR from_peer = ?1) AND state IN ('queued','delivered','picked_up')",
        )?
        .query_map([&p.id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    for (id, to_them) in ids {
        let (action, why) = if to_them {
            (AskAction::Fail, "recipient unregistered")
        } else {
            (AskAction::Cancel, "asker unregistered")
        };
        let a = cas(t, &id, action)?;
        if to_them {
            drop_for_ask(t, &id)?;
        } else {
            withdraw(t, &a, why)?;
        }
        let gone = AskMove::PeerGone {
            why: why.to_string(),
            peer: p.name.clone(),
        };
        ask_event(t, &a, Event::ask_moved(a.state, gone))?;
    }
    Ok(())
}

impl Store {
    pub fn ask(&self, from_id: &PeerId, req: &NewAsk, bypass: bool) -> Result<AskSent> {
        self.ask_then(from_id, req, bypass, |_| ())
            .map(|(sent, ())| sent)
    }

    /// Ask, with the asker registered as waiting on the ask in a blocking
    /// ask ([`AskWatch`]) by the write that creates it: nothing that ends
    /// it can come before.
    pub fn ask_blocking(
        &self,
        from_id: &PeerId,
        req: &NewAsk,
        bypass: bool,
    ) -> Result<(AskSent, AskWatch<'_>)> {
        self.ask_then(from_id, req, bypass, |id| self.blocking_watch(id))
    }

    /// Ask, and do `then` with its id inside the write that creates it.
    fn ask_then<W>(
        &self,
        from_id: &PeerId,
        req: &NewAsk,
        bypass: bool,
        then: impl FnOnce(&AskId) -> W,
    ) -> Result<(AskSent, W)> {
        self.policy.check_text("question", &req.text)?;
        let timeout_ms = timeout(self.policy.ask_timeout_ms, req.timeout_ms)?;
        self.write(|t| {
            let from = must(t, from_id)?;
            let to = target(t, &from, &req.to, req.circle.as_deref(), bypass)?;
            if let Some(r) = &req.reply_to {
                let prior = get(t.conn(), r)?;
                authorize(
                    &Caller::Peer(from.clone().into()),
                    Action::ReplyToAsk,
                    parties(&prior),
                )
                .map_err(|e| Error::new(e.code, format!("reply_to {r}: {}", e.message)))?;
            }
            let sent = create_in(
                t,
                &from,
                &to,
                &req.text,
                timeout_ms,
                None,
                req.reply_to.as_ref(),
            )?;
            let w = then(&sent.ask.correlation_id);
            Ok((sent, w))
        })
    }

    pub fn ask_many(
        &self,
        from_id: &PeerId,
        req: &NewAskMany,
        bypass: bool,
    ) -> Result<AskManySent> {
        self.policy.check_text("question", &req.text)?;
        let timeout_ms = timeout(self.policy.ask_timeout_ms, req.timeout_ms)?;
        if req.to.is_empty() {
            return Err(Error::bad_request("ask-many needs at least one peer"));
        }
        if req.to.len() > self.policy.max_fanout {
            return Err(Error::bad_request(format!(
                "{} peers named; ask-many reaches at most {} (max_fanout)",
                req.to.len(),
                self.policy.max_fanout
            )));
        }
        let mut seen = HashSet::new();
        for n in &req.to {
            if !seen.insert(n) {
                return Err(Error::bad_request(format!("{n:?} is named twice")));
            }
        }
        self.write(|t| {
            let from = must(t, from_id)?;
            let parent = AskGroupId::generate(t.now);
            t.conn()
                .prepare_cached(
                    "INSERT INTO ask_groups (id, from_peer, circle, text, created_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![parent, from.id, from.circle, req.text, t.now])?;
            t.event(NewEvent {
                subject: &parent,
                related: None,
                circle: Some(&from.circle),
                event: Event::AskManyCreated { from: from.name.clone(), to: req.to.clone() },
            })?;
            let mut asks = Vec::with_capacity(req.to.len());
            let mut seen_ids = HashSet::new();
            for addr in &req.to {
                let to = target(t, &from, addr, req.circle.as_deref(), bypass)?;
                if !seen_ids.insert(to.id.clone()) {
                    return Err(Error::bad_request(format!(
                        "{addr:?} names {} again",
                        to.name
                    )));
                }
                asks.push(create_in(t, &from, &to, &req.text, timeout_ms, Some(&parent), None)?);
            }
            Ok(AskManySent {
                parent_id: parent,
                asks,
            })
        })
    }

    /// Who answered what, and who is still open: its asker, or the admin
    /// (`caller` None).
    pub fn ask_many_result(
        &self,
        parent_id: &AskGroupId,
        caller: Option<&PeerId>,
    ) -> Result<AskManyResult> {
        self.read(|c| {
            let (from_peer, circle, text): (PeerId, String, String) = c
                .prepare_cached("SELECT from_peer, circle, text FROM ask_groups WHERE id = ?1")?
                .query_row([parent_id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .optional()?
                .ok_or_else(|| {
                    Error::new(ErrorCode::NotFound, format!("no ask group {parent_id}"))
                })?;
            // Its asker reads it by id (as `get_ask`); anyone else gets the
            // policy's refusal.
            if let Some(p) = caller
                && *p != from_peer
            {
                let target = Target {
                    circle: Some(&circle),
                    asker: Some(from_peer.as_str()),
                    ..Target::default()
                };
                authorize(&viewer(c, p)?, Action::ReadAskGroup, target)?;
            }
            let asks: Vec<Ask> = c
                .prepare_cached(concat!(
                    "SELECT ",
                    cols!(),
                    " FROM asks WHERE parent_id = ?1 ORDER BY to_name"
                ))?
                .query_map([parent_id], from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let open: Vec<String> = asks
                .iter()
                .filter(|a| !a.state.is_terminal())
                .map(|a| a.to.clone())
                .collect();
            Ok(AskManyResult {
                parent_id: parent_id.clone(),
                text,
                done: open.is_empty(),
                open,
                entries: asks
                    .into_iter()
                    .map(|a| AskManyEntry {
                        peer: a.to,
                        correlation_id: a.correlation_id,
                        state: a.state,
                        answer: a.answer,
                    })
                    .collect(),
            })
        })
    }

    /// An ask, visible to its asker, its recipient or admin (`caller` None).
    pub fn get_ask(&self, id: &AskId, caller: Option<&PeerId>) -> Result<Ask> {
        self.read(|c| {
            let a = get(c, id)?;
            may_read(c, caller, parties(&a))?;
            Ok(a)
        })
    }

    /// The ask if it has ended (a terminal state), read as [`get_ask`]
    /// reads it for `caller` (the same refusals): while it is open, only
    /// its state and parties are read (what a wait's first look needs);
    /// once it ended, the whole ask, in the same read.
    ///
    /// [`get_ask`]: Store::get_ask
    pub fn ended_ask(&self, id: &AskId, caller: Option<&PeerId>) -> Result<Option<Ask>> {
        self.read(|c| {
            let (state, from, to, circle): (String, String, String, String) = c
                .prepare_cached(concat!(
                    "SELECT state, from_peer, to_peer, circle FROM asks WHERE ",
                    at_ask!("asks", "?1")
                ))?
                .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .optional()?
                .ok_or_else(|| Error::new(ErrorCode::UnknownAsk, format!("no ask {id}")))?;
            let parties = Target {
                circle: Some(&circle),
                asker: Some(&from),
                recipient: Some(&to),
                ..Target::default()
            };
            may_read(c, caller, parties)?;
            if !parse_col(state, AskState::parse)?.is_terminal() {
                return Ok(None);
            }
            // Terminal: its row no longer changes.
            get(c, id).map(Some)
        })
    }

    /// Asks a peer sent and/or received, newest first.
    pub fn list_asks(
        &self,
        peer_id: &PeerId,
        sent: bool,
        received: bool,
        open_only: bool,
        limit: u32,
    ) -> Result<Vec<Ask>> {
        self.read(|c| {
            Ok(c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM asks
                 WHERE ((?2 AND from_peer = ?1) OR (?3 AND to_peer = ?1))
                   AND (NOT ?4 OR state IN ('queued','delivered','picked_up','answered'))
                 ORDER BY created_ms DESC, id DESC LIMIT ?5"
            ))?
            .query_map(params![peer_id, sent, received, open_only, limit], from_row)?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Open asks (in `circle`, or all), newest first: the dashboard's
    /// timeline.
    pub fn open_asks(&self, circle: Option<&str>, limit: u32) -> Result<Vec<Ask>> {
        self.read(|c| {
            Ok(c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM asks
                 WHERE ",
                open!(),
                " AND (?1 IS NULL OR circle = ?1)
                 ORDER BY created_ms DESC, id DESC LIMIT ?2"
            ))?
            .query_map(params![circle, limit], from_row)?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The recipient picks up, acks or answers; the asker cancels: as
    /// `caller`, whom the policy must let act on this ask (checked in the
    /// same transaction as the move, on the row it moves).
    pub fn act_on_ask(
        &self,
        caller: &Caller,
        id: &AskId,
        action: AskAction,
        text: Option<&str>,
    ) -> Result<Ask> {
        let actor_id = &caller.me()?.id;
        self.write(|t| {
            let (prior, copies) = get_keyed(t.conn(), id)?;
            let may = match action {
                AskAction::Cancel => Action::CancelAsk,
                _ => Action::AnswerAsk,
            };
            authorize(caller, may, parties(&prior))?;
            if let Some(text) = text {
                self.policy.check_text("text", text)?;
            }
            let actor = must_shared(t, actor_id)?;
            let (to, texts) = match action {
                AskAction::Answer => (
                    AskState::Closed,
                    Texts {
                        answer: Some(text.unwrap_or_default()),
                        ..Texts::default()
                    },
                ),
                AskAction::Ack => (
                    action.target(),
                    Texts {
                        ack_message: text,
                        ..Texts::default()
                    },
                ),
                _ => (action.target(), Texts::default()),
            };
            let a = move_read(t, prior, action, to, texts)?;
            // Whether its reply is written delivered (its asker waits for
            // it in a blocking ask, whose response carries it).
            let mut settled = false;
            if action != AskAction::Cancel {
                settle_for_ask(t, id, &a.circle, copies.into_iter().flatten())?;
            }
            match action {
                AskAction::Answer => {
                    // Answered and closed in the one row write above;
                    // each step is still an event.
                    let text = text.unwrap_or_default();
                    let answered = AskMove::Answered {
                        by: actor.name.clone(),
                        answer_bytes: text.len(),
                    };
                    ask_event(t, &a, Event::AskAnswered(answered))?;
                    let by = AskMove::By {
                        by: actor.name.clone(),
                    };
                    ask_event(t, &a, Event::AskClosed(by))?;
                    if let Some(asker) = shared_by_id(t, &a.from_peer_id)? {
                        settled = self.reply(t, &asker, &actor, id, text)?;
                    }
                }
                AskAction::Ack => {
                    let acked = AskMove::Acked {
                        by: actor.name.clone(),
                        ack_message_bytes: text.map(str::len),
                    };
                    ask_event(t, &a, Event::AskClosed(acked))?;
                    if let (Some(msg), Some(asker)) = (text, shared_by_id(t, &a.from_peer_id)?) {
                        settled = self.reply(t, &asker, &actor, id, msg)?;
                    }
                }
                AskAction::Cancel => {
                    let by = AskMove::By {
                        by: actor.name.clone(),
                    };
                    ask_event(t, &a, Event::AskCanceled(by))?;
                    withdraw(t, &a, &format!("{} canceled it", actor.name))?;
                }
                _ => {
                    let by = AskMove::By {
                        by: actor.name.clone(),
                    };
                    ask_event(t, &a, Event::ask_moved(a.state, by))?
                }
            }
            // Handed to the waits registered by now; one registered later
            // takes its first look once this write landed, and reads it.
            if a.state.is_terminal() && self.ask_waits.watched(id) {
                t.ended(&a, settled);
            }
            Ok(a)
        })
    }

    /// Queue the reply (an answer or ack message) to ask `id` for its asker;
    /// delivered at once when the asker waits for it in a blocking ask
    /// (whose response carries it): whether it was.
    fn reply(
        &self,
        t: &mut Tx<'_>,
        asker: &Peer,
        actor: &Peer,
        id: &AskId,
        text: &str,
    ) -> Result<bool> {
        let reply = enqueue(
            t,
            NewDelivery {
                to: asker,
                from: Some(actor),
                kind: DeliveryKind::Reply,
                ask_id: Some(id),
                job_id: None,
                text,
            },
        )?;
        let settled = self.ask_waits.blocking(id);
        if settled {
            super::deliveries::confirm_in(t, asker, &reply)?;
        }
        Ok(settled)
    }

    /// Expire open asks past their timeout. Returns how many.
    pub fn expire_due(&self) -> Result<usize> {
        let now = self.clock.now_ms();
        let due = self.read(|c| {
            Ok(c.prepare_cached(concat!("SELECT COUNT(*)", expiring!()))?
                .query_row([now], |r| r.get::<_, i64>(0))?)
        })?;
        if due == 0 {
            return Ok(0);
        }
        self.write(|t| {
            let ids: Vec<AskId> = t
                .conn()
                .prepare_cached(concat!("SELECT id", expiring!()))?
                .query_map([t.now], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for id in &ids {
                let a = cas(t, id, AskAction::Expire)?;
                withdraw(t, &a, "it expired")?;
                ask_event(
                    t,
                    &a,
                    Event::AskExpired(AskMove::Expired {
                        to: a.to.clone(),
                        expires_at_ms: a.expires_at_ms,
                    }),
                )?;
            }
            Ok(ids.len())
        })
    }

    /// Re-deliver, once, asks still not picked up after `reminder_after`.
    ///
    /// Asks are walked in rowid order, which is the order they were made
    /// in, from where the last pass stopped ([`RemindWalk`]) to the first
    /// ask not old enough yet: every ask is read once, and no index is kept
    /// for it (`asks_to_remind` cost two 1 KiB WAL pages of every ask, its
    /// entry's insert and its delete). An ask leaves `queued` and
    /// `delivered` for good, so one the walk passed not waiting for a
    /// reminder never needs one. One stamped more than an hour in the
    /// future (the clock was set back) does not hold the walk up: it is set
    /// aside and reminded when its time comes. (A smaller step back holds
    /// the asks made after it until the clock is past the one it stopped
    /// at.)
    pub fn remind_due(&self) -> Result<usize> {
        const PAGE: i64 = 500;
        let now = self.clock.now_ms();
        let cutoff = now - self.policy.reminder_after_ms;
        let future = now + 3_600_000;
        let mut walk = self.remind_from.lock().unwrap_or_else(|p| p.into_inner());
        let mut reminded = 0;
        let mut due: Vec<i64> = walk
            .ahead
            .iter()
            .filter(|(created, _)| *created <= cutoff)
            .map(|(_, rowid)| *rowid)
            .collect();
        loop {
            let rows: Vec<(i64, i64, bool)> = self.read(|c| {
                Ok(c.prepare_cached(WALK)?
                    .query_map(params![walk.from, PAGE], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })?
                    .collect::<rusqlite::Result<_>>()?)
            })?;
            let mut next = walk.from;
            let mut reached = false;
            let mut ahead = Vec::new();
            for &(rowid, created, waiting) in &rows {
                if created > cutoff && created <= future {
                    reached = true;
                    break;
                }
                if waiting && created <= cutoff {
                    due.push(rowid);
                } else if waiting {
                    ahead.push((created, rowid));
                }
                next = rowid + 1;
            }
            if !due.is_empty() {
                reminded += self.write(|t| {
                    let mut n = 0;
                    for rowid in &due {
                        n += usize::from(remind(t, *rowid)?);
                    }
                    Ok(n)
                })?;
                walk.ahead.retain(|(_, rowid)| !due.contains(rowid));
                due.clear();
            }
            walk.ahead.extend(ahead);
            walk.from = next;
            if reached || (rows.len() as i64) < PAGE {
                return Ok(reminded);
            }
        }
    }
}

/// Where the reminder pass stands: the rowid of the first ask it has not
/// walked past (set at open from the asks not closed; rowids only grow,
/// the newest ask is never pruned), and the asks it passed that were
/// stamped ahead of the clock, waiting for their time (creation, rowid).
pub(crate) struct RemindWalk {
    pub(crate) from: i64,
    pub(crate) ahead: Vec<(i64, i64)>,
}

/// Remind the ask at `rowid` if it still waits for its one reminder:
/// whether it did.
fn remind(t: &mut Tx, rowid: i64) -> Result<bool> {
    let row: Option<(AskId, PeerId, PeerId, String)> = t
        .conn()
        .prepare_cached(REMIND)?
        .query_row(params![rowid, t.now], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .optional()?;
    let Some((id, to_id, from_id, text)) = row else {
        return Ok(false);
    };
    let (Some(to), from) = (by_id(t, &to_id)?, by_id(t, &from_id)?) else {
        return Ok(true);
    };
    let dlv = enqueue(
        t,
        NewDelivery {
            to: &to,
            from: from.as_ref(),
            kind: DeliveryKind::Reminder,
            ask_id: Some(&id),
            job_id: None,
            text: &text,
        },
    )?;
    keep_copy(t, KEEP_REMINDER, &id, &dlv)?;
    let a = get(t.conn(), &id)?;
    let reminded = Event::AskReminded {
        to: to.name.clone(),
        delivery_id: dlv.into_string(),
    };
    ask_event(t, &a, reminded)?;
    Ok(true)
}

/// Keep on the ask's row (`?1`) the key (`?2`) of its copy, by which the
/// copy is found again (`deliveries::copy_keys`): the ask itself, or its
/// reminder.
const KEEP_COPY: &str = concat!(
    "UPDATE asks SET copy_seq = ?2 WHERE ",
    at_ask!("asks", "?1")
);
const KEEP_REMINDER: &str = concat!(
    "UPDATE asks SET reminder_seq = ?2 WHERE ",
    at_ask!("asks", "?1")
);

fn keep_copy(t: &Tx, sql: &'static str, id: &AskId, dlv: &DeliveryId) -> Result<()> {
    t.conn()
        .prepare_cached(sql)?
        .execute(params![id, dlv.seq()])?;
    Ok(())
}

/// Where the reminder pass starts after a restart: the oldest ask not
/// closed yet (through `asks_open`), or past the newest ask.
pub(crate) fn remind_start(c: &rusqlite::Connection) -> Result<i64> {
    Ok(c.query_row(
        concat!(
            "SELECT COALESCE((SELECT MIN(rowid) FROM asks WHERE ",
            open!(),
            "), (SELECT COALESCE(MAX(rowid), 0) + 1 FROM asks))"
        ),
        [],
        |r| r.get(0),
    )?)
}

/// The asks not closed yet, in the words of `asks_open`'s condition
/// (migration 22): a statement that names them so reads that index, one
/// that says `state IN (…)` reads every ask.
macro_rules! open {
    () => {
        "(state = 'queued' OR state = 'delivered' OR state = 'picked_up' OR state = 'answered')"
    };
}
pub(crate) use open;

/// The open asks past their expiry (`?1`), through `asks_open`; an answered
/// ask does not expire.
macro_rules! expiring {
    () => {
        concat!(
            " FROM asks WHERE ",
            open!(),
            " AND state != 'answered' AND expires_ms <= ?1"
        )
    };
}
use expiring;

/// The reminder pass's walk: asks from rowid `?1` in order, each with its
/// creation time and whether it still waits for its one reminder.
const WALK: &str = "SELECT rowid, created_ms,
       reminded_ms IS NULL AND (state = 'queued' OR state = 'delivered')
     FROM asks WHERE rowid >= ?1 ORDER BY rowid LIMIT ?2";

/// Mark the ask at rowid `?1` reminded at `?2` if it still waits for it.
const REMIND: &str = "UPDATE asks SET reminded_ms = ?2
     WHERE rowid = ?1 AND reminded_ms IS NULL AND (state = 'queued' OR state = 'delivered')
     RETURNING id, to_peer, from_peer, text";

#[cfg(test)]
mod tests {
    /// A store with the peers a, b and c.
    fn three_peers() -> (
        tempfile::TempDir,
        crate::Store,
        [repowire_core::ids::PeerId; 3],
    ) {
        let (dir, s) = crate::testing::open();
        let peers = ["a", "b", "c"].map(|n| crate::testing::register(&s, n).0);
        (dir, s, peers)
    }

    /// A new ask is handed back as built, not read back: it is the row as
    /// stored, for a plain ask, a reply, and each ask of an ask-many.
    #[test]
    fn a_new_ask_is_returned_as_stored() {
        use repowire_core::ask::{NewAsk, NewAskMany};
        let (_d, s, [a, b, _]) = three_peers();
        let stored = |x: &repowire_core::ask::Ask| s.get_ask(&x.correlation_id, None).unwrap();
        let ask =
            |from: &repowire_core::ids::PeerId, req: NewAsk| s.ask(from, &req, false).unwrap();
        let first = ask(
            &a,
            NewAsk {
                to: "b".into(),
                text: "q".into(),
                timeout_ms: Some(60_000),
                ..Default::default()
            },
        );
        assert_eq!(first.ask, stored(&first.ask));
        let reply = ask(
            &b,
            NewAsk {
                to: "a".into(),
                text: "and?".into(),
                reply_to: Some(first.ask.correlation_id.clone()),
                ..Default::default()
            },
        );
        assert_eq!(reply.ask.reply_to.as_ref(), Some(&first.ask.correlation_id));
        assert_eq!(reply.ask, stored(&reply.ask));
        let many = NewAskMany {
            to: vec!["b".into(), "c".into()],
            text: "all?".into(),
            ..Default::default()
        };
        let sent = s.ask_many(&a, &many, false).unwrap();
        assert_eq!(sent.asks.len(), 2);
        for one in &sent.asks {
            assert_eq!(one.ask.parent_id.as_ref(), Some(&sent.parent_id));
            assert_eq!(one.ask, stored(&one.ask));
        }
    }

    /// A moved ask is handed back as moved, not read back: the row as
    /// stored after a pick-up, an answer, an ack and a cancel; and who may
    /// move it is checked on that row (a stranger is refused, nothing moves).
    #[test]
    fn a_moved_ask_is_returned_as_stored() {
        use repowire_core::access::Caller;
        use repowire_core::ask::{Ask, AskAction, AskState, NewAsk};
        use repowire_core::error::ErrorCode;
        use repowire_core::ids::AskId;
        let (_d, s, [a, b, c]) = three_peers();
        let who = |p| Caller::Peer(s.peer_by_id(p).unwrap().unwrap().into());
        let stored = |x: &Ask| s.get_ask(&x.correlation_id, None).unwrap();
        let new = || {
            let req = NewAsk {
                to: "b".into(),
                text: "q".into(),
                ..Default::default()
            };
            s.ask(&a, &req, false).unwrap().ask.correlation_id
        };
        let act = |p, id: &AskId, action, text| s.act_on_ask(&who(p), id, action, text);
        let one = new();
        let refused = act(&c, &one, AskAction::Answer, Some("mine")).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Forbidden);
        let picked = act(&b, &one, AskAction::Pickup, None).unwrap();
        assert_eq!(picked.state, AskState::PickedUp);
        assert_eq!(picked, stored(&picked));
        let answered = act(&b, &one, AskAction::Answer, Some("yes")).unwrap();
        assert_eq!(answered.state, AskState::Closed);
        assert_eq!(answered.answer.as_deref(), Some("yes"));
        assert_eq!(answered, stored(&answered));
        let late = act(&b, &one, AskAction::Answer, Some("again")).unwrap_err();
        assert_eq!(late.code, ErrorCode::InvalidState);
        let two = new();
        let acked = act(&b, &two, AskAction::Ack, Some("seen")).unwrap();
        assert_eq!(acked.ack_message.as_deref(), Some("seen"));
        assert_eq!(acked, stored(&acked));
        let three = new();
        let canceled = act(&a, &three, AskAction::Cancel, None).unwrap();
        assert_eq!(canceled.state, AskState::Canceled);
        assert_eq!(canceled, stored(&canceled));
    }

    /// The reminder pass walks asks in the order they were made: each one
    /// waiting ten minutes is reminded once, a picked-up one never, one
    /// stamped far ahead does not hold the walk up and is reminded in its
    /// time; the newest ask survives
    /// pruning so a new one never takes an old rowid the walk has passed;
    /// and a store opened again walks from its oldest open ask without
    /// reminding anyone twice.
    #[test]
    fn reminders_walk_the_asks_once_in_order() {
        use repowire_core::access::Caller;
        use repowire_core::ask::{AskAction, NewAsk};
        use repowire_core::delivery::DeliveryKind;
        use repowire_core::ids::AskId;
        use repowire_core::time::Clock;
        let clock = Clock::fixed(1_000_000_000);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let open = || {
            crate::Store::open(&path, Default::default())
                .unwrap()
                .with_clock(clock.clone())
        };
        let s = open();
        let [a, b] = ["a", "b"].map(|n| crate::testing::register(&s, n).0);
        let b_caller = || Caller::Peer(s.peer_by_id(&b).unwrap().unwrap().into());
        let ask = |s: &crate::Store, text: &str| {
            let req = NewAsk {
                to: "b".into(),
                text: text.into(),
                ..Default::default()
            };
            s.ask(&a, &req, false).unwrap().ask.correlation_id
        };
        let reminded = |s: &crate::Store| -> Vec<String> {
            s.peek(&b, 100)
                .unwrap()
                .into_iter()
                .filter(|d| d.kind == DeliveryKind::Reminder)
                .map(|d| d.text)
                .collect()
        };
        let minutes = |m: i64| clock.advance(m * 60_000);

        ask(&s, "one");
        let two = ask(&s, "two");
        s.act_on_ask(&b_caller(), &two, AskAction::Pickup, None)
            .unwrap();
        let ahead = ask(&s, "ahead");
        s.write(|t| {
            t.conn().execute(
                "UPDATE asks SET created_ms = created_ms + 86400000 WHERE id = ?1",
                [&ahead],
            )?;
            Ok(())
        })
        .unwrap();
        minutes(5);
        ask(&s, "three");
        assert_eq!(s.remind_due().unwrap(), 0, "nothing is ten minutes old");
        minutes(6);
        assert_eq!(s.remind_due().unwrap(), 1);
        assert_eq!(s.remind_due().unwrap(), 0, "once");
        assert_eq!(reminded(&s), ["one"]);
        minutes(5);
        assert_eq!(s.remind_due().unwrap(), 1, "past the one stamped ahead");
        assert_eq!(reminded(&s), ["one", "three"]);
        minutes(24 * 60);
        assert_eq!(
            s.remind_due().unwrap(),
            1,
            "the one stamped ahead, in its time"
        );
        assert_eq!(s.remind_due().unwrap(), 0, "once");
        assert_eq!(reminded(&s), ["one", "three", "ahead"]);

        // Every ask finishes and ages two days (the one stamped ahead,
        // one); pruning keeps the newest.
        let all: Vec<AskId> = s
            .read(|c| {
                Ok(c.prepare("SELECT id FROM asks")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        for id in &all {
            s.act_on_ask(&b_caller(), id, AskAction::Ack, None).unwrap();
        }
        s.write(|t| {
            t.conn().execute_batch(
                "UPDATE asks SET created_ms = created_ms - 172800000,
                   closed_ms = closed_ms - 172800000",
            )?;
            Ok(())
        })
        .unwrap();
        s.prune_finished(3_600_000).unwrap();
        let left = |s: &crate::Store| -> i64 {
            s.read(|c| Ok(c.query_row("SELECT COUNT(*) FROM asks", [], |r| r.get(0))?))
                .unwrap()
        };
        assert_eq!(left(&s), 1, "the newest ask stays");
        ask(&s, "after the prune");
        minutes(11);
        assert_eq!(s.remind_due().unwrap(), 1);
        assert!(reminded(&s).contains(&"after the prune".to_string()));

        // Opened again: an ask made before is still reminded when due, one
        // reminded already is not reminded twice.
        ask(&s, "before the restart");
        drop(s);
        let s = open();
        ask(&s, "after the restart");
        minutes(11);
        assert_eq!(s.remind_due().unwrap(), 2);
        let texts = reminded(&s);
        assert_eq!(texts.iter().filter(|t| *t == "after the prune").count(), 1);
        assert!(texts.contains(&"before the restart".to_string()));
        assert!(texts.contains(&"after the restart".to_string()));
    }

    /// An ask is found by the key its id carries (or through
    /// `asks_legacy`), from a parameter or from a delivery's `ask_id`:
    /// never by a scan, nor through a temporary table; and the key a new
    /// ask's id carries is its row's.
    #[test]
    fn an_ask_is_found_by_key_not_by_a_scan() {
        let (_d, s, [a, _, _]) = three_peers();
        let by_ask = |t: &str| format!("SELECT seq FROM asks WHERE {t}");
        for sql in [
            by_ask(at_ask!("asks", "?1")),
            format!(
                "SELECT {} FROM deliveries WHERE seq = ?1",
                crate::deliveries::cols_for_tests()
            ),
        ] {
            let plan = crate::plan_of(&s, &sql);
            assert!(plan.contains("asks_legacy"), "{sql}: {plan}");
            assert!(
                plan.contains(" USING INTEGER PRIMARY KEY (rowid=?)"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("SCAN"), "{sql}: {plan}");
            crate::assert_no_temp_table(&s, &sql);
        }
        let req = repowire_core::ask::NewAsk {
            to: "b".into(),
            text: "q".into(),
            ..Default::default()
        };
        let id = s.ask(&a, &req, false).unwrap().ask.correlation_id;
        let seq: i64 = s
            .read(|c| {
                Ok(c.query_row(
                    "SELECT seq FROM asks WHERE id = ?1 AND legacy IS NULL",
                    [&id],
                    |r| r.get(0),
                )?)
            })
            .unwrap();
        assert_eq!(seq, id.seq());
    }

    #[test]
    fn reminders_and_expiries_are_read_from_their_indexes() {
        crate::assert_planned_through(&[
            (super::WALK, "INTEGER PRIMARY KEY"),
            (super::REMIND, "INTEGER PRIMARY KEY"),
            (concat!("SELECT id", super::expiring!()), "asks_open"),
            (
                concat!("SELECT COUNT(*) FROM asks WHERE ", open!()),
                "asks_open",
            ),
        ]);
    }
}
