//! `caltrail report`: the auditor's report, one self-contained HTML file. This module gathers
//! what the report shows (every number from the same replay and SQL as `check`, `position` and
//! `true-up`); `page` lays it out and `charts` draws its charts.

mod charts;
mod page;

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use caltrail_events::{EventData, Timestamp};
use caltrail_replay::{AsOf, EventRow, event_row};
use caltrail_sql::{Engine, RULES, Rule};
use caltrail_store::Ledger;

use crate::Outcome;
use crate::output::{Cell, Table};
use crate::report::{AsOfArgs, replay_known, run_rules, true_up_agreement, true_up_table};

/// At most this many events are listed; the report says how many it left out.
const MAX_LISTED_EVENTS: usize = 10_000;

/// Write the auditor's report: one HTML file, readable offline and in print.
#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  caltrail --db estate.db report --out audit-2025.html --as-of 2025-12-31
  caltrail --db estate.db report --out true-up.html --agreement EA-7654321 --title \"Northwind true-up 2025\"")]
pub(crate) struct ReportArgs {
    /// The HTML file to write (replaced if it exists).
    #[arg(long, value_name = "FILE.html")]
    out: PathBuf,
    #[command(flatten)]
    as_of: AsOfArgs,
    /// The agreement whose anniversary sets the true-up years (as `true-up --agreement`).
    #[arg(long)]
    agreement: Option<String>,
    /// The report's title (default: "Licence position of" and the ledger's file name).
    #[arg(long)]
    title: Option<String>,
}

/// Everything the report shows, gathered before any HTML is written.
pub(crate) struct Report {
    pub title: String,
    pub cover: Cover,
    pub position: Table,
    /// The true-up rows, or why there are none.
    pub true_up: Result<(String, Table), String>,
    pub findings: Vec<Finding>,
    pub servers: Vec<ServerSection>,
    pub charts: Vec<charts::Chart>,
    /// Charts left out, with the reason, so the page can say so.
    pub charts_left_out: Vec<String>,
    pub events: EventListing,
}

pub(crate) struct Cover {
    pub estate: String,
    pub as_of: String,
    pub known_at: Option<String>,
    pub ledger: String,
    pub n_events: u64,
    pub n_in_ledger: u64,
    pub head_hash: String,
    pub checkpoint: Option<CheckpointSummary>,
    pub version: &'static str,
    pub written_at: String,
}

pub(crate) struct CheckpointSummary {
    pub origin: String,
    pub size: u64,
    pub root: String,
    pub signers: Vec<String>,
}

/// One row of `check`, with the columns beyond the four every finding has.
pub(crate) struct Finding {
    pub rule: String,
    pub severity: String,
    pub subject: String,
    pub message: String,
    pub events: Vec<String>,
    pub details: Vec<(String, String)>,
}

pub(crate) struct ServerSection {
    pub server: String,
    /// `servers` rows: one per incarnation.
    pub incarnations: Table,
    pub status_history: Table,
    pub packs: Table,
    pub migrations_out: Table,
    pub migrations_in: Table,
}

pub(crate) struct EventListing {
    /// The events listed, in ledger order.
    pub rows: Vec<EventRow>,
    /// Events of the period left out of the listing.
    pub n_left_out: u64,
    /// Events a finding rests on that are older than the listing, listed apart.
    pub cited: Vec<EventRow>,
}

pub(crate) fn run(db: &Path, args: &ReportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let report = gather(db, args)?;
    let html = page::render(&report);
    write_atomically(&args.out, html.as_bytes())?;
    writeln!(
        out,
        "{}: {} findings, {} events listed, {} KiB",
        args.out.display(),
        report.findings.len(),
        report.events.rows.len() + report.events.cited.len(),
        html.len().div_ceil(1024)
    )?;
    Ok(Outcome::Clean)
}

/// Writes beside the target and renames, so a report is never left half written.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    let temporary = PathBuf::from(temporary);
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}

