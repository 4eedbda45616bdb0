//! `repowire hook <event> --client claude|codex`: what an agent client's
//! hooks run (docs/hooks.md). Each reads the client's JSON on stdin and
//! writes exactly the JSON that client accepts for that event:
//!
//! - `session-start`: join as the session's peer ([`crate::sessions`]), then
//!   who the session is and what waits for it as `additionalContext`;
//! - `user-prompt-submit`: the peer is busy; pending deliveries as context;
//! - `pre-tool-use`: the peer is busy (no output);
//! - `notification`: the peer is idle when the client waits for the user;
//! - `stop`: pending deliveries block the stop with them as the reason, at
//!   most [`MAX_STOP_BLOCKS`] times in a row; else the peer is idle;
//! - `session-end`: the peer is offline;
//! - `wait`: Claude Code's `asyncRewake` hook: runs in the background after
//!   a stop and exits 2 with a delivery as soon as one arrives, which wakes
//!   the idle session (and ends at once where Claude Code would run it in
//!   the foreground: `claude -p` without streamed input).
//!
//! A delivery a hook shows is leased on the `hook` route and confirmed only
//! once the output is written, so each is shown at most once by hooks and
//! never confirmed unshown. A hook never breaks the session: whatever goes
//! wrong (no daemon, a refused call, a bad input), it exits 0, injects
//! nothing and says why in one line on stderr.

pub mod render;

use crate::api::{DeliveryInfo, HeartbeatReq, LeaseReq, PeerInfo};
use crate::client::Client;
use crate::core::delivery::DeliveryRoute;
use crate::core::peer::{Role, Status};
use crate::sessions::{self, Daemon, Want, process};
use crate::wiring::{Client as Agent, HookEvent};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::Duration;

/// Stops blocked in a row by deliveries before a stop is let through (a
/// user prompt, or a stop with nothing pending, starts the count again).
pub const MAX_STOP_BLOCKS: u32 = 3;

/// Deliveries one hook shows at most (the rest wait for the next hook or
/// the inbox tool).
const SHOW_MAX: u32 = 10;

/// How long a shown delivery stays leased to the hook before it comes back
/// (the hook confirms it long before, once its output is written).
const LEASE_MS: u64 = 60_000;

/// What the client sent on stdin (every field optional: both clients send
/// more, and an older client less).
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub session_id: Option<String>,
    pub cwd: Option<PathBuf>,
    /// SessionStart: `startup`, `resume`, `clear`, `compact`.
    pub source: Option<String>,
    /// Notification (Claude Code): `idle_prompt`, `permission_prompt`, …
    pub notification_type: Option<String>,
    /// SessionEnd: `clear`, `logout`, `prompt_input_exit`, `other`, …
    pub reason: Option<String>,
}

impl Input {
    /// Read what a client sends; `Err` says what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<Input, String> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Input::default());
        }
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| format!("the hook input is not JSON: {e}"))?;
        let Value::Object(o) = v else {
            return Err("the hook input is not a JSON object".into());
        };
        let s = |k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
        Ok(Input {
            session_id: s("session_id"),
            cwd: s("cwd").map(PathBuf::from),
            source: s("source"),
            notification_type: s("notification_type"),
            reason: s("reason"),
        })
    }
}

/// What the hook ends with.
#[derive(Default)]
pub struct Reply {
    /// The JSON (or text) for the client, if any.
    pub stdout: Option<String>,
    /// One line (or, for `wait`, the wake-up text) for stderr.
    pub stderr: Option<String>,
    /// 0, or 2 when `wait` wakes the session.
    pub exit: u8,
    /// Deliveries to confirm once the output is written, as this client.
    pub confirm: Option<(Client, Vec<String>)>,
}

impl Reply {
    /// Nothing for the client; `line` on stderr.
    pub fn note(line: impl Into<String>) -> Reply {
        Reply {
            stderr: Some(line.into()),
            ..Reply::default()
        }
    }
}

/// Run `event` for `agent` with `input`. Never fails: a failure is a reply
/// that injects nothing and says why on stderr.
pub async fn run(d: &Daemon, agent: Agent, event: HookEvent, input: &Input) -> Reply {
    let want = match want(agent, input) {
        Ok(w) => w,
        Err(e) => {
            return Reply::note(format!(
                "repowire hook {}: {e}; nothing done",
                event.as_str()
            ));
        }
    };
    let r = match event {
        HookEvent::SessionStart => session_start(d, &want).await,
        HookEvent::UserPromptSubmit => prompt(d, &want).await,
        HookEvent::PreToolUse => status(d, &want, Status::Busy).await,
        HookEvent::Notification => {
            if input.notification_type.as_deref() == Some("idle_prompt") {
                status(d, &want, Status::Idle).await
            } else {
                Ok(Reply::default())
            }
        }
        HookEvent::Stop => stop(d, &want).await,
        HookEvent::SessionEnd => session_end(d, &want, input.reason.as_deref()).await,
        HookEvent::Wait => wait(d, &want).await,
    };
    r.unwrap_or_else(|e| Reply::note(format!("repowire hook {}: {e:#}", event.as_str())))
}

