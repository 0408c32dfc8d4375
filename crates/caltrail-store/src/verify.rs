//! Verification: re-hashing the stored bytes of every entry in order, checking `seq`, the
//! columns kept beside the bytes, SQLite's own integrity and the guard-rail triggers. It reads
//! only; it never re-encodes an event, since the hash covers the bytes as stored.

use std::fmt;

use caltrail_events::{Entry, EntryColumns, Name, Timestamp};
use rusqlite::OptionalExtension;
use rusqlite::types::Value as SqlValue;

use crate::error::StoreError;
use crate::hash::EntryHash;
use crate::hash_lanes;
use crate::ledger::{Ledger, RETRACTION, TRIGGERS};
use crate::pipeline::{self, CHUNK_ROWS};

/// What is wrong with a ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// SQLite's integrity check failed or a page could not be read.
    FileDamaged,
    /// An entry is not there: `seq` jumps.
    EntryMissing,
    /// The bytes stored at a `seq` say they belong at another one.
    OutOfOrder,
    /// The stored bytes no longer match the stored hash, and the next entry still links to it.
    ContentChanged,
    /// The stored hash was changed; the bytes still match the chain.
    HashChanged,
    /// The bytes or the hash of the last entry were changed (nothing after it to tell which).
    ContentOrHashChanged,
    /// The hash matches but the bytes are not a valid entry.
    NotAnEntry,
    /// A column kept beside the bytes (`id`, `type`, `at`, ...) says something else than the bytes.
    ColumnChanged,
    /// `recorded_at` goes back in time along the chain.
    RecordedAtWentBack,
    /// The append-only triggers are missing or altered.
    GuardRemoved,
    /// The head hash given with `--head` is not in the chain.
    HeadNotFound,
}

impl ProblemKind {
    /// The kind as `verify` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::FileDamaged => "file damaged",
            ProblemKind::EntryMissing => "entry missing",
            ProblemKind::OutOfOrder => "entries out of order",
            ProblemKind::ContentChanged => "content changed",
            ProblemKind::HashChanged => "hash changed",
            ProblemKind::ContentOrHashChanged => "content or hash changed",
            ProblemKind::NotAnEntry => "not a valid entry",
            ProblemKind::ColumnChanged => "column changed",
            ProblemKind::RecordedAtWentBack => "recorded_at went back",
            ProblemKind::GuardRemoved => "guard rail removed",
            ProblemKind::HeadNotFound => "head not found",
        }
    }
}

/// One thing `verify` found wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry it is about, when it is about one.
    pub seq: Option<u64>,
    /// What kind of damage.
    pub kind: ProblemKind,
    /// What exactly, in a sentence.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(seq) => write!(f, "entry {seq}: {}: {}", self.kind.as_str(), self.detail),
            None => write!(f, "{}: {}", self.kind.as_str(), self.detail),
        }
    }
}

/// The outcome of `Ledger::verify`.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// Entries whose chain was verified, from the first, before any break.
    pub n_verified: u64,
    /// The hash of the last verified entry.
    pub head: EntryHash,
    /// The first break of the chain (at most one), then whole-file problems.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Nothing was found wrong.
    pub fn is_ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// One row as stored, with SQLite's own types: a row edited outside caltrail may hold anything.
struct Row {
    seq: i64,
    id: SqlValue,
    event_type: SqlValue,
    at: SqlValue,
    recorded_at: SqlValue,
    keypack: SqlValue,
    body: SqlValue,
    hash: SqlValue,
}

impl Row {
    fn read(row: &rusqlite::Row) -> rusqlite::Result<Row> {
        Ok(Row {
            seq: row.get(0)?,
            id: row.get(1)?,
            event_type: row.get(2)?,
            at: row.get(3)?,
            recorded_at: row.get(4)?,
            keypack: row.get(5)?,
            body: row.get(6)?,
            hash: row.get(7)?,
        })
    }

    fn body(&self) -> &[u8] {
        match &self.body {
            SqlValue::Blob(bytes) => bytes,
            _ => &[],
        }
    }

    fn hash(&self) -> Option<EntryHash> {
        match &self.hash {
            SqlValue::Blob(bytes) => EntryHash::from_slice(bytes),
            _ => None,
        }
    }
}

/// How much `verify` checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// The chain: every entry's bytes against its hash and the one before, `seq`, the columns
    /// kept beside the bytes, `recorded_at` order, the guard rails, and every page of the table
    /// and of its indexes read back (each index must count the table's rows). What tampering
    /// changes; fast enough to run often.
    Chain,
    /// All of `Chain`, every event decoded and checked as an input line is, and SQLite's full
    /// `integrity_check` (indexes against the table).
    Deep,
}

