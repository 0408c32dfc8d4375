//! `caltrail append`: reads JSON Lines from files or stdin, validates every line, and appends the
//! batch all or nothing.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use caltrail_events::{Event, Timestamp};
use std::sync::mpsc;

use caltrail_store::{
    AppendError, AppendReport, ChainAhead, Earlier, Ledger, PreparedEvent, StoreError,
};

use crate::Outcome;
use crate::progress::Progress;

/// Append events (JSON Lines) to the ledger, all or nothing.
///
/// Lines that fail validation are all reported with their file, line and field, and nothing is
/// written. An event whose id is already recorded with the same content is skipped as a
/// duplicate; the same id with other content is refused.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail --db estate.db append fixtures/restore-reinstalled-os.jsonl\n  my-export-script | caltrail --db estate.db append -"
)]
pub(crate) struct AppendArgs {
    /// Files of events, one JSON object per line; `-` or none reads stdin.
    #[arg(value_name = "FILE")]
    files: Vec<PathBuf>,
    /// No progress bar on stderr (there is none when stderr is not a terminal).
    #[arg(long)]
    quiet: bool,
}

/// Input is parsed and handed to the writer in pieces of about this size (a few thousand lines).
const PIECE_BYTES: usize = 1 << 20;

/// The longest line read as an event. A real event is well under a kilobyte; a line of
/// megabytes is a wrong file, and refusing it early keeps memory bounded per line.
const MAX_LINE_BYTES: usize = 1 << 20;

/// The most parse errors printed for one append; the rest are counted.
const MAX_ERRORS_SHOWN: usize = 20;

/// Environment variable that fixes `recorded_at`, so that a history appended in a test or a
/// reproduction gives the same bytes and head hash every time.
pub(crate) const RECORDED_AT_ENV: &str = "CALTRAIL_RECORDED_AT";

/// Where an event was read: the index of its source and its line number.
#[derive(Clone, Copy)]
struct Place {
    source: usize,
    line: usize,
}

