//! The `repowire` command line: clap commands, one file per group.
//!
//! Thin: each command builds one request, calls the [`Client`], renders the
//! answer (a readable text, or the API's JSON with `--json`). Errors are
//! mapped to stderr and an exit code in one place, [`main`].
//!
//! Exit codes: 0 ok · 1 the daemon refused (coded error) · 2 usage ·
//! 3 no daemon reachable · 4 a wait timed out · 5 anything else ·
//! 141 stdout was closed by its reader.

mod daemon;
mod dashboard;
mod demo;
mod doctor;
mod events;
mod hook;
mod inbox;
mod jobs;
mod orchestrator;
mod peer;
mod persona;
mod review;
mod schedule;
mod setup;
pub mod term;

use crate::client::{Client, ClientError};
use crate::core::ErrorCode;
use crate::home::Home;
use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

/// repowire: a local coordination mesh for fleets of AI coding agents.
///
/// Every live agent session is a peer with an address in a circle. Peers ask
/// each other tracked questions, send notes and broadcasts; one peer per
/// circle may hold the orchestrator role. A daemon (`repowire daemon`) keeps
/// the state in SQLite under REPOWIRE_HOME; every other command talks to it.
///
/// Identity: commands that act as a peer use REPOWIRE_PEER_TOKEN (printed by
/// `peer register`), or the admin token of the home with `--as NAME`.
#[derive(Debug, Parser)]
#[command(
    name = "repowire",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// State directory [env: REPOWIRE_HOME] [default: ~/.repowire].
    #[arg(long, global = true, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Act as this peer (NAME or NAME@CIRCLE), using the home's admin token.
    #[arg(long = "as", global = true, value_name = "NAME")]
    pub as_peer: Option<String>,
    /// Daemon URL [env: REPOWIRE_URL] [default: the home's daemon.json, else http://127.0.0.1:8377].
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Run the daemon (foreground), or start/stop/inspect it.
    Daemon(Box<daemon::DaemonCmd>),
    /// Peers: register, list, ask, answer, notify, broadcast, inbox, roles.
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// Jobs: durable tracked work, routed by the circle's persona.
    #[command(subcommand)]
    Jobs(jobs::JobsCmd),
    /// Reviews: ask for one, see what you owe, mark it.
    #[command(subcommand)]
    Review(review::ReviewCmd),
    /// Schedules: deliveries later, once or on a cron; check-in scripts.
    #[command(subcommand)]
    Schedule(schedule::ScheduleCmd),
    /// The orchestrator role of a circle.
    #[command(subcommand)]
    Orchestrator(orchestrator::OrchestratorCmd),
    /// Every recorded stage of an ask, ask group, delivery or peer, with times.
    Trace(events::TraceCmd),
    /// Print (or follow) the event log.
    Events(events::EventsCmd),
    /// Check the daemon, the database, the token file, stale peers, and what `repowire setup` wired into Claude Code and Codex.
    Doctor,
    /// Print a one-time link that opens the web dashboard (and open it in the
    /// desktop's browser, where there is one). The link is good once, for a
    /// minute; the browser then holds a session cookie, not a token.
    Dashboard {
        /// Only print the link, even on a desktop.
        #[arg(long)]
        no_open: bool,
    },
    /// Serve MCP on stdio for an agent session: the session joins the mesh
    /// as a peer (registered, or resumed from <home>/mcp/) and gets the mesh
    /// tools. Without a daemon yet, tools answer `daemon_unreachable` until
    /// one starts (`repowire daemon start`); the session then joins.
    Mcp(McpArgs),
    /// Run a scripted tour: a daemon in a temp home, peers, an orchestrator
    /// claim, an ask answered and closed, notes delivered, a trace.
    Demo,
    /// Run by an agent client's hooks (Claude Code, Codex): reads the
    /// client's JSON on stdin, writes the JSON the client expects. Written
    /// into the clients' settings by `repowire setup`; see docs/hooks.md.
    Hook(hook::HookArgs),
    /// Wire the installed agent clients (Claude Code, Codex) to the mesh:
    /// the MCP server entry and the hooks. Merges into existing files,
    /// backs up what it changes; `--dry-run` shows the diff only.
    Setup(setup::SetupArgs),
    /// Take back out exactly what `repowire setup` wrote.
    Uninstall(setup::UninstallArgs),
}

