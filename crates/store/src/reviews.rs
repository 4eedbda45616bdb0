//! Review items: who owes a review of what, re-opened when the head moves,
//! cleared by a verdict, closed when merged or abandoned.

use super::circles::{resolve_for, resolve_within};
use super::deliveries::{NewDelivery, enqueue};
use super::peers::{by_id, must};
use super::{NewEvent, Store, Tx};
use repowire_core::access::{Action, Caller, Target, authorize};
use repowire_core::delivery::DeliveryKind;
use repowire_core::error::{Error, ErrorCode, Result};
use repowire_core::event::Event;
use repowire_core::ids::{PeerId, ReviewId};
use repowire_core::review::{NewReview, QueueEntry, Review, ReviewRef, ReviewerState};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;

/// What a reviewer should do now.
fn my_action(open: bool, head: &str, last: Option<&str>) -> &'static str {
    match (open, last) {
        (false, _) => "closed",
        (true, None) => "review-needed",
        (true, Some(s)) if s != head => "re-review-suggested",
        _ => "none-needed",
    }
}

struct Row {
    info: Review,
    author_id: PeerId,
}

fn load(c: &Connection, circle: &str, reference: &str) -> Result<Option<Row>> {
    let row = c
        .prepare_cached(
            "SELECT id, ref, circle, title, head_sha, author_name, requested_by_name, tags, state,
                    created_ms, updated_ms, author
             FROM reviews WHERE circle = ?1 AND ref = ?2",
        )?
        .query_row(params![circle, reference], |r| {
            let tags: String = r.get(7)?;
            Ok(Row {
                info: Review {
                    review_id: r.get(0)?,
                    reference: r.get(1)?,
                    circle: r.get(2)?,
                    title: r.get(3)?,
                    head_sha: r.get(4)?,
                    author: r.get(5)?,
                    requested_by: r.get(6)?,
                    tags: serde_json::from_str(&tags).unwrap_or_default(),
                    state: r.get(8)?,
                    reviewers: Vec::new(),
                    created_at_ms: r.get(9)?,
                    updated_at_ms: r.get(10)?,
                },
                author_id: r.get(11)?,
            })
        })
        .optional()?;
    let Some(mut row) = row else { return Ok(None) };
    let open = row.info.state == "open";
    row.info.reviewers = c
        .prepare_cached(
            "SELECT reviewer_name, last_reviewed_sha, verdict, notes FROM review_assignments
             WHERE review_id = ?1 ORDER BY reviewer_name",
        )?
        .query_map([&row.info.review_id], |r| {
            let last: Option<String> = r.get(1)?;
            Ok(ReviewerState {
                my_action: my_action(open, &row.info.head_sha, last.as_deref()).to_string(),
                reviewer: r.get(0)?,
                last_reviewed_sha: last,
                verdict: r.get(2)?,
                notes: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Some(row))
}

fn must_load(c: &Connection, circle: &str, reference: &str) -> Result<Row> {
    load(c, circle, reference)?.ok_or_else(|| {
        Error::new(
            ErrorCode::NotFound,
            format!("no review of {reference:?} in circle {circle:?}"),
        )
    })
}

fn review_event(t: &mut Tx<'_>, r: &Review, event: Event) -> Result<()> {
    t.event(NewEvent {
        subject: &r.review_id,
        related: None,
        circle: Some(&r.circle),
        event,
    })
}

/// Tell a peer of the review's circle (an author named across circles
/// before that was refused is passed over).
fn tell(t: &mut Tx<'_>, circle: &str, peer_id: &PeerId, text: &str) -> Result<()> {
    if let Some(p) = by_id(t, peer_id)?.filter(|p| p.circle == circle) {
        enqueue(
            t,
            NewDelivery {
                to: &p,
                from: None,
                kind: DeliveryKind::System,
                ask_id: None,
                job_id: None,
                text,
            },
        )?;
    }
    Ok(())
}

/// Moving, re-opening or closing a review: its author, whoever requested
/// it, the circle's orchestrator, or the admin (`actor` None).
fn may_manage(t: &Tx<'_>, row: &Row, actor: Option<&PeerId>) -> Result<()> {
    let Some(a) = actor else { return Ok(()) };
    let me = Caller::Peer(must(t, a)?.into());
    let who = format!("the author or requester of {}", row.info.reference);
    let target = Target {
        circle: Some(&row.info.circle),
        managers: &[row.info.requested_by.as_str()],
        parties: &[row.author_id.as_str()],
        who: Some(&who),
        ..Target::default()
    };
    authorize(&me, Action::Manage, target)
}

/// Tell reviewers who already reviewed that the head moved.
fn tell_reviewers_moved(t: &mut Tx<'_>, r: &Review) -> Result<()> {
    let reviewers: Vec<PeerId> = t
        .conn()
        .prepare_cached("SELECT reviewer FROM review_assignments WHERE review_id = ?1 AND last_reviewed_sha IS NOT NULL")?
        .query_map([&r.review_id], |x| x.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for id in reviewers {
        tell(
            t,
            &r.circle,
            &id,
            &format!(
                "{} moved to {} since your review: a re-review is suggested.",
                r.reference, r.head_sha
            ),
        )?;
    }
    Ok(())
}

fn check_sha(sha: &str) -> Result<()> {
    if sha.is_empty()
        || sha.len() > repowire_core::limits::SHA_BYTES
        || !sha.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(Error::bad_request(format!("{sha:?} is not a commit sha")));
    }
    Ok(())
}

impl Store {
    /// Create (or re-open, with a new head) a review item. Reviewers are
    /// added separately once routing has decided.
    pub fn open_review(&self, caller_id: &PeerId, req: &NewReview) -> Result<Review> {
        if req.reference.trim().is_empty() || req.reference.len() > repowire_core::limits::REF_BYTES
        {
            return Err(Error::bad_request(
                "a review needs a ref (a PR URL or any ref string, at most 2048 bytes)",
            ));
        }
        check_sha(&req.head_sha)?;
        self.write(|t| {
            let caller = must(t, caller_id)?;
            let author = match &req.author {
                Some(a) => std::sync::Arc::unwrap_or_clone(resolve_for(t, &caller, a, None, false)?),
                None => caller.clone(),
            };
            if let Some(existing) = load(t.conn(), &caller.circle, &req.reference)? {
                may_manage(t, &existing, Some(&caller.id))?;
                t.conn()
                    .prepare_cached("UPDATE reviews SET head_sha = ?2, state = 'open', updated_ms = ?3 WHERE id = ?1")?
                    .execute(params![existing.info.review_id, req.head_sha, t.now])?;
                let r = must_load(t.conn(), &caller.circle, &req.reference)?.info;
                review_event(t, &r, Event::ReviewReopened { reference: r.reference.clone(), head_sha: r.head_sha.clone(), by: caller.name.clone() })?;
                if existing.info.head_sha != r.head_sha {
                    tell_reviewers_moved(t, &r)?;
                }
                return Ok(r);
            }
            let id = ReviewId::generate(t.now);
            t.conn()
                .prepare_cached(
                    "INSERT INTO reviews (id, circle, ref, title, head_sha, author, author_name,
                       requested_by_name, tags, state, created_ms, updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'open', ?10, ?10)",
                )?
                .execute(params![
                    id,
                    caller.circle,
                    req.reference,
                    req.title.as_deref().unwrap_or(""),
                    req.head_sha,
                    author.id,
                    author.name,
                    caller.name,
                    serde_json::to_string(&req.tags.clone().unwrap_or_default())?,
                    t.now
                ])?;
            let r = must_load(t.conn(), &caller.circle, &req.reference)?.info;
            review_event(t, &r, Event::ReviewRequested { reference: r.reference.clone(), author: author.name.clone(), by: caller.name.clone() })?;
            Ok(r)
        })
    }

    pub fn get_review(&self, circle: &str, reference: &str) -> Result<Review> {
        self.read(|c| Ok(must_load(c, circle, reference)?.info))
    }

    /// Open reviews (in `circle`, or all), most recently changed first.
    pub fn open_reviews(&self, circle: Option<&str>, limit: u32) -> Result<Vec<Review>> {
        self.read(|c| {
            let keys: Vec<(String, String)> = c
                .prepare_cached(
                    "SELECT circle, ref FROM reviews WHERE state = 'open'
                       AND (?1 IS NULL OR circle = ?1)
                     ORDER BY updated_ms DESC LIMIT ?2",
                )?
                .query_map(params![circle, limit], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            keys.iter()
                .map(|(circle, reference)| Ok(must_load(c, circle, reference)?.info))
                .collect()
        })
    }

    /// Open reviews with no reviewer yet (routing deferred), oldest first.
    pub fn unrouted_reviews(&self, limit: u32) -> Result<Vec<(String, String)>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT circle, ref FROM reviews r WHERE state = 'open'
                   AND NOT EXISTS (SELECT 1 FROM review_assignments a WHERE a.review_id = r.id)
                 ORDER BY updated_ms LIMIT ?1",
            )?
            .query_map([limit], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Open review assignments of a circle, for check-in scripts:
    /// ref, author, reviewer, my_action, age in seconds.
    pub fn open_review_assignments(&self, circle: &str) -> Result<Vec<serde_json::Value>> {
        let now = self.clock.now_ms();
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT r.ref, r.author_name, a.reviewer_name, r.head_sha, a.last_reviewed_sha, r.updated_ms
                 FROM reviews r JOIN review_assignments a ON a.review_id = r.id
                 WHERE r.circle = ?1 AND r.state = 'open' ORDER BY r.updated_ms",
            )?
            .query_map([circle], |r| {
                let head: String = r.get(3)?;
                let last: Option<String> = r.get(4)?;
                let updated: i64 = r.get(5)?;
                Ok(json!({
                    "ref": r.get::<_, String>(0)?,
                    "author": r.get::<_, String>(1)?,
                    "reviewer": r.get::<_, String>(2)?,
                    "my_action": my_action(true, &head, last.as_deref()),
                    "age_s": (now - updated).max(0) / 1000,
                }))
            })?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// What `peer` owes: every review it is assigned, with its action.
    pub fn review_queue(&self, peer_id: &PeerId) -> Result<Vec<QueueEntry>> {
        self.read(|c| {
            Ok(c.prepare_cached(
                "SELECT r.ref, r.title, r.head_sha, r.author_name, a.last_reviewed_sha, a.verdict, r.state
                 FROM review_assignments a JOIN reviews r ON r.id = a.review_id
                 WHERE a.reviewer = ?1 ORDER BY r.state DESC, r.updated_ms DESC",
            )?
            .query_map([peer_id], |r| {
                let head: String = r.get(2)?;
                let last: Option<String> = r.get(4)?;
                let state: String = r.get(6)?;
                Ok(QueueEntry {
                    my_action: my_action(state == "open", &head, last.as_deref()).to_string(),
                    reference: r.get(0)?,
                    title: r.get(1)?,
                    head_sha: head,
                    author: r.get(3)?,
                    last_reviewed_sha: last,
                    verdict: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
        })
    }

    /// The author pushed: a new head re-opens the review for its reviewers.
    pub fn update_review(
        &self,
        circle: &str,
        actor: Option<&PeerId>,
        req: &ReviewRef,
    ) -> Result<Review> {
        let sha = req
            .sha
            .as_deref()
            .ok_or_else(|| Error::bad_request("give the new head sha"))?;
        check_sha(sha)?;
        self.write(|t| {
            let row = must_load(t.conn(), circle, &req.reference)?;
            may_manage(t, &row, actor)?;
            if row.info.state != "open" {
                return Err(Error::new(
                    ErrorCode::InvalidState,
                    format!("{} is closed", req.reference),
                ));
            }
            t.conn()
                .prepare_cached("UPDATE reviews SET head_sha = ?2, updated_ms = ?3 WHERE id = ?1")?
                .execute(params![row.info.review_id, sha, t.now])?;
            let r = must_load(t.conn(), circle, &req.reference)?.info;
            let updated = Event::ReviewUpdated {
                reference: r.reference.clone(),
                head_sha: sha.to_string(),
            };
            review_event(t, &r, updated)?;
            tell_reviewers_moved(t, &r)?;
            Ok(r)
        })
    }

    /// A reviewer's verdict (`mark_reviewed`); the author is told.
    pub fn mark_review(
        &self,
        circle: &str,
        reviewer_id: &PeerId,
        req: &ReviewRef,
    ) -> Result<Review> {
        let verdict = req.verdict.as_deref().unwrap_or("comment");
        if !["approve", "changes", "comment"].contains(&verdict) {
            return Err(Error::bad_request(format!(
                "verdict {verdict:?}: use approve, changes or comment"
            )));
        }
        if let Some(n) = &req.notes {
            self.policy.check_text("notes", n)?;
        }
        self.write(|t| {
            let row = must_load(t.conn(), circle, &req.reference)?;
            let me = must(t, reviewer_id)?;
            let sha = req.sha.clone().unwrap_or_else(|| row.info.head_sha.clone());
            check_sha(&sha)?;
            // Who reviews it, read in the write: routing assigns under writes.
            let reviewers: Vec<PeerId> = t
                .conn()
                .prepare_cached("SELECT reviewer FROM review_assignments WHERE review_id = ?1")?
                .query_map([&row.info.review_id], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            let parties: Vec<&str> = reviewers.iter().map(|p| p.as_str()).collect();
            let who = format!("a reviewer of {}", req.reference);
            let target = Target { circle: Some(&row.info.circle), parties: &parties, who: Some(&who), ..Target::default() };
            authorize(&Caller::Peer(me.clone().into()), Action::ActAsParty, target)?;
            t.conn()
                .prepare_cached(
                    "UPDATE review_assignments SET last_reviewed_sha = ?3, verdict = ?4, notes = ?5, updated_ms = ?6
                     WHERE review_id = ?1 AND reviewer = ?2",
                )?
                .execute(params![row.info.review_id, me.id, sha, verdict, req.notes, t.now])?;
            let r = must_load(t.conn(), circle, &req.reference)?.info;
            review_event(t, &r, Event::ReviewMarked { reference: r.reference.clone(), reviewer: me.name.clone(), sha: sha.to_string(), verdict: verdict.to_string() })?;
            tell(
                t,
                circle,
                &row.author_id,
                &format!(
                    "{} reviewed {} at {sha}: {verdict}{}",
                    me.name,
                    r.reference,
                    req.notes.as_deref().map(|n| format!(" — {n}")).unwrap_or_default()
                ),
            )?;
            Ok(r)
        })
    }

    /// Merged or abandoned: nothing more is owed.
    pub fn close_review(
        &self,
        circle: &str,
        reference: &str,
        actor: Option<&PeerId>,
        by: &str,
    ) -> Result<Review> {
        self.write(|t| {
            let row = must_load(t.conn(), circle, reference)?;
            may_manage(t, &row, actor)?;
            t.conn()
                .prepare_cached(
                    "UPDATE reviews SET state = 'closed', updated_ms = ?2 WHERE id = ?1",
                )?
                .execute(params![row.info.review_id, t.now])?;
            let r = must_load(t.conn(), circle, reference)?.info;
            review_event(
                t,
                &r,
                Event::ReviewClosed {
                    reference: reference.to_string(),
                    by: by.to_string(),
                },
            )?;
            Ok(r)
        })
    }
}

impl Tx<'_> {
    /// The review of `reference` in `circle` as it is inside this transaction.
    pub fn review(&self, circle: &str, reference: &str) -> Result<Review> {
        Ok(must_load(self.conn(), circle, reference)?.info)
    }

    /// Add reviewers (never the author) and tell each of them.
    pub fn assign_reviewers(
        &mut self,
        circle: &str,
        reference: &str,
        names: &[String],
        note: Option<&str>,
    ) -> Result<Review> {
        let t = self;
        {
            let row = must_load(t.conn(), circle, reference)?;
            for name in names {
                let p = resolve_within(t, circle, reference, name, None, false)?;
                if p.id == row.author_id {
                    return Err(Error::bad_request(format!(
                        "{} wrote {reference}: a reviewer is never the author",
                        p.name
                    )));
                }
                t.conn()
                    .prepare_cached(
                        "INSERT INTO review_assignments (review_id, reviewer, reviewer_name, updated_ms)
                         VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                    )?
                    .execute(params![row.info.review_id, p.id, p.name, t.now])?;
                review_event(
                    t,
                    &row.info,
                    Event::ReviewAssigned {
                        reference: reference.to_string(),
                        reviewer: p.name.clone(),
                    },
                )?;
                tell(
                    t,
                    circle,
                    &p.id,
                    &format!(
                        "Please review {reference}{} at {} by {}.{} Mark it with: repowire review mark {reference} --verdict approve|changes|comment",
                        if row.info.title.is_empty() {
                            String::new()
                        } else {
                            format!(" ({})", row.info.title)
                        },
                        row.info.head_sha,
                        row.info.author,
                        note.map(|n| format!(" ({n})")).unwrap_or_default()
                    ),
                )?;
            }
            Ok(must_load(t.conn(), circle, reference)?.info)
        }
    }

    /// Move a review still waiting for a reviewer to the back of the line.
    pub fn requeue_review(&mut self, circle: &str, reference: &str) -> Result<()> {
        let now = self.now;
        self.conn()
            .prepare_cached("UPDATE reviews SET updated_ms = ?3 WHERE circle = ?1 AND ref = ?2")?
            .execute(params![circle, reference, now])?;
        Ok(())
    }
}

#[cfg(test)]
mod plan_tests {
    /// The per-tick and dashboard reads of open reviews go through the
    /// partial index of open reviews, in order: closed reviews (kept) are
    /// never read, nothing is sorted.
    #[test]
    fn open_reviews_are_read_from_their_index() {
        for sql in [
            "SELECT circle, ref FROM reviews r WHERE state = 'open'
               AND NOT EXISTS (SELECT 1 FROM review_assignments a WHERE a.review_id = r.id)
             ORDER BY updated_ms LIMIT ?1",
            "SELECT circle, ref FROM reviews WHERE state = 'open'
               AND (?1 IS NULL OR circle = ?1)
             ORDER BY updated_ms DESC LIMIT ?2",
        ] {
            crate::assert_planned_through(&[(sql, "reviews_open")]);
        }
    }
}
