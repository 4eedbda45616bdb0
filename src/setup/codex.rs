//! Codex CLI 0.171.0: the MCP entry (`[mcp_servers.repowire]` in
//! config.toml, `env` carrying REPOWIRE_HOME when it is not the default:
//! Codex starts servers with an allow-listed environment), the hooks
//! (hooks.json, the shape Claude Code's settings use) and their trust.
//!
//! Codex runs no hook a human has not trusted — the user's own included —
//! and records trust in the user's config.toml as
//! `[hooks.state."<hooks.json path>:<snake_event>:<group>:<handler>"]
//! trusted_hash = "sha256:…"`, the hash being sha256 of the handler's
//! identity as compact JSON with sorted keys. Running `repowire setup
//! --codex` is that consent for repowire's own hooks, so setup writes those
//! entries (and uninstall removes them); nothing else is trusted.

use super::hooks::{self, Spot};
use super::json::J;
use super::{ConfigError, Edit, Env, Scope, json_after, parse_json, read};
use crate::wiring::{self, Client, Hook, MCP_SERVER_NAME};
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use toml_edit::{DocumentMut, Item, Table, value};

/// (hooks.json, the config.toml with the MCP entry) for `scope`.
pub fn files(env: &Env, scope: Scope) -> (PathBuf, PathBuf) {
    let dir = match scope {
        Scope::User => env.codex_home.clone(),
        Scope::Project => env.project.join(".codex"),
    };
    (dir.join("hooks.json"), dir.join("config.toml"))
}

/// The user's config.toml, where trust is recorded.
fn user_config(env: &Env) -> PathBuf {
    env.codex_home.join("config.toml")
}

