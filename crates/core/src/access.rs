//! Who may do what: every authorization and visibility rule, stated once as
//! [`authorize`] over a [`Caller`], an [`Action`] and the facts of its
//! [`Target`] (its circle, owner, parties), and tested as one table below.
//!
//! The caller is the admin token (all circles), the admin acting as a peer
//! (`--as`: writes as that peer, reads everything), or a peer token (its own
//! circle only; some actions only as the circle's orchestrator).
//!
//! Pure, like the rest of this crate: whoever holds the facts asks. The
//! daemon's service layer asks before it acts. The store asks with the rows
//! it has just read where the facts can change under concurrent writes,
//! inside the write's transaction: updating a job (its assignee), moving,
//! re-opening, closing or marking a review (its reviewers), `reply_to`,
//! resuming a peer with its token; and for a peer reading an ask or an
//! ask-many's result while it waits.
//!
//! Not here: which peer a *name* resolves to and which circle a broadcast
//! reaches (`store::circles`: inside the acting peer's circle unless the
//! admin bypasses, so a request cannot reach another), and that a job's
//! assignee is in the job's circle (an invariant of every route, whoever
//! dispatches).

use crate::error::{Error, ErrorCode};
use crate::peer::{Peer, Role};
use std::sync::Arc;

/// The authenticated caller. The peer is shared, not copied: a peer
/// token's is the one the store remembers for it (`store::known`).
#[derive(Debug, Clone)]
pub enum Caller {
    Admin,
    AdminAs(Arc<Peer>),
    Peer(Arc<Peer>),
}

impl Caller {
    pub fn is_admin(&self) -> bool {
        !matches!(self, Caller::Peer(_))
    }

    /// The peer this request acts as.
    pub fn me(&self) -> Result<&Peer, Error> {
        match self {
            Caller::AdminAs(p) | Caller::Peer(p) => Ok(p),
            Caller::Admin => Err(Error::new(
                ErrorCode::IdentityRequired,
                "this action is done as a peer: use a peer token (REPOWIRE_PEER_TOKEN) or --as NAME with the admin token",
            )),
        }
    }

    /// The peer whose view limits what this caller may read; `None` = admin.
    pub fn viewer(&self) -> Option<&Peer> {
        match self {
            Caller::Peer(p) => Some(p),
            _ => None,
        }
    }

    /// The circle a read is limited to (see [`read_scope`]).
    pub fn scope_circle(&self, asked: Option<String>) -> Result<Option<String>, Error> {
        read_scope(self, asked)
    }
}

/// What a caller wants to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read a circle's lists: peers, jobs, schedules, personas, events, the
    /// orchestrator's status.
    ReadCircle,
    /// Read one object (a job, a schedule, a trace) of the target circle.
    ReadObject,
    /// Anything done as a peer: send, ask, answer, claim, heartbeat.
    ActAsPeer,
    /// Register a peer (or resume with a peer token); never as `--as`.
    Register,
    /// Ask which route a job would take (nothing is carried out).
    DispatchDryRun,
    /// Dispatch a job: its owner, the orchestrator, or the admin.
    Dispatch,
    /// Choose or clear a circle's persona, or read its status.
    ManagePersona,
    /// Read a circle's persona status.
    ReadPersona,
    /// Name a check-in script by file path (it runs with the daemon's
    /// rights): the admin only.
    NameScriptFile,
    /// Reach across circles (`--cross-circle`): the admin only.
    BypassCircle,
    /// Prune peers, remove another peer, doctor, shutdown.
    Administer,
    /// Read an ask: its asker or its recipient (the admin reads any).
    ReadAsk,
    /// Pick up, ack, answer or decline an ask: its recipient.
    AnswerAsk,
    /// Cancel an ask: its asker.
    CancelAsk,
    /// Start an agent session in a tmux window for a new peer of the
    /// circle, or kill one: the circle's orchestrator, or the admin (any
    /// circle).
    Spawn,
    /// Name the command a spawned session runs (anything, with the daemon
    /// user's rights): the admin only; others choose among the configured
    /// backends.
    SpawnCommand,
    /// Retry or update a job, pause, resume or delete a schedule, move,
    /// re-open or close a review: one of its `managers` (by name) or
    /// `parties` (by peer id), in its circle, the circle's orchestrator, or
    /// the admin. The admin acting as a peer is that peer here.
    Manage,
    /// What only the object's `parties` may do, in its circle (mark a
    /// review: its reviewers), as a peer; not even the orchestrator.
    ActAsParty,
    /// Answer an earlier ask with a new one (`reply_to`): its asker or its
    /// recipient, as a peer.
    ReplyToAsk,
    /// Read an ask-many's result: its asker (the admin reads any).
    ReadAskGroup,
}

