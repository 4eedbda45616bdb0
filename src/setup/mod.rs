//! `repowire setup` / `uninstall` / the wiring part of `doctor`: what
//! repowire writes into agent clients' configuration, and taking exactly
//! that back out (docs/hooks.md).
//!
//! Every change is computed in memory first — files parsed with real
//! parsers (JSON keeping key order, TOML with `toml_edit` keeping comments
//! and layout), merged, rendered — and only then written: a file that does
//! not parse stops everything before anything is written. Each file that
//! changes is backed up beside itself (`<file>.repowire-backup-<unix time>`)
//! and replaced atomically; `--dry-run` shows the diff instead.
//!
//! Shapes verified against Claude Code 2.1.197 and Codex CLI 0.171.0.

pub mod codex;
pub mod hooks;
pub mod json;

use crate::wiring::{self, Client, MCP_SERVER_NAME};
use json::J;
use std::path::{Path, PathBuf};

/// Where each client keeps its configuration, and what to write into it.
#[derive(Debug, Clone)]
pub struct Env {
    /// The user's home directory.
    pub home: PathBuf,
    /// `CLAUDE_CONFIG_DIR`, else `~/.claude`.
    pub claude_dir: PathBuf,
    /// Claude Code's global config with the user's MCP servers: as Claude
    /// Code picks it (`<claude_dir>/.config.json` if present, else
    /// `.claude.json` in `CLAUDE_CONFIG_DIR` or the home).
    pub claude_json: PathBuf,
    /// `CODEX_HOME`, else `~/.codex`.
    pub codex_home: PathBuf,
    /// The project directory (`--scope project`).
    pub project: PathBuf,
    /// The repowire binary the clients run.
    pub exe: String,
    /// The repowire home, when it is not the default one.
    pub repowire_home: Option<String>,
    /// `setup --channels`: Claude Code's server pushes messages live as
    /// channel events (`--delivery push`).
    pub channels: bool,
}

impl Env {
    /// From the process environment; `repowire_home` is the home in use.
    pub fn detect(repowire_home: &Path) -> anyhow::Result<Env> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .ok_or_else(|| anyhow::anyhow!("HOME is not set"))?;
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let claude_dir = var("CLAUDE_CONFIG_DIR").unwrap_or_else(|| home.join(".claude"));
        let claude_json = if claude_dir.join(".config.json").exists() {
            claude_dir.join(".config.json")
        } else {
            var("CLAUDE_CONFIG_DIR")
                .unwrap_or_else(|| home.clone())
                .join(".claude.json")
        };
        let exe = std::env::current_exe()?;
        let default_home = home.join(".repowire");
        Ok(Env {
            codex_home: var("CODEX_HOME").unwrap_or_else(|| home.join(".codex")),
            project: std::env::current_dir()?,
            exe: exe.display().to_string(),
            repowire_home: (repowire_home != default_home)
                .then(|| repowire_home.display().to_string()),
            home,
            claude_dir,
            claude_json,
            channels: false,
        })
    }

    /// Whether `client` looks installed: its command on PATH, or its
    /// configuration directory present.
    pub fn installed(&self, client: Client) -> bool {
        let (cmd, dir) = match client {
            Client::Claude => ("claude", &self.claude_dir),
            Client::Codex => ("codex", &self.codex_home),
        };
        dir.is_dir() || on_path(cmd)
    }
}

fn on_path(cmd: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|p| {
        std::env::split_paths(&p).any(|d| {
            std::fs::metadata(d.join(cmd))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// `--scope`: the user's own configuration, or the project's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Project,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Project => "project",
        }
    }
}

/// A failure that names the file (`client_config`).
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One file's change.
#[derive(Debug, Clone)]
pub struct Edit {
    pub path: PathBuf,
    /// Its text now (`None`: it does not exist).
    pub before: Option<String>,
    /// Its text after (`None`: removed).
    pub after: Option<String>,
    /// What changes, for people.
    pub what: Vec<String>,
    /// Mode for a new file.
    pub mode: u32,
}

impl Edit {
    pub fn changed(&self) -> bool {
        self.before != self.after
    }

    pub fn action(&self) -> &'static str {
        match (&self.before, &self.after) {
            _ if !self.changed() => "unchanged",
            (None, Some(_)) => "create",
            (Some(_), None) => "remove",
            _ => "update",
        }
    }

    /// A unified diff of the change.
    pub fn diff(&self) -> String {
        let a = self.before.as_deref().unwrap_or("");
        let b = self.after.as_deref().unwrap_or("");
        let name = self.path.display().to_string();
        similar::TextDiff::from_lines(a, b)
            .unified_diff()
            .context_radius(3)
            .header(
                &if self.before.is_some() {
                    name.clone()
                } else {
                    "/dev/null".into()
                },
                &if self.after.is_some() {
                    name
                } else {
                    "/dev/null".into()
                },
            )
            .to_string()
    }
}