#[derive(Debug, Args)]
pub struct McpArgs {
    /// The peer's name [default: REPOWIRE_PEER, else the working directory's name].
    #[arg(long)]
    name: Option<String>,
    /// The circle to join [default: default].
    #[arg(long)]
    circle: Option<String>,
    /// The agent kind (claude-code, codex, …) [default: detected from the environment].
    #[arg(long)]
    backend: Option<String>,
    /// The peer's role: agent (default), orchestrator (claims the
    /// circle's orchestrator role on start; refused while a live peer
    /// holds it), service or human.
    #[arg(long, value_parser = peer::parse_role)]
    role: Option<crate::core::peer::Role>,
    /// `push`: deliveries also arrive in the session as Claude Code channel
    /// events, a live hint that is never confirmed (Claude Code shows them
    /// only in a session started with channels; the inbox tool or a hook
    /// shows them again, marked as pushed, and confirms them); `pull`: only
    /// through the inbox tool; `auto` (default): push when the client
    /// declares the capability `experimental["claude/channel"]`, else pull.
    #[arg(long, default_value = "auto", value_parser = ["auto", "push", "pull"])]
    delivery: String,
    /// The agent client that runs this server (`claude` or `codex`, as
    /// `repowire setup` writes it): the session's peer is shared with the
    /// client's hooks (`repowire hook`), one peer per client session.
    #[arg(long, value_parser = ["claude", "codex"])]
    client: Option<String>,
}

/// What every command gets: the parsed global flags.
pub struct Ctx {
    pub json: bool,
    pub home: Home,
    pub as_peer: Option<String>,
    pub url: Option<String>,
}

/// A command's failure, already rendered for the user.
#[derive(Debug)]
pub struct Failure {
    pub code: ErrorCode,
    pub message: String,
    pub exit: u8,
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Api(e) => Failure {
                // The daemon refused: 1, or 4 for a wait that timed out.
                exit: if e.code == ErrorCode::Timeout { 4 } else { 1 },
                code: e.code,
                message: e.message,
            },
            ClientError::Unreachable { url, reason } => Failure::new(
                ErrorCode::DaemonUnreachable,
                format!(
                    "no repowire daemon answers at {url} ({reason}). Start one with `repowire daemon` \
                     (foreground) or `repowire daemon start` (background)"
                ),
            ),
            ClientError::Other(m) => Failure::new(ErrorCode::ClientError, m),
        }
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        // A full disk (e.g. the daemon cannot start) keeps its stable code.
        let full = e.chain().any(|c| {
            c.downcast_ref::<crate::core::Error>()
                .is_some_and(|e| e.code == ErrorCode::StorageFull)
                || c.downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::StorageFull)
        });
        let code = if full {
            ErrorCode::StorageFull
        } else {
            ErrorCode::Other
        };
        Failure::new(code, format!("{e:#}")).exit(5)
    }
}

impl Failure {
    /// A failure with `code`'s exit status ([`ErrorCode::exit_code`]).
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            exit: code.exit_code(),
        }
    }
    /// The same code with another exit status, where a cause of it differs
    /// (a full disk at daemon start, git that cannot run: 5).
    pub fn exit(mut self, exit: u8) -> Self {
        self.exit = exit;
        self
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Usage, message)
    }
    /// An exit status with nothing more to print (the command already said
    /// what it had to: `repowire hook wait` waking a session exits 2).
    pub fn quiet(exit: u8) -> Self {
        Self {
            code: ErrorCode::Usage,
            message: String::new(),
            exit,
        }
    }
}

pub type CmdResult = Result<(), Failure>;

impl Ctx {
    /// The daemon URL this invocation talks to.
    pub fn url(&self) -> String {
        self.home.daemon_url(self.url.as_deref())
    }

