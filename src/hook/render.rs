//! The text a hook puts in front of the agent: who the session is on the
//! mesh, and the deliveries it has not seen. Peers' text goes through
//! unchanged (the client shows it as data inside JSON), cut where one
//! delivery would crowd out the rest.

use crate::api::{DeliveryInfo, PeerInfo};
use crate::core::delivery::DeliveryKind;
use std::fmt::Write;

/// Longest text shown for one delivery (a client caps what a hook may add).
const TEXT_MAX: usize = 4_000;

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
    format!("{head}\n{}", cut(&d.text))
}

fn cut(text: &str) -> String {
    if text.len() <= TEXT_MAX {
        return text.to_string();
    }
    let mut end = TEXT_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}… ({} more bytes not shown)",
        &text[..end],
        text.len() - end
    )
}

#[cfg(test)]
mod tests {
    use super::cut;

    #[test]
    fn long_text_is_cut_on_a_char_boundary() {
        let t = "é".repeat(3_000);
        let c = cut(&t);
        assert!(c.starts_with(&"é".repeat(2_000)));
        assert!(
            c.contains("2000 more bytes not shown"),
            "{}",
            &c[c.len() - 80..]
        );
        assert_eq!(cut("short"), "short");
    }
}
