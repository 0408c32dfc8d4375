//! The commands that replay the ledger and ask SQL: `state`, `check`, `sql`, `true-up` and
//! `export`. Replaying and printing only; every judgement is in `queries/`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caltrail_events::{EventData, EventType, Timestamp};
use caltrail_replay::{AsOf, Replay};
use caltrail_sql::{Engine, FINDING_COLUMNS, RULES, Rule};
use caltrail_store::{Ledger, StoreError, StoredEntry};

use crate::Outcome;
use crate::output::{Cell, Format, Table};
use crate::progress::Progress;
use crate::timearg::parse_time_end_of_day;

/// `--as-of`: a sequence number or a time.
pub(crate) fn parse_as_of(text: &str) -> Result<AsOf, String> {
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

fn no_events(path: &Path) -> String {
    format!("{} holds no events yet: record some with `caltrail append FILE`", path.display())
}

/// Opens a ledger that must hold events: every command that reads one has nothing to say of
/// an empty ledger but that.
pub(crate) fn open_with_events(db: &Path) -> anyhow::Result<Ledger> {
    let ledger = Ledger::open_existing(db)?;
    if ledger.head()?.n_events == 0 {
        bail!("{}", no_events(db));
    }
    Ok(ledger)
}

/// `--known-at`: a sequence number or a recording time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KnownAt {
    /// The first N entries.
    Seq(u64),
    /// The entries recorded at or before T.
    Time(Timestamp),
}

pub(crate) fn parse_known_at(text: &str) -> Result<KnownAt, String> {
    match parse_as_of(text) {
        Ok(AsOf::Seq(n)) => Ok(KnownAt::Seq(n)),
        Ok(AsOf::Time(t)) => Ok(KnownAt::Time(t)),
        Ok(AsOf::Latest) => unreachable!("parse_as_of gives a sequence number or a time"),
        Err(message) => Err(message),
    }
}

/// The as-of point and the known-at bound shared by the reporting commands (EVENTS.md, "Time").
#[derive(Debug, clap::Args)]
pub(crate) struct AsOfArgs {
    /// Judge the position at this point: a time (the events whose `at` is at or before it; a
    /// date means its end, in UTC) or a sequence number (what the ledger held after its first
    /// N entries, judged at the latest `at` among them).
    #[arg(long, value_name = "N|TIME", value_parser = parse_as_of)]
    as_of: Option<AsOf>,
    /// Read the ledger as it stood then: only the entries recorded up to sequence number N, or
    /// at or before TIME. With --as-of TIME: what the ledger said then about that moment.
    #[arg(long, value_name = "N|TIME", value_parser = parse_known_at)]
    known_at: Option<KnownAt>,
    /// No progress bar on stderr (there is none when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
    /// Replay every entry from the first, neither reading nor writing the snapshot beside the
    /// ledger (`LEDGER.snapshot`).
    #[arg(long)]
    no_snapshot: bool,
}

impl AsOfArgs {
    /// Every event.
    pub(crate) fn latest() -> AsOfArgs {
        AsOfArgs { as_of: None, known_at: None, quiet: true, no_snapshot: false }
    }

    /// A progress bar for a command that replays, unless `--quiet`.
    pub(crate) fn progress(&self, command: &str) -> Progress {
        Progress::events(command, 0, self.quiet)
    }

    /// `--known-at` as the user gave it, for the report's cover.
    pub(crate) fn known_at_text(&self) -> Option<String> {
        self.known_at.map(|known| match known {
            KnownAt::Seq(n) => format!("the first {n} entries"),
            KnownAt::Time(t) => format!("the entries recorded by {}", t.to_rfc3339()),
        })
    }

    /// The as-of point: the end of the ledger unless one was given.
    pub(crate) fn as_of(&self) -> AsOf {
        self.as_of.unwrap_or(AsOf::Latest)
    }