fn gather(db: &Path, args: &ReportArgs) -> anyhow::Result<Report> {
    let progress = args.as_of.progress("report");
    // The listing, the count and the head hash stop where the replay did, whatever is appended
    // while the report is written.
    let (replay, n_known) = replay_known(db, &args.as_of, false, &progress)?;
    let ledger = Ledger::open_existing(db)?;
    let judged_at = replay.active_at;
    let true_up_agreement = true_up_agreement(&replay, args.agreement.as_deref());
    if let (Some(_), Err(error)) = (&args.agreement, &true_up_agreement) {
        anyhow::bail!("{error}");
    }
    let engine = Engine::new(std::sync::Arc::new(replay))?;

    let rules: Vec<&Rule> = RULES.iter().collect();
    let findings = findings(run_rules(&engine, &rules)?);
    let position = {
        let result = engine.run_report(&caltrail_sql::POSITION)?;
        Table::from(result.rows()?)
    };
    let true_up = match true_up_agreement {
        Ok(agreement) => {
            let table = true_up_table(&engine, &agreement)?;
            Ok((agreement, table))
        }
        Err(why) => Err(why.to_string()),
    };
    let servers = server_sections(&engine)?;
    let agreements: Vec<String> =
        query(&engine, "SELECT DISTINCT agreement FROM agreements ORDER BY agreement")?
            .rows
            .iter()
            .map(|row| row[0].text())
            .collect();
    let estate = format!(
        "{} license server{}; {}",
        servers.len(),
        if servers.len() == 1 { "" } else { "s" },
        match agreements.len() {
            0 => "no purchase recorded".to_owned(),
            1 => format!("agreement {}", agreements[0]),
            n if n <= 6 => format!("agreements {}", agreements.join(", ")),
            n => format!("agreements {} and {} more", agreements[..5].join(", "), n - 5),
        }
    );
    let (charts, charts_left_out) = charts::gather(&engine, true_up.as_ref().ok(), judged_at)?;
    let cited: HashSet<&str> =
        findings.iter().flat_map(|f| f.events.iter().map(String::as_str)).collect();
    let events = listing(&ledger, &args.as_of, n_known, &cited)?;
    progress.finish();

    let head_hash = ledger
        .read_entries(&[n_known])?
        .first()
        .map(|stored| stored.hash.to_hex())
        .context("the ledger lost its last known entry while the report was written")?;
    let file_stem = db
        .file_stem()
        .map_or_else(|| db.display().to_string(), |s| s.to_string_lossy().into_owned());
    let cover = Cover {
        as_of: match args.as_of.as_of() {
            AsOf::Latest => format!("{} (the latest events)", judged_at.to_rfc3339()),
            AsOf::Time(t) => t.to_rfc3339(),
            AsOf::Seq(n) => format!("after entry {n}, judged at {}", judged_at.to_rfc3339()),
        },
        known_at: args.as_of.known_at_text(),
        ledger: db.display().to_string(),
        n_events: n_known,
        n_in_ledger: ledger.head()?.n_events,
        head_hash,
        checkpoint: checkpoint_summary(&ledger)?,
        version: env!("CARGO_PKG_VERSION"),
        written_at: Timestamp::now().to_rfc3339(),
        estate,
    };
    Ok(Report {
        title: args.title.clone().unwrap_or_else(|| format!("Licence position of {file_stem}")),
        cover,
        position,
        true_up,
        findings,
        servers,
        charts,
        charts_left_out,
        events,
    })
}

fn findings(tables: Vec<Table>) -> Vec<Finding> {
    const SHOWN_APART: [&str; 5] = ["rule", "severity", "subject", "message", "events"];
    let mut findings = Vec::new();
    for table in tables {
        let index = |name: &str| table.columns.iter().position(|c| c == name);
        let text =
            |row: &[Cell], name: &str| index(name).map(|i| row[i].text()).unwrap_or_default();
        for row in &table.rows {
            let events = match index("events").map(|i| &row[i]) {
                Some(Cell::List(ids)) => ids.clone(),
                _ => Vec::new(),
            };
            let details = table
                .columns
                .iter()
                .zip(row)
                .filter(|(name, cell)| {
                    !SHOWN_APART.contains(&name.as_str()) && **cell != Cell::Null
                })
                .map(|(name, cell)| (name.clone(), cell.text()))
                .collect();
            findings.push(Finding {
                rule: text(row, "rule"),
                severity: text(row, "severity"),
                subject: text(row, "subject"),
                message: text(row, "message"),
                events,
                details,
            });
        }
    }
    // Errors first, each severity in the order `check` reports.
    findings.sort_by_key(|f| f.severity != "error");
    findings
}

fn query(engine: &Engine, sql: &str) -> anyhow::Result<Table> {
    let result = engine.query(sql).with_context(|| format!("the report's query {sql}"))?;
    Ok(Table::from(result.rows()?))
}

