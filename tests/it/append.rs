//! `caltrail append`: golden head hashes of the fixture stories, idempotency, atomicity, the
//! malformed fixtures and concurrent appenders.

use std::io::Write;
use std::process::Stdio;

use crate::{Sandbox, expect_file, fixtures, stories};

#[test]
fn every_story_appends_verifies_and_gives_its_golden_head() {
    for story in stories() {
        let sandbox = Sandbox::new();
        let appended = sandbox.append_file(&story).ok();
        let n_lines = std::fs::read_to_string(&story).unwrap().lines().count();
        let head = appended.head_hash();
        assert_eq!(
            appended.stdout,
            format!("appended {n_lines} events (0 duplicates skipped); head {n_lines} {head}\n")
        );
        expect_file(&story.with_extension("head"), &format!("{head}\n"));
        let verified = sandbox.run(&["verify"]).ok();
        assert_eq!(verified.stdout, format!("ok: {n_lines} events, head {head}\n"));
    }
}

#[test]
fn appending_the_same_file_again_is_a_no_op() {
    let sandbox = Sandbox::new();
    let story = fixtures().join("reactivation-telephone.jsonl");
    let first = sandbox.append_file(&story).ok();
    let before = crate::fingerprint(&sandbox.db());
    let again = sandbox.append_file(&story).ok();
    assert_eq!(
        again.stdout,
        format!("appended 0 events (8 duplicates skipped); head 8 {}\n", first.head_hash())
    );
    assert_eq!(crate::fingerprint(&sandbox.db()), before);
}

#[test]
fn a_partly_new_file_appends_only_the_new_events() {
    let sandbox = Sandbox::new();
    let story = std::fs::read_to_string(fixtures().join("database-rebuilt.jsonl")).unwrap();
    let lines: Vec<&str> = story.lines().collect();
    let first_part = sandbox.dir.path().join("part.jsonl");
    std::fs::write(&first_part, lines[..3].join("\n")).unwrap();
    sandbox.append_file(&first_part).ok();
    let whole = sandbox.append_file(&fixtures().join("database-rebuilt.jsonl")).ok();
    let golden = std::fs::read_to_string(fixtures().join("database-rebuilt.head")).unwrap();
    assert_eq!(whole.stdout, format!("appended 2 events (3 duplicates skipped); head 5 {golden}"));
}

#[test]
fn inputs_that_mean_the_same_are_duplicates() {
    let sandbox = Sandbox::new();
    let a = r#"{"id":"a1","type":"server.activated","at":"2025-03-01T10:30:00+01:00","data":{"server":"LS01.Contoso.com","license_server_id":"abcde-12345-fghij-67890-klmno-12345-pqrst","os_version":"2022","method":"automatic"}}"#;
    let b = r#"{"data":{"method":"automatic","os_version":"2022","license_server_id":"ABCDE12345FGHIJ67890KLMNO12345PQRST","server":"ls01.contoso.com"},"at":"2025-03-01T09:30:00Z","type":"server.activated","id":"a1","note":null}"#;
    append_stdin(&sandbox, a).ok();
    let again = append_stdin(&sandbox, b).ok();
    assert!(
        again.stdout.starts_with("appended 0 events (1 duplicate skipped); head 1 "),
        "{}",
        again.stdout
    );
}

#[test]
fn a_conflicting_id_is_refused_and_nothing_is_written() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("migration-unreachable-source.jsonl")).ok();
    let before = crate::fingerprint(&sandbox.db());
    let changed = std::fs::read_to_string(fixtures().join("migration-unreachable-source.jsonl"))
        .unwrap()
        .replace("\"quantity\":100,\"migration\"", "\"quantity\":99,\"migration\"");
    let input = format!(
        "{}\n{changed}",
        r#"{"id":"new-1","type":"server.database_rebuilt","at":"2025-05-01T00:00:00Z","data":{"server":"ls02.contoso.com"}}"#
    );
    let run = append_stdin(&sandbox, &input);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "caltrail: <stdin>:11: id: \"mus-010\" is already used by entry 10, id \"mus-010\" with different content\nnothing was appended\n"
    );
    assert_eq!(crate::fingerprint(&sandbox.db()), before);
    assert_eq!(
        sandbox.run(&["verify"]).ok().stdout.lines().next().unwrap().split(',').next(),
        Some("ok: 11 events")
    );
}

