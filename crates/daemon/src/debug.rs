//! Test-only controls: `POST /v1/debug/clock` moves a manual clock forward.
//!
//! The route answers only in a daemon started with the hidden
//! `--manual-clock` flag (elsewhere it is `not_found`, like any unknown
//! route), and only to the admin token. Integration tests use it to cross a
//! threshold (a lease, a stale heartbeat, an ask's expiry, a schedule's due
//! time) without sleeping: the answer comes after the background work that
//! the new time makes due has run.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller};
use axum::Json;
use axum::extract::State;
use repowire_client::api::Validate;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::limits::Checker;
use serde::Deserialize;

/// Move the clock forward by `advance_ms` (0 to one year).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClockReq {
    pub advance_ms: i64,
}

impl Validate for ClockReq {
    fn validate(&self, _: &Checker) -> Result<()> {
        if (0..=365 * 86_400_000).contains(&self.advance_ms) {
            Ok(())
        } else {
            Err(Error::bad_request(format!(
                "advance_ms {} is out of range: 0 to one year",
                self.advance_ms
            )))
        }
    }
}

/// Advance the manual clock, run the background pass it makes due, and wake
/// the scheduler, long polls and inbox streams; answers the new now.
pub(crate) async fn clock(
    State(h): State<DaemonHandle>,
    c: Caller,
    Body(req): Body<ClockReq>,
) -> ApiResult<Json<serde_json::Value>> {
    if !h.clock.is_manual() {
        return Err(Error::new(ErrorCode::NotFound, "no such route").into());
    }
    crate::policy::authorize(
        &c,
        crate::policy::Action::Administer,
        crate::policy::Target::none(),
    )?;
    let now_ms = h.clock.advance(req.advance_ms);
    let hh = h.clone();
    tokio::task::spawn_blocking(move || super::tasks::maintain(&hh, false))
        .await
        .map_err(|e| Error::internal(format!("background pass failed: {e}")))?;
    h.schedules_changed.notify_one();
    h.clock_moved.notify_waiters();
    Ok(Json(serde_json::json!({"now_ms": now_ms})))
}
