//! The ledger file: opening it, its schema and format version, appending under one write lock,
//! and reading entries back in order. The only code that knows SQLite.

use std::path::{Path, PathBuf};
use std::time::Duration;

use caltrail_events::{Entry, EntryDecoder, Event, EventType, Name, Timestamp};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use crate::error::{AppendError, Earlier, StoreError};
use crate::hash::EntryHash;
use crate::pipeline::{self, CHUNK_ROWS, CHUNKS_IN_FLIGHT};
use caltrail_tlog::merkle::{self, Hash};

/// `PRAGMA application_id` of a ledger: "CALT" in ASCII.
pub const APPLICATION_ID: i64 = 0x4341_4C54;
/// `PRAGMA user_version`: the ledger format this code writes and reads.
pub const FORMAT_VERSION: i64 = 1;

/// A second writer waits this long for the first to commit before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_mins(2);

/// The schema of format 1. `verify` compares the triggers in the file with these.
pub(crate) const SCHEMA: &str = r"
CREATE TABLE entries (
    seq         INTEGER PRIMARY KEY CHECK (seq >= 1),
    id          TEXT    NOT NULL UNIQUE,
    type        TEXT    NOT NULL,
    at          INTEGER NOT NULL,
    recorded_at INTEGER NOT NULL,
    keypack     TEXT    UNIQUE,
    body        BLOB    NOT NULL,
    hash        BLOB    NOT NULL CHECK (length(hash) = 32)
) STRICT;
CREATE INDEX entries_at ON entries (at);
";

/// The retractions, by `seq`: a partial index of the few entries a replay must read before it
/// folds (`Ledger::scan_named`), so it need not read every page of the table to find them.
/// It is part of a new ledger's schema; a ledger made before it gets it at its next append that
/// records an entry (one of duplicates only is rolled back, leaving the file as it was).
/// Nothing trusts it blindly: a replay refuses a retraction it meets that the index did not
/// hold, and `verify` counts its entries against the chain's retractions.
pub(crate) const RETRACTIONS_INDEX: &str = "CREATE INDEX IF NOT EXISTS entries_retractions ON entries (seq) WHERE type = 'event.retracted'";

/// The `type` column of a retraction, as `RETRACTIONS_INDEX` spells it (a test ties the two
/// to `EventType::EventRetracted`).
pub(crate) const RETRACTION: &str = "event.retracted";

/// The guard rail that checks every insert against the whole table. An append lifts it for its
/// own transaction (`Appender::insert_guard`).
const INSERT_GUARD: &str = "entries_append_only";

/// The append-only guard rails. They stop mistakes, not an attacker: the chain is the evidence.
pub(crate) const TRIGGERS: &[(&str, &str)] = &[
    (
        "entries_no_update",
        "CREATE TRIGGER entries_no_update BEFORE UPDATE ON entries BEGIN SELECT RAISE(ABORT, 'caltrail ledger entries are append-only'); END",
    ),
    (
        "entries_no_delete",
        "CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries BEGIN SELECT RAISE(ABORT, 'caltrail ledger entries are append-only'); END",
    ),
    // INSERT OR REPLACE deletes the row it conflicts with without firing DELETE triggers, so an
    // insert is allowed only as the next entry and only with an unused id and key pack name.
    (
        INSERT_GUARD,
        "CREATE TRIGGER entries_append_only BEFORE INSERT ON entries WHEN NEW.seq IS NOT (SELECT coalesce(max(seq), 0) + 1 FROM entries) OR EXISTS (SELECT 1 FROM entries WHERE id = NEW.id OR keypack = NEW.keypack) BEGIN SELECT RAISE(ABORT, 'caltrail ledger entries are append-only'); END",
    ),
];

/// The last entry of the chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Invariant: the number of entries, and the `seq` of the last one.
    pub n_events: u64,
    /// The hash of the last entry (the genesis hash for an empty ledger).
    pub hash: EntryHash,
    /// When the last entry was recorded.
    pub recorded_at: Option<Timestamp>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendReport {
    /// Events written.
    pub appended: u64,
    /// Events skipped: already recorded with the same content.
    pub duplicates: u64,
    /// The ledger's head after the append.
    pub head: Head,
}

/// One stored entry, decoded, with the hash it is stored with.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    /// The entry's stored hash.
    pub hash: EntryHash,
    /// The entry, decoded.
    pub entry: Entry,
}

/// An open ledger file.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
}

