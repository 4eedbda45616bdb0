//! Deliveries: durable messages to one peer, handed out under a lease and
//! marked delivered only when the consumer confirms (at-least-once); and
//! the delivery routes that carry them to an agent ([`Route`], registered in
//! [`DeliveryRoute`]), each declaring what it can promise.

use super::error::{Error, Result};
use super::peer::str_enum;

mod record;
pub use record::{Broadcasted, Delivery, NewBroadcast, NewNotify, Notified};

str_enum!(
    /// What a delivery carries.
    DeliveryKind {
        Ask => "ask",
        Reply => "reply",
        Notify => "notify",
        Broadcast => "broadcast",
        Reminder => "reminder",
        System => "system",
    }
);

str_enum!(
    /// Where a delivery is. `leased` with an expired lease counts as pending.
    DeliveryState {
        Pending => "pending",
        Leased => "leased",
        Delivered => "delivered",
        Dropped => "dropped",
    }
);

/// Whether a delivery can be handed out now.
pub fn is_available(state: DeliveryState, lease_until_ms: Option<i64>, now_ms: i64) -> bool {
    match state {
        DeliveryState::Pending => true,
        DeliveryState::Leased => lease_until_ms.is_none_or(|t| t <= now_ms),
        DeliveryState::Delivered | DeliveryState::Dropped => false,
    }
}

// ---------------------------------------------------------------------------
// Delivery routes: how a delivery reaches the agent, and what each can promise.
// docs/delivery-routes.md says how a new route (hooks, tmux) plugs in.

str_enum!(
    /// The registry of delivery routes: every way a delivery can reach an
    /// agent, by name. [`DeliveryRoute::route`] gives each one's [`Route`]
    /// (its promises); a peer records the name of the one that reaches it
    /// (`repowire peer register --route`), if that route is
    /// [recordable](Route::recordable).
    DeliveryRoute {
        Pull => "pull",
        Stream => "stream",
        Channel => "channel",
        Hook => "hook",
        Tmux => "tmux",
    }
);

/// How a delivery reaches a session, declared by what the route can
/// promise. Callers decide by these answers, never by a route's name: the
/// code that hands out, confirms or schedules a delivery asks the route.
///
/// Every route hands deliveries out under a lease (at least once); the
/// promises say what happens between the lease and the agent's eyes.
pub trait Route: Sync {
    /// Its name in the registry.
    fn name(&self) -> DeliveryRoute;

    /// Does the route mark what it carried `delivered` by itself? A route
    /// that does not leaves the confirmation to whatever does put the
    /// delivery in front of the agent (its own `inbox`, a consumer's
    /// `POST /v1/inbox/confirm`); until then the lease runs out and the
    /// delivery is handed out again.
    fn confirms(&self) -> bool;

    /// Does the route know the agent has the delivery in front of it (the
    /// agent took it, or the client showed it)? Otherwise it only hints:
    /// the agent may or may not see it.
    fn knows_seen(&self) -> bool;

    /// May the route deliver while the agent is busy (mid-turn, mid-output)?
    /// A route that may not waits for the peer to be idle.
    fn safe_while_busy(&self) -> bool;

    /// Does the agent have to ask (poll its inbox) for anything to arrive?
    fn needs_poll(&self) -> bool;

    /// Is handing out a delivery on this route a sign that the peer lives
    /// (so it refreshes the peer's heartbeat)? An agent that calls in is
    /// alive; an open socket proves nothing.
    fn signals_life(&self) -> bool;

    /// May a peer record it as the route that reaches it? A transport that
    /// only feeds another route (the stream feeds channel push) is not.
    fn recordable(&self) -> bool;

    /// Whether what the route confirms is known to be in front of the
    /// agent: a route that confirms must also know it was seen, or a
    /// delivery can be confirmed and never seen.
    fn confirms_only_seen(&self) -> bool {
        !self.confirms() || self.knows_seen()
    }