impl Ledger {
    /// Verifies the whole ledger. `expected_head`, a head hash kept outside the file, must be
    /// the hash of one of the entries: otherwise the tail was cut off or rewritten.
    pub fn verify(
        &self,
        expected_head: Option<EntryHash>,
        depth: Depth,
    ) -> Result<VerifyReport, StoreError> {
        self.verify_with_progress(expected_head, depth, &|_| {})
    }

    /// [`Ledger::verify`], calling `progress` with the number of entries checked so far, in
    /// order, now and then (for a progress bar).
    pub fn verify_with_progress(
        &self,
        expected_head: Option<EntryHash>,
        depth: Depth,
        progress: &dyn Fn(u64),
    ) -> Result<VerifyReport, StoreError> {
        // SQLite's check runs on a second connection, beside the walk instead of after it. The
        // walk tells it how many rows it read, which spares it reading the table a second time.
        let (rows_sender, rows_read) = std::sync::mpsc::channel();
        let (sqlite_problem, walked) = std::thread::scope(|scope| {
            // Owned here, so that a walk that stopped short drops it and the check goes on.
            let rows_sender = rows_sender;
            let beside = self.second_connection().map(|conn| {
                let path = self.path().to_owned();
                let rows_read = move || rows_read.recv().ok().flatten();
                scope.spawn(move || sqlite_check(&conn, depth, &path, rows_read))
            });
            let walked = self.walk(expected_head, depth, progress);
            let sqlite_problem = if let Some(thread) = beside {
                let _ = rows_sender.send(walked.rows_read());
                thread.join().unwrap_or_else(|_| {
                    Ok(Some(damaged("SQLite's check stopped unexpectedly".to_owned())))
                })
            } else {
                sqlite_check(self.connection(), depth, self.path(), || walked.rows_read())
            };
            (sqlite_problem, walked)
        });
        let mut problems: Vec<Problem> = sqlite_problem?.into_iter().collect();
        let Walked { n_verified, head, head_found, problem, n_retractions } = walked;
        if depth == Depth::Chain && problems.is_empty() && problem.is_none() {
            problems.extend(self.retractions_index_problem(n_verified, n_retractions));
        }
        problems.extend(problem);
        problems.extend(self.guard_problem()?);
        if let Some(expected) = expected_head
            && !head_found
        {
            problems.push(Problem {
                    seq: None,
                    kind: ProblemKind::HeadNotFound,
                    detail: format!(
                        "no entry among the {n_verified} verified has the hash {expected}: entries after it were removed or the chain was rewritten"
                    ),
                });
        }
        Ok(VerifyReport { n_verified, head, problems })
    }

    /// The chain walk: the fast one first; if it finds anything, the exact one, entry by entry,
    /// to say what and where.
    fn walk(
        &self,
        expected_head: Option<EntryHash>,
        depth: Depth,
        progress: &dyn Fn(u64),
    ) -> Walked {
        if depth == Depth::Chain
            && let Ok(Some(walked)) = self.fast_walk(expected_head, progress)
        {
            return walked;
        }
        let mut head = EntryHash::GENESIS;
        let mut n_verified = 0u64;
        let mut head_found = expected_head == Some(EntryHash::GENESIS);
        let walk = self.walk_chain(depth == Depth::Deep, |hash| {
            head = hash;
            n_verified += 1;
            head_found |= expected_head == Some(hash);
            if n_verified.is_multiple_of(4096) {
                progress(n_verified);
            }
        });
        let problem = match walk {
            Ok(problem) => problem,
            Err(e) => Some(Problem {
                seq: Some(n_verified + 1),
                kind: ProblemKind::FileDamaged,
                detail: format!("SQLite could not read it: {e}"),
            }),
        };
        Walked { n_verified, head, head_found, problem, n_retractions: None }
    }

    /// The chain checked on every core: each entry's hash is recomputed from the hash stored
    /// before it, so chunks of entries are independent. `None` when anything is off, for the
    /// exact walk to report.
    fn fast_walk(
        &self,
        expected_head: Option<EntryHash>,
        progress: &dyn Fn(u64),
    ) -> rusqlite::Result<Option<Walked>> {
        let mut statement = self.connection().prepare(
            "SELECT seq, id, type, at, recorded_at, keypack, body, hash FROM entries ORDER BY seq",
        )?;
        let mut rows = statement.query([])?;
        let mut prev_hash = EntryHash::GENESIS;
        let mut n_read = 0u64;
        let mut last_recorded_at = i64::MIN;
        let mut walked = Walked {
            n_verified: 0,
            head: EntryHash::GENESIS,
            head_found: expected_head == Some(EntryHash::GENESIS),
            problem: None,
            n_retractions: Some(0),
        };
        let outcome = pipeline::in_order(
            || {
                let mut chunk = ChainChunk::new(n_read + 1, prev_hash);
                while chunk.rows.len() < CHUNK_ROWS {
                    let Some(row) = rows.next()? else { break };
                    if !chunk.push(row)? {
                        return Err(Fallback::Exact);
                    }
                }
                n_read += chunk.rows.len() as u64;
                prev_hash = chunk.rows.last().map_or(prev_hash, |r| r.hash);
                Ok((!chunk.rows.is_empty()).then_some(chunk))
            },
            |chunk| chunk.check(expected_head),
            |checked| {
                let checked = checked.take().ok_or(Fallback::Exact)?;
                if checked.first_recorded_at < last_recorded_at {
                    return Err(Fallback::Exact);
                }
                last_recorded_at = checked.last_recorded_at;
                walked.n_verified += checked.n_rows;
                progress(walked.n_verified);
                walked.head = checked.last_hash;
                walked.head_found |= checked.head_found;
                walked.n_retractions = walked.n_retractions.map(|n| n + checked.n_retractions);
                Ok(())
            },
        );
        match outcome {
            Ok(()) => Ok(Some(walked)),
            Err(Fallback::Exact) => Ok(None),
            Err(Fallback::Sqlite(e)) => Err(e),
        }
    }

