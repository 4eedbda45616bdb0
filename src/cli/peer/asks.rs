//! `peer ask`, `ask-many`, `ask-many-result`, `asks`, and what a recipient
//! or asker does with an ask (`pickup`, `ack`, `decline`, `answer`, `cancel`).

use super::super::{CmdResult, Ctx, Failure, duration_arg, term, text_arg};
use crate::api::*;
use crate::client::Client;
use crate::core::time::fmt_ms;
use clap::Args;
use std::time::Duration;

#[derive(Debug, Args)]
pub struct AskArgs {
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
    /// Wait up to this long for the answer and print it (as `peer wait`,
    /// same exit codes) instead of the ask's id: one request for both (its
    /// first hour), and an answer it returns is not left in the inbox too.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    wait: Option<Duration>,
}

#[derive(Debug, Args)]
pub struct AskManyArgs {
    /// Peer names, then the question last.
    #[arg(required = true, num_args = 2.., value_name = "NAMES… TEXT")]
    args: Vec<String>,
    #[arg(long)]
    circle: Option<String>,
    #[arg(long, value_parser = duration_arg)]
    timeout: Option<Duration>,
    #[arg(long)]
    cross_circle: bool,
}

#[derive(Debug, Args)]
pub struct AsksArgs {
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
}

pub(super) async fn ask(ctx: &Ctx, c: &Client, a: AskArgs) -> CmdResult {
    let req = AskReq {
        to: a.to,
        circle: a.circle,
        text: text_arg(a.text)?,
        timeout_ms: a.timeout.map(ms),
        bypass_circle: a.cross_circle,
        reply_to: a.reply_to,
        wait_ms: a.wait.map(|w| ms(w.min(HOUR))),
    };
    if let Some(wait) = a.wait {
        return ask_and_wait(ctx, c, &req, wait).await;
    }
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
    Ok(())
}

/// The longest one request waits (the daemon's cap); longer waits go on
/// with `peer wait`'s chained long-polls.
const HOUR: Duration = Duration::from_secs(3600);

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `peer ask --wait`: the ask and its first hour of waiting in one request,
/// then (a longer wait, or a daemon that shut down meanwhile) `peer wait`.
async fn ask_and_wait(ctx: &Ctx, c: &Client, req: &AskReq, wait: Duration) -> CmdResult {
    let t0 = std::time::Instant::now();
    // Refused before anything is sent, not after the ask and its wait.
    if t0.checked_add(wait).is_none() {
        return Err(Failure::usage("--wait is too large"));
    }
    let mut r = c.ask(req).await.map_err(|e| {
        // A connection that broke after the request went out (not one
        // refused: then nothing was sent, nor a coded answer: a refusal).
        let maybe_sent = matches!(e, crate::client::ClientError::Other(_));
        let mut f = Failure::from(e);
        if maybe_sent {
            f.message.push_str(
                ". If the daemon went away while waiting, the ask may have been sent: \
                 `repowire peer asks --sent --open` lists it",
            );
        }
        f
    })?;
    let left = wait.saturating_sub(t0.elapsed());
    if r.done == Some(false) && !left.is_zero() {
        let id = &r.ask.correlation_id;
        let w = super::super::inbox::wait_for(ctx, c, id, left)
            .await
            .map_err(|mut f| {
                f.message.push_str(&format!(
                    ". The ask {id} was sent and may still be open: \
                     `repowire peer wait {id}` waits on, `repowire peer asks {id}` shows it"
                ));
                f
            })?;
        (r.ask, r.done) = (w.ask, Some(w.done));
    }
    ctx.out(&r, |r| super::super::inbox::how_it_ended(&r.ask));
    super::super::inbox::ended_with_answer(&r.ask, r.done == Some(true), wait)
}

pub(super) async fn ask_many(ctx: &Ctx, c: &Client, a: AskManyArgs) -> CmdResult {
    let mut args = a.args;
    let text = text_arg(args.pop().unwrap_or_default())?;
    let req = AskManyReq {
        to: args,
        circle: a.circle,
        text,
        timeout_ms: a
            .timeout
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        bypass_circle: a.cross_circle,
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
    Ok(())
}

pub(super) async fn ask_many_result(ctx: &Ctx, c: &Client, parent_id: &str) -> CmdResult {
    let r = c.ask_many_result(parent_id).await?;
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
    Ok(())
}

/// One ask by id, or this peer's asks filtered.
pub(super) async fn asks(ctx: &Ctx, c: &Client, a: AsksArgs) -> CmdResult {
    if let Some(id) = a.id {
        let ask = c.get_ask(&id).await?;
        ctx.out(&ask, ask_detail);
        return Ok(());
    }
    let dir = if a.sent {
        "sent"
    } else if a.received {
        "received"
    } else {
        "all"
    };
    let asks = c.list_asks(dir, a.open, a.limit).await?;
    ctx.out(&asks, |v| {
        if v.is_empty() {
            "no asks".into()
        } else {
            v.iter().map(ask_line).collect::<Vec<_>>().join("\n")
        }
    });
    Ok(())
}

pub(super) async fn pickup(ctx: &Ctx, c: &Client, id: &str) -> CmdResult {
    let a = c.pickup(id).await?;
    ctx.out(&a, |a| format!("{} is {}", a.correlation_id, a.state));
    Ok(())
}

pub(super) async fn ack(ctx: &Ctx, c: &Client, id: &str, message: Option<String>) -> CmdResult {
    let a = c.ack(id, message).await?;
    ctx.out(&a, |a| format!("{} is {}", a.correlation_id, a.state));
    Ok(())
}

pub(super) async fn decline(ctx: &Ctx, c: &Client, id: &str, reason: &str) -> CmdResult {
    let a = c.decline(id, reason).await?;
    ctx.out(&a, |a| {
        format!("{} declined and {}", a.correlation_id, a.state)
    });
    Ok(())
}

pub(super) async fn answer(ctx: &Ctx, c: &Client, id: &str, text: String) -> CmdResult {
    let a = c.answer(id, &text_arg(text)?).await?;
    ctx.out(&a, |a| {
        format!("{} answered and {}", a.correlation_id, a.state)
    });
    Ok(())
}

pub(super) async fn cancel(ctx: &Ctx, c: &Client, id: &str) -> CmdResult {
    let a = c.cancel(id).await?;
    ctx.out(&a, |a| format!("{} is {}", a.correlation_id, a.state));
    Ok(())
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
