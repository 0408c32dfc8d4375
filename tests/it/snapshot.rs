//! Snapshots change no answer: every command prints the same with the snapshot beside the
//! ledger as with `--no-snapshot`, over random histories with late records and retractions
//! appended in batches (a model test), and over snapshots damaged, cut, swapped or edited by
//! hand (a tamper campaign). What only a forger who rewrites a snapshot whole can do, `verify
//! --deep` finds.

use std::path::{Path, PathBuf};

use proptest::prelude::*;

use crate::tamper_campaign::Rng;
use crate::{Sandbox, stories};

/// Where the snapshot's header keeps the key (entry count, then the head hash), the part of
/// the header its last 32 bytes hash, and the header's length.
const KEY: std::ops::Range<usize> = 40..80;
const HASHED: usize = 137;
const HEADER: usize = 169;

fn snapshot_of(sandbox: &Sandbox) -> PathBuf {
    let mut name = sandbox.db().into_os_string();
    name.push(".snapshot");
    PathBuf::from(name)
}

/// The commands compared. All but the first are judged at a fixed time after every history,
/// so that the output does not depend on the clock; the first, judged now, writes the snapshot.
const COMMANDS: &[&[&str]] = &[
    &["state", "keypacks", "--format", "csv"],
    &["check", "--format", "json", "--as-of", "2031-01-01"],
    &["position", "--format", "csv", "--as-of", "2031-01-01"],
    &["true-up", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "cals", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "issues", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "migrations", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "restores", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "debts", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "holders", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "in_use_changes", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "installed_changes", "--format", "csv", "--as-of", "2031-01-01"],
    &["state", "quantity_changes", "--format", "csv", "--as-of", "2031-01-01"],
];

/// The commands that run the rules' SQL: the model test runs them after the last batch only,
/// the tables they read after every batch.
const SQL_COMMANDS: std::ops::Range<usize> = 1..4;

/// What a command printed and how it ended, replaying every entry.
fn from_the_start(sandbox: &Sandbox, command: &[&str]) -> (i32, String, String) {
    let mut args = command.to_vec();
    args.push("--no-snapshot");
    let run = sandbox.run(&args);
    (run.code, run.stdout, run.stderr)
}

fn with_snapshot(sandbox: &Sandbox, command: &[&str]) -> (i32, String, String) {
    let run = sandbox.run(command);
    (run.code, run.stdout, run.stderr)
}

/// One step of a random history.
#[derive(Debug, Clone)]
enum Step {
    Install { server: u8, quantity: u32, device: bool, v2019: bool },
    Issue { pack: u8, holder: u8 },
    Remove { pack: u8, quantity: u32 },
    Migrate { pack: u8, quantity: u32 },
    Revoke { pack: u8, holder: u8 },
    Purchase { quantity: u32, device: bool },
    Restore { server: u8, days_back: u8 },
    Retract { back: u8 },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        1 => (0..2u8, 1..40u32, any::<bool>(), any::<bool>()).prop_map(|(server, quantity, device, v2019)| {
            Step::Install { server, quantity, device, v2019 }
        }),
        4 => (any::<u8>(), 0..12u8).prop_map(|(pack, holder)| Step::Issue { pack, holder }),
        1 => (any::<u8>(), 1..20u32).prop_map(|(pack, quantity)| Step::Remove { pack, quantity }),
        1 => (any::<u8>(), 1..20u32).prop_map(|(pack, quantity)| Step::Migrate { pack, quantity }),
        1 => (any::<u8>(), 0..12u8).prop_map(|(pack, holder)| Step::Revoke { pack, holder }),
        1 => (1..60u32, any::<bool>()).prop_map(|(quantity, device)| Step::Purchase { quantity, device }),
        1 => (0..2u8, 1..30u8).prop_map(|(server, days_back)| Step::Restore { server, days_back }),
        1 => (any::<u8>()).prop_map(|back| Step::Retract { back }),
    ]
}

/// A step with how many hours pass before it, and whether it is recorded late (its `at` some
/// days before the clock).
type Timed = (Step, u8, Option<u8>);