    /// Walks the chain and returns its first break. `verified` is called with the hash of each
    /// entry found sound, in order.
    /// The exact walk, entry by entry; `second_reader` also reads each entry with ciborium and
    /// compares (`Depth::Deep`).
    fn walk_chain(
        &self,
        second_reader: bool,
        mut verified: impl FnMut(EntryHash),
    ) -> rusqlite::Result<Option<Problem>> {
        let mut statement = self.connection().prepare(
            "SELECT seq, id, type, at, recorded_at, keypack, body, hash FROM entries ORDER BY seq",
        )?;
        let mut rows = statement.query([])?;
        let mut prev = EntryHash::GENESIS;
        let mut expected_seq: u64 = 1;
        let mut last_recorded_at = i64::MIN;
        let mut current = rows.next()?.map(Row::read).transpose()?;
        while let Some(row) = current {
            // One row of look-ahead tells a changed hash from changed content.
            let next = rows.next()?.map(Row::read).transpose()?;
            let checked =
                check_entry(&row, next.as_ref(), expected_seq, &prev, &mut last_recorded_at);
            let checked = checked.and_then(|hash| {
                if second_reader && let Err(why) = caltrail_events::cbor::cross_check(row.body()) {
                    return Err(Problem {
                        seq: Some(expected_seq),
                        kind: ProblemKind::NotAnEntry,
                        detail: format!("its hash matches but its bytes: {why}"),
                    });
                }
                Ok(hash)
            });
            match checked {
                Ok(hash) => {
                    verified(hash);
                    prev = hash;
                    expected_seq += 1;
                }
                Err(problem) => return Ok(Some(problem)),
            }
            current = next;
        }
        Ok(None)
    }

    /// The retractions index (`RETRACTIONS_INDEX`) against the table: a replay reads the
    /// retractions from it, so among the first `n_verified` entries it must hold as many as
    /// the chain has retractions (entries appended since the walk are left out of both).
    /// `counted` is the walk's count, when it has one; otherwise the table is read.
    fn retractions_index_problem(&self, n_verified: u64, counted: Option<u64>) -> Option<Problem> {
        let conn = self.connection();
        let n = i64::try_from(n_verified).unwrap_or(i64::MAX);
        let counts = || -> rusqlite::Result<Option<(i64, i64)>> {
            let exists: i64 = conn.query_row(
                "SELECT count(*) FROM pragma_index_list('entries') WHERE name = 'entries_retractions'",
                [],
                |row| row.get(0),
            )?;
            if exists == 0 {
                return Ok(None);
            }
            let count = |sql: String| conn.query_row(&sql, [n], |row| row.get::<_, i64>(0));
            let indexed = count(format!(
                "SELECT count(*) FROM entries INDEXED BY entries_retractions WHERE type = '{RETRACTION}' AND seq <= ?1"
            ))?;
            let in_table = match counted.and_then(|n| i64::try_from(n).ok()) {
                Some(n) => n,
                None => count(format!(
                    "SELECT count(*) FROM entries NOT INDEXED WHERE type = '{RETRACTION}' AND seq <= ?1"
                ))?,
            };
            Ok(Some((indexed, in_table)))
        };
        match counts() {
            Ok(Some((indexed, in_table))) if indexed != in_table => Some(damaged(format!(
                "the index entries_retractions holds {indexed} entries, the table {in_table} retractions"
            ))),
            Ok(_) => None,
            Err(e) => {
                Some(damaged(format!("SQLite could not read the index entries_retractions: {e}")))
            }
        }
    }

