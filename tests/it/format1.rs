//! Ledgers written by an earlier build stay readable: `tests/data/format1-estate.db` was written
//! by the build before valid time and corrections (format 1, commit b40947c) from three fixture
//! stories, and is kept as it was written. It must verify against the head that build printed,
//! and replay to exactly what a ledger written now from the same stories replays to.

use crate::{Sandbox, fingerprint, fixtures, root};

const STORIES: &[&str] =
    &["estate-audit.jsonl", "restore-same-machine.jsonl", "migration-unreachable-source.jsonl"];

/// Commands whose output must be the same on the old file and on a new one.
const READS: &[&[&str]] = &[
    &["check", "--format", "json"],
    &["state", "keypacks", "--format", "csv"],
    &["state", "servers", "--format", "csv"],
    &["state", "events", "--format", "csv"],
    &["true-up", "--as-of", "2025-12-31", "--format", "csv"],
];

#[test]
fn a_ledger_written_by_the_format_1_build_verifies_and_replays_as_one_written_now() {
    let data = root().join("tests/data");
    let head = std::fs::read_to_string(data.join("format1-estate.head")).unwrap();
    let head = head.trim();
    let old = Sandbox::new();
    std::fs::copy(data.join("format1-estate.db"), old.db()).unwrap();
    let before = fingerprint(&old.db());
    let verified = old.run(&["verify", "--head", head]).ok();
    assert_eq!(verified.stdout, format!("ok: 91 events, head {head}\n"));
    let deep = old.run(&["verify", "--deep"]).ok();
    assert_eq!(deep.stdout, format!("ok: 91 events, head {head}\n"));

    let new = Sandbox::new();
    let files: Vec<String> =
        STORIES.iter().map(|s| fixtures().join(s).to_str().unwrap().to_owned()).collect();
    let mut args = vec!["append"];
    args.extend(files.iter().map(String::as_str));
    let appended = new.run(&args).ok();
    assert_eq!(appended.head_hash(), head, "the same events must give the same bytes");

    for read in READS {
        let from_old = old.run(read);
        let from_new = new.run(read);
        assert_eq!(from_old.stdout, from_new.stdout, "caltrail {}", read.join(" "));
        assert_eq!(from_old.code, from_new.code, "caltrail {}", read.join(" "));
        assert!(!from_old.stdout.is_empty());
    }
    assert_eq!(fingerprint(&old.db()), before, "reading must not change the file");
}