/// Read a file's text (`None`: missing).
pub fn read(path: &Path) -> Result<Option<String>, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ConfigError(format!("cannot read {}: {e}", path.display()))),
    }
}

/// Parse a JSON config file (missing or blank: an empty object).
pub fn parse_json(path: &Path, text: Option<&str>) -> Result<J, ConfigError> {
    match text {
        None => Ok(J::obj()),
        Some(t) if t.trim().is_empty() => Ok(J::obj()),
        Some(t) => match J::parse(t) {
            Ok(j @ J::Obj(_)) => Ok(j),
            Ok(_) => Err(ConfigError(format!(
                "{} is not a JSON object; nothing was changed",
                path.display()
            ))),
            Err(e) => Err(ConfigError(format!(
                "{} is not valid JSON ({e}); nothing was changed",
                path.display()
            ))),
        },
    }
}

/// A JSON file's text after `doc`, keeping the file as it was when the
/// document did not change (and removing a file setup would have created
/// that is left empty).
pub(super) fn json_after(
    before: Option<&str>,
    old: &J,
    doc: &J,
    removable: bool,
) -> Option<String> {
    if doc == old {
        return before.map(str::to_string);
    }
    if removable && doc.is_empty_container() {
        return None;
    }
    Some(doc.render())
}

/// The MCP entry for `client`.
fn mcp_entry(env: &Env, client: Client) -> J {
    let vars = match &env.repowire_home {
        Some(h) => J::object([("REPOWIRE_HOME", J::str(h))]),
        None => J::obj(),
    };
    let mut args = ["mcp", "--client", client.as_str()].map(J::str).to_vec();
    if env.channels && client == Client::Claude {
        args.extend(["--delivery", "push"].map(J::str));
    }
    J::object([
        ("type", J::str("stdio")),
        ("command", J::str(&env.exe)),
        ("args", J::Arr(args)),
        ("env", vars),
    ])
}

/// Claude Code's files for `scope`: (MCP servers file, settings file).
pub fn claude_files(env: &Env, scope: Scope) -> (PathBuf, PathBuf) {
    match scope {
        Scope::User => (
            env.claude_json.clone(),
            env.claude_dir.join("settings.json"),
        ),
        Scope::Project => (
            env.project.join(".mcp.json"),
            env.project.join(".claude").join("settings.json"),
        ),
    }
}

/// Wire Claude Code: the MCP entry and the hooks.
pub fn claude_setup(env: &Env, scope: Scope) -> Result<Vec<Edit>, ConfigError> {
    let (mcp_path, settings_path) = claude_files(env, scope);
    let mode = if scope == Scope::User { 0o600 } else { 0o644 };
    let mut out = Vec::new();
    // The MCP entry.
    let before = read(&mcp_path)?;
    let old = parse_json(&mcp_path, before.as_deref())?;
    let mut doc = old.clone();
    let want = mcp_entry(env, Client::Claude);
    let servers = doc.child_obj("mcpServers").ok_or_else(|| {
        ConfigError(format!(
            "{}: \"mcpServers\" is not an object",
            mcp_path.display()
        ))
    })?;
    let what = match servers.get(MCP_SERVER_NAME) {
        Some(cur) if *cur == want => vec![],
        Some(_) => vec![format!("mcpServers.{MCP_SERVER_NAME} updated")],
        None => vec![format!("mcpServers.{MCP_SERVER_NAME} added")],
    };
    servers.set(MCP_SERVER_NAME, want);
    out.push(Edit {
        after: json_after(before.as_deref(), &old, &doc, false),
        path: mcp_path,
        before,
        what,
        mode,
    });
    // The hooks.
    let before = read(&settings_path)?;
    let old = parse_json(&settings_path, before.as_deref())?;
    let mut doc = old.clone();
    let rows: Vec<_> = wiring::hooks(Client::Claude).collect();
    hooks::merge(&mut doc, &rows, |h| {
        hooks::handler(&env.exe, env.repowire_home.as_deref(), h)
    })
    .map_err(|e| ConfigError(format!("{}: {e}", settings_path.display())))?;
    let what = if doc == old {
        vec![]
    } else {
        vec![format!("{} hooks written", rows.len())]
    };
    out.push(Edit {
        after: json_after(before.as_deref(), &old, &doc, false),
        path: settings_path,
        before,
        what,
        mode,
    });
    Ok(out)
}

