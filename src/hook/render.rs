//! The text a hook puts in front of the agent: who the session is on the
//! mesh, and the deliveries it has not seen. Peers' text goes through
//! whole and unchanged (the client shows it as data inside JSON; the daemon
//! caps a message at 64 KiB): what a hook confirms is what it showed.

use crate::api::{DeliveryInfo, PeerInfo};
use crate::core::delivery::DeliveryKind;
use std::fmt::Write;

/// Who this session is on the mesh (SessionStart context).
pub fn identity(peer: &PeerInfo, persona: Option<&str>) -> String {
    let mut s = format!(
        "repowire: this session is peer \"{}\" in circle \"{}\" (role {}) on the local repowire mesh of coding agents. \
The repowire MCP tools act as this peer: take messages with `inbox`, answer asks with `answer` (or `ack`/`decline`), \
ask others with `ask` then `wait_on_ack`, send notes with `notify_peer`, see who is around with `list_peers`. \
Messages for you also arrive here, through hooks, when a prompt starts and when you would stop.",
        peer.name,
        peer.circle,
        peer.role.as_str(),
    );
    if let Some(text) = persona.filter(|t| !t.trim().is_empty()) {
        let _ = write!(
            s,
            "\n\nYou hold the orchestrator role of this circle. The active persona's identity:\n{}",
            text.trim_end()
        );
    }
    s
}

/// Pending deliveries as one block of text, oldest first.
pub fn deliveries(peer: &PeerInfo, ds: &[DeliveryInfo]) -> String {
    let mut s = format!(
        "repowire: {} for you ({}):",
        match ds.len() {
            1 => "1 message".to_string(),
            n => format!("{n} messages"),
        },
        peer.name
    );
    for d in ds {
        s.push_str("\n\n");
        s.push_str(&one(d, &peer.circle));
    }
    if ds.iter().any(|d| d.kind == DeliveryKind::Ask) {
        s.push_str(
            "\n\nAn ask needs closure: answer it with the `answer` tool (its correlation id), or `ack` / `decline` it.",
        );
    }
    s
}

fn one(d: &DeliveryInfo, circle: &str) -> String {
    let from = match (&d.from, &d.from_circle) {
        (Some(f), Some(c)) if c != circle => format!("{f}@{c}"),
        (Some(f), _) => f.clone(),
        (None, _) => "repowire".into(),
    };
    let what = match d.kind {
        DeliveryKind::Ask => "ask",
        DeliveryKind::Reply => "reply",
        DeliveryKind::Notify => "note",
        DeliveryKind::Broadcast => "broadcast",
        DeliveryKind::Reminder => "reminder",
        DeliveryKind::System => "notice",
    };
    let mut head = format!("[{what} {} from {from}", d.delivery_id);
    if let Some(c) = &d.correlation_id {
        let _ = write!(head, ", correlation id {c}");
    }
    if let Some(j) = &d.job_id {
        let _ = write!(head, ", job {j}");
    }
    if d.pushed {
        head.push_str(", already pushed live as a channel event");
    }
    head.push(']');
    format!("{head}\n{}", d.text)
}
