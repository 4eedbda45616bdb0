//! The one error type of the domain, with stable machine codes.
//!
//! Codes are part of the public contract (HTTP `code`, CLI stderr, MCP
//! `isError` text); never rename one. `docs/errors.md` lists them.

use std::fmt;

/// A stable, documented error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    Unauthorized,
    Forbidden,
    BadRequest,
    MethodNotAllowed,
    NotFound,
    UnknownPeer,
    UnknownAsk,
    NameTaken,
    InvalidName,
    CrossCircle,
    RoleHeld,
    InvalidState,
    PeerOffline,
    IdentityRequired,
    AmbiguousPeer,
    RateLimited,
    InboxFull,
    TooLarge,
    Timeout,
    ShuttingDown,
    UnknownPersona,
    PersonaError,
    StorageFull,
    TooManyConnections,
    TooManyStreams,
    UriTooLong,
    HeadersTooLarge,
    SpawnLimit,
    TmuxFailed,
    PaneUnverified,
    Internal,
    // Codes the CLI and MCP processes produce themselves, never the daemon.
    Usage,
    DaemonUnreachable,
    ClientError,
    Other,
    AlreadyRunning,
    DaemonFailed,
    StreamClosed,
    JobFailed,
    Doctor,
    Persona,
    PersonaLint,
    BadFixture,
    Exists,
    Git,
    ClientConfig,
    NoClient,
}

