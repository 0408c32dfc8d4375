//! The tamper campaign: a ledger of every fixture story, then random mutations, one at a time on
//! a fresh copy, made through SQL and at the byte level. Every one must be caught by `verify`:
//! at the exact entry where one survives, as a damaged file where SQLite itself breaks, and
//! through a kept head for a cut-off or recomputed tail. Prints the detection table.
//! `CALTRAIL_LONG_TESTS=1` runs 5,000 mutations instead of 1,000.

use std::collections::BTreeMap;
use std::path::Path;

use caltrail_events::Entry;
use caltrail_store::{Depth, EntryHash, Ledger, ProblemKind};
use rusqlite::{Connection, params};

use crate::{Sandbox, stories};
/// The workspace's reproducible generator: a failing mutation is replayed from its seed.
pub(crate) use caltrail_generate::Rng;

const TRIGGERS: [&str; 3] = ["entries_no_update", "entries_no_delete", "entries_append_only"];

/// What a mutation must be caught as.
enum Expect {
    /// The first break is at this entry.
    AtSeq(u64),
    /// Only the head kept before the mutation reveals it.
    ByHead,
    /// SQLite's own structure is broken: the file is not a valid ledger.
    FileDamaged,
}

/// Runs SQL on the file with the guard rails dropped, then puts them back as a forger would.
pub(crate) fn with_sql(path: &Path, sql: impl FnOnce(&Connection)) {
    let conn = Connection::open(path).unwrap();
    let saved: Vec<String> = TRIGGERS
        .iter()
        .map(|name| {
            conn.query_row("SELECT sql FROM sqlite_schema WHERE name = ?1", [name], |r| r.get(0))
                .unwrap()
        })
        .collect();
    for name in TRIGGERS {
        conn.execute_batch(&format!("DROP TRIGGER {name}")).unwrap();
    }
    sql(&conn);
    for sql in saved {
        conn.execute_batch(&sql).unwrap();
    }
    conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
}

fn body(conn: &Connection, seq: u64) -> Vec<u8> {
    conn.query_row("SELECT body FROM entries WHERE seq = ?1", [seq as i64], |r| r.get(0)).unwrap()
}

fn hash_of(conn: &Connection, seq: u64) -> EntryHash {
    let bytes: Vec<u8> = conn
        .query_row("SELECT hash FROM entries WHERE seq = ?1", [seq as i64], |r| r.get(0))
        .unwrap();
    EntryHash::from_slice(&bytes).unwrap()
}

/// Re-encodes an entry with one more character in its id, for forgeries that look right.
fn forged_body(original: &[u8], seq: u64, tag: &str) -> (Vec<u8>, String) {
    let mut entry = Entry::decode(original).unwrap();
    entry.seq = seq;
    let id = format!("{}-{tag}", entry.event.id.as_str());
    entry.event.id = caltrail_events::EventId::parse(&id[..id.len().min(128)]).unwrap();
    // A pack name is unique in a ledger: a forged copy names its own.
    let renamed = |name: &caltrail_events::Name| {
        caltrail_events::Name::parse(&format!("{}-{tag}", name.as_str())).unwrap()
    };
    match &mut entry.event.data {
        caltrail_events::EventData::KeypackInstalled(e) => e.keypack = renamed(&e.keypack),
        caltrail_events::EventData::CalsMigrated(e) => e.keypack = renamed(&e.keypack),
        _ => {}
    }
    (entry.encode(), entry.event.id.as_str().to_owned())
}

fn insert(conn: &Connection, seq: u64, body: &[u8], hash: &EntryHash) {
    let entry = Entry::decode(body).unwrap();
    let event = &entry.event;
    conn.execute(
        "INSERT INTO entries (seq, id, type, at, recorded_at, keypack, body, hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            seq as i64,
            event.id.as_str(),
            event.event_type().as_str(),
            event.at.micros(),
            entry.recorded_at.micros(),
            event.new_keypack().map(|k| k.as_str().to_owned()),
            body,
            &hash.0[..]
        ],
    )
    .unwrap();
}

