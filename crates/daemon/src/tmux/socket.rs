//! Which tmux servers the daemon talks to. A server is named (`tmux -L
//! NAME`: tmux keeps its socket in its own directory, which it checks is
//! the user's and private) or given by its socket's path (`tmux -S PATH`).
//! Every tmux call resolves a path again, so a path is accepted only when
//! nobody but the daemon's user (or root) can change what it leads to: no
//! symbolic link on it, every directory on it owned by root or the daemon's
//! user and writable by nobody else unless sticky (as `/tmp` is: there only
//! an entry's owner may replace it), and the socket itself the daemon
//! user's. Otherwise a check on one server and the action after it could
//! land on two different servers (a link swapped in between).

use repowire_core::error::Error;
use repowire_core::limits::PATH_BYTES;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Component, Path};

/// Check a server name or socket path (see the module's doc).
pub fn check_server(server: &str) -> Result<(), Error> {
    if !server.contains('/') {
        let ok = !server.is_empty()
            && server.len() <= repowire_core::peer::MAX_NAME_LEN
            && server.chars().any(|c| c != '.')
            && !server.starts_with('-')
            && server
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
        return match ok {
            true => Ok(()),
            false => Err(Error::bad_request(format!(
                "invalid tmux server {server:?}: a socket name (tmux -L) of letters, digits, '.', '_', '-' (not dots alone, not starting with '-'), or a socket's path (tmux -S)"
            ))),
        };
    }
    if server.len() > PATH_BYTES || server.chars().any(|c| c.is_control() || c == ',') {
        return Err(Error::bad_request(format!(
            "invalid tmux server {server:?}: a socket path without control characters or commas"
        )));
    }
    trusted_socket(Path::new(server)).map_err(|why| {
        Error::bad_request(format!(
            "tmux socket {server:?} cannot be used: {why} (name a server with tmux -L NAME, or give the path of a socket of the daemon's user in directories only it or root can change)"
        ))
    })
}

/// Why `path` is not a socket the daemon may use, if it is not.
fn trusted_socket(path: &Path) -> Result<(), String> {
    if !path.is_absolute() {
        return Err("the path is not absolute".into());
    }
    let me = std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .map_err(|e| format!("the daemon cannot read its own uid: {e}"))?;
    let trusted = |uid: u32| uid == 0 || uid == me;
    let parts: Vec<Component> = path.components().collect();
    if parts
        .iter()
        .any(|c| matches!(c, Component::ParentDir | Component::CurDir))
    {
        return Err("the path holds . or ..".into());
    }
    let mut at = std::path::PathBuf::from("/");
    for (i, c) in parts.iter().enumerate() {
        match c {
            Component::RootDir => {}
            Component::Normal(n) => at.push(n),
            _ => return Err("the path holds . or ..".into()),
        }
        let m = std::fs::symlink_metadata(&at).map_err(|e| format!("{}: {e}", at.display()))?;
        let last = i + 1 == parts.len();
        if m.file_type().is_symlink() {
            return Err(format!("{} is a symbolic link", at.display()));
        }
        if last {
            if !m.file_type().is_socket() {
                return Err("it is not a socket".into());
            }
            if m.uid() != me {
                return Err("the socket belongs to another user".into());
            }
        } else {
            if !m.is_dir() {
                return Err(format!("{} is not a directory", at.display()));
            }
            if !trusted(m.uid()) {
                return Err(format!("{} belongs to another user", at.display()));
            }
            let others_write = m.mode() & 0o022 != 0;
            let sticky = m.mode() & 0o1000 != 0;
            if others_write && !sticky {
                return Err(format!("others may write to {}", at.display()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_server;

    #[test]
    fn names_and_paths() {
        for ok in ["repowire", "a.b-c_1"] {
            check_server(ok).unwrap();
        }
        for bad in ["", ".", "..", "...", "a b", "a,b", "-L"] {
            assert!(check_server(bad).is_err(), "{bad:?}");
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let sock = d.join("s");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        check_server(sock.to_str().unwrap()).unwrap();
        std::fs::write(d.join("f"), "").unwrap();
        std::os::unix::fs::symlink(&sock, d.join("link")).unwrap();
        let sub = d.join("open");
        std::fs::create_dir(&sub).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(0o777)).unwrap();
        let _l2 = std::os::unix::net::UnixListener::bind(sub.join("s")).unwrap();
        for (path, says) in [
            (d.join("f"), "not a socket"),
            (d.join("nope"), "No such file"),
            (d.join("link"), "symbolic link"),
            (sub.join("s"), "others may write"),
            (d.join("x/../s"), ". or .."),
        ] {
            let e = check_server(path.to_str().unwrap()).unwrap_err();
            assert!(
                e.message.contains(says),
                "{}: {}",
                path.display(),
                e.message
            );
        }
    }
}