    fn guard_problem(&self) -> Result<Option<Problem>, StoreError> {
        let conn = self.connection();
        let table: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'entries'",
                [],
                |row| row.get(0),
            )
            .optional()
            .map_err(|e| self.classify(e))?;
        let mut statement = conn
            .prepare(
                "SELECT sql FROM sqlite_schema WHERE type = 'trigger' AND tbl_name = 'entries'",
            )
            .map_err(|e| self.classify(e))?;
        let triggers: Vec<String> = statement
            .query_map([], |row| row.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.classify(e))?;
        let missing = match table {
            Some(table) => guards_missing(&table, &triggers),
            None => TRIGGERS.iter().map(|(name, _)| *name).collect(),
        };
        if missing.is_empty() {
            return Ok(None);
        }
        Ok(Some(Problem {
            seq: None,
            kind: ProblemKind::GuardRemoved,
            detail: format!(
                "the append-only triggers {} are missing or altered: the file was changed outside caltrail",
                missing.join(", ")
            ),
        }))
    }
}

/// The guard rails that do not do their job, judged by what the ledger's own triggers do, not by
/// how their text is spelled: on a scratch copy of the ledger's table in memory, with the
/// ledger's triggers, an update, a delete, a replace, an insert out of sequence and an insert of
/// a used id must each be refused, and the next entry accepted. A ledger whose triggers another
/// build laid out or named otherwise still verifies; one whose triggers no longer refuse does not.
fn guards_missing(table_sql: &str, triggers: &[String]) -> Vec<&'static str> {
    const UPDATE: &str = "entries_no_update";
    const DELETE: &str = "entries_no_delete";
    const APPEND: &str = "entries_append_only";
    let all = vec![UPDATE, DELETE, APPEND];
    let Ok(scratch) = rusqlite::Connection::open_in_memory() else { return all };
    if scratch.execute_batch(table_sql).is_err() {
        return all;
    }
    let insert = |seq: i64, id: &str, keypack: &str| {
        scratch.execute(
            "INSERT INTO entries (seq, id, type, at, recorded_at, keypack, body, hash) \
             VALUES (?1, ?2, 'cal.issued', 0, 0, ?3, x'00', zeroblob(32))",
            rusqlite::params![seq, id, keypack],
        )
    };
    if insert(1, "first", "pack-1").is_err() {
        return all;
    }
    for trigger in triggers {
        if scratch.execute_batch(trigger).is_err() {
            return all;
        }
    }
    // Each probe runs alone and is undone, so that one a trigger lets through does not change
    // what the next one meets.
    let probe = |run: &dyn Fn() -> rusqlite::Result<usize>| {
        let _ = scratch.execute_batch("SAVEPOINT probe");
        let refused = run().is_err();
        let _ = scratch.execute_batch("ROLLBACK TO probe; RELEASE probe");
        refused
    };
    let refused = |sql: &str| probe(&|| scratch.execute(sql, []));
    let mut missing = Vec::new();
    if !refused("UPDATE entries SET type = 'changed' WHERE seq = 1") {
        missing.push(UPDATE);
    }
    if !refused("DELETE FROM entries WHERE seq = 1") {
        missing.push(DELETE);
    }
    let replace = "INSERT OR REPLACE INTO entries (seq, id, type, at, recorded_at, keypack, body, hash) \
                   VALUES (1, 'other', 'cal.issued', 0, 0, NULL, x'00', zeroblob(32))";
    let appends_only = refused(replace)
        && probe(&|| insert(5, "gap", "pack-5"))
        && probe(&|| insert(2, "first", "pack-2"))
        && !probe(&|| insert(2, "second", "pack-2"));
    if !appends_only {
        missing.push(APPEND);
    }
    missing
}

