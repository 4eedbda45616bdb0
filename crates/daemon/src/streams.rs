//! Event streams without a tax on writes: the fan-out, the per-token cap,
//! and dropping a stream that falls behind.
//!
//! Writers only publish committed events on the store's bus, as before. One
//! fan-out task ([`run`]) turns them into SSE frames, each serialized once,
//! and publishes them as one [`Batch`] every 10 to 100 milliseconds: the frames as one
//! chunk of bytes for streams that see every circle, and one chunk per
//! circle. A stream hands its chunk to its connection as it is (a clone of
//! `Bytes`): no per-stream serialization, filtering or database read.
//!
//! A stream that falls more than `stream_buffer` batches behind (its
//! consumer does not read) is dropped: it ends with a final `lagged` event
//! saying where to resume, instead of holding anyone up. A consumer that
//! does not even read that is disconnected after `body_timeout`.

use super::DaemonHandle;
use super::auth::Caller;
use bytes::{Bytes, BytesMut};
use repowire_client::api::EventInfo;
use repowire_core::error::{Error, ErrorCode};
use repowire_core::event::EventRecord;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How long the fan-out gathers events before publishing a batch: a burst
/// of writes costs each stream one wake-up and one write, not one per event.
const COALESCE: Duration = Duration::from_millis(10);
/// At most one batch per this: under a steady stream of writes, the cost of
/// waking every stream is paid 10 times a second, however many writes.
const INTERVAL: Duration = Duration::from_millis(100);
/// A comment line this often keeps idle streams (and proxies) alive.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// Chunks queued between a stream and its connection.
const QUEUE: usize = 4;
/// While a stream's consumer is not reading, how often to check whether it
/// has fallen too far behind.
const LAG_CHECK: Duration = Duration::from_millis(100);
/// Events read from the log at a time (backlog, or filling a gap).
const PAGE: u32 = 500;

/// One publication of the fan-out: events `first..=last` (by seq) as SSE
/// frames.
pub struct Batch {
    first: i64,
    last: i64,
    /// Every event (streams that see every circle).
    all: Bytes,
    /// The events of each circle.
    by_circle: Vec<(String, Bytes)>,
}

impl Batch {
    /// The bytes a stream scoped to `circle` (or to every circle) sends.
    fn chunk(&self, circle: Option<&str>) -> Option<&Bytes> {
        match circle {
            None => Some(&self.all),
            Some(c) => self.by_circle.iter().find(|(k, _)| k == c).map(|(_, b)| b),
        }
    }
}

/// The fan-out's output and the open-stream counts.
pub struct Streams {
    tx: broadcast::Sender<Arc<Batch>>,
    /// Newest seq published to streams.
    published: AtomicI64,
    open: Mutex<HashMap<String, usize>>,
    max_per_token: usize,
    buffer: usize,
}

impl Streams {
    pub fn new(max_per_token: usize, buffer: usize) -> Self {
        let buffer = buffer.max(1);
        Self {
            tx: broadcast::channel(buffer).0,
            published: AtomicI64::new(0),
            open: Mutex::new(HashMap::new()),
            max_per_token: max_per_token.max(1),
            buffer,
        }
    }
}

