//! `repowire orchestrator persona …`: list, read, create, check and test
//! routing personas. Everything here works offline (no daemon needed).

use super::{CmdResult, Ctx, Failure};
use crate::core::ErrorCode;
use crate::core::mesh::{JobInput, MeshFixture, ReviewInput};
use crate::persona::catalog::{self, Source};
use crate::persona::{self, Limits, PersonaError, PersonaOrigin};
use clap::{Args, Subcommand};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum PersonaCmd {
    /// Every persona this home can use: source (user/shipped), sha-256
    /// prefix, entry points, and the error if it does not compile. With a
    /// daemon running, the circles that use one are shown (`*`).
    List,
    /// Make NAME the active persona of a circle (admin, or its orchestrator).
    Use {
        name: String,
        /// Default: your circle, else `default`.
        #[arg(long)]
        circle: Option<String>,
    },
    /// Go back to the built-in policy in a circle.
    Clear {
        #[arg(long)]
        circle: Option<String>,
    },
    /// The active persona of a circle: generation, last reload, last error,
    /// decisions, p50/p99 decision time.
    Status {
        #[arg(long)]
        circle: Option<String>,
    },
    /// Print a persona's script (and its identity text, NAME.md, if any).
    Show {
        #[arg(default_value = "default")]
        name: String,
    },
    /// Where a persona's script lives.
    Path {
        #[arg(default_value = "default")]
        name: String,
    },
    /// Write a commented starter script to <home>/personas/NAME.lua.
    New(NewArgs),
    /// Compile and lint a persona (NAME or a .lua FILE); exits non-zero with
    /// file:line on an error.
    Check { persona: String },
    /// Run a persona offline against a mesh fixture and print the route as JSON.
    Test(TestArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    name: String,
    /// Start from this persona's script instead of the starter.
    #[arg(long, value_name = "TEMPLATE")]
    from: Option<String>,
    /// Overwrite an existing file.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// NAME or a .lua FILE.
    persona: String,
    /// The mesh: {"circle", "now", "peers": [...], "jobs": [...]}.
    #[arg(long, value_name = "MESH.json")]
    fixture: PathBuf,
    /// Decide this job with `dispatch`.
    #[arg(long, value_name = "JOB.json", conflicts_with = "review")]
    job: Option<PathBuf>,
    /// Decide this review item with `review`.
    #[arg(long, value_name = "ITEM.json", conflicts_with = "checkin")]
    review: Option<PathBuf>,
    /// Run `checkin(ctx, mesh)` with this context (any JSON object);
    /// prints the list of routes.
    #[arg(long, value_name = "CTX.json", conflicts_with = "job")]
    checkin: Option<PathBuf>,
}

fn status_text(s: &crate::api::PersonaStatus) -> String {
    let Some(name) = &s.persona else {
        return format!(
            "circle {}: no persona (the built-in policy decides)",
            s.circle
        );
    };
    let ms = |v: Option<i64>| {
        v.map(crate::core::time::fmt_ms)
            .unwrap_or_else(|| "-".into())
    };
    let us = |v: Option<u64>| v.map(|u| format!("{u} µs")).unwrap_or_else(|| "-".into());
    format!(
        "circle:      {}\npersona:     {name} ({}, sha256 {})\ngeneration:  {}\nloaded:      {}\nlast reload: {}\nlast error:  {}\ndecisions:   {} ({} fell back)\ntime:        p50 {} · p99 {}",
        s.circle,
        s.source.as_deref().unwrap_or("-"),
        s.sha256.as_deref().and_then(|h| h.get(..12)).unwrap_or("-"),
        s.generation
            .map(|g| g.to_string())
            .unwrap_or_else(|| "-".into()),
        ms(s.loaded_at_ms),
        ms(s.last_reload_ms),
        s.last_error.as_deref().unwrap_or("none"),
        s.decisions,
        s.fallbacks,
        us(s.p50_us),
        us(s.p99_us),
    )
}

fn fail(e: String) -> Failure {
    Failure::new(ErrorCode::Persona, e)
}

fn persona_failure(e: &PersonaError) -> Failure {
    let msg = match &e.location {
        Some(loc) if !e.message.contains(loc.as_str()) => format!("{loc}: {}", e.message),
        _ => e.message.clone(),
    };
    Failure::new(ErrorCode::PersonaError, msg)
}

fn read_json<T: serde::de::DeserializeOwned>(what: &str, path: &PathBuf) -> Result<T, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::usage(format!("cannot read {what} {}: {e}", path.display())))?;
    serde_json::from_str(&text).map_err(|e| {
        Failure::new(
            ErrorCode::BadFixture,
            format!("{} is not a valid {what}: {e}", path.display()),
        )
    })
}

