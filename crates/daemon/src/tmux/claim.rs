//! Binding a peer to a pane. A tmux route is a promise to type into that
//! pane, so the daemon records one only for a registration that proved it
//! may: before it sends the route, the registering process sets the pane
//! option `@repowire_claim_<claim>` (a fresh random value, sent along as
//! `RegisterReq.tmux_claim`), and the daemon looks for it there. Setting a
//! pane option takes access to that tmux server, and whoever has that can
//! already type into its panes: a peer cannot point its deliveries at a
//! pane it could not reach itself (another user's shell, say).
//!
//! The claim is used up as it is read (one tmux call), and the claim's
//! value never shows in a command line (`repowire` hands tmux the command
//! on its standard input). A tmux server given by path must be one only
//! the daemon's user can redirect (`socket`). Once the peer is registered,
//! the pane is bound to it: `@repowire_peer` names the peer (nothing is typed into or
//! closed in a pane marked otherwise, as a restarted server's reused pane
//! ids would be), `@repowire_fg` records the terminal's foreground process
//! group and `@repowire_cmd` its program (typing waits while another one
//! holds it: the agent ended and left a shell prompt, or the user runs
//! something else there; tmux itself checks the program, the binding and
//! the mode in the very command that types). Claims, and refusals, say
//! nothing about the server: one message, and no faster than 50 ms.

use super::cmd::foreground_group;
use super::socket::check_server;
use crate::DaemonHandle;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::ids::PeerId;
use repowire_core::tmux::{
    CMD_OPTION, FG_OPTION, MARK_OPTION, PaneAddr, claim_option, send_keys_arg,
};

/// A pane whose claim was seen.
#[derive(Debug)]
pub struct Verified {
    addr: PaneAddr,
    /// The terminal's foreground process group when the claim was seen.
    fg: Option<i32>,
    /// The pane's foreground program then.
    command: String,
}

/// A refusal takes at least this long, whatever tmux answered (or how
/// fast it failed): its timing says nothing about the server either.
const REFUSAL_FLOOR: std::time::Duration = std::time::Duration::from_millis(50);

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
    let started = tokio::time::Instant::now();
    match seen(h, &addr, &option).await {
        Ok(v) => Ok(v),
        Err(e) => {
            tokio::time::sleep_until(started + REFUSAL_FLOOR).await;
            Err(e)
        }
    }
}

/// The claim's option on the pane, read and removed in one tmux call.
async fn seen(h: &DaemonHandle, addr: &PaneAddr, option: &str) -> Result<Verified, Error> {
    // Nothing about the server leaks to the caller (not even whether a
    // path exists): the details go to the log.
    let refused = |detail: &str| {
        tracing::debug!(server = %addr.server, pane = %addr.pane, detail, "tmux claim not verified");
        Error::new(
            ErrorCode::PaneUnverified,
            format!(
                "pane {} on tmux server {} did not show this registration's claim: a tmux route is recorded only from a process that can reach that server",
                addr.pane, addr.server
            ),
        )
    };
    check_server(&addr.server).map_err(|e| refused(&e.message))?;
    // Read it and use it up in one tmux call: the first registration to
    // show a claim is the only one it serves.
    let fmt = format!("#{{pane_id}} #{{pane_pid}} #{{{option}}} #{{pane_current_command}}");
    let out = h
        .tmux_cmd
        .run(
            &addr.server,
            &[
                "display-message",
                "-p",
                "-t",
                &addr.pane,
                &fmt,
                ";",
                "set-option",
                "-p",
                "-u",
                "-t",
                &addr.pane,
                option,
            ],
        )
        .await
        .map_err(|e| refused(&e.0))?;
    let f: Vec<&str> = out.trim_end_matches('\n').splitn(4, ' ').collect();
    if f.first() != Some(&addr.pane.as_str()) || f.get(2) != Some(&"1") {
        return Err(refused("the claim is not on the pane"));
    }
    let fg = f
        .get(1)
        .and_then(|p| p.parse().ok())
        .and_then(foreground_group);
    Ok(Verified {
        addr: addr.clone(),
        fg,
        command: f.get(3).unwrap_or(&"").to_string(),
    })
}

/// Bind the verified pane to `peer` (see the module's doc), then wake the
/// carrier: deliveries may be waiting for it.
pub async fn bind(h: &DaemonHandle, v: &Verified, peer: &PeerId) {
    if let Err(e) = mark(h, &v.addr, peer, v.fg, Some(&v.command)).await {
        tracing::warn!(pane = %v.addr.pane, error = %e, "binding a pane to its peer failed: nothing is typed there until it registers again");
    }
    h.tmux_wake.notify_one();
}

/// Set a pane's binding: `@repowire_peer`, and `@repowire_fg` and
/// `@repowire_cmd` (each unset when not known: then not checked).
pub async fn mark(
    h: &DaemonHandle,
    addr: &PaneAddr,
    peer: &PeerId,
    fg: Option<i32>,
    command: Option<&str>,
) -> Result<(), super::cmd::TmuxError> {
    let p = addr.pane.as_str();
    let fg = fg.map(|g| g.to_string());
    // A value ending in `;` would end the tmux command there: escaped as
    // typed text is. The peer is named last, so a binding is whole or the
    // pane names no peer at all.
    let command = command.map(send_keys_arg);
    let mut args = vec!["set-option", "-p", "-u", "-t", p, MARK_OPTION];
    for (option, value) in [(FG_OPTION, fg.as_deref()), (CMD_OPTION, command.as_deref())] {
        args.push(";");
        match value.filter(|v| !v.is_empty()) {
            Some(v) => args.extend(["set-option", "-p", "-t", p, option, v]),
            None => args.extend(["set-option", "-p", "-u", "-t", p, option]),
        }
    }
    args.extend([";", "set-option", "-p", "-t", p, MARK_OPTION, peer.as_str()]);
    h.tmux_cmd.run(&addr.server, &args).await.map(|_| ())
}
