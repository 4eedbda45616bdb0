//! Deliveries: durable per-peer messages (asks, replies, notifies,
//! broadcasts, reminders, system notices), leased out and confirmed.

use super::peers::{must, must_shared};
use super::{NewEvent, Store, Tx, parse_col};
use repowire_core::ask::AskAction;
use repowire_core::delivery::{
    Broadcasted, Delivery, DeliveryKind, DeliveryRoute, DeliveryState, NewBroadcast, NewNotify,
    Notified, Route,
};
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::{Confirmed, Event};
use repowire_core::ids::{AskId, DeliveryId, JobId, PeerId};
use repowire_core::peer::Peer;
use rusqlite::{Connection, OptionalExtension, Row, params};

/// A delivery to append.
#[derive(Clone, Copy)]
pub(super) struct NewDelivery<'a> {
    pub to: &'a Peer,
    pub from: Option<&'a Peer>,
    pub kind: DeliveryKind,
    pub ask_id: Option<&'a AskId>,
    /// The job the delivery is about, if any.
    pub job_id: Option<&'a JobId>,
    pub text: &'a str,
}

/// Append a delivery (and its event). Asks, notes and broadcasts are refused
/// when the recipient's inbox is full; replies, reminders and notices the
/// daemon owes are never refused (a full inbox must not block an answer or a
/// role takeover).
pub(super) fn enqueue(t: &mut Tx<'_>, d: NewDelivery<'_>) -> Result<DeliveryId> {
    let capped = matches!(
        d.kind,
        DeliveryKind::Ask | DeliveryKind::Notify | DeliveryKind::Broadcast
    );
    // What counts against the cap: its pending and leased deliveries
    // (counted in memory, see `open`) and its armed ones (schedule fires
    // written ahead: pending from their instant on).
    let pending: i64 = if !capped {
        0
    } else {
        t.open_to(&d.to.id) + count_armed(t, &d.to.id)?
    };
    if pending >= t.policy.max_pending_per_peer {
        return Err(Error::new(
            ErrorCode::InboxFull,
            format!(
                "{} has {pending} undelivered messages, the limit (max_pending_per_peer); it must drain its inbox first",
                d.to.name
            ),
        ));
    }
    // A consumer of the recipient waits with room: lease it to that
    // consumer now, in this transaction, and hand it over once committed
    // (the place is settled when the transaction ends, whatever happens).
    let Some(place) = t.waiting.reserve(&d.to.id) else {
        return queue_pending(t, &d);
    };
    let (until, route) = (t.now + place.0.lease_ms(), place.0.route());
    let i = t.reserved.push(place);
    // Oldest first: not while an older one waits to be handed out on that
    // route (queued before the consumer opened, or its lease ran out).
    if any_available(t.conn(), Hints::of(t, &d.to.id), &d.to.id, t.now, route)? {
        t.waiting.missed(&d.to.id);
        return queue_pending(t, &d);
    }
    let id = insert(t, &d, Start::Leased(until))?;
    queued_event(t, &id, &d)?;
    leased_event(t, &id, d.ask_id, d.to, (1, until), route)?;
    // A consumer that calls in is alive (what its own lease would record).
    if route.signals_life() {
        super::peers::alive(t, &d.to.id)?;
    }
    // Read back as the transaction leaves it, just before the commit.
    t.reserved.name(i, id.clone());
    Ok(id)
}

/// Queue `d` pending, for whoever leases it.
fn queue_pending(t: &mut Tx<'_>, d: &NewDelivery<'_>) -> Result<DeliveryId> {
    let id = insert(t, d, Start::Pending)?;
    queued_event(t, &id, d)?;
    Ok(id)
}

/// How a new delivery starts.
enum Start {
    /// Waiting for a consumer.
    Pending,
    /// Leased to a waiting stream until then (its first attempt).
    Leased(i64),
    /// Armed: invisible until then (a schedule fire written ahead).
    Armed(i64),
}

/// The row of a new delivery: `pending` from now, leased to a waiting
/// stream, or `armed` until its instant (then created at that instant).
/// The delivery whose id is the parameter `$id` and whose id's key
/// ([`DeliveryId::seq`]) is the parameter `$seq`: found by that key, or,
/// for an id made before migration 26, through `deliveries_legacy`; the
/// row's id must match either way. (Delivery rows have no index on their
/// id: it was a 1 KiB WAL page and a half of every delivery.) One key, not
/// `seq IN (…)`, which builds a temporary table on every execution.
macro_rules! at_id {
    ($id:literal, $seq:literal) => {
        concat!(
            "seq = COALESCE((SELECT seq FROM deliveries WHERE id = ",
            $id,
            " AND legacy = 1), ",
            $seq,
            ") AND id = ",
            $id
        )
    };
}

fn insert(t: &mut Tx<'_>, d: &NewDelivery<'_>, start: Start) -> Result<DeliveryId> {
    let seq = t.keys.take_delivery()?;
    let id = DeliveryId::with_seq(t.now, seq);
    let (state, created, armed_until, lease_until, attempts) = match start {
        Start::Pending => ("pending", t.now, None, None, 0),
        Start::Leased(until) => ("leased", t.now, None, Some(until), 1),
        Start::Armed(at) => ("armed", at, Some(at), None, 0),
    };
    t.conn()
        .prepare_cached(
            "INSERT INTO deliveries (id, to_peer, from_peer, from_name, from_circle, kind, ask_id,
               text, state, created_ms, job_id, not_before_ms, lease_until_ms, attempts, seq)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)",
        )?
        .execute(params![
            id,
            d.to.id,
            d.from.map(|f| &f.id),
            d.from.map(|f| &f.name),
            d.from.map(|f| &f.circle),
            d.kind.as_str(),
            d.ask_id,
            d.text,
            state,
            created,
            d.job_id,
            armed_until,
            lease_until,
            attempts,
            seq
        ])?;
    if armed_until.is_none() {
        t.opened(&d.to.id, 1);
    }
    Ok(id)
}

// An armed delivery (a schedule fire written ahead, see [`arm`]) reads as
// `pending` once it is visible: nothing else may tell it apart.
/// Write a delivery ahead of its time (a schedule fire): state `armed`,
/// invisible until `not_before_ms`, then read as `pending` by every lease,
/// peek and confirm with no write at all. No event yet: its
/// `delivery_queued` is written when the fire is booked
/// ([`book_armed`]). Checked against the inbox cap as if it were pending
/// now, counting `armed_already` armed ones to the same recipient.
pub(super) fn arm(
    t: &mut Tx<'_>,
    d: &NewDelivery<'_>,
    not_before_ms: i64,
    armed_already: i64,
) -> Result<DeliveryId> {
    if matches!(d.kind, DeliveryKind::Notify) {
        let pending = t.open_to(&d.to.id);
        if pending + armed_already >= t.policy.max_pending_per_peer {
            return Err(Error::new(
                ErrorCode::InboxFull,
                format!("{} would have too many undelivered messages", d.to.name),
            ));
        }
    }
    // Before the commit: a reader that skips the look-up on the horizon
    // can never miss a committed armed row.
    t.armed_horizon
        .fetch_max(not_before_ms, std::sync::atomic::Ordering::AcqRel);
    insert(t, d, Start::Armed(not_before_ms))
}

