//! Bad input over raw HTTP and the CLI: each a coded error; the daemon keeps
//! running. One table of cases per daemon, run in order by [`run_table`]
//! (a row may rely on the ones before it); a failure names its rows.

use crate::support::*;
use repowire::core::ErrorCode;
use serde_json::json;
use std::collections::HashMap;

/// Who a request is sent as.
#[derive(Clone, Copy)]
enum Who {
    /// No authorization header.
    Nobody,
    /// The home's admin token.
    Admin,
    /// The token of a peer the setup registered.
    Peer(&'static str),
    /// This authorization header, as is.
    Header(&'static str),
}

enum Req {
    Http {
        method: &'static str,
        path: String,
        who: Who,
        body: Option<String>,
    },
    /// The CLI: as admin, or with `REPOWIRE_PEER` = the first name and the
    /// peer token of the second in the environment.
    Cli {
        args: &'static [&'static str],
        claims: Option<(&'static str, &'static str)>,
    },
}

/// One row: a request, and the HTTP status (or CLI exit) and error code it
/// must get (a success has no code), plus a fragment of the answer (body, or CLI stderr).
struct Case {
    what: &'static str,
    req: Req,
    status: u16,
    code: Option<&'static str>,
    has: Option<&'static str>,
}

fn http(
    what: &'static str,
    method: &'static str,
    path: &str,
    who: Who,
    body: Option<&str>,
) -> Case {
    Case {
        what,
        req: Req::Http {
            method,
            path: path.to_string(),
            who,
            body: body.map(str::to_string),
        },
        status: 200,
        code: None,
        has: None,
    }
}

fn cli(
    what: &'static str,
    args: &'static [&'static str],
    claims: Option<(&'static str, &'static str)>,
) -> Case {
    Case {
        what,
        req: Req::Cli { args, claims },
        status: 0,
        code: None,
        has: None,
    }
}

impl Case {
    /// Must fail with this status and code.
    fn fails(mut self, status: u16, code: &'static str) -> Self {
        self.status = status;
        self.code = Some(code);
        self
    }
    /// The answer must contain this.
    fn has(mut self, fragment: &'static str) -> Self {
        self.has = Some(fragment);
        self
    }
    fn with_body(mut self, b: String) -> Self {
        if let Req::Http { body, .. } = &mut self.req {
            *body = Some(b);
        }
        self
    }
}

/// Run every row in order; panic once at the end, naming each row that did
/// not get what it expects.
async fn run_table(d: &Daemon, tokens: &HashMap<&str, String>, cases: Vec<Case>) {
    // No pooling: a connection whose body the server refused is closed by it.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut wrong = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let (status, code, text) = match &c.req {
            Req::Http {
                method,
                path,
                who,
                body,
            } => {
                let mut r = client.request(method.parse().unwrap(), format!("{}{path}", d.url));
                let auth = match who {
                    Who::Nobody => None,
                    Who::Admin => Some(format!("Bearer {}", d.admin_token())),
                    Who::Peer(p) => Some(format!("Bearer {}", tokens[p])),
                    Who::Header(h) => Some(h.to_string()),
                };
                if let Some(a) = auth {
                    r = r.header("authorization", a);
                }
                if let Some(b) = body {
                    r = r.header("content-type", "application/json").body(b.clone());
                }
                let resp = r.send().await.unwrap();
                let status = resp.status().as_u16();
                let text = resp.text().await.unwrap();
                let v: serde_json::Value = match serde_json::from_str(&text) {
                    Ok(v) => v,
                    Err(_) => {
                        wrong.push(format!("row {i} ({}): not JSON ({status}): {text}", c.what));
                        continue;
                    }
                };
                let code = v["code"].as_str().map(str::to_string);
                if code.is_some() && v["message"].as_str().is_none_or(str::is_empty) {
                    wrong.push(format!("row {i} ({}): no message: {v}", c.what));
                }
                // Compact JSON, so fragments like `"state":"canceled"` match.
                (status, code, v.to_string())
            }
            Req::Cli { args, claims } => {
                let r = match claims {
                    None => d.cli(args),
                    Some((name, token_of)) => d.cli_env(
                        args,
                        &[
                            ("REPOWIRE_PEER", name),
                            ("REPOWIRE_PEER_TOKEN", &tokens[token_of]),
                        ],
                    ),
                };
                let code = r
                    .stderr
                    .split_once("error[")
                    .and_then(|(_, s)| s.split_once(']'))
                    .map(|(code, _)| code.to_string());
                (r.code as u16, code, r.stderr)
            }
        };
        // One vocabulary: every code an answer or the CLI gives is an
        // `ErrorCode` (and so in docs/errors.md).
        if let Some(k) = &code
            && ErrorCode::parse(k).is_none()
        {
            wrong.push(format!("row {i} ({}): {k:?} is not an ErrorCode", c.what));
        }
        if status != c.status || code.as_deref() != c.code {
            wrong.push(format!(
                "row {i} ({}): expected {} {:?}, got {status} {code:?}: {text}",
                c.what, c.status, c.code
            ));
            continue;
        }
        if let Some(f) = c.has
            && !text.contains(f)
        {
            wrong.push(format!("row {i} ({}): no {f:?} in {text}", c.what));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} rows wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

