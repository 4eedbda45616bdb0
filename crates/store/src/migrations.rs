//! Append-only schema migrations, tracked in `PRAGMA user_version`.
//!
//! Never edit a migration that has shipped: add a new one at the end.

use repowire_core::error::{Error, Result};
use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: peers, asks, deliveries, events.
    r#"
    CREATE TABLE peers (
        id            TEXT PRIMARY KEY,
        name          TEXT NOT NULL,
        circle        TEXT NOT NULL,
        role          TEXT NOT NULL,
        backend       TEXT NOT NULL DEFAULT '',
        project_path  TEXT NOT NULL DEFAULT '',
        tags          TEXT NOT NULL DEFAULT '[]',
        description   TEXT NOT NULL DEFAULT '',
        status        TEXT NOT NULL,
        route         TEXT NOT NULL DEFAULT 'pull',
        token_hash    TEXT NOT NULL,
        created_ms    INTEGER NOT NULL,
        last_seen_ms  INTEGER NOT NULL,
        ghost_since_ms INTEGER,
        prior_role    TEXT,            -- the role to go back to after orchestrating
        UNIQUE (circle, name)
    );
    CREATE UNIQUE INDEX peers_token ON peers (token_hash);
    CREATE UNIQUE INDEX peers_one_orchestrator ON peers (circle) WHERE role = 'orchestrator';

    CREATE TABLE ask_groups (
        id          TEXT PRIMARY KEY,
        from_peer   TEXT NOT NULL,
        circle      TEXT NOT NULL,
        text        TEXT NOT NULL,
        created_ms  INTEGER NOT NULL
    );

    CREATE TABLE asks (
        id            TEXT PRIMARY KEY,
        parent_id     TEXT REFERENCES ask_groups (id),
        from_peer     TEXT NOT NULL,
        from_name     TEXT NOT NULL,
        to_peer       TEXT NOT NULL,
        to_name       TEXT NOT NULL,
        circle        TEXT NOT NULL,
        text          TEXT NOT NULL,
        state         TEXT NOT NULL,
        answer        TEXT,
        ack_message   TEXT,
        created_ms    INTEGER NOT NULL,
        updated_ms    INTEGER NOT NULL,
        expires_ms    INTEGER NOT NULL,
        reminded_ms   INTEGER,
        closed_ms     INTEGER
    );
    CREATE INDEX asks_open ON asks (state, expires_ms);
    CREATE INDEX asks_from ON asks (from_peer, created_ms);
    CREATE INDEX asks_to ON asks (to_peer, created_ms);
    CREATE INDEX asks_parent ON asks (parent_id) WHERE parent_id IS NOT NULL;

    CREATE TABLE deliveries (
        seq           INTEGER PRIMARY KEY,
        id            TEXT NOT NULL UNIQUE,
        to_peer       TEXT NOT NULL,
        from_peer     TEXT,
        from_name     TEXT,
        from_circle   TEXT,
        kind          TEXT NOT NULL,
        ask_id        TEXT,
        text          TEXT NOT NULL,
        state         TEXT NOT NULL,
        lease_until_ms INTEGER,
        attempts      INTEGER NOT NULL DEFAULT 0,
        created_ms    INTEGER NOT NULL,
        delivered_ms  INTEGER
    );
    CREATE INDEX deliveries_inbox ON deliveries (to_peer, state, seq);
    CREATE INDEX deliveries_ask ON deliveries (ask_id) WHERE ask_id IS NOT NULL;

    -- Undelivered (pending or leased) deliveries per recipient, kept by
    -- triggers so the inbox cap is checked in O(1) and can never drift.
    CREATE TABLE inbox_counts (
        peer_id  TEXT PRIMARY KEY,
        pending  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries
    WHEN NEW.state IN ('pending','leased')
    BEGIN
        INSERT INTO inbox_counts (peer_id, pending) VALUES (NEW.to_peer, 1)
        ON CONFLICT (peer_id) DO UPDATE SET pending = pending + 1;
    END;
    CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
    WHEN (OLD.state IN ('pending','leased')) != (NEW.state IN ('pending','leased'))
    BEGIN
        UPDATE inbox_counts
           SET pending = pending + (CASE WHEN NEW.state IN ('pending','leased') THEN 1 ELSE -1 END)
         WHERE peer_id = NEW.to_peer;
    END;

    CREATE TABLE events (
        seq      INTEGER PRIMARY KEY, -- never reused: retention always keeps the newest row
        ts_ms    INTEGER NOT NULL,
        kind     TEXT NOT NULL,
        subject  TEXT NOT NULL,
        related  TEXT,
        circle   TEXT,
        payload  TEXT NOT NULL
    );
    CREATE INDEX events_subject ON events (subject);
    CREATE INDEX events_related ON events (related) WHERE related IS NOT NULL;
    "#,
    // 2: the active persona of each circle.
    r#"
    CREATE TABLE circle_personas (
        circle   TEXT PRIMARY KEY,
        persona  TEXT NOT NULL,
        set_ms   INTEGER NOT NULL
    ) WITHOUT ROWID;
    "#,
    // 3: jobs and their progress notes.
    r#"
    CREATE TABLE jobs (
        id              TEXT PRIMARY KEY,
        circle          TEXT NOT NULL,
        title           TEXT NOT NULL,
        brief           TEXT NOT NULL DEFAULT '',
        kind            TEXT NOT NULL DEFAULT '',
        tags            TEXT NOT NULL DEFAULT '[]',
        priority        INTEGER NOT NULL DEFAULT 0,
        created_by      TEXT NOT NULL,
        created_by_name TEXT NOT NULL,
        owner           TEXT NOT NULL,
        owner_name      TEXT NOT NULL,
        assignee        TEXT,
        assignee_name   TEXT,
        state           TEXT NOT NULL,
        phase           TEXT NOT NULL DEFAULT '',
        attempts        INTEGER NOT NULL DEFAULT 0,
        max_attempts    INTEGER NOT NULL DEFAULT 3,
        previous        TEXT NOT NULL DEFAULT '[]',
        result_summary  TEXT,
        result_data     TEXT,
        error           TEXT,
        deadline_ms     INTEGER,
        cancel_requested_ms INTEGER,
        backoff_ms      INTEGER NOT NULL DEFAULT 10000,
        not_before_ms   INTEGER,
        created_ms      INTEGER NOT NULL,
        updated_ms      INTEGER NOT NULL
    );
    CREATE INDEX jobs_state ON jobs (circle, state, priority DESC, created_ms);
    CREATE INDEX jobs_created ON jobs (circle, created_ms);
    CREATE INDEX jobs_state_created ON jobs (circle, state, created_ms);
    CREATE INDEX jobs_dispatchable ON jobs (state, priority DESC, created_ms);
    CREATE INDEX jobs_assignee ON jobs (assignee, state) WHERE assignee IS NOT NULL;
    CREATE TABLE job_notes (
        job_id   TEXT NOT NULL REFERENCES jobs (id),
        ts_ms    INTEGER NOT NULL,
        by_name  TEXT NOT NULL,
        text     TEXT NOT NULL
    );
    CREATE INDEX job_notes_job ON job_notes (job_id, ts_ms);
    "#,
    // 4: review items and who owes a review.
    r#"
    CREATE TABLE reviews (
        id                TEXT PRIMARY KEY,
        circle            TEXT NOT NULL,
        ref               TEXT NOT NULL,
        title             TEXT NOT NULL DEFAULT '',
        head_sha          TEXT NOT NULL,
        author            TEXT NOT NULL,
        author_name       TEXT NOT NULL,
        requested_by_name TEXT NOT NULL,
        tags              TEXT NOT NULL DEFAULT '[]',
        state             TEXT NOT NULL,
        created_ms        INTEGER NOT NULL,
        updated_ms        INTEGER NOT NULL,
        UNIQUE (circle, ref)
    );
    CREATE TABLE review_assignments (
        review_id         TEXT NOT NULL REFERENCES reviews (id),
        reviewer          TEXT NOT NULL,
        reviewer_name     TEXT NOT NULL,
        last_reviewed_sha TEXT,
        verdict           TEXT,
        notes             TEXT,
        updated_ms        INTEGER NOT NULL,
        PRIMARY KEY (review_id, reviewer)
    ) WITHOUT ROWID;
    CREATE INDEX review_assignments_reviewer ON review_assignments (reviewer);
    "#,
    // 5: schedules: future deliveries, one-shot or cron.
    r#"
    CREATE TABLE schedules (
        id              TEXT PRIMARY KEY,
        circle          TEXT NOT NULL,
        owner           TEXT NOT NULL,
        owner_name      TEXT NOT NULL,
        target          TEXT NOT NULL,
        target_name     TEXT NOT NULL,
        kind            TEXT NOT NULL,
        text            TEXT NOT NULL,
        persona         TEXT,
        fire_at_ms      INTEGER,
        cron            TEXT,
        tz              TEXT NOT NULL DEFAULT 'UTC',
        missed          TEXT NOT NULL DEFAULT 'fire_once',
        next_fire_ms    INTEGER,
        last_fired_ms   INTEGER,
        fire_count      INTEGER NOT NULL DEFAULT 0,
        failures        INTEGER NOT NULL DEFAULT 0,
        last_outcome    TEXT,
        last_error      TEXT,
        enabled         INTEGER NOT NULL DEFAULT 1,
        created_ms      INTEGER NOT NULL,
        updated_ms      INTEGER NOT NULL
    );
    CREATE INDEX schedules_due ON schedules (next_fire_ms) WHERE enabled = 1 AND next_fire_ms IS NOT NULL;
    "#,
    // 6: an ask may follow up another ask (reply_to); a delivery about a job
    // names it (job_id), so a session can act on it without parsing text.
    r#"
    ALTER TABLE asks ADD COLUMN reply_to TEXT;
    ALTER TABLE deliveries ADD COLUMN job_id TEXT;
    "#,
    // 7: the open deliveries of a peer, in order, without reading its
    // delivered history (kept for days): what every lease and peek asks.
    r#"
    CREATE INDEX deliveries_open ON deliveries (to_peer, seq) WHERE state IN ('pending', 'leased');
    "#,
    // 8: an ask that dispatches a job names it, so its reminder, its reply
    // and its withdrawal do too.
    r#"
    ALTER TABLE asks ADD COLUMN job_id TEXT;
    UPDATE asks SET job_id = (
        SELECT d.job_id FROM deliveries d WHERE d.ask_id = asks.id AND d.job_id IS NOT NULL LIMIT 1
    ) WHERE job_id IS NULL;
    "#,
    // 9: when a channel push sent a delivery into the session as a live
    // hint (it stays unconfirmed; the stream does not hand it out again).
    r#"
    ALTER TABLE deliveries ADD COLUMN pushed_at_ms INTEGER;
    "#,
    // 10: agent sessions started in tmux windows for new peers (`peer
    // spawn`), followed until they register, fail or are killed.
    r#"
    CREATE TABLE spawns (
        id          INTEGER PRIMARY KEY,
        peer_id     TEXT NOT NULL,
        circle      TEXT NOT NULL,
        name        TEXT NOT NULL,
        backend     TEXT NOT NULL,
        path        TEXT NOT NULL,
        server      TEXT NOT NULL,   -- as asked; its socket path once started
        session     TEXT NOT NULL,
        pane        TEXT,
        job_id      TEXT,
        by_name     TEXT NOT NULL,
        state       TEXT NOT NULL,   -- starting | pending | registered | failed | ended
        why         TEXT,
        created_ms  INTEGER NOT NULL,
        updated_ms  INTEGER NOT NULL
    );
    CREATE INDEX spawns_open ON spawns (state) WHERE state IN ('starting', 'pending');
    CREATE INDEX spawns_circle ON spawns (circle, state);
    CREATE INDEX spawns_peer ON spawns (peer_id);
    "#,
    // 11: the peers routed to a tmux pane, without reading every peer: the
    // tmux carrier looks for them after every queued delivery and
    // registration (a scan made both cost more with every peer).
    r#"
    CREATE INDEX peers_tmux ON peers (id) WHERE route LIKE 'tmux:%' AND status != 'offline';
    "#,
    // 12: a peer's open deliveries not yet pushed live, in order: what its
    // delivery stream leases. Pushed ones stay open until the agent confirms
    // them, and reading past them made every lease of a push session cost
    // more with each note it had been pushed.
    r#"
    CREATE INDEX deliveries_unpushed ON deliveries (to_peer, seq)
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NULL;
    "#,
    // 13: the open reviews, by when they last changed: the background task
    // looks for unrouted ones every tick, and reviews are kept once closed
    // (a scan and a sort of every review ever, each second).
    r#"
    CREATE INDEX reviews_open ON reviews (updated_ms) WHERE state = 'open';
    "#,
    // 14: plain schedule fires written ahead of their due time ("armed"):
    // the delivery waits in state `armed` until `not_before_ms`, when a
    // lease or peek starts to see it with no write at all (so a burst of
    // fires due together is on time), and the schedule names it until the
    // fire is booked (a peer's armed ones are read, in order, from
    // `deliveries_inbox`). `armed_for_ms` without `armed_delivery`: arming was
    // refused for that due time, so it fires the ordinary way.
    r#"
    ALTER TABLE deliveries ADD COLUMN not_before_ms INTEGER;
    -- An armed delivery is first counted when it is taken or booked: the
    -- recipient's counter row may not exist yet.
    -- When a peer's next armed delivery becomes visible (a waiting consumer
    -- wakes for it).
    CREATE INDEX deliveries_armed ON deliveries (to_peer, not_before_ms) WHERE state = 'armed';
    DROP TRIGGER deliveries_count_update;
    CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state ON deliveries
    WHEN (OLD.state IN ('pending','leased')) != (NEW.state IN ('pending','leased'))
    BEGIN
        INSERT INTO inbox_counts (peer_id, pending)
        VALUES (NEW.to_peer, CASE WHEN NEW.state IN ('pending','leased') THEN 1 ELSE -1 END)
        ON CONFLICT (peer_id) DO UPDATE SET pending = pending + excluded.pending;
    END;
    ALTER TABLE schedules ADD COLUMN armed_delivery TEXT;
    ALTER TABLE schedules ADD COLUMN armed_for_ms INTEGER;
    CREATE INDEX schedules_to_arm ON schedules (next_fire_ms)
      WHERE enabled = 1 AND next_fire_ms IS NOT NULL AND armed_for_ms IS NULL
        AND (kind = 'notify' OR (kind = 'ask' AND owner = target));
    "#,
    // 15: the jobs of one state across every circle, and all jobs, newest
    // first: the admin's dashboard lists each state on every job event,
    // and each list sorted every job of that state (jobs are never pruned).
    r#"
    CREATE INDEX jobs_by_state ON jobs (state, created_ms);
    CREATE INDEX jobs_by_created ON jobs (created_ms);
    "#,
    // 16: open jobs with a deadline, by deadline, and open asks not yet
    // reminded, by age: the per-second repair and reminder passes read
    // every queued job's and every open ask's row. Peers by bare name: an
    // address without a circle (the admin's `--as NAME`) read every peer.
    r#"
    CREATE INDEX peers_by_name ON peers (name);
    CREATE INDEX jobs_open_deadline ON jobs (deadline_ms)
      WHERE deadline_ms IS NOT NULL AND state IN ('queued','dispatched','running');
    CREATE INDEX asks_to_remind ON asks (created_ms)
      WHERE reminded_ms IS NULL AND state IN ('queued','delivered');
    "#,
    // 17: fewer index pages written per delivered message. Every lease and
    // confirm moved a delivery's entry in three indexes over the same
    // rows (`deliveries_inbox` by state, `deliveries_open`,
    // `deliveries_unpushed`): a note cost two more 1 KiB WAL pages per
    // state change than it needs. A peer's open deliveries are now its
    // unpushed ones (the usual case, `deliveries_unpushed`) and its pushed
    // ones (few, `deliveries_pushed`), read together in order; its armed
    // ones are their own partial index, in order; `deliveries_to` finds a
    // peer's deliveries of any state and never moves on a state change.
    r#"
    DROP INDEX deliveries_inbox;
    DROP INDEX deliveries_open;
    DROP INDEX deliveries_armed;
    CREATE INDEX deliveries_to ON deliveries (to_peer, seq);
    CREATE INDEX deliveries_pushed ON deliveries (to_peer, seq)
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NOT NULL;
    CREATE INDEX deliveries_armed ON deliveries (to_peer, seq, not_before_ms) WHERE state = 'armed';
    "#,
    // 18: the open-delivery counters leave the file. `inbox_counts` was
    // written by triggers in every transaction that queued, confirmed or
    // dropped a delivery: one more 1 KiB WAL page per commit (two of the
    // twelve a delivered note wrote) for a number the deliveries already
    // hold. The writer connection now keeps it as a TEMP table (memory, no
    // WAL) with TEMP triggers, counted from the deliveries at every open
    // (`deliveries::count_open`; since 2026-12-05 the writer counts in memory instead, `open.rs`): it cannot drift, and a crash loses nothing.
    r#"
    DROP TRIGGER deliveries_count_insert;
    DROP TRIGGER deliveries_count_update;
    DROP TABLE inbox_counts;
    "#,
    // 19: two indexes no hot statement reads, written on every delivered
    // message. `events_subject` took a quarter of a note's WAL pages (its
    // keys land mid-tree, so its 1 KiB leaves split often); only `trace`
    // looked events up by subject, and it now reads the retained log
    // through (a bounded scan, on a connection aside from the writer, off
    // the async thread).
    // `deliveries_to` (a peer's deliveries of any state) had no reader
    // left once migration 18 counted open deliveries from their own
    // indexes.
    r#"
    DROP INDEX events_subject;
    DROP INDEX deliveries_to;
    "#,
    // 20: a lease reads only what it can hand out. `deliveries_unpushed`
    // was one range per peer, in seq order, with its leased deliveries
    // among its pending ones: every lease read each delivery still leased
    // out (a table row each) to find the pending ones, so a consumer that
    // confirms in batches, or late, paid for every unconfirmed delivery on
    // every lease (2,000 unconfirmed: 0.4 ms per lease). Keyed now by
    // state, then a leased one's lease end (0 for a pending one), then
    // seq: the pending ones are one range in seq order, and the leases
    // that ran out one range of their own (`deliveries::lease_key!`).
    r#"
    DROP INDEX deliveries_unpushed;
    CREATE INDEX deliveries_unpushed ON deliveries
      (to_peer, state, (CASE state WHEN 'leased' THEN lease_until_ms ELSE 0 END), seq)
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NULL;
    "#,
    // 21: the last index on `events`, written on every event that names a
    // related object (an ask's delivery events, a job's notes): two of the
    // fifteen 1 KiB WAL pages an ask's round trip wrote. Only `trace` read
    // it, and `trace` already reads the retained log through (migration
    // 19), on the connection aside, off the async thread.
    r#"
    DROP INDEX events_related;
    "#,
    // 22: an ask's moves stop moving it in `asks_open`. Keyed by state
    // first, its entry left one region of the index for another on every
    // move (queued, then delivered, then closed: two leaves written per
    // move), and it kept every finished ask. Now it holds only the asks
    // not yet closed, by expiry: a move between open states keeps the
    // entry where it was, a close deletes it. Its readers name the same
    // four states in the same words (`asks::open!`; an answered ask is
    // not closed yet, and what must exclude it says `state != 'answered'`
    // besides), so SQLite uses it. The condition is equalities, not `IN`:
    // SQLite checks it on every write of an ask, and an `IN` of more than
    // two values builds a temporary table each time (it made an ask round
    // trip 8% dearer).
    r#"
    DROP INDEX asks_open;
    CREATE INDEX asks_open ON asks (expires_ms)
      WHERE (state = 'queued' OR state = 'delivered' OR state = 'picked_up' OR state = 'answered');
    "#,
    // 23: the same for `jobs_open_deadline`, whose `IN` of three states
    // SQLite evaluated (a temporary table) on every write of a job with a
    // deadline; `jobs::LATE` names the states in the same words.
    r#"
    DROP INDEX jobs_open_deadline;
    CREATE INDEX jobs_open_deadline ON jobs (deadline_ms)
      WHERE deadline_ms IS NOT NULL
        AND (state = 'queued' OR state = 'dispatched' OR state = 'running');
    "#,
    // 24: `deliveries_ask` holds an ask's own copies (the ask and its
    // reminders), not the reply to its asker: nothing looks a reply up by
    // its ask, and its entry was a WAL page of every answer. Its readers
    // name the kinds in the same words (`deliveries::copies!`).
    r#"
    DROP INDEX deliveries_ask;
    CREATE INDEX deliveries_ask ON deliveries (ask_id) WHERE (kind = 'ask' OR kind = 'reminder');
    "#,
    // 25: the reminder pass walks asks by rowid from where it stopped
    // (`Store::remind_due`) instead of reading `asks_to_remind`, whose
    // entry was written when an ask was made and again when it was picked
    // up or answered: two 1 KiB WAL pages of every ask.
    r#"
    DROP INDEX asks_to_remind;
    "#,
    // 26: a delivery's id carries its row's key (`DeliveryId::with_seq`),
    // so the table loses its UNIQUE index on `id`: a 1 KiB WAL page and a
    // half of every delivery (an index leaf fills and is rebalanced with
    // its neighbours, where a table's appends just add a page). SQLite
    // keeps such an index for as long as the table, so the table is made
    // again. The rows made before keep their ids, marked `legacy` and
    // found through `deliveries_legacy`; a new row has `legacy` NULL and
    // no entry there (`deliveries::at_id!`).
    r#"
    CREATE TABLE deliveries_new (
        seq           INTEGER PRIMARY KEY,
        id            TEXT NOT NULL,
        to_peer       TEXT NOT NULL,
        from_peer     TEXT,
        from_name     TEXT,
        from_circle   TEXT,
        kind          TEXT NOT NULL,
        ask_id        TEXT,
        text          TEXT NOT NULL,
        state         TEXT NOT NULL,
        lease_until_ms INTEGER,
        attempts      INTEGER NOT NULL DEFAULT 0,
        created_ms    INTEGER NOT NULL,
        delivered_ms  INTEGER,
        job_id        TEXT,
        pushed_at_ms  INTEGER,
        not_before_ms INTEGER,
        legacy        INTEGER
    );
    INSERT INTO deliveries_new (seq, id, to_peer, from_peer, from_name, from_circle, kind,
        ask_id, text, state, lease_until_ms, attempts, created_ms, delivered_ms, job_id,
        pushed_at_ms, not_before_ms, legacy)
      SELECT seq, id, to_peer, from_peer, from_name, from_circle, kind,
        ask_id, text, state, lease_until_ms, attempts, created_ms, delivered_ms, job_id,
        pushed_at_ms, not_before_ms, 1
      FROM deliveries;
    DROP TABLE deliveries;
    ALTER TABLE deliveries_new RENAME TO deliveries;
    CREATE UNIQUE INDEX deliveries_legacy ON deliveries (id) WHERE legacy = 1;
    CREATE INDEX deliveries_pushed ON deliveries (to_peer, seq)
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NOT NULL;
    CREATE INDEX deliveries_armed ON deliveries (to_peer, seq, not_before_ms) WHERE state = 'armed';
    CREATE INDEX deliveries_unpushed ON deliveries
      (to_peer, state, (CASE state WHEN 'leased' THEN lease_until_ms ELSE 0 END), seq)
      WHERE state IN ('pending', 'leased') AND pushed_at_ms IS NULL;
    CREATE INDEX deliveries_ask ON deliveries (ask_id) WHERE (kind = 'ask' OR kind = 'reminder');
    "#,
    // 27: an ask's row keeps the keys of its copies (the ask itself, its
    // reminder), and `deliveries_ask` goes: its entry was a 1 KiB WAL page
    // and a half of every ask, for look-ups two keys do
    // (`deliveries::copies!`).
    r#"
    ALTER TABLE asks ADD COLUMN copy_seq INTEGER;
    ALTER TABLE asks ADD COLUMN reminder_seq INTEGER;
    UPDATE asks SET
      copy_seq = (SELECT MAX(seq) FROM deliveries INDEXED BY deliveries_ask
                   WHERE ask_id = asks.id AND kind = 'ask'),
      reminder_seq = (SELECT MAX(seq) FROM deliveries INDEXED BY deliveries_ask
                   WHERE ask_id = asks.id AND kind = 'reminder');
    DROP INDEX deliveries_ask;
    "#,
    // 28: an ask's id carries its row's key (`AskId::with_seq`), so the
    // table loses the index its `id TEXT PRIMARY KEY` kept: a 1 KiB WAL
    // page and a half of every ask. As for deliveries (migration 26), the
    // table is made again, the key is named (`seq`, the rowid the rows had,
    // so the reminder walk's order stays), and the rows from before keep
    // their ids, marked `legacy` and found through `asks_legacy`
    // (`asks::at_ask!`).
    r#"
    CREATE TABLE asks_new (
        seq           INTEGER PRIMARY KEY,
        id            TEXT NOT NULL,
        parent_id     TEXT REFERENCES ask_groups (id),
        from_peer     TEXT NOT NULL,
        from_name     TEXT NOT NULL,
        to_peer       TEXT NOT NULL,
        to_name       TEXT NOT NULL,
        circle        TEXT NOT NULL,
        text          TEXT NOT NULL,
        state         TEXT NOT NULL,
        answer        TEXT,
        ack_message   TEXT,
        created_ms    INTEGER NOT NULL,
        updated_ms    INTEGER NOT NULL,
        expires_ms    INTEGER NOT NULL,
        reminded_ms   INTEGER,
        closed_ms     INTEGER,
        reply_to      TEXT,
        job_id        TEXT,
        copy_seq      INTEGER,
        reminder_seq  INTEGER,
        legacy        INTEGER
    );
    INSERT INTO asks_new (seq, id, parent_id, from_peer, from_name, to_peer, to_name, circle,
        text, state, answer, ack_message, created_ms, updated_ms, expires_ms, reminded_ms,
        closed_ms, reply_to, job_id, copy_seq, reminder_seq, legacy)
      SELECT rowid, id, parent_id, from_peer, from_name, to_peer, to_name, circle,
        text, state, answer, ack_message, created_ms, updated_ms, expires_ms, reminded_ms,
        closed_ms, reply_to, job_id, copy_seq, reminder_seq, 1
      FROM asks;
    DROP TABLE asks;
    ALTER TABLE asks_new RENAME TO asks;
    CREATE UNIQUE INDEX asks_legacy ON asks (id) WHERE legacy = 1;
    CREATE INDEX asks_from ON asks (from_peer, created_ms);
    CREATE INDEX asks_to ON asks (to_peer, created_ms);
    CREATE INDEX asks_parent ON asks (parent_id) WHERE parent_id IS NOT NULL;
    CREATE INDEX asks_open ON asks (expires_ms)
      WHERE (state = 'queued' OR state = 'delivered' OR state = 'picked_up' OR state = 'answered');
    "#,
];

/// The schema version this binary writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Bring the database up to [`SCHEMA_VERSION`], one transaction per step.
pub fn migrate(conn: &mut Connection) -> Result<()> {
    migrate_to(conn, SCHEMA_VERSION)
}

/// Bring the database up to `version` (a test builds an older file).
pub(crate) fn migrate_to(conn: &mut Connection, version: i64) -> Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if current > SCHEMA_VERSION {
        return Err(Error::internal(format!(
            "the database is at schema {current}, newer than this binary's {SCHEMA_VERSION}: upgrade repowire"
        )));
    }
    for (i, sql) in MIGRATIONS
        .iter()
        .enumerate()
        .take(version as usize)
        .skip(current as usize)
    {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(sql)
            .map_err(|e| Error::internal(format!("migration {}: {e}", i + 1)))?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrates_from_empty_and_is_idempotent() {
        let mut c = Connection::open_in_memory().unwrap();
        migrate(&mut c).unwrap();
        migrate(&mut c).unwrap();
        let v: i64 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(migrate(&mut c).unwrap_err().message.contains("newer"));
    }
}
