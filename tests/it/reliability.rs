//! Crashes, concurrent writers and readers, and hostile files and disks: each must leave a
//! valid ledger holding exactly the events of whole committed appends. The campaigns print their
//! tables; `CALTRAIL_LONG_TESTS=1` runs the long versions.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use caltrail_store::Ledger;

use crate::tamper_campaign::Rng;
use crate::{Sandbox, fixtures};

fn long() -> bool {
    std::env::var_os("CALTRAIL_LONG_TESTS").is_some()
}

/// `n` valid events whose ids start with `prefix`.
fn events(prefix: &str, n: usize) -> String {
    let mut text = String::with_capacity(n * 200);
    for i in 0..n {
        text.push_str(&format!(
            r#"{{"id":"{prefix}-{i}","type":"cal.issued","at":"2025-01-01T00:00:00Z","data":{{"server":"ls01.example","keypack":"ls01/2","holder":"PC-{prefix}-{i}","hardware_id":"{i:08x}","expires_at":"2025-03-01T00:00:00Z"}}}}"#
        ));
        text.push('\n');
    }
    text
}

fn n_events(db: &Path) -> u64 {
    let ledger = Ledger::open_existing(db).unwrap();
    let report = ledger.verify(None, caltrail_store::Depth::Chain).unwrap();
    assert!(report.is_ok(), "{:?}", report.problems);
    report.n_verified
}