    /// How many entries the ledger held as these arguments read it (`--known-at`, or
    /// `--as-of N`), checked against what it holds.
    pub(crate) fn n_known(&self, ledger: &Ledger) -> anyhow::Result<u64> {
        let head = ledger.head()?;
        if head.n_events == 0 {
            bail!("{}", no_events(ledger.path()));
        }
        Ok(match (self.as_of(), self.known_at) {
            (AsOf::Seq(_), Some(_)) => bail!(
                "--as-of N already says what the ledger knew (its first N entries): give --as-of a time to combine it with --known-at"
            ),
            (AsOf::Seq(n), None) => {
                if n == 0 || n > head.n_events {
                    bail!("--as-of {n}: the ledger has events 1 to {}", head.n_events);
                }
                n
            }
            (_, Some(KnownAt::Seq(n))) => {
                if n == 0 || n > head.n_events {
                    bail!("--known-at {n}: the ledger has events 1 to {}", head.n_events);
                }
                n
            }
            (_, Some(KnownAt::Time(t))) => ledger.n_known_at(t)?,
            (_, None) => head.n_events,
        })
    }

    /// The events at or before `t`, read from the ledger as these arguments read it.
    pub(crate) fn at_time(&self, t: Timestamp) -> AsOfArgs {
        AsOfArgs {
            as_of: Some(AsOf::Time(t)),
            known_at: self.known_at,
            quiet: self.quiet,
            no_snapshot: self.no_snapshot,
        }
    }
}

/// Replays the ledger to the as-of point, in valid-time order: by `at`, ties by `seq`.
///
/// A first pass reads the `at` column of every known entry and decodes the few entries others
/// name (retractions, pack-creating events), so that names resolve whatever their `at`. The
/// entries out of valid-time order (`out_of_order`: none in most ledgers) are read next and
/// held; the main pass streams the rest, which is in order, and merges the held ones in.
pub(crate) fn replay(db: &Path, args: &AsOfArgs, keep_events: bool) -> anyhow::Result<Replay> {
    replay_with_progress(db, args, keep_events, &Progress::none())
}

/// [`replay`], moving `progress` along as entries are applied.
pub(crate) fn replay_with_progress(
    db: &Path,
    args: &AsOfArgs,
    keep_events: bool,
    progress: &Progress,
) -> anyhow::Result<Replay> {
    replay_known(db, args, keep_events, progress).map(|(replay, _)| replay)
}

/// [`replay_with_progress`], and the number of entries it read the ledger as holding: what a
/// command that also reads entries itself (the report) must stop at, whatever is appended
/// meanwhile.
pub(crate) fn replay_known(
    db: &Path,
    args: &AsOfArgs,
    keep_events: bool,
    progress: &Progress,
) -> anyhow::Result<(Replay, u64)> {
    let ledger = Ledger::open_existing(db)?;
    let n_known = args.n_known(&ledger)?;
    let replay = replay_counted(&ledger, db, args, n_known, keep_events, progress)?;
    Ok((replay, n_known))
}

/// [`replay_known`] of the first `n_known` entries of `ledger`, which the caller counted.
pub(crate) fn replay_counted(
    ledger: &Ledger,
    db: &Path,
    args: &AsOfArgs,
    n_known: u64,
    keep_events: bool,
    progress: &Progress,
) -> anyhow::Result<Replay> {
    let as_of = args.as_of();
    progress.set_length(n_known);
    let now = Timestamp::now();
    // The events table is not in a snapshot: a command that shows it replays from the start.
    let loaded = if args.no_snapshot || keep_events {
        None
    } else {
        crate::snapshot::load(ledger, db, as_of, now, n_known)?
    };
    let from_snapshot = loaded.is_some();
    // A snapshot of the whole ledger, judged at no point yet; rewritten once the entries
    // folded on top of the last one cost more than writing it again.
    let whole = as_of == AsOf::Latest && args.known_at.is_none();
    let writes_snapshot = whole && !args.no_snapshot && !keep_events;
    let (mut replay, ahead, spill) = if let Some((replay, ahead)) = loaded {
        (replay, ahead, None)
    } else {
        let mut replay = Replay::new(as_of, now, keep_events);
        // The snapshot to be written gets the `issues` rows as they come; without one, a file
        // of no name beside the ledger does, so that no replay holds that table whole.
        let spill = writes_snapshot.then(|| crate::snapshot::begin(db)).flatten();
        let spill = if let Some((file, pending)) = spill {
            replay.spill_issues_to(file);
            Some(pending)
        } else {
            if let Some(file) = crate::snapshot::scratch(db) {
                replay.spill_issues_to(file);
            }
            None
        };
        (replay, read_ahead(ledger, db, 0, n_known)?, spill)
    };
    let after = ahead.after;
    fold(ledger, db, &mut replay, ahead, n_known, keep_events, progress)?;
    let worth_writing = !from_snapshot || (n_known - after).saturating_mul(16) >= after;
    if writes_snapshot && worth_writing {
        crate::snapshot::store(ledger, db, &replay, n_known, spill);
    }
    Ok(replay.finish())
}