fn snake(client_event: &str) -> String {
    let mut s = String::new();
    for (i, c) in client_event.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('_');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// The hash Codex trusts a handler setup writes by.
pub fn trust_hash(h: &Hook, command: &str) -> String {
    identity_hash(h.client_event, h.matcher, command, u64::from(h.timeout_s))
}

/// The hash of a command handler as Codex computes it: sha256 of its
/// identity (event, matcher, handler with its effective timeout).
fn identity_hash(client_event: &str, matcher: Option<&str>, command: &str, timeout: u64) -> String {
    let mut id = serde_json::json!({
        "event_name": snake(client_event),
        "hooks": [{"type": "command", "command": command, "timeout": timeout, "async": false}],
    });
    if let Some(m) = matcher {
        id["matcher"] = m.into();
    }
    // serde_json's maps are sorted and its compact form is Python's
    // `separators=(',', ':')` with `ensure_ascii=False`.
    let text = id.to_string();
    let digest = Sha256::digest(text.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn trust_key(hooks_json: &std::path::Path, spot: &Spot) -> String {
    format!(
        "{}:{}:{}:{}",
        hooks_json.display(),
        snake(&spot.0),
        spot.1,
        spot.2
    )
}

fn parse_toml(path: &std::path::Path, text: Option<&str>) -> Result<DocumentMut, ConfigError> {
    text.unwrap_or("").parse::<DocumentMut>().map_err(|e| {
        ConfigError(format!(
            "{} is not valid TOML ({}); nothing was changed",
            path.display(),
            e.to_string().trim()
        ))
    })
}

/// The table at `path` (created implicit, so only its leaves get headers).
fn table<'a>(doc: &'a mut DocumentMut, path: &[&str]) -> Result<&'a mut Table, String> {
    let mut t = doc.as_table_mut();
    for (i, k) in path.iter().enumerate() {
        if !t.contains_key(k) {
            let mut nt = Table::new();
            nt.set_implicit(true);
            t.insert(k, Item::Table(nt));
        }
        t = t
            .get_mut(k)
            .and_then(Item::as_table_mut)
            .ok_or_else(|| format!("[{}] is not a table", path[..=i].join(".")))?;
    }
    Ok(t)
}

/// Remove `path`'s leaf; then each parent left empty that only existed
/// for it (implicit).
fn remove(doc: &mut DocumentMut, path: &[&str]) -> bool {
    fn go(t: &mut Table, path: &[&str]) -> bool {
        match path {
            [] => false,
            [k] => t.remove(k).is_some(),
            [k, rest @ ..] => {
                let Some(child) = t.get_mut(k).and_then(Item::as_table_mut) else {
                    return false;
                };
                let hit = go(child, rest);
                if hit && child.is_empty() && child.is_implicit() {
                    t.remove(k);
                }
                hit
            }
        }
    }
    go(doc.as_table_mut(), path)
}

fn render_toml(before: Option<&str>, doc: &DocumentMut, removable: bool) -> Option<String> {
    let text = doc.to_string();
    if before == Some(text.as_str()) {
        return before.map(str::to_string);
    }
    if removable && text.trim().is_empty() {
        return None;
    }
    Some(text)
}

fn mcp_table(env: &Env) -> Table {
    let mut t = Table::new();
    t.insert("command", value(env.exe.as_str()));
    let mut args = toml_edit::Array::new();
    for a in ["mcp", "--client", Client::Codex.as_str()] {
        args.push(a);
    }
    t.insert("args", value(args));
    if let Some(h) = &env.repowire_home {
        let mut e = Table::new();
        e.insert("REPOWIRE_HOME", value(h.as_str()));
        t.insert("env", Item::Table(e));
    }
    t
}

/// Whether the MCP entry in `t` is what setup writes.
fn same_mcp(t: &Table, want: &Table) -> bool {
    t.to_string() == want.to_string()
}

/// Wire Codex: hooks.json, the trust of repowire's hooks, the MCP entry.
pub fn setup(env: &Env, scope: Scope) -> Result<Vec<Edit>, ConfigError> {
    let (hooks_path, config_path) = files(env, scope);
    let mode = if scope == Scope::User { 0o600 } else { 0o644 };
    let err = |p: &std::path::Path, e: String| ConfigError(format!("{}: {e}", p.display()));
    // hooks.json
    let hb = read(&hooks_path)?;
    let old = parse_json(&hooks_path, hb.as_deref())?;
    let mut doc = old.clone();
    let before_spots = spots_of(&old);
    let rows: Vec<&Hook> = wiring::hooks(Client::Codex).collect();
    let home = env.repowire_home.as_deref();
    let spots = hooks::merge(&mut doc, &rows, |h| hooks::handler(&env.exe, home, h))
        .map_err(|e| err(&hooks_path, e))?;
    let mut edits = vec![Edit {
        after: json_after(hb.as_deref(), &old, &doc, false),
        what: if doc == old {
            vec![]
        } else {
            vec![format!("{} hooks written", rows.len())]
        },
        path: hooks_path.clone(),
        before: hb,
        mode,
    }];
    // config.toml (the project's, for the MCP entry; the user's, for trust).
    let cb = read(&config_path)?;
    let mut cdoc = parse_toml(&config_path, cb.as_deref())?;
    let want = mcp_table(env);
    let servers = table(&mut cdoc, &["mcp_servers"]).map_err(|e| err(&config_path, e))?;
    let mut what = Vec::new();
    match servers.get(MCP_SERVER_NAME).and_then(Item::as_table) {
        Some(t) if same_mcp(t, &want) => {}
        Some(_) => what.push(format!("[mcp_servers.{MCP_SERVER_NAME}] updated")),
        None => what.push(format!("[mcp_servers.{MCP_SERVER_NAME}] added")),
    }
    if !what.is_empty() {
        servers.insert(MCP_SERVER_NAME, Item::Table(want));
    }
    let user_path = user_config(env);
    let same_file = user_path == config_path;
    let (ub, mut udoc) = if same_file {
        (None, None)
    } else {
        let ub = read(&user_path)?;
        let d = parse_toml(&user_path, ub.as_deref())?;
        (ub, Some(d))
    };
    {
        let tdoc = udoc.as_mut().unwrap_or(&mut cdoc);
        for s in &before_spots {
            remove(tdoc, &["hooks", "state", &trust_key(&hooks_path, s)]);
        }
        move_user_trust(tdoc, &hooks_path, &old, &doc).map_err(|e| err(&user_path, e))?;
        for (row, s) in rows.iter().zip(&spots) {
            let key = trust_key(&hooks_path, s);
            let cmd = hooks::command(&env.exe, home, row);
            let state = table(tdoc, &["hooks", "state"]).map_err(|e| err(&user_path, e))?;
            let mut t = Table::new();
            t.insert("trusted_hash", value(trust_hash(row, &cmd)));
            state.insert(&key, Item::Table(t));
        }
    }
    let trust_note = format!("{} hooks trusted", rows.len());
    match udoc {
        None => {
            let after = render_toml(cb.as_deref(), &cdoc, false);
            if after != cb {
                what.push(trust_note);
            }
            edits.push(Edit {
                path: config_path,
                before: cb,
                after,
                what,
                mode,
            });
        }
        Some(udoc) => {
            edits.push(Edit {
                after: render_toml(cb.as_deref(), &cdoc, false),
                path: config_path,
                before: cb,
                what,
                mode,
            });
            let after = render_toml(ub.as_deref(), &udoc, false);
            edits.push(Edit {
                what: if after != ub {
                    vec![trust_note]
                } else {
                    vec![]
                },
                path: user_path,
                before: ub,
                after,
                mode: 0o600,
            });
        }
    }
    Ok(edits)
}

/// Where each handler that is not repowire's sits, per client event, in
/// order.
fn user_spots(doc: &J) -> std::collections::BTreeMap<String, Vec<Spot>> {
    let mut out: std::collections::BTreeMap<String, Vec<Spot>> = Default::default();
    for a in hooks::handlers(doc)
        .into_iter()
        .filter(|a| a.ours.is_none())
    {
        out.entry(a.spot.0.clone()).or_default().push(a.spot);
    }
    out
}

/// Codex keys trust by position: when adding or removing repowire's hooks
/// moves the user's own (they keep their order), their trust entries move
/// with them, so a hook the user trusted stays trusted.
fn move_user_trust(
    tdoc: &mut DocumentMut,
    hooks_json: &std::path::Path,
    before: &J,
    after: &J,
) -> Result<(), String> {
    let (b, a) = (user_spots(before), user_spots(after));
    let mut taken = Vec::new();
    for (ev, was) in &b {
        for (x, y) in was.iter().zip(a.get(ev).into_iter().flatten()) {
            if x == y {
                continue;
            }
            let item = tdoc
                .get_mut("hooks")
                .and_then(|h| h.get_mut("state"))
                .and_then(Item::as_table_mut)
                .and_then(|st| st.remove(&trust_key(hooks_json, x)));
            if let Some(item) = item {
                taken.push((trust_key(hooks_json, y), item));
            }
        }
    }
    if !taken.is_empty() {
        let state = table(tdoc, &["hooks", "state"])?;
        for (k, item) in taken {
            state.insert(&k, item);
        }
    }
    Ok(())
}

fn spots_of(doc: &J) -> Vec<Spot> {
    hooks::ours_at(doc).into_iter().map(|(_, _, s)| s).collect()
}

/// Take repowire out of Codex at `scope`: its hooks, their trust, the MCP
/// entry.
pub fn uninstall(env: &Env, scope: Scope) -> Result<Vec<Edit>, ConfigError> {
    let (hooks_path, config_path) = files(env, scope);
    let hb = read(&hooks_path)?;
    let old = parse_json(&hooks_path, hb.as_deref())?;
    let mut doc = old.clone();
    let spots = spots_of(&old);
    let n = hooks::unmerge(&mut doc);
    let mut edits = vec![Edit {
        after: json_after(hb.as_deref(), &old, &doc, true),
        what: if n > 0 {
            vec![format!("{n} hooks removed")]
        } else {
            vec![]
        },
        path: hooks_path.clone(),
        before: hb,
        mode: 0o600,
    }];
    let cb = read(&config_path)?;
    let mut cdoc = parse_toml(&config_path, cb.as_deref())?;
    let mut what = Vec::new();
    if remove(&mut cdoc, &["mcp_servers", MCP_SERVER_NAME]) {
        what.push(format!("[mcp_servers.{MCP_SERVER_NAME}] removed"));
    }
    let user_path = user_config(env);
    let untrust = |d: &mut DocumentMut| {
        let mut k = 0;
        for s in &spots {
            if remove(d, &["hooks", "state", &trust_key(&hooks_path, s)]) {
                k += 1;
            }
        }
        // The user's own hooks that moved up keep their trust.
        let _ = move_user_trust(d, &hooks_path, &old, &doc);
        k
    };
    if user_path == config_path {
        if untrust(&mut cdoc) > 0 {
            what.push("trust of its hooks removed".into());
        }
        edits.push(Edit {
            after: render_toml(cb.as_deref(), &cdoc, true),
            path: config_path,
            before: cb,
            what,
            mode: 0o600,
        });
    } else {
        edits.push(Edit {
            after: render_toml(cb.as_deref(), &cdoc, true),
            path: config_path,
            before: cb,
            what,
            mode: 0o644,
        });
        let ub = read(&user_path)?;
        let mut udoc = parse_toml(&user_path, ub.as_deref())?;
        let k = untrust(&mut udoc);
        edits.push(Edit {
            after: render_toml(ub.as_deref(), &udoc, true),
            path: user_path,
            before: ub,
            what: if k > 0 {
                vec!["trust of its hooks removed".into()]
            } else {
                vec![]
            },
            mode: 0o600,
        });
    }
    Ok(edits)
}

/// For `doctor`: the MCP entry (file, binary), the hooks document, and
/// repowire hooks Codex would not run (not trusted, or changed since).
#[allow(clippy::type_complexity)]
pub fn status(
    env: &Env,
    scope: Scope,
) -> Result<(Option<(PathBuf, String)>, J, Vec<String>), ConfigError> {
    let (hooks_path, config_path) = files(env, scope);
    let doc = parse_json(&hooks_path, read(&hooks_path)?.as_deref())?;
    let cdoc = parse_toml(&config_path, read(&config_path)?.as_deref())?;
    let mcp = cdoc
        .get("mcp_servers")
        .and_then(|s| s.get(MCP_SERVER_NAME))
        .map(|t| {
            let exe = t
                .get("command")
                .and_then(|c| c.as_str())
                .unwrap_or("")
                .to_string();
            (config_path.clone(), exe)
        });
    let udoc = parse_toml(&user_config(env), read(&user_config(env))?.as_deref())?;
    let mut problems = Vec::new();
    for a in hooks::handlers(&doc)
        .into_iter()
        .filter(|a| a.ours.is_some())
    {
        let (s, h) = (&a.spot, a.handler);
        let ev = &s.0;
        let cmd = h.get("command").and_then(J::as_str).unwrap_or("");
        let timeout = match h.get("timeout") {
            Some(J::Num(n)) => n.as_u64().unwrap_or(600),
            _ => 600,
        };
        let matcher = a.matcher;
        let key = trust_key(&hooks_path, s);
        let trusted = udoc
            .get("hooks")
            .and_then(|h| h.get("state"))
            .and_then(|st| st.get(&key))
            .and_then(|t| t.get("trusted_hash"))
            .and_then(|v| v.as_str());
        if trusted != Some(identity_hash(ev, matcher, cmd, timeout).as_str()) {
            problems.push(format!(
                "the {ev} hook is not trusted by Codex (run `repowire setup --codex` again)"
            ));
        }
    }
    Ok((mcp, doc, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_become_codex_snake_case() {
        assert_eq!(snake("SessionStart"), "session_start");
        assert_eq!(snake("PreToolUse"), "pre_tool_use");
        assert_eq!(snake("Stop"), "stop");
    }

    /// The hash Codex 0.171.0 itself reported (app-server `hooks/list`,
    /// `currentHash`) for a PreToolUse handler `/bin/true`, matcher `Bash`,
    /// timeout 600.
    #[test]
    fn trust_hash_matches_what_codex_computes() {
        let h = Hook {
            client: Client::Codex,
            client_event: "PreToolUse",
            matcher: Some("Bash"),
            event: crate::wiring::HookEvent::PreToolUse,
            timeout_s: 600,
            async_rewake: false,
        };
        assert_eq!(
            trust_hash(&h, "/bin/true"),
            "sha256:4880971825a929690b01ed332349d657cf8de09551b66732559910db4bedd0ec"
        );
    }
}