impl Ledger {
    /// Opens a ledger, creating the file when it does not exist.
    pub fn open_or_create(path: &Path) -> Result<Ledger, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let not_writable = |error: StoreError| match error {
            StoreError::Sqlite { error, .. }
                if matches!(
                    error.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
                ) =>
            {
                StoreError::NotWritable { path: path.to_owned(), detail: error.to_string() }
            }
            other => other,
        };
        retry_while_busy(|| {
            let mut ledger = Ledger::connect(path, flags).map_err(not_writable)?;
            ledger.initialise_if_new().map_err(not_writable)?;
            Ok(ledger)
        })
    }

    /// Opens an existing ledger to read it; a missing file is an error, never a new ledger.
    pub fn open_existing(path: &Path) -> Result<Ledger, StoreError> {
        if !path.exists() {
            return Err(StoreError::NoLedger { path: path.to_owned() });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let ledger = if is_writable(path) {
            Ledger::connect(path, flags)?
        } else {
            Ledger::connect_read_only(path)?
        };
        if ledger.head_is_missing()? {
            return Err(ledger.not_a_ledger("an empty file"));
        }
        Ok(ledger)
    }

    /// Opens the file and checks that it is a ledger this code reads before changing anything:
    /// a foreign database must be left exactly as it was.
    fn connect(path: &Path, flags: OpenFlags) -> Result<Ledger, StoreError> {
        if path.is_dir() {
            return Err(StoreError::NotALedger {
                path: path.to_owned(),
                reason: "it is a folder".to_owned(),
            });
        }
        let conn = Connection::open_with_flags(path, flags).map_err(|e| sqlite(path, e))?;
        let ledger = Ledger { conn, path: path.to_owned() };
        ledger.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| ledger.err(e))?;
        ledger.check_format()?;
        if !flags.contains(OpenFlags::SQLITE_OPEN_READ_ONLY) {
            // WAL lets readers work during an append; FULL makes a commit survive power loss.
            ledger
                .conn
                .pragma_update(None, "journal_mode", "WAL")
                .map_err(|e| ledger.classify(e))?;
        }
        ledger.conn.pragma_update(None, "synchronous", "FULL").map_err(|e| ledger.err(e))?;
        // An insert of many rows keeps a statement journal (a used id refuses the whole
        // statement); in memory it costs no file writes.
        ledger.conn.pragma_update(None, "temp_store", "MEMORY").map_err(|e| ledger.err(e))?;
        Ok(ledger)
    }

    /// A ledger on read-only media: SQLite cannot create the WAL index beside it, so the file is
    /// opened as immutable, which it is while the media stays read-only.
    fn connect_read_only(path: &Path) -> Result<Ledger, StoreError> {
        match Ledger::connect(path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
            Err(StoreError::Sqlite { error, .. })
                if error.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) =>
            {
                let uri = format!("file:{}?immutable=1", path.display());
                let conn = Connection::open_with_flags(
                    uri,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
                )
                .map_err(|e| sqlite(path, e))?;
                let ledger = Ledger { conn, path: path.to_owned() };
                ledger.check_format()?;
                Ok(ledger)
            }
            other => other,
        }
    }

    fn initialise_if_new(&mut self) -> Result<(), StoreError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite(&path, e))?;
        // Checked again under the write lock: another process may have created it meanwhile.
        let objects: i64 = tx
            .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(|e| sqlite(&path, e))?;
        if objects == 0 {
            tx.execute_batch(SCHEMA).map_err(|e| sqlite(&path, e))?;
            tx.execute_batch(RETRACTIONS_INDEX).map_err(|e| sqlite(&path, e))?;
            for (_, sql) in TRIGGERS {
                tx.execute_batch(sql).map_err(|e| sqlite(&path, e))?;
            }
            tx.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(|e| sqlite(&path, e))?;
            tx.pragma_update(None, "user_version", FORMAT_VERSION).map_err(|e| sqlite(&path, e))?;
        }
        tx.commit().map_err(|e| sqlite(&path, e))
    }

    /// Accepts a ledger of a format this code reads, or a file with nothing in it yet.
    fn check_format(&self) -> Result<(), StoreError> {
        // Reading the header is the first access to the file: a file that is not SQLite fails here.
        let read_mark = || -> Result<i64, StoreError> {
            self.conn
                .pragma_query_value(None, "application_id", |row| row.get(0))
                .map_err(|e| self.classify(e))
        };
        let mut application_id = read_mark()?;
        if application_id == 0 {
            let objects: i64 = self
                .conn
                .query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0))
                .map_err(|e| self.classify(e))?;
            if objects == 0 {
                return Ok(());
            }
            // Another process may have created the ledger between the two reads: its schema
            // and its mark are committed together, so the mark is there now if it is a ledger.
            application_id = read_mark()?;
            if application_id == 0 {
                return Err(self.not_a_ledger("a SQLite database without the caltrail mark"));
            }
        }
        if application_id != APPLICATION_ID {
            return Err(self.not_a_ledger("a SQLite database of another application"));
        }
        let version: i64 = self
            .conn
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(|e| self.err(e))?;
        if version > FORMAT_VERSION {
            return Err(StoreError::NewerFormat {
                path: self.path.clone(),
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < 1 {
            return Err(self.not_a_ledger(&format!("format version {version}")));
        }
        Ok(())
    }

    fn head_is_missing(&self) -> Result<bool, StoreError> {
        let objects: i64 = self
            .conn
            .query_row("SELECT count(*) FROM sqlite_schema WHERE name = 'entries'", [], |row| {
                row.get(0)
            })
            .map_err(|e| self.classify(e))?;
        Ok(objects == 0)
    }

    /// The ledger file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }

    pub(crate) fn connection_mut(&mut self) -> &mut Connection {
        &mut self.conn
    }

    pub(crate) fn err(&self, source: rusqlite::Error) -> StoreError {
        sqlite(&self.path, source)
    }

    fn not_a_ledger(&self, reason: &str) -> StoreError {
        StoreError::NotALedger { path: self.path.clone(), reason: reason.to_owned() }
    }

    /// SQLite's "not a database" and "malformed" codes mean the file is not a usable ledger.
    pub(crate) fn classify(&self, source: rusqlite::Error) -> StoreError {
        classify(&self.path, source)
    }

    /// The last entry, or the genesis hash and 0 events for an empty ledger.
    pub fn head(&self) -> Result<Head, StoreError> {
        head_of(&self.conn).map_err(|e| self.classify(e))
    }

    /// Appends a batch, all or nothing, under one write lock. Events whose `id` is already in the
    /// ledger (or earlier in the batch) with the same content are skipped as duplicates.
    /// `recorded_at` is raised to the last entry's when the clock went back, so that it never
    /// decreases along the chain.
    pub fn append(
        &mut self,
        events: &[Event],
        recorded_at: Timestamp,
    ) -> Result<AppendReport, AppendError> {
        let mut appender = self.begin_append(recorded_at)?;
        for event in events {
            appender.push(event.clone())?;
        }
        appender.commit()
    }

    /// Starts an append: takes the write lock and reads the head. Events are then pushed one by
    /// one, as they are read, and `Appender::commit` makes them part of the ledger; an appender
    /// dropped without it leaves the ledger as it was.
    pub fn begin_append(&mut self, recorded_at: Timestamp) -> Result<Appender<'_>, AppendError> {
        let path = self.path.clone();
        let conn = &self.conn;
        retry_while_busy(|| {
            // Only to wait for the lock: the transaction is begun for real below.
            conn.execute_batch("BEGIN IMMEDIATE; ROLLBACK").map_err(|e| sqlite(&path, e))
        })?;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| sqlite(&path, e))?;
        // A ledger made before the index gets it here, in the append's transaction.
        tx.execute_batch(RETRACTIONS_INDEX).map_err(|e| sqlite(&path, e))?;
        let head = head_of(&tx).map_err(|e| sqlite(&path, e))?;
        let recorded_at = match head.recorded_at {
            Some(last) if last > recorded_at => last,
            _ => recorded_at,
        };
        Ok(Appender {
            path,
            tx,
            head,
            recorded_at,
            appended: 0,
            duplicates: 0,
            n_pushed: 0,
            first_seq: head.n_events + 1,
            tiles: None,
            inserted_index: Vec::new(),
            group: Vec::with_capacity(GROUP_ROWS),
            retracted: None,
            insert_guard: InsertGuard::InPlace,
        })
    }

    /// The number of entries recorded at or before `t`: `recorded_at` never decreases along
    /// the chain, so they are its first entries (`--known-at TIME`).
    pub fn n_known_at(&self, t: Timestamp) -> Result<u64, StoreError> {
        let n: Option<i64> = self
            .conn
            .query_row(
                "SELECT max(seq) FROM entries WHERE recorded_at <= ?1",
                [t.micros()],
                |row| row.get(0),
            )
            .map_err(|e| self.classify(e))?;
        Ok(n.map_or(0, |n| n as u64))
    }

    /// The `at` column (microseconds) of the first `n` entries, indexed by `seq - 1`: what a
    /// replay needs to fold in valid-time order. It reads the `entries_at` index, which holds
    /// `at` and `seq` and is a fraction of the table's size, and falls back to the table where
    /// the index is missing. The `at` column is checked against the bytes by `verify`, and
    /// again by the replay as it folds, so a changed column or index is found there.
    pub fn times(&self, n: u64) -> Result<Vec<i64>, StoreError> {
        self.times_after(0, n)
    }

    /// The `at` column of entries `after + 1 ..= n`, indexed by `seq - after - 1`: the entries
    /// a replay folds on top of a snapshot of the first `after`.
    pub fn times_after(&self, after: u64, n: u64) -> Result<Vec<i64>, StoreError> {
        let len = usize::try_from(n.saturating_sub(after)).map_err(|_| StoreError::Corrupt {
            path: self.path.clone(),
            seq: n,
            reason: "more entries than this machine can address".into(),
        })?;
        let from = i64::try_from(after).unwrap_or(i64::MAX);
        let until = i64::try_from(n).unwrap_or(i64::MAX);
        let mut times = Times { from, ats: vec![i64::MIN; len], filled: vec![false; len] };
        // The index holds every entry's `at` in a fraction of the table's pages, but in `at`
        // order, so a scan of it reads all of them: a short tail (the entries after a
        // snapshot) is read from the table by `seq` instead.
        let by_index = !is_tail(len as u64, n) && self.conn.prepare(TIMES_BY_INDEX).is_ok();
        if !(by_index && self.times_by_index_in_halves(&mut times, until)?) {
            let source = if by_index { TimesFrom::Index(None) } else { TimesFrom::Table };
            let slots = (0, &mut times.ats[..], &mut times.filled[..]);
            let strays = read_times(&self.conn, &self.path, source, (until, from), slots)?;
            times.fill(strays);
        }
        times.into_complete(&self.path)
    }

    /// Reads the `at` of the entries from the `entries_at` index in two halves at once, split
    /// at the `at` of the middle entry: those before it on this connection, the others on a
    /// second one, on a thread of its own. Nearly all of an estate's entries are in valid-time
    /// order, so each half fills its own half of `times`; an entry whose `at` puts it in the
    /// other half (a late record) is handed over after. False, with nothing read, when there
    /// is no second connection to be had or no middle entry.
    fn times_by_index_in_halves(&self, times: &mut Times, until: i64) -> Result<bool, StoreError> {
        let half = times.ats.len() / 2;
        let middle_seq = times.from.saturating_add(half as i64 + 1);
        let pivot: Option<i64> = self
            .conn
            .query_row("SELECT at FROM entries WHERE seq = ?1", [middle_seq], |row| row.get(0))
            .optional()
            .map_err(|e| self.classify(e))?;
        let (Some(pivot), Some(second)) = (pivot, self.reading_connection(times.from, until)?)
        else {
            return Ok(false);
        };
        let path = self.path.as_path();
        let from = times.from;
        let (early_ats, late_ats) = times.ats.split_at_mut(half);
        let (early_filled, late_filled) = times.filled.split_at_mut(half);
        let (early_strays, late_strays) = std::thread::scope(|scope| {
            let late = std::thread::Builder::new()
                .name("caltrail-times".to_owned())
                .spawn_scoped(scope, move || {
                    let source = TimesFrom::Index(Some((">=", pivot)));
                    read_times(&second, path, source, (until, from), (half, late_ats, late_filled))
                })
                .expect("invariant: the system can start a thread");
            let source = TimesFrom::Index(Some(("<", pivot)));
            let early =
                read_times(&self.conn, path, source, (until, from), (0, early_ats, early_filled));
            let late = late.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            Ok::<_, StoreError>((early?, late?))
        })?;
        times.fill(early_strays);
        times.fill(late_strays);
        Ok(true)
    }

    /// Calls `visit` with every entry after `after_seq` up to `until_seq` whose type is in
    /// `types`, decoded, in chain order: the entries a replay must know before it folds, since
    /// others name them whatever their `at`.
    ///
    /// Retractions and the entries that create a pack are found through indexes (see
    /// `named_by_index`); other types, a short tail and a ledger without the retractions index
    /// by a scan of the table that reads the columns before the body, and the body only of the
    /// entries it returns. An index can be damaged: the caller checks that every entry of these
    /// types it folds was among those given here.
    pub fn scan_named(
        &self,
        after_seq: u64,
        until_seq: u64,
        types: &[EventType],
        mut visit: impl FnMut(StoredEntry),
    ) -> Result<(), StoreError> {
        if let Some(seqs) = self.named_by_index(after_seq, until_seq, types)? {
            for stored in self.read_entries(&seqs)? {
                if types.contains(&stored.entry.event.event_type()) {
                    visit(stored);
                }
            }
            return Ok(());
        }
        let until = i64::try_from(until_seq).unwrap_or(i64::MAX);
        // An OR of comparisons, not `IN (...)`: SQLite answers an IN list through an index it
        // builds, which costs a lookup per row of a scan that reads every row.
        let wanted: Vec<String> =
            types.iter().map(|t| format!("type = '{}'", t.as_str())).collect();
        let wanted = if wanted.is_empty() { "0".to_owned() } else { wanted.join(" OR ") };
        let sql = format!(
            "SELECT seq, body, hash FROM entries NOT INDEXED WHERE seq <= ?1 AND seq > ?2 AND ({wanted}) ORDER BY seq"
        );
        let mut statement = self.conn.prepare(&sql).map_err(|e| self.classify(e))?;
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let mut rows = statement.query([until, after]).map_err(|e| self.classify(e))?;
        while let Some(row) = rows.next().map_err(|e| self.classify(e))? {
            let seq: i64 = row.get(0).map_err(|e| self.err(e))?;
            let body = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(|e| self.err(e))?;
            let hash = row.get_ref(2).and_then(|v| Ok(v.as_blob()?)).map_err(|e| self.err(e))?;
            visit(self.decode_one(seq as u64, body, hash)?);
        }
        Ok(())
    }

    /// The `seq`s of the entries after `after_seq` up to `until_seq` that may be of `types`,
    /// in order, read from indexes instead of the table: retractions from
    /// `entries_retractions`, the entries that create a pack (`keypack.installed`,
    /// `cals.migrated`) from the `keypack` column's unique index, the column `verify` checks
    /// against the bytes. `None` when a type is neither, when the ledger has no retractions
    /// index, or for a short tail, which the table gives by `seq` as fast.
    fn named_by_index(
        &self,
        after_seq: u64,
        until_seq: u64,
        types: &[EventType],
    ) -> Result<Option<Vec<u64>>, StoreError> {
        let creates_pack =
            |t: &EventType| matches!(t, EventType::KeypackInstalled | EventType::CalsMigrated);
        let indexed = |t: &EventType| *t == EventType::EventRetracted || creates_pack(t);
        if !types.iter().all(indexed) || is_tail(until_seq.saturating_sub(after_seq), until_seq) {
            return Ok(None);
        }
        let mut queries = Vec::new();
        if types.contains(&EventType::EventRetracted) {
            queries.push(format!(
                "SELECT seq FROM entries INDEXED BY entries_retractions WHERE type = '{RETRACTION}'"
            ));
        }
        if types.iter().any(creates_pack) {
            queries.push("SELECT seq FROM entries WHERE keypack IS NOT NULL".to_owned());
        }
        let mut seqs = Vec::new();
        for sql in queries {
            // A ledger made before the index: the scan finds them.
            let Ok(mut statement) = self.conn.prepare(&sql) else { return Ok(None) };
            let mut rows = statement.query([]).map_err(|e| self.classify(e))?;
            while let Some(row) = rows.next().map_err(|e| self.classify(e))? {
                let seq: i64 = row.get(0).map_err(|e| self.err(e))?;
                if let Ok(seq) = u64::try_from(seq)
                    && seq > after_seq
                    && seq <= until_seq
                {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(Some(seqs))
    }

    /// The entries with these `seq`s, decoded, in the order asked.
    pub fn read_entries(&self, seqs: &[u64]) -> Result<Vec<StoredEntry>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT body, hash FROM entries WHERE seq = ?1")
            .map_err(|e| self.classify(e))?;
        let mut entries = Vec::with_capacity(seqs.len());
        for &seq in seqs {
            let (body, hash): (Vec<u8>, Vec<u8>) = statement
                .query_row([seq as i64], |row| Ok((row.get(0)?, row.get(1)?)))
                .map_err(|e| self.classify(e))?;
            entries.push(self.decode_one(seq, &body, &hash)?);
        }
        Ok(entries)
    }

    fn decode_one(&self, seq: u64, body: &[u8], hash: &[u8]) -> Result<StoredEntry, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { path: self.path.clone(), seq, reason };
        let entry = Entry::decode(body).map_err(|e| corrupt(e.to_string()))?;
        if entry.seq != seq {
            return Err(corrupt(format!("its bytes say it is entry {}", entry.seq)));
        }
        let hash =
            EntryHash::from_slice(hash).ok_or_else(|| corrupt("hash is not 32 bytes".into()))?;
        Ok(StoredEntry { hash, entry })
    }

    /// Calls `visit` with every entry in chain order, decoded, up to `until_seq` when given; the
    /// entry is lent, and freed on another thread.
    /// An entry that does not decode stops the walk with `StoreError::Corrupt`; `verify` says more.
    ///
    /// Decoding is most of the work of a replay, so it runs on worker threads, and SQLite is
    /// read on a thread of its own (on a second connection to the file: a connection is used by
    /// one thread), while this thread calls `visit` in chain order.
    pub fn for_each_entry(
        &self,
        until_seq: Option<u64>,
        visit: impl FnMut(&StoredEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.for_each_entry_after(0, until_seq, visit)
    }

    /// [`Ledger::for_each_entry`] from entry `after_seq + 1` on.
    pub fn for_each_entry_after(
        &self,
        after_seq: u64,
        until_seq: Option<u64>,
        mut visit: impl FnMut(&StoredEntry) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.for_each_chunk_after(after_seq, until_seq, |entries| {
            entries.iter().try_for_each(&mut visit)
        })
    }

    /// [`Ledger::for_each_entry_after`], the entries handed over as they were decoded, a run
    /// of consecutive ones at a time (in chain order, none twice): a caller can look at the
    /// entries ahead of the one it works on.
    pub fn for_each_chunk_after(
        &self,
        after_seq: u64,
        until_seq: Option<u64>,
        visit: impl FnMut(&[StoredEntry]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let until = match until_seq {
            Some(n) => i64::try_from(n).unwrap_or(i64::MAX),
            // What this connection holds now: a second one may see entries appended since.
            None => i64::try_from(self.head()?.n_events).unwrap_or(i64::MAX),
        };
        let after = i64::try_from(after_seq).unwrap_or(i64::MAX);
        let reader = self.reading_connection(after, until)?;
        self.visit_entries(after, until, reader, visit)
    }

    /// Reads entries `after + 1 ..= until` on `reader` on a thread of its own, or on this
    /// connection and thread without one; decodes them on the workers; visits them in order.
    fn visit_entries(
        &self,
        after: i64,
        until: i64,
        reader: Option<Connection>,
        mut visit: impl FnMut(&[StoredEntry]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let path = self.path.as_path();
        let consume = |decoded: &mut Result<Vec<StoredEntry>, StoreError>| match decoded {
            Ok(entries) => visit(entries),
            Err(_) => std::mem::replace(decoded, Ok(Vec::new())).map(drop),
        };
        let decode = |chunk: RawChunk| chunk.decode(path);
        let Some(reader) = reader else {
            let mut statement = self.conn.prepare(ENTRIES_BETWEEN).map_err(|e| self.classify(e))?;
            let mut rows = statement.query([until, after]).map_err(|e| self.classify(e))?;
            let mut room = 0;
            return pipeline::in_order(|| next_chunk(&mut rows, path, &mut room), decode, consume);
        };
        std::thread::scope(|scope| {
            let (chunks_tx, chunks_rx) = std::sync::mpsc::sync_channel(CHUNKS_IN_FLIGHT);
            std::thread::Builder::new()
                .name("caltrail-reader".to_owned())
                .spawn_scoped(scope, move || {
                    let read = || -> Result<(), StoreError> {
                        let mut statement =
                            reader.prepare(ENTRIES_BETWEEN).map_err(|e| classify(path, e))?;
                        let mut rows =
                            statement.query([until, after]).map_err(|e| classify(path, e))?;
                        let mut room = 0;
                        while let Some(chunk) = next_chunk(&mut rows, path, &mut room)? {
                            if chunks_tx.send(Ok(chunk)).is_err() {
                                // The walk stopped.
                                break;
                            }
                        }
                        Ok(())
                    };
                    if let Err(error) = read() {
                        // The walk may have stopped already; then nobody needs the error.
                        let _ = chunks_tx.send(Err(error));
                    }
                })
                .expect("invariant: the system can start a thread");
            // The reader's channel closes when it is done.
            let receive = || chunks_rx.recv().map_or(Ok(None), |chunk| chunk.map(Some));
            pipeline::in_order(receive, decode, consume)
        })
    }

    /// A second, read-only connection to this file for reading entries `after + 1 ..= until`
    /// on another thread, once it holds entry `until` with the hash this one holds (the path
    /// could name another file by now). `None` when there is no such connection to be had: the
    /// entries are then read on the caller's thread.
    fn reading_connection(&self, after: i64, until: i64) -> Result<Option<Connection>, StoreError> {
        if until <= after {
            return Ok(None);
        }
        let hash_at = |conn: &Connection| {
            conn.query_row("SELECT hash FROM entries WHERE seq = ?1", [until], |row| {
                row.get::<_, Vec<u8>>(0)
            })
            .optional()
        };
        let Some(ours) = hash_at(&self.conn).map_err(|e| self.classify(e))? else {
            return Ok(None);
        };
        let Some(conn) = self.second_connection() else { return Ok(None) };
        let same = hash_at(&conn).ok().flatten().is_some_and(|theirs| theirs == ours);
        Ok(same.then_some(conn))
    }

    /// Another read-only connection to the file, when one can be had: for work beside this
    /// connection's on another thread (a replay's reading, `verify`'s SQLite check).
    pub(crate) fn second_connection(&self) -> Option<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).ok()?;
        conn.busy_timeout(BUSY_TIMEOUT).ok()?;
        // The header read fails here, not later, on a file the main connection sees otherwise.
        conn.pragma_query_value(None, "application_id", |row| row.get::<_, i64>(0)).ok()?;
        Some(conn)
    }
}

/// The stored rows of entries `after + 1 ..= until`, in chain order.
const ENTRIES_BETWEEN: &str =
    "SELECT seq, body, hash FROM entries WHERE seq <= ?1 AND seq > ?2 ORDER BY seq";

/// The next `CHUNK_ROWS` rows of `rows` at most; `None` when there are no more.
///
/// `room` is the room for their bytes, kept from one chunk to the next: a chunk's bytes grown
/// from nothing were copied on every doubling, a fifth of all the instructions of reading.
fn next_chunk(
    rows: &mut rusqlite::Rows<'_>,
    path: &Path,
    room: &mut usize,
) -> Result<Option<RawChunk>, StoreError> {
    let mut chunk = RawChunk {
        seqs: Vec::with_capacity(CHUNK_ROWS),
        ends: Vec::with_capacity(CHUNK_ROWS),
        bytes: Vec::with_capacity(*room),
        hashes: Vec::with_capacity(CHUNK_ROWS),
    };
    while chunk.seqs.len() < CHUNK_ROWS {
        let Some(row) = rows.next().map_err(|e| classify(path, e))? else { break };
        chunk.push(row).map_err(|e| sqlite(path, e))?;
    }
    // Room for a chunk of somewhat longer entries than this one's.
    *room = (*room).max(chunk.bytes.len() + chunk.bytes.len() / 8);
    Ok((!chunk.seqs.is_empty()).then_some(chunk))
}

/// The insert guard (`INSERT_GUARD`) over an append's transaction.
enum InsertGuard {
    /// As the ledger has it: no group was inserted yet.
    InPlace,
    /// Dropped for the rest of the transaction; its text as the ledger stored it, which
    /// `Appender::commit` puts back as it was.
    Lifted(String),
    /// The ledger has no trigger of that name (one made by another build, or tampered with):
    /// left alone.
    Absent,
}

/// Drops the insert guard (`INSERT_GUARD`) for the rest of the transaction `tx`, if the ledger
/// has it. Done at an append's first group insert: a batch too small for one is inserted under
/// the guard, and its schema left untouched.
///
/// The guard finds the next `seq` and probes the id and pack-name indexes for every row, and a
/// trigger that may abort makes SQLite journal the pages of every statement: about a fifth of
/// a large append's time. The appender does not need it: it gives each entry the next `seq`
/// itself and inserts with plain `INSERT`, which the `UNIQUE` columns refuse for a used id or
/// pack name just as the guard would. The guard is there for other writers, and none can write
/// while this transaction holds the write lock; readers see the ledger as last committed, with
/// its guard; a transaction rolled back brings the guard back with everything else. So every
/// state of the ledger anyone else can see has it.
fn lift_insert_guard(tx: &rusqlite::Transaction) -> rusqlite::Result<InsertGuard> {
    let stored: Option<String> = tx
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = ?1 AND tbl_name = 'entries'",
            [INSERT_GUARD],
            |row| row.get(0),
        )
        .optional()?;
    let Some(stored) = stored else { return Ok(InsertGuard::Absent) };
    tx.execute_batch(&format!("DROP TRIGGER {INSERT_GUARD}"))?;
    Ok(InsertGuard::Lifted(stored))
}