/// What a fold of entries `after + 1 ..= n` needs before it starts: their `at` column, and the
/// entries of the types a replay knows ahead, decoded.
pub(crate) struct Ahead {
    /// The entries before these are folded already (from a snapshot), or none.
    pub(crate) after: u64,
    /// The `at` of each entry, by `seq - after - 1`.
    pub(crate) ats: Vec<i64>,
    /// The retractions and pack-creating entries among them, in chain order.
    pub(crate) named: Vec<StoredEntry>,
}

/// Reads what a fold of entries `after + 1 ..= n_known` needs ahead. The two reads are
/// independent: the `at` index on a second connection, the named entries (a scan of the
/// table's small columns) on this one. Entries up to `n_known` are the same in both whatever
/// is appended meanwhile, since the ledger only grows.
pub(crate) fn read_ahead(
    ledger: &Ledger,
    db: &Path,
    after: u64,
    n_known: u64,
) -> anyhow::Result<Ahead> {
    let types: Vec<EventType> =
        EventType::ALL.iter().copied().filter(|t| Replay::is_known_ahead(*t)).collect();
    let mut named = Vec::new();
    let ats = std::thread::scope(|scope| -> anyhow::Result<Vec<i64>> {
        let times = scope.spawn(|| -> anyhow::Result<Vec<i64>> {
            Ok(Ledger::open_existing(db)?.times_after(after, n_known)?)
        });
        ledger.scan_named(after, n_known, &types, |stored| named.push(stored))?;
        times.join().map_err(|_| anyhow::anyhow!("reading the at column failed"))?
    })?;
    Ok(Ahead { after, ats, named })
}

/// Folds entries `ahead.after + 1 ..= n_known` into `replay`, in valid-time order (see
/// [`in_valid_time_order`]); the named entries are known first.
pub(crate) fn fold(
    ledger: &Ledger,
    db: &Path,
    replay: &mut Replay,
    ahead: Ahead,
    n_known: u64,
    keep_events: bool,
    progress: &Progress,
) -> anyhow::Result<()> {
    let Ahead { after, ats, named } = ahead;
    for stored in &named {
        replay.know(&stored.entry.event);
    }
    let known = seqs_of(&named);
    drop(named);
    replay.reserve(ats.len());
    in_valid_time_order(ledger, db, after, ats, &known, n_known, progress, |next| match next {
        Next::Ahead(entries) => replay.look_ahead(entries.iter().map(|s| &s.entry.event)),
        Next::Entry(stored) => {
            // Only the events table shows hashes; hex-encoding millions of them otherwise is
            // waste.
            let hash = if keep_events { stored.hash.to_hex() } else { String::new() };
            replay.apply(stored.entry.seq, stored.entry.recorded_at, &hash, &stored.entry.event);
        }
    })
}

