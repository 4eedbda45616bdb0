//! `repowire dashboard`.

use super::{CmdResult, Ctx};

/// `repowire dashboard`: a one-time login link from the daemon, printed, and
/// opened with `xdg-open` where a desktop is ($DISPLAY or $WAYLAND_DISPLAY).
pub(super) async fn run(ctx: &Ctx, no_open: bool) -> CmdResult {
    let login = ctx.admin_client().dashboard_login().await?;
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let opened = !no_open
        && desktop
        && std::process::Command::new("xdg-open")
            .arg(&login.url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .is_ok();
    let out = serde_json::json!({
        "url": login.url,
        "expires_in_s": login.expires_in_s,
        "opened": opened,
    });
    ctx.out(&out, |_| {
        format!(
            "{}\n(good once, for {} s{})",
            login.url,
            login.expires_in_s,
            if opened {
                "; opened in your browser"
            } else {
                ""
            }
        )
    });
    Ok(())
}
