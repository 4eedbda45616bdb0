//! `repowire peer …`: identity, listing, roles, asks, notes and the inbox.
//! One function per subcommand: [`who`] (identity, listing, roles),
//! [`asks`] (tracked questions), [`notes`] (notes and the inbox),
//! [`spawn`] (agent sessions in tmux windows).

mod asks;
mod notes;
mod spawn;
mod who;

pub use who::peer_line;

use super::{CmdResult, Ctx, duration_arg};
use crate::core::peer::{Role, Status};
use clap::{Subcommand, ValueEnum};
use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Register a peer (admin token), or resume one (its own REPOWIRE_PEER_TOKEN).
    /// Prints the peer's token once: export it as REPOWIRE_PEER_TOKEN.
    Register(who::RegisterArgs),
    /// List peers (stale ones are marked; ghosts claim to be online but went quiet).
    List {
        /// Only this circle (a peer token always sees its own circle).
        #[arg(long)]
        circle: Option<String>,
    },
    /// Show the peer this invocation acts as.
    Whoami,
    /// Show one peer.
    Describe {
        /// NAME or NAME@CIRCLE.
        name: String,
        #[arg(long)]
        circle: Option<String>,
    },
    /// Set this peer's description (`-` reads stdin).
    SetDescription { text: String },
    /// A sign of life; optionally set the status.
    Heartbeat {
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
    },
    /// Unregister this peer, or (admin) the named one. Its open asks fail.
    Unregister {
        name: Option<String>,
        #[arg(long)]
        circle: Option<String>,
    },
    /// Admin: remove peers not seen for a while (default: the daemon's stale-after), and
    /// without --older-than also offline peers whose tmux pane is gone.
    Prune {
        #[arg(long, value_parser = duration_arg)]
        older_than: Option<Duration>,
        #[arg(long)]
        circle: Option<String>,
    },
    /// Claim a role in this peer's circle (only `orchestrator` is claimable).
    ClaimRole {
        role: ClaimableRole,
        /// Take it even from a live holder (the holder is demoted and told).
        #[arg(long)]
        force: bool,
    },
    /// Give up the orchestrator role.
    ReleaseRole {
        #[arg(default_value = "orchestrator")]
        role: ClaimableRole,
    },
    /// Ask a peer a tracked question; prints its correlation id.
    Ask(asks::AskArgs),
    /// Ask several peers the same question: `ask-many alice bob "text"`.
    AskMany(asks::AskManyArgs),
    /// Who answered an ask-many, and who is still open.
    AskManyResult { parent_id: String },
    /// List this peer's asks, or show one by id.
    Asks(asks::AsksArgs),
    /// Recipient: say you are working on an ask.
    Pickup { id: String },
    /// Recipient: close an ask without an answer text.
    Ack {
        id: String,
        /// A short message delivered to the asker.
        #[arg(long)]
        message: Option<String>,
    },
    /// Recipient: refuse an ask (closes it; the asker gets the reason).
    Decline { id: String, reason: String },
    /// Recipient: answer an ask (closes it; the asker gets the answer).
    Answer {
        id: String,
        /// The answer (`-` reads stdin).
        text: String,
    },
    /// Asker: withdraw an ask.
    Cancel { id: String },
    /// Wait until an ask is closed (or ends otherwise). Exit 4 on timeout.
    Wait {
        id: String,
        #[arg(long, default_value = "600s", value_parser = duration_arg)]
        timeout: Duration,
    },
    /// Send a note to a peer (durable until delivered).
    Notify(notes::NotifyArgs),
    /// Send a note to everyone in your circle but you (rate-limited).
    Broadcast(notes::BroadcastArgs),
    /// Take pending deliveries in order and confirm them once printed.
    Inbox(notes::InboxArgs),
    /// Start an agent session for a new peer in a tmux window (the circle's
    /// orchestrator, or the admin).
    ///
    /// The daemon registers the peer (offline), opens a window named after
    /// it in the tmux session named after the circle, in PATH, and runs the
    /// backend's command there with the peer's identity in its environment
    /// (REPOWIRE_PEER, REPOWIRE_CIRCLE, REPOWIRE_URL, REPOWIRE_HOME, and
    /// REPOWIRE_PEER_TOKEN_FILE: a file only you can read holding its
    /// token). The session joins when it registers with that token
    /// (`repowire peer register`, its hooks, or `repowire mcp`); one that has not within
    /// the daemon's --spawn-timeout is stopped and reported
    /// (peer_spawn_failed). At most --max-spawns-per-circle live at once.
    Spawn(spawn::SpawnArgs),
    /// Stop a peer's session: close its tmux pane (if it has one and it is
    /// still bound to the peer), take it offline and revoke its token. Jobs
    /// it was running go back to the queue.
    Kill {
        /// NAME, NAME@CIRCLE or a peer id.
        name: String,
        #[arg(long)]
        circle: Option<String>,
    },
    /// Print the tmux command that shows a peer's pane: `attach-session`
    /// from outside tmux, `switch-client` from inside the same tmux server.
    /// Run it: `eval "$(repowire peer attach NAME)"`.
    Attach {
        /// NAME or NAME@CIRCLE.
        name: String,
        #[arg(long)]
        circle: Option<String>,
    },
    /// Print one of your deliveries whole, in any state: what a tmux pane
    /// got as a one-line summary names this command. Takes nothing.
    Delivery {
        /// The delivery id (`dl-…`).
        id: String,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ClaimableRole {
    Orchestrator,
}

pub(crate) fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).map_err(|e| e.message)
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).map_err(|e| e.message)
}

