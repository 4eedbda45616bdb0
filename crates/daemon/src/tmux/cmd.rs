//! Running tmux: one short-lived `tmux -S/-L <server> …` process per call,
//! never through a shell, with a deadline. The only place the daemon
//! starts tmux.

use repowire_core::tmux::{
    CMD_OPTION, FG_OPTION, MARK_OPTION, PaneAddr, send_keys_arg, server_args,
};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

/// What the typing command prints when the keys went in.
const TYPED: &str = "repowire-typed";

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
    /// Its window has synchronize-panes on: typed keys would reach every
    /// pane of the window.
    pub synchronized: bool,
    /// The peer the pane is bound to (pane option `@repowire_peer`).
    pub mark: String,
    /// The foreground process group recorded when it was bound
    /// (`@repowire_fg`; empty: none recorded).
    pub bound_fg: String,
    /// The terminal's foreground process group now, read from /proc (None:
    /// not readable here).
    pub fg: Option<i32>,
    /// The pane's foreground program (`#{pane_current_command}`).
    pub command: String,
}

impl PaneState {
    /// Whether the program that held the terminal when the pane was bound
    /// holds it still (true when either side is unknown).
    pub fn same_foreground(&self) -> bool {
        match (self.bound_fg.parse::<i32>().ok(), self.fg) {
            (Some(bound), Some(now)) => bound == now,
            _ => true,
        }
    }
}

/// The foreground process group of the terminal process `pid` runs on:
/// field 8 (`tpgid`) of `/proc/<pid>/stat`, after the command name in
/// parentheses (which may hold spaces and parentheses itself).
pub fn foreground_group(pid: u32) -> Option<i32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_tpgid(&stat)
}