fn check_entry(
    row: &Row,
    next: Option<&Row>,
    expected_seq: u64,
    prev: &EntryHash,
    last_recorded_at: &mut i64,
) -> Result<EntryHash, Problem> {
    let problem = |kind, detail: String| Problem { seq: Some(expected_seq), kind, detail };
    if row.seq != expected_seq as i64 {
        return Err(if row.seq > expected_seq as i64 {
            problem(
                ProblemKind::EntryMissing,
                format!("the entry is not there; the next stored entry is {}", row.seq),
            )
        } else {
            problem(ProblemKind::OutOfOrder, format!("an entry is stored with seq {}", row.seq))
        });
    }
    let body = row.body();
    let decoded = Entry::decode(body);
    if let Ok(entry) = &decoded
        && entry.seq != expected_seq
    {
        return Err(problem(
            ProblemKind::OutOfOrder,
            format!("it holds the bytes of entry {}: entries were moved or swapped", entry.seq),
        ));
    }
    let recomputed = EntryHash::chain(prev, body);
    let Some(stored) = row.hash() else {
        return Err(problem(
            ProblemKind::HashChanged,
            "the stored hash is not 32 bytes".to_owned(),
        ));
    };
    if recomputed != stored {
        let links = |from: &EntryHash| {
            next.is_some_and(|n| n.hash() == Some(EntryHash::chain(from, n.body())))
        };
        return Err(if links(&stored) {
            problem(
                ProblemKind::ContentChanged,
                "its stored bytes no longer match its hash, which the next entry still links to"
                    .to_owned(),
            )
        } else if links(&recomputed) {
            problem(
                ProblemKind::HashChanged,
                format!("its stored hash is {stored}, but its bytes hash to {recomputed}"),
            )
        } else {
            problem(
                ProblemKind::ContentOrHashChanged,
                format!("its bytes hash to {recomputed}, but the stored hash is {stored}"),
            )
        });
    }
    let entry = decoded.map_err(|e| {
        problem(ProblemKind::NotAnEntry, format!("its hash matches but its bytes are {e}"))
    })?;
    let column = |name: &str, stored: &SqlValue, expected: SqlValue| {
        if *stored == expected {
            Ok(())
        } else {
            Err(problem(
                ProblemKind::ColumnChanged,
                format!("column {name} holds {}, its bytes say {}", show(stored), show(&expected)),
            ))
        }
    };
    let event = &entry.event;
    column("id", &row.id, SqlValue::Text(event.id.as_str().to_owned()))?;
    column("type", &row.event_type, SqlValue::Text(event.event_type().as_str().to_owned()))?;
    column("at", &row.at, SqlValue::Integer(event.at.micros()))?;
    column("recorded_at", &row.recorded_at, SqlValue::Integer(entry.recorded_at.micros()))?;
    let keypack = event.new_keypack().map(Name::as_str);
    column(
        "keypack",
        &row.keypack,
        keypack.map_or(SqlValue::Null, |k| SqlValue::Text(k.to_owned())),
    )?;
    let recorded_at = entry.recorded_at.micros();
    if recorded_at < *last_recorded_at {
        return Err(problem(
            ProblemKind::RecordedAtWentBack,
            format!("recorded at {}, before the entry ahead of it", entry.recorded_at),
        ));
    }
    *last_recorded_at = recorded_at;
    Ok(stored)
}

fn show(value: &SqlValue) -> String {
    match value {
        SqlValue::Null => "NULL".to_owned(),
        SqlValue::Integer(i) => i.to_string(),
        SqlValue::Real(f) => f.to_string(),
        SqlValue::Text(s) => format!("{s:?}"),
        SqlValue::Blob(b) => format!("a blob of {} bytes", b.len()),
    }
}

/// SQLite's own check of the file, on `conn`. `Deep`: `integrity_check`, every page and every
/// index entry against the table. `Chain`: every page of every index and of every other table is
/// read (the chain walk reads the table's), which finds a damaged page, and each index must
/// count the table's rows, all in one read transaction. That count is `rows_read`, what the
/// chain walk read, when it read the same entries as this transaction sees (the same last `seq`:
/// entries are only ever appended); otherwise, as when an append committed between the two, the
/// table is counted here.
fn sqlite_check(
    conn: &rusqlite::Connection,
    depth: Depth,
    path: &std::path::Path,
    rows_read: impl FnOnce() -> Option<u64>,
) -> Result<Option<Problem>, StoreError> {
    let sql_error = |error| StoreError::Sqlite { path: path.to_owned(), error };
    if depth == Depth::Deep {
        let mut statement = conn.prepare("PRAGMA integrity_check(5)").map_err(sql_error)?;
        let messages: Vec<String> = match statement
            .query_map([], |row| row.get::<_, String>(0))
            .and_then(|rows| rows.collect())
        {
            Ok(messages) => messages,
            Err(e) => vec![e.to_string()],
        };
        if messages == ["ok"] {
            return Ok(None);
        }
        return Ok(Some(damaged(format!(
            "SQLite's integrity check failed: {}",
            messages.join("; ")
        ))));
    }
    // One snapshot for every count below: an append committing in between must not make the
    // table and an index disagree. Read only, so it is rolled back when dropped.
    let _snapshot = conn.unchecked_transaction().map_err(sql_error)?;
    let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0));
    // A partial index holds only some rows: the retractions index is counted against the
    // chain's retractions once the walk has counted them; another one cannot be judged here.
    let indexes: Vec<String> = match conn
        .prepare("SELECT name FROM pragma_index_list('entries') WHERE NOT partial")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
    {
        Ok(names) => names,
        Err(e) => return Ok(Some(damaged(format!("SQLite could not read the schema: {e}")))),
    };
    let last_seq = match count("SELECT coalesce(max(seq), 0) FROM entries") {
        Ok(last_seq) => last_seq,
        Err(e) => return Ok(Some(damaged(format!("SQLite could not read the table: {e}")))),
    };
    let mut index_counts = Vec::with_capacity(indexes.len());
    for index in indexes {
        // A count with a `WHERE` steps through every entry of the index it is told to use,
        // reading every page and none of the entries' columns. A plain count(*) would be
        // answered from the smallest index, whatever `INDEXED BY` says; a test holds SQLite to
        // this for an index that is not the smallest.
        let scanned = count(&format!(
            "SELECT count(*) FROM entries INDEXED BY \"{}\" WHERE 1",
            index.replace('"', "\"\"")
        ));
        match scanned {
            Ok(n) => index_counts.push((index, n)),
            Err(e) => {
                return Ok(Some(damaged(format!("SQLite could not read the index {index}: {e}"))));
            }
        }
    }
    // The other tables (the tree's, the checkpoints) are outside the chain, but their pages
    // are the file's: a damaged one is a damaged file. Every table the file holds is read,
    // every column of every row, which walks every page, whatever tables a build adds.
    let others: Vec<String> = match conn
        .prepare(
            "SELECT name FROM sqlite_schema WHERE type = 'table' AND name <> 'entries' \
             AND name NOT LIKE 'sqlite_%'",
        )
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
    {
        Ok(names) => names,
        Err(e) => return Ok(Some(damaged(format!("SQLite could not read the schema: {e}")))),
    };
    for table in others {
        let read = conn
            .prepare("SELECT name FROM pragma_table_info(?1)")
            .and_then(|mut s| s.query_map([&table], |row| row.get::<_, String>(0))?.collect())
            .and_then(|columns: Vec<String>| {
                let lengths: Vec<String> = columns
                    .iter()
                    .map(|c| format!("coalesce(sum(length(\"{}\")), 0)", c.replace('"', "\"\"")))
                    .collect();
                let table_name = table.replace('"', "\"\"");
                count(&format!(
                    "SELECT count(*) + 0 * ({}) FROM \"{table_name}\"",
                    if lengths.is_empty() { "0".to_owned() } else { lengths.join(" + ") }
                ))
            });
        if let Err(e) = read {
            return Ok(Some(damaged(format!("SQLite could not read the table {table}: {e}"))));
        }
    }
    let rows = match rows_read() {
        Some(n) if i64::try_from(n) == Ok(last_seq) => last_seq,
        _ => match count("SELECT count(*) FROM entries NOT INDEXED") {
            Ok(rows) => rows,
            Err(e) => return Ok(Some(damaged(format!("SQLite could not read the table: {e}")))),
        },
    };
    for (index, n) in index_counts {
        if n != rows {
            return Ok(Some(damaged(format!(
                "the index {index} holds {n} entries, the table {rows}"
            ))));
        }
    }
    Ok(None)
}

