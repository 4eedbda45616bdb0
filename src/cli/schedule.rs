//! `repowire schedule …`: future deliveries, one-shot or cron.

use super::{CmdResult, Ctx, term, text_arg};
use crate::api::{ScheduleInfo, ScheduleReq};
use crate::client::Client;
use crate::core::schedule::{MissedPolicy, ScheduleKind};
use crate::core::time::fmt_ms;
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum ScheduleCmd {
    /// Deliver TEXT to TO once, at WHEN (a delay like 10m, or an RFC 3339 time).
    Create {
        to: String,
        when: String,
        /// The message (`-` reads stdin); for --kind job, the job's title;
        /// for --kind checkin, JSON arguments for the script.
        text: String,
        #[command(flatten)]
        opts: Opts,
    },
    /// Remind yourself: `schedule self 30m "check the deploy"`.
    #[command(name = "self")]
    Myself {
        when: String,
        text: String,
        #[command(flatten)]
        opts: Opts,
    },
    /// Deliver TEXT to TO on a cron schedule (5 fields, or @hourly/@daily/@weekly).
    Cron {
        to: String,
        expr: String,
        text: String,
        /// IANA time zone of the expression (default UTC).
        #[arg(long)]
        tz: Option<String>,
        #[command(flatten)]
        opts: Opts,
    },
    /// Your schedules (--all: every schedule of the circle).
    List {
        #[arg(long)]
        all: bool,
    },
    Show {
        id: String,
    },
    /// Delete a schedule (its owner or the orchestrator).
    Delete {
        id: String,
    },
    Pause {
        id: String,
    },
    Resume {
        id: String,
    },
}

#[derive(Debug, Args)]
pub struct Opts {
    /// notify (default), ask, job (create a job) or checkin (run a check-in script).
    #[arg(long, value_parser = parse_kind)]
    kind: Option<ScheduleKind>,
    /// checkin: the persona or script file to run (default: the circle's persona).
    #[arg(long)]
    persona: Option<String>,
    /// Fires missed while the daemon was down: fire_once (default) or skip.
    #[arg(long, value_parser = parse_missed)]
    missed: Option<MissedPolicy>,
    /// The target's circle (default: yours; another one is refused).
    #[arg(long)]
    circle: Option<String>,
}

fn parse_kind(s: &str) -> Result<ScheduleKind, String> {
    ScheduleKind::parse(s).map_err(|e| e.message)
}

fn parse_missed(s: &str) -> Result<MissedPolicy, String> {
    MissedPolicy::parse(s).map_err(|e| e.message)
}

fn line(s: &ScheduleInfo) -> String {
    format!(
        "{}  {:<8} → {:<12} {:<22} {}{}",
        s.schedule_id,
        s.kind.as_str(),
        s.to,
        match (&s.cron, s.next_fire_ms) {
            (Some(c), _) => format!("cron {}", term::field(c)),
            (None, Some(t)) => fmt_ms(t),
            (None, None) => "done".into(),
        },
        term::field(&s.text),
        if s.enabled {
            String::new()
        } else {
            " [off]".into()
        }
    )
}

fn detail(s: &ScheduleInfo) -> String {
    format!(
        "{}\nowner:       {}\nnext fire:   {}\nlast fired:  {} ({} fires)\nlast outcome: {}\nlast error:  {}\nmissed:      {}\ntime zone:   {}",
        line(s),
        s.owner,
        s.next_fire_ms.map(fmt_ms).unwrap_or_else(|| "-".into()),
        s.last_fired_ms.map(fmt_ms).unwrap_or_else(|| "-".into()),
        s.fire_count,
        s.last_outcome.as_deref().unwrap_or("-"),
        s.last_error.as_deref().unwrap_or("none"),
        s.missed,
        s.tz
    )
}

impl ScheduleCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        let c = ctx.client();
        match self {
            ScheduleCmd::Create {
                to,
                when,
                text,
                opts,
            } => create(ctx, &c, to, when, text, opts).await,
            ScheduleCmd::Myself { when, text, opts } => myself(ctx, &c, when, text, opts).await,
            ScheduleCmd::Cron {
                to,
                expr,
                text,
                tz,
                opts,
            } => cron(ctx, &c, to, expr, tz, text, opts).await,
            ScheduleCmd::List { all } => list(ctx, &c, all).await,
            ScheduleCmd::Show { id } => show(ctx, &c, &id).await,
            ScheduleCmd::Delete { id } => delete(ctx, &c, &id).await,
            ScheduleCmd::Pause { id } => pause(ctx, &c, &id, true).await,
            ScheduleCmd::Resume { id } => pause(ctx, &c, &id, false).await,
        }
    }
}

/// The request the three creating commands send.
fn request(
    to: String,
    fire_at: Option<String>,
    cron: Option<String>,
    tz: Option<String>,
    text: String,
    o: Opts,
) -> ScheduleReq {
    ScheduleReq {
        to,
        circle: o.circle,
        kind: o.kind,
        text,
        fire_at,
        cron,
        tz,
        missed: o.missed,
        persona: o.persona.map(|p| absolute(&p)),
    }
}

async fn submit(ctx: &Ctx, c: &Client, req: ScheduleReq) -> CmdResult {
    let s = c.create_schedule(&req).await?;
    ctx.out(&s, detail);
    Ok(())
}

async fn create(
    ctx: &Ctx,
    c: &Client,
    to: String,
    when: String,
    text: String,
    opts: Opts,
) -> CmdResult {
    let req = request(to, Some(when), None, None, text_arg(text)?, opts);
    submit(ctx, c, req).await
}

async fn myself(ctx: &Ctx, c: &Client, when: String, text: String, opts: Opts) -> CmdResult {
    let req = request("self".into(), Some(when), None, None, text_arg(text)?, opts);
    submit(ctx, c, req).await
}

async fn cron(
    ctx: &Ctx,
    c: &Client,
    to: String,
    expr: String,
    tz: Option<String>,
    text: String,
    opts: Opts,
) -> CmdResult {
    let req = request(to, None, Some(expr), tz, text_arg(text)?, opts);
    submit(ctx, c, req).await
}

async fn list(ctx: &Ctx, c: &Client, all: bool) -> CmdResult {
    let v = c.list_schedules(all).await?;
    ctx.out(&v, |v| {
        if v.is_empty() {
            "no schedules".into()
        } else {
            v.iter().map(line).collect::<Vec<_>>().join("\n")
        }
    });
    Ok(())
}

async fn show(ctx: &Ctx, c: &Client, id: &str) -> CmdResult {
    let s = c.schedule(id).await?;
    ctx.out(&s, detail);
    Ok(())
}

async fn delete(ctx: &Ctx, c: &Client, id: &str) -> CmdResult {
    let s = c.delete_schedule(id).await?;
    ctx.out(&s, |s| format!("deleted {}", s.schedule_id));
    Ok(())
}

/// `pause` (true) or `resume` (false).
async fn pause(ctx: &Ctx, c: &Client, id: &str, paused: bool) -> CmdResult {
    let s = c.pause_schedule(id, paused).await?;
    ctx.out(&s, line);
    Ok(())
}

/// A script path is made absolute (the daemon may run elsewhere); a persona
/// name is kept as it is.
fn absolute(p: &str) -> String {
    if p.ends_with(".lua") || p.contains('/') {
        std::fs::canonicalize(p)
            .map(|x| x.display().to_string())
            .unwrap_or_else(|_| p.to_string())
    } else {
        p.to_string()
    }
}