/// What this hook knows of its session.
fn want(agent: Agent, input: &Input) -> Result<Want, String> {
    // A session id that cannot be one is refused, not ignored: without it
    // the hook could only guess the session from its process.
    if let Some(s) = &input.session_id {
        sessions::check_sid(s)?;
    }
    let sid = input.session_id.clone();
    let project = match agent {
        Agent::Claude => std::env::var_os("CLAUDE_PROJECT_DIR")
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
        Agent::Codex => None,
    }
    .or_else(|| input.cwd.clone())
    .or_else(|| std::env::current_dir().ok());
    Ok(Want {
        client: agent,
        sid,
        source: input.source.clone(),
        process: process::client(),
        project,
        name: std::env::var("REPOWIRE_PEER")
            .ok()
            .filter(|s| !s.is_empty()),
        circle: None,
        role: None,
        // Inside tmux the daemon types deliveries into the session's pane
        // when it is idle (the hooks say busy and idle).
        route: sessions::tmux_route(),
    })
}

type R = anyhow::Result<Reply>;

/// The session's peer: its record's token, else a join.
async fn peer(d: &Daemon, want: &Want) -> anyhow::Result<(Client, sessions::Record)> {
    if let Some(r) = sessions::lookup(&d.home, want).await?
        && let Some(t) = r.token.clone()
        && r.live()
    {
        return Ok((d.admin().with_identity(Some(t), None), r));
    }
    let j = sessions::join(d, want).await.map_err(explain)?;
    Ok((j.client, j.record))
}

async fn session_start(d: &Daemon, want: &Want) -> R {
    let j = sessions::join(d, want).await.map_err(explain)?;
    let persona = if j.peer.role == Role::Orchestrator {
        j.client
            .persona_status(None)
            .await
            .ok()
            .and_then(|s| s.identity)
    } else {
        None
    };
    let pending = take(&j.client).await?;
    let mut text = render::identity(&j.peer, persona.as_deref());
    if !pending.is_empty() {
        text.push_str("\n\n");
        text.push_str(&render::deliveries(&j.peer, &pending));
    }
    Ok(context("SessionStart", text, &j.client, &pending))
}

async fn prompt(d: &Daemon, want: &Want) -> R {
    let (c, rec) = peer(d, want).await?;
    if rec.stop_blocks > 0 {
        sessions::update(&d.home, want, |r| r.stop_blocks = 0).await?;
    }
    let me = heartbeat(&c, Status::Busy).await?;
    let pending = take(&c).await?;
    if pending.is_empty() {
        return Ok(Reply::default());
    }
    let text = render::deliveries(&me, &pending);
    Ok(context("UserPromptSubmit", text, &c, &pending))
}

async fn status(d: &Daemon, want: &Want, s: Status) -> R {
    let (c, _) = peer(d, want).await?;
    heartbeat(&c, s).await?;
    Ok(Reply::default())
}

async fn stop(d: &Daemon, want: &Want) -> R {
    let (c, rec) = peer(d, want).await?;
    if rec.stop_blocks >= MAX_STOP_BLOCKS {
        sessions::update(&d.home, want, |r| r.stop_blocks = 0).await?;
        heartbeat(&c, Status::Idle).await?;
        return Ok(Reply::note(format!(
            "repowire hook stop: {MAX_STOP_BLOCKS} stops in a row were already blocked by messages; \
this one goes through (what is still pending waits for the next prompt or the inbox tool)"
        )));
    }
    let pending = take(&c).await?;
    if pending.is_empty() {
        if rec.stop_blocks > 0 {
            sessions::update(&d.home, want, |r| r.stop_blocks = 0).await?;
        }
        heartbeat(&c, Status::Idle).await?;
        return Ok(Reply::default());
    }
    sessions::update(&d.home, want, |r| r.stop_blocks += 1).await?;
    let me = heartbeat(&c, Status::Busy).await?;
    let reason = format!(
        "{}\n\nHandle these before you stop.",
        render::deliveries(&me, &pending)
    );
    Ok(Reply {
        stdout: Some(json!({"decision": "block", "reason": reason}).to_string()),
        confirm: Some((c, ids(&pending))),
        ..Reply::default()
    })
}