/// One open stream, counted against its token until dropped.
pub struct Slot {
    h: DaemonHandle,
    key: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .h
            .streams
            .open
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// Count a new stream of `c`'s token, or refuse it (`too_many_streams`).
pub fn open_slot(h: &DaemonHandle, c: &Caller) -> Result<Slot, Error> {
    // One key per token: a peer's own, or the admin token (with or without --as).
    let key = match c {
        Caller::Peer(p) => format!("peer:{}", p.id),
        Caller::Admin | Caller::AdminAs(_) => "admin".to_string(),
    };
    let max = h.streams.max_per_token;
    let mut open = h.streams.open.lock().unwrap_or_else(|p| p.into_inner());
    let n = open.entry(key.clone()).or_default();
    if *n >= max {
        return Err(Error::new(
            ErrorCode::TooManyStreams,
            format!(
                "this token already has {max} streams open (--max-streams-per-token); close one first"
            ),
        ));
    }
    *n += 1;
    Ok(Slot { h: h.clone(), key })
}

/// One event as an SSE frame: `id` its seq, `event` its kind, `data` its JSON.
fn frame(e: &EventRecord, out: &mut BytesMut) {
    use std::fmt::Write;
    let data = serde_json::to_string(&EventInfo::from(e)).unwrap_or_default();
    let _ = write!(out, "id: {}\nevent: {}\ndata: {data}\n\n", e.seq, e.kind);
}

/// Run until the daemon stops: batch committed events into SSE frames.
pub async fn run(h: DaemonHandle) {
    use broadcast::error::{RecvError, TryRecvError};
    let mut bus = h.store.subscribe();
    let mut last = h.store.tail_start(0, None).unwrap_or(0);
    h.streams.published.store(last, Ordering::Release);
    let mut published_at = tokio::time::Instant::now();
    // Made once: a new one per turn subscribes and registers again.
    let stopping = h.stopping();
    tokio::pin!(stopping);
    loop {
        let mut got = Vec::new();
        let mut gap = false;
        tokio::select! {
            r = bus.recv() => match r {
                Ok(e) => got.push(e),
                Err(RecvError::Lagged(_)) => gap = true,
                Err(RecvError::Closed) => return,
            },
            _ = &mut stopping => return,
        }
        let now = tokio::time::Instant::now();
        tokio::time::sleep_until((now + COALESCE).max(published_at + INTERVAL)).await;
        loop {
            match bus.try_recv() {
                Ok(e) => got.push(e),
                Err(TryRecvError::Lagged(_)) => gap = true,
                Err(_) => break,
            }
        }
        got.sort_by_key(|e| e.seq);
        got.retain(|e| e.seq > last);
        got.dedup_by_key(|e| e.seq);
        // Seqs of committed events follow one another; a hole means a writer
        // has committed but not yet published (or the bus overflowed): the
        // log has it, in order.
        gap |= got
            .iter()
            .enumerate()
            .any(|(i, e)| e.seq != last + 1 + i as i64);
        let events: Vec<Arc<EventRecord>> = if gap {
            let mut all = Vec::new();
            loop {
                let from = all.last().map_or(last, |e: &Arc<EventRecord>| e.seq);
                match h.store.events_since(from, PAGE, None) {
                    Ok(page) if page.is_empty() => break,
                    Ok(page) => all.extend(page.into_iter().map(Arc::new)),
                    Err(e) => {
                        tracing::error!(error = %e, "event fan-out could not read the log");
                        break;
                    }
                }
            }
            all
        } else {
            got
        };
        let Some(end) = events.last().map(|e| e.seq) else {
            continue;
        };
        // Nobody follows: nothing to frame. (A stream that opens later
        // subscribes first and then reads what it missed from the log.)
        if h.streams.tx.receiver_count() == 0 {
            last = end;
            h.streams.published.store(end, Ordering::Release);
            continue;
        }
        let mut all = BytesMut::new();
        let mut by: Vec<(String, BytesMut)> = Vec::new();
        for e in &events {
            let start = all.len();
            frame(e, &mut all);
            if let Some(c) = &e.circle {
                let i = match by.iter().position(|(k, _)| k == c) {
                    Some(i) => i,
                    None => {
                        by.push((c.clone(), BytesMut::new()));
                        by.len() - 1
                    }
                };
                by[i].1.extend_from_slice(&all[start..]);
            }
        }
        let batch = Batch {
            first: events[0].seq,
            last: end,
            all: all.freeze(),
            by_circle: by.into_iter().map(|(c, b)| (c, b.freeze())).collect(),
        };
        last = end;
        published_at = tokio::time::Instant::now();
        h.streams.published.store(end, Ordering::Release);
        let _ = h.streams.tx.send(Arc::new(batch));
    }
}

/// Open an event stream: the backlog after `since` from the log, then live
/// batches. The returned receiver is the response body; `alive` is held by
/// that body (so the stream knows whether its response is still going).
pub fn events(
    h: &DaemonHandle,
    circle: Option<String>,
    since: i64,
    conn: Option<super::serve::Conn>,
    alive: Weak<Slot>,
) -> mpsc::Receiver<Bytes> {
    let (tx, rx) = mpsc::channel(QUEUE);
    // Subscribe before reading the backlog, so nothing falls in between.
    let batches = h.streams.tx.subscribe();
    let h = h.clone();
    tokio::spawn(async move {
        let mut s = Stream {
            h,
            circle,
            last: since,
            tx,
            batches,
        };
        if let Some(missed) = s.pump().await {
            s.lagged(missed, conn, alive).await;
        }
    });
    rx
}

/// Room for one chunk in a stream's queue. While the consumer is behind,
/// wait for it, but not past the point where the fan-out has outrun the
/// stream by the buffer's worth of batches (`Err(true)`: drop it) or once
/// the consumer is gone or the daemon stops (`Err(false)`).
async fn room<'a>(
    tx: &'a mpsc::Sender<Bytes>,
    batches: &broadcast::Receiver<Arc<Batch>>,
    h: &DaemonHandle,
    last: i64,
    mut stopping: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
) -> Result<mpsc::Permit<'a, Bytes>, bool> {
    match tx.try_reserve() {
        Ok(p) => return Ok(p),
        Err(mpsc::error::TrySendError::Closed(())) => return Err(false),
        Err(mpsc::error::TrySendError::Full(())) => {}
    }
    loop {
        tokio::select! {
            p = tx.reserve() => return p.map_err(|_| false),
            _ = tokio::time::sleep(LAG_CHECK) => {
                // Behind only if something published is not yet queued: a
                // stream whose catch-up read ahead of the fan-out is not.
                let published = h.streams.published.load(Ordering::Acquire);
                if batches.len() >= h.streams.buffer && published > last {
                    return Err(true);
                }
            }
            _ = &mut stopping => return Err(false),
        }
    }
}

