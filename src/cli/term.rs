//! Safe terminal output: what the CLI prints for people, and what it does
//! when the reader of stdout goes away.
//!
//! Message text, names, descriptions and event payloads come from other
//! peers. Printed raw, a control character in them drives the terminal: an
//! ESC sequence clears the screen or moves the cursor up, a CR overwrites
//! the "from" of a line. So every human rendering passes through
//! [`escape`] (keeps newlines and tabs, escapes every other control) and
//! one-line renderings put peer text through [`field`] (escapes newlines
//! too) or [`body`] (indents continuation lines, so a message cannot forge
//! the next entry). `--json` output is left exactly as the API sent it.
//!
//! A closed stdout (`repowire events | head`) ends the command quietly with
//! [`EXIT_CLOSED_PIPE`] — never a panic, never a half-written error.

use std::borrow::Cow;
use std::io::Write;

/// The exit code when the reader of stdout went away: 141, as a Unix tool
/// killed by SIGPIPE reports it to a shell. Documented in docs/errors.md.
pub const EXIT_CLOSED_PIPE: u8 = 141;

/// Whether `c` must not reach a terminal raw: C0 and C1 controls, DEL, and
/// the bidirectional overrides/isolates and line separators that reorder or
/// break what is shown ("trojan source").
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

fn escape_with<'a>(s: &'a str, keep: impl Fn(char) -> bool, newline: &str) -> Cow<'a, str> {
    if !s.chars().any(|c| is_unsafe(c) && !keep(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' if !keep(c) => out.push_str(newline),
            c if is_unsafe(c) && !keep(c) => match c {
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if (c as u32) < 0x100 => out.push_str(&format!("\\x{:02x}", c as u32)),
                c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            },
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// A whole human rendering: every control character escaped except newline
/// and tab, which the rendering itself uses for layout.
pub fn escape(s: &str) -> Cow<'_, str> {
    escape_with(s, |c| c == '\n' || c == '\t', "\n")
}

/// One field on one line (a name, a description in a list, an event
/// value): newlines too are shown as `\n`.
pub fn field(s: &str) -> Cow<'_, str> {
    escape_with(s, |_| false, "\\n")
}

/// Message text that may span lines: continuation lines are indented, so
/// nothing a sender writes can look like the start of another entry.
pub fn body(s: &str) -> Cow<'_, str> {
    escape_with(s.trim_end_matches('\n'), |c| c == '\t', "\n    ")
}

/// Write `text` and a newline to stdout. A closed pipe exits the process
/// quietly with [`EXIT_CLOSED_PIPE`]; any other write error exits 5 with a
/// message. Nothing the caller would do after printing (such as confirming
/// the deliveries it printed) happens then — which is what at-least-once
/// delivery wants.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|_| out.flush()) {
        closed(e);
    }
}

/// End the process for a failed write to stdout.
pub fn closed(e: std::io::Error) -> ! {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        std::process::exit(EXIT_CLOSED_PIPE.into());
    }
    let _ = writeln!(
        std::io::stderr(),
        "error[io]: could not write to stdout: {e}"
    );
    std::process::exit(5);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_drives_a_terminal() {
        assert_eq!(escape("plain text\n\tok"), "plain text\n\tok");
        assert!(matches!(escape("plain"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("evil\rfrom admin"), "evil\\rfrom admin");
        assert_eq!(escape("x\u{7f}\u{9b}y"), "x\\x7f\\x9by");
        assert_eq!(escape("abc\u{202e}cba"), "abc\\u{202e}cba");
        assert_eq!(escape("\x07\x08\x00"), "\\x07\\x08\\x00");
        assert_eq!(escape("héllo ✓ 日本"), "héllo ✓ 日本");
    }

    #[test]
    fn fields_stay_on_one_line_and_bodies_indent() {
        assert_eq!(field("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(
            body("first\nfrom admin: obey"),
            "first\n    from admin: obey"
        );
        assert_eq!(body("one\r\n"), "one\\r");
        assert_eq!(body("ends\n\n"), "ends");
    }
}
