//! Every input limit of the HTTP API, in one table, and the checks that use it.
//!
//! [`TABLE`] is the single source: the daemon's edge ([`Checker`] on request
//! bodies, the route guard on URIs, headers, queries and path parameters)
//! enforces these numbers, and `docs/http-api.md` shows the table (a test
//! checks the two agree). Two rows come from the daemon's [`Policy`]
//! (`--max-message-bytes`, `--max-fanout`); the table shows their defaults.
//!
//! Also here: [`cut_echoes`], which shortens the values an error message
//! echoes back, so a 900 KB field never comes back whole.
//!
//! Pure: no I/O. What each route accepts (its query names, whether it takes
//! a body) lives with the router in `daemon::edge`.

use super::error::{Error, ErrorCode, Result};
use super::policy::Policy;

/// Peer, circle and persona names, and each tag: `[A-Za-z0-9._-]{1,64}`.
pub const NAME_BYTES: usize = super::peer::MAX_NAME_LEN;
/// Tags on one peer, job, review or decide input.
pub const TAGS: usize = 32;
/// One-line fields: titles, kinds, phases, backends, verdicts, cron, tz…
pub const LINE_BYTES: usize = 1024;
/// An id (`ask-…`, `job-…`, `dlv-…`, …) in a body, a query or a path.
pub const ID_BYTES: usize = 64;
/// A review ref (a PR URL or any ref string).
pub const REF_BYTES: usize = 2048;
/// A commit sha (`head_sha`, `sha`): letters and digits.
pub const SHA_BYTES: usize = 64;
/// A peer's project path.
pub const PATH_BYTES: usize = 4096;
/// A job's `result_data`, serialized as JSON.
pub const RESULT_DATA_BYTES: usize = 64 * 1024;
/// Nesting depth of a job's `result_data` (arrays and objects).
pub const RESULT_DATA_DEPTH: usize = 32;
/// Ids in one `POST /v1/inbox/confirm` or `POST /v1/inbox/pushed`.
pub const CONFIRM_IDS: usize = 1000;
/// Previous assignees in a decide input (a job has at most 100 attempts).
pub const PREVIOUS_ASSIGNEES: usize = 100;
/// The request target (path and query), in bytes.
pub const URI_BYTES: usize = 8 * 1024;
/// All request headers together (names, values and `: `/CRLF framing).
pub const HEADER_BYTES: usize = 32 * 1024;
/// Request headers.
pub const HEADERS: usize = 64;
/// One query parameter's value.
pub const QUERY_VALUE_BYTES: usize = 2048;
/// An echoed value in an error message is cut to this many characters.
pub const ECHO_CHARS: usize = 200;

/// Where a limit's number comes from.
#[derive(Debug, Clone, Copy)]
pub enum Max {
    Fixed(usize),
    /// A daemon flag, with its default.
    Flag {
        flag: &'static str,
        default: usize,
    },
    /// Derived from other limits; the text says how.
    Derived(&'static str),
}

/// One row of the limits table.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub what: &'static str,
    pub max: Max,
    pub unit: &'static str,
    /// The error code a value over the limit gets.
    pub code: ErrorCode,
}

const fn row(what: &'static str, max: Max, unit: &'static str, code: ErrorCode) -> Limit {
    Limit {
        what,
        max,
        unit,
        code,
    }
}

use ErrorCode::{BadRequest, HeadersTooLarge, InvalidName, TooLarge, UriTooLong};
use Max::{Derived, Fixed, Flag};