/// The latest instant an armed delivery waits for (`i64::MIN`: none).
pub(super) fn armed_horizon(c: &Connection) -> Result<i64> {
    Ok(
        c.prepare("SELECT MAX(not_before_ms) FROM deliveries WHERE state = 'armed'")?
            .query_row([], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(i64::MIN),
    )
}

const NEXT_ARMED: &str = "SELECT MIN(not_before_ms) FROM deliveries INDEXED BY deliveries_armed
     WHERE to_peer = ?1 AND state = 'armed' AND not_before_ms > ?2";

/// How many armed deliveries wait for a peer (`?1`).
const COUNT_ARMED: &str = "SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_armed
     WHERE to_peer = ?1 AND state = 'armed'";

/// How many armed deliveries wait for `peer_id`.
pub(super) fn count_armed(t: &mut Tx<'_>, peer_id: &PeerId) -> Result<i64> {
    // None was armed since the store opened, and none was armed then: no
    // read (the horizon only grows, and grows before an armed row is
    // written).
    if !armed_since_open(t.armed_horizon) {
        return Ok(0);
    }
    Ok(t.conn()
        .prepare_cached(COUNT_ARMED)?
        .query_row([peer_id], |r| r.get(0))?)
}

/// Book an armed delivery whose time came: its one `delivery_queued`
/// event is written now, and, still untaken, it becomes an ordinary
/// `pending` one (a lease or confirm may have taken it already). With
/// `skip`, one still untaken is dropped instead (`delivery_dropped`: a
/// peek may have shown it) and false is returned.
pub(super) fn book_armed(
    t: &mut Tx<'_>,
    id: &DeliveryId,
    d: &NewDelivery<'_>,
    skip: bool,
) -> Result<bool> {
    queued_event(t, id, d)?;
    let state = if skip { "dropped" } else { "pending" };
    let changed = t
        .conn()
        .prepare_cached(concat!(
            "UPDATE deliveries SET state = ?2 WHERE ",
            at_id!("?1", "?3"),
            " AND state = 'armed'"
        ))?
        .execute(params![id, state, id.seq()])?;
    if changed > 0 && !skip {
        // Pending now, for a lease (it was never handed).
        t.opened(&d.to.id, 1);
        t.waiting.missed(&d.to.id);
    }
    if skip && changed > 0 {
        t.event(NewEvent {
            subject: id,
            related: None,
            circle: Some(&d.to.circle),
            event: Event::DeliveryDropped {
                why: "its schedule's fire was missed while the daemon was down (missed: skip)"
                    .into(),
            },
        })?;
        return Ok(false);
    }
    Ok(true)
}

/// Withdraw an armed delivery before its time (its schedule was paused,
/// deleted or lost a peer): deleted, as nobody could have seen it.
pub(super) fn disarm(t: &mut Tx<'_>, id: &DeliveryId) -> Result<()> {
    t.conn()
        .prepare_cached(concat!(
            "DELETE FROM deliveries WHERE ",
            at_id!("?1", "?3"),
            " AND state = 'armed' AND not_before_ms > ?2"
        ))?
        .execute(params![id, t.now, id.seq()])?;
    Ok(())
}

fn queued_event(t: &mut Tx<'_>, id: &DeliveryId, d: &NewDelivery<'_>) -> Result<()> {
    t.event(NewEvent {
        subject: id,
        related: d.ask_id.map(|a| a.as_str()),
        circle: Some(&d.to.circle),
        event: Event::DeliveryQueued {
            to: d.to.name.clone(),
            to_peer_id: d.to.id.to_string(),
            from: d.from.map(|f| f.name.clone()),
            kind: d.kind,
        },
    })
}

/// Delivery `id` (carrying ask `ask`), now leased to `to` for `route`:
/// its attempt and when its lease ends.
fn leased_event(
    t: &mut Tx<'_>,
    id: &DeliveryId,
    ask: Option<&AskId>,
    to: &Peer,
    (attempt, until): (i64, i64),
    route: DeliveryRoute,
) -> Result<()> {
    t.event(NewEvent {
        subject: id,
        related: ask.map(|a| a.as_str()),
        circle: Some(&to.circle),
        event: Event::DeliveryLeased {
            to: to.name.clone(),
            attempt,
            lease_until_ms: until,
            route: Some(route),
        },
    })
}

macro_rules! cols {
    () => {
        concat!(
            "id, seq, kind, from_name, from_circle, ask_id, text, \
             CASE state WHEN 'armed' THEN 'pending' ELSE state END, attempts, \
             created_ms, lease_until_ms, \
             COALESCE(job_id, (SELECT a.job_id FROM asks a WHERE ",
            crate::asks::at_ask!("a", "deliveries.ask_id"),
            ")), (SELECT a.reply_to FROM asks a WHERE ",
            crate::asks::at_ask!("a", "deliveries.ask_id"),
            "), pushed_at_ms"
        )
    };
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<Delivery> {
    Ok(Delivery {
        delivery_id: r.get(0)?,
        seq: r.get(1)?,
        kind: parse_col(r.get(2)?, DeliveryKind::parse)?,
        from: r.get(3)?,
        from_circle: r.get(4)?,
        correlation_id: r.get(5)?,
        text: r.get(6)?,
        state: parse_col(r.get(7)?, DeliveryState::parse)?,
        attempts: r.get(8)?,
        created_at_ms: r.get(9)?,
        lease_until_ms: r.get(10)?,
        job_id: r.get(11)?,
        reply_to: r.get(12)?,
        pushed_at_ms: r.get(13)?,
    })
}

/// The columns every read of a delivery takes (for the asks' plan test).
#[cfg(test)]
pub(crate) fn cols_for_tests() -> &'static str {
    cols!()
}

/// One delivery, as every read sees it.
pub(super) fn one(c: &Connection, id: &DeliveryId) -> Result<Option<Delivery>> {
    Ok(c.prepare_cached(concat!(
        "SELECT ",
        cols!(),
        " FROM deliveries WHERE ",
        at_id!("?1", "?2")
    ))?
    .query_row(params![id, id.seq()], from_row)
    .optional()?)
}

/// A peer's armed deliveries that are visible at `?2` (the last branch
/// of every read of open deliveries): its range of the partial index
/// `deliveries_armed`, in order.
macro_rules! armed_visible {
    () => {
        concat!(
            " UNION ALL SELECT ",
            cols!(),
            " FROM deliveries INDEXED BY deliveries_armed
               WHERE to_peer = ?1 AND state = 'armed' AND not_before_ms <= ?2"
        )
    };
}

/// A peer's open (pending or leased) deliveries that a channel push did
/// not send (`deliveries_unpushed`; `?1` the peer), and `$more`.
macro_rules! unpushed {
    ($($more:tt)*) => {
        concat!(
            "SELECT ",
            cols!(),
            " FROM deliveries INDEXED BY deliveries_unpushed
               WHERE to_peer = ?1 AND state IN ('pending', 'leased') AND pushed_at_ms IS NULL",
            $($more)*
        )
    };
}

/// Where a delivery sits in `deliveries_unpushed` after its state: a
/// leased one at the end of its lease, a pending one at 0, so that a
/// peer's pending deliveries are one range in seq order and its leases
/// that ran out one range before now (migration 20). The index's own
/// expression: a statement finds the index by it only written the same.
macro_rules! lease_key {
    () => {
        "(CASE state WHEN 'leased' THEN lease_until_ms ELSE 0 END)"
    };
}

/// Of a peer's unpushed deliveries, the pending ones (in seq order).
macro_rules! pending {
    () => {
        concat!(" AND state = 'pending' AND ", lease_key!(), " = 0")
    };
}

/// The same of those a channel push did send (`deliveries_pushed`: few,
/// they stay open only until something confirms them).
macro_rules! pushed {
    ($($more:tt)*) => {
        concat!(
            " UNION ALL SELECT ",
            cols!(),
            " FROM deliveries INDEXED BY deliveries_pushed
               WHERE to_peer = ?1 AND state IN ('pending', 'leased') AND pushed_at_ms IS NOT NULL",
            $($more)*
        )
    };
}

/// A delivery that can be handed out now: pending, or its lease ran out
/// (`?2` is now).
macro_rules! takeable {
    () => {
        " AND (state = 'pending' OR lease_until_ms <= ?2)"
    };
}

/// A peer's deliveries that can be handed out now, in order, but for the
/// unpushed ones whose lease ran out ([`EXPIRED`]). (It reads the peer's
/// ranges of the partial indexes `deliveries_unpushed` (its pending
/// range), `deliveries_pushed` and `deliveries_armed`, merged by seq:
/// never a delivery still leased out, nor the delivered history; a test
/// checks the plan.)
const AVAILABLE: &str = concat!(
    unpushed!(pending!()),
    pushed!(takeable!()),
    armed_visible!(),
    " ORDER BY seq LIMIT ?3"
);

/// The same, but none a channel push already sent live (for a route that
/// only hints: [`Route::takes_pushed`]). An armed delivery was never pushed.
const AVAILABLE_UNPUSHED: &str = concat!(
    unpushed!(pending!()),
    armed_visible!(),
    " ORDER BY seq LIMIT ?3"
);

/// A peer's unpushed deliveries whose lease ran out by `?2`, the first
/// `?3` to run out: the range of them alone, in index order (as a rule
/// there is none; a consumer that went away leaves its leases here until
/// they are taken again). Not sorted by seq: a sort opens a temporary
/// table on every execution, a third more instructions per delivered
/// note. See [`expired`].
const EXPIRED: &str = concat!(
    unpushed!(" AND state = 'leased' AND ", lease_key!(), " <= ?2"),
    " LIMIT ?3"
);

/// The same range, its first `?3` by seq (sorted).
const EXPIRED_BY_SEQ: &str = concat!(
    unpushed!(" AND state = 'leased' AND ", lease_key!(), " <= ?2"),
    " ORDER BY seq LIMIT ?3"
);

/// The first `max` by seq of a peer's unpushed deliveries whose lease ran
/// out, in seq order. Fewer than `max` read by [`EXPIRED`] are all of
/// them; `max` of them may not be the oldest (they came by lease end), so
/// then the range is read again, sorted.
fn expired(c: &Connection, peer_id: &PeerId, now: i64, max: u32) -> Result<Vec<Delivery>> {
    let read = |sql| -> Result<Vec<Delivery>> {
        Ok(c.prepare_cached(sql)?
            .query_map(params![peer_id, now, max], from_row)?
            .collect::<rusqlite::Result<_>>()?)
    };
    let mut items = read(EXPIRED)?;
    if items.len() >= max as usize && max > 0 {
        return read(EXPIRED_BY_SEQ);
    }
    items.sort_unstable_by_key(|d| d.seq);
    Ok(items)
}

/// A peer's undelivered deliveries visible at `?2`, in order, but for the
/// unpushed ones leased out ([`LEASED`]; read as [`AVAILABLE`] is).
const OPEN: &str = concat!(
    unpushed!(pending!()),
    pushed!(),
    armed_visible!(),
    " ORDER BY seq LIMIT ?3"
);

/// A peer's unpushed deliveries leased out (`?2` at most), in order: the
/// range of them alone, sorted.
const LEASED: &str = concat!(
    unpushed!(" AND state = 'leased' AND ", lease_key!(), " > 0"),
    " ORDER BY seq LIMIT ?2"
);

/// A pending unpushed delivery of the peer `?1`, or one whose lease ran
/// out by `?2`.
macro_rules! any_unpushed {
    () => {
        concat!(
            "EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_unpushed
               WHERE to_peer = ?1 AND state IN ('pending', 'leased') AND pushed_at_ms IS NULL",
            pending!(),
            ") OR EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_unpushed
               WHERE to_peer = ?1 AND state IN ('pending', 'leased') AND pushed_at_ms IS NULL
               AND state = 'leased' AND ",
            lease_key!(),
            " <= ?2)"
        )
    };
}

/// An armed delivery of the peer `?1` visible at `?2`.
macro_rules! any_armed {
    () => {
        "EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_armed
           WHERE to_peer = ?1 AND state = 'armed' AND not_before_ms <= ?2)"
    };
}

