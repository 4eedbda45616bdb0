//! Connection and stream limits, against the real daemon over raw TCP: the
//! header and body timeouts, the connection cap's coded refusal, the
//! per-token stream cap, and a stream that falls behind being dropped with a
//! final `lagged` event while writes go on.

use crate::support::{Daemon, eventually};
use repowire::api::{BroadcastReq, NotifyReq};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn addr(d: &Daemon) -> String {
    d.url.trim_start_matches("http://").to_string()
}

/// Read until the daemon closes the connection (EOF or reset); panic if it
/// has not after `guard`. Returns what was read.
async fn read_until_closed(s: &mut TcpStream, guard: Duration) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + guard;
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => panic!(
                "the daemon kept the connection open for {guard:?}; got so far: {}",
                String::from_utf8_lossy(&out)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => return out,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// One whole HTTP/1.1 exchange on a fresh connection: the status line and body.
async fn exchange(addr: &str, request: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let got = read_until_closed(&mut s, Duration::from_secs(30)).await;
    let text = String::from_utf8_lossy(&got).to_string();
    let status = text.lines().next().unwrap_or_default().to_string();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let d = Daemon::start(&["--header-timeout", "1s"]);
    let mut s = TcpStream::connect(addr(&d)).await.unwrap();
    let t0 = Instant::now();
    // A head that never ends, trickled a byte at a time well inside the timeout.
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if s.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(20), trickle).await;
    let held = t0.elapsed();
    assert!(
        held < Duration::from_secs(15),
        "a trickled request head kept its connection {held:?}"
    );
    assert!(
        held >= Duration::from_millis(900),
        "closed too early: {held:?}"
    );
    // The daemon still serves complete requests.
    assert!(d.healthy().await);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed() {
    let d = Daemon::start(&["--header-timeout", "1s"]);
    let mut s = TcpStream::connect(addr(&d)).await.unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let t0 = Instant::now();
    // The answer, then (no next request) the daemon closes the connection.
    let got = read_until_closed(&mut s, Duration::from_secs(15)).await;
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "closed too early"
    );
}

#[tokio::test]
async fn a_trickled_body_is_cut_with_a_coded_timeout() {
    let d = Daemon::start(&["--body-timeout", "1s"]);
    let token = d.admin_token();
    let mut s = TcpStream::connect(addr(&d)).await.unwrap();
    let head = format!(
        "POST /v1/notify HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{{\"to\":"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (mut r, mut w) = s.split();
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if w.write_all(b" ").await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    };
    let mut got = Vec::new();
    let read_all = async {
        let mut buf = [0u8; 4096];
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(20), async {
        tokio::select! {
            _ = trickle => {},
            _ = read_all => {},
        }
    })
    .await;
    assert!(finished.is_ok(), "a trickled body kept its request open");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 408"), "got: {text}");
    assert!(text.contains("\"code\":\"timeout\""), "got: {text}");
}

#[tokio::test]
async fn connections_over_the_cap_get_a_coded_refusal() {
    let d = Daemon::start(&["--max-connections", "4"]);
    let a = addr(&d);
    // Four connections that are surely being served: each had an answer.
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut s = TcpStream::connect(&a).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(s);
    }
    let (status, body) = exchange(&a, "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").await;
    assert!(status.starts_with("HTTP/1.1 503"), "got: {status}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(v["code"], "too_many_connections", "got: {body}");
    // Once they go, ordinary requests are served again.
    drop(held);
    eventually(Duration::from_secs(10), "a served request", || async {
        d.healthy().await.then_some(())
    })
    .await;
    let (status, _) = exchange(
        &a,
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "got: {status}");
}

/// Open `GET /v1/events/stream` (or the inbox stream) with `token`.
async fn open_stream(d: &Daemon, path: &str, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("{}{path}", d.url))
        .bearer_auth(token)
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn each_token_has_a_cap_on_open_streams() {
    let d = Daemon::start(&["--max-streams-per-token", "2"]);
    let token = d.peer_token("watcher", None).await;
    let first = open_stream(&d, "/v1/events/stream", &token).await;
    assert_eq!(first.status(), 200);
    // The inbox stream counts against the same token.
    let second = open_stream(&d, "/v1/inbox/stream", &token).await;
    assert_eq!(second.status(), 200);
    let third = open_stream(&d, "/v1/events/stream", &token).await;
    assert_eq!(third.status(), 429);
    let v: serde_json::Value = third.json().await.unwrap();
    assert_eq!(v["code"], "too_many_streams", "got: {v}");
    // Another token is not affected.
    let admin = open_stream(&d, "/v1/events/stream", &d.admin_token()).await;
    assert_eq!(admin.status(), 200);
    // Closing one frees its slot.
    drop(first);
    let again = eventually(Duration::from_secs(10), "a freed stream slot", || async {
        let r = open_stream(&d, "/v1/events/stream", &token).await;
        (r.status() == 200).then_some(r)
    })
    .await;
    drop((second, again, admin));
}