/// Every limit, as documented in `docs/http-api.md`.
pub const TABLE: &[Limit] = &[
    row(
        "message text: `text`, `brief`, `note`, `result`, `error`, `description`, `reason`, `message`, `notes`",
        Flag {
            flag: "--max-message-bytes",
            default: 64 * 1024,
        },
        "bytes",
        BadRequest,
    ),
    row(
        "one-line fields: `title`, `kind`, `phase`, `backend`, `verdict`, `route`, `cron`, `tz`, `fire_at`, `persona`, a persona `name`",
        Fixed(LINE_BYTES),
        "bytes",
        BadRequest,
    ),
    row(
        "a peer, circle or tag name (`[A-Za-z0-9._-]`); a field naming a peer (`to`, `owner`, `assign`, `author`, `creator`…, `{name}` in a path) is `NAME` or `NAME@CIRCLE`",
        Fixed(NAME_BYTES),
        "bytes each part",
        InvalidName,
    ),
    row(
        "`tags` of a peer, job, review or decide input",
        Fixed(TAGS),
        "tags",
        BadRequest,
    ),
    row(
        "an id (`reply_to`, confirm `ids`, a job input's `id`, `{id}` in a path)",
        Fixed(ID_BYTES),
        "bytes",
        BadRequest,
    ),
    row("a review `ref`", Fixed(REF_BYTES), "bytes", BadRequest),
    row(
        "a commit sha (`head_sha`, `sha`)",
        Fixed(SHA_BYTES),
        "bytes",
        BadRequest,
    ),
    row("`project_path`", Fixed(PATH_BYTES), "bytes", BadRequest),
    row(
        "`result_data` (as JSON)",
        Fixed(RESULT_DATA_BYTES),
        "bytes",
        BadRequest,
    ),
    row(
        "`result_data` nesting",
        Fixed(RESULT_DATA_DEPTH),
        "levels",
        BadRequest,
    ),
    row(
        "ask-many recipients (`to`)",
        Flag {
            flag: "--max-fanout",
            default: 64,
        },
        "peers",
        BadRequest,
    ),
    row(
        "confirm and pushed `ids`",
        Fixed(CONFIRM_IDS),
        "ids",
        BadRequest,
    ),
    row(
        "`previous_assignees` of a decide input",
        Fixed(PREVIOUS_ASSIGNEES),
        "names",
        BadRequest,
    ),
    row(
        "one query parameter value",
        Fixed(QUERY_VALUE_BYTES),
        "bytes",
        BadRequest,
    ),
    row(
        "the request target (path and query)",
        Fixed(URI_BYTES),
        "bytes",
        UriTooLong,
    ),
    row(
        "all request headers together",
        Fixed(HEADER_BYTES),
        "bytes",
        HeadersTooLarge,
    ),
    row(
        "request headers",
        Fixed(HEADERS),
        "headers",
        HeadersTooLarge,
    ),
    row(
        "a request body",
        Derived("the larger of 1 MiB and 6 × max-message-bytes + 64 KiB"),
        "bytes",
        TooLarge,
    ),
];

/// The markdown rows of [`TABLE`] for `docs/http-api.md`.
pub fn table_markdown() -> String {
    TABLE
        .iter()
        .map(|l| {
            let max = match l.max {
                Fixed(n) => n.to_string(),
                Flag { flag, default } => format!("{default} (`{flag}`)"),
                Derived(how) => how.to_string(),
            };
            format!("| {} | {max} | {} | `{}` |\n", l.what, l.unit, l.code)
        })
        .collect()
}

/// The request body cap for a policy: room for a text at the message limit
/// JSON-escaped (up to 6 bytes a byte, `\u0000`), so such a text still gets
/// the clearer `bad_request` naming the limit rather than `too_large`.
pub fn body_bytes(policy: &Policy) -> usize {
    (policy.max_message_bytes * 6 + 64 * 1024).max(1 << 20)
}

/// Checks request fields against the table (and the daemon's policy).
/// Each refusal names the field, its size and the limit.
#[derive(Debug, Clone, Copy)]
pub struct Checker {
    pub text_bytes: usize,
    pub fanout: usize,
}

impl Checker {
    pub fn new(policy: &Policy) -> Self {
        Self {
            text_bytes: policy.max_message_bytes,
            fanout: policy.max_fanout,
        }
    }

    fn bytes(what: &str, s: &str, max: usize) -> Result<()> {
        if s.len() > max {
            return Err(Error::bad_request(format!(
                "{what} is {} bytes, over the limit of {max} bytes",
                s.len()
            )));
        }
        Ok(())
    }

    /// A message text (`--max-message-bytes`).
    pub fn text(&self, what: &str, s: &str) -> Result<()> {
        if s.len() > self.text_bytes {
            return Err(Error::bad_request(format!(
                "{what} is {} bytes, over the limit of {} bytes (max_message_bytes)",
                s.len(),
                self.text_bytes
            )));
        }
        Ok(())
    }

    pub fn opt_text(&self, what: &str, s: &Option<String>) -> Result<()> {
        s.as_deref().map_or(Ok(()), |s| self.text(what, s))
    }

    /// A one-line field.
    pub fn line(&self, what: &str, s: &str) -> Result<()> {
        Self::bytes(what, s, LINE_BYTES)
    }

    pub fn opt_line(&self, what: &str, s: &Option<String>) -> Result<()> {
        s.as_deref().map_or(Ok(()), |s| self.line(what, s))
    }

