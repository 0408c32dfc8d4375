//! `caltrail append`: reads JSON Lines from files or stdin, validates every line, and appends the
//! batch all or nothing.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caltrail_events::{Event, Timestamp};
use caltrail_store::{AppendError, Earlier, Ledger};

use crate::Outcome;

/// Append events (JSON Lines) to the ledger, all or nothing.
///
/// Lines that fail validation are all reported with their file, line and field, and nothing is
/// written. An event whose id is already recorded with the same content is skipped as a
/// duplicate; the same id with other content is refused.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail --db estate.db append fixtures/restore-reinstalled-os.jsonl\n  my-export-script | caltrail --db estate.db append -"
)]
pub struct AppendArgs {
    /// Files of events, one JSON object per line; `-` or none reads stdin.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
}

/// The longest line read as an event. A real event is well under a kilobyte; a line of
/// megabytes is a wrong file, and refusing it early keeps memory bounded per line.
const MAX_LINE_BYTES: usize = 1 << 20;

/// The most parse errors printed for one append; the rest are counted.
const MAX_ERRORS_SHOWN: usize = 20;

/// Environment variable that fixes `recorded_at`, so that a history appended in a test or a
/// reproduction gives the same bytes and head hash every time.
pub const RECORDED_AT_ENV: &str = "CALTRAIL_RECORDED_AT";

/// Where an event was read: the index of its source and its line number.
#[derive(Clone, Copy)]
struct Place {
    source: usize,
    line: usize,
}

pub fn run(db: &Path, args: &AppendArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let sources: Vec<PathBuf> =
        if args.files.is_empty() { vec![PathBuf::from("-")] } else { args.files.clone() };
    let labels: Vec<String> = sources
        .iter()
        .map(|p| if p == Path::new("-") { "<stdin>".to_owned() } else { p.display().to_string() })
        .collect();
    let mut events = Vec::new();
    let mut places = Vec::new();
    let mut errors = Vec::new();
    for (source, path) in sources.iter().enumerate() {
        let bytes = read_input(path).with_context(|| format!("cannot read {}", labels[source]))?;
        for part in parse_lines(&bytes, source, &labels[source]) {
            events.extend(part.events);
            places.extend(part.places);
            errors.extend(part.errors);
        }
    }
    if !errors.is_empty() {
        let shown = errors.len().min(MAX_ERRORS_SHOWN);
        for error in &errors[..shown - 1] {
            eprintln!("caltrail: {error}");
        }
        let mut last = errors[shown - 1].clone();
        if errors.len() > shown {
            last.push_str(&format!("\n... and {} more errors", errors.len() - shown));
        }
        let n = errors.len();
        bail!(
            "{last}\nnothing was appended: {n} invalid {}",
            if n == 1 { "line" } else { "lines" }
        );
    }
    let recorded_at = recorded_at()?;
    let existed = db.exists();
    let mut ledger = Ledger::open_or_create(db)?;
    let result = ledger.append(&events, recorded_at);
    if result.is_err() && !existed {
        // A refused first batch leaves no empty ledger behind.
        drop(ledger);
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    let report = result.map_err(|error| {
        let Some(index) = error.index() else {
            return anyhow::Error::new(error);
        };
        let place =
            |index: usize| format!("{}:{}", labels[places[index].source], places[index].line);
        let field = match &error {
            AppendError::ConflictingId { .. } => "id",
            _ => "data.keypack",
        };
        let message = match (&error, error.earlier()) {
            (AppendError::ConflictingId { id, .. }, Some(Earlier::InBatch { index })) => format!(
                "{:?} is already used by {} with different content",
                id.as_str(),
                place(*index)
            ),
            (AppendError::KeypackExists { keypack, .. }, Some(Earlier::InBatch { index })) => {
                format!(
                    "a key pack named {:?} already exists (created by {})",
                    keypack.as_str(),
                    place(*index)
                )
            }
            _ => error.to_string(),
        };
        anyhow::anyhow!("{}: {field}: {message}\nnothing was appended", place(index))
    })?;
    writeln!(
        out,
        "appended {} {} ({} {} skipped); head {} {}",
        report.appended,
        plural(report.appended, "event", "events"),
        report.duplicates,
        plural(report.duplicates, "duplicate", "duplicates"),
        report.head.n_events,
        report.head.hash
    )?;
    Ok(Outcome::Clean)
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

fn read_input(path: &Path) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        io::stdin().lock().read_to_end(&mut bytes)?;
    } else {
        std::fs::File::open(path)?.read_to_end(&mut bytes)?;
    }
    Ok(bytes)
}

/// The events, their places and the errors of some lines, in line order.
#[derive(Default)]
struct Parsed {
    events: Vec<Event>,
    places: Vec<Place>,
    errors: Vec<String>,
}

/// Parses every line, spread over the machine's cores in contiguous parts (each line is parsed
/// alone); the parts come back in line order.
fn parse_lines(bytes: &[u8], source: usize, label: &str) -> Vec<Parsed> {
    // A byte order mark is what Windows editors put first; it carries no meaning.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let n_parts = std::thread::available_parallelism().map_or(1, |n| n.get());
    let part_len = bytes.len().div_ceil(n_parts).max(1);
    // Parts end just after a line break, so that no line is split; each knows its first line.
    let mut parts = Vec::with_capacity(n_parts);
    let (mut start, mut first_line) = (0, 1);
    while start < bytes.len() || parts.is_empty() {
        let end =
            match bytes[(start + part_len).min(bytes.len())..].iter().position(|b| *b == b'\n') {
                Some(offset) => (start + part_len).min(bytes.len()) + offset + 1,
                None => bytes.len(),
            };
        parts.push((&bytes[start..end], first_line));
        first_line += bytes[start..end].iter().filter(|b| **b == b'\n').count();
        start = end;
    }
    std::thread::scope(|scope| {
        let threads: Vec<_> = parts
            .into_iter()
            .map(|(part, first_line)| {
                scope.spawn(move || parse_part(part, first_line, source, label))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

fn parse_part(bytes: &[u8], first_line: usize, source: usize, label: &str) -> Parsed {
    let mut parsed = Parsed::default();
    let lines = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    if lines.is_empty() {
        return parsed;
    }
    for (index, raw) in lines.split(|b| *b == b'\n').enumerate() {
        let line = first_line + index;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.len() > MAX_LINE_BYTES {
            parsed.errors.push(format!(
                "{label}:{line}: the line is {} bytes long, more than an event can be (1 MiB)",
                raw.len()
            ));
            continue;
        }
        let text = match std::str::from_utf8(raw) {
            Ok(text) => text,
            Err(e) => {
                parsed.errors.push(format!(
                    "{label}:{line}: not UTF-8 text (invalid byte at column {})",
                    e.valid_up_to() + 1
                ));
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        match Event::from_json(text) {
            Ok(event) => {
                parsed.events.push(event);
                parsed.places.push(Place { source, line });
            }
            Err(error) => parsed.errors.push(format!("{label}:{line}: {error}")),
        }
    }
    parsed
}

fn recorded_at() -> anyhow::Result<Timestamp> {
    match std::env::var(RECORDED_AT_ENV) {
        Ok(text) => Timestamp::parse(&text).map_err(|e| anyhow::anyhow!("{RECORDED_AT_ENV}: {e}")),
        Err(_) => Ok(Timestamp::now()),
    }
}
