//! `peer notify`, `broadcast` and `inbox`.

use super::super::{CmdResult, Ctx, text_arg};
use crate::api::*;
use crate::client::Client;
use clap::Args;

#[derive(Debug, Args)]
pub struct NotifyArgs {
    to: String,
    /// The message (`-` reads stdin).
    text: String,
    #[arg(long)]
    circle: Option<String>,
    #[arg(long)]
    cross_circle: bool,
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// The message (`-` reads stdin).
    text: String,
    /// Admin only (with --cross-circle): broadcast to another circle.
    #[arg(long)]
    circle: Option<String>,
    /// Admin only: allow a circle other than yours.
    #[arg(long)]
    cross_circle: bool,
}

#[derive(Debug, Args)]
pub struct InboxArgs {
    /// Keep waiting for new deliveries (Ctrl-C to stop).
    #[arg(long)]
    follow: bool,
    /// Show without taking or confirming anything.
    #[arg(long, conflicts_with = "follow")]
    peek: bool,
    /// Take at most N (default: everything pending; with --peek, 1000).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    limit: Option<u32>,
}

pub(super) async fn notify(ctx: &Ctx, c: &Client, a: NotifyArgs) -> CmdResult {
    let req = NotifyReq {
        to: a.to,
        circle: a.circle,
        text: text_arg(a.text)?,
        bypass_circle: a.cross_circle,
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
    Ok(())
}

pub(super) async fn broadcast(ctx: &Ctx, c: &Client, a: BroadcastArgs) -> CmdResult {
    let req = BroadcastReq {
        text: text_arg(a.text)?,
        circle: a.circle,
        bypass_circle: a.cross_circle,
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
    Ok(())
}

pub(super) async fn inbox(ctx: &Ctx, c: &Client, a: InboxArgs) -> CmdResult {
    super::super::inbox::inbox(ctx, c, a.follow, a.peek, a.limit).await
}

/// One delivery, whole: its text for people (control characters escaped,
/// as everywhere), the delivery as JSON with `--json` (exact).
pub(super) async fn delivery(ctx: &Ctx, c: &Client, id: &str) -> CmdResult {
    let d = c.delivery(id).await?;
    ctx.out(&d, |d| d.text.clone());
    Ok(())
}
