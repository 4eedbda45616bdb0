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
use std::time::Duration;

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
        (None, _) => Reply::note(format!(
            "repowire hook: unknown event {:?} (one of: {}); nothing done",
            a.event,
            HookEvent::ALL.map(|e| e.as_str()).join(", ")
        )),
        (_, None) => Reply::note(format!(
            "repowire hook: unknown client {:?} (claude or codex); nothing done",
            a.client
        )),
        (Some(event), Some(agent)) => match read_input() {
            Err(e) => Reply::note(format!("repowire hook {}: {e}; nothing done", a.event)),
            Ok(input) => {
                let d = Daemon {
                    home: ctx.home.clone(),
                    url: ctx.url.clone(),
                };
                let budget = budget(agent, event);
                match tokio::time::timeout(budget, crate::hook::run(&d, agent, event, &input)).await
                {
                    Ok(r) => r,
                    Err(_) => Reply::note(format!(
                        "repowire hook {}: no answer within {} s (before the client's timeout); nothing injected",
                        a.event,
                        budget.as_secs()
                    )),
                }
            }
        },
    };
    finish(reply).await
}

/// How long a hook may take: its timeout in the client's settings
/// ([`crate::wiring::HOOKS`]) less a margin, so it ends on its own, having
/// said why, before the client kills it.
fn budget(agent: Agent, event: HookEvent) -> Duration {
    let t = crate::wiring::hooks(agent)
        .find(|h| h.event == event)
        .map(|h| h.timeout_s)
        .unwrap_or(10);
    Duration::from_millis(u64::from(t) * 1000 * 8 / 10)
}

/// How long a client may take to send its input and close stdin.
const READ_WITHIN: Duration = Duration::from_secs(3);

fn read_input() -> Result<Input, String> {
    if std::io::stdin().is_terminal() {
        return Ok(Input::default());
    }
    // On a thread: a client that never closes stdin must not hold the hook.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = std::io::stdin()
            .lock()
            .take(INPUT_MAX)
            .read_to_end(&mut buf)
            .map(|_| buf);
        let _ = tx.send(r);
    });
    match rx.recv_timeout(READ_WITHIN) {
        Ok(Ok(buf)) => Input::parse(&buf),
        Ok(Err(e)) => Err(format!("could not read the hook input: {e}")),
        Err(_) => Err(format!(
            "the client did not close stdin within {} s",
            READ_WITHIN.as_secs()
        )),
    }
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
        // A note is one line whatever it quotes; the wake-up text (exit 2)
        // is the deliveries, lines and all.
        let text = if r.exit == 2 {
            super::term::escape(err)
        } else {
            super::term::field(err)
        };
        let ok = writeln!(e, "{text}").and_then(|()| e.flush());
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