fn server_sections(engine: &Engine) -> anyhow::Result<Vec<ServerSection>> {
    let incarnations = query(
        engine,
        "SELECT server, incarnation, status, license_server_id, os_version, activated_at, \
         deactivated_at, reactivated_at, decommissioned_at, last_restored_at \
         FROM servers ORDER BY server, incarnation",
    )?;
    let status = query(
        engine,
        "SELECT server, seq, \"at\", incarnation, status, license_server_id, os_version \
         FROM server_status ORDER BY server, \"at\", seq",
    )?;
    let packs = query(
        engine,
        "SELECT server, keypack, incarnation, agreement, product_version, cal_type, origin, \
         installed_at, installed, removed, restored, lost, current_quantity, active_issued \
         FROM keypacks ORDER BY server, installed_at, keypack",
    )?;
    let migrations = query(
        engine,
        "SELECT source, target, migration, \"at\", keypack, product_version, cal_type, quantity, \
         source_removed, removed_by_hand, not_removed FROM migrations ORDER BY \"at\", seq",
    )?;
    let mut names: Vec<String> = incarnations.rows.iter().map(|row| row[0].text()).collect();
    names.dedup();
    Ok(names
        .into_iter()
        .map(|server| {
            let mine = |table: &Table, column: usize| Table {
                columns: table.columns.iter().skip(usize::from(column == 0)).cloned().collect(),
                rows: table
                    .rows
                    .iter()
                    .filter(|row| row[column].text() == server)
                    .map(|row| row.iter().skip(usize::from(column == 0)).cloned().collect())
                    .collect(),
            };
            ServerSection {
                incarnations: mine(&incarnations, 0),
                status_history: mine(&status, 0),
                packs: mine(&packs, 0),
                migrations_out: mine(&migrations, 0),
                migrations_in: mine(&migrations, 1),
                server,
            }
        })
        .collect())
}

/// The events of the period: those known (up to `n_known`) whose `at` is at or before the
/// as-of time, the newest `MAX_LISTED_EVENTS` in ledger order, read from the end of the
/// ledger so that a large ledger is not read twice. Events a finding cites that fall before
/// the listing are read by id and listed apart, so every link of the report lands.
fn listing(
    ledger: &Ledger,
    args: &AsOfArgs,
    n_known: u64,
    cited: &HashSet<&str>,
) -> anyhow::Result<EventListing> {
    let until = match args.as_of() {
        AsOf::Time(t) => Some(t),
        AsOf::Latest | AsOf::Seq(_) => None,
    };
    let in_period = |at: Timestamp| until.is_none_or(|t| at <= t);
    let n_in_period = match until {
        None => n_known,
        Some(t) => ledger.times(n_known)?.iter().filter(|at| **at <= t.micros()).count() as u64,
    };
    let mut newest_first: Vec<EventRow> = Vec::new();
    let mut retracted_by: HashMap<String, String> = HashMap::new();
    let mut next = n_known;
    while next > 0 && newest_first.len() < MAX_LISTED_EVENTS {
        let first = next.saturating_sub(2048).max(1);
        let seqs: Vec<u64> = (first..=next).rev().collect();
        for stored in ledger.read_entries(&seqs)? {
            let event = &stored.entry.event;
            if let EventData::EventRetracted(retraction) = &event.data {
                retracted_by
                    .insert(retraction.retracts.as_str().to_owned(), event.id.as_str().to_owned());
            }
            if in_period(event.at) && newest_first.len() < MAX_LISTED_EVENTS {
                newest_first.push(event_row(
                    stored.entry.seq,
                    stored.entry.recorded_at,
                    &stored.hash.to_hex(),
                    event,
                ));
            }
        }
        next = first - 1;
    }
    let mut rows: Vec<EventRow> = newest_first.into_iter().rev().collect();
    let listed: HashSet<&str> = rows.iter().map(|row| row.id.as_str()).collect();
    let mut older: Vec<u64> = Vec::new();
    for id in cited.iter().filter(|id| !listed.contains(**id)) {
        if let Some(seq) = ledger.seq_of(id)? {
            older.push(seq);
        }
    }
    older.sort_unstable();
    let cited = ledger
        .read_entries(&older)?
        .iter()
        .map(|stored| {
            event_row(
                stored.entry.seq,
                stored.entry.recorded_at,
                &stored.hash.to_hex(),
                &stored.entry.event,
            )
        })
        .collect::<Vec<_>>();
    for row in &mut rows {
        row.retracted_by = retracted_by.get(&row.id).cloned();
    }
    Ok(EventListing { n_left_out: n_in_period.saturating_sub(rows.len() as u64), rows, cited })
}

fn checkpoint_summary(ledger: &Ledger) -> anyhow::Result<Option<CheckpointSummary>> {
    let Some(note) = ledger.latest_checkpoint()? else {
        return Ok(None);
    };
    let parsed = caltrail_tlog::SignedNote::parse(&note)
        .and_then(|note| Ok((caltrail_tlog::Checkpoint::from_note(&note)?, note)));
    Ok(Some(match parsed {
        Ok((checkpoint, note)) => CheckpointSummary {
            origin: checkpoint.origin,
            size: checkpoint.size,
            root: caltrail_tlog::note::encode_base64(&checkpoint.root),
            signers: note.signatures.into_iter().map(|s| s.name).collect(),
        },
        Err(error) => CheckpointSummary {
            origin: format!("unreadable: {error}"),
            size: 0,
            root: String::new(),
            signers: Vec::new(),
        },
    }))
}
