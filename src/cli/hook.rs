//! `repowire hook <event>`: what an agent client's hooks run (docs/hooks.md;
//! the work is in [`crate::hook`]). Whatever goes wrong, the hook exits 0
//! and says why in one line on stderr: a hook must never break the agent's
//! session (a Claude Code hook that exits 2 would block the agent).

use super::{CmdResult, Ctx, Failure};
use crate::hook::{Input, Reply};
use crate::sessions::Daemon;
use crate::wiring::{Client as Agent, HookEvent};
use clap::Args;
use std::io::{IsTerminal, Read, Write};

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The hook event: session-start, user-prompt-submit, pre-tool-use,
    /// notification, stop, session-end, wait.
    pub event: String,
    /// The client that runs the hook: claude or codex.
    #[arg(long, default_value = "claude")]
    pub client: String,
}

/// The most a hook reads from stdin (clients send a few KiB).
const INPUT_MAX: u64 = 4 << 20;

pub async fn run(ctx: &Ctx, a: HookArgs) -> CmdResult {
    let reply = match (HookEvent::parse(&a.event), Agent::parse(&a.client)) {
        (None, _) => note(format!(
            "repowire hook: unknown event {:?} (one of: {}); nothing done",
            a.event,
            HookEvent::ALL.map(|e| e.as_str()).join(", ")
        )),
        (_, None) => note(format!(
            "repowire hook: unknown client {:?} (claude or codex); nothing done",
            a.client
        )),
        (Some(event), Some(agent)) => match read_input() {
            Err(e) => note(format!("repowire hook {}: {e}; nothing done", a.event)),
            Ok(input) => {
                let d = Daemon {
                    home: ctx.home.clone(),
                    url: ctx.url.clone(),
                };
                crate::hook::run(&d, agent, event, &input).await
            }
        },
    };
    finish(reply).await
}

fn note(line: String) -> Reply {
    Reply {
        stderr: Some(line),
        ..Reply::default()
    }
}

fn read_input() -> Result<Input, String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return Ok(Input::default());
    }
    let mut buf = Vec::new();
    stdin
        .lock()
        .take(INPUT_MAX)
        .read_to_end(&mut buf)
        .map_err(|e| format!("could not read the hook input: {e}"))?;
    Input::parse(&buf)
}

/// Write the reply; confirm what it showed only once it is written.
async fn finish(r: Reply) -> CmdResult {
    let mut written = true;
    if let Some(out) = &r.stdout {
        let mut o = std::io::stdout().lock();
        written = writeln!(o, "{out}").and_then(|()| o.flush()).is_ok();
    }
    if let Some(err) = &r.stderr {
        let mut e = std::io::stderr().lock();
        let ok = writeln!(e, "{}", super::term::escape(err)).and_then(|()| e.flush());
        if r.exit == 2 {
            // The wake-up text is the output: unwritten, it showed nothing.
            written = ok.is_ok();
        }
    }
    if written
        && let Some((c, ids)) = r.confirm
        && let Err(e) = c.confirm(ids).await
    {
        let _ = writeln!(
            std::io::stderr(),
            "repowire hook: shown but not confirmed ({e}); the inbox will show it again"
        );
    }
    match r.exit {
        0 => Ok(()),
        code => Err(Failure::quiet(code)),
    }
}
