//! The tmux delivery route's pure parts: a pane's address
//! (`tmux:<server>:<pane>`, from `$TMUX`/`$TMUX_PANE` or a recorded route),
//! and the one line typed into a pane for a delivery — sanitised so that only
//! literal text arrives. Running tmux is the daemon's (`repowire-daemon`'s
//! `tmux` module); nothing here does I/O.

use crate::delivery::DeliveryKind;
use crate::error::{Error, Result};
use crate::limits::PATH_BYTES;

/// The prefix of a recorded tmux route.
pub const PREFIX: &str = "tmux:";

/// The pane option that names the peer a pane is bound to (its id): set by
/// the daemon when it spawns a session there or verifies a registration's
/// claim. Nothing is typed into, or closed in, a pane marked otherwise (a
/// restarted tmux server reuses pane ids).
pub const MARK_OPTION: &str = "@repowire_peer";

/// The pane option holding the foreground process group the pane had when
/// its peer was bound: typing waits while another group holds the terminal
/// (the agent ended and left a shell prompt, or another program runs).
pub const FG_OPTION: &str = "@repowire_fg";

/// The pane option recording the foreground program when the pane was
/// bound (`#{pane_current_command}` then): typing waits while another runs.
pub const CMD_OPTION: &str = "@repowire_cmd";

/// A registration's claim on a pane: a fresh random value (32 lowercase hex
/// characters) sent with the route; before it sends it, the registering
/// process sets the pane option `@repowire_claim_<h>`, where `h` is the
/// first 32 hex characters of the claim's SHA-256. Only a process that can
/// reach the pane's tmux server can set it (and such a process can already
/// type into that pane), so the daemon records a tmux route only after it
/// saw the option there. Command lines (readable by every user) carry only
/// `h`, never the claim itself: seeing one does not let anyone claim.
pub fn claim_option(claim: &str) -> Result<String> {
    let ok = claim.len() == 32
        && claim
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !ok {
        return Err(Error::bad_request(
            "tmux_claim is 32 lowercase hex characters (what `repowire` sets as the pane option @repowire_claim_<claim>)",
        ));
    }
    Ok(format!(
        "@repowire_claim_{}",
        &crate::ids::token_hash(claim)[..32]
    ))
}

/// A new claim for [`claim_option`].
pub fn new_claim() -> String {
    crate::ids::new_hex::<16>()
}

/// The most characters typed into a pane for one delivery. A longer text is
/// typed as a summary plus the command that prints the rest: a terminal in
/// line mode takes at most 4,095 bytes a line, and an agent's prompt box is
/// no place for a wall of text.
pub const TYPED_MAX_CHARS: usize = 600;

/// How much of a long text the summary keeps.
pub const SUMMARY_CHARS: usize = 200;

/// Where a pane is: its tmux server and its pane id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PaneAddr {
    /// The server: a socket path (it holds a `/`: `tmux -S`) or a socket
    /// name (`tmux -L`).
    pub server: String,
    /// The pane id, `%` and digits (`$TMUX_PANE`): stable for the pane's life.
    pub pane: String,
}

