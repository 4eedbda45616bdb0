//! The route executor: one route, carried out inside one transaction, with
//! a typed [`Outcome`]. What a route means depends on what it is carried
//! out on ([`Target`]): `assign` on a job dispatches it, on a review adds
//! reviewers, and on a peer's messages means nothing.

use crate::DaemonHandle;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::{AskId, DeliveryId, JobId};
use repowire_core::job::JobState;
use repowire_core::peer::Peer;
use repowire_core::review::Review;
use repowire_core::route::{DispatchOutcome, Route};
use repowire_store::Tx;
use serde_json::json;
use std::collections::HashSet;

/// How long a declined job, or one waiting for a human, is held back.
const HOLD_MS: i64 = 3_600_000;
/// How long a deferred job is held back when the persona's `after` is not a
/// duration.
const DEFER_MS: i64 = 60_000;

/// What a route is carried out on.
pub enum Target<'a> {
    /// A queued job being dispatched, as the circle's orchestrator (else
    /// its owner).
    Job(&'a JobId),
    /// A review of `reference` in `circle` that waits for reviewers.
    Review { circle: &'a str, reference: &'a str },
    /// Messages sent as this peer (a check-in's owner).
    As(&'a Peer),
    /// Messages sent as the circle's orchestrator (`on_event`); without one
    /// nothing is sent.
    Orchestrator(&'a str),
}

/// What carrying out a route did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The job went to a peer (and the ask carrying it, unless self-assigned).
    Assigned {
        delivery_id: Option<DeliveryId>,
    },
    /// The job is held back for a while.
    Deferred,
    /// The job is held back for an hour.
    Declined,
    /// The orchestrator (else the owner) was asked; the job is held back.
    AskedUser {
        delivery_id: Option<DeliveryId>,
    },
    /// A session is to be started for the job (`route.spawn`); the job is
    /// held until it registers. The caller starts it after the commit.
    Spawn {
        path: String,
        backend: String,
        name: Option<String>,
    },
    /// Reviewers were added to the review.
    Reviewers(Review),
    /// The review waits, behind the others, for a later routing.
    Requeued(Review),
    Asked {
        ask_id: AskId,
    },
    Notified {
        delivery_id: DeliveryId,
    },
    FannedOut {
        ask_ids: Vec<AskId>,
    },
    /// A decision with nothing to send (defer, decline or ask_user answering
    /// an event or a check-in), recorded as it is.
    Recorded,
    /// The route does not fit the target (a message for a job, an assign
    /// for an event); nothing was done.
    NotApplicable {
        why: &'static str,
    },
    /// Nothing was done because of the circle (no orchestrator to act as).
    Skipped {
        why: String,
    },
}

impl Outcome {
    /// What a dispatch answers for it (`DispatchResp.outcome`).
    pub fn dispatch_outcome(&self) -> DispatchOutcome {
        match self {
            Outcome::Assigned { .. } => DispatchOutcome::Assigned,
            Outcome::Deferred => DispatchOutcome::Deferred,
            Outcome::Declined => DispatchOutcome::Declined,
            Outcome::AskedUser { .. } => DispatchOutcome::AskedUser,
            Outcome::Spawn { .. } => DispatchOutcome::Spawning,
            _ => DispatchOutcome::NotApplicable,
        }
    }

    /// How many messages it sent to peers (a check-in's count).
    pub fn messages(&self) -> usize {
        match self {
            Outcome::Asked { .. } | Outcome::Notified { .. } => 1,
            Outcome::FannedOut { ask_ids } => ask_ids.len(),
            _ => 0,
        }
    }

    /// The JSON of a `persona_route` event: `{route, done, result | why}`.
    pub fn event_json(&self, route: &Route) -> serde_json::Value {
        let out = route.out(None);
        let result = match self {
            Outcome::NotApplicable { why } => {
                return json!({"route": out, "done": false, "why": why});
            }
            Outcome::Skipped { why } => return json!({"route": out, "done": false, "why": why}),
            Outcome::Asked { ask_id } => json!({"correlation_id": ask_id}),
            Outcome::Notified { delivery_id } => json!({"delivery_id": delivery_id}),
            Outcome::FannedOut { ask_ids } => json!({"ask_ids": ask_ids}),
            Outcome::Assigned { delivery_id } | Outcome::AskedUser { delivery_id } => {
                json!({"delivery_id": delivery_id})
            }
            _ => json!({}),
        };
        json!({"route": out, "done": true, "result": result})
    }
}

/// Carry out `route` on `target` in its own transaction (all or nothing).
pub fn execute(h: &DaemonHandle, target: &Target<'_>, route: &Route) -> Result<Outcome, Error> {
    h.store.write(|t| execute_in(t, target, route))
}

/// Carry out `route` on `target` inside the caller's transaction (a
/// check-in fire): an error undoes nothing by itself, the caller's
/// transaction rolls back.
pub fn execute_in(t: &mut Tx<'_>, target: &Target<'_>, route: &Route) -> Result<Outcome, Error> {
    match target {
        Target::Job(id) => on_job(t, id, route),
        Target::Review { circle, reference } => on_review(t, circle, reference, route),
        Target::As(from) => send(t, from, route),
        Target::Orchestrator(circle) => match t.orchestrator(circle)? {
            Some(orch) => send(t, &orch, route),
            None => Ok(Outcome::Skipped {
                why: "the circle has no orchestrator to act as".into(),
            }),
        },
    }
}

fn on_job(t: &mut Tx<'_>, id: &JobId, route: &Route) -> Result<Outcome, Error> {
    let job = t.job(id)?;
    if job.state != JobState::Queued {
        return Err(Error::new(
            ErrorCode::InvalidState,
            format!("job {id} is {}: only a queued job is dispatched", job.state),
        ));
    }
    let orch = t.orchestrator(&job.circle)?;
    Ok(match route {
        Route::Assign { peer, note } => {
            let sender = orch.as_ref().map(|o| &o.id);
            let (_, delivery_id) = t.dispatch_job(id, peer, sender, note.as_deref())?;
            Outcome::Assigned { delivery_id }
        }
        // Not dispatched now: hold the job back so others get their turn.
        Route::Defer { after, .. } => {
            let wait = repowire_core::time::parse_duration(after)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(DEFER_MS);
            t.hold_job(id, t.now + wait)?;
            Outcome::Deferred
        }
        Route::Decline { .. } => {
            t.hold_job(id, t.now + HOLD_MS)?;
            Outcome::Declined
        }
        Route::AskUser { question } => {
            // The question goes to the circle's orchestrator, else the
            // job's owner; a question that cannot be sent still holds the
            // job (the hold is what keeps it from being retried at once).
            let text = format!("Job {id} \"{}\" needs a decision: {question}", job.title);
            let sent = t.attempt(|t| {
                let (from, to) = match &orch {
                    Some(o) => (o.clone(), o.clone()),
                    None => {
                        let owner = t.resolve_in(&job.circle, &job.owner)?;
                        (owner.clone(), owner)
                    }
                };
                t.notify_as(&from, &to, &text)
            });
            t.hold_job(id, t.now + HOLD_MS)?;
            Outcome::AskedUser {
                delivery_id: sent.ok(),
            }
        }
        // Held while the session starts; the spawn's watcher assigns the
        // job when it registers, or lets it go again when it never does.
        Route::Spawn {
            path,
            backend,
            name,
        } => {
            t.hold_job(id, t.now + HOLD_MS)?;
            Outcome::Spawn {
                path: path.clone(),
                backend: backend.clone(),
                name: name.clone(),
            }
        }
        Route::Ask { .. } | Route::Notify { .. } | Route::Fanout { .. } => Outcome::NotApplicable {
            why: "a message route does not dispatch a job",
        },
    })
}

fn on_review(
    t: &mut Tx<'_>,
    circle: &str,
    reference: &str,
    route: &Route,
) -> Result<Outcome, Error> {
    Ok(match route {
        Route::Assign { peer, note } => Outcome::Reviewers(t.assign_reviewers(
            circle,
            reference,
            std::slice::from_ref(peer),
            note.as_deref(),
        )?),
        Route::Fanout { peers, text } => {
            Outcome::Reviewers(t.assign_reviewers(circle, reference, peers, Some(text))?)
        }
        // Deferred, declined or a message: no reviewer yet (retried in the
        // background, behind the other waiting items).
        _ => {
            let r = t.review(circle, reference)?;
            t.requeue_review(circle, reference)?;
            Outcome::Requeued(r)
        }
    })
}

/// Messages as `from`, to peers of its circle.
fn send(t: &mut Tx<'_>, from: &Peer, route: &Route) -> Result<Outcome, Error> {
    Ok(match route {
        Route::Notify { peer, text } => {
            let to = t.resolve_peer_for(from, peer)?;
            Outcome::Notified {
                delivery_id: t.notify_as(from, &to, text)?,
            }
        }
        Route::Ask { peer, text } => {
            let to = t.resolve_peer_for(from, peer)?;
            Outcome::Asked {
                ask_id: t.ask_as(from, &to, text)?,
            }
        }
        Route::Fanout { peers, text } => {
            if peers.len() > t.policy.max_fanout {
                return Err(Error::bad_request(format!(
                    "{} peers named; a fanout reaches at most {} (max_fanout)",
                    peers.len(),
                    t.policy.max_fanout
                )));
            }
            let mut seen = HashSet::new();
            let mut ask_ids = Vec::with_capacity(peers.len());
            for peer in peers {
                let to = t.resolve_peer_for(from, peer)?;
                if !seen.insert(to.id.clone()) {
                    return Err(Error::bad_request(format!("{peer:?} is named twice")));
                }
                ask_ids.push(t.ask_as(from, &to, text)?);
            }
            Outcome::FannedOut { ask_ids }
        }
        Route::Defer { .. } | Route::Decline { .. } | Route::AskUser { .. } => Outcome::Recorded,
        Route::Assign { .. } => Outcome::NotApplicable {
            why: "assign needs a job; an event has none",
        },
        Route::Spawn { .. } => Outcome::NotApplicable {
            why: "spawn starts a session for a job; an event has none",
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use repowire_core::job::NewJob;
    use repowire_core::peer::Registration;
    use repowire_core::policy::Policy;
    use repowire_store::Store;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(&dir.path().join("t.db"), Policy::default()).unwrap();
        (dir, s)
    }

    fn reg(s: &Store, name: &str) -> Peer {
        let req = Registration {
            name: name.into(),
            ..Default::default()
        };
        s.register(req, None).unwrap().0
    }

    /// The same route means what its target makes of it, and a route that
    /// does not fit does nothing.
    #[test]
    fn outcomes_follow_the_target() {
        let (_d, s) = store();
        let (olga, _bob) = (reg(&s, "olga"), reg(&s, "bob"));
        let note = Route::Notify {
            peer: "bob".into(),
            text: "hi".into(),
        };
        let run = |target: &Target<'_>, route: &Route| s.write(|t| execute_in(t, target, route));
        // As a peer: a note is sent.
        let sent = run(&Target::As(&olga), &note).unwrap();
        assert!(matches!(sent, Outcome::Notified { .. }), "{sent:?}");
        assert_eq!(sent.messages(), 1);
        // As the orchestrator of a circle without one: nothing, and why.
        let none = run(&Target::Orchestrator("default"), &note).unwrap();
        assert!(matches!(none, Outcome::Skipped { .. }), "{none:?}");
        // An assign answering an event or a check-in does not apply.
        let assign = Route::Assign {
            peer: "bob".into(),
            note: None,
        };
        let na = run(&Target::As(&olga), &assign).unwrap();
        assert!(matches!(na, Outcome::NotApplicable { .. }), "{na:?}");
        // On a queued job: a note does not apply, an assign dispatches.
        let job = s
            .create_job(
                &olga.id,
                &NewJob {
                    title: "t".into(),
                    ..Default::default()
                },
            )
            .unwrap();
        let id = &job.job_id;
        let na = run(&Target::Job(id), &note).unwrap();
        assert_eq!(na.dispatch_outcome(), DispatchOutcome::NotApplicable);
        let done = run(&Target::Job(id), &assign).unwrap();
        assert!(
            matches!(
                done,
                Outcome::Assigned {
                    delivery_id: Some(_)
                }
            ),
            "{done:?}"
        );
        assert_eq!(s.get_job(id).unwrap().assignee.as_deref(), Some("bob"));
        // Once dispatched, the job takes no more routes.
        let again = run(&Target::Job(id), &assign).unwrap_err();
        assert_eq!(again.code, ErrorCode::InvalidState);
    }

    /// A fanout is all or nothing: naming a peer twice (here once by name
    /// and once by address) sends no ask at all.
    #[test]
    fn a_fanout_is_all_or_nothing() {
        let (_d, s) = store();
        let olga = reg(&s, "olga");
        let bob = reg(&s, "bob");
        let twice = Route::Fanout {
            peers: vec!["bob".into(), "bob@default".into()],
            text: "q".into(),
        };
        let err = execute_in_own(&s, &Target::As(&olga), &twice).unwrap_err();
        assert_eq!(err.code, ErrorCode::BadRequest);
        assert!(s.peek(&bob.id, 10).unwrap().is_empty(), "nothing was sent");
    }

    fn execute_in_own(s: &Store, target: &Target<'_>, route: &Route) -> Result<Outcome, Error> {
        s.write(|t| execute_in(t, target, route))
    }
}
