//! The shell around the commands: completions, the manual page, two examples ending every
//! `--help`, one-line errors a person can act on, and progress bars only on a terminal.

use std::process::Command;

use crate::{Sandbox, fixtures};

/// Every command and nested command, as `caltrail --help` and its commands' help list them.
fn commands(sandbox: &Sandbox, path: &[String]) -> Vec<Vec<String>> {
    let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
    args.push("--help");
    let help = sandbox.run(&args).ok().stdout;
    let Some((_, listed)) = help.split_once("Commands:\n") else { return Vec::new() };
    let mut found = Vec::new();
    for line in listed.lines().take_while(|l| l.starts_with("  ")) {
        let name = line.split_whitespace().next().unwrap();
        if name == "help" {
            continue;
        }
        let mut command = path.to_vec();
        command.push(name.to_owned());
        found.extend(commands(sandbox, &command));
        found.push(command);
    }
    found
}

#[test]
fn every_help_ends_with_two_examples() {
    let sandbox = Sandbox::new();
    let all = commands(&sandbox, &[]);
    assert!(all.len() >= 22, "{all:?}");
    for command in std::iter::once(Vec::new()).chain(all) {
        let mut args: Vec<&str> = command.iter().map(String::as_str).collect();
        args.push("--help");
        let help = sandbox.run(&args).ok().stdout;
        let tail: Vec<&str> = help.trim_end().lines().rev().take(3).collect();
        assert_eq!(tail[2], "Examples:", "caltrail {}", command.join(" "));
        for example in &tail[..2] {
            assert!(
                example.starts_with("  caltrail ") || example.contains("| caltrail "),
                "{example}"
            );
        }
    }
}

#[test]
fn completions_and_the_manual_page() {
    let sandbox = Sandbox::new();
    let bash = sandbox.run(&["completions", "bash"]).ok().stdout;
    assert!(bash.starts_with("_caltrail() {"));
    assert!(
        bash.contains("caltrail__report)") || bash.contains("caltrail,report)"),
        "report is completed"
    );
    assert!(bash.contains("--as-of"));
    for (shell, opening) in [
        ("zsh", "#compdef caltrail"),
        ("fish", "complete -c caltrail"),
        ("powershell", "using namespace System.Management.Automation"),
    ] {
        let script = sandbox.run(&["completions", shell]).ok().stdout;
        assert!(script.contains(opening), "{shell}");
        assert!(script.contains("true-up"), "{shell} completes true-up");
    }
    let run = sandbox.run(&["completions", "tcsh"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "caltrail: invalid value 'tcsh' for '<SHELL>' (possible values: bash, elvish, fish, powershell, zsh); a similar value exists: 'zsh'; see `caltrail completions --help`\n"
    );

    let page = sandbox.run(&["man"]).ok().stdout;
    assert!(page.contains(".TH caltrail 1"));
    assert!(page.contains("caltrail\\-report(1)"), "the page names the commands' pages");
    sandbox.run(&["man", "--out", "pages"]).ok();
    for name in ["caltrail.1", "caltrail-report.1", "caltrail-key-generate.1", "caltrail-true-up.1"]
    {
        let text = std::fs::read_to_string(sandbox.dir.path().join("pages").join(name)).unwrap();
        assert!(text.starts_with(".ie \\n(.g .ds Aq"), "{name} is roff");
    }
    // A real man(1) reads it, where man is installed.
    if let Ok(output) = Command::new("man")
        .arg("-l")
        .arg(sandbox.dir.path().join("pages/caltrail-report.1"))
        .env("MANPAGER", "cat")
        .env("MANWIDTH", "100")
        .output()
        && output.status.success()
    {
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("--out"), "{text}");
    }
}

/// A ledger for each way a ledger can be unusable, and what each must say.
fn unusable_ledgers(sandbox: &Sandbox) -> Vec<(&'static str, std::path::PathBuf, String)> {
    let dir = sandbox.dir.path();
    let missing = dir.join("missing.db");
    let empty = dir.join("empty.db");
    let no_events = Sandbox::new();
    let run = no_events.caltrail(&["append", "-"]).output();
    assert!(run.unwrap().status.success());
    std::fs::copy(no_events.db(), &empty).unwrap();
    let zero = dir.join("zero.db");
    std::fs::write(&zero, b"").unwrap();
    let newer = dir.join("newer.db");
    sandbox.append_file(&fixtures().join("estate-audit.jsonl")).ok();
    std::fs::copy(sandbox.db(), &newer).unwrap();
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    drop(conn);
    vec![
        (
            "missing",
            missing.clone(),
            format!("no ledger at {} (caltrail append creates one)", missing.display()),
        ),
        (
            "empty",
            empty.clone(),
            format!(
                "{} holds no events yet: record some with `caltrail append FILE`",
                empty.display()
            ),
        ),
        (
            "zero bytes",
            zero.clone(),
            format!(
                "{} is not a valid caltrail ledger: an empty file (give --db the file `caltrail append` writes)",
                zero.display()
            ),
        ),
        (
            "newer format",
            newer.clone(),
            format!(
                "{} is a ledger of format 2, newer than this caltrail reads (1): upgrade caltrail",
                newer.display()
            ),
        ),
    ]
}