/// Events inserted per statement: one statement per event costs SQLite a statement's setup,
/// binding and reset per event (an append of 1.15M events took 6.6–7.4 s that way against
/// 6.2–6.4 s in groups of 64, with the insert guard lifted).
const GROUP_ROWS: usize = 64;

const COLUMNS: &str =
    "INSERT INTO entries (seq, id, type, at, recorded_at, keypack, body, hash) VALUES ";
const ROW: &str = "(?, ?, ?, ?, ?, ?, ?, ?)";

/// An append in progress: one transaction under the write lock. Entries are encoded and
/// hashed onto the running head and inserted a group at a time. The insert is tried first: the
/// `UNIQUE` columns refuse a used id or pack name, whether the earlier event is
/// in the ledger or earlier in this batch (its rows are in the same transaction), and only
/// then, event by event, is the earlier entry read to tell a duplicate from a conflict. A new
/// event costs no lookup of its own, and the appender holds no more than a group of events:
/// a batch of any size appends in the same memory.
pub struct Appender<'l> {
    path: PathBuf,
    tx: rusqlite::Transaction<'l>,
    head: Head,
    recorded_at: Timestamp,
    appended: u64,
    duplicates: u64,
    /// Events pushed so far, duplicates included: the next one's `index`.
    n_pushed: usize,
    /// The `seq` of the batch's first entry.
    first_seq: u64,
    /// For each entry this batch inserted, in `seq` order, the `index` of its event: errors
    /// name an earlier event of the batch by it.
    inserted_index: Vec<usize>,
    /// The events waiting for the next group insert, with their `index`.
    group: Vec<(usize, PreparedEvent)>,
    /// The Merkle tiles this batch completes, hashed from its entries' leaf hashes as they are
    /// inserted, not read back; it holds less than a tile of leaves.
    tiles: Option<crate::tree::TileBuilder>,
    /// The ids retracted so far, with the `seq` and id of the retraction; read from the ledger
    /// when the batch's first retraction comes (retractions are rare, and the read scans).
    retracted: Option<std::collections::HashMap<String, (i64, String)>>,
    /// The insert guard over this transaction.
    insert_guard: InsertGuard,
}