#[derive(Serialize)]
struct Listed {
    name: String,
    /// Circles where this persona is active (needs a running daemon).
    active_in: Vec<String>,
    source: &'static str,
    path: String,
    sha256: String,
    entry_points: Vec<String>,
    warnings: Vec<String>,
    error: Option<String>,
}

fn describe(src: &Source) -> Listed {
    match src.compile(Limits::default()) {
        Ok(p) => Listed {
            active_in: Vec::new(),
            name: src.name.clone(),
            source: src.origin.as_str(),
            path: src.path.clone(),
            sha256: p.sha256.clone(),
            entry_points: p.entry_points.clone(),
            warnings: p.warnings.clone(),
            error: None,
        },
        Err(e) => Listed {
            active_in: Vec::new(),
            name: src.name.clone(),
            source: src.origin.as_str(),
            path: src.path.clone(),
            sha256: String::new(),
            entry_points: Vec::new(),
            warnings: Vec::new(),
            error: Some(persona_failure(&e).message),
        },
    }
}

impl PersonaCmd {
    pub async fn run(self, ctx: &Ctx) -> CmdResult {
        match self {
            PersonaCmd::List => list(ctx).await,
            PersonaCmd::Use { name, circle } => use_(ctx, name, circle).await,
            PersonaCmd::Clear { circle } => clear(ctx, circle).await,
            PersonaCmd::Status { circle } => status(ctx, circle).await,
            PersonaCmd::Show { name } => show(ctx, name).await,
            PersonaCmd::Path { name } => path(ctx, name).await,
            PersonaCmd::New(a) => new(ctx, a).await,
            PersonaCmd::Check { persona } => check(ctx, persona).await,
            PersonaCmd::Test(a) => test(ctx, a).await,
        }
    }
}

