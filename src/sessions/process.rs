//! Which agent client process runs us: the nearest ancestor that is not a
//! shell or a launcher. A client runs its MCP servers directly and its hooks
//! through a shell (`sh -c COMMAND`), so both land on the same process —
//! the one thing a Codex MCP server (started with an allow-listed
//! environment, no session id) shares with the same session's hooks.
//!
//! A process is named by its pid *and* its start time (`/proc/PID/stat`
//! field 22), so a pid reused by another process is not mistaken for it.

use serde::{Deserialize, Serialize};

/// One process, as `/proc` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    pub pid: u32,
    /// Start time in clock ticks after boot.
    pub start: u64,
}

/// What a hook or server may be started through on its way from the client.
const LAUNCHERS: &[&str] = &[
    "sh", "bash", "dash", "zsh", "fish", "ksh", "mksh", "busybox", "env", "timeout", "nohup",
    "nice", "stdbuf", "setsid", "time", "sudo", "doas",
];

struct Stat {
    comm: String,
    ppid: u32,
    start: u64,
}

fn stat(pid: u32) -> Option<Stat> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = s.get(close + 2..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): field N is rest[N - 3].
    Some(Stat {
        comm,
        ppid: rest.get(1)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
    })
}

/// Whether Claude Code (process `p`) would run an `asyncRewake` hook in the
/// foreground, waiting for it to end: Claude Code 2.1.197 backgrounds one
/// only in an interactive session (no `-p`/`--print`/`--init-only`/
/// `--sdk-url`, stdout a terminal) or with `--input-format stream-json`.
/// `false` when `p` is not Claude Code or `/proc` cannot tell.
pub fn claude_runs_rewake_in_foreground(p: Proc) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else {
        return false;
    };
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let is_claude = args.iter().take(2).any(|a| {
        std::path::Path::new(a)
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("claude"))
    });
    if !is_claude {
        return false;
    }
    let print = args.iter().any(|a| {
        matches!(a.as_str(), "-p" | "--print" | "--init-only") || a.starts_with("--sdk-url")
    });
    let tty = std::fs::read_link(format!("/proc/{}/fd/1", p.pid))
        .is_ok_and(|t| t.starts_with("/dev/pts") || t.to_string_lossy().starts_with("/dev/tty"));
    let streaming = args
        .windows(2)
        .any(|w| w[0] == "--input-format" && w[1] == "stream-json")
        || args.iter().any(|a| a == "--input-format=stream-json");
    let interactive = !print && tty;
    !interactive && !streaming
}

/// The client process that started this one: the first ancestor that is
/// not a shell or launcher. `None` where `/proc` cannot tell.
pub fn client() -> Option<Proc> {
    let mut pid = stat(std::process::id())?.ppid;
    for _ in 0..16 {
        if pid <= 1 {
            return None;
        }
        let st = stat(pid)?;
        if !LAUNCHERS.contains(&st.comm.as_str()) {
            return Some(Proc {
                pid,
                start: st.start,
            });
        }
        pid = st.ppid;
    }
    None
}

impl Proc {
    /// The process still runs (the same one: its start time matches).
    pub fn alive(&self) -> bool {
        stat(self.pid).is_some_and(|s| s.start == self.start)
    }

    /// A short stable key, for file names.
    pub fn key(&self) -> String {
        format!("p{}-{}", self.pid, self.start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_process_is_alive_and_a_changed_start_is_not() {
        let me = stat(std::process::id()).unwrap();
        let p = Proc {
            pid: std::process::id(),
            start: me.start,
        };
        assert!(p.alive());
        assert!(
            !Proc {
                start: me.start + 1,
                ..p
            }
            .alive()
        );
        // Our parent (the test runner's parent: cargo or a shell) is found.
        assert!(client().is_some());
    }
}
