//! Personas through the real CLI, offline: every shipped persona against
//! fixtures (insta snapshots of the routes), check/new/list/path/show, and
//! fallback on broken scripts.

use crate::support::*;
use std::path::PathBuf;

const SHIPPED: [&str; 5] = [
    "default",
    "round_robin",
    "skills",
    "cross_review",
    "follow_the_sun",
];

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/personas")
        .join(name)
        .display()
        .to_string()
}

fn route(
    home: &std::path::Path,
    persona: &str,
    mesh: &str,
    flag: &str,
    input: &str,
) -> serde_json::Value {
    let r = run_cli(
        home,
        &[
            "orchestrator",
            "persona",
            "test",
            persona,
            "--fixture",
            &fixture(mesh),
            flag,
            &fixture(input),
        ],
        &[],
    );
    r.ok().json()
}

#[test]
fn shipped_personas_route_the_fixtures() {
    let home = tmp_path();
    for persona in SHIPPED {
        let mut all = serde_json::Map::new();
        for mesh in ["team.json", "night.json", "empty.json"] {
            for (flag, input) in [
                ("--job", "job_api.json"),
                ("--job", "job_docs.json"),
                ("--review", "review_risky.json"),
                ("--review", "review_plain.json"),
            ] {
                let v = route(&home, persona, mesh, flag, input);
                assert_eq!(v["fallback"], false, "{persona} {mesh} {input}: {v}");
                all.insert(format!("{mesh} {input}"), v);
            }
        }
        insta::assert_json_snapshot!(format!("persona_{persona}"), all);
    }
}

#[test]
fn new_list_path_show_check_and_user_override() {
    let home = tmp_path();
    let r = run_cli(&home, &["orchestrator", "persona", "new", "mine"], &[]);
    assert!(r.ok().stdout.contains("mine.lua"));
    run_cli(&home, &["orchestrator", "persona", "new", "mine"], &[]).fails(1, "exists");
    run_cli(&home, &["orchestrator", "persona", "check", "mine"], &[]).ok();
    // The starter answers a fixture.
    let v = route(&home, "mine", "team.json", "--job", "job_api.json");
    assert_eq!(v["route"], "assign");
    assert_eq!(v["peer"], "alice");
    // A user file of a shipped name overrides it.
    run_cli(
        &home,
        &[
            "orchestrator",
            "persona",
            "new",
            "default",
            "--from",
            "round_robin",
        ],
        &[],
    )
    .ok();
    let list = run_cli(&home, &["orchestrator", "persona", "list", "--json"], &[]);
    let rows = list.ok().json();
    let row = |n: &str| {
        rows.as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(row("default")["source"], "user");
    assert_eq!(row("skills")["source"], "shipped");
    assert_eq!(
        row("mine")["entry_points"],
        serde_json::json!(["dispatch", "review"])
    );
    assert_eq!(row("skills")["sha256"].as_str().unwrap().len(), 64);
    let path = run_cli(&home, &["orchestrator", "persona", "path", "skills"], &[]);
    assert!(path.ok().stdout.contains("personas/skills.lua"));
    let show = run_cli(&home, &["orchestrator", "persona", "show", "default"], &[]);
    assert!(
        show.ok().stdout.contains("round_robin"),
        "the user's copy is shown"
    );
    std::fs::write(home.join("personas/mine.md"), "Terse. Prefers small PRs.").unwrap();
    let show = run_cli(&home, &["orchestrator", "persona", "show", "mine"], &[]);
    assert!(show.ok().stdout.contains("Prefers small PRs"));
    run_cli(&home, &["orchestrator", "persona", "show", "nope"], &[]).fails(1, "persona");
}

#[test]
fn broken_scripts_are_reported_with_file_and_line_and_fall_back() {
    let home = tmp_path();
    let dir = home.join("personas");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("broken.lua"),
        "function dispatch(job, mesh)\n  return route.assign(\nend\n",
    )
    .unwrap();
    let r = run_cli(&home, &["orchestrator", "persona", "check", "broken"], &[]);
    r.fails(1, "persona_error");
    assert!(r.stderr.contains("broken.lua:3"), "{}", r.stderr);
    // `test` still answers, from the built-in policy, and says why.
    let v = route(&home, "broken", "team.json", "--job", "job_api.json");
    assert_eq!(v["fallback"], true);
    assert!(v["error"].as_str().unwrap().contains("broken.lua:3"), "{v}");
    assert_eq!(v["peer"], "alice");
    // A route the core refuses: the author reviewing their own change.
    let file = dir.join("selfie.lua");
    std::fs::write(
        &file,
        "function review(item, mesh)\n  return route.assign(item.author)\nend\n",
    )
    .unwrap();
    let v = route(
        &home,
        file.to_str().unwrap(),
        "team.json",
        "--review",
        "review_risky.json",
    );
    assert_eq!(v["fallback"], true);
    assert!(v["error"].as_str().unwrap().contains("author"), "{v}");
    // Lint: a misspelt entry point, and a path that returns nothing.
    std::fs::write(dir.join("lint.lua"), "function dispatch(job, mesh)\n  if #job.tags > 5 then return route.decline('big') end\nend\nfunction reviw(item, mesh) end\n").unwrap();
    let r = run_cli(
        &home,
        &["orchestrator", "persona", "check", "lint", "--json"],
        &[],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("\"persona_lint\""), "{}", r.stderr);
    let problems = r.json()["problems"].to_string();
    assert!(problems.contains("did you mean `review`"), "{problems}");
    assert!(problems.contains("returned nothing"), "{problems}");
    // Bad fixtures are clear errors.
    std::fs::write(
        home.join("bad.json"),
        "{\"peers\": [{\"name\": \"a\", \"peer_id\": \"x\"}]}",
    )
    .unwrap();
    let r = run_cli(
        &home,
        &[
            "orchestrator",
            "persona",
            "test",
            "default",
            "--fixture",
            home.join("bad.json").to_str().unwrap(),
            "--job",
            &fixture("job_api.json"),
        ],
        &[],
    );
    r.fails(1, "bad_fixture");
}