fn parse_tpgid(stat: &str) -> Option<i32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let tpgid: i32 = rest.split_whitespace().nth(5)?.parse().ok()?;
    (tpgid > 0).then_some(tpgid)
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

    /// Type `line` into the pane, then press Enter — only if, at that very
    /// moment, the pane is still bound to `peer`, in no mode and not
    /// synchronised, with the program it was bound with: one tmux command
    /// puts the text in a paste buffer (`buffer`, a name of plain
    /// characters), then pastes it, presses Enter and says so under that
    /// condition (`if-shell -F`), or else deletes the buffer — so nothing
    /// can change between the check and the keys.
    pub async fn type_line(
        &self,
        addr: &PaneAddr,
        peer: &str,
        buffer: &str,
        line: &str,
    ) -> Result<(), TmuxError> {
        let arg = send_keys_arg(line);
        let p = addr.pane.as_str();
        // Bound to the peer, in no mode, not synchronised, and running the
        // program it was bound with (when one was recorded).
        let ready = format!(
            "#{{&&:#{{==:#{{{MARK_OPTION}}},{peer}}},#{{&&:#{{==:#{{pane_in_mode}},0}},#{{&&:#{{==:#{{pane_synchronized}},0}},#{{||:#{{==:#{{{CMD_OPTION}}},}},#{{==:#{{pane_current_command}},#{{{CMD_OPTION}}}}}}}}}}}}}}}"
        );
        let paste = format!(
            "paste-buffer -d -b {buffer} -t {p} ; send-keys -t {p} Enter ; display-message -p {TYPED}"
        );
        let skip = format!("delete-buffer -b {buffer}");
        let out = self
            .run(
                &addr.server,
                &[
                    "set-buffer",
                    "-b",
                    buffer,
                    "--",
                    &arg,
                    ";",
                    "if-shell",
                    "-F",
                    "-t",
                    p,
                    &ready,
                    &paste,
                    &skip,
                ],
            )
            .await?;
        if out.trim() == TYPED {
            Ok(())
        } else {
            Err(TmuxError(format!(
                "pane {p} was not ready when the keys were to go in (a mode, synchronised panes, another program or another binding): nothing was typed"
            )))
        }
    }

    /// Close a pane if it is bound to `peer` (checked in the same tmux
    /// command); `None`: whatever it is bound to.
    pub async fn kill_pane(&self, addr: &PaneAddr, peer: Option<&str>) -> Result<(), TmuxError> {
        let p = addr.pane.as_str();
        match peer {
            None => self.run(&addr.server, &["kill-pane", "-t", p]).await,
            Some(peer) => {
                let mine = format!("#{{==:#{{{MARK_OPTION}}},{peer}}}");
                let kill = format!("kill-pane -t {p}");
                self.run(&addr.server, &["if-shell", "-F", "-t", p, &mine, &kill])
                    .await
            }
        }
        .map(|_| ())
    }

    /// The live panes of a server, each with the peer it is bound to
    /// (empty: none). No server runs there: none.
    pub async fn panes(&self, server: &str) -> Result<HashMap<String, String>, TmuxError> {
        let fmt = format!("#{{pane_id}} #{{pane_dead}} #{{{MARK_OPTION}}}");
        match self.run(server, &["list-panes", "-a", "-F", &fmt]).await {
            Ok(out) => Ok(out
                .lines()
                .filter_map(|l| {
                    let mut f = l.splitn(3, ' ');
                    let (id, dead, mark) = (f.next()?, f.next()?, f.next().unwrap_or(""));
                    (dead != "1").then(|| (id.to_string(), mark.to_string()))
                })
                .collect()),
            Err(e) if no_server(&e.0) => Ok(HashMap::new()),
            Err(e) => Err(e),
        }
    }

    /// The pane's mode, liveness, binding and foreground.
    pub async fn pane_state(&self, addr: &PaneAddr) -> Result<PaneState, TmuxError> {
        let fmt = format!(
            "#{{pane_id}} #{{pane_in_mode}} #{{pane_dead}} #{{pane_synchronized}} #{{pane_pid}} #{{{MARK_OPTION}}} #{{{FG_OPTION}}} #{{pane_current_command}}"
        );
        let out = self
            .run(
                &addr.server,
                &["display-message", "-p", "-t", &addr.pane, &fmt],
            )
            .await?;
        let f: Vec<&str> = out.trim_end_matches('\n').splitn(8, ' ').collect();
        // display-message on a pane that is gone may print another pane's
        // fields: the id must be the one asked for.
        if f.first() != Some(&addr.pane.as_str()) || f.len() < 8 {
            return Err(TmuxError(format!("can't find pane: {}", addr.pane)));
        }
        Ok(PaneState {
            in_mode: f[1] == "1",
            dead: f[2] == "1",
            synchronized: f[3] == "1",
            fg: f[4].parse().ok().and_then(foreground_group),
            mark: f[5].to_string(),
            bound_fg: f[6].to_string(),
            command: f[7].to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A private tmux server (`-L`), killed on drop.
    struct Server(String);

    impl Drop for Server {
        fn drop(&mut self) {
            let _ = std::process::Command::new("tmux")
                .args(["-L", &self.0, "kill-server"])
                .output();
            // tmux leaves its socket file behind.
            use std::os::unix::fs::MetadataExt;
            if let Ok(me) = std::fs::metadata("/proc/self") {
                let _ = std::fs::remove_file(format!("/tmp/tmux-{}/{}", me.uid(), self.0));
            }
        }
    }

    /// Real tmux: keys go in only while the pane is bound to the peer and
    /// in no mode, the check and the keys being one tmux command; no paste
    /// buffer is left behind either way.
    #[tokio::test]
    async fn typing_needs_a_ready_pane_bound_to_the_peer() {
        let srv = Server(format!("rw-unit-{}", std::process::id()));
        let t = Tmux::new("tmux");
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let cat = format!("cat > '{}'", out.display());
        let started = t
            .run(
                &srv.0,
                &[
                    "-f",
                    "/dev/null",
                    "new-session",
                    "-d",
                    "-s",
                    "t",
                    "-P",
                    "-F",
                    "#{pane_id}",
                    &cat,
                ],
            )
            .await
            .expect("tmux is needed for this test (.ci/run installs it)");
        let addr = PaneAddr::new(&srv.0, started.trim()).unwrap();
        let p = addr.pane.as_str();
        assert!(t.type_line(&addr, "peer-a", "b1", "unbound").await.is_err());
        t.run(
            &srv.0,
            &["set-option", "-p", "-t", p, MARK_OPTION, "peer-a"],
        )
        .await
        .unwrap();
        assert!(
            t.type_line(&addr, "peer-b", "b2", "another's")
                .await
                .is_err()
        );
        t.run(&srv.0, &["copy-mode", "-t", p]).await.unwrap();
        assert!(
            t.type_line(&addr, "peer-a", "b3", "in copy mode")
                .await
                .is_err()
        );
        t.run(&srv.0, &["send-keys", "-t", p, "-X", "cancel"])
            .await
            .unwrap();
        t.type_line(&addr, "peer-a", "b4", "typed; $(x) #{pane_id};")
            .await
            .unwrap();
        let t0 = std::time::Instant::now();
        let mut got = String::new();
        while t0.elapsed() < Duration::from_secs(5) {
            got = std::fs::read_to_string(&out).unwrap_or_default();
            if got.ends_with('\n') {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(got, "typed; $(x) #{pane_id};\n");
        let buffers = t.run(&srv.0, &["list-buffers"]).await.unwrap();
        assert_eq!(buffers, "", "a paste buffer was left behind");
    }

    #[test]
    fn the_foreground_group_is_read_after_the_command_name() {
        assert_eq!(
            parse_tpgid("4242 (a) b) (c) S 1 4242 4242 34816 4300 4194560 0"),
            Some(4300)
        );
        assert_eq!(parse_tpgid("7 (sleep) S 1 7 7 0 -1 4194560"), None);
        assert_eq!(parse_tpgid("garbage"), None);
    }
}