impl ErrorCode {
    /// Every code, for docs and tests.
    pub const ALL: [ErrorCode; 47] = [
        Self::Unauthorized,
        Self::Forbidden,
        Self::BadRequest,
        Self::MethodNotAllowed,
        Self::NotFound,
        Self::UnknownPeer,
        Self::UnknownAsk,
        Self::NameTaken,
        Self::InvalidName,
        Self::CrossCircle,
        Self::RoleHeld,
        Self::InvalidState,
        Self::PeerOffline,
        Self::IdentityRequired,
        Self::AmbiguousPeer,
        Self::RateLimited,
        Self::InboxFull,
        Self::TooLarge,
        Self::Timeout,
        Self::ShuttingDown,
        Self::UnknownPersona,
        Self::PersonaError,
        Self::StorageFull,
        Self::TooManyConnections,
        Self::TooManyStreams,
        Self::UriTooLong,
        Self::HeadersTooLarge,
        Self::SpawnLimit,
        Self::TmuxFailed,
        Self::PaneUnverified,
        Self::Internal,
        Self::Usage,
        Self::DaemonUnreachable,
        Self::ClientError,
        Self::Other,
        Self::AlreadyRunning,
        Self::DaemonFailed,
        Self::StreamClosed,
        Self::JobFailed,
        Self::Doctor,
        Self::Persona,
        Self::PersonaLint,
        Self::BadFixture,
        Self::Exists,
        Self::Git,
        Self::ClientConfig,
        Self::NoClient,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::BadRequest => "bad_request",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::NotFound => "not_found",
            Self::UnknownPeer => "unknown_peer",
            Self::UnknownAsk => "unknown_ask",
            Self::NameTaken => "name_taken",
            Self::InvalidName => "invalid_name",
            Self::CrossCircle => "cross_circle",
            Self::RoleHeld => "role_held",
            Self::InvalidState => "invalid_state",
            Self::PeerOffline => "peer_offline",
            Self::IdentityRequired => "identity_required",
            Self::AmbiguousPeer => "ambiguous_peer",
            Self::RateLimited => "rate_limited",
            Self::InboxFull => "inbox_full",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::ShuttingDown => "shutting_down",
            Self::UnknownPersona => "unknown_persona",
            Self::PersonaError => "persona_error",
            Self::StorageFull => "storage_full",
            Self::TooManyConnections => "too_many_connections",
            Self::TooManyStreams => "too_many_streams",
            Self::UriTooLong => "uri_too_long",
            Self::HeadersTooLarge => "headers_too_large",
            Self::SpawnLimit => "spawn_limit",
            Self::TmuxFailed => "tmux_failed",
            Self::PaneUnverified => "pane_unverified",
            Self::Internal => "internal",
            Self::Usage => "usage",
            Self::DaemonUnreachable => "daemon_unreachable",
            Self::ClientError => "client_error",
            Self::Other => "error",
            Self::AlreadyRunning => "already_running",
            Self::DaemonFailed => "daemon_failed",
            Self::StreamClosed => "stream_closed",
            Self::JobFailed => "job_failed",
            Self::Doctor => "doctor",
            Self::Persona => "persona",
            Self::PersonaLint => "persona_lint",
            Self::BadFixture => "bad_fixture",
            Self::Exists => "exists",
            Self::Git => "git",
            Self::ClientConfig => "client_config",
            Self::NoClient => "no_client",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::Unauthorized => 401,
            Self::Forbidden | Self::CrossCircle => 403,
            Self::BadRequest | Self::InvalidName | Self::IdentityRequired | Self::AmbiguousPeer => {
                400
            }
            Self::NotFound | Self::UnknownPeer | Self::UnknownAsk => 404,
            Self::NameTaken | Self::RoleHeld | Self::InvalidState | Self::PeerOffline => 409,
            Self::TooLarge => 413,
            Self::MethodNotAllowed => 405,
            Self::RateLimited | Self::InboxFull => 429,
            Self::Timeout => 408,
            Self::Internal => 500,
            Self::ShuttingDown => 503,
            Self::UnknownPersona => 404,
            Self::PersonaError => 422,
            Self::StorageFull => 507,
            Self::TooManyConnections => 503,
            Self::TooManyStreams => 429,
            Self::UriTooLong => 414,
            Self::HeadersTooLarge => 431,
            Self::SpawnLimit => 429,
            Self::TmuxFailed => 502,
            Self::PaneUnverified => 403,
            // Never sent by the daemon (see `is_local`); one that were would
            // be a bug in it.
            Self::Usage
            | Self::DaemonUnreachable
            | Self::ClientError
            | Self::Other
            | Self::AlreadyRunning
            | Self::DaemonFailed
            | Self::StreamClosed
            | Self::JobFailed
            | Self::Doctor
            | Self::Persona
            | Self::PersonaLint
            | Self::BadFixture
            | Self::Exists
            | Self::Git
            | Self::ClientConfig
            | Self::NoClient => 500,
        }
    }

    /// Whether only the CLI or MCP process produces this code (the daemon
    /// never answers with it). `docs/errors.md` lists these apart.
    pub fn is_local(self) -> bool {
        matches!(
            self,
            Self::Usage
                | Self::DaemonUnreachable
                | Self::ClientError
                | Self::Other
                | Self::AlreadyRunning
                | Self::DaemonFailed
                | Self::StreamClosed
                | Self::JobFailed
                | Self::Doctor
                | Self::Persona
                | Self::PersonaLint
                | Self::BadFixture
                | Self::Exists
                | Self::Git
                | Self::ClientConfig
                | Self::NoClient
        )
    }

    /// The CLI's exit status for this code (`docs/errors.md`, "CLI exit
    /// codes"). A failure may say otherwise where the same code has a
    /// different cause (`storage_full` at daemon start, `git` not runnable: 5).
    pub fn exit_code(self) -> u8 {
        match self {
            Self::Usage => 2,
            Self::DaemonUnreachable | Self::StreamClosed => 3,
            Self::Timeout => 4,
            Self::ClientError | Self::Other | Self::DaemonFailed => 5,
            _ => 1,
        }
    }

    /// One line for `docs/errors.md` and `--help`.
    pub fn meaning(self) -> &'static str {
        match self {
            Self::Unauthorized => "missing, malformed or unknown bearer token",
            Self::Forbidden => "the caller is authenticated but may not do this",
            Self::BadRequest => {
                "malformed JSON, a missing or invalid field, or a value over a limit"
            }
            Self::NotFound => "no such route or object",
            Self::MethodNotAllowed => "the route exists but does not take that HTTP method",
            Self::UnknownPeer => "no peer of that name (in that circle)",
            Self::UnknownAsk => "no ask with that correlation id",
            Self::NameTaken => "a peer of that name already exists in the circle",
            Self::InvalidName => "a name or circle is not [A-Za-z0-9._-]{1,64}",
            Self::CrossCircle => {
                "a peer named, or an object acted on or read, is in another circle than the caller (admin may bypass explicitly where a command offers it)"
            }
            Self::RoleHeld => "the orchestrator role is held by a live peer in that circle",
            Self::InvalidState => "the object is not in a state that allows this",
            Self::PeerOffline => {
                "(reserved) the peer is offline and the action needs it online; asks and notes to offline peers queue instead"
            }
            Self::IdentityRequired => "the action is done as a peer: use a peer token or --as NAME",
            Self::AmbiguousPeer => "the name exists in several circles: say NAME@CIRCLE",
            Self::RateLimited => "too many requests of this kind from this sender; retry later",
            Self::InboxFull => "the recipient has too many undelivered messages",
            Self::TooLarge => "the request body is over the daemon's size limit",
            Self::Timeout => {
                "CLI only: a wait ended before the ask was closed (the API answers `done: false`)"
            }
            Self::ShuttingDown => "the daemon is stopping; retry once it is back",
            Self::UnknownPersona => "no persona of that name (user file or shipped)",
            Self::PersonaError => {
                "the persona does not compile or defines no entry point (see file:line)"
            }
            Self::StorageFull => {
                "the disk holding the daemon's home is full: nothing was written; free space and retry"
            }
            Self::TooManyConnections => {
                "the daemon is at its cap of open connections; retry shortly"
            }
            Self::TooManyStreams => {
                "this token already holds the most event/delivery streams allowed; close one first"
            }
            Self::UriTooLong => "the request target (path and query) is over the daemon's limit",
            Self::HeadersTooLarge => {
                "the request headers are over the daemon's limit (size or count)"
            }
            Self::SpawnLimit => {
                "the circle already has the most spawned sessions alive (--max-spawns-per-circle): kill one first"
            }
            Self::TmuxFailed => {
                "tmux refused a command or could not be run (the message is tmux's own); a spawn that failed so started nothing"
            }
            Self::PaneUnverified => {
                "a tmux route names a pane that did not show the registration's claim (pane option @repowire_claim): a route is recorded only from a process that can reach that tmux server"
            }
            Self::Internal => "a bug or storage failure in the daemon (see its log)",
            Self::Usage => {
                "CLI: a command line it cannot use: a bad value or combination of flags, unreadable stdin or input file"
            }
            Self::DaemonUnreachable => {
                "CLI and MCP: no daemon answers at the URL; the request never reached one (the message names the command that starts it)"
            }
            Self::ClientError => {
                "CLI and MCP: an unreadable answer, or a connection that broke mid-request"
            }
            Self::Other => {
                "CLI: a local failure with no more specific code (I/O, a file it cannot write)"
            }
            Self::AlreadyRunning => {
                "CLI `daemon start`: a daemon already answers at the URL (the message gives its pid)"
            }
            Self::DaemonFailed => {
                "CLI `daemon start`: the daemon exited at start or did not answer within 10s (see `daemon.log`)"
            }
            Self::StreamClosed => "CLI `events`: the daemon closed the event stream (it stopped)",
            Self::JobFailed => "CLI `jobs run`: the job ended, but not succeeded",
            Self::Doctor => "CLI `doctor`: some checks failed (each is listed on stdout)",
            Self::Persona => {
                "CLI `persona`: no persona of that name or file, or it cannot be read (the message lists the shipped ones)"
            }
            Self::PersonaLint => {
                "CLI `persona check`: the persona has problems (each is listed with file:line)"
            }
            Self::BadFixture => {
                "CLI `persona test`: a fixture, job, review or check-in file is not valid JSON of its kind"
            }
            Self::Exists => "CLI `persona new`: the file exists; pass --force to overwrite",
            Self::Git => {
                "CLI `review request`/`update`: the reference is not a branch or commit (exit 5 when git itself cannot be run)"
            }
            Self::ClientConfig => {
                "CLI `setup`/`uninstall`/`doctor`: an agent client's configuration file cannot be parsed or written (the message names the file; nothing was changed), or `setup` ran from a binary not named `repowire` (hooks are recognised by that name)"
            }
            Self::NoClient => {
                "CLI `setup`: neither Claude Code nor Codex was found (pass `--claude` or `--codex` to wire one anyway)"
            }
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A coded error with a human message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

impl Error {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

// The one thing core knows about SQLite: how its errors map onto the
// vocabulary. Rust's orphan rule puts this impl here (neither the error nor
// rusqlite's type belongs to the store), behind a feature only the store
// enables, so `?` on a rusqlite call in the store yields a coded error.
#[cfg(feature = "sqlite")]
impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        // SQLITE_FULL is what SQLite answers when a write hits ENOSPC, and
        // SQLITE_IOERR_SHMSIZE when it cannot grow the -shm file (on a full
        // disk, at open). The transaction was rolled back: nothing
        // acknowledged is lost.
        let full = match &e {
            rusqlite::Error::SqliteFailure(f, _) => {
                f.code == rusqlite::ErrorCode::DiskFull
                    || f.extended_code == rusqlite::ffi::SQLITE_IOERR_SHMSIZE
            }
            _ => false,
        };
        if full {
            return Error::new(
                ErrorCode::StorageFull,
                format!(
                    "the disk holding the store is full ({e}): nothing was written; free space and retry"
                ),
            );
        }
        Error::internal(format!("storage: {e}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::internal(format!("stored json: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(c));
            assert!(seen.insert(c.as_str()), "duplicate {c}");
            assert!((400..600).contains(&c.http_status()));
            assert!((1..=5).contains(&c.exit_code()));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }
}
