//! The state directory (`REPOWIRE_HOME`, `--home`, default `~/.repowire`) and
//! the files in it: `state.db` (and SQLite's `-wal`/`-shm`), `token`,
//! `daemon.pid`, `daemon.json` (the running daemon's address), `daemon.lock`,
//! `daemon.log`, `personas/`, `mcp/`.
//!
//! Everything in the home is its owner's only: the directory and every
//! directory in it 0700, every file 0600 (messages, tokens and the database
//! live here). Files are created with that mode ([`private_file`],
//! [`write_private`], [`private_dir`]) rather than fixed afterwards, and
//! [`Home::ensure_dir`] tightens whatever an older version or another tool
//! left looser, with a warning. No umask games: the mode is given per file.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const DEFAULT_URL: &str = "http://127.0.0.1:8377";

/// A resolved home directory.
#[derive(Debug, Clone)]
pub struct Home {
    pub dir: PathBuf,
}

/// What a running daemon writes about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DaemonRecord {
    pub url: String,
    pub pid: u32,
    pub started_at_ms: i64,
    pub version: String,
}

impl Home {
    /// `--home`, else `REPOWIRE_HOME`, else `~/.repowire`.
    pub fn resolve(flag: Option<&Path>) -> Self {
        let dir = flag
            .map(Path::to_path_buf)
            .or_else(|| std::env::var_os("REPOWIRE_HOME").map(PathBuf::from))
            .unwrap_or_else(|| {
                std::env::var_os("HOME")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("."))
                    .join(".repowire")
            });
        Self { dir }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("state.db")
    }
    pub fn token_path(&self) -> PathBuf {
        self.dir.join("token")
    }
    pub fn pid_path(&self) -> PathBuf {
        self.dir.join("daemon.pid")
    }
    pub fn record_path(&self) -> PathBuf {
        self.dir.join("daemon.json")
    }
    pub fn lock_path(&self) -> PathBuf {
        self.dir.join("daemon.lock")
    }

    /// Create the directory (mode 0700) if missing, and make an existing
    /// one its owner's only: the home and every directory in it 0700, every
    /// file 0600 (see [`Home::secure`]).
    pub fn ensure_dir(&self) -> Result<()> {
        private_dir(&self.dir)
            .with_context(|| format!("while creating home {}", self.dir.display()))?;
        self.secure()
    }

    /// Tighten the home: itself and every directory below 0700, every file
    /// 0600. A looser home is reported (a warning on stderr, which is the
    /// daemon's log), as are loose files in it. Symbolic links are left
    /// alone: what they point to is not ours to change.
    pub fn secure(&self) -> Result<()> {
        let mode = fs::metadata(&self.dir)
            .with_context(|| format!("while reading home {}", self.dir.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                home = %self.dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the home was readable by other users; setting mode 0700"
            );
            set_mode(&self.dir, DIR_MODE)?;
        }
        let mut loose = Vec::new();
        tighten_below(&self.dir, &mut loose)?;
        if !loose.is_empty() {
            tracing::warn!(
                home = %self.dir.display(),
                files = ?loose,
                "files in the home were readable by other users; set to 0600 (directories 0700)"
            );
        }
        Ok(())
    }

    /// The admin token, created (mode 0600) on first call.
    pub fn ensure_token(&self) -> Result<String> {
        let path = self.token_path();
        if let Ok(t) = fs::read_to_string(&path) {
            let t = t.trim().to_string();
            if !t.is_empty() {
                let mut perm = fs::metadata(&path)?.permissions();
                if perm.mode() & 0o077 != 0 {
                    tracing::warn!(path = %path.display(), "token file was readable by others; setting mode 0600");
                    perm.set_mode(0o600);
                    fs::set_permissions(&path, perm)?;
                }
                return Ok(t);
            }
        }
        let token = repowire_core::ids::new_token();
        write_private(&path, token.as_bytes())?;
        Ok(token)
    }

    /// The admin token, if this home has one.
    pub fn read_token(&self) -> Option<String> {
        fs::read_to_string(self.token_path())
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    }

    pub fn read_record(&self) -> Option<DaemonRecord> {
        let s = fs::read_to_string(self.record_path()).ok()?;
        serde_json::from_str(&s).ok()
    }

    /// Write `daemon.pid` and `daemon.json` atomically, the pid first:
    /// whoever sees `daemon.json` (the sign the daemon is up) finds the pid.
    pub fn write_record(&self, rec: &DaemonRecord) -> Result<()> {
        write_atomic(&self.pid_path(), format!("{}\n", rec.pid).as_bytes())?;
        write_atomic(&self.record_path(), &serde_json::to_vec_pretty(rec)?)
    }

    /// Open (creating, 0600) the daemon's lock file.
    pub fn open_lock(&self) -> Result<fs::File> {
        private_file()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.lock_path())
            .context("while opening daemon.lock")
    }

    /// Remove the record files if they still describe process `pid`.
    pub fn clear_record(&self, pid: u32) {
        if self.read_record().is_some_and(|r| r.pid == pid) {
            let _ = fs::remove_file(self.record_path());
            let _ = fs::remove_file(self.pid_path());
        }
    }

    /// The daemon URL: `REPOWIRE_URL`, else the record, else the default.
    pub fn daemon_url(&self, flag: Option<&str>) -> String {
        flag.map(str::to_string)
            .or_else(|| std::env::var("REPOWIRE_URL").ok().filter(|s| !s.is_empty()))
            .or_else(|| self.read_record().map(|r| r.url))
            .unwrap_or_else(|| DEFAULT_URL.to_string())
    }
}

/// The mode of every directory in the home, the home included.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in the home.
pub const FILE_MODE: u32 = 0o600;

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("while setting mode {mode:o} on {}", path.display()))
}

/// Tighten every directory (0700) and file (0600) below `dir`; the paths
/// that were looser are added to `loose`.
fn tighten_below(dir: &Path, loose: &mut Vec<String>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("while reading {}", dir.display()))?;
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        // A file may vanish while we walk (a session ending, a temp file).
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let want = if meta.is_dir() {
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue; // symlinks, sockets: not ours to change
        };
        if meta.permissions().mode() & 0o777 != want {
            match set_mode(&path, want) {
                Ok(()) => loose.push(path.display().to_string()),
                Err(_) if !path.exists() => {}
                // Not ours (another user's file): say so, but a stray file
                // does not keep the daemon from starting.
                Err(e) => tracing::warn!(
                    error = format!("{e:#}"),
                    "could not tighten a file in the home"
                ),
            }
        }
        if meta.is_dir() {
            tighten_below(&path, loose)?;
        }
    }
    Ok(())
}

/// Create `dir` and any missing parents, mode 0700.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Options that create a file its owner alone may read (0600).
pub fn private_file() -> fs::OpenOptions {
    let mut o = fs::OpenOptions::new();
    o.mode(FILE_MODE);
    o
}

/// Write `path` atomically and durably (a temp file beside it, synced,
/// renamed over it), 0600 whatever mode an earlier file had.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = private_file()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .with_context(|| format!("while writing {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("while writing {}", tmp.display()))?;
    drop(f);
    fs::rename(&tmp, path).with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_private(path, bytes)
}
