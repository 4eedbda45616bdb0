//! The web dashboard (issue 14): the one-time login, the session cookie and
//! what it may do (over HTTP), and the page itself in a real headless
//! Chromium driven through chromedriver (WebDriver): live peers, events and
//! jobs, an action taken from the page. Chromium and chromedriver come from
//! Debian's packages (`.ci/run` installs them); missing ones fail the test.

use crate::support::*;
use repowire::api::JobCreateReq;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// `repowire dashboard --json --no-open`: the login link.
fn login_url(d: &Daemon) -> String {
    let v = d.cli(&["dashboard", "--json", "--no-open"]).ok().json();
    assert_eq!(v["opened"], false);
    assert_eq!(v["expires_in_s"], 60);
    v["url"].as_str().unwrap().to_string()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A dashboard login over plain HTTP: the cookie it sets, the key it hands
/// the page, and the status.
struct Login {
    cookie: String,
    key: String,
}

async fn log_in(http: &reqwest::Client, url: &str) -> Login {
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(part), "{set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    let body = r.text().await.unwrap();
    let key = body
        .split("url=/dashboard#key=")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no key in the login page: {body}"))
        .to_string();
    Login { cookie, key }
}

/// The link logs in once (a HEAD does not use it up): a page that moves to
/// /dashboard with the session's key in the fragment, and an HttpOnly,
/// SameSite=Strict cookie named for this daemon; a second use is refused.
/// The cookie alone opens only the page — other servers on 127.0.0.1 get
/// it too — while the API needs the key as well; a session makes only the
/// page's calls (no spawn, no new links); a write names the daemon's own
/// origin; every answer carries the security headers.
#[tokio::test]
async fn the_login_link_works_once_and_the_cookie_alone_opens_only_the_page() {
    let d = Daemon::start(&[]);
    let http = no_redirects();
    let url = login_url(&d);
    assert!(
        url.starts_with(&format!("{}/dashboard/login?code=rw_", d.url)),
        "{url}"
    );
    let head = http.head(&url).send().await.unwrap();
    assert_eq!(head.status(), 200);
    assert!(head.headers().get("set-cookie").is_none());
    let s = log_in(&http, &url).await;
    let port = d.url.rsplit(':').next().unwrap();
    assert!(
        s.cookie
            .starts_with(&format!("repowire_dashboard_{port}=rw_")),
        "{}",
        s.cookie
    );
    assert!(s.key.starts_with("rw_"), "{}", s.key);
    let again = http.get(&url).send().await.unwrap();
    assert_eq!(again.status(), 403, "a second use of the link");
    assert!(again.text().await.unwrap().contains("already used"));

    let page = http
        .get(format!("{}/dashboard", d.url))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 401, "no cookie, no page");
    let page = http
        .get(format!("{}/dashboard", d.url))
        .header("cookie", &s.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains(r#"<script src="/dashboard/app.js""#),
        "{html}"
    );
    assert!(!html.contains("rw_"), "no secret in the page");

    d.peer("alice", None).await;
    let get = |cookie: Option<&str>, key: Option<&str>| {
        let mut r = http.get(format!("{}/v1/peers", d.url));
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        if let Some(k) = key {
            r = r.header("x-repowire-dashboard", k);
        }
        r.send()
    };
    // The cookie alone, the key alone, the cookie with another key: no.
    for (cookie, key) in [
        (Some(s.cookie.as_str()), None),
        (None, Some(s.key.as_str())),
        (Some(s.cookie.as_str()), Some("rw_00")),
    ] {
        let r = get(cookie, key).await.unwrap();
        assert_eq!(r.status(), 401, "{cookie:?} {key:?}");
    }
    let peers: Value = get(Some(&s.cookie), Some(&s.key))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(peers[0]["name"], "alice", "{peers}");
    // A cookie of the same name set by another server on this host goes
    // first: the real one still counts.
    let shadowed = format!("{}=junk; {}", s.cookie.split('=').next().unwrap(), s.cookie);
    assert_eq!(
        get(Some(&shadowed), Some(&s.key)).await.unwrap().status(),
        200
    );

    // Writes: the page's own, from the daemon's origin.
    let job = d
        .peer("olga", None)
        .await
        .create_job(&JobCreateReq {
            title: "cancel me".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let cancel = format!("{}/v1/jobs/{}/cancel", d.url, job.job_id);
    let post = |url: String, origin: Option<&str>, body: Value| {
        let mut r = http
            .post(url)
            .header("cookie", &s.cookie)
            .header("x-repowire-dashboard", &s.key)
            .json(&body);
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.send()
    };
    let r = post(cancel.clone(), Some("http://evil.example"), json!({}))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let spawn = json!({"path": "/tmp", "backend": "shell", "command": "true"});
    for (url, body) in [
        (format!("{}/v1/peers/spawn", d.url), spawn),
        (format!("{}/v1/dashboard/login", d.url), json!({})),
        (format!("{}/v1/shutdown", d.url), json!({})),
    ] {
        let r = post(url.clone(), Some(&d.url), body).await.unwrap();
        assert_eq!(r.status(), 403, "{url}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["code"], "forbidden", "{url}: {b}");
    }
    let r = post(cancel, Some(&d.url), json!({"reason": "from a test"}))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    // A page whose own name resolves to 127.0.0.1 (DNS rebinding) gets
    // nothing, not even /health; loopback names do.
    let port = d.url.rsplit(':').next().unwrap();
    for (host, status) in [
        (format!("evil.example:{port}"), 403),
        (format!("localhost:{port}"), 200),
        (format!("127.0.0.1:{port}"), 200),
    ] {
        let r = http
            .get(format!("{}/health", d.url))
            .header("host", &host)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), status, "{host}");
    }
    // A peer cannot mint a link.
    let peer = d.peer_token("bob", None).await;
    let r = http
        .post(format!("{}/v1/dashboard/login", d.url))
        .bearer_auth(peer)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

// --- a real browser ---------------------------------------------------------

/// A program from PATH; missing fails the test (`.ci/run` installs it).
fn need(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{name} is not installed: the dashboard tests need Debian's chromium and chromium-driver (.ci/run installs them)"))
}

/// chromedriver on a free loopback port, and one headless Chromium session.
struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Browser {
        let chromium = need("chromium");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(need("chromedriver"))
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let t0 = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let v: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {v}"))
            .to_string();
        Browser {
            driver,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let v = self.try_cmd(method, path, body).await;
        assert!(v.get("error").is_none(), "webdriver {path}: {v}");
        v
    }

    /// A WebDriver command's value, or its error object.
    async fn try_cmd(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut r = self.http.request(method.clone(), url);
        if method == reqwest::Method::POST {
            r = r.json(&body);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        v["value"].clone()
    }

    async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", json!({"url": url}))
            .await;
    }

    async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Run `script` (a function body) in the page; what it returns.
    async fn js(&self, script: &str) -> Value {
        self.cmd(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// Wait until `script` returns something truthy; that value.
    async fn until(&self, what: &str, within: Duration, script: &str) -> Value {
        let t0 = Instant::now();
        loop {
            // A page still navigating may not run scripts yet: look again.
            let v = self
                .try_cmd(
                    reqwest::Method::POST,
                    "/execute/sync",
                    json!({"script": script, "args": []}),
                )
                .await;
            let v = if v.get("error").is_some() {
                Value::Null
            } else {
                v
            };
            if !(v.is_null() || v == false || v == "" || v == json!([])) {
                return v;
            }
            assert!(t0.elapsed() < within, "{what}: not within {within:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Save a screenshot under target/dashboard-screenshots/.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self
            .cmd(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
        let dir = target.join("dashboard-screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = std::process::Command::new("curl")
            .args(["-s", "-X", "DELETE"])
            .arg(format!("{}/session/{}", self.base, self.session))
            .output();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// In headless Chromium: the login link opens the page (and leaves the
/// address bar), peers registered from the CLI are listed, a note sent from
/// the CLI shows in the event log within 2 s, a job moved from the CLI
/// moves on the board, a job canceled from the page is canceled for the
/// CLI, an open ask turns overdue on the timeline, a review and a schedule
/// are listed, a note sent and a role claimed from the page are seen from
/// the CLI, and the link's second use is refused. A screenshot is saved.
#[tokio::test]
async fn the_page_in_a_real_browser_follows_the_mesh_live() {
    let d = Daemon::start(&["--reminder-after", "1s"]);
    let alice = d.cli(&["peer", "register", "alice", "--json"]).ok().json();
    let alice_token = alice["token"].as_str().unwrap().to_string();
    d.cli(&["peer", "register", "bob", "--backend", "codex"])
        .ok();
    let b = Browser::start().await;
    let url = login_url(&d);
    b.goto(&url).await;
    // The login page moves on by itself (a refresh), then the page clears
    // the key from the address.
    b.until(
        "the page ready",
        Duration::from_secs(10),
        "return document.body.dataset.ready",
    )
    .await;
    assert_eq!(
        b.url().await,
        format!("{}/dashboard", d.url),
        "neither the code nor the key stays in the address bar"
    );
    let names = b
        .until(
            "the peers listed",
            Duration::from_secs(5),
            "const n = [...document.querySelectorAll('#peers tr.peer')].map(r => r.dataset.name); return n.length >= 2 ? n : null",
        )
        .await;
    assert_eq!(names, json!(["alice", "bob"]));

    // A note from the CLI, in the event log within 2 s.
    let as_alice = [("REPOWIRE_PEER_TOKEN", alice_token.as_str())];
    let t0 = Instant::now();
    let sent = d
        .cli_env(
            &["peer", "notify", "bob", "the build is green", "--json"],
            &as_alice,
        )
        .ok()
        .json();
    let dl = sent["delivery_id"].as_str().unwrap().to_string();
    b.until(
        "the note in the event log",
        Duration::from_secs(2),
        &format!(
            "return [...document.querySelectorAll('#events li')].some(li => li.dataset.kind === 'delivery_queued' && li.textContent.includes('{dl}'))"
        ),
    )
    .await;
    let took = t0.elapsed();
    assert!(took <= Duration::from_secs(2), "{took:?}");

    // A job moved from the CLI moves on the board.
    let job = d
        .cli_env(
            &["jobs", "create", "ship it", "--assign", "bob", "--json"],
            &as_alice,
        )
        .ok()
        .json();
    let id = job["job_id"].as_str().unwrap().to_string();
    let in_column = |state: &str| {
        format!(
            "const c = document.querySelector('.column[data-state=\"{state}\"] .card[data-id=\"{id}\"]'); return c !== null"
        )
    };
    b.until(
        "the job dispatched on the board",
        Duration::from_secs(5),
        &in_column("dispatched"),
    )
    .await;
    d.cli(&["--as", "bob", "jobs", "update", &id, "--state", "running"])
        .ok();
    b.until(
        "the job moved to running",
        Duration::from_secs(5),
        &in_column("running"),
    )
    .await;
    // An action from the page, seen from the CLI.
    b.js(&format!(
        "document.querySelector('.card[data-id=\"{id}\"] button.cancel').click(); return true"
    ))
    .await;
    let t0 = Instant::now();
    loop {
        let j = d.cli(&["jobs", "show", &id, "--json"]).ok().json();
        if j["state"] == "canceled" || j["cancel_requested_at_ms"].is_i64() {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "not canceled: {j}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // An open ask on the timeline, marked overdue once past
    // --reminder-after; a review in the queue; a schedule with its next fire.
    let ask = d
        .cli_env(
            &["peer", "ask", "bob", "which branch?", "--json"],
            &as_alice,
        )
        .ok()
        .json();
    let ask_id = ask["ask"]["correlation_id"].as_str().unwrap().to_string();
    b.until(
        "the ask overdue on the timeline",
        Duration::from_secs(10),
        &format!(
            "const a = document.querySelector('#asks li[data-id=\"{ask_id}\"]'); return a !== null && a.classList.contains('overdue')"
        ),
    )
    .await;
    // bob's load counts the asks waiting for him (the job's and this one).
    let load = b
        .until(
            "bob's load",
            Duration::from_secs(5),
            "const c = document.querySelector('#peers tr[data-name=\"bob\"] td.load'); return c && Number(c.textContent) >= 2 ? c.textContent : null",
        )
        .await;
    assert_eq!(load, "2");
    d.cli(&[
        "--as",
        "alice",
        "review",
        "request",
        "pr-7",
        "--sha",
        "abc123",
        "--title",
        "fix the parser",
    ])
    .ok();
    d.cli(&[
        "--as", "alice", "schedule", "cron", "bob", "@daily", "stand-up",
    ])
    .ok();
    b.until(
        "the review queued",
        Duration::from_secs(5),
        "return document.querySelector('#reviews tr[data-ref=\"pr-7\"]') !== null",
    )
    .await;
    b.until(
        "the schedule listed",
        Duration::from_secs(5),
        "const r = document.querySelector('#schedules tr.schedule'); return r && r.textContent.includes('@daily')",
    )
    .await;

    // A note and a role claim from the page, seen from the CLI.
    b.js(
        "document.getElementById('note-from').value = 'alice@default';\
         document.getElementById('note-to').value = 'bob@default';\
         document.getElementById('note-text').value = 'sent from the page';\
         document.getElementById('note-send').click(); return true",
    )
    .await;
    let t0 = Instant::now();
    loop {
        let inbox = d
            .cli(&["--as", "bob", "peer", "inbox", "--peek", "--json"])
            .ok()
            .stdout
            .clone();
        if inbox.contains("sent from the page") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the page's note never arrived: {inbox}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.js(
        "document.querySelector('#peers tr[data-name=\"alice\"] button.role').click(); return true",
    )
    .await;
    let t0 = Instant::now();
    loop {
        let o = d.cli(&["orchestrator", "status", "--json"]).ok().json();
        if o["holder"] == "alice" || o["name"] == "alice" {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "alice is not the orchestrator: {o}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    b.until(
        "alice shown as the orchestrator",
        Duration::from_secs(5),
        "const r = document.querySelector('#peers tr[data-name=\"alice\"]'); return r && r.dataset.role === 'orchestrator'",
    )
    .await;
    let shot = b.screenshot("the_page_in_a_real_browser").await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 1000);

    // The link a second time: refused.
    b.goto(&url).await;
    let text = b.js("return document.body.textContent").await;
    assert!(text.as_str().unwrap().contains("already used"), "{text}");
}

/// The first view at scale: 1,000 peers and 10,000 jobs. The page lists
/// every peer and the first 50 jobs of each state; the time from navigation
/// to the page being ready is measured in the browser and printed (and
/// kept in target/dashboard-screenshots/scale.txt) — docs/benchmarks.md
/// reports it; a test asserts no timings.
#[tokio::test]
async fn the_first_view_at_scale() {
    let d = Daemon::start(&["--max-message-bytes", "65536"]);
    let admin = d.admin();
    let t0 = Instant::now();
    at_most_16(1000, |i| {
        let c = admin.clone();
        async move {
            c.register(&repowire::api::RegisterReq {
                name: format!("p{i:04}"),
                circle: Some(format!("c{}", i % 10)),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    })
    .await;
    let owner = d.peer("owner", None).await;
    at_most_16(10_000, |i| {
        let c = owner.clone();
        async move {
            c.create_job(&JobCreateReq {
                title: format!("job {i}"),
                tags: Some(vec!["nobody-has-this".into()]),
                ..Default::default()
            })
            .await
            .unwrap();
        }
    })
    .await;
    let setup = t0.elapsed();
    let b = Browser::start().await;
    b.goto(&login_url(&d)).await;
    b.until(
        "the page ready",
        Duration::from_secs(60),
        "return document.body.dataset.ready",
    )
    .await;
    let ready_ms = b.js("return Number(document.body.dataset.readyMs)").await;
    let peers = b
        .js("return document.querySelectorAll('#peers tr.peer').length")
        .await;
    assert_eq!(peers, 1001);
    let cards = b
        .js("return document.querySelectorAll('.column[data-state=\"queued\"] .card').length")
        .await;
    assert_eq!(cards, 50, "the queued column shows the first 50");
    let line = format!(
        "first view with 1,000 peers and 10,000 jobs: ready {ready_ms} ms after navigation (debug build: {})\n",
        cfg!(debug_assertions)
    );
    eprintln!("{line}(setup {setup:?})");
    let shot = b.screenshot("the_first_view_at_scale").await;
    std::fs::write(shot.with_file_name("scale.txt"), line).unwrap();
}

/// Run `make(0..n)`, at most 16 at a time.
async fn at_most_16<F, Fut>(n: usize, make: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(make(i));
        if tasks.len() >= 16 {
            tasks.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
}

/// On a desktop, `repowire dashboard` opens the link through a page only
/// the user can read (the code in no command line): the browser handed
/// that page ends up logged in on /dashboard, the SameSite=Strict cookie
/// set on the way.
#[tokio::test]
async fn on_a_desktop_the_link_opens_through_a_private_page() {
    let d = Daemon::start(&[]);
    let bin = tempfile::tempdir().unwrap();
    let seen = bin.path().join("argv");
    let opener = bin.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n", seen.display()),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&opener, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let v = d
        .cli_env(
            &["dashboard", "--json"],
            &[("PATH", path.as_str()), ("DISPLAY", ":99")],
        )
        .ok()
        .json();
    assert_eq!(v["opened"], true, "{v}");
    let t0 = Instant::now();
    while !seen.exists() {
        assert!(t0.elapsed() < Duration::from_secs(5), "xdg-open never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let argv = std::fs::read_to_string(&seen).unwrap();
    let page = d.home_path().join("dashboard-login.html");
    assert_eq!(
        argv.trim(),
        page.to_str().unwrap(),
        "xdg-open got the private page"
    );
    assert!(
        !argv.contains("code="),
        "the code in a command line: {argv}"
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(&page).unwrap().mode() & 0o777, 0o600);
    let b = Browser::start().await;
    b.goto(&format!("file://{}", page.display())).await;
    b.until(
        "the dashboard ready",
        Duration::from_secs(10),
        "return location.pathname === '/dashboard' && document.body.dataset.ready",
    )
    .await;
    assert_eq!(b.url().await, format!("{}/dashboard", d.url));
    let error = b
        .js("return document.getElementById('error').textContent")
        .await;
    assert_eq!(error, "", "the page could not read the API");
}