/// What `in_valid_time_order` hands its caller.
enum Next<'e> {
    /// Entries about to come as `Entry`s, most of them next and in this order, to read ahead
    /// for them: a hint, which nothing may depend on.
    Ahead(&'e [StoredEntry]),
    /// The next entry in valid-time order.
    Entry(&'e StoredEntry),
}

/// The `seq`s of the named entries, in order.
fn seqs_of(named: &[StoredEntry]) -> Vec<u64> {
    let mut seqs: Vec<u64> = named.iter().map(|stored| stored.entry.seq).collect();
    seqs.sort_unstable();
    seqs
}

/// Hands entries `after + 1 ..= n_known` to `each` in valid-time order (`at`, then `seq`),
/// given their `at` column (`ats`, by `seq - after - 1`). The entries out of that order
/// (`out_of_order`: none in most ledgers) are read first and held; the main pass streams the
/// rest, which is in order, and merges the held ones in.
///
/// `known` holds the `seq`s of the entries read ahead (`read_ahead`, from indexes where the
/// ledger has them). An entry of a type a replay knows ahead that is not among them stops the
/// walk: the fold before it went without knowing it, so its answer would be wrong.
#[allow(clippy::too_many_arguments, reason = "each is a part of one walk the callers set up")]
fn in_valid_time_order(
    ledger: &Ledger,
    db: &Path,
    after: u64,
    ats: Vec<i64>,
    known: &[u64],
    n_known: u64,
    progress: &Progress,
    mut each: impl FnMut(Next<'_>),
) -> anyhow::Result<()> {
    let mut each = |next: Next<'_>| {
        let Next::Entry(stored) = next else {
            each(next);
            return Ok(());
        };
        let seq = stored.entry.seq;
        let event_type = stored.entry.event.event_type();
        if Replay::is_known_ahead(event_type) && known.binary_search(&seq).is_err() {
            return Err(StoreError::Corrupt {
                path: db.to_owned(),
                seq,
                reason: format!(
                    "the ledger's indexes do not list it, and a replay must read every {event_type} before it folds"
                ),
            });
        }
        each(next);
        Ok(())
    };
    let out_of_order: Vec<u64> =
        caltrail_replay::out_of_order(&ats).into_iter().map(|i| after + i as u64 + 1).collect();
    drop(ats);
    let mut held = ledger.read_entries(&out_of_order)?;
    let order_of = |stored: &StoredEntry| (stored.entry.event.at, stored.entry.seq);
    held.sort_by_key(order_of);
    // The next held entry, by index: `Peekable::next_if` moved the first held entry out and
    // back for every entry of the stream, a copy of a few hundred bytes each time (a tenth of
    // the fold's thread; measured).
    let mut next_held = 0;
    let mut next_out_of_order = out_of_order.iter().peekable();
    let mut last = None;
    progress.at(after);
    ledger.for_each_chunk_after(after, Some(n_known), |entries| {
        for group in entries.chunks(caltrail_replay::LOOK_AHEAD) {
            each(Next::Ahead(group))?;
            for stored in group {
                let seq = stored.entry.seq;
                if next_out_of_order.next_if_eq(&&seq).is_some() {
                    continue;
                }
                let key = order_of(stored);
                while let Some(early) = held.get(next_held).filter(|h| order_of(h) < key) {
                    each(Next::Entry(early))?;
                    next_held += 1;
                }
                // The order came from the `at` column; the bytes must agree, or the column was
                // changed.
                if last.is_some_and(|last| key < last) {
                    return Err(StoreError::Corrupt {
                        path: db.to_owned(),
                        seq,
                        reason: "its at column differs from its bytes".into(),
                    });
                }
                last = Some(key);
                each(Next::Entry(stored))?;
                progress.at(seq);
            }
        }
        Ok(())
    })?;
    for late in &held[next_held..] {
        each(Next::Entry(late))?;
    }
    Ok(())
}

/// Print a table of the replayed state.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The tables are described in README, \"Tables\".\n\nExamples:\n  caltrail state keypacks --as-of 2025-03-01\n  caltrail state migrations --format csv > migrations.csv"
)]
pub(crate) struct StateArgs {
    /// The table to print.
    #[arg(value_parser = table_names())]
    table: caltrail_sql::Table,
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The tables, as clap offers them in help, completions and errors.
fn table_names() -> impl clap::builder::TypedValueParser<Value = caltrail_sql::Table> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(caltrail_sql::TABLE_NAMES).map(|name| {
        caltrail_sql::Table::parse(&name).expect("invariant: clap offered only the tables' names")
    })
}

/// The rules, as clap offers them in help, completions and errors.
fn rule_names() -> impl clap::builder::TypedValueParser<Value = &'static Rule> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(RULES.iter().map(|rule| rule.name)).map(|name| {
        caltrail_sql::find_rule(&name).expect("invariant: clap offered only the rules' names")
    })
}

