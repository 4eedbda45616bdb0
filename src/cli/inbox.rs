//! Consuming deliveries from the CLI: `peer inbox` (lease, print, confirm;
//! `--follow` long-polls and rides out daemon restarts) and `peer wait`.

use super::{CmdResult, Ctx, Failure, term};
use crate::api::{AskInfo, DeliveryInfo, LeaseReq, WaitResp};
use crate::client::{Client, ClientError};
use crate::core::ErrorCode;
use crate::core::ask::AskState;
use crate::core::delivery::DeliveryKind;
use crate::core::time::fmt_ms;
use std::io::Write;
use std::time::Duration;

pub fn delivery_line(d: &DeliveryInfo) -> String {
    let from = d.from.as_deref().unwrap_or("repowire");
    let re = d
        .correlation_id
        .as_deref()
        .map(|c| format!(" [{c}]"))
        .unwrap_or_default();
    let hint = match d.kind {
        DeliveryKind::Ask | DeliveryKind::Reminder => {
            format!(
                "  (answer: repowire peer answer {} TEXT)",
                d.correlation_id.as_deref().unwrap_or("")
            )
        }
        _ => String::new(),
    };
    format!(
        "{} {:<9} from {from}{re}: {}{hint}{}",
        fmt_ms(d.created_at_ms),
        d.kind.as_str(),
        term::body(&d.text),
        pushed_mark(d)
    )
}

/// What a delivery a channel push already sent live says of it: the agent
/// may have seen it as a channel event, and it is still unconfirmed.
pub fn pushed_mark(d: &DeliveryInfo) -> &'static str {
    if d.pushed {
        "  (pushed live earlier, unconfirmed)"
    } else {
        ""
    }
}

pub async fn wait(ctx: &Ctx, c: &Client, id: &str, timeout: Duration) -> CmdResult {
    let r = wait_for(ctx, c, id, timeout).await?;
    ctx.out(&r, |r| how_it_ended(&r.ask));
    ended_with_answer(&r.ask, r.done, timeout)
}