/// Where an append's next entries go, for encoding and hashing them ahead of the insert on
/// another thread: the `seq` and `prev_hash` the next event gets if it is new, and the append's
/// `recorded_at`. From `Appender::chain_ahead`.
#[derive(Debug, Clone, Copy)]
pub struct ChainAhead {
    next_seq: u64,
    prev_hash: EntryHash,
    recorded_at: Timestamp,
}

impl ChainAhead {
    /// Encodes `event` and hashes it onto the chain, supposing every event before it was new.
    pub fn prepare(&mut self, event: Event) -> PreparedEvent {
        let event_cbor = event.to_cbor();
        let (body, hash, leaf) =
            encode_entry(self.next_seq, &self.prev_hash, self.recorded_at, &event_cbor);
        let ahead = Ahead {
            seq: self.next_seq,
            prev_hash: self.prev_hash,
            recorded_at: self.recorded_at,
            event_start: body.len() - event_cbor.len(),
            body,
            hash,
            leaf,
        };
        self.next_seq += 1;
        self.prev_hash = hash;
        PreparedEvent { event, ahead: Some(ahead) }
    }
}

/// The stored bytes of the event encoded as `event_cbor` (`Event::to_cbor`) as entry `seq`, their
/// hash onto `prev_hash`, and their leaf hash in the Merkle tree: all made where the event is
/// encoded, ahead of the insert when it can be.
fn encode_entry(
    seq: u64,
    prev_hash: &EntryHash,
    recorded_at: Timestamp,
    event_cbor: &[u8],
) -> (Vec<u8>, EntryHash, Hash) {
    let body = Entry::encode_parts(seq, recorded_at, event_cbor);
    let hash = EntryHash::chain(prev_hash, &body);
    let leaf = merkle::leaf_hash(&body);
    (body, hash, leaf)
}

