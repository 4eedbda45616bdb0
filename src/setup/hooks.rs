//! The `hooks` block both clients read — Claude Code's settings.json and
//! Codex's hooks.json share its shape:
//! `{"hooks": {"<Event>": [{"matcher": "…", "hooks": [{"type": "command",
//! "command": "…", "timeout": N}]}]}}` — merged without touching anyone
//! else's entries. A hook is repowire's when its command runs a `repowire`
//! binary's `hook` subcommand; that is how setup finds what to update and
//! uninstall what to remove.

use super::json::J;
use crate::wiring::{Client, Hook, HookEvent};

/// The command of a hook `setup` writes: `<exe> [--home DIR] hook <event>
/// --client <client>`, quoted for the shell the client runs it with.
pub fn command(exe: &str, home: Option<&str>, h: &Hook) -> String {
    let mut s = quote(exe);
    if let Some(dir) = home {
        s.push_str(" --home ");
        s.push_str(&quote(dir));
    }
    s.push_str(&format!(
        " hook {} --client {}",
        h.event.as_str(),
        h.client.as_str()
    ));
    s
}

/// One hook entry, as the client's settings hold it.
pub fn handler(exe: &str, home: Option<&str>, h: &Hook) -> J {
    let mut v = J::object([
        ("type", J::str("command")),
        ("command", J::str(command(exe, home, h))),
        ("timeout", J::Num(h.timeout_s.into())),
    ]);
    if h.async_rewake {
        v.set("asyncRewake", J::Bool(true));
    }
    v
}

/// Quote `s` for a POSIX shell when it needs it.
pub fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+=:,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Split a command line as a POSIX shell would (quotes and backslashes;
/// no expansions).
pub fn split(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut any = false;
    let mut it = s.chars();
    while let Some(c) = it.next() {
        match c {
            '\'' => {
                any = true;
                for c in it.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    cur.push(c);
                }
            }
            '"' => {
                any = true;
                while let Some(c) = it.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = it.next() {
                                cur.push(n)
                            }
                        }
                        c => cur.push(c),
                    }
                }
            }
            '\\' => {
                any = true;
                if let Some(n) = it.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                any = true;
                cur.push(c);
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

/// Whether a hook running `exe` is known as repowire's: by the binary's file
/// name, so a rerun or `uninstall` finds it wherever the binary lives.
pub fn named_ours(exe: &str) -> bool {
    std::path::Path::new(exe)
        .file_name()
        .and_then(|n| n.to_str())
        == Some("repowire")
}

/// What a repowire hook command runs: (its binary, the event, the client).
pub fn parse_ours(cmd: &str) -> Option<(String, HookEvent, Option<Client>)> {
    let argv = split(cmd);
    let exe = argv.first()?;
    if !named_ours(exe) {
        return None;
    }
    let at = argv.iter().position(|a| a == "hook")?;
    let event = HookEvent::parse(argv.get(at + 1)?)?;
    let client = argv
        .iter()
        .position(|a| a == "--client")
        .and_then(|i| argv.get(i + 1))
        .and_then(|c| Client::parse(c));
    Some((exe.clone(), event, client))
}

/// Where a hook sits: (client event, group index, handler index).
pub type Spot = (String, usize, usize);

/// Merge `rows` into `doc`'s `hooks` block: each row's handler replaces a
/// repowire handler for the same subcommand in place, or is appended as a
/// new group at the end of its event's list (so other hooks keep their
/// positions); repowire handlers for no row are removed. Returns where each
/// row's handler ended up. `Err` names what in the file is not of the
/// expected shape.
pub fn merge(doc: &mut J, rows: &[&Hook], want: impl Fn(&Hook) -> J) -> Result<Vec<Spot>, String> {
    // Take out repowire handlers first, remembering where each subcommand
    // was so it can be put back in place.
    doc.child_obj("hooks").ok_or("\"hooks\" is not an object")?;
    let mut was: Vec<(String, HookEvent, usize, usize)> = ours_at(doc)
        .into_iter()
        .map(|(ev, e, (_, gi, hi))| (ev, e, gi, hi))
        .collect();
    let mut spots = Vec::new();
    for row in rows {
        let hooks = doc.get_mut("hooks").ok_or("\"hooks\" is missing")?;
        if hooks.get(row.client_event).is_none() {
            hooks.set(row.client_event, J::Arr(Vec::new()));
        }
        let Some(J::Arr(groups)) = hooks.get_mut(row.client_event) else {
            return Err(format!("\"hooks.{}\" is not a list", row.client_event));
        };
        let new = want(row);
        let place = was
            .iter()
            .position(|(ev, e, _, _)| ev == row.client_event && *e == row.event);
        if let Some(i) = place {
            let (_, _, gi, hi) = was.remove(i);
            if let Some(J::Arr(hs)) = groups.get_mut(gi).and_then(|g| g.get_mut("hooks"))
                && let Some(slot) = hs.get_mut(hi)
            {
                *slot = new;
                if let Some(m) = row.matcher {
                    groups[gi].set("matcher", J::Str(m.into()));
                }
                continue;
            }
        }
        let mut g = J::obj();
        if let Some(m) = row.matcher {
            g.set("matcher", J::Str(m.into()));
        }
        g.set("hooks", J::Arr(vec![new]));
        groups.push(g);
    }
    // Repowire handlers no row wants any more (an older setup's).
    if !was.is_empty() {
        remove_where(doc, |ev, gi, hi| {
            was.iter()
                .any(|(e, _, g, h)| e == ev && *g == gi && *h == hi)
        });
    }
    for row in rows {
        let spot = ours_at(doc)
            .into_iter()
            .find(|(ev, e, _)| ev == row.client_event && *e == row.event)
            .map(|(_, _, s)| s)
            .ok_or_else(|| format!("the hook for {} did not land", row.client_event))?;
        spots.push(spot);
    }
    Ok(spots)
}

/// Where each repowire handler is: (client event, its subcommand, spot).
pub(super) fn ours_at(doc: &J) -> Vec<(String, HookEvent, Spot)> {
    handlers(doc)
        .into_iter()
        .filter_map(|a| {
            let (_, e, _) = a.ours?;
            Some((a.spot.0.clone(), e, a.spot))
        })
        .collect()
}

/// One handler in a hooks block: where it sits, and what it runs when it
/// is repowire's.
pub struct At<'a> {
    pub spot: Spot,
    pub handler: &'a J,
    /// The matcher of its group.
    pub matcher: Option<&'a str>,
    pub ours: Option<(String, HookEvent, Option<Client>)>,
}

