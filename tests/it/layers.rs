//! The crate graph is the layering: this reads `cargo metadata` and fails on
//! any dependency between the workspace's crates that is not a downward edge
//! of the table below (an upward or sideways edge would let a layer reach
//! around the one under it). docs/architecture.md draws the same graph.

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Every allowed edge: package → the workspace packages it may depend on.
/// Arrows point down: the binary wires everything; the daemon sits on the
/// store, the persona host and the wire types; everything sits on core.
const ALLOWED: &[(&str, &[&str])] = &[
    ("repowire-core", &[]),
    ("repowire-persona", &["repowire-core"]),
    // Domain types in and out: the store never sees the wire types.
    ("repowire-store", &["repowire-core"]),
    ("repowire-client", &["repowire-core"]),
    (
        "repowire-daemon",
        &[
            "repowire-core",
            "repowire-store",
            "repowire-persona",
            "repowire-client",
        ],
    ),
    (
        "repowire",
        &[
            "repowire-core",
            "repowire-store",
            "repowire-persona",
            "repowire-client",
            "repowire-daemon",
        ],
    ),
];

/// The workspace's packages and their dependencies on each other (normal,
/// dev and build dependencies alike), from `cargo metadata`.
fn workspace_edges() -> BTreeMap<String, BTreeSet<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");
    let packages = meta["packages"].as_array().expect("packages");
    let names: BTreeSet<String> = packages
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    packages
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["name"].as_str().unwrap().to_string())
                .filter(|d| names.contains(d))
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

/// The edges of `graph` that the table does not allow, and the packages it
/// does not know, as readable lines.
fn violations(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut bad = Vec::new();
    for (pkg, deps) in graph {
        let Some(ok) = allowed.get(pkg.as_str()) else {
            bad.push(format!(
                "{pkg} is not in the layer table (tests/it/layers.rs)"
            ));
            continue;
        };
        for d in deps {
            if !ok.contains(&d.as_str()) {
                bad.push(format!("{pkg} -> {d} is not a downward edge"));
            }
        }
    }
    bad
}

#[test]
fn the_crate_graph_points_only_down() {
    let graph = workspace_edges();
    assert_eq!(
        graph.len(),
        ALLOWED.len(),
        "every workspace package is a layer of the table: {graph:?}"
    );
    assert_eq!(violations(&graph), Vec::<String>::new());
}

#[test]
fn an_upward_or_sideways_edge_is_caught() {
    let mut graph = workspace_edges();
    let add = |g: &mut BTreeMap<String, BTreeSet<String>>, from: &str, to: &str| {
        g.get_mut(from).unwrap().insert(to.to_string());
    };
    add(&mut graph, "repowire-core", "repowire-store");
    add(&mut graph, "repowire-store", "repowire-persona");
    add(&mut graph, "repowire-client", "repowire-daemon");
    add(&mut graph, "repowire-store", "repowire-client");
    assert_eq!(
        violations(&graph),
        [
            "repowire-client -> repowire-daemon is not a downward edge",
            "repowire-core -> repowire-store is not a downward edge",
            "repowire-store -> repowire-client is not a downward edge",
            "repowire-store -> repowire-persona is not a downward edge",
        ]
    );
}

/// The binary is linked with packed relative relocations (src/build.rs):
/// a position-independent executable whose relocations the loader need not
/// page in at start (docs/benchmarks.md, "Idle memory").
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn the_binary_packs_its_relocations() {
    let out = std::process::Command::new("readelf")
        .args(["-SW", "-h", crate::support::BIN])
        .output()
        .expect("readelf (binutils) is needed for this test");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(".relr.dyn"), "no .relr.dyn section:\n{text}");
    assert!(
        text.contains("DYN (Position-Independent Executable file)"),
        "not position-independent:\n{text}"
    );
}