/// Applies mutation `kind` to the ledger at `path` of `n` entries and says how it must be caught.
fn mutate(kind: &str, path: &Path, n: u64, rng: &mut Rng) -> Expect {
    let k = rng.range(2, n - 1);
    match kind {
        "payload byte (SQL)" => {
            with_sql(path, |c| {
                let mut b = body(c, k);
                let i = rng.range(0, b.len() as u64 - 1) as usize;
                b[i] ^= 1 << rng.range(0, 7);
                c.execute("UPDATE entries SET body = ?1 WHERE seq = ?2", params![b, k as i64])
                    .unwrap();
            });
            Expect::AtSeq(k)
        }
        "payload byte (file)" => {
            let original = body(&Connection::open(path).unwrap(), k);
            let mut file = std::fs::read(path).unwrap();
            // The body's bytes in the file; a freed page may still hold an old copy, so the
            // flip counts only where SQLite then reads a changed body.
            let starts: Vec<usize> = file
                .windows(original.len())
                .enumerate()
                .filter(|(_, w)| *w == original.as_slice())
                .map(|(i, _)| i)
                .collect();
            let offset = rng.range(0, original.len() as u64 - 1) as usize;
            let bit = 1u8 << rng.range(0, 7);
            for start in starts {
                file[start + offset] ^= bit;
                std::fs::write(path, &file).unwrap();
                if body(&Connection::open(path).unwrap(), k) != original {
                    return Expect::AtSeq(k);
                }
                file[start + offset] ^= bit;
            }
            panic!("entry {k}'s body is not in the file");
        }
        "hash byte" => {
            with_sql(path, |c| {
                let mut h = hash_of(c, k).0;
                h[rng.range(0, 31) as usize] ^= 1 << rng.range(0, 7);
                c.execute("UPDATE entries SET hash = ?1 WHERE seq = ?2", params![&h[..], k as i64])
                    .unwrap();
            });
            Expect::AtSeq(k)
        }
        "seq" => {
            let to = n + rng.range(1, 1000);
            with_sql(path, |c| {
                c.execute(
                    "UPDATE entries SET seq = ?1 WHERE seq = ?2",
                    params![to as i64, k as i64],
                )
                .unwrap();
            });
            Expect::AtSeq(k)
        }
        "id" => {
            with_sql(path, |c| {
                c.execute("UPDATE entries SET id = id || 'x' WHERE seq = ?1", [k as i64]).unwrap();
            });
            Expect::AtSeq(k)
        }
        "type" => {
            with_sql(path, |c| {
                c.execute(
                    "UPDATE entries SET type = CASE type WHEN 'cal.issued' THEN 'cal.revoked' ELSE 'cal.issued' END WHERE seq = ?1",
                    [k as i64],
                )
                .unwrap();
            });
            Expect::AtSeq(k)
        }
        "at" => {
            let delta = rng.range(1, 1_000_000_000) as i64;
            with_sql(path, |c| {
                c.execute(
                    "UPDATE entries SET at = at - ?1 WHERE seq = ?2",
                    params![delta, k as i64],
                )
                .unwrap();
            });
            Expect::AtSeq(k)
        }
        "delete" => {
            with_sql(path, |c| {
                c.execute("DELETE FROM entries WHERE seq = ?1", [k as i64]).unwrap();
            });
            Expect::AtSeq(k)
        }
        "swap" => {
            let j = rng.range(k + 1, n);
            with_sql(path, |c| {
                c.execute_batch(&format!(
                    "UPDATE entries SET seq = 1000000 WHERE seq = {k}; UPDATE entries SET seq = {k} WHERE seq = {j}; UPDATE entries SET seq = {j} WHERE seq = 1000000;"
                ))
                .unwrap();
            });
            Expect::AtSeq(k)
        }
        "duplicate" => {
            with_sql(path, |c| {
                c.execute(
                    "INSERT INTO entries SELECT ?1, id || '-copy', type, at, recorded_at, NULL, body, hash FROM entries WHERE seq = ?2",
                    params![(n + 1) as i64, k as i64],
                )
                .unwrap();
            });
            Expect::AtSeq(n + 1)
        }
        "forged in the middle" => {
            // Entries from k on move up one; a well-formed entry chained to entry k-1 goes in.
            with_sql(path, |c| {
                for seq in (k..=n).rev() {
                    c.execute(
                        "UPDATE entries SET seq = ?1 WHERE seq = ?2",
                        params![(seq + 1) as i64, seq as i64],
                    )
                    .unwrap();
                }
                let (forged, _) = forged_body(&body(c, k + 1), k, "forged");
                let hash = EntryHash::chain(&hash_of(c, k - 1), &forged);
                insert(c, k, &forged, &hash);
            });
            Expect::AtSeq(k + 1)
        }
        "forged at the end" => {
            with_sql(path, |c| {
                let (forged, _) = forged_body(&body(c, k), n + 1, "forged");
                let mut hash = EntryHash::chain(&hash_of(c, n), &forged);
                hash.0[0] ^= 0x80;
                insert(c, n + 1, &forged, &hash);
            });
            Expect::AtSeq(n + 1)
        }
        "tail rewritten with a recomputed chain" => {
            // A forger who knows the formula rewrites entry k and re-chains everything after it:
            // the chain is sound again, only a head kept outside the file can tell.
            with_sql(path, |c| {
                let mut prev = hash_of(c, k - 1);
                for seq in k..=n {
                    let original = body(c, seq);
                    let bytes = if seq == k {
                        forged_body(&original, seq, "rewritten")
                    } else {
                        let e = Entry::decode(&original).unwrap();
                        (original, e.event.id.as_str().to_owned())
                    };
                    let hash = EntryHash::chain(&prev, &bytes.0);
                    c.execute("DELETE FROM entries WHERE seq = ?1", [seq as i64]).unwrap();
                    insert(c, seq, &bytes.0, &hash);
                    prev = hash;
                }
            });
            Expect::ByHead
        }
        "tail truncated" => {
            with_sql(path, |c| {
                c.execute("DELETE FROM entries WHERE seq >= ?1", [k as i64]).unwrap();
            });
            Expect::ByHead
        }
        "b-tree page byte (file)" => {
            // A byte of a page header: SQLite's own structure, not a stored value.
            let mut file = std::fs::read(path).unwrap();
            let page_size = u16::from_be_bytes([file[16], file[17]]) as usize;
            let pages = file.len() / page_size;
            let page = rng.range(1, pages as u64 - 1) as usize;
            file[page * page_size] = 0x7F;
            std::fs::write(path, file).unwrap();
            Expect::FileDamaged
        }
        other => unreachable!("no mutation {other}"),
    }
}

