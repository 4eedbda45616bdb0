//! `docs/http-api.md` against the code: the limits table is generated
//! from `core::limits::TABLE`; every route row matches the route table
//! (method, path, query names, body or not) and so does the router.

use super::*;
use std::collections::BTreeSet;

const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/http-api.md");

#[test]
fn limits_table_is_generated_from_the_code() {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let head = "| what | at most | unit | over it |\n|---|---|---|---|\n";
    let start = doc.find(head).expect("limits table header") + head.len();
    let end = start + doc[start..].find("\n\n").unwrap() + 1;
    let rows = limits::table_markdown();
    if std::env::var("REPOWIRE_BLESS").is_ok() {
        std::fs::write(DOC, format!("{}{rows}{}", &doc[..start], &doc[end..])).unwrap();
        return;
    }
    assert_eq!(
        &doc[start..end],
        rows,
        "docs/http-api.md limits are stale: REPOWIRE_BLESS=1 cargo test --test it limits::docs"
    );
}

/// (method, path) → (query names, takes a body) from the docs' rows.
fn documented() -> Vec<(String, String, BTreeSet<String>, bool)> {
    let doc = std::fs::read_to_string(DOC).unwrap();
    let mut out = Vec::new();
    for line in doc.lines() {
        // Columns: split on `|` but not on an escaped `\|`.
        let mut cols = vec![String::new()];
        let mut prev = ' ';
        for c in line.chars() {
            if c == '|' && prev != '\\' {
                cols.push(String::new());
            } else {
                cols.last_mut().unwrap().push(c);
            }
            prev = c;
        }
        let cols: Vec<&str> = cols.iter().map(|c| c.trim()).collect();
        if cols.len() < 5 || !cols[0].is_empty() {
            continue;
        }
        let route = cols[1].trim_matches('`');
        let Some((method, path)) = route.split_once(' ') else {
            continue;
        };
        if method.is_empty() || !method.chars().all(|c| c.is_ascii_uppercase()) {
            continue;
        }
        let io = cols[3];
        let mut query = BTreeSet::new();
        for (i, _) in io.match_indices(['?', '&']) {
            let name: String = io[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if io[i + 1 + name.len()..].starts_with('=') && !name.is_empty() {
                query.insert(name);
            }
        }
        let body = io
            .match_indices('{')
            .any(|(i, _)| io[i + 1..].starts_with(|c: char| c.is_ascii_lowercase()));
        out.push((method.to_string(), path.to_string(), query, body));
    }
    out
}

#[test]
fn routes_in_the_docs_match_the_route_table() {
    let docs = documented();
    for r in ROUTES {
        let Some((_, _, query, body)) = docs.iter().find(|(m, p, ..)| m == r.method && p == r.path)
        else {
            panic!("{} {} is not in docs/http-api.md", r.method, r.path);
        };
        let want: BTreeSet<String> = r.query.iter().map(|q| q.to_string()).collect();
        assert_eq!(query, &want, "query of {} {}", r.method, r.path);
        assert_eq!(
            *body,
            r.body == Takes::Json,
            "body of {} {}",
            r.method,
            r.path
        );
    }
    for (m, p, ..) in &docs {
        assert!(
            ROUTES.iter().any(|r| r.method == m && r.path == p),
            "{m} {p} is documented but not in daemon::edge::ROUTES"
        );
    }
}

/// Every `.route(path, get(..).post(..))` of the router is in the table
/// (a path missing there answers `not_found`; a method missing there on a
/// path that is there runs unchecked, logged as an error).
#[test]
fn the_router_matches_the_route_table() {
    let src = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/daemon/src/http/mod.rs"
    ))
    .unwrap();
    let flat: String = src.split_whitespace().collect();
    let mut routed = BTreeSet::new();
    for part in flat.split(".route(\"").skip(1) {
        let (path, rest) = part.split_once('"').unwrap();
        // The method router: up to the close of this .route( call.
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                depth == 0
            })
            .unwrap()
            .0;
        for m in ["get", "post", "patch", "delete", "put"] {
            let called = rest[..end].match_indices(&format!("{m}(")).any(|(i, _)| {
                i == 1 || rest[..end][..i].ends_with('.') || rest[..end][..i].ends_with(',')
            });
            if called {
                routed.insert((m.to_uppercase(), path.to_string()));
            }
        }
    }
    let table: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(routed, table);
}
