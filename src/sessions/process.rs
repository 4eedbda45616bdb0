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
