//! `repowire peer …`: identity, listing, roles, asks, notes and the inbox.

use super::{CmdResult, Ctx, Failure, duration_arg, term, text_arg};
use crate::api::*;

use crate::core::peer::{Role, Status};
use crate::core::time::{fmt_age, fmt_ms};
use clap::{Subcommand, ValueEnum};

use std::time::Duration;

#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// Register a peer (admin token), or resume one (its own REPOWIRE_PEER_TOKEN).
    /// Prints the peer's token once: export it as REPOWIRE_PEER_TOKEN.
    Register {
        /// The peer's name, unique in its circle [env: REPOWIRE_PEER].
        name: Option<String>,
        #[arg(long)]
        circle: Option<String>,
        #[arg(long, value_parser = parse_role)]
        role: Option<Role>,
        /// Agent kind: claude-code, codex, gemini, opencode, shell…
        #[arg(long)]
        backend: Option<String>,
        #[arg(long)]
        project_path: Option<String>,
        /// A tag (repeatable).
        #[arg(long = "tag")]
        tags: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Delivery route: `pull` (default) or `channel` (pushed by `repowire mcp`).
        #[arg(long)]
        route: Option<String>,
    },
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
    /// Admin: remove peers not seen for a while (default: the daemon's stale-after).
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
    Ask {
        /// NAME or NAME@CIRCLE.
        to: String,
        /// The question (`-` reads stdin).
        text: String,
        /// The target's circle (default: yours).
        #[arg(long)]
        circle: Option<String>,
        /// Expire the ask after this long (default: the daemon's ask timeout).
        #[arg(long, value_parser = duration_arg)]
        timeout: Option<Duration>,
        /// Admin only: allow a target in another circle.
        #[arg(long)]
        cross_circle: bool,
        /// The correlation id of an ask this one follows up (one you sent or received).
        #[arg(long)]
        reply_to: Option<String>,
    },
    /// Ask several peers the same question: `ask-many alice bob "text"`.
    AskMany {
        /// Peer names, then the question last.
        #[arg(required = true, num_args = 2.., value_name = "NAMES… TEXT")]
        args: Vec<String>,
        #[arg(long)]
        circle: Option<String>,
        #[arg(long, value_parser = duration_arg)]
        timeout: Option<Duration>,
        #[arg(long)]
        cross_circle: bool,
    },
    /// Who answered an ask-many, and who is still open.
    AskManyResult { parent_id: String },
    /// List this peer's asks, or show one by id.
    Asks {
        /// Show this ask.
        id: Option<String>,
        /// Only asks this peer sent.
        #[arg(long, conflicts_with = "received")]
        sent: bool,
        /// Only asks this peer received.
        #[arg(long)]
        received: bool,
        /// Only open asks.
        #[arg(long)]
        open: bool,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
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
    Notify {
        to: String,
        /// The message (`-` reads stdin).
        text: String,
        #[arg(long)]
        circle: Option<String>,
        #[arg(long)]
        cross_circle: bool,
    },
    /// Send a note to everyone in your circle but you (rate-limited).
    Broadcast {
        /// The message (`-` reads stdin).
        text: String,
        /// Admin only (with --cross-circle): broadcast to another circle.
        #[arg(long)]
        circle: Option<String>,
        /// Admin only: allow a circle other than yours.
        #[arg(long)]
        cross_circle: bool,
    },
    /// Take pending deliveries in order and confirm them once printed.
    Inbox {
        /// Keep waiting for new deliveries (Ctrl-C to stop).
        #[arg(long)]
        follow: bool,
        /// Show without taking or confirming anything.
        #[arg(long, conflicts_with = "follow")]
        peek: bool,
        /// Take at most N (default: everything pending; with --peek, 1000).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        limit: Option<u32>,
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

pub fn peer_line(p: &PeerInfo) -> String {
    let mark = if p.ghost {
        " [ghost]"
    } else if p.stale {
        " [stale]"
    } else {
        ""
    };
    format!(
        "{:<20} {:<12} {:<12} {:<8}{mark} seen {:>4} ago  {} {}",
        p.name,
        p.circle,
        p.role.as_str(),
        p.status.as_str(),
        fmt_age(p.last_seen_age_s * 1000),
        term::field(&p.backend),
        term::field(&p.description)
    )
}

fn peer_detail(p: &PeerInfo) -> String {
    format!(
        "name:        {}\ncircle:      {}\npeer id:     {}\nrole:        {}\nstatus:      {}{}\nbackend:     {}\nproject:     {}\ntags:        {}\nroute:       {}\ndescription: {}\nlast seen:   {} ({} ago)",
        p.name,
        p.circle,
        p.peer_id,
        p.role,
        p.status,
        if p.ghost {
            " (ghost: no heartbeat)"
        } else if p.stale {
            " (stale)"
        } else {
            ""
        },
        term::field(&p.backend),
        term::field(&p.project_path),
        term::field(&p.tags.join(", ")),
        p.route,
        term::body(&p.description),
        fmt_ms(p.last_seen_ms),
        fmt_age(p.last_seen_age_s * 1000)
    )
}

pub fn ask_line(a: &AskInfo) -> String {
    let mut s = format!(
        "{}  {:<9} {} -> {}: {}",
        a.correlation_id,
        a.state.as_str(),
        a.from,
        a.to,
        one_line(&a.text)
    );
    if let Some(ans) = &a.answer {
        s.push_str(&format!("\n    answer: {}", one_line(ans)));
    }
    s
}

fn ask_detail(a: &AskInfo) -> String {
    let mut s = format!(
        "correlation id: {}\nstate:          {}\nfrom:           {}\nto:             {} (circle {})\nasked:          {}\nexpires:        {}\nquestion:       {}",
        a.correlation_id,
        a.state,
        a.from,
        a.to,
        a.circle,
        fmt_ms(a.created_at_ms),
        fmt_ms(a.expires_at_ms),
        term::body(&a.text)
    );
    if let Some(p) = &a.parent_id {
        s.push_str(&format!("\nask group:      {p}"));
    }
    if let Some(ans) = &a.answer {
        s.push_str(&format!("\nanswer:         {}", term::body(ans)));
    }
    if let Some(m) = &a.ack_message {
        s.push_str(&format!("\nack message:    {}", term::body(m)));
    }
    s
}

fn one_line(s: &str) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > 100 {
        format!("{}…", flat.chars().take(100).collect::<String>())
    } else {
        flat
    }
}

impl PeerCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let c = ctx.client();
        match self {
            PeerCmd::Register {
                name,
                circle,
                role,
                backend,
                project_path,
                tags,
                description,
                route,
            } => {
                let name = name
                    .or_else(|| {
                        std::env::var("REPOWIRE_PEER")
                            .ok()
                            .filter(|s| !s.is_empty())
                    })
                    .ok_or_else(|| Failure::usage("give a NAME (or set REPOWIRE_PEER)"))?;
                if ctx.as_peer.is_some() {
                    return Err(Failure::usage(
                        "register does not take --as: it uses the admin token, or your own peer token to resume",
                    ));
                }
                let req = RegisterReq {
                    name,
                    circle,
                    role,
                    backend,
                    project_path,
                    tags: (!tags.is_empty()).then_some(tags),
                    description,
                    route,
                };
                let r = c.register(&req).await?;
                ctx.out(&r, |r| {
                    let mut s = format!(
                        "{} {} (circle {}, role {}, id {})",
                        if r.resumed { "resumed" } else { "registered" },
                        r.peer.name,
                        r.peer.circle,
                        r.peer.role,
                        r.peer.peer_id
                    );
                    if let Some(t) = &r.token {
                        s.push_str(&format!(
                            "\nact as this peer with:\n  export REPOWIRE_PEER={}\n  export REPOWIRE_PEER_TOKEN={t}",
                            r.peer.name
                        ));
                    }
                    s
                });
            }
            PeerCmd::List { circle } => {
                let peers = c.list_peers(circle.as_deref()).await?;
                ctx.out(&peers, |ps| {
                    if ps.is_empty() {
                        return "no peers".into();
                    }
                    ps.iter().map(peer_line).collect::<Vec<_>>().join("\n")
                });
            }
            PeerCmd::Whoami => {
                let p = c.whoami().await?;
                ctx.out(&p, peer_detail);
            }
            PeerCmd::Describe { name, circle } => {
                let p = c.describe(&name, circle.as_deref()).await?;
                ctx.out(&p, peer_detail);
            }
            PeerCmd::SetDescription { text } => {
                let req = UpdatePeerReq {
                    description: Some(text_arg(text)?),
                    tags: None,
                };
                let p = c.update_me(&req).await?;
                ctx.out(&p, |p| {
                    format!("{}: {}", p.name, term::body(&p.description))
                });
            }
            PeerCmd::Heartbeat { status } => {
                let p = c.heartbeat(&HeartbeatReq { status }).await?;
                ctx.out(&p, |p| format!("{} is {}", p.name, p.status));
            }
            PeerCmd::Unregister { name, circle } => {
                let p = match name {
                    Some(n) => ctx.admin_client().unregister(&n, circle.as_deref()).await?,
                    None => c.unregister_me().await?,
                };
                ctx.out(&p, |p| {
                    format!("unregistered {} (circle {})", p.name, p.circle)
                });
            }
            PeerCmd::Prune { older_than, circle } => {
                let req = PruneReq {
                    older_than_ms: older_than
                        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                    circle,
                };
                let r = ctx.admin_client().prune(&req).await?;
                ctx.out(&r, |r| {
                    if r.pruned.is_empty() {
                        "nothing to prune".into()
                    } else {
                        r.pruned
                            .iter()
                            .map(|p| {
                                format!(
                                    "pruned {} (circle {}, seen {} ago)",
                                    p.name,
                                    p.circle,
                                    fmt_age(p.last_seen_age_s * 1000)
                                )
                            })
                            .collect::<Vec<_>>()
                            .join("\n")
                    }
                });
            }
            PeerCmd::ClaimRole { role: _, force } => {
                let r = c.claim_orchestrator(force).await?;
                ctx.out(&r, |r| match (&r.previous, &r.takeover) {
                    (Some(p), Some(how)) => format!(
                        "{} is now the orchestrator of {} (took over from {p}: {how})",
                        r.holder.name, r.circle
                    ),
                    _ => format!("{} is now the orchestrator of {}", r.holder.name, r.circle),
                });
            }
            PeerCmd::ReleaseRole { role: _ } => {
                let p = c.release_orchestrator().await?;
                ctx.out(&p, |p| {
                    format!("{} released the orchestrator role of {}", p.name, p.circle)
                });
            }
            PeerCmd::Ask {
                to,
                text,
                circle,
                timeout,
                cross_circle,
                reply_to,
            } => {
                let req = AskReq {
                    to,
                    circle,
                    text: text_arg(text)?,
                    timeout_ms: timeout.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    bypass_circle: cross_circle,
                    reply_to,
                };
                let r = c.ask(&req).await?;
                ctx.out(&r, |r| {
                    let mut s = r.ask.correlation_id.clone();
                    if r.queued_offline {
                        s.push_str(&format!(
                            "\n(queued: {} is offline; it will get the ask when it is back)",
                            r.ask.to
                        ));
                    }
                    s
                });
            }
            PeerCmd::AskMany {
                mut args,
                circle,
                timeout,
                cross_circle,
            } => {
                let text = text_arg(args.pop().unwrap_or_default())?;
                let req = AskManyReq {
                    to: args,
                    circle,
                    text,
                    timeout_ms: timeout.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                    bypass_circle: cross_circle,
                };
                let r = c.ask_many(&req).await?;
                ctx.out(&r, |r| {
                    let mut s = r.parent_id.clone();
                    for a in &r.asks {
                        s.push_str(&format!(
                            "\n  {} -> {}{}",
                            a.ask.correlation_id,
                            a.ask.to,
                            if a.queued_offline {
                                " (queued: offline)"
                            } else {
                                ""
                            }
                        ));
                    }
                    s
                });
            }
            PeerCmd::AskManyResult { parent_id } => {
                let r = c.ask_many_result(&parent_id).await?;
                ctx.out(&r, |r| {
                    let mut s = format!(
                        "{}: {} of {} answered{}",
                        r.parent_id,
                        r.entries.len() - r.open.len(),
                        r.entries.len(),
                        if r.done { " (done)" } else { "" }
                    );
                    for e in &r.entries {
                        s.push_str(&format!(
                            "\n  {:<20} {:<9} {}",
                            e.peer,
                            e.state.as_str(),
                            e.answer.as_deref().map(one_line).unwrap_or_default()
                        ));
                    }
                    s
                });
            }
            PeerCmd::Asks {
                id,
                sent,
                received,
                open,
                limit,
            } => {
                if let Some(id) = id {
                    let a = c.get_ask(&id).await?;
                    ctx.out(&a, ask_detail);
                } else {
                    let dir = if sent {
                        "sent"
                    } else if received {
                        "received"
                    } else {
                        "all"
                    };
                    let asks = c.list_asks(dir, open, limit).await?;
                    ctx.out(&asks, |v| {
                        if v.is_empty() {
                            "no asks".into()
                        } else {
                            v.iter().map(ask_line).collect::<Vec<_>>().join("\n")
                        }
                    });
                }
            }
            PeerCmd::Pickup { id } => {
                let a = c.pickup(&id).await?;
                ctx.out(&a, |a| format!("{} is {}", a.correlation_id, a.state));
            }
            PeerCmd::Ack { id, message } => {
                let a = c.ack(&id, message).await?;
                ctx.out(&a, |a| format!("{} is {}", a.correlation_id, a.state));
            }
            PeerCmd::Decline { id, reason } => {
                let a = c.decline(&id, &reason).await?;
                ctx.out(&a, |a| {
                    format!("{} declined and {}", a.correlation_id, a.state)
                });
            }
            PeerCmd::Answer { id, text } => {
                let a = c.answer(&id, &text_arg(text)?).await?;
                ctx.out(&a, |a| {
                    format!("{} answered and {}", a.correlation_id, a.state)
                });
            }
            PeerCmd::Cancel { id } => {
                let a = c.cancel(&id).await?;
                ctx.out(&a, |a| format!("{} is {}", a.correlation_id, a.state));
            }
            PeerCmd::Wait { id, timeout } => super::inbox::wait(ctx, &c, &id, timeout).await?,
            PeerCmd::Notify {
                to,
                text,
                circle,
                cross_circle,
            } => {
                let req = NotifyReq {
                    to,
                    circle,
                    text: text_arg(text)?,
                    bypass_circle: cross_circle,
                };
                let r = c.notify(&req).await?;
                ctx.out(&r, |r| {
                    format!(
                        "{}{}",
                        r.delivery_id,
                        if r.queued_offline {
                            format!("\n(queued: {} is offline)", r.to)
                        } else {
                            String::new()
                        }
                    )
                });
            }
            PeerCmd::Broadcast {
                text,
                circle,
                cross_circle,
            } => {
                let req = BroadcastReq {
                    text: text_arg(text)?,
                    circle,
                    bypass_circle: cross_circle,
                };
                let r = c.broadcast_to(&req).await?;
                ctx.out(&r, |r| {
                    let mut s = format!("sent to {} peers in {}", r.deliveries.len(), r.circle);
                    if !r.skipped_inbox_full.is_empty() {
                        s.push_str(&format!(
                            "\nskipped (inbox full): {}",
                            r.skipped_inbox_full.join(", ")
                        ));
                    }
                    s
                });
            }
            PeerCmd::Inbox {
                follow,
                peek,
                limit,
            } => super::inbox::inbox(ctx, &c, follow, peek, limit).await?,
        }
        Ok(())
    }
}