async fn list(ctx: &Ctx) -> CmdResult {
    let home = &ctx.home.dir;
    let mut rows: Vec<Listed> = catalog::list(home).iter().map(describe).collect();
    // Offline is fine; with a daemon, mark what is active where.
    if let Ok(active) = ctx.client().active_personas().await {
        for st in active {
            if let Some(r) = rows
                .iter_mut()
                .find(|r| Some(&r.name) == st.persona.as_ref())
            {
                r.active_in.push(st.circle);
            }
        }
    }
    ctx.out(&rows, |rows| {
        rows.iter()
            .map(|r| {
                format!(
                    "{} {:<18} {:<8} {:<12} {}{}{}",
                    if r.active_in.is_empty() { ' ' } else { '*' },
                    r.name,
                    r.source,
                    r.sha256.get(..12).unwrap_or("-"),
                    r.entry_points.join(","),
                    if r.active_in.is_empty() {
                        String::new()
                    } else {
                        format!("  active in {}", r.active_in.join(", "))
                    },
                    r.error
                        .as_deref()
                        .map(|e| format!("  ERROR {e}"))
                        .unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    });
    Ok(())
}

async fn use_(ctx: &Ctx, name: String, circle: Option<String>) -> CmdResult {
    let st = ctx
        .client()
        .use_persona(&crate::api::UsePersonaReq { name, circle })
        .await?;
    ctx.out(&st, status_text);
    Ok(())
}

async fn clear(ctx: &Ctx, circle: Option<String>) -> CmdResult {
    let st = ctx.client().clear_persona(circle).await?;
    ctx.out(&st, |s| {
        format!("circle {}: the built-in policy decides", s.circle)
    });
    Ok(())
}

async fn status(ctx: &Ctx, circle: Option<String>) -> CmdResult {
    let st = ctx.client().persona_status(circle.as_deref()).await?;
    ctx.out(&st, status_text);
    Ok(())
}

async fn show(ctx: &Ctx, name: String) -> CmdResult {
    let home = &ctx.home.dir;
    let src = catalog::find(home, &name).map_err(fail)?;
    let v = serde_json::json!({"name": src.name, "source": src.origin, "path": src.path,
        "script": src.text, "identity": src.identity});
    ctx.out(&v, |_| match &src.identity {
        Some(id) => format!("{}\n--- identity ({}.md) ---\n{id}", src.text, src.name),
        None => src.text.clone(),
    });
    Ok(())
}

async fn path(ctx: &Ctx, name: String) -> CmdResult {
    let home = &ctx.home.dir;
    let src = catalog::find(home, &name).map_err(fail)?;
    let v = serde_json::json!({"name": src.name, "source": src.origin, "path": src.path});
    ctx.out(&v, |_| {
        if src.origin == PersonaOrigin::Shipped {
            format!(
                "{} (shipped, built into the binary; `repowire orchestrator persona new {} --from {}` copies it to {})",
                src.path,
                src.name,
                src.name,
                catalog::user_dir(home).join(format!("{}.lua", src.name)).display()
            )
        } else {
            src.path.clone()
        }
    });
    Ok(())
}

async fn new(ctx: &Ctx, a: NewArgs) -> CmdResult {
    let home = &ctx.home.dir;
    let NewArgs { name, from, force } = a;
    crate::core::peer::validate_name("persona name", &name)
        .map_err(|e| Failure::new(ErrorCode::InvalidName, e.message))?;
    let text = match &from {
        Some(t) => catalog::find(home, t).map_err(fail)?.text,
        None => catalog::starter(&name),
    };
    let dir = catalog::user_dir(home);
    crate::home::private_dir(&dir)
        .map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    let path = dir.join(format!("{name}.lua"));
    if path.exists() && !force {
        return Err(Failure::new(
            ErrorCode::Exists,
            format!("{} exists; pass --force to overwrite", path.display()),
        ));
    }
    crate::home::write_private(&path, text.as_bytes())
        .map_err(|e| fail(format!("cannot write {}: {e:#}", path.display())))?;
    let v = serde_json::json!({"name": name, "path": path.display().to_string()});
    ctx.out(&v, |_| format!("wrote {}", path.display()));
    Ok(())
}

async fn check(ctx: &Ctx, persona: String) -> CmdResult {
    let home = &ctx.home.dir;
    let src = catalog::find(home, &persona).map_err(fail)?;
    let p = src
        .compile(Limits::default())
        .map_err(|e| persona_failure(&e))?;
    let mut problems = p.warnings.clone();
    problems.extend(persona::lint_returns(&p));
    let v = serde_json::json!({"name": p.name, "path": p.path, "sha256": p.sha256,
        "entry_points": p.entry_points, "problems": problems});
    ctx.out(&v, |_| {
        let mut s = format!("{}: ok ({})", p.path, p.entry_points.join(", "));
        for w in &problems {
            s.push_str(&format!("\nwarning: {w}"));
        }
        s
    });
    if !problems.is_empty() {
        return Err(Failure::new(
            ErrorCode::PersonaLint,
            format!("{} problem(s) in {}", problems.len(), p.path),
        ));
    }
    Ok(())
}

async fn test(ctx: &Ctx, a: TestArgs) -> CmdResult {
    let home = &ctx.home.dir;
    let TestArgs {
        persona,
        fixture,
        job,
        review,
        checkin,
    } = a;
    let src = catalog::find(home, &persona).map_err(fail)?;
    let mesh: MeshFixture = read_json("mesh fixture", &fixture)?;
    let mesh = Arc::new(
        mesh.snapshot(crate::core::time::now_ms())
            .map_err(|e| Failure::new(ErrorCode::BadFixture, e))?,
    );
    // A persona that does not compile still answers: through the fallback.
    let compiled = src.compile(Limits::default());
    let (p, compile_err) = match compiled {
        Ok(p) => (Some(p), None),
        Err(e) => (None, Some(e)),
    };
    if let Some(ctx_path) = &checkin {
        let ctx_json: serde_json::Value = read_json("check-in context", ctx_path)?;
        // The built-in policy sends no check-in messages.
        let (routes, err) = match p.as_ref().map(|p| p.checkin(&ctx_json, &mesh)) {
            Some(Ok(r)) => (r, None),
            Some(Err(e)) => (Vec::new(), Some(e)),
            None => (Vec::new(), compile_err),
        };
        let err = err.map(|e| persona_failure(&e).message);
        let out: Vec<_> = routes.iter().map(|r| r.out(None)).collect();
        let v = serde_json::json!({"routes": out, "fallback": err.is_some(), "error": err});
        super::term::emit(&serde_json::to_string_pretty(&v).unwrap_or_default());
        return Ok(());
    }
    let mut decision = match (&job, &review) {
        (_, Some(item)) => {
            let item: ReviewInput = read_json("review item", item)?;
            persona::decide_review(p.as_ref(), &item, &mesh)
        }
        (Some(j), None) => {
            let job: JobInput = read_json("job", j)?;
            persona::decide_dispatch(p.as_ref(), &job, &mesh)
        }
        (None, None) => {
            return Err(Failure::usage(
                "give --job JOB.json, --review ITEM.json or --checkin CTX.json",
            ));
        }
    };
    if decision.error.is_none() {
        decision.error = compile_err;
    }
    let out = decision.out();
    super::term::emit(&serde_json::to_string_pretty(&out).unwrap_or_default());
    Ok(())
}