async fn session_end(d: &Daemon, want: &Want, reason: Option<&str>) -> R {
    // `/clear` ends a Claude Code session id, not the session: the next
    // SessionStart (source `clear`) continues it in the same process.
    if reason == Some("clear") {
        return Ok(Reply::default());
    }
    let Some(rec) = sessions::update(&d.home, want, |r| r.ended = true).await? else {
        return Ok(Reply::default());
    };
    if let Some(t) = rec.token {
        let c = d.admin().with_identity(Some(t), None);
        heartbeat(&c, Status::Offline).await?;
    }
    Ok(Reply::default())
}

/// How long one `wait` hook runs at most (its timeout in the client's
/// settings is longer; the next stop starts another).
const WAIT_FOR: Duration = Duration::from_secs(45 * 60);
/// One long poll of the inbox.
const POLL_MS: u64 = 15_000;

async fn wait(d: &Daemon, want: &Want) -> R {
    // Where Claude Code would wait for this hook to end (print mode
    // without streamed input), waiting would hold the session open.
    if want.client == Agent::Claude
        && want
            .process
            .is_some_and(process::claude_runs_rewake_in_foreground)
    {
        return Ok(Reply::default());
    }
    let Some(rec) = sessions::lookup(&d.home, want).await? else {
        return Ok(Reply::default());
    };
    let Some(t) = rec.token.clone() else {
        return Ok(Reply::default());
    };
    // One waiter per session: a second one leaves it to the first.
    let Some(_held) = sessions::Sessions::new(&d.home).waiter(&rec)? else {
        return Ok(Reply::default());
    };
    let c = d.admin().with_identity(Some(t), None);
    // The stop hook that started with this one takes what is pending now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let until = tokio::time::Instant::now() + WAIT_FOR;
    while tokio::time::Instant::now() < until {
        // The session works again (a prompt, a blocked stop) or is gone:
        // its own hooks take over.
        match sessions::lookup(&d.home, want).await? {
            Some(r) if r.live() => {}
            _ => return Ok(Reply::default()),
        }
        let me = c.whoami().await.map_err(explain)?;
        if matches!(me.status, Status::Busy | Status::Offline) {
            return Ok(Reply::default());
        }
        let got = c
            .lease_via(
                DeliveryRoute::Hook,
                &LeaseReq {
                    max: Some(SHOW_MAX),
                    wait_ms: Some(POLL_MS),
                    lease_ms: Some(LEASE_MS),
                    route: None,
                },
            )
            .await
            .map_err(explain)?
            .deliveries;
        if !got.is_empty() {
            return Ok(Reply {
                stderr: Some(render::deliveries(&me, &got)),
                exit: 2,
                confirm: Some((c, ids(&got))),
                ..Reply::default()
            });
        }
    }
    Ok(Reply::default())
}

/// Lease what is pending, on the hook route.
async fn take(c: &Client) -> anyhow::Result<Vec<DeliveryInfo>> {
    let r = c
        .lease_via(
            DeliveryRoute::Hook,
            &LeaseReq {
                max: Some(SHOW_MAX),
                wait_ms: None,
                lease_ms: Some(LEASE_MS),
                route: None,
            },
        )
        .await
        .map_err(explain)?;
    Ok(r.deliveries)
}

async fn heartbeat(c: &Client, s: Status) -> anyhow::Result<PeerInfo> {
    c.heartbeat(&HeartbeatReq { status: Some(s) })
        .await
        .map_err(explain)
}

/// Context for the model (`hookSpecificOutput.additionalContext`): the one
/// shape both clients accept for SessionStart and UserPromptSubmit.
fn context(event: &str, text: String, c: &Client, shown: &[DeliveryInfo]) -> Reply {
    let out = json!({
        "hookSpecificOutput": {"hookEventName": event, "additionalContext": text}
    });
    Reply {
        stdout: Some(out.to_string()),
        confirm: (!shown.is_empty()).then(|| (c.clone(), ids(shown))),
        ..Reply::default()
    }
}

fn ids(ds: &[DeliveryInfo]) -> Vec<String> {
    ds.iter().map(|d| d.delivery_id.clone()).collect()
}

fn explain(e: crate::client::ClientError) -> anyhow::Error {
    match &e {
        crate::client::ClientError::Unreachable { .. } => {
            anyhow::anyhow!("no repowire daemon answers ({e}); nothing injected")
        }
        _ => anyhow::anyhow!("{} ({e})", e.code_str()),
    }
}
