//! Docs that cannot rot: the error table is checked against the code, and
//! every `repowire …` command shown in README.md and docs/ exists.
//! `REPOWIRE_BLESS=1 cargo test` rewrites the generated parts.

use crate::support::*;
use repowire::core::ErrorCode;

/// The daemon's codes (code, HTTP status, meaning), or the codes only the
/// CLI and MCP processes produce (code, CLI exit, meaning).
fn error_rows(local: bool) -> String {
    ErrorCode::ALL
        .iter()
        .filter(|c| c.is_local() == local)
        .map(|c| {
            let middle = if local {
                c.exit_code().to_string()
            } else {
                c.http_status().to_string()
            };
            format!("| `{}` | {middle} | {} |\n", c.as_str(), c.meaning())
        })
        .collect()
}

/// Check (or, blessing, rewrite) the rows of the table whose header line
/// is `header`.
fn check_table(doc: &mut String, header: &str, rows: &str) {
    let head = format!("{header}\n|---|---|---|\n");
    let start = doc
        .find(&head)
        .unwrap_or_else(|| panic!("no table {header}"))
        + head.len();
    let end = start + doc[start..].find("\n\n").unwrap_or(doc.len() - start) + 1;
    if std::env::var("REPOWIRE_BLESS").is_ok() {
        doc.replace_range(start..end, rows);
        return;
    }
    assert_eq!(
        &doc[start..end],
        rows,
        "docs/errors.md is stale: run REPOWIRE_BLESS=1 cargo test"
    );
}

#[test]
fn error_tables_match_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/errors.md");
    let mut doc = std::fs::read_to_string(path).unwrap();
    check_table(&mut doc, "| code | HTTP | meaning |", &error_rows(false));
    check_table(&mut doc, "| code | exit | meaning |", &error_rows(true));
    if std::env::var("REPOWIRE_BLESS").is_ok() {
        std::fs::write(path, doc).unwrap();
    }
}

/// `repowire a b …` lines inside fenced code blocks.
fn shown_commands(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let l = line.trim().trim_start_matches("$ ");
        if !in_code || !l.starts_with("repowire ") {
            continue;
        }
        // Skip global flags, then take the subcommand path: words up to
        // the first flag or argument-looking word.
        let mut rest: Vec<&str> = l.split_whitespace().skip(1).collect();
        while let Some(first) = rest.first() {
            match *first {
                "--as" | "--home" | "--url" => rest.drain(..2.min(rest.len())),
                "--json" => rest.drain(..1),
                _ => break,
            };
        }
        let words: Vec<String> = rest
            .into_iter()
            .take_while(|w| {
                w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-')
            })
            .map(str::to_string)
            .collect();
        out.push(words);
    }
    out
}

#[test]
fn commands_in_docs_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut files = vec![format!("{root}/README.md")];
    for e in std::fs::read_dir(format!("{root}/docs")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p.display().to_string());
        }
    }
    let home = tmp_path();
    let mut checked = 0;
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for words in shown_commands(&text) {
            // Walk down while the words are subcommands.
            let mut path: Vec<&str> = Vec::new();
            for w in &words {
                let mut probe = path.clone();
                probe.push(w);
                probe.push("--help");
                if run_cli(&home, &probe, &[]).code == 0 {
                    path.push(w);
                } else {
                    break;
                }
            }
            let mut help = path.clone();
            help.push("--help");
            let r = run_cli(&home, &help, &[]);
            assert_eq!(
                r.code,
                0,
                "{f}: `repowire {}` is not a command",
                words.join(" ")
            );
            // A word left over where the command expects a subcommand is a typo.
            if path.len() < words.len() {
                assert!(
                    !r.stdout.contains("\nCommands:\n"),
                    "{f}: `repowire {}`: {:?} is not a subcommand of `{}`",
                    words.join(" "),
                    words[path.len()],
                    path.join(" ")
                );
            }
            assert!(
                !path.is_empty(),
                "{f}: `repowire {}` names no command",
                words.join(" ")
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "the docs show commands ({checked} found)");
}

/// Fenced blocks with an info string like ```json mesh=team: (kind, name, body).
fn tagged_blocks(text: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String, String)> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(info) = t.strip_prefix("```") {
            if let Some(block) = cur.take() {
                out.push(block);
                continue;
            }
            // Untagged blocks are collected with an empty kind and dropped.
            let (k, v) = info
                .split_whitespace()
                .nth(1)
                .and_then(|w| w.split_once('='))
                .unwrap_or(("", ""));
            cur = Some((k.to_string(), v.to_string(), String::new()));
            continue;
        }
        if let Some((_, _, body)) = cur.as_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out.into_iter().filter(|(k, _, _)| !k.is_empty()).collect()
}

#[test]
fn persona_guide_examples_run() {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/personas.md")).unwrap();
    let blocks = tagged_blocks(&doc);
    let home = tmp_path();
    std::fs::create_dir_all(home.join("personas")).unwrap();
    let files = home.join("files");
    std::fs::create_dir_all(&files).unwrap();
    let mut expects = Vec::new();
    for (kind, name, body) in &blocks {
        match kind.as_str() {
            "persona" => std::fs::write(home.join(format!("personas/{name}.lua")), body).unwrap(),
            "expect" => expects.push((name.clone(), body.clone())),
            _ => std::fs::write(files.join(format!("{kind}-{name}.json")), body).unwrap(),
        }
    }
    assert!(expects.len() >= 3, "the guide shows expected outputs");
    for (kind, name, _) in blocks.iter().filter(|(k, _, _)| k == "persona") {
        assert_eq!(kind, "persona");
        run_cli(&home, &["orchestrator", "persona", "check", name], &[]).ok();
    }
    for (spec, want) in expects {
        let parts: Vec<&str> = spec.split(':').collect();
        let [persona, mesh, kind, input] = parts[..] else {
            panic!("bad expect tag {spec}")
        };
        let mesh = files.join(format!("mesh-{mesh}.json"));
        let flag = match kind {
            "job" => "--job",
            "item" => "--review",
            "checkin" => "--checkin",
            other => panic!("unknown kind {other}"),
        };
        let file_kind = if kind == "checkin" { "ctx" } else { kind };
        let input = files.join(format!("{file_kind}-{input}.json"));
        let r = run_cli(
            &home,
            &[
                "orchestrator",
                "persona",
                "test",
                persona,
                "--fixture",
                mesh.to_str().unwrap(),
                flag,
                input.to_str().unwrap(),
            ],
            &[],
        );
        let got: serde_json::Value = r.ok().json();
        let want: serde_json::Value = serde_json::from_str(&want).unwrap();
        assert_eq!(got, want, "docs/personas.md example {spec}");
    }
}

/// docs/architecture.md names files and folders; every one must exist, so
/// the map cannot point at a module that moved.
#[test]
fn architecture_paths_exist() {
    let root = env!("CARGO_MANIFEST_DIR");
    let text = std::fs::read_to_string(format!("{root}/docs/architecture.md")).unwrap();
    let mut named = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let path = quoted.split_whitespace().next().unwrap_or("");
        if ["crates/", "src/", "tests/", "docs/"]
            .iter()
            .any(|p| path.starts_with(p))
        {
            let p = path.trim_end_matches([',', '.', ':']);
            assert!(
                std::path::Path::new(root).join(p).exists(),
                "docs/architecture.md names {p}, which does not exist"
            );
            named += 1;
        }
    }
    assert!(
        named >= 10,
        "only {named} paths found: did the format change?"
    );
}
