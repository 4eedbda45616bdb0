//! `repowire setup` and `repowire uninstall`: wire agent clients to the mesh.

use super::{CmdResult, Ctx, Failure};
use clap::Args;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Wire Claude Code.
    #[arg(long)]
    pub claude: bool,
    /// Wire Codex.
    #[arg(long)]
    pub codex: bool,
    /// Print the diff, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Print the diff, write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn setup(_ctx: &Ctx, _a: SetupArgs) -> CmdResult {
    Err(Failure::usage("repowire setup: not built yet"))
}

pub async fn uninstall(_ctx: &Ctx, _a: UninstallArgs) -> CmdResult {
    Err(Failure::usage("repowire uninstall: not built yet"))
}
