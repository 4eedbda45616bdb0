//! The service layer: every rule and every authorization check of the
//! daemon, one function per thing a caller can do. Each call passes through
//! [`crate::policy`] first, then reads or writes through the store, and
//! decides through [`crate::pipeline`]. HTTP handlers (`crate::http`) only
//! parse, call one function here and render; the background tasks call the
//! runtime parts (retrying queued jobs, routing waiting reviews, firing
//! schedules).

pub mod admin;
pub mod asks;
pub mod events;
pub mod inbox;
pub mod jobs;
pub mod peers;
pub mod personas;
pub mod reviews;
pub mod schedules;
pub mod spawn;
pub mod wake;

use repowire_core::error::Error;

/// Run `f` on a blocking thread (it runs Lua or waits on SQLite).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::internal(e.to_string()))?
}
