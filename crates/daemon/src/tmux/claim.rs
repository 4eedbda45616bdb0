//! Binding a peer to a pane. A tmux route is a promise to type into that
//! pane, so the daemon records one only for a registration that proved it
//! may: before it sends the route, the registering process sets the pane
//! option `@repowire_claim_<claim>` (a fresh random value, sent along as
//! `RegisterReq.tmux_claim`), and the daemon looks for it there. Setting a
//! pane option takes access to that tmux server, and whoever has that can
//! already type into its panes: a peer cannot point its deliveries at a
//! pane it could not reach itself (another user's shell, say).
//!
//! Once the peer is registered, the pane is bound to it: the claim option
//! is removed, `@repowire_peer` names the peer (nothing is typed into or
//! closed in a pane marked otherwise, as a restarted server's reused pane
//! ids would be) and `@repowire_fg` records the terminal's foreground
//! process group (typing waits while another one holds it: the agent ended
//! and left a shell prompt, or the user runs something else there).

use super::cmd::foreground_group;
use crate::DaemonHandle;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::PeerId;
use repowire_core::tmux::{FG_OPTION, MARK_OPTION, PaneAddr, claim_option};

/// A pane whose claim was seen.
#[derive(Debug)]
pub struct Verified {
    addr: PaneAddr,
    /// The claim's option, removed when the pane is bound.
    option: String,
    /// The terminal's foreground process group when the claim was seen.
    fg: Option<i32>,
}

/// Look for the claim on the route's pane. Errors: `bad_request` (the route
/// or claim is malformed), `pane_unverified` (no claim, or not there, or
/// the server cannot be asked).
pub async fn verify(h: &DaemonHandle, route: &str, claim: Option<&str>) -> Result<Verified, Error> {
    let addr = PaneAddr::parse(route)?;
    let claim = claim.ok_or_else(|| {
        Error::new(
            ErrorCode::PaneUnverified,
            format!(
                "the tmux route to pane {} comes without its claim: the registering process sets the pane option @repowire_claim_<claim> and sends tmux_claim (`repowire peer register --route tmux`, the hooks and `repowire mcp` do)",
                addr.pane
            ),
        )
    })?;
    let option = claim_option(claim)?;
    let fmt = format!("#{{pane_id}} #{{pane_pid}} #{{{option}}}");
    let out = h
        .tmux_cmd
        .run(
            &addr.server,
            &["display-message", "-p", "-t", &addr.pane, &fmt],
        )
        .await
        .map_err(|e| {
            Error::new(
                ErrorCode::PaneUnverified,
                format!(
                    "tmux server {} could not show pane {}: {e}",
                    addr.server, addr.pane
                ),
            )
        })?;
    let f: Vec<&str> = out.trim_end().splitn(3, ' ').collect();
    if f.first() != Some(&addr.pane.as_str()) || f.get(2) != Some(&"1") {
        return Err(Error::new(
            ErrorCode::PaneUnverified,
            format!(
                "pane {} on tmux server {} does not hold this registration's claim: a tmux route is recorded only from a process that can reach that server",
                addr.pane, addr.server
            ),
        ));
    }
    let fg = f
        .get(1)
        .and_then(|p| p.parse().ok())
        .and_then(foreground_group);
    Ok(Verified { addr, option, fg })
}

/// Bind the verified pane to `peer` (see the module's doc), then wake the
/// carrier: deliveries may be waiting for it.
pub async fn bind(h: &DaemonHandle, v: &Verified, peer: &PeerId) {
    let p = v.addr.pane.as_str();
    let fg = v.fg.map(|g| g.to_string());
    let mut args = vec![
        "set-option",
        "-p",
        "-u",
        "-t",
        p,
        &v.option,
        ";",
        "set-option",
        "-p",
        "-t",
        p,
        MARK_OPTION,
        peer.as_str(),
        ";",
    ];
    match &fg {
        Some(g) => args.extend(["set-option", "-p", "-t", p, FG_OPTION, g.as_str()]),
        None => args.extend(["set-option", "-p", "-u", "-t", p, FG_OPTION]),
    }
    if let Err(e) = h.tmux_cmd.run(&v.addr.server, &args).await {
        tracing::warn!(pane = %p, error = %e, "binding a pane to its peer failed: nothing is typed there until it registers again");
    }
    h.tmux_wake.notify_one();
}