/// An event for `Appender::push_prepared`, maybe with its entry already encoded and hashed.
#[derive(Debug)]
pub struct PreparedEvent {
    event: Event,
    ahead: Option<Ahead>,
}

impl PreparedEvent {
    /// An event to be encoded and hashed by the appender itself.
    pub fn unprepared(event: Event) -> PreparedEvent {
        PreparedEvent { event, ahead: None }
    }
}

/// An entry encoded and hashed ahead, and the place in the chain it was made for.
#[derive(Debug)]
struct Ahead {
    seq: u64,
    prev_hash: EntryHash,
    recorded_at: Timestamp,
    /// Where the event's own CBOR starts in `body`: the part of the entry that does not
    /// depend on its place in the chain.
    event_start: usize,
    body: Vec<u8>,
    hash: EntryHash,
    leaf: Hash,
}

/// An entry ready to insert.
struct Prepared<'a> {
    seq: u64,
    body: std::borrow::Cow<'a, [u8]>,
    hash: EntryHash,
    leaf: Hash,
}

impl Appender<'_> {
    /// Adds the next event of the batch. An error refuses the whole batch: the appender is
    /// then only good to be dropped.
    pub fn push(&mut self, event: Event) -> Result<(), AppendError> {
        self.push_prepared(PreparedEvent::unprepared(event))
    }

    /// `push`, for an event maybe encoded and hashed ahead by `ChainAhead::prepare`. The entry
    /// made ahead is used only if it was made for the place the event takes now (no duplicate
    /// before it shifted the chain); otherwise the event is encoded and hashed again here, so
    /// the bytes and hashes are those `push` gives either way.
    pub fn push_prepared(&mut self, event: PreparedEvent) -> Result<(), AppendError> {
        if let Some(target) = event.event.retracts() {
            // The events before it in the batch are in the transaction after a flush, so the
            // target is looked up in one place whether it came earlier in the batch or not.
            self.flush()?;
            self.check_retraction(self.n_pushed, &event.event, target)?;
        }
        self.group.push((self.n_pushed, event));
        self.n_pushed += 1;
        if self.group.len() == GROUP_ROWS { self.flush() } else { Ok(()) }
    }

    /// The place of the next entry, for encoding and hashing events ahead on another thread.
    pub fn chain_ahead(&self) -> ChainAhead {
        ChainAhead {
            next_seq: self.head.n_events + 1,
            prev_hash: self.head.hash,
            recorded_at: self.recorded_at,
        }
    }

    /// Writes what is left and commits: the batch is in the ledger.
    pub fn commit(mut self) -> Result<AppendReport, AppendError> {
        self.flush()?;
        let report =
            AppendReport { appended: self.appended, duplicates: self.duplicates, head: self.head };
        if self.appended == 0 {
            // Nothing to record: the transaction is rolled back as the appender is dropped,
            // and the file is left exactly as it was (the insert guard never lifted).
            return Ok(report);
        }
        let path = self.path.clone();
        // The tree's tiles are part of the same transaction: never behind a committed entry.
        crate::tree::update_tiles(&self.tx, self.head.n_events, self.tiles.as_ref())
            .map_err(|e| sqlite(&path, e))?;
        if let InsertGuard::Lifted(guard) = &self.insert_guard {
            self.tx.execute_batch(guard).map_err(|e| sqlite(&path, e))?;
        }
        self.tx.commit().map_err(|e| sqlite(&path, e))?;
        Ok(report)
    }

    /// Adds the leaf hash of the entry just inserted to the tiles the batch completes.
    fn push_leaf(&mut self, leaf: Hash) -> Result<(), AppendError> {
        if self.tiles.is_none() {
            let builder = crate::tree::TileBuilder::start(&self.tx, self.first_seq - 1)
                .map_err(|e| self.err(e))?;
            self.tiles = Some(builder);
        }
        self.tiles.as_mut().expect("invariant: set above").push(leaf);
        Ok(())
    }

    /// The entry `event` makes after `prev`: the one made ahead if it was made for this place.
    fn prepare<'e>(&self, event: &'e PreparedEvent, prev: &Head) -> Prepared<'e> {
        let seq = prev.n_events + 1;
        match &event.ahead {
            Some(ahead)
                if ahead.seq == seq
                    && ahead.prev_hash == prev.hash
                    && ahead.recorded_at == self.recorded_at =>
            {
                Prepared {
                    seq,
                    body: std::borrow::Cow::Borrowed(&ahead.body),
                    hash: ahead.hash,
                    leaf: ahead.leaf,
                }
            }
            // Made for another place (a duplicate before it shifted the chain), the event's own
            // CBOR is kept, and only the entry around it and the hashes are made again.
            ahead => {
                let encoded;
                let event_cbor = if let Some(ahead) = ahead {
                    &ahead.body[ahead.event_start..]
                } else {
                    encoded = event.event.to_cbor();
                    &encoded[..]
                };
                let (body, hash, leaf) =
                    encode_entry(seq, &prev.hash, self.recorded_at, event_cbor);
                Prepared { seq, body: std::borrow::Cow::Owned(body), hash, leaf }
            }
        }
    }

    fn bind(
        &self,
        statement: &mut rusqlite::CachedStatement,
        row: usize,
        event: &Event,
        prepared: &Prepared,
    ) -> rusqlite::Result<()> {
        let first = row * 8 + 1;
        statement.raw_bind_parameter(first, prepared.seq as i64)?;
        statement.raw_bind_parameter(first + 1, event.id.as_str())?;
        statement.raw_bind_parameter(first + 2, event.event_type().as_str())?;
        statement.raw_bind_parameter(first + 3, event.at.micros())?;
        statement.raw_bind_parameter(first + 4, self.recorded_at.micros())?;
        statement.raw_bind_parameter(first + 5, event.new_keypack().map(Name::as_str))?;
        statement.raw_bind_parameter(first + 6, &prepared.body[..])?;
        statement.raw_bind_parameter(first + 7, &prepared.hash.0[..])
    }

    fn flush(&mut self) -> Result<(), AppendError> {
        let mut group = std::mem::take(&mut self.group);
        if group.len() == GROUP_ROWS {
            if let InsertGuard::InPlace = self.insert_guard {
                self.insert_guard = lift_insert_guard(&self.tx).map_err(|e| self.err(e))?;
            }
            let sql = format!("{COLUMNS}{}", [ROW; GROUP_ROWS].join(", "));
            let mut statement = self.tx.prepare_cached(&sql).map_err(|e| self.err(e))?;
            let mut head = self.head;
            let mut leaves = Vec::with_capacity(group.len());
            for (row, (_, event)) in group.iter().enumerate() {
                let prepared = self.prepare(event, &head);
                leaves.push(prepared.leaf);
                self.bind(&mut statement, row, &event.event, &prepared).map_err(|e| self.err(e))?;
                head = Head {
                    n_events: prepared.seq,
                    hash: prepared.hash,
                    recorded_at: Some(self.recorded_at),
                };
            }
            match statement.raw_execute() {
                Ok(_) => {
                    drop(statement);
                    self.head = head;
                    self.appended += group.len() as u64;
                    self.inserted_index.extend(group.iter().map(|(index, _)| *index));
                    for leaf in leaves {
                        self.push_leaf(leaf)?;
                    }
                    group.clear();
                    self.group = group;
                    return Ok(());
                }
                // Some event of the group is refused; SQLite undid the whole statement.
                Err(refused) if is_constraint(&refused) => {}
                Err(other) => return Err(self.err(other).into()),
            }
        }
        for (index, event) in group.drain(..) {
            self.insert_one(index, &event)?;
        }
        self.group = group;
        Ok(())
    }

    /// Inserts one event, or finds out why it cannot be.
    fn insert_one(
        &mut self,
        index: usize,
        prepared_event: &PreparedEvent,
    ) -> Result<(), AppendError> {
        let prepared = self.prepare(prepared_event, &self.head);
        let event = &prepared_event.event;
        let mut statement =
            self.tx.prepare_cached(&format!("{COLUMNS}{ROW}")).map_err(|e| self.err(e))?;
        self.bind(&mut statement, 0, event, &prepared).map_err(|e| self.err(e))?;
        let refused = match statement.raw_execute() {
            Ok(_) => {
                drop(statement);
                self.head = Head {
                    n_events: prepared.seq,
                    hash: prepared.hash,
                    recorded_at: Some(self.recorded_at),
                };
                self.appended += 1;
                self.inserted_index.push(index);
                self.push_leaf(prepared.leaf)?;
                return Ok(());
            }
            Err(refused) if is_constraint(&refused) => refused,
            Err(other) => return Err(self.err(other).into()),
        };
        drop(statement);
        let stored: Option<(i64, Vec<u8>)> = self
            .tx
            .prepare_cached("SELECT seq, body FROM entries WHERE id = ?1")
            .and_then(|mut find| {
                find.query_row([event.id.as_str()], |row| Ok((row.get(0)?, row.get(1)?))).optional()
            })
            .map_err(|e| self.err(e))?;
        if let Some((seq, body)) = stored {
            let existing = Entry::decode(&body).map_err(|err| StoreError::Corrupt {
                path: self.path.clone(),
                seq: seq as u64,
                reason: err.to_string(),
            })?;
            if existing.event == *event {
                self.duplicates += 1;
                return Ok(());
            }
            return Err(AppendError::ConflictingId {
                index,
                id: event.id.clone(),
                earlier: self.earlier(seq, event.id.as_str()),
            });
        }
        if let Some(keypack) = event.new_keypack() {
            let existing: Option<(i64, String)> = self
                .tx
                .prepare_cached("SELECT seq, id FROM entries WHERE keypack = ?1")
                .and_then(|mut find| {
                    find.query_row([keypack.as_str()], |row| Ok((row.get(0)?, row.get(1)?)))
                        .optional()
                })
                .map_err(|e| self.err(e))?;
            if let Some((seq, id)) = existing {
                return Err(AppendError::KeypackExists {
                    index,
                    keypack: keypack.clone(),
                    earlier: self.earlier(seq, &id),
                });
            }
        }
        Err(self.err(refused).into())
    }

    /// Refuses a retraction that names no earlier event, a retraction, or an event already
    /// retracted (EVENTS.md, `event.retracted`).
    fn check_retraction(
        &mut self,
        index: usize,
        event: &Event,
        target: &caltrail_events::EventId,
    ) -> Result<(), AppendError> {
        let find =
            |tx: &rusqlite::Transaction, id: &str| -> rusqlite::Result<Option<(i64, String)>> {
                tx.prepare_cached("SELECT seq, type FROM entries WHERE id = ?1")?
                    .query_row([id], |row| Ok((row.get(0)?, row.get(1)?)))
                    .optional()
            };
        // A retraction already stored under its own id is a duplicate or a conflict, which
        // the insert tells apart.
        if find(&self.tx, event.id.as_str()).map_err(|e| self.err(e))?.is_some() {
            return Ok(());
        }
        let Some((seq, event_type)) = find(&self.tx, target.as_str()).map_err(|e| self.err(e))?
        else {
            return Err(AppendError::RetractsUnknown { index, id: target.clone() });
        };
        if event_type == EventType::EventRetracted.as_str() {
            let earlier = self.earlier(seq, target.as_str());
            return Err(AppendError::RetractsRetraction { index, id: target.clone(), earlier });
        }
        if self.retracted.is_none() {
            self.retracted = Some(self.read_retracted()?);
        }
        let retracted = self.retracted.as_ref().expect("invariant: just read");
        if let Some((seq, by)) = retracted.get(target.as_str()) {
            let earlier = self.earlier(*seq, by);
            return Err(AppendError::AlreadyRetracted { index, id: target.clone(), earlier });
        }
        // The batch was flushed before this retraction: it becomes the next entry.
        let seq = self.head.n_events as i64 + 1;
        self.retracted
            .as_mut()
            .expect("invariant: just read")
            .insert(target.as_str().to_owned(), (seq, event.id.as_str().to_owned()));
        Ok(())
    }

    /// Every id the ledger's retractions name, with the retraction's `seq` and id.
    fn read_retracted(
        &self,
    ) -> Result<std::collections::HashMap<String, (i64, String)>, StoreError> {
        let mut statement = self
            .tx
            .prepare_cached("SELECT seq, body FROM entries WHERE type = ?1")
            .map_err(|e| self.err(e))?;
        let mut rows =
            statement.query([EventType::EventRetracted.as_str()]).map_err(|e| self.err(e))?;
        let mut retracted = std::collections::HashMap::new();
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            let seq: i64 = row.get(0).map_err(|e| self.err(e))?;
            let body = row.get_ref(1).and_then(|v| Ok(v.as_blob()?)).map_err(|e| self.err(e))?;
            let entry = Entry::decode(body).map_err(|err| StoreError::Corrupt {
                path: self.path.clone(),
                seq: seq as u64,
                reason: err.to_string(),
            })?;
            if let Some(target) = entry.event.retracts() {
                retracted
                    .insert(target.as_str().to_owned(), (seq, entry.event.id.as_str().to_owned()));
            }
        }
        Ok(retracted)
    }

    /// The earlier event an error names: by its place in this batch when this batch
    /// inserted it, else by its entry.
    fn earlier(&self, seq: i64, id: &str) -> Earlier {
        let seq = seq as u64;
        match seq.checked_sub(self.first_seq).and_then(|i| self.inserted_index.get(i as usize)) {
            Some(&index) => Earlier::InBatch { index },
            None => Earlier::Entry { seq, id: id.to_owned() },
        }
    }

    fn err(&self, error: rusqlite::Error) -> StoreError {
        sqlite(&self.path, error)
    }
}

