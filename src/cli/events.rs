//! `repowire trace ID` and `repowire events`: the event log, read or followed.

use super::{CmdResult, Ctx, Failure, term};
use crate::api::EventInfo;
use crate::core::ErrorCode;
use crate::core::time::fmt_ms;
use clap::Args;
use futures_util::StreamExt;
use std::io::Write;

#[derive(Debug, Args)]
pub struct TraceCmd {
    /// An ask (ask-…), ask group (askm-…), delivery (dlv-…) or peer (peer-…) id.
    id: String,
}

#[derive(Debug, Args)]
pub struct EventsCmd {
    /// Keep printing new events as they happen (Ctrl-C to stop).
    #[arg(long)]
    follow: bool,
    /// Start after this event sequence number.
    #[arg(long, conflicts_with = "tail")]
    since: Option<i64>,
    /// Start with the newest N events [default: 50].
    #[arg(long)]
    tail: Option<u32>,
    /// Only this circle's events.
    #[arg(long)]
    circle: Option<String>,
}

/// The payload as `key=value` pairs, for one-line display.
pub fn payload_gist(e: &EventInfo) -> String {
    let Some(obj) = e.payload.as_object() else {
        return String::new();
    };
    obj.iter()
        .filter(|(k, v)| !v.is_null() && k.as_str() != "to_peer_id")
        .map(|(k, v)| match v {
            serde_json::Value::String(s) => format!("{k}={}", term::field(s)),
            other => format!("{k}={}", term::field(&other.to_string())),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// One readable line per event: time, seq, kind, subject, the payload's gist.
pub fn event_line(e: &EventInfo) -> String {
    format!(
        "{} #{:<6} {:<20} {} {}",
        fmt_ms(e.ts_ms),
        e.seq,
        e.kind,
        e.subject,
        payload_gist(e)
    )
}

/// The trace as a timeline with offsets from the first stage.
pub fn timeline(events: &[EventInfo]) -> String {
    let Some(t0) = events.first().map(|e| e.ts_ms) else {
        return String::new();
    };
    let mut s = format!("{}  start\n", fmt_ms(t0));
    for e in events {
        s.push_str(&format!(
            "  +{:>6} ms  {:<18} {:<31} {}\n",
            e.ts_ms - t0,
            e.kind,
            e.subject,
            payload_gist(e)
        ));
    }
    s
}

impl TraceCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let t = ctx.client().trace(&self.id).await?;
        ctx.out(&t, |t| timeline(&t.events));
        Ok(())
    }
}

impl EventsCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let c = ctx.client();
        let tail = self
            .tail
            .or(if self.since.is_none() { Some(50) } else { None });
        if !self.follow {
            let r = c.events(self.since, tail, self.circle.as_deref()).await?;
            ctx.out(&r.events, |v| {
                v.iter().map(event_line).collect::<Vec<_>>().join("\n")
            });
            return Ok(());
        }
        let mut stream = Box::pin(
            c.event_stream(self.since, tail, self.circle.as_deref())
                .await?,
        );
        let mut out = std::io::stdout();
        while let Some(item) = stream.next().await {
            let e = item?;
            let line = if ctx.json {
                serde_json::to_string(&e).unwrap_or_default()
            } else {
                event_line(&e)
            };
            let line = if ctx.json {
                line
            } else {
                term::escape(&line).into_owned()
            };
            if let Err(e) = writeln!(out, "{line}").and_then(|_| out.flush()) {
                term::closed(e); // the reader went away (e.g. `| head`): quiet exit
            }
        }
        Err(Failure::new(
            ErrorCode::StreamClosed,
            "the daemon closed the event stream",
        ))
    }
}
