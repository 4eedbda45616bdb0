//! The web dashboard's logins. `repowire dashboard` asks the daemon (admin
//! token) for a **login code**: random, good once, for a minute. Opening
//! `/dashboard/login?code=…` trades it for a **session**: a random cookie
//! (`HttpOnly`, `SameSite=Strict`, path `/`) that the page's own requests
//! carry, answered with a redirect to `/dashboard`, so no secret stays in
//! the address bar or the history.
//!
//! Cookies are per host, not per port: every other server on 127.0.0.1
//! receives this one. So the cookie alone opens only the page; the API
//! also needs the session's **key**, which the login hands the page in the
//! URL fragment of its redirect (never sent to a server; the page moves it
//! to its per-origin `sessionStorage` and clears the address bar) and the
//! page sends as `X-Repowire-Dashboard` (which a page of another origin
//! cannot send without a preflight the daemon never grants). A session may
//! make only the page's calls ([`ALLOWED`]); a write must name the daemon's
//! own `Origin` when it names one.
//!
//! Codes and sessions live in memory, stored by their hash: a daemon
//! restart logs the dashboard out (run `repowire dashboard` again).

use repowire_core::ids::{new_token, token_hash};
use std::collections::HashMap;
use std::sync::Mutex;

/// The header every request of the page carries: the session's key.
pub const KEY_HEADER: &str = "x-repowire-dashboard";
/// How long a login code may wait to be used.
pub const CODE_MS: i64 = 60_000;
/// How long a session lasts.
pub const SESSION_MS: i64 = 12 * 3_600_000;
/// Most live codes and sessions kept (the oldest go first).
const MAX_KEPT: usize = 64;

/// What a dashboard session may call: the page's reads and its few
/// actions, nothing else the admin token could (no spawn, no shutdown, no
/// registration, no new login links).
pub const ALLOWED: &[(&str, &str)] = &[
    ("GET", "/v1/peers"),
    ("GET", "/v1/personas"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/events"),
    ("GET", "/v1/events/stream"),
    ("GET", "/v1/schedules"),
    ("GET", "/v1/orchestrator"),
    ("GET", "/v1/dashboard/overview"),
    ("POST", "/v1/jobs/{id}/cancel"),
    ("POST", "/v1/jobs/{id}/retry"),
    ("POST", "/v1/notify"),
    ("POST", "/v1/roles/orchestrator/claim"),
    ("POST", "/v1/roles/orchestrator/release"),
];

/// A session: when it ends, and the hash of its key.
struct Session {
    until: i64,
    key: String,
}

/// Login codes and sessions, by hash.
pub struct Logins {
    /// The session cookie's name: one per daemon (its port), so two
    /// daemons of one user do not overwrite each other's.
    pub cookie: String,
    inner: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    codes: HashMap<String, i64>,
    sessions: HashMap<String, Session>,
}

fn keep<V>(map: &mut HashMap<String, V>, until: impl Fn(&V) -> i64, now: i64, key: String, v: V) {
    map.retain(|_, x| until(x) > now);
    while map.len() >= MAX_KEPT {
        let Some(oldest) = map
            .iter()
            .min_by_key(|(_, x)| until(x))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        map.remove(&oldest);
    }
    map.insert(key, v);
}

/// A new session: the cookie's value and the key the page sends.
pub struct NewSession {
    pub cookie: String,
    pub key: String,
}

impl Logins {
    /// The logins of the daemon answering at `url`.
    pub fn new(url: &str) -> Logins {
        let port: String = url
            .rsplit(':')
            .next()
            .unwrap_or("")
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        Logins {
            cookie: format!("repowire_dashboard_{port}"),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new login code, good once until `now + CODE_MS`.
    pub fn new_code(&self, now: i64) -> String {
        let code = new_token();
        keep(
            &mut self.lock().codes,
            |t| *t,
            now,
            token_hash(&code),
            now + CODE_MS,
        );
        code
    }

    /// Use up a code: a new session, or `None` (unknown, used, expired).
    pub fn redeem(&self, code: &str, now: i64) -> Option<NewSession> {
        let mut k = self.lock();
        let until = k.codes.remove(&token_hash(code))?;
        if until <= now {
            return None;
        }
        let s = NewSession {
            cookie: new_token(),
            key: new_token(),
        };
        let session = Session {
            until: now + SESSION_MS,
            key: token_hash(&s.key),
        };
        keep(
            &mut k.sessions,
            |x| x.until,
            now,
            token_hash(&s.cookie),
            session,
        );
        Some(s)
    }

    /// Whether a cookie value is a live session (the page itself).
    pub fn valid(&self, cookie: &str, now: i64) -> bool {
        self.lock()
            .sessions
            .get(&token_hash(cookie))
            .is_some_and(|s| s.until > now)
    }

    /// Whether a cookie value and a key are one live session (the API).
    pub fn authorized(&self, cookie: &str, key: &str, now: i64) -> bool {
        self.lock()
            .sessions
            .get(&token_hash(cookie))
            .is_some_and(|s| {
                s.until > now && repowire_core::ids::secrets_equal(&s.key, &token_hash(key))
            })
    }

    /// Every value of this daemon's cookie in the `Cookie` headers (a page
    /// of another port on the same host may set one of the same name: each
    /// is tried).
    pub fn cookies<'a>(&self, headers: &'a axum::http::HeaderMap) -> Vec<&'a str> {
        headers
            .get_all(axum::http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|h| h.split(';'))
            .filter_map(|kv| kv.trim().split_once('='))
            .filter(|(k, _)| *k == self.cookie)
            .map(|(_, v)| v.trim())
            .collect()
    }

    /// Whether any of the request's cookies is a live session.
    pub fn page_allowed(&self, headers: &axum::http::HeaderMap, now: i64) -> bool {
        self.cookies(headers).iter().any(|c| self.valid(c, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_good_once_and_for_a_minute() {
        let l = Logins::new("http://127.0.0.1:8377");
        assert_eq!(l.cookie, "repowire_dashboard_8377");
        let c = l.new_code(1_000);
        let s = l.redeem(&c, 2_000).expect("a fresh code");
        assert!(l.valid(&s.cookie, 2_000));
        assert!(l.authorized(&s.cookie, &s.key, 2_000));
        assert!(
            !l.authorized(&s.cookie, &s.cookie, 2_000),
            "the cookie is not the key"
        );
        assert!(!l.authorized(&s.key, &s.key, 2_000));
        assert!(l.redeem(&c, 2_000).is_none(), "used twice");
        let late = l.new_code(1_000);
        assert!(l.redeem(&late, 1_000 + CODE_MS).is_none(), "expired");
        assert!(!l.valid(&s.cookie, 2_000 + SESSION_MS), "session expired");
        assert!(!l.valid("rw_nope", 2_000));
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=b; repowire_dashboard_8377=x ; repowire_dashboard_8377=y; repowire_dashboard_1=z"
                .parse()
                .unwrap(),
        );
        assert_eq!(l.cookies(&h), ["x", "y"]);
    }

    #[test]
    fn only_so_many_are_kept() {
        let l = Logins::new("http://127.0.0.1:1");
        let first = l.new_code(0);
        for i in 0..MAX_KEPT {
            l.new_code(i as i64 + 1);
        }
        assert!(l.redeem(&first, 10).is_none(), "the oldest went");
    }
}