pub(crate) fn run(db: &Path, args: &AppendArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let sources: Vec<PathBuf> =
        if args.files.is_empty() { vec![PathBuf::from("-")] } else { args.files.clone() };
    let labels: Vec<String> = sources
        .iter()
        .map(|p| if p == Path::new("-") { "<stdin>".to_owned() } else { p.display().to_string() })
        .collect();
    let recorded_at = recorded_at()?;
    // One thread reads and parses while this one writes: the ledger is written as the input is
    // validated, in one transaction that is rolled back if any line turns out invalid.
    // It also encodes and hashes the events ahead, from the place in the chain this one sends
    // once it holds the write lock.
    let (chunks_tx, chunks_rx) = mpsc::sync_channel::<Input>(4);
    let (ahead_tx, ahead_rx) = mpsc::sync_channel::<ChainAhead>(1);
    let mut places = Vec::new();
    let mut errors = Vec::new();
    let existed = db.exists();
    // The bar counts bytes read: the number of events is known only once all are read.
    let total_bytes = sources.iter().map(|p| std::fs::metadata(p).map_or(0, |m| m.len())).sum();
    let progress = Progress::bytes("append", total_bytes, args.quiet);
    let (read, written) = std::thread::scope(|scope| {
        let reader = scope.spawn(|| read_all(&sources, &labels, ahead_rx, chunks_tx, &progress));
        let written = write_all(db, recorded_at, ahead_tx, &chunks_rx, &mut places, &mut errors);
        let read = reader.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (read, written)
    });
    let failed = !matches!(written, Ok(Some(_)));
    if failed && !existed {
        // A refused first batch leaves no empty ledger behind.
        for suffix in ["", "-wal", "-shm"] {
            let mut path = db.as_os_str().to_owned();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    read?;
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
    let result = match written {
        Ok(report) => Ok(report.expect("invariant: no report only when reading or a line failed")),
        Err(Refused::Open(error)) => return Err(error.into()),
        Err(Refused::Append(error)) => Err(error),
    };
    let report = result.map_err(|error| {
        let Some(index) = error.index() else {
            return anyhow::Error::new(error);
        };
        let place =
            |index: usize| format!("{}:{}", labels[places[index].source], places[index].line);
        let earlier = match error.earlier() {
            Some(Earlier::InBatch { index }) => place(*index),
            Some(earlier) => earlier.to_string(),
            None => String::new(),
        };
        let (field, message) = (error.field(), error.message(&earlier));
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

/// Why nothing was written.
enum Refused {
    /// The ledger could not be opened.
    Open(StoreError),
    /// The batch was refused or could not be written.
    Append(AppendError),
}

/// What the reader sends: lines parsed, in order, then `Done` once every source was read.
enum Input {
    Lines(Piece),
    Done,
}

/// The lines of a piece as the writer takes them: events maybe encoded and hashed ahead.
struct Piece {
    events: Vec<PreparedEvent>,
    places: Vec<Place>,
    errors: Vec<String>,
}

/// Reads every source and sends its lines parsed, a piece at a time, in order. The receiver
/// hangs up only when it has taken everything, so sending does not fail. A source is read as
/// it is parsed, never held whole. Events are encoded and hashed ahead from the place `ahead`
/// gives, received before the first piece is sent (none if the writer could not get one), and
/// only while every line so far is valid.
fn read_all(
    sources: &[PathBuf],
    labels: &[String],
    ahead: mpsc::Receiver<ChainAhead>,
    chunks: mpsc::SyncSender<Input>,
    progress: &Progress,
) -> anyhow::Result<()> {
    let mut chain: Option<Option<ChainAhead>> = None;
    let mut any_error = false;
    let (mut bytes_read, mut events_read) = (0u64, 0usize);
    for (source, path) in sources.iter().enumerate() {
        let send = |piece: &[u8], first_line: usize| {
            let parsed = parse_piece(piece, first_line, source, &labels[source]);
            bytes_read += piece.len() as u64;
            events_read += parsed.events.len();
            progress.note(format!("({events_read} events)"));
            progress.set(bytes_read);
            any_error |= !parsed.errors.is_empty();
            let chain = chain.get_or_insert_with(|| ahead.recv().ok());
            let events = parsed
                .events
                .into_iter()
                .map(|event| match chain {
                    Some(chain) if !any_error => chain.prepare(event),
                    _ => PreparedEvent::unprepared(event),
                })
                .collect();
            let piece = Piece { events, places: parsed.places, errors: parsed.errors };
            let _ = chunks.send(Input::Lines(piece));
        };
        let read = if path == Path::new("-") {
            for_each_piece(io::stdin().lock(), send)
        } else {
            std::fs::File::open(path).and_then(|file| for_each_piece(file, send))
        };
        read.with_context(|| format!("cannot read {}", labels[source]))?;
    }
    let _ = chunks.send(Input::Done);
    Ok(())
}

/// Reads `input` in pieces of about `PIECE_BYTES` that end just after a line break, so that no
/// line is split, and calls `each` with every piece and the number of its first line.
fn for_each_piece(mut input: impl Read, mut each: impl FnMut(&[u8], usize)) -> io::Result<()> {
    let mut buffer: Vec<u8> = Vec::with_capacity(2 * PIECE_BYTES);
    let mut first_line = 1;
    let mut at_start = true;
    loop {
        // What is kept from the last read has no line break: only the new bytes are searched,
        // so a line of many pieces is not searched again with every read.
        let kept = buffer.len();
        let n_read = input.by_ref().take(PIECE_BYTES as u64).read_to_end(&mut buffer)?;
        if std::mem::take(&mut at_start) && buffer.starts_with(b"\xEF\xBB\xBF") {
            // A byte order mark is what Windows editors put first; it carries no meaning.
            buffer.drain(..3);
        }
        if n_read == 0 {
            if !buffer.is_empty() {
                each(&buffer, first_line);
            }
            return Ok(());
        }
        // Up to the last whole line read; a line longer than a piece waits for the next read.
        if let Some(last_break) = buffer[kept..].iter().rposition(|b| *b == b'\n') {
            let last_break = kept + last_break;
            let piece = &buffer[..=last_break];
            each(piece, first_line);
            first_line += piece.iter().filter(|b| **b == b'\n').count();
            buffer.drain(..=last_break);
        }
    }
}

/// Appends the events of every piece as they come, unless a line is invalid, and commits once
/// everything was read. Always takes every piece, so that the reader finishes and every
/// invalid line is reported. `Ok(None)`: nothing written, for the reader's error or the lines'.
fn write_all(
    db: &Path,
    recorded_at: Timestamp,
    ahead: mpsc::SyncSender<ChainAhead>,
    chunks: &mpsc::Receiver<Input>,
    places: &mut Vec<Place>,
    errors: &mut Vec<String>,
) -> Result<Option<AppendReport>, Refused> {
    let mut done = false;
    // The events of a piece, its places and errors kept; `None` once everything was read.
    let take = |input: Input, places: &mut Vec<Place>, errors: &mut Vec<String>| match input {
        Input::Lines(parsed) => {
            places.extend(parsed.places);
            errors.extend(parsed.errors);
            Some(parsed.events)
        }
        Input::Done => None,
    };
    let written = (|| {
        let mut ledger = Ledger::open_or_create(db).map_err(Refused::Open)?;
        let mut appender = ledger.begin_append(recorded_at).map_err(Refused::Append)?;
        let _ = ahead.send(appender.chain_ahead());
        for input in chunks {
            let Some(events) = take(input, places, errors) else {
                done = true;
                continue;
            };
            if errors.is_empty() {
                for event in events {
                    appender.push_prepared(event).map_err(Refused::Append)?;
                }
            }
        }
        if !errors.is_empty() || !done {
            return Ok(None);
        }
        appender.commit().map(Some).map_err(Refused::Append)
    })();
    // The reader may still wait for a place in the chain, if this failed before sending one.
    drop(ahead);
    for input in chunks {
        take(input, places, errors);
    }
    written
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 { one } else { many }
}

/// The events, their places and the errors of some lines, in line order.
#[derive(Default)]
struct Parsed {
    events: Vec<Event>,
    places: Vec<Place>,
    errors: Vec<String>,
}

fn parse_piece(bytes: &[u8], first_line: usize, source: usize, label: &str) -> Parsed {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that hands out at most `step` bytes per read, as a pipe does.
    struct Trickle<'a> {
        bytes: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.bytes.len());
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    fn pieces_of(bytes: &[u8], step: usize) -> Vec<(Vec<u8>, usize)> {
        let mut pieces = Vec::new();
        for_each_piece(Trickle { bytes, step }, |piece, line| pieces.push((piece.to_vec(), line)))
            .unwrap();
        pieces
    }

    #[test]
    fn pieces_end_at_line_breaks_and_know_their_first_line() {
        let line = |n: usize| format!("{{\"n\":{n},\"pad\":\"{}\"}}\n", "x".repeat(n % 300));
        let text: String = (1..=20_000).map(line).collect();
        for step in [1 << 16, 7_777, PIECE_BYTES] {
            let pieces = pieces_of(text.as_bytes(), step);
            assert!(pieces.len() > 2, "{step}");
            let mut next_line = 1;
            for (piece, first_line) in &pieces {
                assert_eq!(*first_line, next_line);
                assert!(piece.ends_with(b"\n"));
                assert!(piece.starts_with(format!("{{\"n\":{next_line},").as_bytes()));
                next_line += piece.iter().filter(|b| **b == b'\n').count();
            }
            assert_eq!(next_line, 20_001);
            assert_eq!(
                pieces.iter().flat_map(|(p, _)| p.clone()).collect::<Vec<u8>>(),
                text.as_bytes()
            );
        }
    }

    #[test]
    fn a_line_longer_than_a_piece_stays_whole() {
        let long = format!("{}\n", "y".repeat(PIECE_BYTES * 2 + 5));
        let text = format!("a\n{long}b");
        let pieces = pieces_of(text.as_bytes(), 1 << 16);
        let lines: Vec<&[u8]> =
            pieces.iter().flat_map(|(p, _)| p.split_inclusive(|b| *b == b'\n')).collect();
        assert_eq!(lines, [&b"a\n"[..], long.as_bytes(), b"b"]);
        assert_eq!(pieces.last().unwrap(), &(b"b".to_vec(), 3));
    }

    #[test]
    fn a_byte_order_mark_is_dropped_and_empty_input_has_no_pieces() {
        assert_eq!(pieces_of(b"\xEF\xBB\xBFa\nb\n", 1), [(b"a\nb\n".to_vec(), 1)]);
        assert_eq!(pieces_of(b"", 1), []);
        // Only the first bytes of an input can be a byte order mark.
        assert_eq!(
            pieces_of(b"a\n\xEF\xBB\xBF", 1),
            [(b"a\n".to_vec(), 1), (b"\xEF\xBB\xBF".to_vec(), 2)]
        );
    }
}