/// Take repowire out of Claude Code's files for `scope`.
pub fn claude_uninstall(env: &Env, scope: Scope) -> Result<Vec<Edit>, ConfigError> {
    let (mcp_path, settings_path) = claude_files(env, scope);
    let mut out = Vec::new();
    let user_json = scope == Scope::User;
    let before = read(&mcp_path)?;
    let old = parse_json(&mcp_path, before.as_deref())?;
    let mut doc = old.clone();
    let mut what = vec![];
    if let Some(servers) = doc.get_mut("mcpServers")
        && servers.remove(MCP_SERVER_NAME).is_some()
    {
        what.push(format!("mcpServers.{MCP_SERVER_NAME} removed"));
        if servers.is_empty_container() {
            doc.remove("mcpServers");
        }
    }
    out.push(Edit {
        // ~/.claude.json holds Claude Code's own state: never removed.
        after: json_after(before.as_deref(), &old, &doc, !user_json),
        path: mcp_path,
        before,
        what,
        mode: 0o600,
    });
    let before = read(&settings_path)?;
    let old = parse_json(&settings_path, before.as_deref())?;
    let mut doc = old.clone();
    let n = hooks::unmerge(&mut doc);
    out.push(Edit {
        after: json_after(before.as_deref(), &old, &doc, true),
        path: settings_path,
        before,
        what: if n > 0 {
            vec![format!("{n} hooks removed")]
        } else {
            vec![]
        },
        mode: 0o600,
    });
    Ok(out)
}

/// Hold the setup lock: one `setup`/`uninstall` at a time per user (an
/// exclusive `flock` on the home directory itself, so no lock file is
/// left anywhere), from reading the files to replacing them.
pub fn lock(env: &Env) -> Result<std::fs::File, ConfigError> {
    let f = std::fs::File::open(&env.home)
        .map_err(|e| ConfigError(format!("cannot open {}: {e}", env.home.display())))?;
    f.lock()
        .map_err(|e| ConfigError(format!("cannot lock {}: {e}", env.home.display())))?;
    Ok(f)
}

/// Where writing `path` lands: through its symlinks, dangling ones
/// included (a dotfile manager's link to a file not made yet).
fn resolve(path: &Path) -> Result<PathBuf, ConfigError> {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_symlink() => {
                let t = std::fs::read_link(&p).map_err(|e| {
                    ConfigError(format!("cannot read the link {}: {e}", p.display()))
                })?;
                p = match p.parent() {
                    Some(dir) if t.is_relative() => dir.join(t),
                    _ => t,
                };
            }
            _ => return Ok(p),
        }
    }
    Err(ConfigError(format!(
        "{} is a loop of symlinks; nothing was changed",
        path.display()
    )))
}