impl PaneAddr {
    /// Build and check an address.
    pub fn new(server: &str, pane: &str) -> Result<PaneAddr> {
        if server.is_empty()
            || server.len() > PATH_BYTES
            || server.chars().any(|c| c.is_control() || c == ',')
        {
            return Err(Error::bad_request(format!(
                "invalid tmux server {:?}: a socket path or name, without control characters or commas",
                server
            )));
        }
        let digits = pane.strip_prefix('%').unwrap_or("");
        if digits.is_empty() || digits.len() > 9 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::bad_request(format!(
                "invalid tmux pane {:?}: a pane id is % and digits, as $TMUX_PANE has it",
                pane
            )));
        }
        Ok(PaneAddr {
            server: server.into(),
            pane: pane.into(),
        })
    }

    /// Parse a recorded route, `tmux:<server>:<pane>` (the server may hold
    /// `:`, the pane never does).
    pub fn parse(route: &str) -> Result<PaneAddr> {
        let rest = route.strip_prefix(PREFIX).ok_or_else(|| {
            Error::bad_request(format!(
                "not a tmux route: {:?} (tmux:<server>:<pane>)",
                route
            ))
        })?;
        let (server, pane) = rest.rsplit_once(':').ok_or_else(|| {
            Error::bad_request(format!(
                "a tmux route names its server and pane: tmux:<server>:<pane>, not {:?}",
                route
            ))
        })?;
        PaneAddr::new(server, pane)
    }

    /// The pane a process inside tmux runs in: `$TMUX` is
    /// `<socket path>,<server pid>,<session>`, `$TMUX_PANE` the pane id.
    /// `None` outside tmux (either unset or empty).
    pub fn from_env(tmux: Option<&str>, pane: Option<&str>) -> Option<Result<PaneAddr>> {
        let tmux = tmux.filter(|s| !s.is_empty())?;
        let pane = pane.filter(|s| !s.is_empty())?;
        // The socket path ends at the last two commas (a path may hold one).
        let mut parts = tmux.rsplitn(3, ',');
        let (_session, _pid, socket) = (parts.next(), parts.next(), parts.next());
        Some(PaneAddr::new(socket.unwrap_or(tmux), pane))
    }

    /// The route a peer records.
    pub fn route(&self) -> String {
        format!("{PREFIX}{}:{}", self.server, self.pane)
    }

    /// The arguments that pick the server: `-S path` or `-L name`.
    pub fn server_args(&self) -> [&str; 2] {
        server_args(&self.server)
    }
}

/// The arguments that pick a server: `-S path` for a path, `-L name` else.
pub fn server_args(server: &str) -> [&str; 2] {
    if server.contains('/') {
        ["-S", server]
    } else {
        ["-L", server]
    }
}