/// Every handler in `doc`'s hooks block, in file order.
pub fn handlers(doc: &J) -> Vec<At<'_>> {
    let mut out = Vec::new();
    let Some(J::Obj(events)) = doc.get("hooks") else {
        return out;
    };
    for (ev, groups) in events {
        for (gi, g) in groups.as_arr().into_iter().flatten().enumerate() {
            let matcher = g.get("matcher").and_then(J::as_str);
            for (hi, h) in g
                .get("hooks")
                .and_then(J::as_arr)
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push(At {
                    spot: (ev.clone(), gi, hi),
                    handler: h,
                    matcher,
                    ours: h.get("command").and_then(J::as_str).and_then(parse_ours),
                });
            }
        }
    }
    out
}

/// Remove every repowire handler; groups, event lists and the `hooks`
/// block left empty by that go too. Returns how many were removed.
pub fn unmerge(doc: &mut J) -> usize {
    let spots: Vec<Spot> = ours_at(doc).into_iter().map(|(_, _, s)| s).collect();
    remove_where(doc, |ev, gi, hi| {
        spots
            .iter()
            .any(|(e, g, h)| e == ev && *g == gi && *h == hi)
    });
    spots.len()
}

/// Remove the handlers at the spots `hit` selects, then the groups, event
/// lists and `hooks` block that this left empty.
fn remove_where(doc: &mut J, hit: impl Fn(&str, usize, usize) -> bool) {
    let Some(J::Obj(events)) = doc.get_mut("hooks") else {
        return;
    };
    for (ev, groups) in events.iter_mut() {
        let J::Arr(gs) = groups else { continue };
        let mut gi = 0;
        gs.retain_mut(|g| {
            let this = gi;
            gi += 1;
            let Some(J::Arr(hs)) = g.get_mut("hooks") else {
                return true;
            };
            let before = hs.len();
            let mut hi = 0;
            hs.retain(|_| {
                let keep = !hit(ev, this, hi);
                hi += 1;
                keep
            });
            // A group whose every handler was ours goes with them.
            !(before > 0 && hs.is_empty())
        });
    }
    events.retain(|(_, g)| !g.is_empty_container());
    if events.is_empty() {
        doc.remove("hooks");
    }
}

/// Every repowire handler in `doc`: (client event, its binary, the event).
pub fn ours(doc: &J) -> Vec<(String, String, HookEvent, J)> {
    handlers(doc)
        .into_iter()
        .filter_map(|a| {
            let (exe, e, _) = a.ours?;
            Some((a.spot.0, exe, e, a.handler.clone()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_quote_and_split_back() {
        for s in [
            "/usr/bin/repowire",
            "/tmp/it's here/repowire",
            "/a b/\"q\"$x",
        ] {
            assert_eq!(split(&quote(s)), vec![s.to_string()]);
        }
        let h = crate::wiring::HOOKS[0];
        let c = command("/opt/my tools/repowire", Some("/srv/rw home"), &h);
        let (exe, e, cl) = parse_ours(&c).unwrap();
        assert_eq!(exe, "/opt/my tools/repowire");
        assert_eq!(e, h.event);
        assert_eq!(cl, Some(h.client));
        assert!(parse_ours("/usr/bin/other hook stop --client claude").is_none());
        assert!(parse_ours("echo repowire hook stop").is_none());
    }
}
