//! The web dashboard's logins. `repowire dashboard` asks the daemon (admin
//! token) for a **login code**: random, good once, for a minute. Opening
//! `/dashboard/login?code=…` trades it for a **session**: a random cookie
//! (`HttpOnly`, `SameSite=Strict`, path `/`) that the page's own requests
//! carry, answered with a redirect to `/dashboard`, so no secret stays in
//! the address bar or the history. A session acts as the admin for reads;
//! a write also needs the header `X-Repowire-Dashboard: 1` (which a page of
//! another origin cannot send without a preflight the daemon never grants)
//! and, when the browser names an `Origin`, the daemon's own.
//!
//! Codes and sessions live in memory, stored by their hash: a daemon
//! restart logs the dashboard out (run `repowire dashboard` again).

use repowire_core::ids::{new_token, token_hash};
use std::collections::HashMap;
use std::sync::Mutex;

/// The cookie a dashboard session travels in.
pub const COOKIE: &str = "repowire_dashboard";
/// The header a dashboard write carries.
pub const WRITE_HEADER: &str = "x-repowire-dashboard";
/// How long a login code may wait to be used.
pub const CODE_MS: i64 = 60_000;
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Most live codes and sessions kept (the oldest go first).
const MAX_KEPT: usize = 64;

/// Login codes and sessions, by hash, with their expiry (clock ms).
#[derive(Default)]
pub struct Logins {
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    codes: HashMap<String, i64>,
    sessions: HashMap<String, i64>,
}

fn keep(map: &mut HashMap<String, i64>, now: i64, key: String, until: i64) {
    map.retain(|_, t| *t > now);
    while map.len() >= MAX_KEPT {
        let Some(oldest) = map.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone()) else {
            break;
        };
        map.remove(&oldest);
    }
    map.insert(key, until);
}

impl Logins {
    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new login code, good once until `now + CODE_MS`.
    pub fn new_code(&self, now: i64) -> String {
        let code = new_token();
        keep(
            &mut self.lock().codes,
            now,
            token_hash(&code),
            now + CODE_MS,
        );
        code
    }

    /// Use up a code: a new session's cookie value, or `None` (unknown,
    /// used, or expired).
    pub fn redeem(&self, code: &str, now: i64) -> Option<String> {
        let mut k = self.lock();
        let until = k.codes.remove(&token_hash(code))?;
        if until <= now {
            return None;
        }
        let session = new_token();
        keep(&mut k.sessions, now, token_hash(&session), now + SESSION_MS);
        Some(session)
    }

    /// Whether a cookie value is a live session.
    pub fn valid(&self, session: &str, now: i64) -> bool {
        self.lock()
            .sessions
            .get(&token_hash(session))
            .is_some_and(|t| *t > now)
    }
}

/// The session cookie's value in a `Cookie` header, if any.
pub fn cookie_value(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_good_once_and_for_a_minute() {
        let l = Logins::default();
        let c = l.new_code(1_000);
        let s = l.redeem(&c, 2_000).expect("a fresh code");
        assert!(l.valid(&s, 2_000));
        assert!(l.redeem(&c, 2_000).is_none(), "used twice");
        let late = l.new_code(1_000);
        assert!(l.redeem(&late, 1_000 + CODE_MS).is_none(), "expired");
        assert!(!l.valid(&s, 2_000 + SESSION_MS), "session expired");
        assert!(!l.valid("rw_nope", 2_000));
        assert_eq!(
            cookie_value("a=b; repowire_dashboard=rw_x ; c=d"),
            Some("rw_x")
        );
        assert_eq!(cookie_value("repowire_dashboardx=1"), None);
    }

    #[test]
    fn only_so_many_are_kept() {
        let l = Logins::default();
        let first = l.new_code(0);
        for i in 0..MAX_KEPT {
            l.new_code(i as i64 + 1);
        }
        assert!(l.redeem(&first, 10).is_none(), "the oldest went");
    }
}