    /// A client with this invocation's identity: `--as` with the admin token,
    /// else REPOWIRE_PEER_TOKEN (or the file REPOWIRE_PEER_TOKEN_FILE names),
    /// else the admin token.
    pub fn client(&self) -> Client {
        let peer_token = crate::sessions::env_peer_token();
        let admin = || {
            std::env::var("REPOWIRE_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .or_else(|| self.home.read_token())
        };
        match (&self.as_peer, peer_token) {
            (Some(name), _) => Client::new(&self.url(), admin(), Some(name.clone())),
            (None, Some(t)) => {
                let expect = std::env::var("REPOWIRE_PEER")
                    .ok()
                    .filter(|s| !s.is_empty());
                Client::new(&self.url(), Some(t), None).expecting_peer(expect)
            }
            (None, None) => Client::new(&self.url(), admin(), None),
        }
    }

    /// A client with the home's admin token, whatever peer identity the
    /// environment carries: for admin-only commands (stop, doctor, prune…).
    pub fn admin_client(&self) -> Client {
        let token = std::env::var("REPOWIRE_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .or_else(|| self.home.read_token());
        Client::new(&self.url(), token, None)
    }

    /// Print `value` as JSON, or the text `human` renders (control
    /// characters escaped; see [`term`]). A closed stdout ends the process
    /// quietly with [`term::EXIT_CLOSED_PIPE`].
    pub fn out<T: Serialize>(&self, value: &T, human: impl FnOnce(&T) -> String) {
        if self.json {
            term::emit(&serde_json::to_string_pretty(value).unwrap_or_default());
        } else {
            let s = human(value);
            if !s.is_empty() {
                term::emit(&term::escape(s.trim_end()));
            }
        }
    }
}

/// A text argument; `-` reads it from stdin.
pub fn text_arg(s: String) -> Result<String, Failure> {
    if s != "-" {
        return Ok(s);
    }
    let mut buf = String::new();
    std::io::stdin()
        .read_to_string(&mut buf)
        .map_err(|e| Failure::usage(format!("could not read stdin: {e}")))?;
    Ok(buf)
}

/// Parse a humantime duration argument (`5s`, `10m`, `2h`).
pub fn duration_arg(s: &str) -> Result<std::time::Duration, String> {
    crate::core::time::parse_duration(s)
}

/// Whether the command line runs `repowire hook …` (after any global
/// flags).
fn is_hook_invocation() -> bool {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        match args[i].as_str() {
            "--home" | "--as" | "--url" => i += 2,
            a if a.starts_with('-') => i += 1,
            a => return a == "hook",
        }
    }
    false
}

/// `RUST_LOG` as a comma-separated list of `level` and `target=level`
/// directives (blanks around each and empty ones ignored); a value that does
/// not parse as a whole leaves `default` in place. (Span filters such as
/// `target[span]=debug` are not supported.)
fn log_filter(raw: Option<&str>, default: &str) -> tracing_subscriber::filter::Targets {
    let tidy = |v: &str| {
        v.split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>()
            .join(",")
    };
    raw.map(tidy)
        .filter(|v| !v.is_empty())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| tidy(default).parse().unwrap_or_default())
}

fn init_tracing(default: &str) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = log_filter(std::env::var("RUST_LOG").ok().as_deref(), default);
    // Colour only for a person at a terminal: an MCP client or a log file
    // reading stderr gets plain text.
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr on a full disk) is
        // dropped; the default reports it with eprintln!, which panics.
        .log_internal_errors(false);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

/// Parse arguments, run the command, map failure to stderr and an exit code.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // A hook must never fail its client's session: Claude Code reads
        // exit 2 (clap's usage exit) as "block" (every tool call, prompt or
        // stop). A hook command line this binary does not understand (an
        // older or newer setup's) exits 0 with one line instead.
        Err(e) if is_hook_invocation() && e.use_stderr() => {
            let text = e.to_string();
            let first = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(
                std::io::stderr(),
                "repowire hook: {}; nothing done (rerun `repowire setup`)",
                term::escape(first.trim_start_matches("error: "))
            );
            return ExitCode::SUCCESS;
        }
        Err(e) => e.exit(),
    };
    // The daemon logs its lifecycle; client commands stay quiet unless asked.
    init_tracing(if matches!(cli.cmd, Cmd::Daemon(_)) {
        "info"
    } else {
        "warn"
    });
    let ctx = Ctx {
        json: cli.json,
        home: Home::resolve(cli.home.as_deref()),
        as_peer: cli.as_peer,
        url: cli.url,
    };
    // One thread: the store is a single writer behind a lock anyway, and on
    // small machines cross-thread wake-ups cost more than they buy (measured:
    // 16-client notify throughput 7.3k/s multi-thread vs 10.9k/s here).
    // Periodic maintenance (checkpoints, retention) runs on blocking threads.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::from(5);
        }
    };
    let json = ctx.json;
    let res = rt.block_on(run(cli.cmd, ctx));
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) if f.message.is_empty() => ExitCode::from(f.exit),
        Err(f) => {
            let line = if json {
                serde_json::json!({"error": {"code": f.code.as_str(), "message": f.message}})
                    .to_string()
            } else {
                format!("error[{}]: {}", f.code, term::escape(&f.message))
            };
            // Not eprintln!: a stderr that cannot be written (a full disk
            // under a redirected log, a closed pipe) must not turn a coded
            // failure into a panic. The exit code still says what happened.
            let _ = writeln!(std::io::stderr(), "{line}");
            ExitCode::from(f.exit)
        }
    }
}

async fn run(cmd: Cmd, ctx: Ctx) -> CmdResult {
    match cmd {
        Cmd::Daemon(c) => c.run(&ctx).await,
        Cmd::Peer(c) => c.run(&ctx).await,
        Cmd::Orchestrator(c) => c.run(&ctx).await,
        Cmd::Jobs(c) => c.run(&ctx).await,
        Cmd::Review(c) => c.run(&ctx).await,
        Cmd::Schedule(c) => c.run(&ctx).await,
        Cmd::Trace(c) => c.run(&ctx).await,
        Cmd::Events(c) => c.run(&ctx).await,
        Cmd::Doctor => doctor::run(&ctx).await,
        Cmd::Dashboard { no_open } => dashboard::run(&ctx, no_open).await,
        Cmd::Mcp(a) => mcp(&ctx, a).await,
        Cmd::Demo => demo::run(&ctx).await,
        Cmd::Hook(a) => hook::run(&ctx, a).await,
        Cmd::Setup(a) => setup::setup(&ctx, a).await,
        Cmd::Uninstall(a) => setup::uninstall(&ctx, a).await,
    }
}

