//! Data-driven tests of the rules and reports: each `tests/cases/*.case` file is a history
//! and the commands to run on it, with their expected output. `UPDATE_EXPECT=1` rewrites the
//! expected lines from what the binary prints.
//!
//! The format, line by line:
//! - `# ...` a comment saying what the case pins;
//! - `{...}` an event; events are appended (as one batch) before the next command;
//! - `$ <args>` a command: `caltrail --db <case ledger> <args>`, where `{fixtures}` stands for
//!   the `fixtures/` folder;
//! - `> ...` a line the command must print on stdout (blank outputs print none);
//! - `? exit N` the exit code the command must end with.

use std::fmt::Write as _;

use crate::{Sandbox, root, update_expect};

struct Command {
    args: String,
    events: Vec<String>,
}

fn run_case(path: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path).unwrap();
    let sandbox = Sandbox::new();
    let mut rewritten = String::new();
    let mut pending: Vec<String> = Vec::new();
    let mut failures = Vec::new();
    let mut lines = text.lines().peekable();
    let mut commands = Vec::new();
    while let Some(line) = lines.next() {
        if line.starts_with('>') || line.starts_with("? exit") {
            continue;
        }
        writeln!(rewritten, "{line}").unwrap();
        if line.starts_with('{') {
            pending.push(line.to_owned());
            continue;
        }
        let Some(args) = line.strip_prefix("$ ") else { continue };
        let command = Command { args: args.to_owned(), events: std::mem::take(&mut pending) };
        let mut expected = String::new();
        while let Some(next) = lines.peek() {
            if next.starts_with('>') || next.starts_with("? exit") {
                writeln!(expected, "{}", lines.next().unwrap()).unwrap();
            } else {
                break;
            }
        }
        let actual = execute(&sandbox, &command);
        if actual != expected {
            failures
                .push(format!("$ {}\n--- expected\n{expected}--- actual\n{actual}", command.args));
        }
        rewritten.push_str(&actual);
        commands.push(command);
    }
    if update_expect() {
        std::fs::write(path, rewritten).unwrap();
        return Ok(());
    }
    if failures.is_empty() { Ok(()) } else { Err(failures.join("\n")) }
}

fn execute(sandbox: &Sandbox, command: &Command) -> String {
    if !command.events.is_empty() {
        let input = command.events.join("\n");
        let run = crate::append::append_stdin(sandbox, &input);
        assert_eq!(run.code, 0, "append failed: {}", run.stderr);
    }
    let fixtures = crate::fixtures();
    let args = split_args(&command.args.replace("{fixtures}", fixtures.to_str().unwrap()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = sandbox.run(&args);
    let mut out = String::new();
    for line in run.stdout.lines() {
        writeln!(out, "> {line}").unwrap();
    }
    for line in run.stderr.lines() {
        let line = line.replace(fixtures.to_str().unwrap(), "{fixtures}");
        writeln!(out, "> stderr: {line}").unwrap();
    }
    writeln!(out, "? exit {}", run.code).unwrap();
    out
}

/// Splits on spaces, keeping double-quoted parts together.
fn split_args(text: &str) -> Vec<String> {
    let mut args = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !current.is_empty() {
                    args.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        args.push(current);
    }
    args
}

/// One test per case file, so that one can be run alone (`cargo test cases::restore`) and a
/// failure names its file; `every_case_file_has_its_test` keeps the list whole.
macro_rules! case_tests {
    ($($name:ident),+ $(,)?) => {
        /// The case files with a test, by name.
        const CASES: &[&str] = &[$(stringify!($name)),+];
        $(
            #[test]
            fn $name() {
                let path = root().join("tests/cases").join(concat!(stringify!($name), ".case"));
                if let Err(diff) = run_case(&path) {
                    panic!("{}.case differs (UPDATE_EXPECT=1 rewrites it):\n{diff}", stringify!($name));
                }
            }
        )+
    };
}

case_tests!(
    cal_older_than_host,
    cals_left_on_source,
    cli,
    database_rebuilt,
    decommission,
    downgrade,
    issued_beyond_installed,
    issued_while_inactive,
    legacy_migration,
    levels,
    migration_completion,
    migration_source_removed,
    not_entitled,
    over_allocated,
    over_entitlement,
    per_user,
    reconcile_issued,
    reconcile_restore,
    restore,
    restore_replaced_os,
    restores_v2,
    retraction,
    revocation_limit,
    rights,
    true_up,
    true_up_window,
    valid_time,
    version_above_server,
);

#[test]
fn every_case_file_has_its_test() {
    let mut files: Vec<String> = std::fs::read_dir(root().join("tests/cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "case"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, CASES, "list each tests/cases/*.case in case_tests!");
}

/// `caltrail check` on each fixture story reports exactly what the story holds: the expected
/// findings are kept beside it as `<story>.check`.
#[test]
fn every_story_checks_to_its_expected_findings() {
    for story in crate::stories() {
        let sandbox = Sandbox::new();
        sandbox.append_file(&story).ok();
        let run = sandbox.run(&["check", "--format", "json"]);
        assert!(run.code == 0 || run.code == 1, "{}", run.stderr);
        assert_eq!(run.code == 1, !run.stdout.is_empty());
        crate::expect_file(&story.with_extension("check"), &run.stdout);
    }
}

/// The stories hold problems that were fixed later: as of the middle of a story, `check` sees
/// them.
#[test]
fn stories_as_of_their_middle() {
    let cases = [
        (
            "migration-unreachable-source.jsonl",
            "2025-03-20",
            "over_entitlement,error,EA-6543210/2019/per_user,\"EA-6543210: 200 per-user CALs that need level 2019 or newer are installed in 2 key packs, but its purchases give rights to 100 (100 over)\",100\n\
             cals_left_on_source,error,mus-008,\"100 CALs of ls01/4 migrated to ls02.contoso.com on 2025-03-01 are still on ls01.contoso.com, which is activated: remove them from the source\",100\n",
        ),
        (
            "downgrade-2022-on-2019.jsonl",
            "3",
            "version_above_server,error,ls05/2022-attempt,\"key pack ls05/2022-attempt holds 40 2022 per-user CALs on ls05.tailspin.com, a Windows Server 2019 license server\",40\n",
        ),
        ("reactivation-telephone.jsonl", "5", ""),
        // Rebuilt that day, re-installed later: owed until then (RULES.md, lost_not_reinstalled).
        (
            "database-rebuilt.jsonl",
            "2024-01-15",
            "lost_not_reinstalled,warning,ls09.adatum.com,ls09.adatum.com lost 30 2016 per-device CALs of RET-001 on 2024-01-15 that are not re-installed: ask the Clearinghouse to re-issue them,30\n",
        ),
    ];
    for (story, as_of, expected) in cases {
        let sandbox = Sandbox::new();
        sandbox.append_file(&crate::fixtures().join(story)).ok();
        let run = sandbox.run(&["check", "--as-of", as_of, "--format", "csv"]);
        let findings = run.stdout.split_once('\n').map_or("", |(_, rest)| rest);
        assert_eq!(findings, expected, "{story} as of {as_of}");
        assert_eq!(run.code, i32::from(!expected.is_empty()));
    }
}