    /// Does the route hand out again a delivery a channel push already sent
    /// into the session (unconfirmed, marked `pushed`)? Only a route that
    /// knows the agent saw it: another hint adds nothing (and the stream
    /// would push it again every time its lease ran out), while the
    /// agent's inbox or a hook puts it in front of the agent.
    fn takes_pushed(&self) -> bool {
        self.knows_seen()
    }
}

/// Pull: the agent takes its inbox (the `inbox` tool, `repowire inbox`,
/// `POST /v1/inbox/lease`, long-polling with `wait_ms`). Taking is seeing:
/// what the agent took is confirmed.
pub struct Pull;

impl Route for Pull {
    fn name(&self) -> DeliveryRoute {
        DeliveryRoute::Pull
    }
    fn confirms(&self) -> bool {
        true
    }
    fn knows_seen(&self) -> bool {
        true
    }
    fn safe_while_busy(&self) -> bool {
        true // the agent asks when it is ready
    }
    fn needs_poll(&self) -> bool {
        true
    }
    fn signals_life(&self) -> bool {
        true
    }
    fn recordable(&self) -> bool {
        true
    }
}

/// Stream: the daemon sends the peer's deliveries as server-sent events
/// (`GET /v1/inbox/stream`), leasing each as it sends it, to a program
/// holding the peer's token, which confirms what it passed on. It knows
/// only that the program read it; an open stream is no sign of life.
pub struct Stream;

impl Route for Stream {
    fn name(&self) -> DeliveryRoute {
        DeliveryRoute::Stream
    }
    fn confirms(&self) -> bool {
        false // its consumer does (POST /v1/inbox/confirm)
    }
    fn knows_seen(&self) -> bool {
        false
    }
    fn safe_while_busy(&self) -> bool {
        true
    }
    fn needs_poll(&self) -> bool {
        false
    }
    fn signals_life(&self) -> bool {
        false
    }
    fn recordable(&self) -> bool {
        false // it feeds channel push (or a script), it reaches no agent
    }
}

/// Channel push: the `repowire mcp` session follows the stream and sends
/// each delivery into the session as a Claude Code channel event
/// (`notifications/claude/channel`), then records it as pushed
/// (`POST /v1/inbox/pushed`), which ends the stream's lease. The server
/// cannot tell whether the client shows channel events (Claude Code listens
/// only when the session was started with channels enabled), so it only
/// hints and never confirms: the agent's inbox or a hook does.
pub struct Channel;

impl Route for Channel {
    fn name(&self) -> DeliveryRoute {
        DeliveryRoute::Channel
    }
    fn confirms(&self) -> bool {
        false // a hint: what puts it in front of the agent confirms it
    }
    fn knows_seen(&self) -> bool {
        false
    }
    fn safe_while_busy(&self) -> bool {
        true // a notification: the client decides when to show it
    }
    fn needs_poll(&self) -> bool {
        false
    }
    fn signals_life(&self) -> bool {
        false // it rides the stream; the session heartbeats on its own
    }
    fn recordable(&self) -> bool {
        true
    }
}

/// Hook: `repowire hook <event>`, run by the client (Claude Code, Codex) at
/// its own events, leases the peer's deliveries (`POST /v1/inbox/lease`
/// with `"route": "hook"`), prints them, and the client injects the output
/// into the session as context; the hook then confirms what it printed.
pub struct Hook;

impl Route for Hook {
    fn name(&self) -> DeliveryRoute {
        DeliveryRoute::Hook
    }
    fn confirms(&self) -> bool {
        true // after it printed (POST /v1/inbox/confirm)
    }
    fn knows_seen(&self) -> bool {
        true // the client injects what it printed
    }
    fn safe_while_busy(&self) -> bool {
        true // the client runs it at turn boundaries
    }
    fn needs_poll(&self) -> bool {
        false // the client's events drive it
    }
    fn signals_life(&self) -> bool {
        true // the client called in
    }
    fn recordable(&self) -> bool {
        true
    }
}

