//! Running tmux: one short-lived `tmux -S/-L <server> …` process per call,
//! never through a shell, with a deadline. The only place the daemon
//! starts tmux.

use repowire_core::tmux::{PaneAddr, send_keys_arg, server_args};
use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

/// How long one tmux command may take.
const DEADLINE: Duration = Duration::from_secs(5);

/// Why a tmux command failed: its first stderr line, or why it did not run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmuxError(pub String);

impl std::fmt::Display for TmuxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TmuxError {}

/// The tmux binary the daemon runs.
#[derive(Debug, Clone)]
pub struct Tmux {
    pub bin: PathBuf,
}

/// What the carrier looks at before typing into a pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaneState {
    /// In copy mode or another mode: keys would go to tmux, not the agent.
    pub in_mode: bool,
    /// The pane's process ended (the pane stays only with remain-on-exit).
    pub dead: bool,
    /// The pane's foreground program (`#{pane_current_command}`).
    pub command: String,
}

impl Tmux {
    pub fn new(bin: impl Into<PathBuf>) -> Tmux {
        Tmux { bin: bin.into() }
    }

    /// Run `tmux <server args> <args>`; its stdout, or its first stderr line.
    pub async fn run(&self, server: &str, args: &[&str]) -> Result<String, TmuxError> {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(server_args(server))
            .args(args)
            .env_remove("TMUX")
            .env_remove("TMUX_PANE")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let out = match tokio::time::timeout(DEADLINE, cmd.output()).await {
            Err(_) => {
                return Err(TmuxError(format!(
                    "tmux {} did not answer within {} s",
                    args.first().unwrap_or(&""),
                    DEADLINE.as_secs()
                )));
            }
            Ok(Err(e)) => {
                return Err(TmuxError(format!(
                    "could not run {}: {e}",
                    self.bin.display()
                )));
            }
            Ok(Ok(o)) => o,
        };
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
        }
        let err = String::from_utf8_lossy(&out.stderr);
        let line = err.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Err(TmuxError(if line.is_empty() {
            format!(
                "tmux {} failed ({})",
                args.first().unwrap_or(&""),
                out.status
            )
        } else {
            line.trim().to_string()
        }))
    }

    /// Type `line` into the pane as literal keys, then press Enter.
    pub async fn type_line(&self, addr: &PaneAddr, line: &str) -> Result<(), TmuxError> {
        let arg = send_keys_arg(line);
        self.run(
            &addr.server,
            &["send-keys", "-t", &addr.pane, "-l", "--", &arg],
        )
        .await?;
        self.run(&addr.server, &["send-keys", "-t", &addr.pane, "Enter"])
            .await?;
        Ok(())
    }

    /// The live panes of a server (`None`: no server runs there, so none).
    pub async fn panes(&self, server: &str) -> Result<HashSet<String>, TmuxError> {
        match self
            .run(
                server,
                &["list-panes", "-a", "-F", "#{pane_id} #{pane_dead}"],
            )
            .await
        {
            Ok(out) => Ok(out
                .lines()
                .filter_map(|l| l.split_once(' '))
                .filter(|(_, dead)| *dead != "1")
                .map(|(id, _)| id.to_string())
                .collect()),
            Err(e) if no_server(&e.0) => Ok(HashSet::new()),
            Err(e) => Err(e),
        }
    }

    /// The pane's mode and liveness.
    pub async fn pane_state(&self, addr: &PaneAddr) -> Result<PaneState, TmuxError> {
        let out = self
            .run(
                &addr.server,
                &[
                    "display-message",
                    "-p",
                    "-t",
                    &addr.pane,
                    "#{pane_id} #{pane_in_mode} #{pane_dead} #{pane_current_command}",
                ],
            )
            .await?;
        let f: Vec<&str> = out.trim_end_matches('\n').splitn(4, ' ').collect();
        // display-message on a pane that is gone may print another pane's
        // fields: the id must be the one asked for.
        if f.first() != Some(&addr.pane.as_str()) {
            return Err(TmuxError(format!("can't find pane: {}", addr.pane)));
        }
        Ok(PaneState {
            in_mode: f.get(1) == Some(&"1"),
            dead: f.get(2) == Some(&"1"),
            command: f.get(3).unwrap_or(&"").to_string(),
        })
    }

    /// What the pane shows now (its visible screen).
    pub async fn screen(&self, addr: &PaneAddr) -> Result<String, TmuxError> {
        self.run(&addr.server, &["capture-pane", "-p", "-t", &addr.pane])
            .await
    }
}

/// tmux's words for "no server is running on that socket".
pub fn no_server(err: &str) -> bool {
    err.contains("no server running")
        || err.contains("error connecting to")
        || err.contains("No such file or directory")
}
