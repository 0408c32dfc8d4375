//! The `caltrail` command line: parses arguments, runs one command, maps the outcome to an exit
//! code. The glue between the library crates; it holds no ledger or licensing logic of its own.

#![forbid(unsafe_code)]

mod append;
mod audit;
mod generate;
mod log;
mod output;
mod progress;
mod report;
mod snapshot;
mod timearg;
mod trust;
mod wmi;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};

/// `append` parses and encodes events on one thread and frees them on another, and replays
/// free on the decoding threads what the fold is done with. The system allocator is slow at
/// freeing memory another thread allocated (an append of 11M events: 112 s, with this 86 s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A tamper-evident, event-sourced ledger of Remote Desktop Services CAL licensing.
#[derive(Debug, Parser)]
#[command(name = "caltrail", version, about, propagate_version = true)]
#[command(
    after_help = "Examples:\n  caltrail --db estate.db append fixtures/migration-unreachable-source.jsonl\n  caltrail --db estate.db report --out estate.html"
)]
struct Cli {
    /// The ledger file.
    #[arg(long, global = true, env = "CALTRAIL_DB", default_value = "caltrail.db")]
    db: PathBuf,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Append(append::AppendArgs),
    Verify(VerifyArgs),
    Log(log::LogArgs),
    State(report::StateArgs),
    Check(report::CheckArgs),
    Sql(report::SqlArgs),
    Position(report::PositionArgs),
    TrueUp(report::TrueUpArgs),
    Export(report::ExportArgs),
    Report(audit::ReportArgs),
    Reconcile(wmi::ReconcileArgs),
    Import(wmi::ImportArgs),
    Eventlog(wmi::EventlogArgs),
    Key(trust::KeyArgs),
    Checkpoint(trust::CheckpointArgs),
    Prove(trust::ProveArgs),
    VerifyProof(trust::VerifyProofArgs),
    Cosign(trust::CosignArgs),
    Generate(generate::GenerateArgs),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Print a shell completion script.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail completions bash > ~/.local/share/bash-completion/completions/caltrail\n  caltrail completions zsh > ~/.zfunc/_caltrail"
)]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: clap_complete::Shell,
}

/// Write the manual page (roff): caltrail(1) on stdout, or a page per command into a folder.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail man | man -l -\n  caltrail man --out /usr/local/share/man/man1"
)]
struct ManArgs {
    /// Write caltrail.1 and a page per command (caltrail-append.1, ...) into this folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

/// Re-hash the whole chain and check the ledger file; exit 1 if anything is wrong.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail --db estate.db verify --deep\n  caltrail --db estate.db verify --checkpoint 2025-true-up.checkpoint --vkey ledger.vkey"
)]
struct VerifyArgs {
    /// A head hash kept earlier (64 hex digits): it must still be in the chain.
    #[arg(long, value_name = "HEX")]
    head: Option<String>,
    /// Also decode and check every event as an input line is checked, run SQLite's full
    /// integrity check (indexes against the table), and check the stored Merkle tree against
    /// the entries. Slower; the chain check is the same.
    #[arg(long)]
    deep: bool,
    /// A signed checkpoint kept earlier: the ledger must hold its tree at its size, recomputed
    /// from the entries (with --vkey).
    #[arg(long, value_name = "FILE", requires = "vkey")]
    checkpoint: Option<std::path::PathBuf>,
    /// The log's verifier key, or a file holding it, for --checkpoint.
    #[arg(long, value_name = "VKEY", requires = "checkpoint")]
    vkey: Option<String>,
    /// No progress bar on stderr (there is none when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
}

