//! `repowire orchestrator …`: who holds the role in a circle.

use super::{CmdResult, Ctx};
use crate::core::time::{fmt_age, fmt_ms};
use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum OrchestratorCmd {
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

impl OrchestratorCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        match self {
            OrchestratorCmd::Persona(p) => p.run(ctx).await,
            OrchestratorCmd::Status { circle } => {
                let s = ctx.client().orchestrator_status(circle.as_deref()).await?;
                ctx.out(&s, |s| match (&s.name, &s.peer_id, s.last_seen_ms) {
                    (Some(n), Some(id), Some(seen)) => format!(
                        "circle:       {}\norchestrator: {n} ({id})\nlast seen:    {} ({} ago){}\nstale after:  {}s",
                        s.circle,
                        fmt_ms(seen),
                        fmt_age(s.last_seen_age_s.unwrap_or(0) * 1000),
                        if s.stale { " [stale: the role can be claimed]" } else { "" },
                        s.stale_after_s
                    ),
                    _ => format!(
                        "circle:       {}\norchestrator: none (claim it with `repowire peer claim-role orchestrator`)\nstale after:  {}s",
                        s.circle, s.stale_after_s
                    ),
                });
                Ok(())
            }
        }
    }
}
