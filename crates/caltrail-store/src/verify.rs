//! Verification: re-hashing the stored bytes of every entry in order, checking `seq`, the
//! columns kept beside the bytes, SQLite's own integrity and the guard-rail triggers. It reads
//! only; it never re-encodes an event, since the hash covers the bytes as stored.

use std::fmt;

use caltrail_events::{Entry, Name};
use rusqlite::types::Value as SqlValue;

use crate::error::StoreError;
use crate::hash::EntryHash;
use crate::ledger::{Ledger, TRIGGERS};

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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The entry it is about, when it is about one.
    pub seq: Option<u64>,
    pub kind: ProblemKind,
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

impl Ledger {
    /// Verifies the whole ledger. `expected_head`, a head hash kept outside the file, must be
    /// the hash of one of the entries: otherwise the tail was cut off or rewritten.
    pub fn verify(&self, expected_head: Option<EntryHash>) -> Result<VerifyReport, StoreError> {
        let mut problems = Vec::new();
        if let Some(problem) = self.integrity_problem()? {
            problems.push(problem);
        }
        let mut head = EntryHash::GENESIS;
        let mut n_verified = 0u64;
        let mut head_found = expected_head == Some(EntryHash::GENESIS);
        let walk = self.walk_chain(|hash| {
            head = hash;
            n_verified += 1;
            head_found |= expected_head == Some(hash);
        });
        match walk {
            Ok(Some(problem)) => problems.push(problem),
            Ok(None) => {}
            Err(e) => problems.push(Problem {
                seq: Some(n_verified + 1),
                kind: ProblemKind::FileDamaged,
                detail: format!("SQLite could not read it: {e}"),
            }),
        }
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

    fn integrity_problem(&self) -> Result<Option<Problem>, StoreError> {
        let mut statement =
            self.connection().prepare("PRAGMA integrity_check(5)").map_err(|e| self.classify(e))?;
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
        Ok(Some(Problem {
            seq: None,
            kind: ProblemKind::FileDamaged,
            detail: format!("SQLite's integrity check failed: {}", messages.join("; ")),
        }))
    }

    /// Walks the chain and returns its first break. `verified` is called with the hash of each
    /// entry found sound, in order.
    fn walk_chain(&self, mut verified: impl FnMut(EntryHash)) -> rusqlite::Result<Option<Problem>> {
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
            match check_entry(&row, next.as_ref(), expected_seq, &prev, &mut last_recorded_at) {
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

    fn guard_problem(&self) -> Result<Option<Problem>, StoreError> {
        let mut statement = self
            .connection()
            .prepare("SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' ORDER BY name")
            .map_err(|e| self.classify(e))?;
        let found: Vec<(String, String)> = statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.classify(e))?;
        let missing: Vec<&str> = TRIGGERS
            .iter()
            .filter(|(name, sql)| !found.iter().any(|(n, s)| n == name && s == sql))
            .map(|(name, _)| *name)
            .collect();
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