/// Lines 1 to 100 with ids `e-1` to `e-100`, then `extra`: the earlier event a line repeats
/// is in another group of the insert than the line itself.
fn hundred_events_then(extra: &str) -> String {
    let mut lines: Vec<String> = (1..=100)
        .map(|n| {
            format!(
                r#"{{"id":"e-{n}","type":"server.database_rebuilt","at":"2025-05-01T00:{:02}:00Z","data":{{"server":"ls02.contoso.com"}}}}"#,
                n % 60
            )
        })
        .collect();
    lines.push(extra.to_owned());
    lines.join("\n")
}

#[test]
fn a_repeated_line_within_one_batch_is_a_duplicate() {
    let sandbox = Sandbox::new();
    let input = hundred_events_then(
        r#"{"id":"e-3","type":"server.database_rebuilt","at":"2025-05-01T00:03:00Z","data":{"server":"LS02.contoso.com"}}"#,
    );
    let run = append_stdin(&sandbox, &input).ok();
    assert!(
        run.stdout.starts_with("appended 100 events (1 duplicate skipped); head 100 "),
        "{}",
        run.stdout
    );
}

#[test]
fn conflicts_within_one_batch_name_the_earlier_line() {
    let sandbox = Sandbox::new();
    let changed = hundred_events_then(
        r#"{"id":"e-3","type":"server.database_rebuilt","at":"2025-05-01T00:04:00Z","data":{"server":"ls02.contoso.com"}}"#,
    );
    let run = append_stdin(&sandbox, &changed);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "caltrail: <stdin>:101: id: \"e-3\" is already used by <stdin>:3 with different content\nnothing was appended\n"
    );
    let pack = |id: &str| {
        format!(
            r#"{{"id":"{id}","type":"keypack.installed","at":"2025-03-01T09:30:00Z","data":{{"server":"ls01.contoso.com","keypack":"ls01/4","agreement":"EA-6543210","product_version":"2022","cal_type":"per_user","quantity":50}}}}"#
        )
    };
    let input = format!("{}\n{}", pack("k-1"), hundred_events_then(&pack("k-2")));
    let run = append_stdin(&sandbox, &input);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "caltrail: <stdin>:102: data.keypack: a key pack named \"ls01/4\" already exists (created by <stdin>:1)\nnothing was appended\n"
    );
    assert!(!sandbox.db().exists());
}

/// The input is written as it is read: a file that cannot be read after another one was
/// partly written still leaves the ledger as it was.
#[test]
fn a_read_error_after_pieces_were_written_appends_nothing() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("database-rebuilt.jsonl")).ok();
    let before = crate::fingerprint(&sandbox.db());
    let big = sandbox.dir.path().join("big.jsonl");
    let lines: Vec<String> = (1..=12_000)
        .map(|n| {
            format!(
                r#"{{"id":"big-{n}","type":"server.database_rebuilt","at":"2025-06-01T00:00:00Z","data":{{"server":"ls{n}.contoso.com"}},"note":"a line long enough to make this file span pieces"}}"#
            )
        })
        .collect();
    std::fs::write(&big, lines.join("\n")).unwrap();
    assert!(std::fs::metadata(&big).unwrap().len() > 2 << 20);
    let folder = sandbox.dir.path().join("a-folder");
    std::fs::create_dir(&folder).unwrap();
    let run = sandbox.run(&["append", big.to_str().unwrap(), folder.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.starts_with(&format!("caltrail: cannot read {}: ", folder.display())),
        "{}",
        run.stderr
    );
    assert_eq!(crate::fingerprint(&sandbox.db()), before);
    let whole = sandbox.run(&["append", big.to_str().unwrap()]).ok();
    assert!(whole.stdout.starts_with("appended 12000 events (0 duplicates skipped); head 12005 "));
}

