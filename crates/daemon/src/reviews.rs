//! Reviews over HTTP; reviewers are chosen by the circle's persona
//! (`review`), else the built-in policy. Items still without a reviewer are
//! routed again from the background tick.

use super::DaemonHandle;
use super::auth::{ApiResult, Body, Caller, Query};
use crate::pipeline::{self, Input, Outcome, Target};
use axum::Json;
use axum::extract::State;
use repowire_client::api::{
    QueueEntry, ReviewInfo, ReviewRefReq, ReviewRequestReq, ReviewRequestResp,
};
use repowire_core::error::Error;
use repowire_core::mesh::ReviewInput;
use serde::Deserialize;

type H = State<DaemonHandle>;

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
        review,
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

pub async fn request(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRequestReq>,
) -> ApiResult<Json<ReviewRequestResp>> {
    let me = c.me()?.clone();
    let hh = h.clone();
    let r = tokio::task::spawn_blocking(move || -> Result<ReviewRequestResp, Error> {
        let review = hh.store.open_review(&me.id, &req)?;
        if review.reviewers.is_empty() {
            route(&hh, &me.circle, &review.reference)
        } else {
            Ok(ReviewRequestResp {
                review,
                persona: None,
                route: repowire_core::route::Route::Decline {
                    why: "already has reviewers".into(),
                }
                .out(None),
            })
        }
    })
    .await
    .map_err(|e| Error::internal(e.to_string()))??;
    Ok(Json(r))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueQ {
    peer: Option<String>,
}

pub async fn queue(
    State(h): H,
    c: Caller,
    Query(q): Query<QueueQ>,
) -> ApiResult<Json<Vec<QueueEntry>>> {
    let peer = match q.peer {
        Some(name) => c.resolve_peer_in_caller_circle(&h, &name, None)?,
        None => c.me()?.clone(),
    };
    Ok(Json(h.store.review_queue(&peer.id)?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShowQ {
    #[serde(rename = "ref")]
    reference: String,
    circle: Option<String>,
}

fn circle_of(c: &Caller, asked: Option<String>) -> Result<String, Error> {
    Ok(c.scope_circle(asked)?
        .or_else(|| c.me().ok().map(|p| p.circle.clone()))
        .unwrap_or_else(|| repowire_core::peer::DEFAULT_CIRCLE.to_string()))
}

pub async fn show(State(h): H, c: Caller, Query(q): Query<ShowQ>) -> ApiResult<Json<ReviewInfo>> {
    let circle = circle_of(&c, q.circle)?;
    Ok(Json(h.store.get_review(&circle, &q.reference)?))
}

pub async fn update(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRefReq>,
) -> ApiResult<Json<ReviewInfo>> {
    let circle = circle_of(&c, None)?;
    let actor = c.me().ok().map(|p| p.id.clone());
    Ok(Json(h.store.update_review(
        &circle,
        actor.as_deref(),
        &req,
    )?))
}

pub async fn mark(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRefReq>,
) -> ApiResult<Json<ReviewInfo>> {
    let me = c.me()?.clone();
    Ok(Json(h.store.mark_review(&me.circle, &me.id, &req)?))
}

pub async fn close(
    State(h): H,
    c: Caller,
    Body(req): Body<ReviewRefReq>,
) -> ApiResult<Json<ReviewInfo>> {
    let circle = circle_of(&c, None)?;
    let by = c
        .me()
        .map(|p| p.name.clone())
        .unwrap_or_else(|_| "admin".into());
    let actor = c.me().ok().map(|p| p.id.clone());
    Ok(Json(h.store.close_review(
        &circle,
        &req.reference,
        actor.as_deref(),
        &by,
    )?))
}
