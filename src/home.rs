//! The state directory (`REPOWIRE_HOME`, `--home`, default `~/.repowire`) and
//! the files in it: `state.db`, `token` (0600), `daemon.pid`, `daemon.json`
//! (the running daemon's address), `daemon.lock`.

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

    /// Create the directory (mode 0700) if missing; an existing one is left
    /// as it is (the token file inside is 0600 either way).
    pub fn ensure_dir(&self) -> Result<()> {
        if self.dir.is_dir() {
            return Ok(());
        }
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("while creating home {}", self.dir.display()))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))?;
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
        let token = crate::core::ids::new_token();
        let tmp = self.dir.join(".token.tmp");
        let _ = fs::remove_file(&tmp);
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("while writing {}", tmp.display()))?;
        f.write_all(token.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
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

    /// Write `daemon.json` and `daemon.pid` atomically.
    pub fn write_record(&self, rec: &DaemonRecord) -> Result<()> {
        write_atomic(&self.record_path(), &serde_json::to_vec_pretty(rec)?)?;
        write_atomic(&self.pid_path(), format!("{}\n", rec.pid).as_bytes())
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

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, bytes).with_context(|| format!("while writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("while writing {}", path.display()))?;
    Ok(())
}