const KINDS: &[&str] = &[
    "payload byte (SQL)",
    "payload byte (file)",
    "hash byte",
    "seq",
    "id",
    "type",
    "at",
    "delete",
    "swap",
    "duplicate",
    "forged in the middle",
    "forged at the end",
    "tail rewritten with a recomputed chain",
    "tail truncated",
    "b-tree page byte (file)",
];

#[test]
fn every_mutation_is_detected() {
    let n_mutations: usize =
        if std::env::var_os("CALTRAIL_LONG_TESTS").is_some() { 5_000 } else { 1_000 };
    let sandbox = Sandbox::new();
    let paths: Vec<String> = stories().iter().map(|p| p.to_str().unwrap().to_owned()).collect();
    let mut args = vec!["append"];
    args.extend(paths.iter().map(String::as_str));
    sandbox.run(&args).ok();
    // A clean file: no WAL beside it, so that a copy is the whole ledger.
    Connection::open(sandbox.db())
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let clean = Ledger::open_existing(&sandbox.db()).unwrap().verify(None, Depth::Chain).unwrap();
    assert!(clean.is_ok());
    let n = clean.n_verified;
    let head = clean.head;
    let pristine = std::fs::read(sandbox.db()).unwrap();
    let mut rng = Rng::new(0x00ca_17a1);
    let mut table: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let copy = sandbox.dir.path().join("copy.db");
    for i in 0..n_mutations {
        let kind = KINDS[i % KINDS.len()];
        for suffix in ["-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{suffix}", copy.display()));
        }
        std::fs::write(&copy, &pristine).unwrap();
        let expect = mutate(kind, &copy, n, &mut rng);
        let detected = match Ledger::open_existing(&copy) {
            Err(_) => matches!(expect, Expect::FileDamaged),
            Ok(ledger) => {
                let report = ledger.verify(Some(head), Depth::Chain).unwrap();
                match expect {
                    Expect::AtSeq(seq) => report
                        .problems
                        .iter()
                        .find(|p| p.seq.is_some())
                        .is_some_and(|p| p.seq == Some(seq)),
                    Expect::ByHead => {
                        report.problems.iter().any(|p| p.kind == ProblemKind::HeadNotFound)
                    }
                    Expect::FileDamaged => {
                        report.problems.iter().any(|p| p.kind == ProblemKind::FileDamaged)
                    }
                }
            }
        };
        let row = table.entry(kind).or_default();
        row.0 += 1;
        row.1 += usize::from(detected);
        assert!(detected, "mutation {i} ({kind}) was not detected as expected");
    }
    println!("{:<42} {:>6} {:>9}", "mutation", "tried", "detected");
    for (kind, (tried, detected)) in &table {
        println!("{kind:<42} {tried:>6} {detected:>9}");
    }
}