/// Tmux: the daemon types each delivery into the agent's tmux pane
/// (`send-keys -l`, then Enter) when the agent is idle, and confirms it once
/// tmux took the keys: what is typed into the pane is in front of the agent.
/// Recorded with its address, `tmux:<server>:<pane>` ([`crate::tmux`]).
pub struct Tmux;

impl Route for Tmux {
    fn name(&self) -> DeliveryRoute {
        DeliveryRoute::Tmux
    }
    fn confirms(&self) -> bool {
        true // after tmux succeeded
    }
    fn knows_seen(&self) -> bool {
        true // typed into the agent's own input
    }
    fn safe_while_busy(&self) -> bool {
        false // typing mid-turn would land in the agent's output: waits for idle
    }
    fn needs_poll(&self) -> bool {
        false
    }
    fn signals_life(&self) -> bool {
        false // the daemon types; the agent did not call in
    }
    fn recordable(&self) -> bool {
        true
    }
}

impl DeliveryRoute {
    /// The route of this name (the registry's one lookup).
    pub fn route(self) -> &'static dyn Route {
        match self {
            DeliveryRoute::Pull => &Pull,
            DeliveryRoute::Stream => &Stream,
            DeliveryRoute::Channel => &Channel,
            DeliveryRoute::Hook => &Hook,
            DeliveryRoute::Tmux => &Tmux,
        }
    }

    /// Parse the route a lease (`POST /v1/inbox/lease`) says it carries
    /// (default pull): a route whose carrier takes the inbox by asking,
    /// pull or hook. The stream leases by itself; channel push rides it.
    pub fn for_lease(r: Option<Self>) -> Result<Self> {
        match r.unwrap_or(DeliveryRoute::Pull) {
            r @ (DeliveryRoute::Pull | DeliveryRoute::Hook) => Ok(r),
            other => Err(Error::bad_request(format!(
                "a lease is carried by route \"pull\" or \"hook\", not {:?} (the stream leases by itself: GET /v1/inbox/stream)",
                other.as_str()
            ))),
        }
    }

    /// The routes a peer may record, in registry order.
    pub fn recordable() -> impl Iterator<Item = DeliveryRoute> {
        Self::ALL.iter().copied().filter(|r| r.route().recordable())
    }

    /// Whether the route is recorded with an address (`name:address`).
    pub fn has_address(self) -> bool {
        self == DeliveryRoute::Tmux
    }

    /// Parse a route a peer records (`--route`, `RegisterReq.route`): a
    /// recordable route's name, and for a route with an address
    /// (`tmux:<server>:<pane>`) the checked address after the first `:`.
    pub fn parse_recordable(s: &str) -> Result<Self> {
        let (name, addressed) = match s.split_once(':') {
            Some((n, _)) => (n, true),
            None => (s, false),
        };
        match Self::parse(name) {
            Ok(r) if r.route().recordable() && r.has_address() => {
                if !addressed {
                    return Err(Error::bad_request(format!(
                        "the {r} route names its pane: {r}:<server>:<pane> (what $TMUX and $TMUX_PANE say inside tmux)"
                    )));
                }
                crate::tmux::PaneAddr::parse(s).map(|_| r)
            }
            Ok(r) if r.route().recordable() && !addressed => Ok(r),
            _ => {
                let names: Vec<String> = Self::recordable()
                    .map(|r| match r.has_address() {
                        true => format!("\"{r}:<server>:<pane>\""),
                        false => format!("{:?}", r.as_str()),
                    })
                    .collect();
                Err(Error::bad_request(format!(
                    "unsupported delivery route {s:?}: {}",
                    names.join(" or ")
                )))
            }
        }
    }
}