/// Appends of 4 chunks in a row, one of them killed with SIGKILL at a random moment: the ledger
/// holds exactly the chunks whose append committed, and appending again completes it.
#[test]
fn crash_campaign() {
    let runs = if long() { 50 } else { 8 };
    let chunk = 3_000;
    let sandbox = Sandbox::new();
    let files: Vec<PathBuf> = (0..4)
        .map(|c| {
            let path = sandbox.dir.path().join(format!("chunk{c}.jsonl"));
            std::fs::write(&path, events(&format!("c{c}"), chunk)).unwrap();
            path
        })
        .collect();
    // How long one chunk takes here, to kill at moments that fall inside the write.
    let timing = Sandbox::new();
    let started = Instant::now();
    timing.append_file(&files[0]).ok();
    let chunk_time = started.elapsed();
    let mut rng = Rng::new(7);
    let (mut killed_during_write, mut lost) = (0, 0);
    for run in 0..runs {
        let sandbox = Sandbox::new();
        let victim = rng.range(0, 3) as usize;
        let mut reported = 0;
        for (c, file) in files.iter().enumerate() {
            let mut child = sandbox
                .caltrail(&["append", file.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            if c == victim {
                let delay = rng.range(0, chunk_time.as_micros() as u64 * 3 / 2);
                std::thread::sleep(Duration::from_micros(delay));
                let _ = child.kill();
            }
            let output = child.wait_with_output().unwrap();
            if output.status.success() {
                assert!(String::from_utf8_lossy(&output.stdout).starts_with("appended"));
                reported += 1;
            } else {
                killed_during_write += 1;
            }
        }
        let held = if sandbox.db().exists() { n_events(&sandbox.db()) } else { 0 };
        // Whole chunks only, and never fewer than were reported committed.
        assert_eq!(held % chunk as u64, 0, "run {run}: part of an append survived");
        let expected = reported as u64 * chunk as u64;
        lost += expected.saturating_sub(held);
        assert!(held >= expected, "run {run}: reported events were lost");
        for file in &files {
            sandbox.append_file(file).ok();
        }
        assert_eq!(
            n_events(&sandbox.db()),
            4 * chunk as u64,
            "run {run}: re-append did not complete it"
        );
    }
    println!("{:<44} {:>6}", "runs", runs);
    println!("{:<44} {:>6}", "kills during the write", killed_during_write);
    println!("{:<44} {:>6}", "events lost that had been reported committed", lost);
    assert_eq!(lost, 0);
}

/// 4 processes appending 10,000 events each while others run `check` and `verify`.
#[test]
fn concurrent_writers_and_readers() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("estate-audit.jsonl")).ok();
    let files: Vec<PathBuf> = (0..4)
        .map(|w| {
            let path = sandbox.dir.path().join(format!("writer{w}.jsonl"));
            std::fs::write(&path, events(&format!("w{w}"), 10_000)).unwrap();
            path
        })
        .collect();
    let writers: Vec<_> = files
        .iter()
        .map(|f| {
            sandbox
                .caltrail(&["append", f.to_str().unwrap()])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut reader_runs = 0;
    let mut writers_left = writers;
    let mut outputs = Vec::new();
    while !writers_left.is_empty() {
        for command in [&["check"][..], &["verify"][..]] {
            let run = sandbox.run(command);
            assert!(run.code == 0 || run.code == 1, "{command:?}: {}", run.stderr);
            assert!(!run.stderr.contains("locked"), "{}", run.stderr);
            reader_runs += 1;
        }
        let mut still = Vec::new();
        for mut child in writers_left {
            match child.try_wait().unwrap() {
                Some(_) => outputs.push(child.wait_with_output().unwrap()),
                None => still.push(child),
            }
        }
        writers_left = still;
    }
    for output in outputs {
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    }
    assert_eq!(n_events(&sandbox.db()), 74 + 40_000);
    println!("writers 4 x 10000 events, reader runs meanwhile: {reader_runs}");
}

#[test]
fn a_folder_as_the_ledger_is_refused() {
    let sandbox = Sandbox::new();
    let run = Command::new(env!("CARGO_BIN_EXE_caltrail"))
        .args(["--db", sandbox.dir.path().to_str().unwrap(), "verify"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert_eq!(
        String::from_utf8(run.stderr).unwrap(),
        format!(
            "caltrail: {} is not a valid caltrail ledger: it is a folder (give --db the file `caltrail append` writes)\n",
            sandbox.dir.path().display()
        )
    );
}

#[test]
fn a_line_of_100_megabytes_is_refused() {
    let sandbox = Sandbox::new();
    let path = sandbox.dir.path().join("huge.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(
        br#"{"id":"h","type":"server.database_rebuilt","at":"2025-01-01T00:00:00Z","note":""#,
    )
    .unwrap();
    file.write_all(&vec![b'x'; 100 << 20]).unwrap();
    file.write_all(br#"","data":{"server":"ls01"}}"#).unwrap();
    drop(file);
    let length = std::fs::metadata(&path).unwrap().len();
    let run = sandbox.append_file(&path);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {}:1: the line is {length} bytes long, more than an event can be (1 MiB)\nnothing was appended: 1 invalid line\n",
            path.display()
        )
    );
    assert!(!sandbox.db().exists());
}

#[test]
fn one_bad_line_at_the_end_of_many_writes_nothing() {
    let n = if long() { 1_000_000 } else { 100_000 };
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("database-rebuilt.jsonl")).ok();
    let before = crate::fingerprint(&sandbox.db());
    let path = sandbox.dir.path().join("many.jsonl");
    let mut text = events("m", n - 1);
    text.push_str(r#"{"id":"last","type":"keypack.removed","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","keypack":"p","quantity":0}}"#);
    std::fs::write(&path, text).unwrap();
    let run = sandbox.append_file(&path);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {}:{n}: data.quantity: must be between 1 and 1000000, got 0\nnothing was appended: 1 invalid line\n",
            path.display()
        )
    );
    assert_eq!(crate::fingerprint(&sandbox.db()), before);
}

/// A small tmpfs mounted for the test (the tests run as root on this project's machines).
struct Mount {
    dir: tempfile::TempDir,
}

impl Mount {
    fn tmpfs(size: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.path().to_str().unwrap(),
            ])
            .status()
            .expect("mount must run: the fault tests mount a small tmpfs");
        assert!(status.success(), "mounting a tmpfs failed: the fault tests need root");
        Mount { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro", self.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn caltrail_at(db: &Path, args: &[&str]) -> crate::Run {
    crate::Run::from(
        Command::new(env!("CARGO_BIN_EXE_caltrail"))
            .arg("--db")
            .arg(db)
            .args(args)
            .env("CALTRAIL_RECORDED_AT", crate::FIXTURE_CLOCK)
            .output()
            .unwrap(),
    )
}

#[test]
fn a_disk_that_fills_during_an_append_leaves_the_ledger_as_it_was() {
    let mount = Mount::tmpfs("600k");
    let db = mount.path().join("ledger.db");
    let story = fixtures().join("estate-audit.jsonl");
    caltrail_at(&db, &["append", story.to_str().unwrap()]).ok();
    let scratch = Sandbox::new();
    let big = scratch.dir.path().join("big.jsonl");
    std::fs::write(&big, events("big", 20_000)).unwrap();
    let run = caltrail_at(&db, &["append", big.to_str().unwrap()]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    assert!(
        run.stderr.starts_with(&format!("caltrail: {}: database or disk is full", db.display())),
        "{}",
        run.stderr
    );
    assert_eq!(n_events(&db), 74);
    let verified = caltrail_at(&db, &["verify"]).ok();
    assert!(verified.stdout.starts_with("ok: 74 events"));
}

#[test]
fn a_read_only_ledger_gives_a_clear_error_and_stays_as_it_was() {
    let mount = Mount::tmpfs("4m");
    let db = mount.path().join("ledger.db");
    let story = fixtures().join("database-rebuilt.jsonl");
    caltrail_at(&db, &["append", story.to_str().unwrap()]).ok();
    Ledger::open_existing(&db).unwrap();
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let before = crate::fingerprint(&db);
    mount.remount_read_only();
    let more = fixtures().join("restore-same-machine.jsonl");
    let run = caltrail_at(&db, &["append", more.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {}: cannot write to the ledger, the file or its folder is read-only (unable to open database file)\n",
            db.display()
        )
    );
    assert_eq!(crate::fingerprint(&db), before);
    // Reading still works.
    let verified = caltrail_at(&db, &["verify"]);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    // A new ledger cannot be created in a folder that is not writable.
    let new = mount.path().join("new.db");
    let run = caltrail_at(&new, &["append", more.to_str().unwrap()]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {}: cannot write to the ledger, the file or its folder is read-only (unable to open database file: {})\n",
            new.display(),
            new.display()
        )
    );
}
