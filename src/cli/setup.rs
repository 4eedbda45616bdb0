//! `repowire setup` and `repowire uninstall`: wire agent clients to the
//! mesh, and take that back out (the work is in [`crate::setup`]).

use super::{CmdResult, Ctx, Failure};
use crate::core::ErrorCode;
use crate::setup::{self, ConfigError, Edit, Env, Scope};
use crate::wiring::Client;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Wire Claude Code (default: every client found installed).
    #[arg(long)]
    pub claude: bool,
    /// Wire Codex (default: every client found installed).
    #[arg(long)]
    pub codex: bool,
    /// `user`: your own configuration (~/.claude.json and
    /// ~/.claude/settings.json; ~/.codex); `project`: this directory's
    /// (.mcp.json and .claude/settings.json; .codex/).
    #[arg(long, default_value = "user", value_parser = ["user", "project"])]
    pub scope: String,
    /// Claude Code: also push messages live as channel events
    /// (`--delivery push`), for sessions started with channels enabled
    /// where your organisation allows them. A hint only: hooks still show
    /// and confirm every message.
    #[arg(long)]
    pub channels: bool,
    /// Print the diff of every file it would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Only Claude Code (default: both).
    #[arg(long)]
    pub claude: bool,
    /// Only Codex (default: both).
    #[arg(long)]
    pub codex: bool,
    /// The scope setup wrote: user or project.
    #[arg(long, default_value = "user", value_parser = ["user", "project"])]
    pub scope: String,
    /// Print the diff of every file it would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

fn scope(s: &str) -> Scope {
    if s == "project" {
        Scope::Project
    } else {
        Scope::User
    }
}

fn env(ctx: &Ctx) -> Result<Env, Failure> {
    Env::detect(&ctx.home.dir).map_err(|e| Failure::new(ErrorCode::Other, format!("{e:#}")))
}

fn config(e: ConfigError) -> Failure {
    Failure::new(ErrorCode::ClientConfig, e.0)
}

pub async fn setup(ctx: &Ctx, a: SetupArgs) -> CmdResult {
    let mut env = env(ctx)?;
    env.channels = a.channels;
    // What another name wrote, neither a rerun nor `uninstall` could find.
    if !setup::hooks::named_ours(&env.exe) {
        return Err(Failure::new(
            ErrorCode::ClientConfig,
            format!(
                "setup must run from a binary named `repowire` (this one is {}): \
the clients' hooks are recognised by that name; install it with `cargo install --path .` \
or copy it as `repowire`",
                env.exe
            ),
        ));
    }
    let _held = setup::lock(&env).map_err(config)?;
    let scope = scope(&a.scope);
    let clients: Vec<Client> = if a.claude || a.codex {
        Client::ALL
            .into_iter()
            .filter(|c| match c {
                Client::Claude => a.claude,
                Client::Codex => a.codex,
            })
            .collect()
    } else {
        let found: Vec<Client> = Client::ALL
            .into_iter()
            .filter(|c| env.installed(*c))
            .collect();
        if found.is_empty() {
            return Err(Failure::new(
                ErrorCode::NoClient,
                "neither Claude Code (`claude`, ~/.claude) nor Codex (`codex`, ~/.codex) was found; \
pass --claude or --codex to wire one anyway",
            ));
        }
        found
    };
    let mut plan = Vec::new();
    for c in &clients {
        let edits = match c {
            Client::Claude => setup::claude_setup(&env, scope),
            Client::Codex => setup::codex::setup(&env, scope),
        }
        .map_err(config)?;
        plan.push((*c, edits));
    }
    finish(ctx, "setup", &env, scope, plan, a.dry_run)
}