#[tokio::test]
async fn the_stream_delivers_every_event_in_order() {
    let d = Daemon::start(&[]);
    let writers = [
        d.peer("w1", None).await,
        d.peer("w2", None).await,
        d.peer("w3", None).await,
    ];
    d.peer_token("sink", None).await;
    let since = d.admin().events(None, Some(1), None).await.unwrap().events[0].seq;
    let stream = d
        .admin()
        .event_stream(Some(since), None, None)
        .await
        .unwrap();
    let per = 40;
    let jobs = writers.iter().map(|w| async move {
        for i in 0..per {
            let req = NotifyReq {
                to: "sink".into(),
                text: format!("n{i}"),
                ..Default::default()
            };
            w.notify(&req).await.unwrap();
        }
    });
    futures_util::future::join_all(jobs).await;
    let logged = d
        .admin()
        .events(Some(since), None, None)
        .await
        .unwrap()
        .events;
    assert!(logged.len() >= 3 * per);
    let want: Vec<i64> = logged.iter().map(|e| e.seq).collect();
    use futures_util::StreamExt;
    let got: Vec<i64> = tokio::time::timeout(
        Duration::from_secs(30),
        stream.take(want.len()).map(|e| e.unwrap().seq).collect(),
    )
    .await
    .expect("the stream delivered every logged event");
    assert_eq!(got, want, "the stream's events are the log's, in order");
}

#[tokio::test]
async fn a_stream_that_does_not_read_is_dropped_while_writes_go_on() {
    let d = Daemon::start(&[
        "--stream-buffer",
        "2",
        "--broadcast-per-minute",
        "100000",
        "--body-timeout",
        "120s",
    ]);
    let sender = d.peer("sender", None).await;
    for i in 0..120 {
        d.peer_token(&format!("p{i}"), None).await;
    }
    // A consumer with a tiny receive window that reads nothing for now.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr(&d).parse().unwrap()).await.unwrap();
    let req = format!(
        "GET /v1/events/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        d.admin_token()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    // Writes go on regardless: about 36,000 events (some 10 MB of frames),
    // far more than socket buffers hold (Linux lets a send buffer grow to
    // 4 MiB by default).
    let t0 = Instant::now();
    for i in 0..300 {
        let req = BroadcastReq {
            text: format!("b{i}"),
            ..Default::default()
        };
        tokio::time::timeout(Duration::from_secs(30), sender.broadcast_to(&req))
            .await
            .expect("a write was held up by the stream")
            .unwrap();
    }
    eprintln!("300 broadcasts to 120 peers took {:?}", t0.elapsed());
    // Now read: what was queued, then the final event, then the end.
    let got = read_until_closed(&mut s, Duration::from_secs(60)).await;
    let text = String::from_utf8_lossy(&got).to_string();
    let (head, body) = text.split_once("\r\n\r\n").expect("a response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let text = dechunk(body);
    eprintln!("read {} bytes of events before the end", text.len());
    let tail = &text[text.len().saturating_sub(2000)..];
    let last = text
        .rsplit("\n\n")
        .find(|b| b.contains("event: lagged"))
        .unwrap_or_else(|| panic!("no final lagged event; the stream ended with: {tail}"));
    let data = last
        .lines()
        .find_map(|l| l.strip_prefix("data: "))
        .expect("lagged data");
    let v: serde_json::Value = serde_json::from_str(data).unwrap();
    assert_eq!(v["code"], "lagged");
    assert!(v["missed"].as_i64().unwrap() > 0, "{v}");
    let resume = v["resume_since"].as_i64().unwrap();
    // What it did send is in order, and ends where it says to resume.
    let ids: Vec<i64> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids out of order");
    assert_eq!(ids.last().copied().unwrap_or(resume), resume);
    assert!(
        text.trim_end().ends_with('}'),
        "the lagged event is the last thing sent: {tail}"
    );
    // The daemon is fine, and streams open again.
    assert!(d.healthy().await);
}

#[tokio::test]
async fn a_stream_stuck_in_its_backlog_is_dropped_too() {
    let d = Daemon::start(&[
        "--stream-buffer",
        "2",
        "--max-streams-per-token",
        "1",
        "--broadcast-per-minute",
        "100000",
        "--body-timeout",
        "1s",
    ]);
    let sender = d.peer("sender", None).await;
    for i in 0..120 {
        d.peer_token(&format!("p{i}"), None).await;
    }
    // A backlog of some 36,000 events (about 10 MB of frames): more than
    // the socket buffers hold.
    for i in 0..300 {
        let req = BroadcastReq {
            text: format!("b{i}"),
            ..Default::default()
        };
        sender.broadcast_to(&req).await.unwrap();
    }
    let token = d.peer_token("watcher", None).await;
    // A consumer with a tiny receive window that asks for all of it and
    // reads nothing: its stream waits in the middle of the backlog.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut s = sock.connect(addr(&d).parse().unwrap()).await.unwrap();
    let req = format!(
        "GET /v1/events/stream?since=0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Writes go on: the fan-out outruns the stream, which is dropped and,
    // as its consumer does not read its end either, disconnected; its slot
    // (one per token here) is free again.
    let freed = async {
        for i in 0.. {
            let req = NotifyReq {
                to: "p0".into(),
                text: format!("n{i}"),
                ..Default::default()
            };
            sender.notify(&req).await.unwrap();
            tokio::time::sleep(Duration::from_millis(50)).await;
            if i % 10 == 9 && open_stream(&d, "/v1/events/stream", &token).await.status() == 200 {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), freed)
        .await
        .expect("a stream stuck in its backlog was never dropped");
    drop(s);
}