fn damaged(detail: String) -> Problem {
    Problem { seq: None, kind: ProblemKind::FileDamaged, detail }
}

/// What a chain walk found.
struct Walked {
    n_verified: u64,
    head: EntryHash,
    head_found: bool,
    /// The first break of the chain.
    problem: Option<Problem>,
    /// The retractions among the entries, when the walk counted them.
    n_retractions: Option<u64>,
}

impl Walked {
    /// The number of rows the table holds, when the walk read every one and found them the
    /// unbroken chain `1..=n` (the fast walk, with nothing to report).
    fn rows_read(&self) -> Option<u64> {
        (self.problem.is_none() && self.n_retractions.is_some()).then_some(self.n_verified)
    }
}

/// Why the fast walk stopped.
enum Fallback {
    /// Something is off: the exact walk says what.
    Exact,
    Sqlite(rusqlite::Error),
}

impl From<rusqlite::Error> for Fallback {
    fn from(error: rusqlite::Error) -> Fallback {
        Fallback::Sqlite(error)
    }
}

/// One stored row for the fast walk; its texts and bytes are in the chunk's buffer.
struct ChainRow {
    seq: i64,
    at: i64,
    recorded_at: i64,
    id_end: usize,
    type_end: usize,
    keypack_end: Option<usize>,
    body_end: usize,
    hash: EntryHash,
}

/// Consecutive rows, with the stored hash of the row before the first.
struct ChainChunk {
    first_seq: u64,
    prev_hash: EntryHash,
    rows: Vec<ChainRow>,
    buf: Vec<u8>,
}

/// A chunk found sound.
struct Checked {
    n_rows: u64,
    first_recorded_at: i64,
    last_recorded_at: i64,
    last_hash: EntryHash,
    head_found: bool,
    n_retractions: u64,
}

impl ChainChunk {
    fn new(first_seq: u64, prev_hash: EntryHash) -> ChainChunk {
        ChainChunk {
            first_seq,
            prev_hash,
            rows: Vec::with_capacity(CHUNK_ROWS),
            buf: Vec::with_capacity(CHUNK_ROWS * 400),
        }
    }

