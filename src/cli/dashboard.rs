//! `repowire dashboard`.

use super::{CmdResult, Ctx};

/// `repowire dashboard`: a one-time login link from the daemon, printed, and
/// opened where a desktop is ($DISPLAY or $WAYLAND_DISPLAY) — through a
/// page only you can read (`<home>/dashboard-login.html`, which moves on to
/// the link), never with the link in a command line, where every user of
/// the machine could read the code and use it first.
pub(super) async fn run(ctx: &Ctx, no_open: bool) -> CmdResult {
    let login = ctx.admin_client().dashboard_login().await?;
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY"]
        .iter()
        .any(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
    let opened = !no_open && desktop && open(ctx, &login.url).is_ok();
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

/// Open `url` in the desktop's browser by way of a private page.
fn open(ctx: &Ctx, url: &str) -> anyhow::Result<()> {
    let page = ctx.home.dir.join("dashboard-login.html");
    // The link is the daemon's own URL and a hex code: nothing to escape.
    let html = format!(
        "<!doctype html><meta charset=utf-8><meta http-equiv=\"refresh\" content=\"0; url={url}\"><title>repowire</title><a href=\"{url}\">Open the dashboard</a>\n"
    );
    crate::home::write_private(&page, html.as_bytes())?;
    std::process::Command::new("xdg-open")
        .arg(&page)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()?;
    Ok(())
}
