//! What repowire wires into each agent client: the hook events it handles
//! and, per client, which of the client's events run which `repowire hook`
//! subcommand. One table, read by `repowire setup` (what to write),
//! `repowire uninstall` (what to take back out), `repowire doctor` (what to
//! look for) and `repowire hook` (which events exist).
//!
//! Shapes checked against Claude Code 2.1.197 (npm `@anthropic-ai/claude-code`)
//! and Codex CLI 0.171.0 (npm `@openai/codex`); see docs/hooks.md.

/// The agent clients repowire can wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    Claude,
    Codex,
}

impl Client {
    pub const ALL: [Client; 2] = [Client::Claude, Client::Codex];

    /// The `--client` value and the backend recorded on the peer.
    pub fn as_str(self) -> &'static str {
        match self {
            Client::Claude => "claude",
            Client::Codex => "codex",
        }
    }

    /// The peer's `backend` when this client's session joins.
    pub fn backend(self) -> &'static str {
        match self {
            Client::Claude => "claude-code",
            Client::Codex => "codex",
        }
    }

    pub fn parse(s: &str) -> Option<Client> {
        match s {
            "claude" | "claude-code" => Some(Client::Claude),
            "codex" => Some(Client::Codex),
            _ => None,
        }
    }
}

/// The hook events repowire handles: `repowire hook <EVENT>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookEvent {
    /// Register or resume the session's peer; identity and pending
    /// deliveries as context.
    SessionStart,
    /// Pending deliveries as context; the peer is busy.
    UserPromptSubmit,
    /// The peer is busy (a tool is about to run).
    PreToolUse,
    /// The peer is idle when the client says it waits for the user.
    Notification,
    /// Pending deliveries block the stop (bounded); else the peer is idle.
    Stop,
    /// The peer goes offline.
    SessionEnd,
    /// The background waiter (Claude Code `asyncRewake`): wakes an idle
    /// session when a delivery arrives.
    Wait,
}

impl HookEvent {
    pub const ALL: [HookEvent; 7] = [
        HookEvent::SessionStart,
        HookEvent::UserPromptSubmit,
        HookEvent::PreToolUse,
        HookEvent::Notification,
        HookEvent::Stop,
        HookEvent::SessionEnd,
        HookEvent::Wait,
    ];

    /// The subcommand: `repowire hook <this>`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookEvent::SessionStart => "session-start",
            HookEvent::UserPromptSubmit => "user-prompt-submit",
            HookEvent::PreToolUse => "pre-tool-use",
            HookEvent::Notification => "notification",
            HookEvent::Stop => "stop",
            HookEvent::SessionEnd => "session-end",
            HookEvent::Wait => "wait",
        }
    }

    pub fn parse(s: &str) -> Option<HookEvent> {
        HookEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One hook entry to write into a client's configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hook {
    pub client: Client,
    /// The client's own event name (`SessionStart`, `Stop`, …).
    pub client_event: &'static str,
    /// The matcher, where the client's event takes one.
    pub matcher: Option<&'static str>,
    /// What runs: `repowire hook <event> --client <client>`.
    pub event: HookEvent,
    /// Seconds the client waits before killing the hook.
    pub timeout_s: u32,
    /// Claude Code `asyncRewake`: runs in the background; exit 2 wakes the
    /// model with the hook's output.
    pub async_rewake: bool,
}

const fn hook(
    client: Client,
    client_event: &'static str,
    matcher: Option<&'static str>,
    event: HookEvent,
    timeout_s: u32,
) -> Hook {
    Hook {
        client,
        client_event,
        matcher,
        event,
        timeout_s,
        async_rewake: false,
    }
}

/// Every hook `repowire setup` writes; one row per (client, client event,
/// subcommand). Claude Code has no Notification-less idle signal but its
/// `idle_prompt` notification; Codex has no Notification event and no
/// background rewake, so its sessions are woken by the next prompt or stop.
pub const HOOKS: &[Hook] = &[
    hook(
        Client::Claude,
        "SessionStart",
        None,
        HookEvent::SessionStart,
        10,
    ),
    hook(
        Client::Claude,
        "UserPromptSubmit",
        None,
        HookEvent::UserPromptSubmit,
        10,
    ),
    hook(
        Client::Claude,
        "PreToolUse",
        Some("*"),
        HookEvent::PreToolUse,
        5,
    ),
    hook(
        Client::Claude,
        "Notification",
        None,
        HookEvent::Notification,
        5,
    ),
    hook(Client::Claude, "Stop", None, HookEvent::Stop, 10),
    Hook {
        async_rewake: true,
        ..hook(Client::Claude, "Stop", None, HookEvent::Wait, 3600)
    },
    hook(Client::Claude, "SessionEnd", None, HookEvent::SessionEnd, 5),
    hook(
        Client::Codex,
        "SessionStart",
        None,
        HookEvent::SessionStart,
        10,
    ),
    hook(
        Client::Codex,
        "UserPromptSubmit",
        None,
        HookEvent::UserPromptSubmit,
        10,
    ),
    hook(Client::Codex, "PreToolUse", None, HookEvent::PreToolUse, 5),
    hook(Client::Codex, "Stop", None, HookEvent::Stop, 10),
    // Codex clamps SessionEnd hooks to 3 s.
    hook(Client::Codex, "SessionEnd", None, HookEvent::SessionEnd, 3),
];

/// The hooks of one client.
pub fn hooks(client: Client) -> impl Iterator<Item = &'static Hook> {
    HOOKS.iter().filter(move |h| h.client == client)
}

/// The name under which the MCP server is registered in every client.
pub const MCP_SERVER_NAME: &str = "repowire";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_and_every_client_has_the_core_hooks() {
        for e in HookEvent::ALL {
            assert_eq!(HookEvent::parse(e.as_str()), Some(e));
        }
        for c in Client::ALL {
            assert_eq!(Client::parse(c.as_str()), Some(c));
            for must in [
                HookEvent::SessionStart,
                HookEvent::UserPromptSubmit,
                HookEvent::Stop,
            ] {
                assert!(hooks(c).any(|h| h.event == must), "{c:?} lacks {must:?}");
            }
        }
    }
}