/// What an action is on: the circle it lives in (None: no particular
/// circle, e.g. an admin read of all circles) and, where the rule needs it,
/// the owner's name or an ask's two parties (peer ids).
#[derive(Debug, Clone, Copy, Default)]
pub struct Target<'a> {
    pub circle: Option<&'a str>,
    pub owner: Option<&'a str>,
    pub asker: Option<&'a str>,
    pub recipient: Option<&'a str>,
    /// Who may manage it beside the orchestrator (peer names).
    pub managers: &'a [&'a str],
    /// Who may act on it by peer id ([`Action::Manage`] beside the
    /// managers, [`Action::ActAsParty`] alone).
    pub parties: &'a [&'a str],
    /// Those allowed, as a refusal names them ("the assignee, owner or
    /// creator of job j-…"); the managers' names when not given.
    pub who: Option<&'a str>,
}

impl<'a> Target<'a> {
    /// Something in `circle`.
    pub fn circle(circle: &'a str) -> Self {
        Self {
            circle: Some(circle),
            ..Self::default()
        }
    }

    /// Nothing in particular (admin-wide actions, or the caller's own).
    pub fn none() -> Self {
        Self::default()
    }
}

/// May `caller` do `action` on `target`? The refusal is the error to return:
/// `identity_required`, `cross_circle`, `forbidden` or `bad_request`.
pub fn authorize(caller: &Caller, action: Action, target: Target<'_>) -> Result<(), Error> {
    // Asks (which can cross circles: an admin bypass) and managed objects
    // (where the admin's --as peer counts) check their circle themselves.
    let own_circle_rule = matches!(
        action,
        Action::ReadAsk
            | Action::AnswerAsk
            | Action::CancelAsk
            | Action::ReplyToAsk
            | Action::ReadAskGroup
            | Action::Manage
            | Action::ActAsParty
    );
    if let (false, Some(me), Some(circle)) = (own_circle_rule, caller.viewer(), target.circle)
        && me.circle != circle
    {
        let what = match action {
            Action::ReadCircle => "read",
            Action::ManagePersona | Action::ReadPersona => "manage",
            _ => "act in",
        };
        return Err(Error::new(
            ErrorCode::CrossCircle,
            format!(
                "{} may only {what} its own circle {:?}, not {circle:?}",
                me.name, me.circle
            ),
        ));
    }
    match action {
        Action::ReadCircle | Action::ReadObject | Action::ReadPersona | Action::DispatchDryRun => {
            Ok(())
        }
        Action::ActAsPeer => caller.me().map(|_| ()),
        Action::Register => match caller {
            Caller::AdminAs(_) => Err(Error::bad_request(
                "register with the plain admin token, not --as",
            )),
            _ => Ok(()),
        },
        Action::Dispatch => match caller.viewer() {
            Some(me) if me.role != Role::Orchestrator && Some(me.name.as_str()) != target.owner => {
                Err(Error::forbidden(
                    "only the orchestrator, the job's owner or the admin dispatches a job",
                ))
            }
            _ => Ok(()),
        },
        Action::Spawn => orchestrator_only(caller, "start or stop agent sessions"),
        Action::SpawnCommand => admin_only(
            caller,
            "only the admin token may name the command a spawned session runs; choose a configured --backend",
        ),
        Action::ManagePersona => orchestrator_only(caller, "change the persona"),
        Action::NameScriptFile => admin_only(
            caller,
            "a check-in script file may only be named with the admin token; peers name personas",
        ),
        Action::BypassCircle => {
            admin_only(caller, "only the admin token may bypass circle isolation")
        }
        Action::Administer => admin_only(caller, "this needs the admin token"),
        Action::ReadAsk
        | Action::AnswerAsk
        | Action::CancelAsk
        | Action::ReplyToAsk
        | Action::ReadAskGroup => ask_party(caller, action, target),
        Action::Manage => manage(caller, target),
        Action::ActAsParty => party(caller, target),
    }
}