/// Make a text safe to type: nothing in it may act as a key but as the
/// character it shows. Newlines become a visible `⏎ ` (typing one would end
/// the line early and start another); tabs become a space; every other
/// control character (C0 with ESC, DEL, C1), the line and paragraph
/// separators, the bidirectional marks and overrides and the zero-width
/// characters become a visible `\xNN` / `\u{…}`. Printable text, quotes, `$(…)`,
/// backticks, `;` and tmux key names pass unchanged: typed with
/// `send-keys -l` they are only letters.
pub fn sanitize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' | '\r' => out.push_str(" ⏎ "),
            '\t' => out.push(' '),
            c if (c as u32) < 0x20 || c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{2060}'
            | '\u{feff}'
            | '\u{061c}' => {
                out.push_str(&format!("\\u{{{:x}}}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// What is typed for one delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Typed {
    /// The one line typed (then Enter).
    pub line: String,
    /// Whether the text was cut to a summary.
    pub summarised: bool,
}

/// The line typed into a pane for a delivery: who sent what, the text
/// (sanitised, or a summary plus the command that prints it whole), and for
/// an ask how to answer. `from` is the sender's name (none for the daemon's
/// own notices).
pub fn typed_line(
    kind: DeliveryKind,
    delivery_id: &str,
    from: Option<&str>,
    correlation_id: Option<&str>,
    text: &str,
) -> Typed {
    let what = match kind {
        DeliveryKind::Ask => "ask",
        DeliveryKind::Reply => "reply",
        DeliveryKind::Notify => "note",
        DeliveryKind::Broadcast => "broadcast",
        DeliveryKind::Reminder => "reminder",
        DeliveryKind::System => "notice",
    };
    let from = sanitize(from.unwrap_or("repowire"));
    let mut head = format!("[repowire {what} from {from}");
    let answerable = matches!(kind, DeliveryKind::Ask | DeliveryKind::Reminder);
    if let Some(c) = correlation_id {
        head.push(' ');
        head.push_str(&sanitize(c));
    }
    head.push_str("] ");
    let clean = sanitize(text);
    let n = clean.chars().count();
    let summarised = n > TYPED_MAX_CHARS;
    let mut line = head;
    if summarised {
        let cut: String = clean.chars().take(SUMMARY_CHARS).collect();
        line.push_str(&cut);
        line.push_str(&format!(
            " … (+{} more characters; the whole text: repowire peer delivery {delivery_id})",
            n - SUMMARY_CHARS
        ));
    } else {
        line.push_str(&clean);
    }
    if answerable && let Some(c) = correlation_id {
        line.push_str(&format!(
            " — answer with: repowire peer answer {} \"…\"",
            sanitize(c)
        ));
    }
    Typed { line, summarised }
}

/// The argument for `tmux send-keys -l -- ARG` that types `line` exactly.
/// tmux reads an argument ending in `;` as the end of a command (the `;` is
/// dropped) and an ending `\;` as a literal `;`: so a final `;` is sent as
/// `\;`. Nothing else in an argument is special to tmux (no shell runs).
pub fn send_keys_arg(line: &str) -> String {
    match line.strip_suffix(';') {
        Some(rest) => format!("{rest}\\;"),
        None => line.to_string(),
    }
}

/// The server socket of the tmux a process runs in: `$TMUX` is
/// `<socket path>,<server pid>,<session>` (the path may hold a comma, so it
/// ends at the last two). `None` outside tmux.
pub fn socket_from_env(tmux: Option<&str>) -> Option<&str> {
    let tmux = tmux.filter(|s| !s.is_empty())?;
    let mut parts = tmux.rsplitn(3, ',');
    let (_session, _pid, socket) = (parts.next(), parts.next(), parts.next());
    Some(socket.unwrap_or(tmux))
}

/// The command line that shows a pane: `tmux -S <socket> switch-client -t
/// <pane>` from inside tmux on the same server (`inside`: the socket of the
/// tmux the command runs in), else `tmux -S <socket> attach-session -t
/// <pane>` (either selects the pane's window).
pub fn attach_command(addr: &PaneAddr, inside: Option<&str>) -> String {
    let verb = if inside == Some(addr.server.as_str()) {
        "switch-client"
    } else {
        "attach-session"
    };
    let [flag, server] = addr.server_args();
    format!(
        "tmux {flag} {} {verb} -t {}",
        shell_quote(server),
        shell_quote(&addr.pane)
    )
}

/// `s` as one POSIX shell word: unchanged when it holds only characters no
/// shell treats specially, else in single quotes.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"%+,-./:=@_".contains(&b));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_commands_pick_the_verb_and_quote() {
        let a = PaneAddr::parse("tmux:/tmp/tmux-0/default:%3").unwrap();
        assert_eq!(
            attach_command(&a, None),
            "tmux -S /tmp/tmux-0/default attach-session -t %3"
        );
        assert_eq!(
            attach_command(&a, Some("/tmp/tmux-0/other")),
            "tmux -S /tmp/tmux-0/default attach-session -t %3"
        );
        assert_eq!(
            attach_command(&a, Some("/tmp/tmux-0/default")),
            "tmux -S /tmp/tmux-0/default switch-client -t %3"
        );
        let b = PaneAddr::parse("tmux:/tmp/my dir/it's:%1").unwrap();
        assert_eq!(
            attach_command(&b, None),
            r"tmux -S '/tmp/my dir/it'\''s' attach-session -t %1"
        );
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("$(x)"), "'$(x)'");
        assert_eq!(
            socket_from_env(Some("/tmp/tmux-0/default,2192,0")),
            Some("/tmp/tmux-0/default")
        );
        assert_eq!(socket_from_env(Some("/a,b/s,1,0")), Some("/a,b/s"));
        assert_eq!(socket_from_env(Some("")), None);
        assert_eq!(socket_from_env(None), None);
    }

    #[test]
    fn addresses_parse_and_print() {
        let a = PaneAddr::parse("tmux:/tmp/tmux-1000/default:%3").unwrap();
        assert_eq!(a.server, "/tmp/tmux-1000/default");
        assert_eq!(a.pane, "%3");
        assert_eq!(a.route(), "tmux:/tmp/tmux-1000/default:%3");
        assert_eq!(a.server_args(), ["-S", "/tmp/tmux-1000/default"]);
        let b = PaneAddr::parse("tmux:work:%12").unwrap();
        assert_eq!(b.server_args(), ["-L", "work"]);
        // A server path may hold a colon; the pane is after the last one.
        assert_eq!(PaneAddr::parse("tmux:/a:b/s:%1").unwrap().server, "/a:b/s");
        for bad in [
            "tmux:",
            "tmux:x",
            "tmux::%1",
            "tmux:s:",
            "tmux:s:3",
            "tmux:s:%",
            "tmux:s:%1a",
            "tmux:s:%1234567890",
            "tmux:a\u{1b}b:%1",
            "tmux:a,b:%1",
            "pull",
        ] {
            let e = PaneAddr::parse(bad).unwrap_err();
            assert_eq!(e.code, crate::ErrorCode::BadRequest, "{bad}");
        }
    }

    #[test]
    fn the_environment_names_the_pane() {
        let a = PaneAddr::from_env(Some("/tmp/tmux-0/default,2192,0"), Some("%7"))
            .unwrap()
            .unwrap();
        assert_eq!(a.route(), "tmux:/tmp/tmux-0/default:%7");
        // A socket path holding a comma is refused (it could not be told apart).
        let b = PaneAddr::from_env(Some("/tmp/a,b/s,1,0"), Some("%1"))
            .unwrap()
            .unwrap_err();
        assert_eq!(b.code, crate::ErrorCode::BadRequest);
        assert!(PaneAddr::from_env(None, Some("%1")).is_none());
        assert!(PaneAddr::from_env(Some("/s,1,0"), None).is_none());
        assert!(PaneAddr::from_env(Some(""), Some("%1")).is_none());
        assert!(
            PaneAddr::from_env(Some("/s,1,0"), Some("bad"))
                .unwrap()
                .is_err()
        );
    }

    #[test]
    fn only_literal_text_is_typed() {
        assert_eq!(
            sanitize("plain $(x) `y` ; C-c Enter"),
            "plain $(x) `y` ; C-c Enter"
        );
        assert_eq!(sanitize("a\nb\r\nc\rd"), "a ⏎ b ⏎ c ⏎ d");
        assert_eq!(
            sanitize("\u{1b}[31mred\u{7}\u{7f}\u{9b}"),
            "\\x1b[31mred\\x07\\x7f\\x9b"
        );
        assert_eq!(sanitize("a\tb\u{0}"), "a b\\x00");
        assert_eq!(sanitize("x\u{202e}y"), "x\\u{202e}y");
        assert_eq!(
            sanitize("a\u{2028}b\u{200b}c\u{feff}d\u{61c}e\u{2060}"),
            "a\\u{2028}b\\u{200b}c\\u{feff}d\\u{61c}e\\u{2060}"
        );
        for c in sanitize("\u{1b}\u{0}\u{3}\n\u{85}\u{2028}x").chars() {
            assert!(!c.is_control(), "{c:?}");
        }
    }

    #[test]
    fn a_delivery_is_one_line() {
        let t = typed_line(
            DeliveryKind::Notify,
            "dl-1",
            Some("alice"),
            None,
            "hi\nthere",
        );
        assert_eq!(t.line, "[repowire note from alice] hi ⏎ there");
        assert!(!t.summarised);
        let t = typed_line(
            DeliveryKind::Ask,
            "dl-2",
            Some("bob"),
            Some("ask-9"),
            "which branch?",
        );
        assert_eq!(
            t.line,
            "[repowire ask from bob ask-9] which branch? — answer with: repowire peer answer ask-9 \"…\""
        );
        let long = "x".repeat(100_000);
        let t = typed_line(DeliveryKind::Notify, "dl-3", Some("a"), None, &long);
        assert!(t.summarised);
        assert!(t.line.chars().count() < TYPED_MAX_CHARS, "{}", t.line.len());
        assert!(
            t.line
                .ends_with("(+99800 more characters; the whole text: repowire peer delivery dl-3)")
        );
    }

    #[test]
    fn claims_are_hex_and_name_an_option() {
        let c = new_claim();
        let opt = claim_option(&c).unwrap();
        assert!(
            opt.starts_with("@repowire_claim_") && opt.len() == 16 + 32,
            "{opt}"
        );
        assert!(!opt.contains(&c), "the option shows the claim itself");
        assert_ne!(new_claim(), c);
        for bad in [
            "",
            "abc",
            &"g".repeat(32),
            &"A".repeat(32),
            &"a".repeat(33),
            "}#{pane_id}0123456789abcdef012345",
        ] {
            assert_eq!(
                claim_option(bad).unwrap_err().code,
                crate::ErrorCode::BadRequest,
                "{bad}"
            );
        }
    }

    #[test]
    fn a_final_semicolon_is_escaped_for_tmux() {
        assert_eq!(send_keys_arg("a;"), "a\\;");
        assert_eq!(send_keys_arg(";"), "\\;");
        assert_eq!(send_keys_arg("a;b"), "a;b");
        assert_eq!(send_keys_arg("a\\;"), "a\\\\;");
    }
}