/// Whether [`AVAILABLE`] would find anything: a probe of each range, no
/// row read.
const ANY_AVAILABLE: &str = concat!(
    "SELECT ",
    any_unpushed!(),
    " OR EXISTS (SELECT 1 FROM deliveries INDEXED BY deliveries_pushed
       WHERE to_peer = ?1 AND state IN ('pending', 'leased') AND pushed_at_ms IS NOT NULL",
    takeable!(),
    ") OR ",
    any_armed!()
);

/// Whether [`AVAILABLE_UNPUSHED`] would.
const ANY_AVAILABLE_UNPUSHED: &str = concat!("SELECT ", any_unpushed!(), " OR ", any_armed!());

/// Whether an armed delivery of the peer `?1` is visible at `?2`.
const ANY_ARMED: &str = concat!("SELECT ", any_armed!());

/// What decides, before any read, whether a peer may have something to
/// hand out: its open deliveries (pending or leased, counted in memory:
/// [`open`](super::open)) and whether anything was ever armed since the
/// store opened (the horizon only grows, before an armed row is written).
#[derive(Clone, Copy)]
struct Hints {
    open: i64,
    armed: bool,
}

impl Hints {
    fn of(t: &Tx<'_>, peer_id: &PeerId) -> Self {
        Hints {
            open: t.open_to(peer_id),
            armed: armed_since_open(t.armed_horizon),
        }
    }
}

fn armed_since_open(horizon: &std::sync::atomic::AtomicI64) -> bool {
    horizon.load(std::sync::atomic::Ordering::Acquire) != i64::MIN
}

/// Whether `route` may hand out anything now (what [`available`] would
/// find, without reading it). With no open delivery only an armed one
/// could be: that one probe, or none when nothing was armed.
fn any_available(
    c: &Connection,
    hints: Hints,
    peer_id: &PeerId,
    now: i64,
    route: DeliveryRoute,
) -> Result<bool> {
    let sql = match (hints.open, hints.armed) {
        (0, false) => return Ok(false),
        (0, true) => ANY_ARMED,
        _ if route.takes_pushed() => ANY_AVAILABLE,
        _ => ANY_AVAILABLE_UNPUSHED,
    };
    Ok(c.prepare_cached(sql)?
        .query_row(params![peer_id, now], |r| r.get(0))?)
}

/// The first `max` of two lists in seq order, in seq order.
fn merged(a: Vec<Delivery>, b: Vec<Delivery>, max: u32) -> Vec<Delivery> {
    if b.is_empty() {
        return a;
    }
    let mut out = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    while out.len() < max as usize {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.seq <= y.seq => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, _) => b.next(),
        };
        match next {
            Some(d) => out.push(d),
            None => break,
        }
    }
    out
}