/// A name answers for its route, so `DeliveryRoute::Pull.confirms()` reads
/// as it should.
impl Route for DeliveryRoute {
    fn name(&self) -> DeliveryRoute {
        *self
    }
    fn confirms(&self) -> bool {
        self.route().confirms()
    }
    fn knows_seen(&self) -> bool {
        self.route().knows_seen()
    }
    fn safe_while_busy(&self) -> bool {
        self.route().safe_while_busy()
    }
    fn needs_poll(&self) -> bool {
        self.route().needs_poll()
    }
    fn signals_life(&self) -> bool {
        self.route().signals_life()
    }
    fn recordable(&self) -> bool {
        self.route().recordable()
    }
    fn takes_pushed(&self) -> bool {
        self.route().takes_pushed()
    }
}

str_enum!(
    /// How a session (`repowire mcp --delivery`) wants to be reached.
    /// `push`: channel push (a hint, never confirmed), and the `inbox` tool.
    /// `pull`: the `inbox` tool only. `auto`: channel push when the client
    /// says it reads channel events, else pull.
    DeliveryMode {
        Push => "push",
        Pull => "pull",
        Auto => "auto",
    }
);

impl DeliveryMode {
    /// The route the session registers with: known up front, except for
    /// `auto` (it follows the client's hello; `None` keeps what a resumed
    /// peer had).
    pub fn fixed(self) -> Option<DeliveryRoute> {
        match self {
            DeliveryMode::Push => Some(DeliveryRoute::Channel),
            DeliveryMode::Pull => Some(DeliveryRoute::Pull),
            DeliveryMode::Auto => None,
        }
    }

