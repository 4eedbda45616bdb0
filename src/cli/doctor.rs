//! `repowire doctor`: is everything in order? Exits non-zero if not.

use super::{CmdResult, Ctx, Failure};
use crate::core::ErrorCode;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
}

pub async fn run(ctx: &Ctx) -> CmdResult {
    let mut checks = Vec::new();
    let home = &ctx.home;
    checks.push(Check {
        name: "home".into(),
        ok: home.dir.is_dir(),
        detail: home.dir.display().to_string(),
    });
    let token = match std::fs::metadata(home.token_path()) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            Check {
                name: "token permissions".into(),
                ok: mode & 0o077 == 0,
                detail: format!("{} mode {mode:o}", home.token_path().display()),
            }
        }
        Err(e) => Check {
            name: "token permissions".into(),
            ok: false,
            detail: format!("{}: {e}", home.token_path().display()),
        },
    };
    checks.push(token);
    let c = ctx.admin_client();
    match c.health().await {
        Ok(h) => checks.push(Check {
            name: "daemon reachable".into(),
            ok: true,
            detail: format!("{} (pid {}, version {})", h.url, h.pid, h.version),
        }),
        Err(e) => checks.push(Check {
            name: "daemon reachable".into(),
            ok: false,
            detail: Failure::from(e).message,
        }),
    }
    if checks.last().is_some_and(|c| c.ok) {
        match c.doctor().await {
            Ok(d) => {
                checks.push(Check {
                    name: "database".into(),
                    ok: d.db_ok,
                    detail: format!(
                        "quick_check {} · schema {} · {} peers · {} open asks · {} undelivered · {} events · {} writes in {} commits since start",
                        d.db_check, d.schema_version, d.peers, d.open_asks, d.pending_deliveries, d.events, d.writes, d.commits
                    ),
                });
                checks.push(Check {
                    name: "stale peers".into(),
                    ok: d.stale_peers.iter().all(|p| !p.ghost),
                    detail: if d.stale_peers.is_empty() {
                        "none".into()
                    } else {
                        d.stale_peers
                            .iter()
                            .map(|p| {
                                format!(
                                    "{}@{}{}",
                                    p.name,
                                    p.circle,
                                    if p.ghost { " (ghost)" } else { "" }
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                            + " — `repowire peer prune` removes them"
                    },
                });
            }
            Err(e) => checks.push(Check {
                name: "database".into(),
                ok: false,
                detail: Failure::from(e).message,
            }),
        }
    }
    let wiring = wiring_checks(ctx);
    checks.extend(wiring.1);
    let all_ok = checks.iter().all(|c| c.ok);
    ctx.out(
        &serde_json::json!({"ok": all_ok, "checks": checks, "wiring": wiring.0}),
        |_| {
            checks
                .iter()
                .map(|c| {
                    format!(
                        "{} {:<18} {}",
                        if c.ok { "ok  " } else { "FAIL" },
                        c.name,
                        c.detail
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        },
    );
    if all_ok {
        Ok(())
    } else {
        Err(Failure::new(ErrorCode::Doctor, "some checks failed"))
    }
}

/// What `repowire setup` wired into each agent client (user scope, and the
/// current directory's project scope where anything is there): one check
/// per client and scope that is installed or wired. Not wired at all is
/// fine (the check says how to wire it); half wired, a missing binary or a
/// Codex hook not trusted fails.
fn wiring_checks(ctx: &Ctx) -> (Vec<crate::setup::Wired>, Vec<Check>) {
    use crate::setup::{Env, Scope, status};
    use crate::wiring::Client;
    let mut wired = Vec::new();
    let mut checks = Vec::new();
    // No HOME (a service account, a bare environment): no client config
    // to look at.
    let Ok(env) = Env::detect(&ctx.home.dir) else {
        return (wired, checks);
    };
    for client in Client::ALL {
        for scope in [Scope::User, Scope::Project] {
            let name = format!("{} ({})", client.as_str(), scope.as_str());
            let w = match status(&env, client, scope) {
                Ok(w) => w,
                Err(e) => {
                    checks.push(Check {
                        name,
                        ok: false,
                        detail: e.0,
                    });
                    continue;
                }
            };
            // The project's files are the user's own when run in the home.
            let same = scope == Scope::Project && env.project == env.home;
            if same || (w.none() && (scope == Scope::Project || !w.installed)) {
                continue;
            }
            let flag = format!(
                "--{}",
                if client == Client::Claude {
                    "claude"
                } else {
                    "codex"
                }
            );
            let scope_flag = if scope == Scope::Project {
                " --scope project"
            } else {
                ""
            };
            let detail = if w.none() {
                format!("installed, not wired (`repowire setup {flag}` wires it)")
            } else {
                let mut d = format!(
                    "MCP entry {}; {} hooks",
                    w.mcp.as_deref().unwrap_or("missing"),
                    w.hooks.len()
                );
                if !w.missing.is_empty() {
                    d.push_str(&format!("; missing: {}", w.missing.join(", ")));
                }
                for p in &w.problems {
                    d.push_str(&format!("; {p}"));
                }
                if !w.ok() {
                    d.push_str(&format!(
                        " — `repowire setup {flag}{scope_flag}` repairs it"
                    ));
                }
                d
            };
            checks.push(Check {
                name,
                ok: w.ok(),
                detail,
            });
            wired.push(w);
        }
    }
    (wired, checks)
}
