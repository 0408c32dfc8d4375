//! Tampering with a ledger file through plain SQL, as someone holding the file could: each kind
//! is caught by `caltrail verify` at the right entry, with exit code 1.

use rusqlite::Connection;

use crate::{Sandbox, fixtures};

/// A ledger of the 11-event migration story.
fn ledger() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("migration-unreachable-source.jsonl")).ok();
    sandbox
}

/// Runs `sql` on the ledger with the guard-rail triggers dropped, then puts them back as a
/// careful forger would, so that only the chain can tell.
fn tamper(sandbox: &Sandbox, sql: &str) {
    crate::tamper_campaign::with_sql(&sandbox.db(), |conn| conn.execute_batch(sql).unwrap());
}

#[track_caller]
fn assert_verify_fails(sandbox: &Sandbox, expected: &str) {
    let run = sandbox.run(&["verify"]);
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, expected);
}

#[test]
fn the_triggers_refuse_update_delete_and_replace() {
    let sandbox = ledger();
    let conn = Connection::open(sandbox.db()).unwrap();
    for sql in [
        "UPDATE entries SET note = 'x' WHERE seq = 1",
        "UPDATE entries SET at = 0 WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 11",
        "INSERT OR REPLACE INTO entries SELECT * FROM entries WHERE seq = 3",
        "REPLACE INTO entries (seq, id, type, at, recorded_at, keypack, body, hash) SELECT 12, id, type, at, recorded_at, keypack, body, hash FROM entries WHERE seq = 3",
    ] {
        let error = conn.execute_batch(sql).unwrap_err().to_string();
        assert!(
            error.contains("append-only") || error.contains("no such column"),
            "{sql}: {error}"
        );
    }
    drop(conn);
    sandbox.run(&["verify"]).ok();
}

#[test]
fn an_edited_payload_byte_is_caught() {
    let sandbox = ledger();
    // "bchen" becomes "bchfn" in the bytes of entry 5: still valid CBOR, still a valid event.
    tamper(
        &sandbox,
        "UPDATE entries SET body = CAST(replace(CAST(body AS TEXT), 'bchen', 'bchfn') AS BLOB) WHERE seq = 5",
    );
    assert_verify_fails(
        &sandbox,
        "entry 5: content changed: its stored bytes no longer match its hash, which the next entry still links to\n\
         failed: 1 problem; 4 entries verified before any break\n",
    );
}