pub(crate) fn state(db: &Path, args: &StateArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let replay = replay(db, &args.as_of, args.table == caltrail_sql::Table::Events)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    Table::from(engine.table(args.table)?.rows()?).write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// Run the compliance rules; exit 1 when anything is found.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "The rules' SQL is in queries/, one file each.\n\nExamples:\n  caltrail check\n  caltrail check --as-of 2025-03-15 --rule cals_left_on_source --format json"
)]
pub(crate) struct CheckArgs {
    /// Only this rule (repeat for several).
    #[arg(long = "rule", value_name = "NAME", value_parser = rule_names())]
    rules: Vec<&'static Rule>,
    #[command(flatten)]
    as_of: AsOfArgs,
    /// `table` and `csv` print the columns every finding has; `json` prints all of them.
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(crate) fn check(db: &Path, args: &CheckArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let rules: Vec<&Rule> =
        if args.rules.is_empty() { RULES.iter().collect() } else { args.rules.clone() };
    let progress = args.as_of.progress("check");
    let replay = replay_with_progress(db, &args.as_of, false, &progress)?;
    progress.finish();
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let mut findings = Table::new(FINDING_COLUMNS);
    let mut json_lines = Vec::new();
    for table in run_rules(&engine, &rules)? {
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

/// Runs each rule: one table of findings per rule, in the order given.
pub(crate) fn run_rules(engine: &Engine, rules: &[&Rule]) -> anyhow::Result<Vec<Table>> {
    rules
        .iter()
        .zip(engine.run_rules(rules))
        .map(|(rule, result)| {
            let result = result.with_context(|| format!("rule {}", rule.name))?;
            Ok(Table::from(result.rows()?))
        })
        .collect()
}

/// Run your own read-only SQL over the tables.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Only one statement that reads: SELECT, WITH or EXPLAIN. The tables are described in README, \"Tables\".\n\nExamples:\n  caltrail sql \"SELECT server, SUM(current_quantity) FROM keypacks GROUP BY server\"\n  caltrail sql --file my-rule.sql --as-of 2025-06-30 --format json"
)]
pub(crate) struct SqlArgs {
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

pub(crate) fn sql(db: &Path, args: &SqlArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let query = match (&args.query, &args.file) {
        (Some(query), _) => query.clone(),
        (None, Some(file)) => std::fs::read_to_string(file)
            .with_context(|| format!("cannot read {}", file.display()))?,
        (None, None) => bail!("give a query or --file"),
    };
    // The events table is large, and not in a snapshot: kept only when the query may read it.
    // A query that names no `events` cannot (no views, no DDL), whatever its case or quotes.
    let keep_events = query.to_ascii_lowercase().contains("events");
    let replay = replay(db, &args.as_of, keep_events)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let result = engine.query(&query)?;
    Table::from(result.rows()?).write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// The licence position: per CAL type and level, purchased, rights, installed, required and
/// in use, and the headroom (RULES.md, "Reports", `position`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail position\n  caltrail position --as-of 2025-06-30 --known-at 2025-07-15 --format csv"
)]
pub(crate) struct PositionArgs {
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(crate) fn position(
    db: &Path,
    args: &PositionArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let replay = replay(db, &args.as_of, false)?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    let result = engine.run_report(&caltrail_sql::POSITION)?;
    Table::from(result.rows()?).write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// The true-up report: per anniversary year, CAL type and level, the peak use, the rights at
/// the year's end, the shortfall and what to order (RULES.md, "Reports", `true_up`).
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Years come from the agreement's anniversary: --agreement, else the enterprise, campus or school agreement with the latest purchase.\n\nExamples:\n  caltrail true-up\n  caltrail true-up --agreement EA-6543210 --as-of 2025-12-31 --format csv"
)]
pub(crate) struct TrueUpArgs {
    /// The agreement whose anniversary sets the years.
    #[arg(long)]
    agreement: Option<String>,
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(crate) fn true_up(
    db: &Path,
    args: &TrueUpArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let replay = replay(db, &args.as_of, false)?;
    let agreement = true_up_agreement(&replay, args.agreement.as_deref())?;
    let engine = Engine::new(std::sync::Arc::new(replay))?;
    true_up_table(&engine, &agreement)?.write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// The agreement whose anniversary sets the true-up years: the one named, else the default
/// (RULES.md, "Reports", `true_up`).
pub(crate) fn true_up_agreement(replay: &Replay, name: Option<&str>) -> anyhow::Result<String> {
    match name {
        Some(name) => {
            if !replay.true_up_years.iter().any(|y| y.agreement == name) {
                bail!("--agreement {name}: the ledger holds no purchase under that agreement");
            }
            Ok(name.to_owned())
        }
        None => match replay.true_up_years.iter().find(|y| y.default) {
            Some(year) => Ok(year.agreement.clone()),
            None => bail!(
                "no enterprise, campus or school agreement to take true-up years from: name one with --agreement"
            ),
        },
    }
}

/// The true-up report's rows for one agreement.
pub(crate) fn true_up_table(engine: &Engine, agreement: &str) -> anyhow::Result<Table> {
    let result = engine.run_report(&caltrail_sql::TRUE_UP)?;
    let mut table = Table::from(result.rows()?);
    let column = table.columns.iter().position(|c| c == "agreement").unwrap_or(0);
    table.rows.retain(|row| row[column] == Cell::Text(agreement.to_owned()));
    Ok(table)
}

/// Write every table as Parquet for other engines.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Timestamps are microseconds in UTC, integers are signed 64-bit, names are lower_snake.\n\nExamples:\n  caltrail export --parquet out/\n  caltrail export --parquet year-end/ --as-of 2025-12-31"
)]
pub(crate) struct ExportArgs {
    /// The folder to write `<table>.parquet` files into (created if missing).
    #[arg(long, value_name = "DIR")]
    parquet: PathBuf,
    #[command(flatten)]
    as_of: AsOfArgs,
}

pub(crate) fn export(db: &Path, args: &ExportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let progress = args.as_of.progress("export");
    let ledger = Ledger::open_existing(db)?;
    // Both scans stop here, whatever is appended meanwhile.
    let n_known = args.as_of.n_known(&ledger)?;
    caltrail_sql::create_dir(&args.parquet)?;
    let as_of = args.as_of.as_of();
    // The events table is written by its own scan of the ledger as it goes, beside the replay
    // of the state (which a snapshot may serve) and the writing of the other tables.
    let (n_events, state) = std::thread::scope(|scope| {
        let events = scope.spawn(|| export_events(db, &args.parquet, as_of, n_known, &progress));
        let state = replay_counted(&ledger, db, &args.as_of, n_known, false, &Progress::none())
            .and_then(|replay| Ok(Engine::new(std::sync::Arc::new(replay))?))
            .and_then(|engine| {
                let tables: Vec<caltrail_sql::Table> = caltrail_sql::Table::ALL
                    .iter()
                    .copied()
                    .filter(|table| *table != caltrail_sql::Table::Events)
                    .collect();
                Ok(engine.export_parquet(&args.parquet, &tables)?)
            });
        let n_events = events.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (n_events, state)
    });
    progress.finish();
    let written = std::iter::once((caltrail_sql::Table::Events, n_events?)).chain(state?);
    for (table, rows) in written {
        let path = args.parquet.join(format!("{}.parquet", table.name()));
        writeln!(out, "{}: {rows} rows", path.display())?;
    }
    Ok(Outcome::Clean)
}

/// Writes `dir/events.parquet` from the first `n_known` entries: the rows a replay at `as_of`
/// would list, in its order, a batch at a time.
fn export_events(
    db: &Path,
    dir: &Path,
    as_of: AsOf,
    n_known: u64,
    progress: &Progress,
) -> anyhow::Result<usize> {
    let ledger = Ledger::open_existing(db)?;
    let Ahead { after, ats, named } = read_ahead(&ledger, db, 0, n_known)?;
    let known = seqs_of(&named);
    let retracted_by: std::collections::HashMap<String, String> = named
        .iter()
        .filter_map(|stored| match &stored.entry.event.data {
            EventData::EventRetracted(e) => {
                Some((e.retracts.as_str().to_owned(), stored.entry.event.id.as_str().to_owned()))
            }
            _ => None,
        })
        .collect();
    drop(named);
    let mut file = caltrail_sql::EventsFile::create(dir)?;
    progress.set_length(n_known);
    let mut failed = None;
    let mut data = Vec::new();
    in_valid_time_order(&ledger, db, after, ats, &known, n_known, progress, |next| {
        let Next::Entry(stored) = next else { return };
        let (seq, event) = (stored.entry.seq, &stored.entry.event);
        if failed.is_some() || !as_of.includes(seq, event) {
            return;
        }
        let hash = stored.hash.hex_digits();
        let mut row = caltrail_replay::event_fields(
            seq,
            stored.entry.recorded_at,
            hash.as_str(),
            event,
            &mut data,
        );
        row.retracted_by = retracted_by.get(event.id.as_str()).map(String::as_str);
        if let Err(error) = file.push(row) {
            failed = Some(error);
        }
    })?;
    if let Some(error) = failed {
        return Err(error.into());
    }
    Ok(file.finish()?)
}
