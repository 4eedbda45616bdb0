//! Where personas come from: the shipped ones (built into the binary from the
//! repo's `personas/`) and the user's `<home>/personas/NAME.lua`, which
//! overrides a shipped one of the same name. An optional `NAME.md` beside a
//! script is its identity text.

use super::{Limits, Persona, PersonaError, PersonaOrigin};
use std::path::{Path, PathBuf};

/// The shipped personas: (name, script).
pub const SHIPPED: &[(&str, &str)] = &[
    ("default", include_str!("../../../personas/default.lua")),
    (
        "round_robin",
        include_str!("../../../personas/round_robin.lua"),
    ),
    ("skills", include_str!("../../../personas/skills.lua")),
    (
        "cross_review",
        include_str!("../../../personas/cross_review.lua"),
    ),
    (
        "follow_the_sun",
        include_str!("../../../personas/follow_the_sun.lua"),
    ),
];

/// A persona's source text and where it was found.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    pub origin: PersonaOrigin,
    /// Shown in errors and `persona path`.
    pub path: String,
    pub text: String,
    pub identity: Option<String>,
}

impl Source {
    pub fn compile(&self, limits: Limits) -> Result<Persona, PersonaError> {
        Persona::compile(&self.name, self.origin, &self.path, &self.text, limits)
    }
}

pub fn user_dir(home: &Path) -> PathBuf {
    home.join("personas")
}

/// The largest persona script read (a script is a few KiB; this keeps a
/// stray multi-gigabyte file from being read into memory).
pub const MAX_SOURCE_BYTES: u64 = 1 << 20;

fn read_user(path: &Path, name: &str, origin: PersonaOrigin) -> Result<Source, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // Before opening: opening a FIFO blocks until a writer comes, and a
    // device (/dev/zero) says size 0 and never ends.
    if !meta.is_file() {
        return Err(format!(
            "cannot read {}: not a regular file",
            path.display()
        ));
    }
    let size = meta.len();
    if size > MAX_SOURCE_BYTES {
        return Err(format!(
            "{}:1: the script is {size} bytes; a persona may be at most {MAX_SOURCE_BYTES}",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    // The identity text beside it, under the same rules (or none).
    let md = path.with_extension("md");
    let identity = std::fs::metadata(&md)
        .is_ok_and(|m| m.is_file() && m.len() <= MAX_SOURCE_BYTES)
        .then(|| std::fs::read_to_string(&md).ok())
        .flatten();
    Ok(Source {
        name: name.to_string(),
        origin,
        path: path.display().to_string(),
        text,
        identity,
    })
}

fn shipped(name: &str) -> Option<Source> {
    SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(n, text)| Source {
            name: n.to_string(),
            origin: PersonaOrigin::Shipped,
            path: format!("personas/{n}.lua"),
            text: text.to_string(),
            identity: None,
        })
}

/// Every persona the home can use, by name (user files win over shipped).
pub fn list(home: &Path) -> Vec<Source> {
    let mut out: Vec<Source> = SHIPPED.iter().filter_map(|(n, _)| shipped(n)).collect();
    if let Ok(dir) = std::fs::read_dir(user_dir(home)) {
        for e in dir.flatten() {
            let p = e.path();
            let Some(name) = p
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".lua"))
                .filter(|n| {
                    !n.starts_with('.') && repowire_core::peer::validate_name("persona", n).is_ok()
                })
            else {
                continue;
            };
            if let Ok(src) = read_user(&p, name, PersonaOrigin::User) {
                out.retain(|s| s.name != src.name);
                out.push(src);
            }
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// A persona by name (user's first, then shipped), or a script file by path.
pub fn find(home: &Path, name_or_file: &str) -> Result<Source, String> {
    let as_path = Path::new(name_or_file);
    if name_or_file.ends_with(".lua") || name_or_file.contains('/') {
        let name = as_path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("persona")
            .to_string();
        return read_user(as_path, &name, PersonaOrigin::File);
    }
    repowire_core::peer::validate_name("persona name", name_or_file).map_err(|e| e.message)?;
    let user = user_dir(home).join(format!("{name_or_file}.lua"));
    if user.exists() {
        return read_user(&user, name_or_file, PersonaOrigin::User);
    }
    shipped(name_or_file).ok_or_else(|| {
        format!(
            "no persona {name_or_file:?}: not in {} and not shipped (shipped: {})",
            user_dir(home).display(),
            SHIPPED
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// The commented starter script `persona new` writes.
pub fn starter(name: &str) -> String {
    format!(
        r#"--[[ {name} — a repowire persona.

Entry points (define at least one; each returns a route):
  dispatch(job, mesh)  -> route   which peer gets a job
  review(item, mesh)   -> route   who reviews a change (never the author)
Routes: route.assign(peer, {{note=…}}), route.ask(peer, text),
route.notify(peer, text), route.defer("10m", why), route.ask_user(question),
route.decline(why), route.fanout({{peer, …}}, text),
route.spawn{{path=…, backend=…, name=…}} (dispatch: start a worker in tmux).
The mesh: mesh.peers{{status=…, role=…, tag=…, backend=…}}, mesh.peer(name),
mesh.orchestrator(), mesh.jobs{{state=…}}, mesh.now(), mesh.circle, log(msg).
Guide: docs/personas.md. Try it offline:
  repowire orchestrator persona test {name} --fixture mesh.json --job job.json ]]

function dispatch(job, mesh)
  -- The least-loaded online agent carrying every tag of the job.
  local best = nil
  for _, p in ipairs(mesh.peers({{ status = "online", role = "agent" }})) do
    local fits = true
    for _, t in ipairs(job.tags) do
      fits = fits and p:has_tag(t)
    end
    if fits and (best == nil or p.load < best.load) then
      best = p
    end
  end
  if best then
    return route.assign(best, {{ note = "picked by {name}" }})
  end
  return route.defer("1m", "nobody fits yet")
end

function review(item, mesh)
  for _, p in ipairs(mesh.peers({{ status = "online" }})) do
    if p.name ~= item.author then
      return route.assign(p)
    end
  end
  return route.defer("5m", "no reviewer online")
end
"#
    )
}