/// Every command that reads a ledger, with arguments that are otherwise right.
const LEDGER_COMMANDS: &[&[&str]] = &[
    &["verify"],
    &["log"],
    &["state", "servers"],
    &["check"],
    &["sql", "SELECT 1"],
    &["position"],
    &["true-up"],
    &["export", "--parquet", "out"],
    &["report", "--out", "r.html"],
    &["prove", "--event", "ea-001"],
    &["reconcile", "--server", "ls20.northwind.com", "--keypacks", "keypacks.csv"],
];

#[test]
fn an_unusable_ledger_is_one_line_saying_what_to_do() {
    let sandbox = Sandbox::new();
    std::fs::copy(
        fixtures().join("wmi/ls07-keypacks-wmi.csv"),
        sandbox.dir.path().join("keypacks.csv"),
    )
    .unwrap();
    for (what, db, message) in unusable_ledgers(&sandbox) {
        for args in LEDGER_COMMANDS {
            let output = Command::new(env!("CARGO_BIN_EXE_caltrail"))
                .arg("--db")
                .arg(&db)
                .args(*args)
                .current_dir(sandbox.dir.path())
                .env_remove("CALTRAIL_DB")
                .output()
                .unwrap();
            let run = crate::Run::from(output);
            assert_eq!(run.code, 2, "{what}: {args:?}: {}", run.stderr);
            assert_eq!(run.stdout, "", "{what}: {args:?}");
            assert_eq!(run.stderr, format!("caltrail: {message}\n"), "{what}: {args:?}");
        }
    }
    assert!(!sandbox.dir.path().join("missing.db").exists(), "reading never creates a ledger");
}

#[test]
fn a_wrong_format_is_one_line_naming_the_formats() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("estate-audit.jsonl")).ok();
    for args in [
        &["log"][..],
        &["state", "servers"],
        &["check"],
        &["sql", "SELECT 1"],
        &["position"],
        &["true-up"],
        &["reconcile", "--server", "ls20.northwind.com", "--keypacks", "k.csv"],
        &["eventlog", "log.evtx"],
    ] {
        let mut with_format = args.to_vec();
        with_format.extend(["--format", "xml"]);
        let run = sandbox.run(&with_format);
        assert_eq!(run.code, 2, "{args:?}");
        assert_eq!(
            run.stderr,
            format!(
                "caltrail: invalid value 'xml' for '--format <FORMAT>' (possible values: table, csv, json); see `caltrail {} --help`\n",
                args[0]
            )
        );
    }
}

#[test]
fn piped_stderr_stays_clean_and_a_terminal_shows_progress() {
    let sandbox = Sandbox::new();
    // Over 4,096 events: a replay reports its position once per 4,096 entries.
    let estate = sandbox.run(&["generate", "--events", "6000", "--seed", "5"]).ok().stdout;
    std::fs::write(sandbox.dir.path().join("estate.jsonl"), estate).unwrap();
    let commands: [&[&str]; 5] = [
        &["append", "estate.jsonl"],
        &["verify"],
        &["check"],
        &["export", "--parquet", "out"],
        &["report", "--out", "r.html"],
    ];
    for args in commands {
        let run = sandbox.caltrail(args).env("CALTRAIL_PROGRESS_AFTER_MS", "0").output().unwrap();
        assert!(run.status.code().is_some_and(|c| c <= 1), "{args:?}");
        assert_eq!(String::from_utf8_lossy(&run.stderr), "", "{args:?}: piped stderr stays clean");
    }
    // Under a pseudo-terminal (util-linux's script) the same commands draw a bar, and
    // `--quiet` takes it away.
    if Command::new("script").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "script (util-linux) is needed under CI");
        return;
    }
    let binary = env!("CARGO_BIN_EXE_caltrail");
    let db = sandbox.db();
    for (args, bar) in [
        ("verify", "verify ["),
        // A current snapshot leaves nothing to fold: the bar is for a replay.
        ("check --no-snapshot", "check ["),
        ("report --out r2.html --no-snapshot", "report ["),
        ("check --quiet", ""),
    ] {
        let line = format!("{binary} --db {} {args} >/dev/null", db.display());
        let output = Command::new("script")
            .args(["-qec", &line, "/dev/null"])
            .current_dir(sandbox.dir.path())
            .env("CALTRAIL_PROGRESS_AFTER_MS", "0")
            .output()
            .unwrap();
        let terminal = String::from_utf8_lossy(&output.stdout);
        if bar.is_empty() {
            assert!(!terminal.contains('['), "{args}: {terminal:?}");
        } else {
            assert!(terminal.contains(bar), "{args}: {terminal:?}");
            assert!(terminal.contains(" events, "), "{args}: {terminal:?}");
        }
    }
}