/// The ask rules: its parties come first; an outsider is `cross_circle` when it is in another
/// circle than the ask, else `forbidden`.
fn ask_party(caller: &Caller, action: Action, target: Target<'_>) -> Result<(), Error> {
    let (who, may, role) = match action {
        Action::ReadAsk => match caller.viewer() {
            Some(me) => (me, [target.asker, target.recipient], "asker or recipient"),
            None => return Ok(()),
        },
        Action::ReadAskGroup => match caller.viewer() {
            Some(me) => (me, [target.asker, None], "asker"),
            None => return Ok(()),
        },
        Action::AnswerAsk => (caller.me()?, [target.recipient, None], "recipient"),
        Action::ReplyToAsk => (
            caller.me()?,
            [target.asker, target.recipient],
            "asker or recipient",
        ),
        _ => (caller.me()?, [target.asker, None], "asker"),
    };
    if may.contains(&Some(who.id.as_str())) {
        return Ok(());
    }
    let party = [target.asker, target.recipient].contains(&Some(who.id.as_str()));
    if !party && target.circle.is_some_and(|c| c != who.circle) {
        return Err(Error::new(
            ErrorCode::CrossCircle,
            format!(
                "the ask belongs to circle {:?}, and {} is in circle {:?}",
                target.circle.unwrap_or_default(),
                who.name,
                who.circle
            ),
        ));
    }
    Err(Error::forbidden(format!(
        "only the {role} of the ask may do that, and {} is not",
        who.name
    )))
}

/// [`Action::Manage`]: the acting peer (also the admin's `--as` peer) must
/// be in the object's circle, and a manager of it or the orchestrator.
fn manage(caller: &Caller, target: Target<'_>) -> Result<(), Error> {
    let me = match caller {
        Caller::Admin => return Ok(()),
        Caller::AdminAs(p) | Caller::Peer(p) => p,
    };
    in_circle(me, target)?;
    if me.role == Role::Orchestrator
        || target.managers.contains(&me.name.as_str())
        || target.parties.contains(&me.id.as_str())
    {
        return Ok(());
    }
    let managers = target.managers.join(", ");
    Err(Error::forbidden(format!(
        "{} may not: only {} or the circle's orchestrator may",
        me.name,
        target.who.unwrap_or(&managers)
    )))
}

/// [`Action::ActAsParty`]: the acting peer is one of the object's parties.
fn party(caller: &Caller, target: Target<'_>) -> Result<(), Error> {
    let me = caller.me()?;
    in_circle(me, target)?;
    if target.parties.contains(&me.id.as_str()) {
        return Ok(());
    }
    Err(Error::forbidden(format!(
        "{} is not {}",
        me.name,
        target.who.unwrap_or("a party to it")
    )))
}

/// The acting peer is in the target's circle, or `cross_circle`.
fn in_circle(me: &Peer, target: Target<'_>) -> Result<(), Error> {
    let circle = target.circle.unwrap_or_default();
    if me.circle == circle {
        return Ok(());
    }
    Err(Error::new(
        ErrorCode::CrossCircle,
        format!(
            "it belongs to circle {circle:?}, and {} is in circle {:?}",
            me.name, me.circle
        ),
    ))
}

