//! What SQLite alone does with a ledger's rows, to measure caltrail beside: the same rows
//! inserted with no parsing, encoding, hashing or guard rails, and read back with no decoding or
//! hashing. Benchmark code, with its own rusqlite: nothing here is part of the ledger.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use rusqlite::{Connection, TransactionBehavior, params};

/// One stored row, as the `entries` table holds it.
pub(crate) struct RawRow {
    seq: i64,
    id: String,
    event_type: String,
    at: i64,
    recorded_at: i64,
    keypack: Option<String>,
    body: Vec<u8>,
    hash: Vec<u8>,
}

/// The ledger's `entries` table and its indexes, as the ledger itself declares them, without
/// the guard-rail triggers.
fn entries_schema(conn: &Connection) -> rusqlite::Result<String> {
    let mut statement = conn.prepare(
        "SELECT sql FROM sqlite_master WHERE tbl_name = 'entries' AND type IN ('table', 'index') \
         AND sql IS NOT NULL ORDER BY type = 'index', name",
    )?;
    let parts =
        statement.query_map([], |row| row.get::<_, String>(0))?.collect::<Result<Vec<_>, _>>()?;
    Ok(parts.iter().map(|sql| format!("{sql};\n")).collect())
}

impl RawRow {
    /// The stored entry bytes.
    pub(crate) fn body(&self) -> &[u8] {
        &self.body
    }
    /// The stored hash.
    pub(crate) fn hash(&self) -> &[u8] {
        &self.hash
    }
}

/// Reads every row of a ledger into memory.
pub(crate) fn read_rows(ledger: &Path) -> anyhow::Result<(Vec<RawRow>, String)> {
    let e =
        |error: rusqlite::Error| anyhow::Error::new(error).context(ledger.display().to_string());
    let conn = Connection::open(ledger).map_err(e)?;
    let schema = entries_schema(&conn).map_err(e)?;
    let mut statement = conn
        .prepare(
            "SELECT seq, id, type, at, recorded_at, keypack, body, hash FROM entries ORDER BY seq",
        )
        .map_err(e)?;
    let rows = statement
        .query_map([], |r| {
            Ok(RawRow {
                seq: r.get(0)?,
                id: r.get(1)?,
                event_type: r.get(2)?,
                at: r.get(3)?,
                recorded_at: r.get(4)?,
                keypack: r.get(5)?,
                body: r.get(6)?,
                hash: r.get(7)?,
            })
        })
        .map_err(e)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(e)?;
    Ok((rows, schema))
}

/// Inserts `rows` into a new database at `path` with the ledger's table and indexes (`schema`,
/// from [`read_rows`]), WAL and `synchronous=FULL`, in one transaction as `append` does; returns
/// the time taken.
pub(crate) fn plain_insert(path: &Path, rows: &[RawRow], schema: &str) -> anyhow::Result<Duration> {
    let e = |error: rusqlite::Error| anyhow::Error::new(error).context(path.display().to_string());
    let mut conn = Connection::open(path).map_err(e)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
    conn.pragma_update(None, "synchronous", "FULL").map_err(e)?;
    conn.execute_batch(schema).with_context(|| format!("the ledger's schema:\n{schema}"))?;
    let started = Instant::now();
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(e)?;
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO entries (seq, id, type, at, recorded_at, keypack, body, hash) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )
            .map_err(e)?;
        for r in rows {
            insert
                .execute(params![
                    r.seq,
                    r.id,
                    r.event_type,
                    r.at,
                    r.recorded_at,
                    r.keypack,
                    r.body,
                    r.hash
                ])
                .map_err(e)?;
        }
    }
    tx.commit().map_err(e)?;
    Ok(started.elapsed())
}

/// Reads every row's bytes and hash in order and touches them; returns the rows and the time.
pub(crate) fn plain_scan(ledger: &Path) -> anyhow::Result<(u64, Duration)> {
    scan(ledger, "SELECT body, hash FROM entries ORDER BY seq")
}

/// Reads every column `verify` compares (the stored bytes, the hash and the five columns kept
/// beside them) in order and touches them: what reading alone costs `verify`.
pub(crate) fn plain_scan_all_columns(ledger: &Path) -> anyhow::Result<(u64, Duration)> {
    scan(
        ledger,
        "SELECT seq, id, type, at, recorded_at, keypack, body, hash FROM entries ORDER BY seq",
    )
}

fn scan(ledger: &Path, sql: &str) -> anyhow::Result<(u64, Duration)> {
    use rusqlite::types::ValueRef;
    let e =
        |error: rusqlite::Error| anyhow::Error::new(error).context(ledger.display().to_string());
    let conn = Connection::open(ledger).map_err(e)?;
    let started = Instant::now();
    let mut statement = conn.prepare(sql).map_err(e)?;
    let n_columns = statement.column_count();
    let mut rows = statement.query([]).map_err(e)?;
    let (mut n, mut checksum) = (0u64, 0u64);
    while let Some(row) = rows.next().map_err(e)? {
        for column in 0..n_columns {
            checksum = checksum.wrapping_add(match row.get_ref(column).map_err(e)? {
                ValueRef::Null => 0,
                ValueRef::Integer(i) => i as u64,
                ValueRef::Real(f) => f.to_bits(),
                ValueRef::Text(bytes) | ValueRef::Blob(bytes) => {
                    bytes.len() as u64 + u64::from(bytes.first().copied().unwrap_or(0))
                }
            });
        }
        n += 1;
    }
    std::hint::black_box(checksum);
    Ok((n, started.elapsed()))
}
