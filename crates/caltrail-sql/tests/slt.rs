//! The rules tested as SQL, with sqllogictest: one file per rule in `tests/slt/`, each loading
//! a history (`story NAME`: `fixtures/NAME.jsonl`; `case NAME`: the events of
//! `tests/cases/NAME.case`; either with `as-of TIME`) and querying the rule as a table
//! (`{rule_name}` stands for its SQL from `queries/`). Run one file with `cargo test -p caltrail-sql --test slt -- NAME`;
//! `-- --complete` rewrites the expected results from what the rules return now, for review in
//! the diff.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use caltrail_events::{DateOrTime, Event, Timestamp};
use caltrail_replay::{AsOf, KnownEntry, Replay};
use caltrail_sql::{Cell, Engine, POSITION, RULES, TRUE_UP};
use sqllogictest::{DBOutput, DefaultColumnType};

/// The moment the stories are judged at, fixed so that what lapses with time does not move the
/// expected results.
const JUDGED_AT: &str = "2026-06-30T00:00:00Z";
/// The recording time of every entry, as the fixtures' head hashes are made with.
const RECORDED_AT: &str = "2026-01-01T00:00:00Z";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SltError(String);

/// The replayed state of the story loaded last.
struct Stories {
    engine: Option<Engine>,
}

/// Replays a history as the CLI does: in valid-time order, ties by line. `what` is `story
/// NAME` or `case NAME`, maybe followed by `as-of TIME`.
fn load(what: &str) -> Result<Engine, SltError> {
    let words: Vec<&str> = what.split_whitespace().collect();
    let (path, as_of) = match words[..] {
        [kind, name, ref rest @ ..] => {
            let path = match kind {
                "story" => root().join("fixtures").join(format!("{name}.jsonl")),
                _ => root().join("tests/cases").join(format!("{name}.case")),
            };
            let as_of = match rest {
                [] => None,
                ["as-of", time] => Some(*time),
                _ => return Err(SltError(format!("`{what}`: after the name, only `as-of TIME`"))),
            };
            (path, as_of)
        }
        _ => return Err(SltError(format!("`{what}`: give a name"))),
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| SltError(format!("cannot read {}: {e}", path.display())))?;
    let events: Vec<Event> = text
        .lines()
        .enumerate()
        .filter(|(_, line)| line.starts_with('{'))
        .map(|(i, line)| {
            Event::from_json(line)
                .map_err(|e| SltError(format!("{}:{}: {e}", path.display(), i + 1)))
        })
        .collect::<Result<_, _>>()?;
    let time = |text| Timestamp::parse(text).map_err(SltError);
    let as_of = match as_of {
        Some(t) => AsOf::Time(DateOrTime::parse(t).map_err(SltError)?.end()),
        None => AsOf::Latest,
    };
    let recorded_at = time(RECORDED_AT)?;
    let entries = events.iter().enumerate().map(|(i, event)| KnownEntry {
        seq: i as u64 + 1,
        recorded_at,
        hash: "",
        event,
    });
    let replay = Replay::new(as_of, time(JUDGED_AT)?, true).fold_all(entries);
    Engine::new(Arc::new(replay)).map_err(|e| SltError(e.to_string()))
}

/// `{name}` of a rule or report becomes its SQL, as a subquery.
fn with_rules(sql: &str) -> String {
    let mut sql = sql.to_owned();
    for rule in RULES.iter().chain([&POSITION, &TRUE_UP]) {
        let query = rule.sql.trim().trim_end_matches(';');
        sql = sql.replace(&format!("{{{}}}", rule.name), &format!("(\n{query}\n)"));
    }
    sql
}

fn text(cell: &Cell) -> String {
    match cell {
        Cell::Null => "NULL".to_owned(),
        Cell::Text(t) if t.is_empty() => "(empty)".to_owned(),
        Cell::List(items) => items.join(","),
        other => other.text(),
    }
}

impl sqllogictest::DB for Stories {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let sql = sql.trim();
        if sql.starts_with("story ") || sql.starts_with("case ") {
            self.engine = Some(load(sql)?);
            return Ok(DBOutput::StatementComplete(0));
        }
        let engine = self.engine.as_ref().ok_or_else(|| {
            SltError("no story loaded: a file begins with `statement ok` and `story NAME`".into())
        })?;
        let rows = engine
            .query(&with_rules(sql))
            .and_then(|result| result.rows())
            .map_err(|e| SltError(e.to_string()))?;
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; rows.columns.len()],
            rows: rows.rows.iter().map(|row| row.iter().map(text).collect()).collect(),
        })
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let complete = args.iter().any(|a| a == "--complete");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("crates/caltrail-sql/tests/slt"))
        .expect("tests/slt exists")
        .map(|entry| entry.expect("a readable folder").path())
        .filter(|path| path.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    let (mut passed, mut failed, mut filtered) = (0, 0, 0);
    for file in files {
        let name = file.file_stem().unwrap_or_default().to_string_lossy().into_owned();
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            filtered += 1;
            continue;
        }
        let mut runner = sqllogictest::Runner::new(|| async { Ok(Stories { engine: None }) });
        let outcome = if complete {
            futures::executor::block_on(runner.update_test_file(
                &file,
                " ",
                sqllogictest::default_validator,
                sqllogictest::default_normalizer,
                sqllogictest::default_column_validator,
            ))
            .map_err(|e| e.to_string())
        } else {
            runner.run_file(&file).map_err(|e| e.display(false).to_string())
        };
        match outcome {
            Ok(()) => {
                println!("test slt::{name} ... ok");
                passed += 1;
            }
            Err(error) => {
                println!("test slt::{name} ... FAILED\n{error}");
                failed += 1;
            }
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; {filtered} filtered out"
    );
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