/// The history as event lines: two servers activated and a purchase first, then the steps.
/// Names the steps use exist (a step on a pack before any is installed is left out), and a
/// retraction names an earlier event that is neither a retraction nor retracted.
fn history(steps: &[Timed]) -> Vec<String> {
    let t0 = chrono::DateTime::parse_from_rfc3339("2025-01-01T00:00:00Z").unwrap().to_utc();
    let time = |hours: i64| {
        (t0 + chrono::Duration::hours(hours)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let mut lines = vec![
        format!(
            r#"{{"id":"e0","type":"agreement.purchased","at":"{}","data":{{"agreement":"EA-1","program":"enterprise_agreement","product_version":"2022","cal_type":"per_user","quantity":20,"anniversary":"01-01"}}}}"#,
            time(0)
        ),
        format!(
            r#"{{"id":"e1","type":"server.activated","at":"{}","data":{{"server":"ls0","license_server_id":"5GH8J-2KL4Z-7XC1V-BN9MQ-3WE6R-8TY2U-IO5PA","os_version":"2022","method":"automatic"}}}}"#,
            time(1)
        ),
        format!(
            r#"{{"id":"e2","type":"server.activated","at":"{}","data":{{"server":"ls1","license_server_id":"9HD3F-6KW1P-2ZQ8M-XB5TN-4CR7L-1VG6S-JE3YA","os_version":"2022","method":"automatic"}}}}"#,
            time(1)
        ),
    ];
    // Packs as (name, server), and ids a retraction may name.
    let mut packs: Vec<(String, u8)> = Vec::new();
    let mut retractable: Vec<String> = vec!["e0".into()];
    let mut clock = 2i64;
    for (n, (step, hours, late)) in steps.iter().enumerate() {
        clock += i64::from(*hours) + 1;
        let at_hours = clock - late.map_or(0, |days| i64::from(days) * 24);
        let at = time(at_hours);
        let id = format!("s{n}");
        let pack = |i: &u8| packs.get(usize::from(*i) % packs.len().max(1)).cloned();
        let data = match step {
            Step::Install { server, quantity, device, v2019 } => {
                let name = format!("p{n}");
                packs.push((name.clone(), *server));
                format!(
                    r#""type":"keypack.installed","at":"{at}","data":{{"server":"ls{server}","keypack":"{name}","agreement":"EA-1","product_version":"{}","cal_type":"{}","quantity":{quantity}}}"#,
                    if *v2019 { "2019" } else { "2022" },
                    if *device { "per_device" } else { "per_user" }
                )
            }
            Step::Issue { pack: i, holder } => {
                let Some((name, server)) = pack(i) else { continue };
                format!(
                    r#""type":"cal.issued","at":"{at}","data":{{"server":"ls{server}","keypack":"{name}","holder":"H{holder}"}}"#
                )
            }
            Step::Remove { pack: i, quantity } => {
                let Some((name, server)) = pack(i) else { continue };
                format!(
                    r#""type":"keypack.removed","at":"{at}","data":{{"server":"ls{server}","keypack":"{name}","quantity":{quantity}}}"#
                )
            }
            Step::Migrate { pack: i, quantity } => {
                let Some((name, server)) = pack(i) else { continue };
                let target = 1 - server;
                let new = format!("m{n}");
                packs.push((new.clone(), target));
                format!(
                    r#""type":"cals.migrated","at":"{at}","data":{{"source":"ls{server}","target":"ls{target}","reason":"source_replaced","source_reachable":true,"from_keypack":"{name}","keypack":"{new}","quantity":{quantity},"source_removed":{}}}"#,
                    n % 2 == 0
                )
            }
            Step::Revoke { pack: i, holder } => {
                let Some((name, server)) = pack(i) else { continue };
                format!(
                    r#""type":"cal.revoked","at":"{at}","data":{{"server":"ls{server}","keypack":"{name}","holder":"H{holder}"}}"#
                )
            }
            Step::Purchase { quantity, device } => format!(
                r#""type":"agreement.purchased","at":"{at}","data":{{"agreement":"EA-1","program":"enterprise_agreement","product_version":"2022","cal_type":"{}","quantity":{quantity},"anniversary":"01-01"}}"#,
                if *device { "per_device" } else { "per_user" }
            ),
            Step::Restore { server, days_back } => {
                let backup = time(at_hours - i64::from(*days_back) * 24);
                format!(
                    r#""type":"server.restored","at":"{at}","data":{{"server":"ls{server}","backup_taken_at":"{backup}","same_machine":true,"os_replaced":false}}"#
                )
            }
            Step::Retract { back } => {
                if retractable.is_empty() {
                    continue;
                }
                let target = retractable
                    .remove(retractable.len() - 1 - usize::from(*back) % retractable.len());
                // A pack's install stays: steps after it name the pack.
                format!(
                    r#""type":"event.retracted","at":"{at}","data":{{"retracts":"{target}","reason":"entered by mistake"}}"#
                )
            }
        };
        if !matches!(step, Step::Retract { .. } | Step::Install { .. } | Step::Migrate { .. }) {
            retractable.push(id.clone());
        }
        lines.push(format!(r#"{{"id":"{id}",{data}}}"#));
    }
    lines
}

fn append_lines(sandbox: &Sandbox, lines: &[String], name: &str) {
    let path = sandbox.dir.path().join(name);
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    sandbox.append_file(&path).ok();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, max_shrink_iters: 64, ..ProptestConfig::default() })]

    /// Appended in batches, with every command run after each (so each batch extends the
    /// snapshot the last one left, or is refused and replayed from the start), the answers with
    /// the snapshot are the answers without it, byte for byte.
    #[test]
    fn every_command_answers_the_same_with_and_without_a_snapshot(
        steps in prop::collection::vec(
            (step(), 0..48u8, prop::option::weighted(0.15, 1..20u8)),
            4..60,
        ),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let sandbox = Sandbox::new();
        let lines = history(&steps);
        let mut cuts: Vec<usize> = cuts.iter().map(|c| 3 + c.index(lines.len() - 2)).collect();
        cuts.push(lines.len());
        cuts.sort_unstable();
        cuts.dedup();
        let mut done = 0;
        let n_batches = cuts.len();
        for (batch, cut) in cuts.into_iter().enumerate() {
            append_lines(&sandbox, &lines[done..cut], &format!("batch-{batch}.jsonl"));
            done = cut;
            for (i, command) in COMMANDS.iter().enumerate() {
                if SQL_COMMANDS.contains(&i) && batch + 1 < n_batches {
                    continue;
                }
                prop_assert_eq!(
                    with_snapshot(&sandbox, command),
                    from_the_start(&sandbox, command),
                    "{}", command.join(" ")
                );
            }
            prop_assert!(snapshot_of(&sandbox).exists());
        }
    }
}

/// A ledger of every fixture story, its snapshot, and the answers without one.
struct Estate {
    sandbox: Sandbox,
    snapshot: Vec<u8>,
    answers: Vec<(i32, String, String)>,
}

fn estate() -> Estate {
    let sandbox = Sandbox::new();
    for story in stories() {
        sandbox.append_file(&story).ok();
    }
    let answers = COMMANDS.iter().map(|c| from_the_start(&sandbox, c)).collect();
    assert!(!snapshot_of(&sandbox).exists(), "--no-snapshot writes none");
    // Nor leaves the file its replay put the `issues` rows in.
    let left: Vec<String> = std::fs::read_dir(sandbox.db().parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| !["ledger.db", "ledger.db-shm", "ledger.db-wal"].contains(&name.as_str()))
        .collect();
    assert_eq!(left, Vec::<String>::new());
    sandbox.run(COMMANDS[0]);
    let snapshot = std::fs::read(snapshot_of(&sandbox)).unwrap();
    Estate { sandbox, snapshot, answers }
}

/// Puts `bytes` in place as the snapshot before each command, and checks every answer is the
/// one without a snapshot. Gives what the commands said on stderr.
fn answers_with(estate: &Estate, bytes: &[u8], commands: &[usize]) -> Vec<String> {
    let mut notes = Vec::new();
    for i in commands {
        std::fs::write(snapshot_of(&estate.sandbox), bytes).unwrap();
        let (code, stdout, stderr) = with_snapshot(&estate.sandbox, COMMANDS[*i]);
        let (want_code, want_stdout, _) = &estate.answers[*i];
        assert_eq!((code, &stdout), (*want_code, want_stdout), "{}", COMMANDS[*i].join(" "));
        notes.push(stderr);
    }
    notes
}

fn only_note(notes: &[String], why: &str) {
    for note in notes {
        assert!(
            note.starts_with("caltrail: note: ignoring the snapshot ")
                && note.contains(why)
                && note.ends_with("; replaying from the first entry\n")
                && note.lines().count() == 1,
            "{note:?} should say {why:?}"
        );
    }
}

#[test]
fn a_snapshot_edited_by_hand_changes_no_answer() {
    let estate = estate();
    let good = &estate.snapshot;
    assert!(answers_with(&estate, good, &[0, 1, 2]).iter().all(String::is_empty));
    let all: Vec<usize> = (0..COMMANDS.len()).collect();

    // Bytes flipped anywhere: in the header (each field) and in the body.
    let mut rng = Rng::new(0x5eed_5a75);
    let mut by_place = std::collections::BTreeMap::<&str, usize>::new();
    for round in 0..120 {
        let at = if round < 40 {
            round * HEADER / 40
        } else {
            rng.range(HEADER as u64, good.len() as u64 - 1) as usize
        };
        let mut changed = good.clone();
        changed[at] ^= 1 << rng.range(0, 7);
        let notes = answers_with(&estate, &changed, &[round % all.len()]);
        let place = match at {
            0..16 => "magic",
            16..36 => "version",
            36..40 => "format",
            40..80 => "key",
            80..89 => "latest",
            89..137 => "lengths and hash",
            137..169 => "header hash",
            // The `issues` blocks, then the body.
            _ => "blocks and body",
        };
        assert!(!notes[0].is_empty(), "a change at byte {at} ({place}) went unnoticed");
        *by_place.entry(place).or_default() += 1;
    }
    assert_eq!(by_place.len(), 8, "{by_place:?}");

    only_note(&answers_with(&estate, &good[..good.len() - 1], &all), "damaged");
    only_note(&answers_with(&estate, &good[..100], &[0]), "not a caltrail snapshot");
    only_note(&answers_with(&estate, b"", &[0]), "not a caltrail snapshot");
    let mut longer = good.clone();
    longer.extend_from_slice(b"more");
    only_note(&answers_with(&estate, &longer, &all), "damaged");
    let mut other_version = good.clone();
    other_version[30] ^= 0xff;
    only_note(&answers_with(&estate, &other_version, &[0]), "another version of caltrail");

    // Another ledger's snapshot.
    let other = Sandbox::new();
    other.append_file(&stories()[1]).ok();
    other.run(COMMANDS[0]);
    let foreign = std::fs::read(snapshot_of(&other)).unwrap();
    only_note(&answers_with(&estate, &foreign, &all), "another ledger");

    // An older snapshot of this ledger, from before entries were appended: it serves.
    let growing = Sandbox::new();
    let all_stories = stories();
    growing.append_file(&all_stories[0]).ok();
    growing.run(COMMANDS[0]);
    let older = std::fs::read(snapshot_of(&growing)).unwrap();
    for story in &all_stories[1..] {
        growing.append_file(story).ok();
    }
    for (i, command) in COMMANDS.iter().enumerate() {
        std::fs::write(snapshot_of(&growing), &older).unwrap();
        assert_eq!(with_snapshot(&growing, command), estate.answers[i], "{}", command.join(" "));
    }

    // `verify --deep` says what it found, and fails on nothing a command would not ignore.
    std::fs::write(snapshot_of(&estate.sandbox), good).unwrap();
    let deep = estate.sandbox.run(&["verify", "--deep"]).ok();
    assert!(deep.stdout.contains(" as a replay of them builds it\nok: "), "{}", deep.stdout);
    std::fs::write(snapshot_of(&estate.sandbox), &good[..good.len() - 1]).unwrap();
    let deep = estate.sandbox.run(&["verify", "--deep"]).ok();
    assert!(
        deep.stdout.contains("every command ignores it and replays from the first entry\nok: ")
    );
}

#[test]
fn a_snapshot_forged_whole_is_found_by_verify_deep() {
    let estate = estate();
    // A forger's snapshot: another history's state, under this ledger's key.
    let other = Sandbox::new();
    other.append_file(&stories()[1]).ok();
    other.run(COMMANDS[0]);
    let mut forged = std::fs::read(snapshot_of(&other)).unwrap();
    forged[KEY].copy_from_slice(&estate.snapshot[KEY]);
    let header_hash = blake3::hash(&forged[..HASHED]);
    forged[HASHED..HEADER].copy_from_slice(header_hash.as_bytes());
    write(&snapshot_of(&estate.sandbox), &forged);
    // Commands trust a snapshot whose key and hash hold; verify --deep rebuilds it.
    let deep = estate.sandbox.run(&["verify", "--deep"]);
    assert_eq!(deep.code, 1);
    assert!(deep.stdout.ends_with(
        "commands would answer from it\nfailed: the snapshot differs from the entries (delete it); the chain is whole\n"
    ), "{}", deep.stdout);
    // The chain check alone does not read the snapshot.
    estate.sandbox.run(&["verify"]).ok();
    // Deleting it, or --no-snapshot, gives the answers of the entries.
    std::fs::remove_file(snapshot_of(&estate.sandbox)).unwrap();
    assert_eq!(from_the_start(&estate.sandbox, COMMANDS[0]), estate.answers[0]);
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// The entry count the snapshot beside the ledger was written at.
fn snapshot_count(sandbox: &Sandbox) -> u64 {
    let bytes = std::fs::read(snapshot_of(sandbox)).unwrap();
    u64::from_le_bytes(bytes[KEY.start..KEY.start + 8].try_into().unwrap())
}

#[test]
fn later_entries_extend_the_snapshot_and_an_earlier_one_rebuilds_it() {
    let sandbox = Sandbox::new();
    let issue = |n: u8| (Step::Issue { pack: 0, holder: n % 12 }, 2, None);
    let mut steps =
        vec![(Step::Install { server: 0, quantity: 30, device: false, v2019: false }, 1, None)];
    steps.extend((0..60).map(issue));
    let lines = history(&steps);
    let keypacks = COMMANDS[0];
    append_lines(&sandbox, &lines[..50], "first.jsonl");
    sandbox.run(keypacks).ok();
    assert_eq!(snapshot_count(&sandbox), 50);
    // Three entries after the snapshot's last: folded on top, the snapshot kept as it is.
    append_lines(&sandbox, &lines[50..53], "next.jsonl");
    assert_eq!(with_snapshot(&sandbox, keypacks), from_the_start(&sandbox, keypacks));
    assert_eq!(snapshot_count(&sandbox), 50);
    // Enough entries after it that writing it again costs less than folding them each time.
    append_lines(&sandbox, &lines[53..], "more.jsonl");
    assert_eq!(with_snapshot(&sandbox, keypacks), from_the_start(&sandbox, keypacks));
    assert_eq!(snapshot_count(&sandbox), lines.len() as u64);
    // A late record, before the snapshot's latest event: replayed from the first entry.
    let late = r#"{"id":"late","type":"keypack.removed","at":"2025-01-01T05:00:00Z","data":{"server":"ls0","keypack":"p0","quantity":5}}"#;
    append_lines(&sandbox, &[late.to_owned()], "late.jsonl");
    assert_eq!(with_snapshot(&sandbox, keypacks), from_the_start(&sandbox, keypacks));
    assert_eq!(snapshot_count(&sandbox), lines.len() as u64 + 1);
    // A point before the snapshot's last entry is replayed from the first, and writes none.
    let earlier = ["state", "keypacks", "--format", "csv", "--known-at", "40"];
    assert_eq!(with_snapshot(&sandbox, &earlier), from_the_start(&sandbox, &earlier));
    assert_eq!(snapshot_count(&sandbox), lines.len() as u64 + 1);
    // The files a snapshot is written into (with the `issues` rows spilled as a replay from
    // the first entry goes, or whole) are renamed over it or removed.
    let mut names: Vec<String> = std::fs::read_dir(sandbox.dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".snapshot"))
        .collect();
    names.sort();
    assert_eq!(names, ["ledger.db.snapshot"]);
}