/// How a command ended, when it did not fail.
pub enum Outcome {
    /// Nothing to report: exit 0.
    Clean,
    /// A check found something: exit 1.
    Found,
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return usage_error(&error),
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = run(cli, &mut out).and_then(|outcome| {
        out.flush()?;
        Ok(outcome)
    });
    match result {
        Ok(Outcome::Clean) => ExitCode::SUCCESS,
        Ok(Outcome::Found) => ExitCode::from(1),
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            let _ = out.flush();
            eprintln!("caltrail: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Append(args) => append::run(&cli.db, &args, out),
        Command::Verify(args) => verify(&cli.db, &args, out),
        Command::Log(args) => log::run(&cli.db, &args, out),
        Command::State(args) => report::state(&cli.db, &args, out),
        Command::Check(args) => report::check(&cli.db, &args, out),
        Command::Sql(args) => report::sql(&cli.db, &args, out),
        Command::Position(args) => report::position(&cli.db, &args, out),
        Command::TrueUp(args) => report::true_up(&cli.db, &args, out),
        Command::Export(args) => report::export(&cli.db, &args, out),
        Command::Report(args) => audit::run(&cli.db, &args, out),
        Command::Reconcile(args) => wmi::reconcile(&cli.db, &args, out),
        Command::Import(args) => wmi::import(&cli.db, &args, out),
        Command::Eventlog(args) => wmi::eventlog(&args, out),
        Command::Key(args) => trust::key(&args, out),
        Command::Checkpoint(args) => trust::checkpoint(&cli.db, &args, out),
        Command::Prove(args) => trust::prove(&cli.db, &args, out),
        Command::VerifyProof(args) => trust::verify_proof(&args, out),
        Command::Cosign(args) => trust::cosign(&args, out),
        Command::Generate(args) => generate::run(&args, out),
        Command::Completions(args) => {
            clap_complete::generate(args.shell, &mut Cli::command(), "caltrail", out);
            Ok(Outcome::Clean)
        }
        Command::Man(args) => man(&args, out),
    }
}

fn verify(db: &std::path::Path, args: &VerifyArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    use caltrail_store::Depth;
    let expected_head = args
        .head
        .as_deref()
        .map(caltrail_store::EntryHash::parse_hex)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--head: {e}"))?;
    let ledger = report::open_with_events(db)?;
    let depth = if args.deep { Depth::Deep } else { Depth::Chain };
    let progress = progress::Progress::events("verify", ledger.head()?.n_events, args.quiet);
    let report = ledger.verify_with_progress(expected_head, depth, &|n| progress.set(n))?;
    progress.finish();
    if report.is_ok() && args.deep {
        let tiles = ledger.check_tiles()?;
        if !tiles.is_empty() {
            for problem in &tiles {
                let (first, last) = problem.entries();
                let level = if problem.level == 0 { "" } else { "upper " };
                writeln!(
                    out,
                    "{level}tree tile {} (entries {first} to {last}): {}",
                    problem.index, problem.why
                )?;
            }
            writeln!(
                out,
                "failed: {} stored tree tiles differ from the entries; the chain is whole",
                tiles.len()
            )?;
            return Ok(Outcome::Found);
        }
    }
    if report.is_ok() && args.deep {
        let shown = snapshot::path(db);
        match snapshot::check(&ledger, db)? {
            None => {}
            Some(snapshot::Found::Matches(n)) => writeln!(
                out,
                "snapshot {}: the state of the first {n} entries, as a replay of them builds it",
                shown.display()
            )?,
            Some(snapshot::Found::Ignored(why)) => writeln!(
                out,
                "snapshot {}: {why}; every command ignores it and replays from the first entry",
                shown.display()
            )?,
            Some(snapshot::Found::Differs(n)) => {
                writeln!(
                    out,
                    "snapshot {}: the state it holds is not what the first {n} entries give; commands would answer from it",
                    shown.display()
                )?;
                writeln!(
                    out,
                    "failed: the snapshot differs from the entries (delete it); the chain is whole"
                )?;
                return Ok(Outcome::Found);
            }
        }
    }
    if report.is_ok()
        && let (Some(file), Some(vkey)) = (&args.checkpoint, &args.vkey)
    {
        return trust::verify_checkpoint(&ledger, file, vkey, out);
    }
    if report.is_ok() {
        writeln!(out, "ok: {} events, head {}", report.n_verified, report.head)?;
        return Ok(Outcome::Clean);
    }
    for problem in &report.problems {
        writeln!(out, "{problem}")?;
    }
    let n = report.problems.len();
    writeln!(
        out,
        "failed: {n} problem{}; {} entries verified before any break",
        if n == 1 { "" } else { "s" },
        report.n_verified
    )?;
    Ok(Outcome::Found)
}

/// Help and the version print as clap writes them; a mistake in the arguments is one line on
/// stderr, saying what was wrong, what is allowed and where to read more, and exit 2.
fn usage_error(error: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        error.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = error.print();
        return ExitCode::from(if error.use_stderr() { 2 } else { 0 });
    }
    eprintln!("caltrail: {}", one_line(&error.render().to_string()));
    ExitCode::from(2)
}

/// clap's multi-line message as one line: the error, what it lists (missing arguments, the
/// allowed values, a tip), and the help to read: `caltrail check --help` for an error in
/// `check`'s arguments.
fn one_line(rendered: &str) -> String {
    let mut message = String::new();
    for line in rendered.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(error) = line.strip_prefix("error: ") {
            message.push_str(error.trim_end_matches(':'));
        } else if let Some(values) =
            line.strip_prefix("[possible values: ").and_then(|v| v.strip_suffix(']'))
        {
            message.push_str(&format!(" (possible values: {values})"));
        } else if let Some(tip) = line.strip_prefix("tip: ") {
            message.push_str(&format!("; {tip}"));
        } else if !line.starts_with("Usage: ") && !line.starts_with("For more information") {
            // What the error lists, such as the arguments not given.
            message.push_str(&format!(": {line}"));
        }
    }
    format!("{message}; see `{} --help`", command_path(std::env::args().skip(1)))
}

/// The command the arguments name, as far as they name one: `caltrail key generate`.
fn command_path(args: impl Iterator<Item = String>) -> String {
    let mut command = Cli::command();
    let mut path = vec!["caltrail".to_owned()];
    for arg in args {
        let Some(sub) = command.find_subcommand(&arg).cloned() else { continue };
        path.push(sub.get_name().to_owned());
        command = sub;
    }
    path.join(" ")
}

fn man(args: &ManArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let command = Cli::command();
    match &args.out {
        None => clap_mangen::Man::new(command).render(out)?,
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("cannot write the pages into {}", dir.display()))?;
            writeln!(out, "manual pages written to {}", dir.display())?;
        }
    }
    Ok(Outcome::Clean)
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