impl PeerCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let c = ctx.client();
        match self {
            PeerCmd::Register(a) => who::register(ctx, &c, a).await,
            PeerCmd::List { circle } => who::list(ctx, &c, circle).await,
            PeerCmd::Whoami => who::whoami(ctx, &c).await,
            PeerCmd::Describe { name, circle } => who::describe(ctx, &c, &name, circle).await,
            PeerCmd::SetDescription { text } => who::set_description(ctx, &c, text).await,
            PeerCmd::Heartbeat { status } => who::heartbeat(ctx, &c, status).await,
            PeerCmd::Unregister { name, circle } => who::unregister(ctx, &c, name, circle).await,
            PeerCmd::Prune { older_than, circle } => who::prune(ctx, older_than, circle).await,
            PeerCmd::ClaimRole { role: _, force } => who::claim_role(ctx, &c, force).await,
            PeerCmd::ReleaseRole { role: _ } => who::release_role(ctx, &c).await,
            PeerCmd::Ask(a) => asks::ask(ctx, &c, a).await,
            PeerCmd::AskMany(a) => asks::ask_many(ctx, &c, a).await,
            PeerCmd::AskManyResult { parent_id } => {
                asks::ask_many_result(ctx, &c, &parent_id).await
            }
            PeerCmd::Asks(a) => asks::asks(ctx, &c, a).await,
            PeerCmd::Pickup { id } => asks::pickup(ctx, &c, &id).await,
            PeerCmd::Ack { id, message } => asks::ack(ctx, &c, &id, message).await,
            PeerCmd::Decline { id, reason } => asks::decline(ctx, &c, &id, &reason).await,
            PeerCmd::Answer { id, text } => asks::answer(ctx, &c, &id, text).await,
            PeerCmd::Cancel { id } => asks::cancel(ctx, &c, &id).await,
            PeerCmd::Wait { id, timeout } => super::inbox::wait(ctx, &c, &id, timeout).await,
            PeerCmd::Notify(a) => notes::notify(ctx, &c, a).await,
            PeerCmd::Broadcast(a) => notes::broadcast(ctx, &c, a).await,
            PeerCmd::Inbox(a) => notes::inbox(ctx, &c, a).await,
            PeerCmd::Spawn(a) => spawn::spawn(ctx, &c, a).await,
            PeerCmd::Kill { name, circle } => spawn::kill(ctx, &c, name, circle).await,
            PeerCmd::Attach { name, circle } => spawn::attach(ctx, &c, name, circle).await,
            PeerCmd::Delivery { id } => notes::delivery(ctx, &c, &id).await,
        }
    }
}