/// Wait for an ask to end, up to `timeout`. The daemon holds one long-poll
/// for at most an hour: chain them, and ride out a daemon restart until our
/// own deadline.
pub async fn wait_for(
    ctx: &Ctx,
    c: &Client,
    id: &str,
    timeout: Duration,
) -> Result<WaitResp, Failure> {
    let deadline = std::time::Instant::now()
        .checked_add(timeout)
        .ok_or_else(|| Failure::usage("--timeout is too large"))?;
    let mut c = c.clone();
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match c.wait(id, left.min(Duration::from_secs(3600))).await {
            Ok(r) if r.done || left <= Duration::from_secs(3600) => return Ok(r),
            Ok(_) => {}
            Err(e)
                if matches!(e, ClientError::Unreachable { .. })
                    || e.code() == Some(crate::core::ErrorCode::ShuttingDown) =>
            {
                if left.is_zero() {
                    return Err(e.into());
                }
                tokio::time::sleep(Duration::from_millis(200).min(left)).await;
                c = ctx.client();
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// An ask at the end of a wait, for a person: its answer, how it closed
/// without one, or its state.
pub fn how_it_ended(a: &AskInfo) -> String {
    match (&a.answer, a.state) {
        (Some(ans), _) => ans.clone(),
        (None, AskState::Closed) => format!(
            "{} closed{}",
            a.correlation_id,
            a.ack_message
                .as_deref()
                .map(|m| format!(": {m}"))
                .unwrap_or_default()
        ),
        (None, st) => format!("{} is {st}", a.correlation_id),
    }
}

/// A wait's outcome as an exit: `timeout` (4) when the ask is still open
/// after `waited`, `invalid_state` when it ended without an answer or ack.
pub fn ended_with_answer(a: &AskInfo, done: bool, waited: Duration) -> CmdResult {
    let id = &a.correlation_id;
    if !done {
        return Err(Failure::new(
            ErrorCode::Timeout,
            format!("{id} is still {} after {waited:?}", a.state),
        ));
    }
    if a.state != AskState::Closed {
        return Err(Failure::new(
            ErrorCode::InvalidState,
            format!("{id} ended {} without an answer", a.state),
        ));
    }
    Ok(())
}

/// Print deliveries, then confirm them: a delivery is confirmed only after
/// it reached stdout, so a crash in between means it is handed out again.
fn print_batch(ctx: &Ctx, items: &[DeliveryInfo], follow: bool) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    let mut write = || -> std::io::Result<()> {
        for d in items {
            if ctx.json {
                writeln!(out, "{}", serde_json::to_string(d).unwrap_or_default())?;
            } else {
                writeln!(out, "{}", term::escape(&delivery_line(d)))?;
            }
        }
        if !follow && items.is_empty() && !ctx.json {
            writeln!(out, "inbox empty")?;
        }
        out.flush()
    };
    // A closed stdout ends the process before anything is confirmed.
    write().map_err(|e| term::closed(e))
}

/// `peer inbox`: peek, take everything pending (up to `limit`), or follow.
pub async fn inbox(
    ctx: &Ctx,
    c: &Client,
    follow: bool,
    peek: bool,
    limit: Option<u32>,
) -> CmdResult {
    let mut c = c.clone();
    if peek {
        let r = c.peek(limit.unwrap_or(1000)).await?;
        ctx.out(&r.deliveries, |v| {
            if v.is_empty() {
                "inbox empty".into()
            } else {
                v.iter().map(delivery_line).collect::<Vec<_>>().join("\n")
            }
        });
        return Ok(());
    }
    if !follow {
        // Take batches until nothing is pending (or the limit is reached),
        // print them all, then confirm them all.
        let mut items: Vec<DeliveryInfo> = Vec::new();
        loop {
            let room = limit.map_or(500, |l| (l as usize - items.len()).min(500) as u32);
            if room == 0 {
                break;
            }
            let got = c
                .lease(&LeaseReq {
                    max: Some(room),
                    ..Default::default()
                })
                .await?
                .deliveries;
            let n = got.len();
            items.extend(got);
            if n < room as usize {
                break;
            }
        }
        if ctx.json {
            term::emit(&serde_json::to_string_pretty(&items).unwrap_or_default());
        } else {
            print_batch(ctx, &items, false)?;
        }
        for chunk in items.chunks(1000) {
            c.confirm(chunk.iter().map(|d| d.delivery_id.clone()).collect())
                .await?;
        }
        return Ok(());
    }
    // Follow: long-poll, print, confirm; ride out daemon restarts.
    let mut backoff = Duration::from_millis(100);
    let mut failures = 0;
    loop {
        let res = c
            .lease(&LeaseReq {
                max: Some(limit.unwrap_or(100)),
                wait_ms: Some(25_000),
                ..Default::default()
            })
            .await;
        let items = match res {
            Ok(r) => r.deliveries,
            Err(e @ (ClientError::Unreachable { .. } | ClientError::Other(_))) => {
                failures += 1;
                if failures == 1 {
                    eprintln!("repowire: {e}; retrying until it is back (Ctrl-C to stop)");
                }
                if matches!(e, ClientError::Other(_)) && failures > 30 {
                    return Err(e.into());
                }
                // The daemon may have restarted on another port: re-read its record.
                c = ctx.client();
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        if failures > 0 {
            eprintln!("repowire: reconnected to {}", c.base());
        }
        failures = 0;
        backoff = Duration::from_millis(100);
        if items.is_empty() {
            continue;
        }
        print_batch(ctx, &items, true)?;
        let ids: Vec<String> = items.iter().map(|d| d.delivery_id.clone()).collect();
        // A failed confirm is retried; the lease keeps others from taking them.
        let mut tries = 0;
        while let Err(e) = c.confirm(ids.clone()).await {
            tries += 1;
            if tries > 50 || matches!(e, ClientError::Api(_)) {
                return Err(e.into());
            }
            c = ctx.client();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