    /// Copies a row; false when a column does not have the type the ledger gives it.
    fn push(&mut self, row: &rusqlite::Row) -> rusqlite::Result<bool> {
        use rusqlite::types::ValueRef;
        let (ValueRef::Text(id), ValueRef::Text(event_type), ValueRef::Blob(body)) =
            (row.get_ref(1)?, row.get_ref(2)?, row.get_ref(6)?)
        else {
            return Ok(false);
        };
        let (ValueRef::Integer(at), ValueRef::Integer(recorded_at)) =
            (row.get_ref(3)?, row.get_ref(4)?)
        else {
            return Ok(false);
        };
        let Some(hash) = row.get_ref(7)?.as_blob().ok().and_then(EntryHash::from_slice) else {
            return Ok(false);
        };
        self.buf.extend_from_slice(id);
        let id_end = self.buf.len();
        self.buf.extend_from_slice(event_type);
        let type_end = self.buf.len();
        let keypack_end = match row.get_ref(5)? {
            ValueRef::Null => None,
            ValueRef::Text(keypack) => {
                self.buf.extend_from_slice(keypack);
                Some(self.buf.len())
            }
            _ => return Ok(false),
        };
        self.buf.extend_from_slice(body);
        let body_end = self.buf.len();
        self.rows.push(ChainRow {
            seq: row.get(0)?,
            at,
            recorded_at,
            id_end,
            type_end,
            keypack_end,
            body_end,
            hash,
        });
        Ok(true)
    }