fn is_constraint(error: &rusqlite::Error) -> bool {
    error.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation)
}

/// Stored rows as read, their bytes end to end.
struct RawChunk {
    seqs: Vec<i64>,
    ends: Vec<usize>,
    bytes: Vec<u8>,
    hashes: Vec<Option<EntryHash>>,
}

impl RawChunk {
    fn push(&mut self, row: &rusqlite::Row) -> rusqlite::Result<()> {
        self.seqs.push(row.get(0)?);
        self.bytes.extend_from_slice(row.get_ref(1)?.as_blob()?);
        self.ends.push(self.bytes.len());
        self.hashes.push(EntryHash::from_slice(row.get_ref(2)?.as_blob()?));
        Ok(())
    }

    fn decode(self, path: &Path) -> Result<Vec<StoredEntry>, StoreError> {
        let mut decoded = Vec::with_capacity(self.seqs.len());
        let mut decoder = EntryDecoder::default();
        let mut start = 0;
        for ((seq, end), hash) in self.seqs.iter().zip(&self.ends).zip(&self.hashes) {
            let seq = *seq as u64;
            let corrupt =
                |reason: String| StoreError::Corrupt { path: path.to_owned(), seq, reason };
            let entry =
                decoder.decode(&self.bytes[start..*end]).map_err(|e| corrupt(e.to_string()))?;
            start = *end;
            if entry.seq != seq {
                return Err(corrupt(format!("its bytes say it is entry {}", entry.seq)));
            }
            let hash = hash.ok_or_else(|| corrupt("hash is not 32 bytes".into()))?;
            decoded.push(StoredEntry { hash, entry });
        }
        Ok(decoded)
    }
}

