//! Ledgers written by earlier builds stay readable, forever: `fixtures/format-1/estate-<commit>.db`
//! were written from three fixture stories by the build of that commit (b40947c, before valid
//! time and corrections; 88c1d28, with the Merkle tree's tables) and are kept as they were
//! written. Each must verify (also `--deep`) against the head that build printed, and replay to
//! exactly what a ledger written now from the same stories replays to.

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

/// The format-1 ledgers kept, by the commit that wrote them.
fn kept_ledgers() -> Vec<std::path::PathBuf> {
    crate::files_with(&root().join("fixtures/format-1"), "db", 2)
}

#[test]
fn ledgers_written_by_earlier_builds_verify_and_replay_as_one_written_now() {
    for ledger in kept_ledgers() {
        the_kept_ledger_verifies_and_replays_as_one_written_now(&ledger);
    }
}

fn the_kept_ledger_verifies_and_replays_as_one_written_now(ledger: &std::path::Path) {
    let head = std::fs::read_to_string(ledger.with_extension("head")).unwrap();
    let head = head.trim();
    let old = Sandbox::new();
    std::fs::copy(ledger, old.db()).unwrap();
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
        assert_eq!(
            from_old.stdout,
            from_new.stdout,
            "{}: caltrail {}",
            ledger.display(),
            read.join(" ")
        );
        assert_eq!(from_old.code, from_new.code, "caltrail {}", read.join(" "));
        assert!(!from_old.stdout.is_empty());
    }
    assert_eq!(fingerprint(&old.db()), before, "reading must not change the file");
}