    /// Checks every row; `None` at the first that is not sound.
    fn check(self, expected_head: Option<EntryHash>) -> Option<Checked> {
        let mut start = 0;
        let mut last_recorded_at = i64::MIN;
        let mut head_found = false;
        let mut n_retractions = 0;
        // Entries of one append share their `recorded_at`: parsed once per run of them.
        let mut parsed_recorded_at: Option<(&[u8], i64)> = None;
        let bytes = |from: usize, to: usize| &self.buf[from..to];
        let body_start = |row: &ChainRow| row.keypack_end.unwrap_or(row.type_end);
        // Each hash from the stored hash before it, so all of them at once.
        let pairs: Vec<(EntryHash, &[u8])> = self
            .rows
            .iter()
            .scan(self.prev_hash, |prev, row| {
                let pair = (*prev, bytes(body_start(row), row.body_end));
                *prev = row.hash;
                Some(pair)
            })
            .collect();
        let hashes = hash_lanes::chain_all(&pairs);
        for (i, ((row, (_, body)), hash)) in self.rows.iter().zip(&pairs).zip(hashes).enumerate() {
            let keypack = row.keypack_end.map(|end| bytes(row.type_end, end));
            let (id, event_type) = (bytes(start, row.id_end), bytes(row.id_end, row.type_end));
            start = row.body_end;
            let seq = self.first_seq + i as u64;
            if row.seq != seq as i64 || hash != row.hash {
                return None;
            }
            let columns = EntryColumns::read(body).ok()?;
            let micros = |text: &[u8]| Timestamp::parse_bytes(text).map(Timestamp::micros);
            let recorded_at = match parsed_recorded_at {
                Some((text, micros)) if text == columns.recorded_at => Some(micros),
                _ => micros(columns.recorded_at),
            };
            parsed_recorded_at = recorded_at.map(|m| (columns.recorded_at, m));
            let sound = columns.seq == seq
                && columns.id == id
                && columns.event_type == event_type
                && columns.keypack == keypack
                && micros(columns.at) == Some(row.at)
                && recorded_at == Some(row.recorded_at)
                && row.recorded_at >= last_recorded_at;
            if !sound {
                return None;
            }
            last_recorded_at = row.recorded_at;
            head_found |= expected_head == Some(row.hash);
            n_retractions += u64::from(event_type == RETRACTION.as_bytes());
        }
        Some(Checked {
            n_rows: self.rows.len() as u64,
            first_recorded_at: self.rows.first().map_or(i64::MAX, |r| r.recorded_at),
            last_recorded_at,
            last_hash: self.rows.last().map_or(self.prev_hash, |r| r.hash),
            head_found,
            n_retractions,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::guards_missing;
    use crate::ledger::TRIGGERS;

    #[test]
    fn triggers_are_judged_by_what_they_refuse_not_by_their_spelling() {
        let table = crate::ledger::SCHEMA.split_once(';').map(|(t, _)| t).unwrap_or_default();
        let written: Vec<String> = TRIGGERS.iter().map(|(_, sql)| (*sql).to_owned()).collect();
        assert!(guards_missing(table, &written).is_empty());
        let laid_out: Vec<String> = written
            .iter()
            .map(|sql| {
                sql.to_lowercase()
                    .replace("before", "\n  BEFORE")
                    .replace(" on entries", " ON \"entries\"")
            })
            .collect();
        assert!(guards_missing(table, &laid_out).is_empty(), "{laid_out:?}");
        // One trigger changed at a time: RAISE(IGNORE) skips the change without refusing it.
        let refusal = "RAISE(ABORT, 'caltrail ledger entries are append-only')";
        for (index, from, to, missing) in [
            (0, refusal, "RAISE(IGNORE)", "entries_no_update"),
            (1, "ON entries BEGIN", "ON entries WHEN 0 BEGIN", "entries_no_delete"),
            (2, refusal, "RAISE(IGNORE)", "entries_append_only"),
        ] {
            let mut triggers = written.clone();
            triggers[index] = triggers[index].replacen(from, to, 1);
            assert_eq!(guards_missing(table, &triggers), [missing], "{}", triggers[index]);
        }
        assert_eq!(guards_missing(table, &written[..2]), ["entries_append_only"]);
    }
}

/// Each index of the entries against the table's rows.
#[cfg(test)]
mod index_counts {
    use caltrail_events::{Event, Timestamp};

    use super::{Depth, sqlite_check};
    use crate::ledger::Ledger;

    /// Each index must count the table's rows, whether the walk read the same entries as the
    /// check (the count is the walk's), fewer (an append committed between the two: the check
    /// counts the table itself) or none it could vouch for. The index on `id` is the largest:
    /// a count SQLite answered from another index would miss its loss.
    #[test]
    fn each_index_must_count_the_tables_rows() {
        for index in ["entries_at", "sqlite_autoindex_entries_1"] {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("l.db");
            let mut ledger = Ledger::open_or_create(&path).unwrap();
            let events: Vec<Event> = ["ls01", "ls02", "ls03"]
                .iter()
                .map(|server| {
                    Event::from_json(&format!(
                        r#"{{"id":"{server}","type":"server.deactivated","at":"2025-01-01T00:00:00Z","data":{{"server":"{server}","method":"telephone"}}}}"#
                    ))
                    .unwrap()
                })
                .collect();
            ledger.append(&events, Timestamp::parse("2025-02-01T00:00:00Z").unwrap()).unwrap();
            let check = |conn: &rusqlite::Connection, rows: Option<u64>| {
                sqlite_check(conn, Depth::Chain, &path, || rows).unwrap().map(|p| p.detail)
            };
            let conn = rusqlite::Connection::open(&path).unwrap();
            for rows in [Some(3), Some(2), None] {
                assert_eq!(check(&conn, rows), None, "{index} {rows:?}");
            }
            // The index loses an entry: its pages become those of an index of two rows.
            conn.execute_batch(
                "CREATE TABLE other (at INTEGER); INSERT INTO other VALUES (1), (2);
                 CREATE INDEX other_at ON other (at);",
            )
            .unwrap();
            let root: i64 = conn
                .query_row(
                    "SELECT rootpage FROM sqlite_schema WHERE name = 'other_at'",
                    [],
                    |row| row.get(0),
                )
                .unwrap();
            conn.execute_batch("PRAGMA writable_schema = ON").unwrap();
            conn.execute("UPDATE sqlite_schema SET rootpage = ?1 WHERE name = ?2", (root, index))
                .unwrap();
            drop(conn);
            let conn = rusqlite::Connection::open(&path).unwrap();
            for rows in [Some(3), Some(2), None] {
                assert_eq!(
                    check(&conn, rows),
                    Some(format!("the index {index} holds 2 entries, the table 3")),
                    "{index} {rows:?}"
                );
            }
        }
    }
}

/// The retractions index is judged over the entries the walk verified: a retraction appended
/// after the walk, which the index already holds, is no damage.
#[cfg(test)]
mod retractions_index {
    use caltrail_events::{Event, Timestamp};

    use crate::ledger::Ledger;

    #[test]
    fn only_the_entries_walked_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let mut ledger = Ledger::open_or_create(&dir.path().join("l.db")).unwrap();
        let lines = [
            r#"{"id":"a","type":"server.deactivated","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","method":"telephone"}}"#,
            r#"{"id":"b","type":"server.deactivated","at":"2025-01-02T00:00:00Z","data":{"server":"ls02","method":"telephone"}}"#,
            r#"{"id":"r","type":"event.retracted","at":"2025-01-03T00:00:00Z","data":{"retracts":"a","reason":"recorded twice"}}"#,
        ];
        let events: Vec<Event> = lines.iter().map(|l| Event::from_json(l).unwrap()).collect();
        ledger.append(&events, Timestamp::parse("2025-02-01T00:00:00Z").unwrap()).unwrap();
        // A walk of the first two entries met no retraction; the third came after it.
        assert_eq!(ledger.retractions_index_problem(2, Some(0)).map(|p| p.detail), None);
        assert_eq!(ledger.retractions_index_problem(2, None).map(|p| p.detail), None);
        assert_eq!(ledger.retractions_index_problem(3, Some(1)).map(|p| p.detail), None);
        assert_eq!(ledger.retractions_index_problem(3, None).map(|p| p.detail), None);
        assert_eq!(
            ledger.retractions_index_problem(3, Some(0)).map(|p| p.detail).as_deref(),
            Some("the index entries_retractions holds 1 entries, the table 0 retractions")
        );
    }
}