    /// The route that reaches the session, given whether the client said
    /// it reads channel events (`None`: it said nothing new, so `before`
    /// stands).
    pub fn route(self, reads_channels: Option<bool>, before: DeliveryRoute) -> DeliveryRoute {
        match (self.fixed(), reads_channels) {
            (Some(r), _) => r,
            (None, Some(true)) => DeliveryRoute::Channel,
            (None, Some(false)) => DeliveryRoute::Pull,
            (None, None) => before,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability() {
        assert!(is_available(DeliveryState::Pending, None, 0));
        assert!(!is_available(DeliveryState::Leased, Some(10), 5));
        assert!(is_available(DeliveryState::Leased, Some(10), 10));
        assert!(!is_available(DeliveryState::Delivered, None, 0));
        assert_eq!(DeliveryKind::parse("reply").unwrap(), DeliveryKind::Reply);
    }

    /// Each route's promises, one row per route of the registry. A new
    /// route adds its row; changing a promise changes its row here.
    #[test]
    fn what_each_route_promises() {
        // route, confirms, knows_seen, safe_while_busy, needs_poll, signals_life, recordable
        type Row = (DeliveryRoute, bool, bool, bool, bool, bool, bool);
        let table: &[Row] = &[
            (DeliveryRoute::Pull, true, true, true, true, true, true),
            (
                DeliveryRoute::Stream,
                false,
                false,
                true,
                false,
                false,
                false,
            ),
            (
                DeliveryRoute::Channel,
                false,
                false,
                true,
                false,
                false,
                true,
            ),
            (DeliveryRoute::Hook, true, true, true, false, true, true),
            (DeliveryRoute::Tmux, true, true, false, false, false, true),
        ];
        assert_eq!(
            table.iter().map(|r| r.0).collect::<Vec<_>>(),
            DeliveryRoute::ALL,
            "one row per registered route"
        );
        for &(name, confirms, seen, busy, poll, life, record) in table {
            let r = name.route();
            assert_eq!(r.name(), name, "the registry hands out {name}'s own route");
            let got = (
                r.confirms(),
                r.knows_seen(),
                r.safe_while_busy(),
                r.needs_poll(),
                r.signals_life(),
                r.recordable(),
            );
            assert_eq!(got, (confirms, seen, busy, poll, life, record), "{name}");
            // The name answers as its route does.
            let by_name = (
                name.confirms(),
                name.knows_seen(),
                name.safe_while_busy(),
                name.needs_poll(),
                name.signals_life(),
                name.recordable(),
            );
            assert_eq!(by_name, got, "{name}");
        }
    }

    /// No route confirms what it cannot know the agent saw (issue 12 made
    /// channel push a hint); the routes that only hint leave the
    /// confirmation to another, and do not hand out again what was already
    /// pushed live, while the routes that know it was seen do.
    #[test]
    fn no_route_confirms_unseen() {
        for r in DeliveryRoute::ALL {
            assert!(
                r.confirms_only_seen(),
                "{r} confirms what it cannot know was seen"
            );
        }
        let hints: Vec<_> = DeliveryRoute::ALL
            .iter()
            .copied()
            .filter(|r| !r.knows_seen())
            .collect();
        assert_eq!(hints, [DeliveryRoute::Stream, DeliveryRoute::Channel]);
        for r in DeliveryRoute::ALL {
            assert_eq!(r.takes_pushed(), !hints.contains(r), "{r}");
            assert!(!hints.contains(r) || !r.confirms(), "{r}");
        }
    }

    /// A lease names the route that carries it: pull (default) or hook.
    #[test]
    fn a_lease_is_carried_by_pull_or_hook() {
        use DeliveryRoute as R;
        assert_eq!(R::for_lease(None).unwrap(), R::Pull);
        assert_eq!(R::for_lease(Some(R::Hook)).unwrap(), R::Hook);
        for bad in [R::Stream, R::Channel] {
            let e = R::for_lease(Some(bad)).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::BadRequest, "{bad}");
            assert!(e.message.contains("\"pull\" or \"hook\""), "{}", e.message);
        }
    }

    #[test]
    fn a_peer_records_only_routes_that_reach_an_agent() {
        assert_eq!(
            DeliveryRoute::recordable().collect::<Vec<_>>(),
            [
                DeliveryRoute::Pull,
                DeliveryRoute::Channel,
                DeliveryRoute::Hook,
                DeliveryRoute::Tmux
            ]
        );
        assert_eq!(
            DeliveryRoute::parse_recordable("tmux:/tmp/tmux-0/default:%3").unwrap(),
            DeliveryRoute::Tmux
        );
        for bad in ["tmux:x", "tmux:/s:3", "pull:x"] {
            let e = DeliveryRoute::parse_recordable(bad).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(
            DeliveryRoute::parse_recordable("channel").unwrap(),
            DeliveryRoute::Channel
        );
        for bad in ["stream", "", "PULL"] {
            let e = DeliveryRoute::parse_recordable(bad).unwrap_err();
            assert_eq!(e.code, crate::error::ErrorCode::BadRequest, "{bad}");
            assert_eq!(
                e.message,
                format!(
                    "unsupported delivery route {bad:?}: \"pull\" or \"channel\" or \"hook\" or \"tmux:<server>:<pane>\""
                )
            );
        }
        let e = DeliveryRoute::parse_recordable("tmux").unwrap_err();
        assert!(e.message.contains("names its pane"), "{}", e.message);
    }

    /// `--delivery`: push and pull are fixed at registration; auto follows
    /// what the client says, and keeps the route when it says nothing.
    #[test]
    fn the_session_mode_picks_the_route() {
        use DeliveryMode::*;
        use DeliveryRoute as R;
        // mode, the client reads channels?, route before, route after
        let table = [
            (Push, None, R::Pull, R::Channel),
            (Push, Some(false), R::Pull, R::Channel),
            (Pull, Some(true), R::Channel, R::Pull),
            (Auto, Some(true), R::Pull, R::Channel),
            (Auto, Some(false), R::Channel, R::Pull),
            (Auto, None, R::Channel, R::Channel),
            (Auto, None, R::Pull, R::Pull),
        ];
        for (mode, reads, before, after) in table {
            assert_eq!(
                mode.route(reads, before),
                after,
                "{mode} {reads:?} {before}"
            );
        }
        assert_eq!(Push.fixed(), Some(R::Channel));
        assert_eq!(Pull.fixed(), Some(R::Pull));
        assert_eq!(Auto.fixed(), None);
        assert_eq!(DeliveryMode::parse("auto").unwrap(), Auto);
        assert!(DeliveryMode::parse("channel").is_err());
    }
}