struct Stream {
    h: DaemonHandle,
    circle: Option<String>,
    /// Newest seq sent (or skipped as not this stream's).
    last: i64,
    tx: mpsc::Sender<Bytes>,
    batches: broadcast::Receiver<Arc<Batch>>,
}

impl Stream {
    /// Send what the log has after `last`: `Ok` when done, else how the
    /// stream ends (`None`: consumer gone or stopping; `Some(missed)`: it
    /// fell too far behind while its consumer was not reading).
    async fn catch_up(&mut self) -> Result<(), Option<i64>> {
        let h = self.h.clone();
        let stopping = h.stopping();
        tokio::pin!(stopping);
        loop {
            let page = match self
                .h
                .store
                .events_since(self.last, PAGE, self.circle.as_deref())
            {
                Ok(p) => p,
                Err(e) => {
                    tracing::error!(error = %e, "event stream read failed");
                    return Err(None);
                }
            };
            let Some(end) = page.last().map(|e| e.seq) else {
                return Ok(());
            };
            let mut out = BytesMut::new();
            for e in &page {
                frame(e, &mut out);
            }
            // The same lag rule as for live batches: a backlog read while
            // writes go on must not wait forever on a consumer that does not read.
            match room(&self.tx, &self.batches, &self.h, end, stopping.as_mut()).await {
                Ok(permit) => permit.send(out.freeze()),
                Err(true) => return Err(Some(self.missed())),
                Err(false) => return Err(None),
            }
            self.last = end;
        }
    }

    /// Forward batches until the consumer leaves or the daemon stops
    /// (`None`), or the stream fell too far behind (`Some(missed)`).
    async fn pump(&mut self) -> Option<i64> {
        use broadcast::error::RecvError;
        if let Err(end) = self.catch_up().await {
            return end;
        }
        // Made once, not per batch: with hundreds of streams, per-batch timer
        // and watch registrations add up. The keep-alive comment goes every
        // 15 s whether or not events flowed (harmless, and no timer reset per
        // batch).
        let h = self.h.clone();
        let stopping = h.stopping();
        tokio::pin!(stopping);
        let keepalive = tokio::time::sleep(KEEPALIVE);
        tokio::pin!(keepalive);
        loop {
            let permit = match room(
                &self.tx,
                &self.batches,
                &self.h,
                self.last,
                stopping.as_mut(),
            )
            .await
            {
                Ok(p) => p,
                Err(true) => return Some(self.missed()),
                Err(false) => return None,
            };
            let got = tokio::select! {
                r = self.batches.recv() => Some(r),
                _ = keepalive.as_mut() => None,
                _ = &mut stopping => return None,
            };
            let b = match got {
                None => {
                    keepalive
                        .as_mut()
                        .reset(tokio::time::Instant::now() + KEEPALIVE);
                    permit.send(Bytes::from_static(b":\n\n"));
                    continue;
                }
                Some(Ok(b)) => b,
                // Batches it never saw: lost to it, unless the log (a
                // catch-up) already gave it everything they held.
                Some(Err(RecvError::Lagged(_))) if self.missed() > 0 => {
                    return Some(self.missed());
                }
                Some(Err(RecvError::Lagged(_))) => continue,
                Some(Err(RecvError::Closed)) => return None,
            };
            if b.last <= self.last {
                continue; // already sent from the log
            }
            if b.first <= self.last {
                // Straddles the end of the backlog: take the rest from the log.
                drop(permit);
                if let Err(end) = self.catch_up().await {
                    return end;
                }
                continue;
            }
            self.last = b.last;
            if let Some(chunk) = b.chunk(self.circle.as_deref()) {
                permit.send(chunk.clone());
            }
        }
    }

    /// Events published after the last one this stream sent (of every
    /// circle: an upper bound for a stream scoped to one).
    fn missed(&self) -> i64 {
        (self.h.streams.published.load(Ordering::Acquire) - self.last).max(0)
    }

    /// End a stream that fell behind: a final `lagged` event after what is
    /// queued; a consumer that does not read even that within the body
    /// timeout is disconnected.
    async fn lagged(self, missed: i64, conn: Option<super::serve::Conn>, alive: Weak<Slot>) {
        let resume = self.last;
        tracing::info!(missed, resume, "event stream fell behind: dropped");
        let body = serde_json::json!({
            "code": "lagged",
            "message": format!(
                "this stream fell behind the daemon by {missed} events and was closed; \
                 reconnect with since={resume} to resume"
            ),
            "missed": missed,
            "resume_since": resume,
        });
        let fin = Bytes::from(format!("event: lagged\ndata: {body}\n\n"));
        let grace = self.h.net.body_timeout;
        let deadline = tokio::time::Instant::now() + grace;
        let _ = tokio::time::timeout_at(deadline, self.tx.send(fin)).await;
        drop(self.tx);
        drop(self.batches);
        tokio::time::sleep_until(deadline).await;
        if alive.strong_count() > 0
            && let Some(conn) = conn
        {
            tracing::info!("a dropped stream's consumer did not read its end: disconnected");
            conn.close();
        }
    }
}