#[test]
fn an_edited_hash_is_caught() {
    let sandbox = ledger();
    tamper(&sandbox, "UPDATE entries SET hash = zeroblob(32) WHERE seq = 7");
    let run = sandbox.run(&["verify"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stdout.starts_with("entry 7: hash changed: its stored hash is 0000000000000000000000000000000000000000000000000000000000000000, but its bytes hash to "),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with("failed: 1 problem; 6 entries verified before any break\n"));
}

#[test]
fn a_deleted_entry_is_caught() {
    let sandbox = ledger();
    tamper(&sandbox, "DELETE FROM entries WHERE seq = 4");
    assert_verify_fails(
        &sandbox,
        "entry 4: entry missing: the entry is not there; the next stored entry is 5\n\
         failed: 1 problem; 3 entries verified before any break\n",
    );
}

#[test]
fn swapped_entries_are_caught() {
    let sandbox = ledger();
    tamper(
        &sandbox,
        "UPDATE entries SET seq = 100 WHERE seq = 5; UPDATE entries SET seq = 5 WHERE seq = 6; UPDATE entries SET seq = 6 WHERE seq = 100;",
    );
    assert_verify_fails(
        &sandbox,
        "entry 5: entries out of order: it holds the bytes of entry 6: entries were moved or swapped\n\
         failed: 1 problem; 4 entries verified before any break\n",
    );
}

#[test]
fn a_forged_entry_is_caught() {
    let sandbox = ledger();
    // A copy of entry 9 made to look like entry 12: new id and seq columns, same bytes and hash.
    tamper(
        &sandbox,
        "INSERT INTO entries SELECT 12, 'forged', type, at, recorded_at, keypack, body, hash FROM entries WHERE seq = 9",
    );
    assert_verify_fails(
        &sandbox,
        "entry 12: entries out of order: it holds the bytes of entry 9: entries were moved or swapped\n\
         failed: 1 problem; 11 entries verified before any break\n",
    );
}

#[test]
fn a_changed_index_column_is_caught() {
    let sandbox = ledger();
    tamper(&sandbox, "UPDATE entries SET at = at + 1 WHERE seq = 3");
    assert_verify_fails(
        &sandbox,
        "entry 3: column changed: column at holds 1718960400000001, its bytes say 1718960400000000\n\
         failed: 1 problem; 2 entries verified before any break\n",
    );
}

#[test]
fn dropped_triggers_are_reported() {
    let sandbox = ledger();
    let conn = Connection::open(sandbox.db()).unwrap();
    conn.execute_batch("DROP TRIGGER entries_no_delete").unwrap();
    drop(conn);
    assert_verify_fails(
        &sandbox,
        "guard rail removed: the append-only triggers entries_no_delete are missing or altered: the file was changed outside caltrail\n\
         failed: 1 problem; 11 entries verified before any break\n",
    );
}

/// The guard rails are recognised by what they say, not by how their text is laid out: a
/// ledger whose triggers an earlier (or later) build wrote in another layout still verifies and
/// is still guarded, and a trigger that no longer refuses is reported.
#[test]
fn guard_rails_are_recognised_by_meaning() {
    let sandbox = ledger();
    let conn = Connection::open(sandbox.db()).unwrap();
    conn.execute_batch(
        "DROP TRIGGER entries_no_delete;
         create trigger \"entries_no_delete\"
           before delete on entries
         begin
           select raise ( abort , 'caltrail ledger entries are append-only' ) ;
         end;",
    )
    .unwrap();
    let refused = conn.execute("DELETE FROM entries WHERE seq = 3", []).unwrap_err();
    assert!(refused.to_string().contains("append-only"), "{refused}");
    drop(conn);
    assert_eq!(sandbox.run(&["verify"]).ok().stdout.lines().count(), 1);

    let conn = Connection::open(sandbox.db()).unwrap();
    conn.execute_batch(
        "DROP TRIGGER entries_no_delete;
         CREATE TRIGGER entries_no_delete BEFORE DELETE ON entries WHEN 0 BEGIN
           SELECT RAISE(ABORT, 'caltrail ledger entries are append-only'); END;",
    )
    .unwrap();
    drop(conn);
    assert_verify_fails(
        &sandbox,
        "guard rail removed: the append-only triggers entries_no_delete are missing or altered: the file was changed outside caltrail\n\
         failed: 1 problem; 11 entries verified before any break\n",
    );
}

#[test]
fn a_kept_head_reveals_a_truncated_tail() {
    let sandbox = ledger();
    let head = sandbox.run(&["verify"]).ok().stdout.trim().rsplit(' ').next().unwrap().to_owned();
    sandbox.run(&["verify", "--head", &head]).ok();
    tamper(&sandbox, "DELETE FROM entries WHERE seq >= 10");
    // The chain that is left is sound: only the kept head can tell.
    sandbox.run(&["verify"]).ok();
    let run = sandbox.run(&["verify", "--head", &head]);
    assert_eq!(run.code, 1);
    assert_eq!(
        run.stdout,
        format!(
            "head not found: no entry among the 9 verified has the hash {head}: entries after it were removed or the chain was rewritten\n\
             failed: 1 problem; 9 entries verified before any break\n"
        )
    );
}

#[test]
fn a_malformed_head_argument_is_a_usage_error() {
    let sandbox = ledger();
    let run = sandbox.run(&["verify", "--head", "abc"]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stderr, "caltrail: --head: must be 64 hex digits, got \"abc\"\n");
}

/// The correction story's ledger, with its retractions index emptied under the same
/// definition: SQLite still answers from it, and it lists none of the retractions.
fn ledger_with_an_emptied_retractions_index() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("correction.jsonl")).ok();
    tamper(
        &sandbox,
        "DROP INDEX entries_retractions;
         CREATE INDEX entries_retractions ON entries (seq) WHERE type = 'event.retractedX';
         PRAGMA writable_schema = ON;
         UPDATE sqlite_schema SET sql = replace(sql, 'retractedX', 'retracted')
             WHERE name = 'entries_retractions';
         PRAGMA writable_schema = OFF;",
    );
    sandbox
}

#[test]
fn a_retractions_index_that_lost_its_entries_is_caught() {
    let sandbox = ledger_with_an_emptied_retractions_index();
    assert_verify_fails(
        &sandbox,
        "file damaged: the index entries_retractions holds 0 entries, the table 1 retractions\n\
         failed: 1 problem; 5 entries verified before any break\n",
    );
    // A replay reads the retractions from the index before it folds: without them it would
    // count the retracted purchase. It stops at the retraction the index did not list.
    for command in [&["check"][..], &["check", "--no-snapshot"], &["export", "--parquet", "out"]] {
        let run = sandbox.run(command);
        assert_eq!(run.code, 2, "{command:?}: {}{}", run.stdout, run.stderr);
        assert_eq!(run.stdout, "");
        assert_eq!(
            run.stderr,
            format!(
                "caltrail: {}: entry 4 is damaged (the ledger's indexes do not list it, and a replay must read every event.retracted before it folds): run caltrail verify\n",
                sandbox.db().display()
            ),
            "{command:?}"
        );
    }
}

#[test]
fn a_ledger_without_the_retractions_index_is_read_by_a_scan_and_gets_it_at_its_next_append() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("correction.jsonl")).ok();
    let expected = sandbox.run(&["check", "--no-snapshot", "--format", "json"]).stdout;
    tamper(&sandbox, "DROP INDEX entries_retractions");
    let index_sql = || -> Option<String> {
        let conn = Connection::open(sandbox.db()).unwrap();
        conn.query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'entries_retractions'",
            [],
            |row| row.get(0),
        )
        .ok()
    };
    assert_eq!(index_sql(), None);
    assert_eq!(sandbox.run(&["check", "--no-snapshot", "--format", "json"]).stdout, expected);
    sandbox.run(&["verify"]).ok();
    sandbox.append_file(&fixtures().join("migration-unreachable-source.jsonl")).ok();
    assert_eq!(
        index_sql().as_deref(),
        Some("CREATE INDEX entries_retractions ON entries (seq) WHERE type = 'event.retracted'")
    );
    sandbox.run(&["verify"]).ok();
    sandbox.run(&["verify", "--deep"]).ok();
}