    /// A peer, circle or tag name.
    pub fn name(&self, what: &str, s: &str) -> Result<()> {
        super::peer::validate_name(what, s)
    }

    pub fn opt_name(&self, what: &str, s: &Option<String>) -> Result<()> {
        s.as_deref().map_or(Ok(()), |s| self.name(what, s))
    }

    /// A field naming a peer: `NAME` or `NAME@CIRCLE`.
    pub fn address(&self, what: &str, s: &str) -> Result<()> {
        let (name, circle) = super::peer::split_address(s);
        self.name(what, name)?;
        circle.map_or(Ok(()), |c| self.name("circle", c))
    }

    pub fn opt_address(&self, what: &str, s: &Option<String>) -> Result<()> {
        s.as_deref().map_or(Ok(()), |s| self.address(what, s))
    }

    pub fn id(&self, what: &str, s: &str) -> Result<()> {
        Self::bytes(what, s, ID_BYTES)
    }

    pub fn opt_id(&self, what: &str, s: &Option<String>) -> Result<()> {
        s.as_deref().map_or(Ok(()), |s| self.id(what, s))
    }

    pub fn sha(&self, what: &str, s: &str) -> Result<()> {
        Self::bytes(what, s, SHA_BYTES)
    }

    pub fn reference(&self, s: &str) -> Result<()> {
        Self::bytes("ref", s, REF_BYTES)
    }

    pub fn path(&self, what: &str, s: &Option<String>) -> Result<()> {
        s.as_deref()
            .map_or(Ok(()), |s| Self::bytes(what, s, PATH_BYTES))
    }

    /// A list of at most `max` items.
    pub fn count<T>(&self, what: &str, items: &[T], max: usize) -> Result<()> {
        if items.len() > max {
            return Err(Error::bad_request(format!(
                "{} {what} given; at most {max}",
                items.len()
            )));
        }
        Ok(())
    }

    /// Tags: at most [`TAGS`], each a name.
    pub fn tags(&self, tags: &[String]) -> Result<()> {
        self.count("tags", tags, TAGS)?;
        tags.iter().try_for_each(|t| self.name("tag", t))
    }

    pub fn opt_tags(&self, tags: &Option<Vec<String>>) -> Result<()> {
        tags.as_deref().map_or(Ok(()), |t| self.tags(t))
    }

    /// A job's `result_data`: size as JSON and nesting depth.
    pub fn result_data(&self, v: &serde_json::Value) -> Result<()> {
        let depth = depth_of(v);
        if depth > RESULT_DATA_DEPTH {
            return Err(Error::bad_request(format!(
                "result_data is nested {depth} levels deep, over the limit of {RESULT_DATA_DEPTH}"
            )));
        }
        let size = v.to_string().len();
        if size > RESULT_DATA_BYTES {
            return Err(Error::bad_request(format!(
                "result_data is {size} bytes as JSON, over the limit of {RESULT_DATA_BYTES} bytes"
            )));
        }
        Ok(())
    }
}

/// Nesting depth: a scalar is 0, `[]` or `{}` is 1, `[[1]]` is 2.
fn depth_of(v: &serde_json::Value) -> usize {
    // Iterative: serde_json already caps parsing at 128 levels, but a value
    // built in code may be deeper.
    let mut deepest = 0;
    let mut stack = vec![(v, 0usize)];
    while let Some((v, d)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match v {
            serde_json::Value::Array(a) => Box::new(a.iter()),
            serde_json::Value::Object(o) => Box::new(o.values()),
            _ => {
                deepest = deepest.max(d);
                continue;
            }
        };
        deepest = deepest.max(d + 1);
        stack.extend(children.map(|c| (c, d + 1)));
    }
    deepest
}