/// Create `path` new (never through anything already there, a planted
/// symlink included) with `mode`, holding `bytes`.
fn create_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(mode))?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Write the edits that change something, all or nothing as far as the
/// file system allows: first every file is checked unchanged since it was
/// read, backed up (`<file>.repowire-backup-<unix time>`) and its new text
/// written to a fresh temporary file beside it; only when all of that
/// worked are the files replaced (renames) or removed. A failure before
/// that removes what it made and changes nothing. Hold [`lock`] around
/// reading and applying. Returns the backups made.
pub fn apply(edits: &[Edit]) -> Result<Vec<(PathBuf, PathBuf)>, ConfigError> {
    use std::os::unix::fs::PermissionsExt;
    let stamp = crate::core::time::now_ms() / 1000;
    let mut made: Vec<PathBuf> = Vec::new();
    let mut backups = Vec::new();
    let mut steps: Vec<(PathBuf, Option<PathBuf>)> = Vec::new();
    let staged = (|| -> Result<(), ConfigError> {
        for (n, e) in edits.iter().filter(|e| e.changed()).enumerate() {
            let fail = |what: &str, err: std::io::Error| {
                ConfigError(format!(
                    "cannot {what} {}: {err}; nothing was changed",
                    e.path.display()
                ))
            };
            let target = resolve(&e.path)?;
            let now = read(&target)?;
            if now != e.before {
                return Err(ConfigError(format!(
                    "{} changed while setup ran; nothing was changed: run it again",
                    e.path.display()
                )));
            }
            let mode = match std::fs::metadata(&target) {
                Ok(m) => m.permissions().mode() & 0o7777,
                Err(_) => e.mode,
            };
            if let Some(old) = &e.before {
                let mut i = 1;
                let backup = loop {
                    let b = PathBuf::from(if i == 1 {
                        format!("{}.repowire-backup-{stamp}", target.display())
                    } else {
                        format!("{}.repowire-backup-{stamp}-{i}", target.display())
                    });
                    match create_new(&b, old.as_bytes(), mode) {
                        Ok(()) => break b,
                        Err(x) if x.kind() == std::io::ErrorKind::AlreadyExists && i < 100 => {
                            i += 1
                        }
                        Err(x) => return Err(fail("back up", x)),
                    }
                };
                made.push(backup.clone());
                backups.push((e.path.clone(), backup));
            }
            let tmp = match &e.after {
                None => None,
                Some(text) => {
                    let dir = target.parent().unwrap_or(Path::new("."));
                    std::fs::create_dir_all(dir).map_err(|x| fail("create the directory of", x))?;
                    let name = target
                        .file_name()
                        .and_then(|n| n.to_str())
                        .unwrap_or("config");
                    let tmp = dir.join(format!(
                        ".{name}.repowire-tmp-{}-{stamp}-{n}",
                        std::process::id()
                    ));
                    create_new(&tmp, text.as_bytes(), mode).map_err(|x| fail("write", x))?;
                    made.push(tmp.clone());
                    Some(tmp)
                }
            };
            steps.push((target, tmp));
        }
        Ok(())
    })();
    if let Err(e) = staged {
        for p in made {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    for (i, (target, tmp)) in steps.iter().enumerate() {
        let done = match tmp {
            Some(tmp) => std::fs::rename(tmp, target),
            None => std::fs::remove_file(target),
        };
        if let Err(e) = done {
            for (_, t) in &steps[i..] {
                if let Some(t) = t {
                    let _ = std::fs::remove_file(t);
                }
            }
            let changed: Vec<String> = steps[..i]
                .iter()
                .map(|(t, _)| t.display().to_string())
                .collect();
            return Err(ConfigError(format!(
                "cannot replace {}: {e}; already changed: {} (backups beside them)",
                target.display(),
                if changed.is_empty() {
                    "nothing".into()
                } else {
                    changed.join(", ")
                }
            )));
        }
    }
    Ok(backups)
}

/// What one client's wiring looks like now (for `doctor`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Wired {
    pub client: &'static str,
    pub scope: &'static str,
    pub installed: bool,
    /// The MCP entry: where, and whether its binary exists.
    pub mcp: Option<String>,
    /// The hooks present (`<ClientEvent>:<subcommand>`), and the missing.
    pub hooks: Vec<String>,
    pub missing: Vec<String>,
    /// Problems: a binary that does not exist, a Codex hook not trusted.
    pub problems: Vec<String>,
}

impl Wired {
    /// Nothing of repowire is wired.
    pub fn none(&self) -> bool {
        self.mcp.is_none() && self.hooks.is_empty()
    }
    /// Fully wired, or not at all, and nothing broken.
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && (self.none() || (self.mcp.is_some() && self.missing.is_empty()))
    }
}

/// What is wired into `client` at `scope`.
pub fn status(env: &Env, client: Client, scope: Scope) -> Result<Wired, ConfigError> {
    let mut w = Wired {
        client: client.as_str(),
        scope: scope.as_str(),
        installed: env.installed(client),
        mcp: None,
        hooks: vec![],
        missing: vec![],
        problems: vec![],
    };
    let (mcp_exe, doc) = match client {
        Client::Claude => {
            let (mcp_path, settings) = claude_files(env, scope);
            let m = parse_json(&mcp_path, read(&mcp_path)?.as_deref())?;
            let exe = m
                .get("mcpServers")
                .and_then(|s| s.get(MCP_SERVER_NAME))
                .map(|e| {
                    (
                        mcp_path.clone(),
                        e.get("command")
                            .and_then(J::as_str)
                            .unwrap_or("")
                            .to_string(),
                    )
                });
            (exe, parse_json(&settings, read(&settings)?.as_deref())?)
        }
        Client::Codex => {
            let (exe, doc, untrusted) = codex::status(env, scope)?;
            w.problems.extend(untrusted);
            (exe, doc)
        }
    };
    if let Some((path, exe)) = mcp_exe {
        w.mcp = Some(format!("{} ({exe})", path.display()));
        if !Path::new(&exe).is_file() {
            w.problems
                .push(format!("the MCP entry runs {exe}, which does not exist"));
        }
    }
    let present = hooks::ours(&doc);
    for (ev, exe, e, _) in &present {
        w.hooks.push(format!("{ev}:{}", e.as_str()));
        if !Path::new(exe).is_file() {
            w.problems
                .push(format!("the {ev} hook runs {exe}, which does not exist"));
        }
    }
    for row in wiring::hooks(client) {
        if !present
            .iter()
            .any(|(ev, _, e, _)| ev == row.client_event && *e == row.event)
        {
            w.missing
                .push(format!("{}:{}", row.client_event, row.event.as_str()));
        }
    }
    w.problems.dedup();
    Ok(w)
}