#[test]
fn a_batch_with_one_bad_line_leaves_the_ledger_byte_for_byte_unchanged() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("downgrade-2022-on-2019.jsonl")).ok();
    let files = ["ledger.db", "ledger.db-wal"];
    let before: Vec<Option<(usize, u64)>> =
        files.iter().map(|f| crate::fingerprint(&sandbox.dir.path().join(f))).collect();
    let mut input = std::fs::read_to_string(fixtures().join("database-rebuilt.jsonl")).unwrap();
    input.push_str(r#"{"id":"late","type":"keypack.removed","at":"2025-01-01T00:00:00Z","data":{"server":"ls09","keypack":"ls09/2","quantity":0}}"#);
    let run = append_stdin(&sandbox, &input);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "caltrail: <stdin>:6: data.quantity: must be between 1 and 1000000, got 0\nnothing was appended: 1 invalid line\n"
    );
    let after: Vec<Option<(usize, u64)>> =
        files.iter().map(|f| crate::fingerprint(&sandbox.dir.path().join(f))).collect();
    assert_eq!(before, after);
}

/// Every malformed fixture gives exactly the error kept beside it, and creates no ledger.
#[test]
fn malformed_fixtures_give_their_errors() {
    let dir = fixtures().join("malformed");
    let mut cases: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 30);
    for case in cases {
        let sandbox = Sandbox::new();
        let name = case.file_name().unwrap().to_str().unwrap();
        std::fs::copy(&case, sandbox.dir.path().join(name)).unwrap();
        let run = sandbox.run(&["append", name]);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        assert_eq!(run.stdout, "", "{name}");
        expect_file(&case.with_extension("error"), &run.stderr);
        assert!(!sandbox.db().exists(), "{name} left a ledger file behind");
    }
}

#[test]
fn blank_lines_crlf_and_a_byte_order_mark_are_accepted() {
    let sandbox = Sandbox::new();
    let story = std::fs::read_to_string(fixtures().join("restore-same-machine.jsonl")).unwrap();
    let windows =
        format!("\u{feff}\r\n{}\r\n\r\n", story.lines().collect::<Vec<_>>().join("\r\n\r\n"));
    let run = append_stdin(&sandbox, &windows).ok();
    let golden = std::fs::read_to_string(fixtures().join("restore-same-machine.head")).unwrap();
    assert_eq!(run.stdout, format!("appended 6 events (0 duplicates skipped); head 6 {golden}"));
}