/// What `route` may hand out now (a route that only hints skips what was
/// already pushed live).
fn available(
    c: &Connection,
    peer_id: &PeerId,
    now: i64,
    max: u32,
    route: DeliveryRoute,
) -> Result<Vec<Delivery>> {
    let sql = if route.takes_pushed() {
        AVAILABLE
    } else {
        AVAILABLE_UNPUSHED
    };
    let open: Vec<Delivery> = c
        .prepare_cached(sql)?
        .query_map(params![peer_id, now, max], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(merged(open, expired(c, peer_id, now, max)?, max))
}

/// The keys of the copies of the ask `ask_id` its recipient gets (the ask
/// itself, its reminder), as the ask's row keeps them (`copy_seq`,
/// `reminder_seq`, migration 27): each copy is then one look-up by key,
/// where an index on `ask_id` cost a 1 KiB WAL page and a half of every
/// ask.
fn copy_keys(c: &Connection, ask_id: &AskId) -> Result<Vec<i64>> {
    let keys: Option<(Option<i64>, Option<i64>)> = c
        .prepare_cached(concat!(
            "SELECT copy_seq, reminder_seq FROM asks WHERE ",
            crate::asks::at_ask!("asks", "?1")
        ))?
        .query_row([ask_id], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (copy, reminder) = keys.unwrap_or_default();
    Ok(copy.into_iter().chain(reminder).collect())
}

// Each statement on a copy checks that the row at the key is the ask's
// (`ask_id = ?2`): a key whose row was pruned can be handed out again after
// a restart (`Keys`), to another delivery.
/// Whether the copy at key `?1` of the ask `?2` was handed out or confirmed.
const SEEN: &str = "SELECT EXISTS (SELECT 1 FROM deliveries
     WHERE seq = ?1 AND ask_id = ?2 AND state IN ('leased','delivered'))";
/// The copy at key `?1` of the ask `?2` (undelivered: [`drop_where`] says so).
const COPY: &str = "seq = ?1 AND ask_id = ?2";
/// The copy at key `?1` of the ask `?2`: its id, recipient and state.
const COPY_STATE: &str = "SELECT id, to_peer, state FROM deliveries WHERE seq = ?1 AND ask_id = ?2";

/// Withdraw the undelivered copies of an ask that ended (the ask itself and
/// any reminder). Returns whether the recipient may already have seen it
/// (a copy was handed out or confirmed).
pub(super) fn drop_for_ask(t: &mut Tx<'_>, ask_id: &AskId) -> Result<bool> {
    let mut seen = false;
    for key in copy_keys(t.conn(), ask_id)? {
        seen |= t
            .conn()
            .prepare_cached(SEEN)?
            .query_row(params![key, ask_id], |r| r.get::<_, bool>(0))?;
        drop_where(t, COPY, &[&key, ask_id], "the ask ended")?;
    }
    Ok(seen)
}

/// Mark the undelivered (pending or leased) deliveries matching `cond`
/// (with `args` bound to its parameters) dropped, one `delivery_dropped`
/// event each.
pub(super) fn drop_where(
    t: &mut Tx<'_>,
    cond: &str,
    args: &[&dyn rusqlite::ToSql],
    why: &str,
) -> Result<usize> {
    let cond = format!("({cond}) AND state IN ('pending', 'leased')");
    // Usually there is none: look first (`RETURNING` builds and frees a
    // temporary table on every execution, rows or not).
    if !matching(t, &cond, args)? {
        return Ok(0);
    }
    let rows: Vec<(String, Option<String>, String, PeerId)> = t
        .conn()
        .prepare_cached(&format!(
            "UPDATE deliveries SET state = 'dropped', lease_until_ms = NULL WHERE {cond}
             RETURNING id, ask_id, (SELECT circle FROM peers WHERE peers.id = deliveries.to_peer),
               to_peer"
        ))?
        .query_map(args, |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get::<_, Option<String>>(2)?.unwrap_or_default(),
                PeerId::trusted(r.get(3)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (.., to) in &rows {
        t.opened(to, -1);
    }
    for (id, ask_id, circle, _) in &rows {
        t.event(NewEvent {
            subject: id,
            related: ask_id.as_deref(),
            circle: Some(circle),
            event: Event::DeliveryDropped {
                why: why.to_string(),
            },
        })?;
    }
    Ok(rows.len())
}

/// Whether any delivery matches `cond` (with `args` bound).
fn matching(t: &Tx<'_>, cond: &str, args: &[&dyn rusqlite::ToSql]) -> Result<bool> {
    Ok(t.conn()
        .prepare_cached(&format!(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE {cond})"
        ))?
        .query_row(args, |r| r.get(0))?)
}

/// Mark delivery `id` to `p` delivered, if it is `p`'s and still open
/// (`confirm`); whether it was.
pub(super) fn confirm_in(t: &mut Tx<'_>, p: &Peer, id: &DeliveryId) -> Result<bool> {
    let peer_id = &p.id;
    // Read, then written by its row id: `UPDATE … RETURNING`
    // builds and frees a temporary table every time.
    let row: Option<(i64, DeliveryKind, Option<String>, bool)> = t
        .conn()
        .prepare_cached(concat!(
            "SELECT seq, kind, ask_id, state != 'armed' FROM deliveries WHERE ",
            at_id!("?1", "?4"),
            " AND to_peer = ?2 AND (state IN ('pending','leased')
               OR (state = 'armed' AND not_before_ms <= ?3))"
        ))?
        .query_row(params![id, peer_id, t.now, id.seq()], |r| {
            Ok((
                r.get(0)?,
                parse_col(r.get(1)?, DeliveryKind::parse)?,
                r.get(2)?,
                r.get(3)?,
            ))
        })
        .optional()?;
    let Some((seq, kind, ask_id, was_open)) = row else {
        return Ok(false);
    };
    t.conn()
        .prepare_cached(
            "UPDATE deliveries SET state = 'delivered', delivered_ms = ?2, lease_until_ms = NULL
             WHERE seq = ?1",
        )?
        .execute(params![seq, t.now])?;
    if was_open {
        t.opened(peer_id, -1);
    }
    let ask_id: Option<AskId> = ask_id.map(AskId::trusted);
    t.event(NewEvent {
        subject: id,
        related: ask_id.as_deref(),
        circle: Some(&p.circle),
        event: Event::DeliveryConfirmed(Confirmed::Consumer {
            to: p.name.clone(),
            kind,
        }),
    })?;
    if let (Some(ask_id), true) = (
        &ask_id,
        matches!(kind, DeliveryKind::Ask | DeliveryKind::Reminder),
    ) {
        super::asks::transition_quiet(t, ask_id, AskAction::Deliver)?;
    }
    Ok(true)
}

/// The recipient acted on an ask (picked it up, acked or answered it): the
/// copies it holds under a lease count as delivered (no separate confirm
/// needed), and copies never handed out are withdrawn.
/// `keys`: the copies' keys, as the ask's row keeps them (read with it).
pub(super) fn settle_for_ask(
    t: &mut Tx<'_>,
    ask_id: &AskId,
    circle: &str,
    keys: impl IntoIterator<Item = i64>,
) -> Result<()> {
    // Read, then write each by key: usually one is held, and an
    // `UPDATE … RETURNING` builds and frees a temporary table on every
    // execution (it was a third of an answer).
    let mut held: Vec<(i64, String, PeerId)> = Vec::new();
    let mut pending = Vec::new();
    for key in keys {
        let copy: Option<(String, String, String)> = t
            .conn()
            .prepare_cached(COPY_STATE)?
            .query_row(params![key, ask_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        match copy {
            Some((id, to, state)) if state == "leased" => {
                held.push((key, id, PeerId::trusted(to)));
            }
            Some((.., state)) if state == "pending" => pending.push(key),
            _ => {}
        }
    }
    for (seq, _, to) in &held {
        t.conn()
            .prepare_cached(
                "UPDATE deliveries SET state = 'delivered', delivered_ms = ?2, lease_until_ms = NULL
                 WHERE seq = ?1",
            )?
            .execute(params![seq, t.now])?;
        t.opened(to, -1);
    }
    for (_, id, _) in &held {
        t.event(NewEvent {
            subject: id,
            related: Some(ask_id),
            circle: Some(circle),
            event: Event::DeliveryConfirmed(Confirmed::Acted {
                by: "recipient acted on the ask".into(),
            }),
        })?;
    }
    for key in &pending {
        drop_where(t, COPY, &[key, ask_id], "the recipient acted on the ask")?;
    }
    Ok(())
}

/// Resolve a message target for `from`, enforcing circles (an admin may
/// bypass explicitly).
pub(super) fn target(
    c: &impl super::peers::Lookup,
    from: &Peer,
    addr: &str,
    circle: Option<&str>,
    bypass_circle: bool,
) -> Result<std::sync::Arc<Peer>> {
    super::circles::resolve_for(c, from, addr, circle, bypass_circle)
}

impl Store {
    /// Pending (and lease-expired) deliveries of a peer, oldest first, now
    /// leased to the caller for `route` (recorded in each `delivery_leased`
    /// event). The route's promises decide the rest: one that
    /// [signals life](Route::signals_life) refreshes the peer (a consumer
    /// that calls in is alive; an open stream proves nothing), and one that
    /// does not [take pushed](Route::takes_pushed) deliveries skips those a
    /// channel push already sent live.
    pub fn lease(
        &self,
        peer_id: &PeerId,
        max: u32,
        lease_ms: i64,
        route: DeliveryRoute,
    ) -> Result<Vec<Delivery>> {
        let alive = route.signals_life();
        let now = self.clock.now_ms();
        let anything = {
            let w = self.settled();
            let hints = Hints {
                open: w.open.of(peer_id),
                armed: armed_since_open(&self.armed_horizon),
            };
            any_available(&w.conn, hints, peer_id, now, route)?
        };
        if !anything {
            // An idle consumer is alive too: keep it from turning into a ghost.
            if alive {
                self.touch(peer_id, self.policy.stale_after_ms / 4)?;
            }
            return Ok(Vec::new());
        }
        self.write(|t| {
            let p = must_shared(t, peer_id)?;
            let mut items = available(t.conn(), peer_id, t.now, max, route)?;
            let until = t.now + lease_ms;
            for d in &mut items {
                // An armed one (visible now, read as pending) opens here.
                let leased = t
                    .conn()
                    .prepare_cached(
                        "UPDATE deliveries SET state = 'leased', lease_until_ms = ?2,
                           attempts = attempts + 1 WHERE seq = ?1 AND state != 'armed'",
                    )?
                    .execute(params![d.seq, until])?;
                if leased == 0 {
                    let armed = t
                        .conn()
                        .prepare_cached(
                            "UPDATE deliveries SET state = 'leased', lease_until_ms = ?2,
                               attempts = attempts + 1 WHERE seq = ?1",
                        )?
                        .execute(params![d.seq, until])?;
                    if armed > 0 {
                        t.opened(peer_id, 1);
                    }
                }
                d.state = DeliveryState::Leased;
                d.attempts += 1;
                d.lease_until_ms = Some(until);
                leased_event(
                    t,
                    &d.delivery_id,
                    d.correlation_id.as_ref(),
                    &p,
                    (d.attempts, until),
                    route,
                )?;
            }
            if alive {
                super::peers::alive(t, peer_id)?;
            }
            Ok(items)
        })
    }

    /// When the next armed delivery to `peer_id` becomes visible, if one
    /// waits: a consumer waiting for deliveries wakes then (no event
    /// announces it).
    pub fn next_armed_ms(&self, peer_id: &PeerId) -> Result<Option<i64>> {
        let now = self.clock.now_ms();
        // Nothing armed waits past now (the usual case): no read at all.
        if self
            .armed_horizon
            .load(std::sync::atomic::Ordering::Acquire)
            <= now
        {
            return Ok(None);
        }
        self.read(|c| {
            Ok(c.prepare_cached(NEXT_ARMED)?
                .query_row(params![peer_id, now], |r| r.get(0))?)
        })
    }

    /// One delivery to `peer_id`, in any state (`None`: no such delivery
    /// to that peer, or one armed and not yet visible).
    pub fn delivery(&self, peer_id: &PeerId, id: &DeliveryId) -> Result<Option<Delivery>> {
        let now = self.clock.now_ms();
        self.read(|c| {
            Ok(c.prepare_cached(concat!(
                "SELECT ",
                cols!(),
                " FROM deliveries WHERE ",
                at_id!("?1", "?4"),
                " AND to_peer = ?2 AND (state != 'armed' OR not_before_ms <= ?3)"
            ))?
            .query_row(params![id, peer_id, now, id.seq()], from_row)
            .optional()?)
        })
    }

    /// Undelivered deliveries of a peer, without leasing anything.
    pub fn peek(&self, peer_id: &PeerId, max: u32) -> Result<Vec<Delivery>> {
        let now = self.clock.now_ms();
        self.read(|c| {
            let open: Vec<Delivery> = c
                .prepare_cached(OPEN)?
                .query_map(params![peer_id, now, max], from_row)?
                .collect::<rusqlite::Result<_>>()?;
            let leased: Vec<Delivery> = c
                .prepare_cached(LEASED)?
                .query_map(params![peer_id, max], from_row)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(merged(open, leased, max))
        })
    }

    /// Mark the deliveries `ids` to peer `p` (as its caller read it: its
    /// id, name and circle never change) delivered. Already-confirmed or
    /// unknown ids are skipped (confirming twice is harmless), and so are
    /// all of them once the peer is gone (its deliveries went with it).
    pub fn confirm(&self, p: &Peer, ids: &[DeliveryId]) -> Result<usize> {
        self.write(|t| {
            let mut n = 0;
            for id in ids {
                n += usize::from(confirm_in(t, p, id)?);
            }
            Ok(n)
        })
    }

    /// Confirm, as `p`'s consumer would, the replies to its ask `ask` still
    /// open in its inbox: for a blocking ask, whose response carried the
    /// answer (or ack message) they hold. Returns how many.
    pub fn confirm_replies(&self, p: &Peer, ask: &AskId) -> Result<usize> {
        self.write(|t| {
            // By the two partial indexes of open deliveries (the peer's
            // open ones, not its history).
            let ids: Vec<DeliveryId> = t
                .conn()
                .prepare_cached(
                    "SELECT id FROM deliveries WHERE to_peer = ?1 AND state IN ('pending','leased')
                       AND pushed_at_ms IS NULL AND kind = 'reply' AND ask_id = ?2
                     UNION ALL
                     SELECT id FROM deliveries WHERE to_peer = ?1 AND state IN ('pending','leased')
                       AND pushed_at_ms IS NOT NULL AND kind = 'reply' AND ask_id = ?2",
                )?
                .query_map(params![p.id, ask], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut n = 0;
            for id in &ids {
                n += usize::from(confirm_in(t, p, id)?);
            }
            Ok(n)
        })
    }

    /// Record that a channel push sent the peer's deliveries `ids` into its
    /// session as live hints: each one leased and never pushed before gets
    /// `pushed_at_ms` and a `delivery_pushed` event, and its lease ends at
    /// once (it stays `leased`, expired: it may have been seen, so an ask
    /// the recipient then acts on counts it delivered; the inbox or a hook
    /// may take it now; the stream never hands it out again). It stays unconfirmed. An id that is not one of the
    /// peer's deliveries is refused (`not_found`) and nothing is recorded;
    /// one confirmed, dropped or recorded already is skipped. Returns how
    /// many were recorded.
    pub fn pushed(&self, peer_id: &PeerId, ids: &[DeliveryId]) -> Result<usize> {
        self.write(|t| {
            let p = must_shared(t, peer_id)?;
            for id in ids {
                let mine: bool = t
                    .conn()
                    .prepare_cached(concat!(
                        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE ",
                        at_id!("?1", "?3"),
                        " AND to_peer = ?2)"
                    ))?
                    .query_row(params![id, peer_id, id.seq()], |r| r.get(0))?;
                if !mine {
                    return Err(Error::new(
                        ErrorCode::NotFound,
                        format!("{id} is not a delivery to {}", p.name),
                    ));
                }
            }
            let mut n = 0;
            for id in ids {
                // Read, then written by key (not `RETURNING`, a temporary
                // table on every execution).
                let hit = t
                    .conn()
                    .prepare_cached(concat!(
                        "SELECT seq, ask_id FROM deliveries WHERE ",
                        at_id!("?1", "?2"),
                        " AND state = 'leased' AND pushed_at_ms IS NULL"
                    ))?
                    .query_row(params![id, id.seq()], |r| {
                        Ok((r.get::<_, i64>(0)?, r.get::<_, Option<String>>(1)?))
                    })
                    .optional()?;
                let Some((seq, ask_id)) = hit else { continue };
                t.conn()
                    .prepare_cached(
                        "UPDATE deliveries SET pushed_at_ms = ?2, lease_until_ms = ?2 WHERE seq = ?1",
                    )?
                    .execute(params![seq, t.now])?;
                n += 1;
                t.event(NewEvent {
                    subject: id,
                    related: ask_id.as_deref(),
                    circle: Some(&p.circle),
                    event: Event::DeliveryPushed { to: p.name.clone() },
                })?;
            }
            Ok(n)
        })
    }

    /// A note from `from` (as its caller read it: a peer's id, name and
    /// circle never change), to a peer named inside its circle.
    pub fn notify(&self, from: &Peer, req: &NewNotify, bypass: bool) -> Result<Notified> {
        self.policy.check_text("message", &req.text)?;
        let stale_after = self.policy.stale_after_ms;
        self.write(|t| {
            let to = target(t, from, &req.to, req.circle.as_deref(), bypass)?;
            let id = enqueue(
                t,
                NewDelivery {
                    to: &to,
                    from: Some(from),
                    kind: DeliveryKind::Notify,
                    ask_id: None,
                    job_id: None,
                    text: &req.text,
                },
            )?;
            Ok(Notified {
                delivery_id: id,
                queued_offline: !to.reachable(t.now, stale_after),
                to: to.name.clone(),
                circle: to.circle.clone(),
            })
        })
    }

    /// Send `text` to every peer of a circle (the sender's unless bypassed)
    /// but the sender. A recipient whose inbox is full is skipped and named.
    pub fn broadcast(
        &self,
        from_id: &PeerId,
        req: &NewBroadcast,
        bypass: bool,
    ) -> Result<Broadcasted> {
        self.policy.check_text("message", &req.text)?;
        if let Some(c) = &req.circle {
            repowire_core::peer::validate_name("circle", c)?;
        }
        let stale_after = self.policy.stale_after_ms;
        self.write(|t| {
            let from = must(t, from_id)?;
            let circle = req.circle.clone().unwrap_or_else(|| from.circle.clone());
            if circle != from.circle && !bypass {
                return Err(Error::new(
                    ErrorCode::CrossCircle,
                    format!(
                        "{} is in circle {:?}: a broadcast stays inside its circle (an admin may bypass with --cross-circle)",
                        from.name, from.circle
                    ),
                ));
            }
            let peers: Vec<PeerId> = t
                .conn()
                .prepare_cached(
                    "SELECT id FROM peers WHERE circle = ?1 AND id != ?2 ORDER BY name",
                )?
                .query_map(params![circle, from.id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let mut deliveries = Vec::with_capacity(peers.len());
            let mut skipped = Vec::new();
            for pid in peers {
                let to = must(t, &pid)?;
                let sent = enqueue(
                    t,
                    NewDelivery {
                        to: &to,
                        from: Some(&from),
                        kind: DeliveryKind::Broadcast,
                        ask_id: None,
                        job_id: None,
                        text: &req.text,
                    },
                );
                match sent {
                    Ok(id) => deliveries.push(Notified {
                        delivery_id: id,
                        queued_offline: !to.reachable(t.now, stale_after),
                        to: to.name,
                        circle: to.circle,
                    }),
                    // Checked before anything is written for this recipient.
                    Err(e) if e.code == ErrorCode::InboxFull => skipped.push(to.name),
                    Err(e) => return Err(e),
                }
            }
            Ok(Broadcasted {
                circle,
                deliveries,
                skipped_inbox_full: skipped,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How a peer's armed deliveries are read: its armed range, in order.
    const ARMED_PLAN: &str = "deliveries_armed (to_peer=?)";
    /// How its pending unpushed ones are: their range, in seq order.
    const PENDING_PLAN: &str = "deliveries_unpushed (to_peer=? AND state=? AND <expr>=?)";

    /// A lease reads what it can hand out, not what is still leased out:
    /// its statements take as many steps with 300 deliveries leased out
    /// as with 3 (they read each of them before migration 20), and what
    /// they find is the same: the two pending ones and the one lease that
    /// ran out, in order.
    #[test]
    fn a_lease_does_not_read_the_deliveries_still_leased_out() {
        let clock = repowire_core::time::Clock::fixed(1_000_000);
        let (_dir, s) = crate::testing::open_on(&clock);
        let (a, _) = crate::testing::register(&s, "a");
        let mut steps = Vec::new();
        for out in [3, 300] {
            let name = format!("b{out}");
            let (b, _) = crate::testing::register(&s, &name);
            let first = crate::testing::note(&s, &a, &name, "runs out");
            assert_eq!(s.lease(&b, 1, 10, DeliveryRoute::Stream).unwrap().len(), 1);
            for i in 0..out {
                crate::testing::note(&s, &a, &name, &format!("out {i}"));
            }
            let leased = s.lease(&b, 1000, 60_000, DeliveryRoute::Stream).unwrap();
            assert_eq!(leased.len(), out);
            let pending = [
                crate::testing::note(&s, &a, &name, "one"),
                crate::testing::note(&s, &a, &name, "two"),
            ];
            clock.advance(20);
            let now = clock.now_ms();
            let (found, n) = s
                .read(|c| {
                    let mut n = 0;
                    let mut found = Vec::new();
                    for sql in [AVAILABLE, EXPIRED] {
                        let mut st = c.prepare_cached(sql)?;
                        st.reset_status(rusqlite::StatementStatus::VmStep);
                        let got = st
                            .query_map(params![b, now, 50], from_row)?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                        n += st.get_status(rusqlite::StatementStatus::VmStep);
                        found.push(got);
                    }
                    let mut st = c.prepare_cached(ANY_AVAILABLE)?;
                    st.reset_status(rusqlite::StatementStatus::VmStep);
                    let any: bool = st.query_row(params![b, now], |r| r.get(0))?;
                    assert!(any);
                    n += st.get_status(rusqlite::StatementStatus::VmStep);
                    Ok((found, n))
                })
                .unwrap();
            let [open, mut ran_out] = <[Vec<Delivery>; 2]>::try_from(found).unwrap();
            ran_out.sort_unstable_by_key(|d| d.seq);
            let ids: Vec<_> = merged(open, ran_out, 50)
                .into_iter()
                .map(|d| d.delivery_id)
                .collect();
            assert_eq!(ids, [first, pending[0].clone(), pending[1].clone()]);
            steps.push(n);
        }
        assert_eq!(steps[0], steps[1], "steps with 3 and 300 leased out");
    }

    /// Leases that ran out come back oldest first, whenever they ran out:
    /// seq 1 leased again (so its lease ends after seq 2's) still comes
    /// before seq 2, also one at a time.
    #[test]
    fn leases_that_ran_out_come_back_oldest_first() {
        let clock = repowire_core::time::Clock::fixed(1_000_000);
        let (_dir, s) = crate::testing::open_on(&clock);
        let (a, _) = crate::testing::register(&s, "a");
        let (b, _) = crate::testing::register(&s, "b");
        let ids: Vec<_> = (1..=3)
            .map(|i| crate::testing::note(&s, &a, "b", &format!("n{i}")))
            .collect();
        let lease = |max| -> Vec<DeliveryId> {
            s.lease(&b, max, 1_000, DeliveryRoute::Pull)
                .unwrap()
                .into_iter()
                .map(|d| d.delivery_id)
                .collect()
        };
        assert_eq!(lease(2), ids[..2]);
        clock.advance(1_000);
        assert_eq!(lease(1), ids[..1]);
        clock.advance(1_000);
        // 1's lease ran out last, 2's first: 1 is still the older.
        assert_eq!(lease(1), ids[..1]);
        assert_eq!(s.peek(&b, 10).unwrap().len(), 3);
    }

    /// The leased ones are read only by their own range (the ones whose
    /// lease ran out, before now, unsorted; all of them for a peek,
    /// sorted): never the pending ones nor the delivered history.
    #[test]
    fn leased_deliveries_are_read_by_their_own_range() {
        let (_dir, s) = crate::testing::open();
        for (sql, range) in [
            (
                EXPIRED,
                "deliveries_unpushed (to_peer=? AND state=? AND <expr><?)",
            ),
            (
                LEASED,
                "deliveries_unpushed (to_peer=? AND state=? AND <expr>>?)",
            ),
        ] {
            let plan = crate::plan_of(&s, sql);
            assert!(
                plan.starts_with(&format!("SEARCH deliveries USING INDEX {range}")),
                "{plan}"
            );
        }
    }

    /// An ask's copies are read by the keys its row keeps, the ask by its
    /// id: never by a scan, nor through a temporary table.
    #[test]
    fn an_asks_copies_are_read_by_key() {
        let (_dir, s) = crate::testing::open();
        let drop = |cond: &str| {
            format!(
                "UPDATE deliveries SET state = 'dropped' WHERE ({cond}) AND state IN ('pending', 'leased')"
            )
        };
        for sql in [
            SEEN.to_string(),
            COPY_STATE.to_string(),
            drop(COPY),
            concat!("SELECT 1 FROM deliveries WHERE ", at_id!("?1", "?2")).to_string(),
        ] {
            let plan = crate::plan_of(&s, &sql);
            assert!(
                plan.contains("SEARCH deliveries USING INTEGER PRIMARY KEY (rowid=?)"),
                "{sql}: {plan}"
            );
            assert!(!plan.contains("SCAN deliveries"), "{sql}: {plan}");
            crate::assert_no_temp_table(&s, &sql);
        }
    }

    /// Leases and peeks read only a peer's open deliveries (and its armed
    /// ones), in index order: no scan of its delivered history, no sort.
    /// A lease reads the pending range, never a delivery still leased out.
    #[test]
    fn open_deliveries_are_read_from_the_partial_index() {
        crate::assert_planned_through(&[
            (AVAILABLE, PENDING_PLAN),
            (AVAILABLE, "deliveries_pushed"),
            (AVAILABLE, ARMED_PLAN),
            // Not past the ones already pushed live, however many.
            (AVAILABLE_UNPUSHED, PENDING_PLAN),
            (AVAILABLE_UNPUSHED, ARMED_PLAN),
            (OPEN, PENDING_PLAN),
            (OPEN, "deliveries_pushed"),
            (OPEN, ARMED_PLAN),
            // Whether a lease or a hand-over finds anything: a probe each.
            (ANY_AVAILABLE, PENDING_PLAN),
            (ANY_AVAILABLE_UNPUSHED, PENDING_PLAN),
            (
                ANY_AVAILABLE,
                "deliveries_unpushed (to_peer=? AND state=? AND <expr><?)",
            ),
            (ANY_AVAILABLE, "deliveries_pushed"),
            (ANY_AVAILABLE, ARMED_PLAN),
            (
                ANY_AVAILABLE_UNPUSHED,
                "deliveries_unpushed (to_peer=? AND state=? AND <expr><?)",
            ),
            (ANY_AVAILABLE_UNPUSHED, ARMED_PLAN),
            (ANY_ARMED, ARMED_PLAN),
            (NEXT_ARMED, ARMED_PLAN),
            (COUNT_ARMED, ARMED_PLAN),
        ]);
    }

    /// A delivered note (queued, leased, confirmed) writes only the pages
    /// of what it changes: its row, the id index the row carries, the open
    /// index it enters and leaves, the event log, and the file's header
    /// page when the file grows. Read from the WAL itself, frame by frame,
    /// so an index that every note pays for (as `events_subject` and
    /// `deliveries_to` were, a third of a note's pages) shows here.
    #[test]
    fn a_delivered_note_writes_only_its_own_pages() {
        let clock = repowire_core::time::Clock::fixed(1_000_000);
        let (dir, s) = crate::testing::open_on(&clock);
        let (a, _) = crate::testing::register(&s, "a");
        let (b, _) = crate::testing::register(&s, "b");
        let deliver = |i: usize| {
            let id = crate::testing::note(&s, &a, "b", &format!("note {i}"));
            let got = s.lease(&b, 10, 60_000, DeliveryRoute::Stream).unwrap();
            assert_eq!(got.len(), 1);
            let bp = s.peer_by_id(&b).unwrap().unwrap();
            assert_eq!(s.confirm(&bp, &[id]).unwrap(), 1);
            clock.advance(1);
        };
        deliver(0);
        let wal = dir.path().join("t.db-wal");
        let from = std::fs::metadata(&wal).unwrap().len() as usize;
        for i in 1..=60 {
            deliver(i);
        }
        let data = std::fs::read(&wal).unwrap();
        let names: std::collections::HashMap<u32, String> = s
            .read(|c| {
                let mut st = c.prepare("SELECT pageno, name FROM dbstat")?;
                let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        let page = u32::from_be_bytes(data[8..12].try_into().unwrap()) as usize;
        let mut written = std::collections::BTreeMap::<String, usize>::new();
        for frame in data[from..].chunks_exact(24 + page) {
            let no = u32::from_be_bytes(frame[..4].try_into().unwrap());
            let name = names.get(&no).cloned().unwrap_or(format!("page {no}"));
            *written.entry(name).or_default() += 1;
        }
        let own = [
            "deliveries",
            "sqlite_autoindex_deliveries_1",
            "deliveries_unpushed",
            "events",
            "sqlite_schema",
        ];
        let others: Vec<_> = written
            .iter()
            .filter(|(name, _)| !own.contains(&name.as_str()))
            .collect();
        assert!(others.is_empty(), "pages of {others:?} (all: {written:?})");
        assert!(written.contains_key("deliveries_unpushed"), "{written:?}");
    }

    /// The hot statements are planned once: binding their values again
    /// never makes SQLite parse and plan them anew. (SQLite reads a bound
    /// `LIMIT ?` when planning, and then re-prepares the statement at every
    /// new binding unless the query planner stability guarantee is on: that
    /// once cost a fifth of the daemon's CPU per delivered message.)
    #[test]
    fn hot_statements_are_not_prepared_again_for_new_values() {
        let (_dir, s) = crate::testing::open();
        for sql in [
            AVAILABLE,
            AVAILABLE_UNPUSHED,
            OPEN,
            EXPIRED,
            EXPIRED_BY_SEQ,
            LEASED,
        ] {
            let reprepared = s
                .read(|c| {
                    let mut st = c.prepare_cached(sql)?;
                    let n = st.parameter_count();
                    for i in 0..20i64 {
                        let peer = format!("peer-{i}");
                        let args = params![peer, 1_000 + i, 10];
                        st.query_map(&args[..n], |_| Ok(()))?
                            .collect::<rusqlite::Result<Vec<_>>>()?;
                    }
                    Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
                })
                .unwrap();
            assert_eq!(reprepared, 0, "prepared again {reprepared} times: {sql}");
        }
    }

    /// Deliveries made before migration 26 keep their ids (which carry no
    /// key) and are found by them, through `deliveries_legacy`, as are the
    /// new ones by the key theirs carry; an id with a real row's key but
    /// not its id finds nothing. The table has no index on `id` left but
    /// that partial one, which holds the old rows only. An ask made before
    /// migration 27 has its copies' keys filled in: answering it settles
    /// both its copies.
    #[test]
    fn deliveries_from_before_migration_26_are_found_by_their_ids() {
        use repowire_core::access::Caller;
        use repowire_core::ask::AskAction;
        use repowire_core::ids::{AskId, DeliveryId, PeerId};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let now = repowire_core::time::now_ms();
        let (a, b) = (PeerId::generate(now), PeerId::generate(now));
        let old: Vec<DeliveryId> = (0..3).map(|_| DeliveryId::generate(now)).collect();
        let ask = AskId::generate(now);
        let copies = [DeliveryId::generate(now), DeliveryId::generate(now)];
        {
            let mut c = Connection::open(&path).unwrap();
            crate::migrations::migrate_to(&mut c, 25).unwrap();
            for (id, name) in [(&a, "a"), (&b, "b")] {
                c.execute(
                    "INSERT INTO peers (id, name, circle, role, status, token_hash, created_ms, last_seen_ms)
                     VALUES (?1, ?2, 'default', 'agent', 'online', ?2, ?3, ?3)",
                    params![id, name, now],
                )
                .unwrap();
            }
            for (i, id) in old.iter().enumerate() {
                c.execute(
                    "INSERT INTO deliveries (id, to_peer, from_peer, from_name, from_circle, kind,
                       text, state, created_ms)
                     VALUES (?1, ?2, ?3, 'a', 'default', 'notify', ?4, 'pending', ?5)",
                    params![id, b, a, format!("old {i}"), now],
                )
                .unwrap();
            }
            c.execute(
                "INSERT INTO asks (id, from_peer, from_name, to_peer, to_name, circle, text, state,
                   created_ms, updated_ms, expires_ms)
                 VALUES (?1, ?2, 'a', ?3, 'b', 'default', 'q', 'queued', ?4, ?4, ?4 + 3600000)",
                params![ask, a, b, now],
            )
            .unwrap();
            for (id, kind) in copies.iter().zip(["ask", "reminder"]) {
                c.execute(
                    "INSERT INTO deliveries (id, to_peer, from_peer, from_name, from_circle, kind,
                       ask_id, text, state, created_ms)
                     VALUES (?1, ?2, ?3, 'a', 'default', ?4, ?5, 'q', 'pending', ?6)",
                    params![id, b, a, kind, ask, now],
                )
                .unwrap();
            }
        }
        let s = crate::Store::open(&path, Default::default()).unwrap();
        let new = crate::testing::note(&s, &a, "b", "new");
        let seq_of = |id: &DeliveryId| s.delivery(&b, id).unwrap().map(|d| d.seq);
        assert_eq!(seq_of(&new), Some(new.seq()), "a new id carries its key");
        assert_eq!(seq_of(&old[1]), Some(2), "an old id is found all the same");
        let forged = DeliveryId::with_seq(now, new.seq());
        assert_eq!(seq_of(&forged), None, "the key alone finds nothing");

        let leased = s.lease(&b, 10, 60_000, DeliveryRoute::Pull).unwrap();
        assert_eq!(leased.len(), 6);
        let p = s.peer_by_id(&b).unwrap().unwrap();
        let confirmed = [old[0].clone(), old[2].clone(), new.clone(), forged];
        assert_eq!(s.confirm(&p, &confirmed).unwrap(), 3);
        let state = |id: &DeliveryId| s.delivery(&b, id).unwrap().unwrap().state;
        assert_eq!(state(&old[0]), DeliveryState::Delivered);
        assert_eq!(state(&old[1]), DeliveryState::Leased);
        assert_eq!(state(&new), DeliveryState::Delivered);
        let by_b = Caller::Peer(p.clone().into());
        s.act_on_ask(&by_b, &ask, AskAction::Answer, Some("yes"))
            .unwrap();
        for copy in &copies {
            assert_eq!(state(copy), DeliveryState::Delivered, "{copy}");
        }

        let (indexes, legacy): (Vec<String>, i64) = s
            .read(|c| {
                let names = c
                    .prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'deliveries' ORDER BY name")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                let n = c.query_row(
                    "SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_legacy WHERE legacy = 1",
                    [],
                    |r| r.get(0),
                )?;
                Ok((names, n))
            })
            .unwrap();
        assert_eq!(
            indexes,
            [
                "deliveries_armed",
                "deliveries_legacy",
                "deliveries_pushed",
                "deliveries_unpushed"
            ]
        );
        assert_eq!(legacy, 5, "only the old rows are in the legacy index");
        let ask_indexes: Vec<String> = s
            .read(|c| {
                Ok(c.prepare("SELECT name FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'asks' ORDER BY name")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?)
            })
            .unwrap();
        assert_eq!(
            ask_indexes,
            [
                "asks_from",
                "asks_legacy",
                "asks_open",
                "asks_parent",
                "asks_to"
            ]
        );
    }

    /// A copy's key handed out again (its row pruned, the store opened
    /// again) names another delivery: acting on the ask leaves that one
    /// alone.
    #[test]
    fn a_copy_key_handed_out_again_is_not_taken_for_the_copy() {
        use repowire_core::access::Caller;
        use repowire_core::ask::{AskAction, NewAsk};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let s = crate::Store::open(&path, Default::default()).unwrap();
        let (a, b) = (
            crate::testing::register(&s, "a").0,
            crate::testing::register(&s, "b").0,
        );
        let req = NewAsk {
            to: "b".into(),
            text: "q".into(),
            ..Default::default()
        };
        let sent = s.ask(&a, &req, false).unwrap();
        let p = s.peer_by_id(&b).unwrap().unwrap();
        s.lease(&b, 10, 60_000, DeliveryRoute::Pull).unwrap();
        assert_eq!(
            s.confirm(&p, std::slice::from_ref(&sent.delivery_id))
                .unwrap(),
            1
        );
        // The confirmed copy goes, as pruning would take it.
        s.write(|t| {
            t.conn().execute("DELETE FROM deliveries", [])?;
            Ok(())
        })
        .unwrap();
        drop(s);
        let s = crate::Store::open(&path, Default::default()).unwrap();
        let note = crate::testing::note(&s, &a, "b", "another");
        assert_eq!(
            note.seq(),
            sent.delivery_id.seq(),
            "the key is handed out again"
        );
        s.lease(&b, 10, 60_000, DeliveryRoute::Pull).unwrap();
        let by_b = Caller::Peer(p.clone().into());
        s.act_on_ask(
            &by_b,
            &sent.ask.correlation_id,
            AskAction::Answer,
            Some("yes"),
        )
        .unwrap();
        let left = s.delivery(&b, &note).unwrap().unwrap();
        assert_eq!(
            left.state,
            DeliveryState::Leased,
            "the note is not the ask's copy"
        );
    }

    /// A delivery is looked up by its id's key, or through the legacy
    /// index: never by reading the table.
    #[test]
    fn a_delivery_is_found_by_key_not_by_a_scan() {
        let (_dir, s) = crate::testing::open();
        let plan = crate::plan_of(
            &s,
            concat!("SELECT text FROM deliveries WHERE ", at_id!("?1", "?2")),
        );
        assert!(plan.contains("INTEGER PRIMARY KEY"), "{plan}");
        assert!(plan.contains("deliveries_legacy"), "{plan}");
        assert!(!plan.contains("SCAN"), "{plan}");
    }
}
