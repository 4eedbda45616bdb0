//! Group commit for requests: the writes of the frequent routes'
//! handlers (`edge::GROUPED`) leave their parts in the store's open
//! transaction ([`repowire_store::deferring`]) instead of each committing;
//! one task, queued behind every request already ready to run on the
//! daemon's thread, commits them together, and each request is answered
//! only once its writes landed (docs/durability.md).

use crate::DaemonHandle;
use crate::auth::ApiError;
use axum::response::{IntoResponse, Response};
use std::future::Future;
use std::sync::atomic::Ordering;

/// Run a request's handler with its writes deferred; answer once they
/// committed (or with the commit's error, when they took no effect).
pub(crate) async fn deferred(
    h: &DaemonHandle,
    handler: impl Future<Output = Response>,
) -> Response {
    let mut handler = std::pin::pin!(handler);
    let mut writes = repowire_store::Deferred::default();
    let response = std::future::poll_fn(|cx| {
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            repowire_store::deferring(|| handler.as_mut().poll(cx))
        }));
        let (polled, made) = match polled {
            Ok(p) => p,
            Err(panic) => {
                // What it wrote before it panicked is not waited for,
                // but still committed, not left holding the database.
                queue_commit(h);
                std::panic::resume_unwind(panic)
            }
        };
        if !made.is_empty() {
            writes.extend(made);
            queue_commit(h);
        }
        polled
    })
    .await;
    match writes.landed().await {
        Ok(()) => response,
        Err(e) => ApiError(e).into_response(),
    }
}

/// Queue the commit task, unless one is queued already: it runs after
/// the tasks ready now, so their writes share its commit.
fn queue_commit(h: &DaemonHandle) {
    if h.commit_queued.swap(true, Ordering::AcqRel) {
        return;
    }
    let h = h.clone();
    tokio::spawn(async move {
        // Cleared first: a write deferred from here on queues another
        // task (this commit takes it too, or the next one does).
        h.commit_queued.store(false, Ordering::Release);
        h.store.commit_open();
    });
}
