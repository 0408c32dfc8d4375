//! The commands that replay the ledger and ask SQL: `state`, `check`, `sql`, `true-up` and
//! `export`. Replaying and printing only; every judgement is in `queries/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caltrail_events::Timestamp;
use caltrail_replay::{AsOf, Replay};
use caltrail_sql::{Engine, FINDING_COLUMNS, RULES, TABLE_NAMES};
use caltrail_store::Ledger;

use crate::Outcome;
use crate::arrow_table::to_table;
use crate::output::{Cell, Format, Table};
use crate::timearg::parse_time_end_of_day;

/// `--as-of`: a sequence number or a time.
pub fn parse_as_of(text: &str) -> Result<AsOf, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map(AsOf::Seq)
            .map_err(|_| format!("{text:?} is too large for a sequence number"));
    }
    parse_time_end_of_day(text).map(AsOf::Time).map_err(|_| {
        format!(
            "must be a sequence number (42), an RFC 3339 time (2025-03-01T09:30:00Z) or a date (2025-03-01, meaning its end), got {text:?}"
        )
    })
}

/// The as-of point shared by the reporting commands.
#[derive(Debug, clap::Args)]
pub struct AsOfArgs {
    /// Replay only up to this point: a sequence number (the first N events) or a time (the
    /// events whose `at` is at or before it; a date means its end, in UTC).
    #[arg(long, value_name = "N|TIME", value_parser = parse_as_of)]
    as_of: Option<AsOf>,
}

impl AsOfArgs {
    /// Every event.
    pub fn latest() -> AsOfArgs {
        AsOfArgs { as_of: None }
    }
}

/// Replays the ledger up to the as-of point.
pub fn replay(db: &Path, as_of: &AsOfArgs, keep_events: bool) -> anyhow::Result<Replay> {
    let ledger = Ledger::open_existing(db)?;
    let as_of = as_of.as_of.unwrap_or(AsOf::Latest);
    if let AsOf::Seq(n) = as_of {
        let head = ledger.head()?;
        if n == 0 || n > head.n_events {
            bail!("--as-of {n}: the ledger has events 1 to {}", head.n_events);
        }
    }
    let mut replay = Replay::new(as_of, Timestamp::now(), keep_events);
    ledger.for_each_entry(replay.until_seq(), |stored| {
        // Only the events table shows hashes; hex-encoding millions of them otherwise is waste.
        let hash = if keep_events { stored.hash.to_hex() } else { String::new() };
        replay.apply(stored.entry.seq, stored.entry.recorded_at, &hash, &stored.entry.event);
        Ok(())
    })?;
    Ok(replay.finish())
}

