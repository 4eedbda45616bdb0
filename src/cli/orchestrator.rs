//! `repowire orchestrator …`: who holds the role in a circle.

use super::{CmdResult, Ctx};
use crate::core::ErrorCode;
use crate::core::time::{fmt_age, fmt_ms};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum OrchestratorCmd {
    /// Route a queued job through the circle's persona (else the built-in
    /// policy) and carry the route out; --dry-run shows the route only.
    Dispatch {
        #[arg(long = "job", value_name = "JOB_ID")]
        job: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Ask the circle's active persona (else the built-in policy) to route a
    /// job or a review item over the live mesh, and print the route (a dry
    /// run: nothing is sent).
    Decide(DecideArgs),
    /// Routing personas: Luau scripts that decide dispatch and review routing.
    #[command(subcommand)]
    Persona(super::persona::PersonaCmd),
    /// Is there an orchestrator in the circle, who, and is it live?
    Status {
        /// The circle (default: the caller's circle, else `default`).
        #[arg(long)]
        circle: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct DecideArgs {
    /// A job: {"id", "title", "brief", "tags", "priority", "creator", …}.
    #[arg(long, value_name = "JOB.json", conflicts_with = "review")]
    job: Option<std::path::PathBuf>,
    /// A review item: {"ref", "head_sha", "author", "requested_by", "tags"}.
    #[arg(long, value_name = "ITEM.json")]
    review: Option<std::path::PathBuf>,
    #[arg(long)]
    circle: Option<String>,
}

impl OrchestratorCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        match self {
            OrchestratorCmd::Persona(p) => p.run(ctx).await,
            OrchestratorCmd::Dispatch { job, dry_run } => dispatch(ctx, job, dry_run).await,
            OrchestratorCmd::Decide(a) => decide(ctx, a).await,
            OrchestratorCmd::Status { circle } => status(ctx, circle).await,
        }
    }
}

async fn dispatch(ctx: &Ctx, job: String, dry_run: bool) -> CmdResult {
    let r = ctx.client().dispatch_job(&job, dry_run).await?;
    ctx.out(&r, |r| {
        format!(
            "{}: {} ({}) {}",
            r.job.job_id,
            r.outcome,
            r.persona.as_deref().unwrap_or("built-in policy"),
            serde_json::to_string(&r.route).unwrap_or_default()
        )
    });
    Ok(())
}

async fn decide(ctx: &Ctx, a: DecideArgs) -> CmdResult {
    let DecideArgs {
        job,
        review,
        circle,
    } = a;
    let read = |p: &std::path::Path| -> Result<serde_json::Value, super::Failure> {
        let t = std::fs::read_to_string(p)
            .map_err(|e| super::Failure::usage(format!("cannot read {}: {e}", p.display())))?;
        serde_json::from_str(&t).map_err(|e| {
            super::Failure::new(ErrorCode::BadRequest, format!("{}: {e}", p.display()))
        })
    };
    let mut req = serde_json::json!({"circle": circle});
    match (&job, &review) {
        (Some(j), _) => req["job"] = read(j)?,
        (_, Some(r)) => req["review"] = read(r)?,
        _ => {
            return Err(super::Failure::usage(
                "give --job JOB.json or --review ITEM.json",
            ));
        }
    }
    let req: crate::api::DecideReq = serde_json::from_value(req)
        .map_err(|e| super::Failure::new(ErrorCode::BadRequest, e.to_string()))?;
    let r = ctx.client().decide(&req).await?;
    ctx.out(&r, |r| {
        format!(
            "{} ({}): {}",
            r.circle,
            r.persona.as_deref().unwrap_or("built-in policy"),
            serde_json::to_string(&r.route).unwrap_or_default()
        )
    });
    Ok(())
}

async fn status(ctx: &Ctx, circle: Option<String>) -> CmdResult {
    let s = ctx.client().orchestrator_status(circle.as_deref()).await?;
    ctx.out(&s, |s| match (&s.name, &s.peer_id, s.last_seen_ms) {
        (Some(n), Some(id), Some(seen)) => format!(
            "circle:       {}\norchestrator: {n} ({id})\nlast seen:    {} ({} ago){}\nstale after:  {}s",
            s.circle,
            fmt_ms(seen),
            fmt_age(s.last_seen_age_s.unwrap_or(0) * 1000),
            if s.stale { " [stale: the role can be claimed]" } else { "" },
            s.stale_after_s
        ) + &persona_line(s),
        _ => format!(
            "circle:       {}\norchestrator: none (claim it with `repowire peer claim-role orchestrator`)\nstale after:  {}s",
            s.circle, s.stale_after_s
        ) + &persona_line(s),
    });
    Ok(())
}

fn persona_line(s: &crate::api::OrchestratorStatus) -> String {
    match &s.persona {
        None => "\npersona:      none (the built-in policy decides)".into(),
        Some(p) => format!(
            "\npersona:      {} (sha256 {}){}",
            p.name,
            p.sha256.as_deref().and_then(|h| h.get(..12)).unwrap_or("-"),
            p.last_error
                .as_deref()
                .map(|e| format!("\nlast error:   {e}"))
                .unwrap_or_default()
        ),
    }
}
