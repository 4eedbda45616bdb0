//! `repowire hook <event>`: what an agent client's hooks run (docs/hooks.md).

use super::{CmdResult, Ctx, Failure};
use clap::Args;

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The hook event: session-start, user-prompt-submit, pre-tool-use,
    /// notification, stop, session-end, wait.
    pub event: String,
    /// The client that runs the hook: claude or codex.
    #[arg(long, value_parser = ["claude", "codex"])]
    pub client: String,
}

pub async fn run(_ctx: &Ctx, _a: HookArgs) -> CmdResult {
    Err(Failure::usage("repowire hook: not built yet"))
}