fn head_of(conn: &Connection) -> Result<Head, rusqlite::Error> {
    let last: Option<(i64, Vec<u8>, i64)> = conn
        .query_row(
            "SELECT seq, hash, recorded_at FROM entries ORDER BY seq DESC LIMIT 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(match last {
        None => Head { n_events: 0, hash: EntryHash::GENESIS, recorded_at: None },
        Some((seq, hash, recorded_at)) => Head {
            n_events: seq as u64,
            hash: EntryHash::from_slice(&hash).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    1,
                    rusqlite::types::Type::Blob,
                    "the last entry's hash is not 32 bytes: run caltrail verify".into(),
                )
            })?,
            recorded_at: Timestamp::from_micros(recorded_at),
        },
    })
}

/// Runs `attempt` again while SQLite says the file is busy, for as long as `BUSY_TIMEOUT`.
/// The busy timeout covers waiting for a lock, but not the cases where SQLite answers "busy" at
/// once to avoid a deadlock: two processes creating the same ledger, or one switching it to WAL
/// while another opens it.
fn retry_while_busy<T>(
    mut attempt: impl FnMut() -> Result<T, StoreError>,
) -> Result<T, StoreError> {
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match attempt() {
            Err(StoreError::Sqlite { error, .. })
                if matches!(
                    error.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether `len` entries at the end of a ledger of `n` are few enough that reading them from
/// the table by `seq` is faster than reading an index whole.
fn is_tail(len: u64, n: u64) -> bool {
    len.saturating_mul(16) < n
}

/// The `seq` and `at` of every entry, from the `entries_at` index. Not narrowed to a range of
/// `seq` in SQL: the index is in `at` order, so a range of `seq` narrows nothing and cost
/// SQLite a third of the scan to test on every row; `read_times` leaves out the others.
const TIMES_BY_INDEX: &str = "SELECT seq, at FROM entries INDEXED BY entries_at";

/// The same from the table, by `seq`.
const TIMES_BY_TABLE: &str = "SELECT seq, at FROM entries WHERE seq <= ?1 AND seq > ?2";

/// The `at` of entries `from + 1 ..= from + len`, by `seq - from - 1`, as they are read.
struct Times {
    from: i64,
    ats: Vec<i64>,
    /// Which were read: any `at` is a valid number.
    filled: Vec<bool>,
}

impl Times {
    /// Puts in the times `read_times` found outside the slots it was given.
    fn fill(&mut self, strays: Vec<(usize, i64)>) {
        for (slot, at) in strays {
            self.ats[slot] = at;
            self.filled[slot] = true;
        }
    }

    /// The times, once every entry's was read.
    fn into_complete(self, path: &Path) -> Result<Vec<i64>, StoreError> {
        if let Some(missing) = self.filled.iter().position(|f| !f) {
            return Err(StoreError::Corrupt {
                path: path.to_owned(),
                seq: self.from as u64 + missing as u64 + 1,
                reason: "it is missing".into(),
            });
        }
        Ok(self.ats)
    }
}

/// Where `read_times` reads.
#[derive(Clone, Copy)]
enum TimesFrom<'a> {
    /// `TIMES_BY_TABLE`, the entries `from + 1 ..= until` by `seq`.
    Table,
    /// `TIMES_BY_INDEX`, every entry, or with a side and a value only those whose `at` is on
    /// that side of it (`<` or `>=`).
    Index(Option<(&'a str, i64)>),
}

/// Reads the `seq` and `at` of entries `from + 1 ..= until` from `source` into the slots
/// `offset ..` of the times, which `ats` and `filled` hold; returns the entries of other slots
/// (none when the slots are all of them). Rows of other entries are left out.
fn read_times(
    conn: &Connection,
    path: &Path,
    source: TimesFrom,
    (until, from): (i64, i64),
    (offset, ats, filled): (usize, &mut [i64], &mut [bool]),
) -> Result<Vec<(usize, i64)>, StoreError> {
    let len = usize::try_from(until.saturating_sub(from)).unwrap_or(usize::MAX);
    let prepare = |sql: &str| conn.prepare(sql).map_err(|e| classify(path, e));
    let bind = |statement: &mut rusqlite::Statement, index: usize, value: i64| {
        statement.raw_bind_parameter(index, value).map_err(|e| sqlite(path, e))
    };
    let mut statement = match source {
        TimesFrom::Table => {
            let mut statement = prepare(TIMES_BY_TABLE)?;
            bind(&mut statement, 1, until)?;
            bind(&mut statement, 2, from)?;
            statement
        }
        TimesFrom::Index(None) => prepare(TIMES_BY_INDEX)?,
        TimesFrom::Index(Some((side, value))) => {
            let mut statement = prepare(&format!("{TIMES_BY_INDEX} WHERE at {side} ?1"))?;
            bind(&mut statement, 1, value)?;
            statement
        }
    };
    let mut rows = statement.raw_query();
    let mut strays = Vec::new();
    while let Some(row) = rows.next().map_err(|e| classify(path, e))? {
        let seq: i64 = row.get(0).map_err(|e| sqlite(path, e))?;
        let at: i64 = row.get(1).map_err(|e| sqlite(path, e))?;
        // Another entry's, read from the index: the slots it leaves empty are reported missing.
        let Some(slot) = seq
            .checked_sub(1)
            .and_then(|s| s.checked_sub(from))
            .and_then(|i| usize::try_from(i).ok())
            .filter(|i| *i < len)
        else {
            continue;
        };
        match slot.checked_sub(offset).filter(|i| *i < ats.len()) {
            Some(i) => {
                ats[i] = at;
                filled[i] = true;
            }
            None => strays.push((slot, at)),
        }
    }
    Ok(strays)
}

fn sqlite(path: &Path, error: rusqlite::Error) -> StoreError {
    StoreError::Sqlite { path: path.to_owned(), error }
}

/// SQLite's "not a database" and "malformed" codes mean the file is not a usable ledger.
fn classify(path: &Path, source: rusqlite::Error) -> StoreError {
    match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::NotALedger { path: path.to_owned(), reason: source.to_string() }
        }
        _ => sqlite(path, source),
    }
}

fn is_writable(path: &Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(path).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const N: u64 = 3 * CHUNK_ROWS as u64 + 5;

    fn ledger(dir: &Path) -> Ledger {
        let mut ledger = Ledger::open_or_create(&dir.join("l.db")).unwrap();
        ledger.append(&events("e"), Timestamp::from_micros(0).unwrap()).unwrap();
        ledger
    }

    fn events(prefix: &str) -> Vec<Event> {
        (0..N)
            .map(|i| {
                let line = format!(
                    r#"{{"id":"{prefix}{i}","type":"server.deactivated","at":"2025-01-01T00:00:00Z","data":{{"server":"ls{i}","method":"telephone"}}}}"#
                );
                Event::from_json(&line).unwrap()
            })
            .collect()
    }

    /// The `at` of each entry, read from the index in two halves at once, is what the table
    /// holds, for late records on either side of the middle entry's `at`, a time shared with
    /// it, the entries after a snapshot, fewer than all of them (the index holds the others
    /// too), and a short tail (read from the table alone).
    #[test]
    fn times_read_in_halves_are_the_tables() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open_or_create(&dir.path().join("l.db")).unwrap();
        // Mostly a day per entry; every 97th recorded late, far back, and every 89th far
        // ahead; a run of entries sharing the middle entry's day.
        let events: Vec<Event> = (0..N)
            .map(|i| {
                let day = match i {
                    i if i % 97 == 5 => i / 4,
                    i if i % 89 == 7 => i + 2_000,
                    i if (N / 2 - 3..N / 2 + 3).contains(&i) => N / 2,
                    i => i,
                };
                let at = Timestamp::from_micros(i64::try_from(day).unwrap() * 86_400_000_000)
                    .unwrap()
                    .to_rfc3339();
                Event::from_json(&format!(
                    r#"{{"id":"t{i}","type":"server.deactivated","at":"{at}","data":{{"server":"ls{i}","method":"telephone"}}}}"#
                ))
                .unwrap()
            })
            .collect();
        ledger.append(&events, Timestamp::from_micros(0).unwrap()).unwrap();
        let table = |after: u64, n: u64| -> Vec<i64> {
            let mut statement = ledger
                .conn
                .prepare(
                    "SELECT at FROM entries NOT INDEXED WHERE seq > ?1 AND seq <= ?2 ORDER BY seq",
                )
                .unwrap();
            statement
                .query_map([after as i64, n as i64], |row| row.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let mut halves =
            Times { from: 0, ats: vec![0; N as usize], filled: vec![false; N as usize] };
        assert!(ledger.times_by_index_in_halves(&mut halves, N as i64).unwrap());
        assert_eq!(halves.into_complete(ledger.path()).unwrap(), table(0, N));
        for (after, n) in [(0, N), (0, N - 1), (N / 3, N), (N / 3, N - N / 3), (N - 5, N), (N, N)] {
            assert_eq!(ledger.times_after(after, n).unwrap(), table(after, n), "{after}..={n}");
        }
    }

    /// The retractions index and the queries that read it spell a retraction's type as the
    /// contract does.
    #[test]
    fn the_retractions_index_names_the_retraction_type() {
        assert_eq!(RETRACTION, EventType::EventRetracted.as_str());
        assert!(RETRACTIONS_INDEX.ends_with(&format!("WHERE type = '{RETRACTION}'")));
    }

    /// The text of the ledger's insert guard as stored, if it has one.
    fn stored_insert_guard(conn: &Connection) -> Option<String> {
        conn.query_row(
            "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND name = ?1",
            [INSERT_GUARD],
            |row| row.get(0),
        )
        .optional()
        .unwrap()
    }

    /// An append lifts the insert guard inside its own transaction only: another connection
    /// sees it and is refused by it while the append runs, it is back as it was after a commit
    /// and after a refused batch, and the text put back is the one the ledger stored, not this
    /// build's.
    #[test]
    fn the_insert_guard_is_lifted_only_inside_the_appends_transaction() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(dir.path());
        let path = dir.path().join("l.db");
        let other = Connection::open(&path).unwrap();
        other.busy_timeout(std::time::Duration::ZERO).unwrap();
        let written = TRIGGERS.iter().find(|(name, _)| *name == INSERT_GUARD).unwrap().1;
        assert_eq!(stored_insert_guard(&other).as_deref(), Some(written));

        // Written in another layout, as another build might have.
        let laid_out = written.replace(" BEGIN ", "\n  BEGIN\n    ").replace(" END", "\n  END");
        other.execute_batch(&format!("DROP TRIGGER {INSERT_GUARD}; {laid_out}")).unwrap();
        let replace = "INSERT OR REPLACE INTO entries SELECT * FROM entries WHERE seq = 3";

        let mut appender = ledger.begin_append(Timestamp::from_micros(0).unwrap()).unwrap();
        for event in events("f") {
            appender.push(event).unwrap();
        }
        assert_eq!(stored_insert_guard(&other).as_deref(), Some(&laid_out[..]));
        let locked = other.execute_batch(replace).unwrap_err();
        assert_eq!(locked.sqlite_error_code(), Some(rusqlite::ErrorCode::DatabaseBusy));
        appender.commit().unwrap();
        assert_eq!(stored_insert_guard(&other).as_deref(), Some(&laid_out[..]));
        let refused = other.execute_batch(replace).unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");

        // A batch refused for a conflicting id is rolled back, the guard's drop with it.
        let mut conflicting = events("g");
        conflicting[N as usize - 1] = events("e").remove(0);
        conflicting[N as usize - 1].at = Timestamp::from_micros(1).unwrap();
        let error = ledger.append(&conflicting, Timestamp::from_micros(0).unwrap()).unwrap_err();
        assert!(matches!(error, AppendError::ConflictingId { .. }), "{error:?}");
        assert_eq!(stored_insert_guard(&other).as_deref(), Some(&laid_out[..]));
        assert_eq!(ledger.head().unwrap().n_events, 2 * N);
        let refused = other.execute_batch(replace).unwrap_err();
        assert!(refused.to_string().contains("append-only"), "{refused}");
    }

    /// An append of events all in the ledger already, more than a group of them, leaves the file
    /// byte for byte as it was: the guard it lifted for the group inserts is not rewritten.
    #[test]
    fn an_append_of_duplicates_only_leaves_the_file_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(dir.path());
        let path = dir.path().join("l.db");
        ledger.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let before =
            (std::fs::read(&path).unwrap(), std::fs::read(path.with_extension("db-wal")).ok());
        let report = ledger.append(&events("e"), Timestamp::from_micros(0).unwrap()).unwrap();
        assert_eq!((report.appended, report.duplicates), (0, N));
        let after =
            (std::fs::read(&path).unwrap(), std::fs::read(path.with_extension("db-wal")).ok());
        assert!(before == after, "the append of duplicates changed the ledger's file");
    }

    /// A ledger whose insert guard was removed outside caltrail is appended to without it: an
    /// append neither heals the damage nor hides it from `verify`.
    #[test]
    fn an_append_does_not_put_back_a_guard_that_was_removed() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(dir.path());
        let other = Connection::open(dir.path().join("l.db")).unwrap();
        other.execute_batch(&format!("DROP TRIGGER {INSERT_GUARD}")).unwrap();
        ledger.append(&events("f"), Timestamp::from_micros(0).unwrap()).unwrap();
        assert_eq!(stored_insert_guard(&other), None);
    }

    /// The `seq` and event id of each entry visited, or the error that stopped the walk.
    fn visited(
        ledger: &Ledger,
        after: i64,
        until: i64,
        reader: Option<Connection>,
    ) -> (Vec<(u64, String)>, Option<String>) {
        let mut seen = Vec::new();
        let walk = ledger.visit_entries(after, until, reader, |entries| {
            for stored in entries {
                seen.push((stored.entry.seq, stored.entry.event.id.as_str().to_owned()));
            }
            Ok(())
        });
        (seen, walk.err().map(|e| e.to_string()))
    }

    /// Entries read on a second connection, on a thread of their own, are those read on the
    /// caller's, in order, across chunks; a decoding error stops both walks at the same entry.
    /// A second connection is had only while the path names the same ledger.
    #[test]
    fn entries_read_on_a_reading_thread_are_those_read_on_the_callers() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = ledger(dir.path());
        let n = N as i64;
        for (after, until) in [(0, n), (0, 1), (1000, 2100), (n - 1, n), (5, n - 5)] {
            let ours = visited(&ledger, after, until, None);
            let expected: Vec<(u64, String)> =
                (after + 1..=until).map(|seq| (seq as u64, format!("e{}", seq - 1))).collect();
            assert_eq!(ours, (expected, None), "{after}..={until}");
            let reader = ledger.reading_connection(after, until).unwrap();
            assert!(reader.is_some(), "{after}..={until}");
            assert_eq!(visited(&ledger, after, until, reader), ours, "{after}..={until}");
        }
        let mut all = Vec::new();
        ledger
            .for_each_entry(None, |s| {
                all.push(s.entry.seq);
                Ok(())
            })
            .unwrap();
        assert_eq!(all, (1..=N).collect::<Vec<_>>());

        ledger
            .connection_mut()
            .execute_batch(
                "DROP TRIGGER entries_no_update; UPDATE entries SET body = x'00' WHERE seq = 1500",
            )
            .unwrap();
        let ours = visited(&ledger, 0, n, None);
        // A chunk is decoded whole before it is visited: the walk stops before its first entry.
        assert_eq!(ours.0.len(), CHUNK_ROWS);
        assert!(ours.1.as_deref().is_some_and(|e| e.contains("1500")), "{ours:?}");
        let reader = ledger.reading_connection(0, n).unwrap();
        assert_eq!(visited(&ledger, 0, n, reader), ours);

        // Another ledger in its place: its entry `n` has another hash.
        let other_dir = tempfile::tempdir().unwrap();
        let mut other = Ledger::open_or_create(&other_dir.path().join("l.db")).unwrap();
        other.append(&events("x"), Timestamp::from_micros(0).unwrap()).unwrap();
        drop(other);
        // Its pages all in the file, so that its write-ahead log, which keeps the name, is empty.
        ledger.connection().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
        let path = ledger.path().to_owned();
        std::fs::rename(&path, path.with_extension("moved")).unwrap();
        assert!(ledger.reading_connection(0, n).unwrap().is_none(), "moved away");
        std::fs::copy(other_dir.path().join("l.db"), &path).unwrap();
        assert!(ledger.reading_connection(0, n).unwrap().is_none(), "replaced");
        // Read on the caller's connection, the walk still gives this ledger's entries.
        assert_eq!(visited(&ledger, 0, 10, None).0[9], (10, "e9".to_owned()));
    }
}
