//! `repowire doctor`: is everything in order? Exits non-zero if not.

use super::{CmdResult, Ctx, Failure};
use crate::core::ErrorCode;
use serde::Serialize;
use std::os::unix::fs::PermissionsExt;

#[derive(Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
}

pub async fn run(ctx: &Ctx) -> CmdResult {
    let mut checks = Vec::new();
    let home = &ctx.home;
    checks.push(Check {
        name: "home",
        ok: home.dir.is_dir(),
        detail: home.dir.display().to_string(),
    });
    let token = match std::fs::metadata(home.token_path()) {
        Ok(m) => {
            let mode = m.permissions().mode() & 0o777;
            Check {
                name: "token permissions",
                ok: mode & 0o077 == 0,
                detail: format!("{} mode {mode:o}", home.token_path().display()),
            }
        }
        Err(e) => Check {
            name: "token permissions",
            ok: false,
            detail: format!("{}: {e}", home.token_path().display()),
        },
    };
    checks.push(token);
    let c = ctx.admin_client();
    match c.health().await {
        Ok(h) => checks.push(Check {
            name: "daemon reachable",
            ok: true,
            detail: format!("{} (pid {}, version {})", h.url, h.pid, h.version),
        }),
        Err(e) => checks.push(Check {
            name: "daemon reachable",
            ok: false,
            detail: Failure::from(e).message,
        }),
    }
    if checks.last().is_some_and(|c| c.ok) {
        match c.doctor().await {
            Ok(d) => {
                checks.push(Check {
                    name: "database",
                    ok: d.db_ok,
                    detail: format!(
                        "quick_check {} · schema {} · {} peers · {} open asks · {} undelivered · {} events",
                        d.db_check, d.schema_version, d.peers, d.open_asks, d.pending_deliveries, d.events
                    ),
                });
                checks.push(Check {
                    name: "stale peers",
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
                name: "database",
                ok: false,
                detail: Failure::from(e).message,
            }),
        }
    }
    let all_ok = checks.iter().all(|c| c.ok);
    ctx.out(&serde_json::json!({"ok": all_ok, "checks": checks}), |_| {
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
    });
    if all_ok {
        Ok(())
    } else {
        Err(Failure::new(ErrorCode::Doctor, "some checks failed"))
    }
}