/// `repowire mcp`: serve MCP on stdio as a peer of the mesh.
async fn mcp(ctx: &Ctx, a: McpArgs) -> CmdResult {
    let McpArgs {
        name,
        circle,
        backend,
        role,
        delivery,
        client,
    } = a;
    let agent = client.as_deref().and_then(crate::wiring::Client::parse);
    let cwd = std::env::current_dir().ok();
    let project = agent
        .filter(|a| *a == crate::wiring::Client::Claude)
        .and_then(|_| std::env::var_os("CLAUDE_PROJECT_DIR"))
        .filter(|p| !p.is_empty())
        .map(std::path::PathBuf::from)
        .or_else(|| cwd.clone());
    let name_given = name.clone().or_else(|| {
        std::env::var("REPOWIRE_PEER")
            .ok()
            .filter(|s| !s.is_empty())
    });
    let name = name
        .or_else(|| {
            std::env::var("REPOWIRE_PEER")
                .ok()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| {
            cwd.as_ref().and_then(|d| d.file_name()).map(|n| {
                n.to_string_lossy().replace(
                    |c: char| !(c.is_ascii_alphanumeric() || "._-".contains(c)),
                    "-",
                )
            })
        })
        .unwrap_or_else(|| "agent".into());
    let backend_fixed = backend.is_some() || agent.is_some();
    let backend = backend
        .or(agent.map(|a| a.backend().to_string()))
        .or_else(|| {
            if std::env::var_os("CLAUDECODE").is_some() {
                Some("claude-code".into())
            } else if std::env::var_os("CODEX_HOME").is_some() {
                Some("codex".into())
            } else {
                None
            }
        });
    let delivery = crate::mcp::Delivery::parse(&delivery).unwrap_or(crate::mcp::Delivery::Auto);
    let tmux_route = (delivery == crate::mcp::Delivery::Auto)
        .then(crate::sessions::tmux_route)
        .flatten();
    let session = agent.map(|a| crate::sessions::Want {
        client: a,
        sid: match a {
            crate::wiring::Client::Claude => std::env::var("CLAUDE_CODE_SESSION_ID")
                .ok()
                .filter(|s| crate::sessions::check_sid(s).is_ok()),
            crate::wiring::Client::Codex => None,
        },
        source: None,
        process: crate::sessions::process::client(),
        project: project.clone(),
        name: name_given,
        circle: circle.clone(),
        role,
        route: tmux_route
            .clone()
            .or_else(|| delivery.fixed().map(|r| r.as_str().into())),
    });
    let join = crate::mcp::Join {
        delivery,
        name,
        circle,
        backend,
        backend_fixed,
        role,
        project_path: project.map(|d| d.display().to_string()),
        session,
        tmux_route,
    };
    crate::mcp::serve(&ctx.home, ctx.url.as_deref(), join)
        .await
        .map_err(Failure::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn rust_log_is_read_as_level_and_target_directives() {
        use tracing::Level;
        use tracing_subscriber::filter::LevelFilter;
        let f = |raw: Option<&str>| log_filter(raw, "info");
        assert!(f(None).would_enable("repowire", &Level::INFO));
        assert!(!f(None).would_enable("repowire", &Level::DEBUG));
        // Blanks and a trailing comma are forgiven.
        let t = f(Some(" warn , repowire_daemon=debug ,"));
        assert!(t.would_enable("repowire_daemon::serve", &Level::DEBUG));
        assert!(!t.would_enable("hyper", &Level::INFO));
        assert!(t.would_enable("hyper", &Level::WARN));
        // Nothing usable: the default.
        for bad in ["", " , ", "foo=loud", "x[span{a=1}]=debug"] {
            let t = f(Some(bad));
            assert_eq!(t.default_level(), Some(LevelFilter::INFO), "{bad:?}");
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_anywhere() {
        let c = Cli::try_parse_from(["repowire", "peer", "list", "--json", "--home", "/tmp/x"])
            .unwrap();
        assert!(c.json);
        assert_eq!(c.home.as_deref(), Some(std::path::Path::new("/tmp/x")));
        let c =
            Cli::try_parse_from(["repowire", "--as", "bob", "peer", "inbox", "--peek"]).unwrap();
        assert_eq!(c.as_peer.as_deref(), Some("bob"));
    }
}