/// The circle's orchestrator (or the admin) only: a peer viewing as
/// itself that is not its orchestrator may not `what`.
fn orchestrator_only(caller: &Caller, what: &str) -> Result<(), Error> {
    match caller.viewer() {
        Some(p) if p.role != Role::Orchestrator => Err(Error::forbidden(format!(
            "{} is not the orchestrator of {:?}; only it (or the admin) may {what}",
            p.name, p.circle
        ))),
        _ => Ok(()),
    }
}

fn admin_only(caller: &Caller, why: &str) -> Result<(), Error> {
    if caller.is_admin() {
        Ok(())
    } else {
        Err(Error::forbidden(why))
    }
}

/// The circle a read is limited to: a peer token reads only its own (asking
/// for another is `cross_circle`); the admin reads the one asked for, or
/// all (`None`).
pub fn read_scope(caller: &Caller, asked: Option<String>) -> Result<Option<String>, Error> {
    authorize(
        caller,
        Action::ReadCircle,
        Target {
            circle: asked.as_deref(),
            ..Target::default()
        },
    )?;
    Ok(match caller.viewer() {
        Some(me) => Some(me.circle.clone()),
        None => asked,
    })
}

/// Whether a request may cross circles: it asks to, and may.
pub fn bypass(caller: &Caller, asked: bool) -> Result<bool, Error> {
    if asked {
        authorize(caller, Action::BypassCircle, Target::none())?;
    }
    Ok(asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::PeerId;
    use crate::peer::Status;

    fn peer(name: &str, circle: &str, role: Role) -> Peer {
        Peer {
            id: PeerId::trusted(format!("peer-{name}-{circle}")),
            name: name.into(),
            circle: circle.into(),
            role,
            backend: String::new(),
            project_path: String::new(),
            tags: Vec::new(),
            description: String::new(),
            status: Status::Online,
            route: String::new(),
            created_ms: 0,
            last_seen_ms: 0,
        }
    }

    /// The whole policy as one table: caller kind × circle × action →
    /// allowed, or the exact error code. Targets live in circle `a` and are
    /// owned by `owen` of `a`.
    #[test]
    fn the_policy_table() {
        use Action::*;
        use ErrorCode::{BadRequest, CrossCircle, Forbidden, IdentityRequired};
        let callers = [
            ("admin", Caller::Admin),
            (
                "admin --as a peer",
                Caller::AdminAs(peer("wes", "a", Role::Agent).into()),
            ),
            ("peer", Caller::Peer(peer("wes", "a", Role::Agent).into())),
            ("owner", Caller::Peer(peer("owen", "a", Role::Agent).into())),
            (
                "orchestrator",
                Caller::Peer(peer("olga", "a", Role::Orchestrator).into()),
            ),
            (
                "other circle's peer",
                Caller::Peer(peer("wes", "b", Role::Agent).into()),
            ),
            (
                "other circle's orchestrator",
                Caller::Peer(peer("olga", "b", Role::Orchestrator).into()),
            ),
            (
                "other circle's owner namesake",
                Caller::Peer(peer("owen", "b", Role::Agent).into()),
            ),
        ];
        const OK: Option<ErrorCode> = None;
        const X: Option<ErrorCode> = Some(CrossCircle);
        const F: Option<ErrorCode> = Some(Forbidden);
        // Columns follow `callers`: admin, as, peer, owner, orch, other peer,
        // other orch, other owner namesake.
        #[rustfmt::skip]
        let table: [(Action, [Option<ErrorCode>; 8]); 20] = [
            (ReadCircle,     [OK, OK, OK, OK, OK, X, X, X]),
            (ReadObject,     [OK, OK, OK, OK, OK, X, X, X]),
            (ReadPersona,    [OK, OK, OK, OK, OK, X, X, X]),
            (DispatchDryRun, [OK, OK, OK, OK, OK, X, X, X]),
            (Dispatch,       [OK, OK, F,  OK, OK, X, X, X]),
            (ManagePersona,  [OK, OK, F,  F,  OK, X, X, X]),
            (Spawn,          [OK, OK, F,  F,  OK, X, X, X]),
            (SpawnCommand,   [OK, OK, F,  F,  F,  X, X, X]),
            (ActAsPeer,      [Some(IdentityRequired), OK, OK, OK, OK, X, X, X]),
            (Register,       [OK, Some(BadRequest), OK, OK, OK, X, X, X]),
            (NameScriptFile, [OK, OK, F,  F,  F,  X, X, X]),
            (BypassCircle,   [OK, OK, F,  F,  F,  X, X, X]),
            (Administer,     [OK, OK, F,  F,  F,  X, X, X]),
            // The ask is from owen@a to wes@a; the other circle's peers are
            // strangers to it (an ask reached across only by an admin).
            (ReadAsk,        [OK, OK, OK, OK, F,  X, X, X]),
            (AnswerAsk,      [Some(IdentityRequired), OK, OK, F, F, X, X, X]),
            (CancelAsk,      [Some(IdentityRequired), F, F, OK, F, X, X, X]),
            (ReplyToAsk,     [Some(IdentityRequired), OK, OK, OK, F, X, X, X]),
            (ReadAskGroup,   [OK, OK, F,  OK, F,  X, X, X]),
            // Managers by name (owen), parties by id (owen@a's): owen@b
            // shares the name, not the id, nor the circle.
            (Manage,         [OK, F,  F,  OK, OK, X, X, X]),
            (ActAsParty,     [Some(IdentityRequired), F, F, OK, F, X, X, X]),
        ];
        let target = Target {
            circle: Some("a"),
            owner: Some("owen"),
            asker: Some("peer-owen-a"),
            recipient: Some("peer-wes-a"),
            managers: &["owen"],
            parties: &["peer-owen-a"],
            who: None,
        };
        let mut wrong = Vec::new();
        for (action, row) in table {
            for ((who, caller), want) in callers.iter().zip(row) {
                let got = authorize(caller, action, target).err().map(|e| e.code);
                if got != want {
                    wrong.push(format!("{who} × {action:?}: want {want:?}, got {got:?}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    /// A job's assignee or creator may update it by its peer id, in its
    /// circle only; the refusal names who may.
    #[test]
    fn manage_by_party_id() {
        let wes = Caller::Peer(peer("wes", "a", Role::Agent).into());
        let ida = Caller::Peer(peer("ida", "a", Role::Agent).into());
        let wes_b = Caller::Peer(peer("wes", "b", Role::Agent).into());
        let job = Target {
            circle: Some("a"),
            parties: &["peer-wes-a"],
            who: Some("the assignee, owner or creator of job j-1"),
            ..Target::default()
        };
        assert!(authorize(&wes, Action::Manage, job).is_ok());
        let no = authorize(&ida, Action::Manage, job).unwrap_err();
        assert_eq!(no.code, ErrorCode::Forbidden);
        assert_eq!(
            no.message,
            "ida may not: only the assignee, owner or creator of job j-1 or the circle's orchestrator may"
        );
        assert_eq!(
            authorize(&wes_b, Action::Manage, job).unwrap_err().code,
            ErrorCode::CrossCircle
        );
    }

    /// Without a target circle (the caller's own, or all), only the caller
    /// kind counts; a peer's reads are scoped to its circle.
    #[test]
    fn scopes_and_bypass() {
        let admin = Caller::Admin;
        let wes = Caller::Peer(peer("wes", "a", Role::Agent).into());
        assert_eq!(read_scope(&admin, None).unwrap(), None);
        assert_eq!(
            read_scope(&admin, Some("b".into())).unwrap().as_deref(),
            Some("b")
        );
        assert_eq!(read_scope(&wes, None).unwrap().as_deref(), Some("a"));
        assert_eq!(
            read_scope(&wes, Some("a".into())).unwrap().as_deref(),
            Some("a")
        );
        assert_eq!(
            read_scope(&wes, Some("b".into())).unwrap_err().code,
            ErrorCode::CrossCircle
        );
        assert!(bypass(&admin, true).unwrap());
        assert!(!bypass(&wes, false).unwrap());
        assert_eq!(bypass(&wes, true).unwrap_err().code, ErrorCode::Forbidden);
    }
}