/// Register `names` and return their tokens.
async fn peers(d: &Daemon, names: &[&'static str]) -> HashMap<&'static str, String> {
    let mut out = HashMap::new();
    for n in names {
        out.insert(*n, d.peer_token(n, None).await);
    }
    out
}

#[tokio::test]
async fn bad_requests_get_coded_errors_and_the_daemon_survives() {
    use Who::*;
    let d = Daemon::start(&[]);
    let tokens = peers(&d, &["bob", "carol", "alice", "me", "prune", "by-name"]).await;
    let alice = d.admin().with_identity(Some(tokens["alice"].clone()), None);
    let job = |t: &str| repowire::api::JobCreateReq {
        title: t.into(),
        ..Default::default()
    };
    let one = alice.create_job(&job("one")).await.unwrap().job_id;
    let two = alice.create_job(&job("two")).await.unwrap().job_id;
    let bob = Peer("bob");
    let post = |what, path, who, body| http(what, "POST", path, who, Some(body));
    let get = |what, path, who| http(what, "GET", path, who, None);
    let over = json!({"to": "carol", "text": "x".repeat(64 * 1024 + 1)}).to_string();
    let at = json!({"to": "carol", "text": "x".repeat(64 * 1024)}).to_string();
    let huge = json!({"to": "carol", "text": "x".repeat(1 << 20)}).to_string();
    let cases = vec![
        // Tokens; health needs none.
        get("health without a token", "/health", Nobody).has(r#""ok":true"#),
        get("no token", "/v1/peers", Nobody).fails(401, "unauthorized"),
        get("unknown token", "/v1/peers", Header("Bearer rw_wrong")).fails(401, "unauthorized"),
        get("not a bearer token", "/v1/peers", Header("Basic abc")).fails(401, "unauthorized"),
        // Malformed JSON, missing fields, wrong types, unknown fields.
        post("malformed JSON", "/v1/peers", Admin, "{not json").fails(400, "bad_request"),
        post("no name", "/v1/peers", Admin, "{}").fails(400, "bad_request"),
        post("a number for a name", "/v1/peers", Admin, r#"{"name": 5}"#).fails(400, "bad_request"),
        post(
            "unknown field",
            "/v1/peers",
            Admin,
            r#"{"name":"x","colour":"red"}"#,
        )
        .fails(400, "bad_request"),
        post(
            "unknown role",
            "/v1/peers",
            Admin,
            r#"{"name":"x","role":"boss"}"#,
        )
        .fails(400, "bad_request"),
        post(
            "a note without text",
            "/v1/notify",
            bob,
            r#"{"to":"carol"}"#,
        )
        .fails(400, "bad_request"),
        post(
            "a blank note",
            "/v1/notify",
            bob,
            r#"{"to":"carol","text":"  "}"#,
        )
        .fails(400, "bad_request"),
        get("unknown direction", "/v1/asks?dir=sideways", bob).fails(400, "bad_request"),
        get(
            "a wait timeout that is not a number",
            "/v1/asks/ask-x/wait?timeout_ms=soon",
            bob,
        )
        .fails(400, "bad_request"),
        // Unknown things.
        post(
            "a note to nobody",
            "/v1/notify",
            bob,
            r#"{"to":"nobody","text":"hi"}"#,
        )
        .fails(404, "unknown_peer"),
        get(
            "an unknown ask",
            "/v1/asks/ask-01ZZZZZZZZZZZZZZZZZZZZZZZZ",
            bob,
        )
        .fails(404, "unknown_ask"),
        get("a garbage ask id", "/v1/asks/garbage", bob).fails(404, "unknown_ask"),
        get("an unknown route", "/v1/nope", Admin).fails(404, "not_found"),
        http("a wrong method", "DELETE", "/health", Nobody, None).fails(405, "method_not_allowed"),
        get("a trace of no id", "/v1/trace/whatever", Admin).fails(400, "bad_request"),
        // Over-long text: a bad_request that names the limit; at it is fine;
        // far over any limit is refused as too large, still JSON.
        post("text over the limit", "/v1/notify", bob, "")
            .with_body(over)
            .fails(400, "bad_request")
            .has("65536"),
        post("text at the limit", "/v1/notify", bob, "").with_body(at),
        post("a body over the size limit", "/v1/notify", bob, "")
            .with_body(huge)
            .fails(413, "too_large"),
        // Admin-only routes refuse peers.
        get("doctor as a peer", "/v1/doctor", bob).fails(403, "forbidden"),
        post("shutdown as a peer", "/v1/shutdown", bob, "{}").fails(403, "forbidden"),
        get("health after the refused shutdown", "/health", Nobody).has(r#""ok":true"#),
        post(
            "an ask to oneself",
            "/v1/asks",
            bob,
            r#"{"to":"bob","text":"me?"}"#,
        )
        .fails(400, "bad_request"),
        // Invalid UTF-8 in a path segment: still a JSON error.
        get("a name that is not UTF-8", "/v1/peers/by-name/%FF", Admin).fails(400, "bad_request"),
        get("an ask id that is not UTF-8", "/v1/asks/%FF/wait", Admin).fails(400, "bad_request"),
        // Peers named like routes are still reachable by name.
        get("a peer named me", "/v1/peers/by-name/me", Admin).has(r#""name":"me""#),
        get("a peer named prune", "/v1/peers/by-name/prune", Admin).has(r#""name":"prune""#),
        get("a peer named by-name", "/v1/peers/by-name/by-name", Admin).has(r#""name":"by-name""#),
        cli(
            "unregister a peer named me",
            &["peer", "unregister", "me"],
            None,
        ),
        // REPOWIRE_PEER that does not match the token is refused, not ignored.
        cli(
            "a token of another peer",
            &["peer", "whoami"],
            Some(("alice", "bob")),
        )
        .fails(1, "unauthorized")
        .has("bob"),
        cli(
            "a token of that peer",
            &["peer", "whoami"],
            Some(("bob", "bob")),
        ),
        // Duplicates by another spelling are caught too.
        post(
            "one peer twice in an ask to many",
            "/v1/asks/many",
            bob,
            r#"{"to":["prune","prune@default"],"text":"q"}"#,
        )
        .fails(400, "bad_request"),
        // A cancel may carry a reason, or no body at all; a body that is
        // there must be JSON.
        http(
            "a cancel without a body",
            "POST",
            &format!("/v1/jobs/{one}/cancel"),
            Peer("alice"),
            None,
        )
        .has(r#""state":"canceled""#),
        post(
            "a cancel with a reason",
            &format!("/v1/jobs/{two}/cancel"),
            Peer("alice"),
            r#"{"reason": "not needed"}"#,
        )
        .has("cancel: not needed"),
        post(
            "a cancel with a body that is not JSON",
            &format!("/v1/jobs/{two}/cancel"),
            Peer("alice"),
            "{nope",
        )
        .fails(400, "bad_request"),
        // Codes the CLI gives itself, before or after any request.
        cli("a second daemon start", &["daemon", "start"], None).fails(1, "already_running"),
        cli(
            "result data that is not JSON",
            &["jobs", "update", "job-x", "--result-data", "{"],
            None,
        )
        .fails(2, "usage")
        .has("--result-data is not JSON"),
        cli(
            "a review of a ref outside any git repository",
            &["review", "request", "no-such-branch", "--repo", "/"],
            None,
        )
        .fails(1, "git"),
        cli(
            "an unknown persona",
            &["orchestrator", "persona", "show", "no-such-persona"],
            None,
        )
        .fails(1, "persona")
        .has("shipped:"),
        // Still up.
        get("health at the end", "/health", Nobody).has(r#""ok":true"#),
    ];
    run_table(&d, &tokens, cases).await;
    // Nothing was corrupted: the one good note is there.
    let carol = d.admin().with_identity(Some(tokens["carol"].clone()), None);
    assert_eq!(carol.peek(10).await.unwrap().deliveries.len(), 1);
}

#[tokio::test]
async fn message_limit_is_configurable() {
    let d = Daemon::start(&["--max-message-bytes", "10"]);
    let tokens = peers(&d, &["bob", "carol"]).await;
    let bob = Who::Peer("bob");
    let text = |n: usize| json!({"to": "carol", "text": "x".repeat(n)}).to_string();
    let post = |what, path, body: String| http(what, "POST", path, bob, None).with_body(body);
    let cases = vec![
        post("a note over the limit", "/v1/notify", text(11))
            .fails(400, "bad_request")
            .has("10 bytes"),
        post("a note at the limit", "/v1/notify", text(10)),
        post("an ask over the limit", "/v1/asks", text(11)).fails(400, "bad_request"),
    ];
    run_table(&d, &tokens, cases).await;
}