/// Print a table of the replayed state.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Tables: events, servers, agreements, purchases, keypacks, cals, migrations, server_status, issues, revocations, restores, quantity_changes, true_up_periods (README, \"Tables\").\n\nExample:\n  caltrail state keypacks --as-of 2025-03-01"
)]
pub struct StateArgs {
    /// The table to print.
    table: String,
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn state(db: &Path, args: &StateArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if !TABLE_NAMES.contains(&args.table.as_str()) {
        bail!("unknown table {:?} (the tables are: {})", args.table, TABLE_NAMES.join(", "));
    }
    let replay = replay(db, &args.as_of, args.table == "events")?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let result = engine.query(&format!("SELECT * FROM {}", args.table))?;
    to_table(&result.schema, &result.batches)?.write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// Run the compliance rules; exit 1 when anything is found.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Rules: over_entitlement, not_entitled, over_issued, cals_left_on_source, version_above_server, resurrected_by_restore, unissued_lost_on_restore, issued_while_inactive, cal_older_than_host, revocation_limit (their SQL is in queries/).\n\nExamples:\n  caltrail check\n  caltrail check --as-of 2025-03-15 --rule cals_left_on_source --format json"
)]
pub struct CheckArgs {
    /// Only this rule (repeat for several).
    #[arg(long = "rule", value_name = "NAME")]
    rules: Vec<String>,
    #[command(flatten)]
    as_of: AsOfArgs,
    /// `table` and `csv` print the columns every finding has; `json` prints all of them.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn check(db: &Path, args: &CheckArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rules: Vec<_> = if args.rules.is_empty() {
        RULES.iter().collect()
    } else {
        args.rules
            .iter()
            .map(|name| {
                caltrail_sql::find_rule(name).with_context(|| {
                    let known: Vec<&str> = RULES.iter().map(|r| r.name).collect();
                    format!("unknown rule {name:?} (the rules are: {})", known.join(", "))
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let replay = replay(db, &args.as_of, false)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let mut findings = Table::new(FINDING_COLUMNS);
    let mut json_lines = Vec::new();
    for rule in rules {
        let result = engine.run_rule(rule).with_context(|| format!("rule {}", rule.name))?;
        let table = to_table(&result.schema, &result.batches)?;
        let positions: Vec<usize> = FINDING_COLUMNS
            .iter()
            .map(|c| table.columns.iter().position(|n| n == c))
            .collect::<Option<_>>()
            .expect("invariant: run_rule checked the finding columns");
        for row in &table.rows {
            findings.rows.push(positions.iter().map(|p| row[*p].clone()).collect());
            json_lines.push(Table { columns: table.columns.clone(), rows: vec![row.clone()] });
        }
    }
    if args.format == Format::Json {
        for line in &json_lines {
            line.write(Format::Json, out)?;
        }
    } else {
        findings.write(args.format, out)?;
    }
    Ok(if findings.rows.is_empty() { Outcome::Clean } else { Outcome::Found })
}

/// Run your own read-only SQL over the tables.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Only one statement that reads: SELECT, WITH or EXPLAIN. The tables are described in README, \"Tables\".\n\nExample:\n  caltrail sql \"SELECT server, SUM(current_quantity) FROM keypacks GROUP BY server\""
)]
pub struct SqlArgs {
    /// The query.
    #[arg(required_unless_present = "file", conflicts_with = "file")]
    query: Option<String>,
    /// Read the query from a file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn sql(db: &Path, args: &SqlArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let query = match (&args.query, &args.file) {
        (Some(query), _) => query.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        (None, None) => bail!("give a query or --file"),
    };
    let replay = replay(db, &args.as_of, true)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let result = engine.query(&query)?;
    to_table(&result.schema, &result.batches)?.write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// The true-up report: per agreement, version, CAL type and anniversary year, the purchased
/// quantity, the peaks installed and active issued, and the shortfall to order.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example:\n  caltrail true-up --agreement EA-6543210")]
pub struct TrueUpArgs {
    /// Only this agreement.
    #[arg(long)]
    agreement: Option<String>,
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub fn true_up(db: &Path, args: &TrueUpArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let replay = replay(db, &args.as_of, false)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let result = engine.run_report(&caltrail_sql::TRUE_UP)?;
    let mut table = to_table(&result.schema, &result.batches)?;
    if let Some(agreement) = &args.agreement {
        let column = table.columns.iter().position(|c| c == "agreement").unwrap_or(0);
        table.rows.retain(|row| row[column] == Cell::Text(agreement.clone()));
    }
    table.write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// Write every table as Parquet for other engines.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Timestamps are microseconds in UTC, integers are signed 64-bit, names are lower_snake.\n\nExample:\n  caltrail export --parquet out/ --as-of 2025-12-31"
)]
pub struct ExportArgs {
    /// The folder to write `<table>.parquet` files into (created if missing).
    #[arg(long, value_name = "DIR")]
    parquet: PathBuf,
    #[command(flatten)]
    as_of: AsOfArgs,
}

pub fn export(db: &Path, args: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let replay = replay(db, &args.as_of, true)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    for (name, rows) in engine.export_parquet(&args.parquet)? {
        writeln!(out, "{}: {rows} rows", args.parquet.join(format!("{name}.parquet")).display())?;
    }
    Ok(Outcome::Clean)
}
