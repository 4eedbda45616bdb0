//! What the CLI prints for people: control characters that other peers put
//! into text never reach the terminal raw (`--json` stays exact), and a
//! reader that goes away (`| head`) ends the command quietly with exit 141.

use crate::support::*;
use repowire::api::{NotifyReq, RegisterReq};
use std::io::{BufRead, BufReader, Read};
use std::process::Stdio;
use std::time::Duration;

/// What a hostile sender writes: clear the screen, go home, overwrite the
/// line with a forged sender, ring the bell, reorder with a bidi override,
/// and start a fake second entry on a new line.
const HOSTILE: &str =
    "hi\x1b[2J\x1b[H\rfrom admin: run `rm -rf ~`\x07\u{9b}31m \u{202e}evil\nfrom admin: trust me";

async fn note(from: &repowire::client::Client, text: impl Into<String>) {
    from.notify(&NotifyReq {
        to: "bob".into(),
        circle: None,
        text: text.into(),
        bypass_circle: false,
    })
    .await
    .unwrap();
}

fn assert_no_raw_controls(what: &str, out: &str) {
    for c in out.chars() {
        assert!(
            c == '\n' || !(c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c)),
            "{what}: raw control {c:?} reached the terminal:\n{out:?}"
        );
    }
}

#[tokio::test]
async fn peer_text_is_escaped_for_people_and_exact_in_json() {
    let d = Daemon::start(&[]);
    let admin = d.admin();
    let mut tokens = Vec::new();
    for name in ["alice", "bob"] {
        let r = admin
            .register(&RegisterReq {
                name: name.into(),
                description: Some(format!("{name} \x1b[31mred\x1b[0m\rdesc\nsecond line")),
                ..Default::default()
            })
            .await
            .unwrap();
        tokens.push(r.token.unwrap());
    }
    let alice = repowire::client::Client::new(&d.url, Some(tokens[0].clone()), None);
    note(&alice, HOSTILE).await;

    // --json is the API's JSON, unchanged: the exact text comes back.
    let peek = d.cli(&["--as", "bob", "--json", "peer", "inbox", "--peek"]);
    let v = peek.ok().json();
    assert_eq!(v[0]["text"], HOSTILE);

    // Human output: every control escaped, the forged line indented under
    // the real entry, the real sender intact.
    let inbox = d.cli(&["--as", "bob", "peer", "inbox"]);
    let out = &inbox.ok().stdout;
    assert_no_raw_controls("peer inbox", out);
    assert!(
        out.contains("from alice: hi\\x1b[2J\\x1b[H\\rfrom admin"),
        "{out}"
    );
    assert!(out.contains("\\x07") && out.contains("\\x9b") && out.contains("\\u{202e}"));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].starts_with("    from admin: trust me"), "{out}");

    for args in [
        &["peer", "list"][..],
        &["peer", "describe", "alice"][..],
        &["events", "--tail", "100"][..],
    ] {
        let r = d.cli(args);
        assert_no_raw_controls(&args.join(" "), &r.ok().stdout);
    }
    // A one-line listing keeps each peer on one line: the description's
    // newline is shown as \n, not followed.
    let list = d.cli(&["peer", "list"]);
    assert_eq!(list.ok().stdout.lines().count(), 2, "{}", list.stdout);
    assert!(
        list.stdout
            .contains("\\x1b[31mred\\x1b[0m\\rdesc\\nsecond line")
    );
}

#[tokio::test]
async fn a_closed_stdout_ends_quietly_with_exit_141() {
    let d = Daemon::start(&[]);
    let alice = d.peer("alice", None).await;
    d.peer("bob", None).await;
    // More JSON than a pipe holds (64 KiB), so the writer blocks on the
    // reader, which then goes away after 10 bytes (`| head -c 10`).
    for i in 0..400 {
        note(&alice, format!("note {i}")).await;
    }
    let mut child = cli_command(d.home_path(), &["--json", "events", "--tail", "1000"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 10];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The read end is dropped here.
    let st = wait_timeout(&mut child, Duration::from_secs(30)).expect("events exits");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(st.code(), Some(141), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.is_empty(), "quiet: {err}");

    // Following: the reader goes away, the next event ends the command.
    let mut child = cli_command(d.home_path(), &["events", "--follow", "--tail", "1"], &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    lines.read_line(&mut line).unwrap();
    drop(lines);
    let mut n = 0;
    let st = loop {
        note(&alice, format!("after {n}")).await;
        n += 1;
        if let Some(st) = wait_timeout(&mut child, Duration::from_millis(200)) {
            break st;
        }
        assert!(n < 150, "events --follow did not notice its reader left");
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(st.code(), Some(141), "stderr: {err}");
    assert!(err.is_empty(), "quiet: {err}");
}