#[test]
fn several_files_are_one_batch() {
    let sandbox = Sandbox::new();
    let a = fixtures().join("database-rebuilt.jsonl");
    let b = fixtures().join("malformed/quantity-zero.jsonl");
    let run = sandbox.run(&["append", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("quantity-zero.jsonl:1: data.quantity:"), "{}", run.stderr);
    assert!(!sandbox.db().exists());
    let c = fixtures().join("restore-same-machine.jsonl");
    let run = sandbox.run(&["append", a.to_str().unwrap(), c.to_str().unwrap()]).ok();
    assert!(run.stdout.starts_with("appended 11 events (0 duplicates skipped); head 11 "));
}

#[test]
fn concurrent_appenders_both_succeed_and_the_chain_holds() {
    let sandbox = Sandbox::new();
    let batches: Vec<String> = (0..2)
        .map(|writer| {
            (0..300)
                .map(|i| {
                    format!(
                        r#"{{"id":"w{writer}-{i}","type":"cal.issued","at":"2025-01-01T00:00:00Z","data":{{"server":"ls01","keypack":"p","holder":"user{i}"}}}}"#
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .collect();
    let mut children = Vec::new();
    for round in 0..5 {
        for batch in &batches {
            let path = sandbox.dir.path().join(format!("batch-{round}-{}.jsonl", children.len()));
            std::fs::write(&path, batch).unwrap();
            children.push(sandbox.caltrail(&["append", path.to_str().unwrap()]).spawn().unwrap());
        }
    }
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{:?} {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let verified = sandbox.run(&["verify"]).ok();
    assert!(verified.stdout.starts_with("ok: 600 events, head "), "{}", verified.stdout);
}

pub(crate) fn append_stdin(sandbox: &Sandbox, input: &str) -> crate::Run {
    let mut child = sandbox
        .caltrail(&["append"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    crate::Run::from(child.wait_with_output().unwrap())
}

/// An empty input makes a ledger with no entries; commands that read it say so and what to do
/// (the store's verify of it is tested in caltrail-store's model test).
#[test]
fn a_ledger_with_no_entries_is_named_as_such() {
    let sandbox = Sandbox::new();
    assert_eq!(
        append_stdin(&sandbox, "\n").ok().stdout,
        format!("appended 0 events (0 duplicates skipped); head 0 {}\n", "0".repeat(64))
    );
    for args in [&["verify"][..], &["verify", "--deep"], &["check"]] {
        let run = sandbox.run(args);
        assert_eq!(run.code, 2, "{args:?}");
        assert_eq!(
            run.stderr,
            format!(
                "caltrail: {} holds no events yet: record some with `caltrail append FILE`\n",
                sandbox.db().display()
            )
        );
    }
}

/// A retraction checks what the ledger already holds: an event retracted by an earlier append
/// cannot be retracted again, a retraction cannot be retracted, and a retraction appended
/// twice is a duplicate like any event. Refused appends write nothing.
#[test]
fn retractions_are_checked_against_earlier_appends() {
    let sandbox = Sandbox::new();
    let purchase = r#"{"id":"p1","type":"agreement.purchased","at":"2025-01-10T00:00:00Z","data":{"agreement":"EA-1","program":"select","product_version":"2022","cal_type":"per_user","quantity":500}}"#;
    let retraction = r#"{"id":"x1","type":"event.retracted","at":"2025-02-01T00:00:00Z","data":{"retracts":"p1","reason":"500 for 50"}}"#;
    append_stdin(&sandbox, &format!("{purchase}\n{retraction}\n")).ok();
    let again = append_stdin(&sandbox, retraction).ok();
    assert!(
        again.stdout.starts_with("appended 0 events (1 duplicate skipped)"),
        "{}",
        again.stdout
    );
    let twice = append_stdin(
        &sandbox,
        r#"{"id":"x2","type":"event.retracted","at":"2025-02-02T00:00:00Z","data":{"retracts":"p1","reason":"again"}}"#,
    );
    assert_eq!(twice.code, 2);
    assert_eq!(
        twice.stderr,
        "caltrail: <stdin>:1: data.retracts: retracts \"p1\", which entry 2, id \"x1\" already retracted\nnothing was appended\n"
    );
    let of_retraction = append_stdin(
        &sandbox,
        r#"{"id":"x3","type":"event.retracted","at":"2025-02-02T00:00:00Z","data":{"retracts":"x1","reason":"undo"}}"#,
    );
    assert_eq!(of_retraction.code, 2);
    assert_eq!(
        of_retraction.stderr,
        "caltrail: <stdin>:1: data.retracts: retracts \"x1\", which is itself a retraction (entry 2, id \"x1\"): a retraction cannot be retracted\nnothing was appended\n"
    );
    assert_eq!(
        sandbox.run(&["verify"]).ok().stdout.lines().next().unwrap().split(',').next(),
        Some("ok: 2 events")
    );
}
