//! The daemon itself: health, traces, the doctor's report, shutdown.

use crate::DaemonHandle;
use crate::auth::Caller;
use crate::policy::{self, Action, Target};
use repowire_client::api::{
    DashboardLogin, DashboardOverview, DoctorResp, Health, OpenAsk, PeerInfo,
};
use repowire_core::error::{Error, ErrorCode};
use repowire_core::event::EventRecord;
use repowire_core::ids::{AskId, IdKind};
use repowire_core::peer::Peer;

pub fn health(h: &DaemonHandle) -> Health {
    Health {
        ok: true,
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        url: h.url.clone(),
        home: h.home.dir.display().to_string(),
        started_at_ms: h.started_at_ms,
        uptime_ms: h.clock.now_ms() - h.started_at_ms,
    }
}

/// Test-only: move a manual clock (`--manual-clock`) forward by `ms`, run
/// the background pass the new time makes due, and wake the scheduler, long
/// polls and inbox streams; answers the new now. Integration tests cross a
/// threshold (a lease, a stale heartbeat, an ask's expiry, a schedule's due
/// time) with it instead of sleeping. In a daemon on the system clock the
/// route does not exist (`not_found`, like any unknown route); the admin
/// token only.
pub async fn advance_clock(h: &DaemonHandle, c: &Caller, ms: i64) -> Result<i64, Error> {
    if !h.clock.is_manual() {
        return Err(Error::new(ErrorCode::NotFound, "no such route"));
    }
    policy::authorize(c, Action::Administer, Target::none())?;
    let now_ms = h.clock.advance(ms);
    let hh = h.clone();
    tokio::task::spawn_blocking(move || crate::tasks::maintain(&hh, false))
        .await
        .map_err(|e| Error::internal(format!("background pass failed: {e}")))?;
    h.schedules_changed.notify_one();
    h.clock_moved.notify_waiters();
    Ok(now_ms)
}

/// A one-time link that logs a browser into the dashboard (admin only).
pub fn dashboard_login(h: &DaemonHandle, c: &Caller) -> Result<DashboardLogin, Error> {
    policy::authorize(c, Action::Administer, Target::none())?;
    let code = h.dashboard.new_code(h.clock.now_ms());
    Ok(DashboardLogin {
        url: format!("{}/dashboard/login?code={code}", h.url),
        expires_in_s: crate::dashboard::CODE_MS / 1000,
    })
}

/// The dashboard's open asks (overdue ones marked) and open reviews, of one
/// circle or all (admin only).
pub fn dashboard_overview(
    h: &DaemonHandle,
    c: &Caller,
    circle: Option<String>,
) -> Result<DashboardOverview, Error> {
    policy::authorize(c, Action::Administer, Target::none())?;
    let now = h.clock.now_ms();
    let late = h.store.policy.reminder_after_ms;
    let asks = h
        .store
        .open_asks(circle.as_deref(), 200)?
        .into_iter()
        .map(|a| OpenAsk {
            overdue: now >= a.created_at_ms + late,
            ask: a.into(),
        })
        .collect();
    let reviews = h
        .store
        .open_reviews(circle.as_deref(), 100)?
        .into_iter()
        .map(Into::into)
        .collect();
    let loads = h.store.peer_loads(circle.as_deref())?.into_iter().collect();
    Ok(DashboardOverview {
        asks,
        reviews,
        loads,
    })
}

/// Every event about `id`. A peer traces what happened in its circle, and
/// its own asks (an admin-bypassed ask crosses circles).
pub fn trace(h: &DaemonHandle, c: &Caller, id: &str) -> Result<Vec<EventRecord>, Error> {
    if IdKind::of(id).is_none() {
        return Err(Error::bad_request(format!(
            "{id:?} is not a traceable id (ask-…, askm-…, dlv-…, peer-…)"
        )));
    }
    let events = h.store.trace(id)?;
    if events.is_empty() {
        return Err(Error::new(
            ErrorCode::NotFound,
            format!("no events about {id}"),
        ));
    }
    let party = |_: &Peer| AskId::parse(id).is_ok_and(|ask| super::asks::get(h, c, &ask).is_ok());
    if let Some(me) = c.viewer() {
        let foreign = events.iter().any(|e| {
            let there = Target {
                circle: e.circle.as_deref(),
                ..Target::default()
            };
            policy::authorize(c, Action::ReadObject, there).is_err()
        });
        if foreign && !party(me) {
            return Err(Error::new(
                ErrorCode::CrossCircle,
                format!("{id} belongs to another circle"),
            ));
        }
    }
    Ok(events)
}

/// The database's health and counts: the admin only.
pub fn doctor(h: &DaemonHandle, c: &Caller) -> Result<DoctorResp, Error> {
    policy::authorize(c, Action::Administer, Target::none())?;
    let counts = h.store.counts()?;
    let now = h.clock.now_ms();
    let stale_after = h.store.policy.stale_after_ms;
    let stale_peers = h
        .store
        .list_peers(None)?
        .iter()
        .filter(|p| repowire_core::peer::is_stale(p.last_seen_ms, now, stale_after))
        .map(|p| PeerInfo::of(p, now, stale_after))
        .collect();
    let (commits, writes) = h.store.commits();
    Ok(DoctorResp {
        db_ok: counts.check == "ok",
        db_check: counts.check,
        schema_version: counts.schema_version,
        peers: counts.peers,
        stale_peers,
        open_asks: counts.open_asks,
        pending_deliveries: counts.pending_deliveries,
        events: counts.events,
        commits,
        writes,
    })
}

/// Stop the daemon gracefully: the admin only.
pub fn shutdown(h: &DaemonHandle, c: &Caller) -> Result<(), Error> {
    policy::authorize(c, Action::Administer, Target::none())?;
    h.request_shutdown();
    Ok(())
}
