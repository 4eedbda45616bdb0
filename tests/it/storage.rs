//! A full disk, for real: the daemon's home on a small tmpfs that the test
//! fills. Writes are refused `storage_full` (507) while nothing acknowledged
//! is lost, the daemon recovers once space is back, and a daemon that cannot
//! start on a full disk says `storage_full`.
//!
//! Needs root to mount (CI runs as root); elsewhere the test says so and
//! passes without running.

use crate::support::*;
use repowire::api::NotifyReq;
use repowire::core::ErrorCode;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs mounted for the test; unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Self> {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()?
            .lines()
            .find(|l| l.starts_with("Uid:"))?
            .split_whitespace()
            .nth(1)?
            == "0";
        if !root {
            eprintln!("storage_full test skipped: mounting a tmpfs needs root");
            return None;
        }
        let dir = tmp_path();
        std::fs::create_dir_all(&dir).unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount -t tmpfs failed as root");
        Some(Self(dir))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Write `path` until the disk is full.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let chunk = vec![7u8; 16 * 1024];
    loop {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_all()) {
            assert_eq!(e.kind(), std::io::ErrorKind::StorageFull, "{e}");
            break;
        }
    }
    // The last partial chunk may have taken the final blocks; keep trying
    // byte-sized writes so nothing is left.
    while f.write_all(&[7u8; 512]).and_then(|()| f.sync_all()).is_ok() {}
}

#[tokio::test]
async fn a_full_disk_is_storage_full_and_loses_nothing() {
    let Some(fs) = Tmpfs::mount("8m") else {
        return;
    };
    let mut d = Daemon {
        home: tempfile::tempdir_in(&fs.0).unwrap(),
        url: String::new(),
        child: None,
        args: vec![],
    };
    d.spawn();
    let bob = d.peer("bob", None).await;
    let carol = d.peer("carol", None).await;
    let note = |i: usize| NotifyReq {
        to: "carol".into(),
        text: format!("{i} {}", "n".repeat(4000)),
        ..Default::default()
    };
    let filler = fs.0.join("filler");
    fill(&filler);
    // The store may still have free pages to reuse: write until it is full.
    let mut acked = Vec::new();
    let mut refused = None;
    for i in 0..2000 {
        match bob.notify(&note(i)).await {
            Ok(r) => acked.push(r.delivery_id),
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("writes on a full disk must be refused");
    assert_eq!(e.code(), Some(ErrorCode::StorageFull), "{e}");
    assert!(e.to_string().contains("full"), "{e}");
    assert!(d.healthy().await, "the daemon keeps serving reads");

    // Space back: writes work again and every acknowledged note is there.
    std::fs::remove_file(&filler).unwrap();
    let last = bob
        .notify(&note(9999))
        .await
        .expect("writes after space is freed");
    acked.push(last.delivery_id);
    let have: Vec<String> = carol
        .peek(1000)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .map(|d| d.delivery_id)
        .collect();
    for id in &acked {
        assert!(have.contains(id), "acknowledged {id} was lost");
    }

    // A daemon that cannot start on a full disk says why, with the code.
    let st = d.signal_and_wait("-TERM");
    assert!(st.success(), "{st}");
    fill(&filler);
    let mut run = cli_command(
        d.home_path(),
        &["daemon", "run", "--listen", "127.0.0.1:0"],
        &[],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let st = wait_timeout(&mut run, Duration::from_secs(30));
    if st.is_none() {
        let _ = run.kill();
    }
    let mut err = String::new();
    std::io::Read::read_to_string(run.stderr.as_mut().unwrap(), &mut err).unwrap();
    let st = st.expect("a daemon on a full disk must not start");
    assert!(!st.success());
    assert!(err.contains("error[storage_full]"), "{err}");
    // In the background too, though it cannot write its log.
    let r = run_cli(
        d.home_path(),
        &["daemon", "start", "--listen", "127.0.0.1:0"],
        &[],
    );
    r.fails(5, "storage_full");
    // With its stderr on the full disk too, the failure is still the exit
    // code of a coded error, not a panic while printing it (exit 101).
    let errfile = std::fs::File::create(d.home_path().join("run.err")).unwrap();
    let mut run = cli_command(
        d.home_path(),
        &["daemon", "run", "--listen", "127.0.0.1:0"],
        &[],
    )
    .stdout(std::process::Stdio::null())
    .stderr(errfile)
    .spawn()
    .unwrap();
    let st = wait_timeout(&mut run, Duration::from_secs(30));
    if st.is_none() {
        let _ = run.kill();
    }
    assert_eq!(st.expect("exits").code(), Some(5), "exit 5, not a panic");
    drop(d);
    drop(fs);
}
