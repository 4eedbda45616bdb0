//! `repowire schedule …`: future deliveries, one-shot or cron.

use super::{CmdResult, Ctx, term, text_arg};
use crate::api::{ScheduleInfo, ScheduleReq};
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
        let make = |to: String,
                    fire_at: Option<String>,
                    cron: Option<String>,
                    tz: Option<String>,
                    text: String,
                    o: Opts| ScheduleReq {
            to,
            circle: o.circle,
            kind: o.kind,
            text,
            fire_at,
            cron,
            tz,
            missed: o.missed,
            persona: o.persona.map(|p| absolute(&p)),
        };
        let created = match self {
            ScheduleCmd::Create {
                to,
                when,
                text,
                opts,
            } => Some(make(to, Some(when), None, None, text_arg(text)?, opts)),
            ScheduleCmd::Myself { when, text, opts } => Some(make(
                "self".into(),
                Some(when),
                None,
                None,
                text_arg(text)?,
                opts,
            )),
            ScheduleCmd::Cron {
                to,
                expr,
                text,
                tz,
                opts,
            } => Some(make(to, None, Some(expr), tz, text_arg(text)?, opts)),
            ScheduleCmd::List { all } => {
                let v = c.list_schedules(all).await?;
                ctx.out(&v, |v| {
                    if v.is_empty() {
                        "no schedules".into()
                    } else {
                        v.iter().map(line).collect::<Vec<_>>().join("\n")
                    }
                });
                None
            }
            ScheduleCmd::Show { id } => {
                let s = c.schedule(&id).await?;
                ctx.out(&s, detail);
                None
            }
            ScheduleCmd::Delete { id } => {
                let s = c.delete_schedule(&id).await?;
                ctx.out(&s, |s| format!("deleted {}", s.schedule_id));
                None
            }
            ScheduleCmd::Pause { id } => {
                let s = c.pause_schedule(&id, true).await?;
                ctx.out(&s, line);
                None
            }
            ScheduleCmd::Resume { id } => {
                let s = c.pause_schedule(&id, false).await?;
                ctx.out(&s, line);
                None
            }
        };
        if let Some(req) = created {
            let s = c.create_schedule(&req).await?;
            ctx.out(&s, detail);
        }
        Ok(())
    }
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