pub async fn uninstall(ctx: &Ctx, a: UninstallArgs) -> CmdResult {
    let env = env(ctx)?;
    let _held = setup::lock(&env).map_err(config)?;
    let scope = scope(&a.scope);
    let mut plan = Vec::new();
    for c in Client::ALL {
        let pick = match c {
            Client::Claude => a.claude,
            Client::Codex => a.codex,
        };
        if (a.claude || a.codex) && !pick {
            continue;
        }
        let edits = match c {
            Client::Claude => setup::claude_uninstall(&env, scope),
            Client::Codex => setup::codex::uninstall(&env, scope),
        }
        .map_err(config)?;
        plan.push((c, edits));
    }
    finish(ctx, "uninstall", &env, scope, plan, a.dry_run)
}

fn client_name(c: Client) -> &'static str {
    match c {
        Client::Claude => "Claude Code",
        Client::Codex => "Codex",
    }
}

/// Show the plan (and, unless a dry run, carry it out).
fn finish(
    ctx: &Ctx,
    verb: &str,
    env: &Env,
    scope: Scope,
    plan: Vec<(Client, Vec<Edit>)>,
    dry_run: bool,
) -> CmdResult {
    let all: Vec<Edit> = plan.iter().flat_map(|(_, e)| e.clone()).collect();
    let backups: Vec<(PathBuf, PathBuf)> = if dry_run {
        Vec::new()
    } else {
        setup::apply(&all).map_err(config)?
    };
    let backup_of = |p: &PathBuf| {
        backups
            .iter()
            .find(|(f, _)| f == p)
            .map(|(_, b)| b.display().to_string())
    };
    if ctx.json {
        let clients: Vec<_> = plan
            .iter()
            .map(|(c, edits)| {
                serde_json::json!({
                    "client": c.as_str(),
                    "files": edits.iter().map(|e| serde_json::json!({
                        "path": e.path.display().to_string(),
                        "action": e.action(),
                        "changes": e.what,
                        "backup": backup_of(&e.path),
                        "diff": if dry_run && e.changed() { Some(e.diff()) } else { None },
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        super::term::emit(
            &serde_json::json!({
                "command": verb,
                "scope": scope.as_str(),
                "dry_run": dry_run,
                "changed": all.iter().any(Edit::changed),
                "clients": clients,
            })
            .to_string(),
        );
        return Ok(());
    }
    let mut out = String::new();
    for (c, edits) in &plan {
        out.push_str(&format!("{} ({} scope)\n", client_name(*c), scope.as_str()));
        for e in edits {
            let action = match (dry_run, e.action()) {
                (_, "unchanged") => "unchanged",
                (true, "create") => "would create",
                (true, "remove") => "would remove",
                (true, _) => "would update",
                (false, "create") => "created",
                (false, "remove") => "removed",
                (false, _) => "updated",
            };
            out.push_str(&format!("  {action} {}", e.path.display()));
            if !e.what.is_empty() {
                out.push_str(&format!(": {}", e.what.join(", ")));
            }
            if let Some(b) = backup_of(&e.path) {
                out.push_str(&format!(" (backup: {b})"));
            }
            out.push('\n');
        }
    }
    if dry_run {
        for e in all.iter().filter(|e| e.changed()) {
            out.push('\n');
            out.push_str(&e.diff());
        }
        out.push_str("\ndry run: nothing was written\n");
    } else if verb == "setup" && all.iter().any(Edit::changed) {
        out.push_str(&format!(
            "\nRestart running sessions to pick this up. Start the daemon with `{}`.\n",
            match &env.repowire_home {
                Some(h) => format!("repowire --home {} daemon start", setup::hooks::quote(h)),
                None => "repowire daemon start".into(),
            }
        ));
        if plan.iter().any(|(c, _)| *c == Client::Codex) && scope == Scope::Project {
            out.push_str(&format!(
                "Codex reads .codex/ only in a trusted project: trust {} in Codex first.\n",
                env.project.display()
            ));
        }
    } else if !all.iter().any(Edit::changed) {
        out.push_str("nothing to change\n");
    }
    super::term::emit(out.trim_end());
    Ok(())
}
