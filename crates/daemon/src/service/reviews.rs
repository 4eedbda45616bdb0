//! Reviews: request, read, update, mark and close; reviewers are chosen by
//! the circle's persona (`review`), else the built-in policy, through the
//! pipeline. Items still without a reviewer are routed again from the
//! background tick ([`route_pending`]).

use super::blocking;
use crate::DaemonHandle;
use crate::auth::Caller;
use crate::pipeline::{self, Input, Outcome, Target};
use crate::policy::{self, Action};
use repowire_client::api::{ReviewRefReq, ReviewRequestReq, ReviewRequestResp};
use repowire_core::error::Error;
use repowire_core::mesh::ReviewInput;
use repowire_core::review::{QueueEntry, Review};

/// Ask the persona who reviews `reference` and assign them.
pub fn route(h: &DaemonHandle, circle: &str, reference: &str) -> Result<ReviewRequestResp, Error> {
    let r = h.store.get_review(circle, reference)?;
    let item = ReviewInput {
        reference: r.reference.clone(),
        head_sha: r.head_sha.clone(),
        author: r.author.clone(),
        requested_by: r.requested_by.clone(),
        tags: r.tags.clone(),
    };
    let decision = pipeline::decide(
        h,
        circle,
        Input::Review(&item),
        serde_json::json!({"ref": reference}),
    )?;
    let route = decision
        .routes
        .first()
        .ok_or_else(|| Error::internal("a review decision without a route"))?;
    let review = match pipeline::execute(h, &Target::Review { circle, reference }, route)? {
        Outcome::Reviewers(r) | Outcome::Requeued(r) => r,
        _ => r,
    };
    Ok(ReviewRequestResp {
        review: review.into(),
        persona: decision.persona.clone(),
        route: decision.out(),
    })
}

/// Background: route open reviews that have no reviewer yet.
pub fn route_pending(h: &DaemonHandle) -> usize {
    let Ok(list) = h.store.unrouted_reviews(20) else {
        return 0;
    };
    let mut n = 0;
    for (circle, reference) in list {
        if let Ok(r) = route(h, &circle, &reference)
            && !r.review.reviewers.is_empty()
        {
            n += 1;
        }
    }
    n
}

/// Open a review as the caller and route it (unless it names reviewers).
pub async fn request(
    h: &DaemonHandle,
    c: &Caller,
    req: ReviewRequestReq,
) -> Result<ReviewRequestResp, Error> {
    policy::authorize(c, Action::ActAsPeer, policy::Target::none())?;
    let me = c.me()?.clone();
    let h = h.clone();
    blocking(move || {
        let review = h.store.open_review(&me.id, &req.into())?;
        if review.reviewers.is_empty() {
            route(&h, &me.circle, &review.reference)
        } else {
            Ok(ReviewRequestResp {
                review: review.into(),
                persona: None,
                route: repowire_core::route::Route::Decline {
                    why: "already has reviewers".into(),
                }
                .out(None),
            })
        }
    })
    .await
}

/// What a peer owes (the caller, or a peer named in the caller's circle).
pub fn queue(h: &DaemonHandle, c: &Caller, peer: Option<String>) -> Result<Vec<QueueEntry>, Error> {
    let peer = match peer {
        Some(name) => super::peers::resolve_visible(h, c, &name, None)?,
        None => c.me()?.clone(),
    };
    h.store.review_queue(&peer.id)
}

/// The circle a review command is about: asked (the admin), else the
/// caller's, else the default circle.
fn circle_of(c: &Caller, asked: Option<String>) -> Result<String, Error> {
    Ok(policy::read_scope(c, asked)?
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| repowire_core::peer::DEFAULT_CIRCLE.to_string()))
}

pub fn show(
    h: &DaemonHandle,
    c: &Caller,
    reference: &str,
    circle: Option<String>,
) -> Result<Review, Error> {
    h.store.get_review(&circle_of(c, circle)?, reference)
}

/// Move or re-open a review (the store checks, in the write, that the
/// actor wrote or requested it, or is the orchestrator).
pub fn update(h: &DaemonHandle, c: &Caller, req: ReviewRefReq) -> Result<Review, Error> {
    let circle = circle_of(c, None)?;
    let actor = c.me().ok().map(|p| &p.id);
    h.store.update_review(&circle, actor, &req.into())
}

/// A reviewer marks what it reviewed.
pub fn mark(h: &DaemonHandle, c: &Caller, req: ReviewRefReq) -> Result<Review, Error> {
    let me = c.me()?;
    h.store.mark_review(&me.circle, &me.id, &req.into())
}

pub fn close(h: &DaemonHandle, c: &Caller, req: &ReviewRefReq) -> Result<Review, Error> {
    let circle = circle_of(c, None)?;
    let by = c
        .me()
        .map(|p| p.name.clone())
        .unwrap_or_else(|_| "admin".into());
    let actor = c.me().ok().map(|p| &p.id);
    h.store.close_review(&circle, &req.reference, actor, &by)
}