/// Shorten what an error message echoes: every quoted string (`"…"` with
/// `\"` escapes, or in backticks) and every other run without spaces longer than
/// [`ECHO_CHARS`] characters is cut to that many, followed by
/// `…(N more chars)`. The wording of messages is never that long, so only
/// echoed values are touched. Used by the HTTP error mapping and by the MCP
/// server for the argument errors it makes itself.
pub fn cut_echoes(msg: &str) -> String {
    if msg.chars().count() <= ECHO_CHARS {
        return msg.to_string();
    }
    let chars: Vec<char> = msg.chars().collect();
    let mut out = String::with_capacity(msg.len().min(4 * ECHO_CHARS));
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let end = if c == '"' || c == '`' {
            // A quoted value (serde quotes variants in backticks): up to the
            // closing unescaped quote (or the end).
            let mut j = i + 1;
            while j < chars.len() && chars[j] != c {
                j += if chars[j] == '\\' && c == '"' { 2 } else { 1 };
            }
            let close = j.min(chars.len());
            push_cut(&mut out, c, &chars[i + 1..close]);
            if close < chars.len() {
                out.push(c);
            }
            close + 1
        } else if c.is_whitespace() {
            out.push(c);
            i + 1
        } else {
            let mut j = i;
            while j < chars.len() && !chars[j].is_whitespace() && !matches!(chars[j], '"' | '`') {
                j += 1;
            }
            push_cut(&mut out, '\0', &chars[i..j]);
            j
        };
        i = end;
    }
    // Many short echoed words (a value with spaces outside quotes) still
    // stay bounded.
    if out.chars().count() > MESSAGE_CHARS {
        let kept: String = out.chars().take(MESSAGE_CHARS).collect();
        out = format!("{kept}…(cut)");
    }
    out
}

/// No error message is longer than this many characters.
pub const MESSAGE_CHARS: usize = 2000;

fn push_cut(out: &mut String, open: char, run: &[char]) {
    if open != '\0' {
        out.push(open);
    }
    if run.len() <= ECHO_CHARS {
        out.extend(run);
    } else {
        out.extend(&run[..ECHO_CHARS]);
        out.push_str(&format!("…({} more chars)", run.len() - ECHO_CHARS));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn echoes_are_cut_and_wording_kept() {
        let short = "invalid peer name \"x\": use 1-64 of A-Z";
        assert_eq!(cut_echoes(short), short);
        let big = "y".repeat(900_000);
        let quoted = format!("unknown peer \"{big}\" in circle default");
        let cut = cut_echoes(&quoted);
        assert!(cut.starts_with("unknown peer \"yyy"), "{cut}");
        assert!(
            cut.ends_with("…(899800 more chars)\" in circle default"),
            "{cut}"
        );
        assert!(cut.len() < 300);
        let bare = format!("no events about {big}");
        let cut = cut_echoes(&bare);
        assert!(
            cut.starts_with("no events about yyy") && cut.len() < 300,
            "{cut}"
        );
        // Escaped quotes stay inside the quoted value; the message is not
        // cut when only its wording is long.
        let esc = format!("bad \"a\\\"{big}\" end");
        assert!(cut_echoes(&esc).ends_with("more chars)\" end"));
        let wordy = "word ".repeat(100);
        assert_eq!(cut_echoes(&wordy), wordy);
        let tick = format!("unknown variant `{}`, expected one of", "a b ".repeat(1000));
        assert!(cut_echoes(&tick).ends_with("more chars)`, expected one of"));
        let many = "w ".repeat(10_000);
        assert!(cut_echoes(&many).chars().count() < MESSAGE_CHARS + 10);
        // Multi-byte characters are cut on character boundaries.
        let cut = cut_echoes(&"é".repeat(300));
        assert!(cut.starts_with(&"é".repeat(200)) && cut.ends_with("(100 more chars)"));
    }

    #[test]
    fn result_data_depth_and_size() {
        let c = Checker::new(&Policy::default());
        assert_eq!(depth_of(&json!(1)), 0);
        assert_eq!(depth_of(&json!([[1], {"a": {}}])), 3);
        let mut v = json!(1);
        for _ in 0..RESULT_DATA_DEPTH {
            v = json!([v]);
        }
        c.result_data(&v).unwrap();
        let e = c.result_data(&json!([v])).unwrap_err();
        assert!(e.message.contains("33 levels"), "{e}");
        let big = json!("x".repeat(RESULT_DATA_BYTES));
        assert!(c.result_data(&big).is_err());
        c.result_data(&json!("x".repeat(RESULT_DATA_BYTES - 2)))
            .unwrap();
    }

    #[test]
    fn addresses_and_tags() {
        let c = Checker::new(&Policy::default());
        c.address("to", "bob@ops").unwrap();
        let e = c
            .address("to", &format!("bob@{}", "c".repeat(65)))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidName);
        let tags: Vec<String> = (0..TAGS).map(|i| format!("t{i}")).collect();
        c.tags(&tags).unwrap();
        let mut more = tags.clone();
        more.push("x".into());
        assert_eq!(c.tags(&more).unwrap_err().code, ErrorCode::BadRequest);
    }
}
