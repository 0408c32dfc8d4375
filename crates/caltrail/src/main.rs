//! The `caltrail` command line: parses arguments, runs one command, maps the outcome to an exit
//! code. The glue between the library crates; it holds no ledger or licensing logic of its own.

mod append;
mod arrow_table;
mod audit;
mod generate;
mod log;
mod output;
mod progress;
mod report;
mod timearg;
mod trust;
mod wmi;

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `append` parses and encodes events on one thread and frees them on another, and replays
/// free on the decoding threads what the fold is done with. The system allocator is slow at
/// freeing memory another thread allocated (an append of 11M events: 112 s, with this 86 s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A tamper-evident, event-sourced ledger of Remote Desktop Services CAL licensing.
#[derive(Debug, Parser)]
#[command(name = "caltrail", version, about, propagate_version = true)]
#[command(
    after_help = "Example:\n  caltrail --db estate.db append fixtures/migration-unreachable-source.jsonl\n  caltrail --db estate.db verify"
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
}

/// Re-hash the whole chain and check the ledger file; exit 1 if anything is wrong.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  caltrail --db estate.db verify --head 3f1c...e09a")]
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
    let cli = Cli::parse();
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
    let ledger = caltrail_store::Ledger::open_existing(db)?;
    let depth = if args.deep { Depth::Deep } else { Depth::Chain };
    let progress = progress::Progress::events("verify", ledger.head()?.n_events, args.quiet);
    let report = ledger.verify_with_progress(expected_head, depth, &|n| progress.set(n))?;
    progress.finish();
    if report.is_ok() && args.deep {
        let tiles = ledger.check_tiles()?;
        if !tiles.is_empty() {
            for (tile, why) in &tiles {
                writeln!(
                    out,
                    "tree tile {tile} (entries {} to {}): {why}",
                    tile * caltrail_store::TILE + 1,
                    (tile + 1) * caltrail_store::TILE
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

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<io::Error>().is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
    })
}
