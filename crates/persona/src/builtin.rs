//! The built-in policy: what decides when no persona is active, or when the
//! active one fails. `personas/default.lua` is the same policy in Lua.

use repowire_core::mesh::{JobInput, MeshSnapshot, PeerSnap, ReviewInput};
use repowire_core::route::Route;

/// Available for new work: not offline and not busy.
fn available(p: &PeerSnap) -> bool {
    p.status == "online" || p.status == "idle"
}

fn least_loaded(mut c: Vec<&PeerSnap>) -> Option<&PeerSnap> {
    c.sort_by(|a, b| a.load.cmp(&b.load).then_with(|| a.name.cmp(&b.name)));
    c.into_iter().next()
}

/// The least-loaded available agent whose tags cover the job's (preferring
/// one that has not had the job before); otherwise defer.
pub fn dispatch(job: &JobInput, mesh: &MeshSnapshot) -> Route {
    let fits: Vec<&PeerSnap> = mesh
        .peers
        .iter()
        .filter(|p| p.role == "agent" && available(p))
        .filter(|p| job.tags.iter().all(|t| p.tags.contains(t)))
        .collect();
    let fresh: Vec<&PeerSnap> = fits
        .iter()
        .copied()
        .filter(|p| !job.previous_assignees.contains(&p.name))
        .collect();
    let pick = least_loaded(if fresh.is_empty() { fits } else { fresh });
    match pick {
        Some(p) => Route::Assign {
            peer: p.name.clone(),
            note: None,
        },
        None => Route::Defer {
            after: "1m".into(),
            why: if job.tags.is_empty() {
                "no agent is available".into()
            } else {
                format!("no available agent has the tags {}", job.tags.join(", "))
            },
        },
    }
}

/// An available agent or human on a different backend than the author, else
/// any other available one; never the author. Otherwise defer.
pub fn review(item: &ReviewInput, mesh: &MeshSnapshot) -> Route {
    let author_backend = mesh
        .peers
        .iter()
        .find(|p| p.name == item.author)
        .map(|p| p.backend.as_str());
    let others: Vec<&PeerSnap> = mesh
        .peers
        .iter()
        .filter(|p| p.name != item.author && available(p))
        .filter(|p| p.role == "agent" || p.role == "human")
        .collect();
    let cross: Vec<&PeerSnap> = others
        .iter()
        .copied()
        .filter(|p| Some(p.backend.as_str()) != author_backend)
        .collect();
    let pick = least_loaded(if cross.is_empty() { others } else { cross });
    match pick {
        Some(p) => Route::Assign {
            peer: p.name.clone(),
            note: Some(format!("review {} at {}", item.reference, item.head_sha)),
        },
        None => Route::Defer {
            after: "5m".into(),
            why: "no reviewer is available".into(),
        },
    }
}
