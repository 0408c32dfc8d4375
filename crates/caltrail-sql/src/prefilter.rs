//! Filters a query puts on the `issues` table (a row per CAL issued: nearly every row of a
//! large ledger), evaluated on the replayed rows before their batches are built. DataFusion is
//! told they are inexact, so it still applies every filter itself: this only skips building
//! rows that no filter would keep, and a filter it does not recognise skips nothing. The SQL
//! judges; this saves building millions of rows the rules' filters drop at once. Recognised:
//! a column `IS NOT NULL`, compared with a text, or compared with another column or with a
//! `CASE` that maps one value of a column to another (a rule's level comparison), and flags.

use std::sync::Arc;

use caltrail_replay::{IssueKind, IssueRow, Replay};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::catalog::Session;
use datafusion::catalog::TableProvider;
use datafusion::common::{Result as DfResult, ScalarValue};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_expr::LexOrdering;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use futures::StreamExt;

use crate::tables::{IssueFlag, IssueText, NotInKind, Part, issues_batches_where};

/// Rows the filtered scans skipped, for the tests to see that filters reach the scan.
#[cfg(test)]
pub(crate) static SKIPPED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// One filter on a column of `issues` whose truth caltrail can tell from the row, exactly as
/// SQL's: true only for a value that is there and matches (a NULL makes `=` and `<>` unknown,
/// which no `WHERE` keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Condition {
    /// `column IS NOT NULL`.
    NotNull(IssueText),
    /// `column = 'text'`.
    Equals(IssueText, String),
    /// `column <> 'text'`.
    Differs(IssueText, String),
    /// `flag`, `NOT flag`, `flag = true|false`, `flag <> true|false`.
    Flag(IssueFlag, bool),
    /// Two texts compared with `=`, `<>`, `<`, `<=`, `>` or `>=` (byte order, as DataFusion
    /// compares `Utf8`): what a rule's level comparison between two columns is.
    Compare(Text, Operator, Text),
}

/// A text a filter computes from a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Text {
    /// A column (NULL when the row has no value).
    Column(IssueText),
    /// `'text'`.
    Literal(String),
    /// `CASE WHEN column = 'from' THEN 'to' ELSE column END`, or the same as
    /// `CASE column WHEN 'from' THEN 'to' ELSE column END`: NULL stays NULL (the `WHEN` is then
    /// unknown and the `ELSE` gives the column).
    Replace { column: IssueText, from: String, to: String },
}

impl Text {
    fn of(expr: &Expr) -> Option<Text> {
        if let Some(column) = text_column(expr) {
            return Some(Text::Column(column));
        }
        match expr {
            Expr::Literal(literal, _) => text_literal(literal).map(Text::Literal),
            Expr::Case(case) => {
                let [(when, then)] = case.when_then_expr.as_slice() else { return None };
                let otherwise = text_column(case.else_expr.as_deref()?)?;
                let Expr::Literal(to, _) = then.as_ref() else { return None };
                let to = text_literal(to)?;
                let (column, from) = if let Some(base) = case.expr.as_deref() {
                    // CASE column WHEN 'from' ...
                    let Expr::Literal(from, _) = when.as_ref() else { return None };
                    (text_column(base)?, text_literal(from)?)
                } else {
                    // CASE WHEN column = 'from' ...
                    let Expr::BinaryExpr(BinaryExpr { left, op: Operator::Eq, right }) =
                        when.as_ref()
                    else {
                        return None;
                    };
                    let ((column, Expr::Literal(from, _)) | (Expr::Literal(from, _), column)) =
                        (left.as_ref(), right.as_ref())
                    else {
                        return None;
                    };
                    (text_column(column)?, text_literal(from)?)
                };
                (column == otherwise).then_some(Text::Replace { column, from, to })
            }
            _ => None,
        }
    }

    /// The text, given each column's value (an error when a column's value is not known).
    fn value<'r>(
        &'r self,
        column_value: &impl Fn(IssueText) -> Result<Option<&'r str>, NotInKind>,
    ) -> Result<Option<&'r str>, NotInKind> {
        Ok(match self {
            Text::Column(column) => column_value(*column)?,
            Text::Literal(text) => Some(text),
            Text::Replace { column, from, to } => {
                column_value(*column)?.map(|value| if value == from { to.as_str() } else { value })
            }
        })
    }
}

impl Condition {
    /// The condition a filter expression states, if it is one of these shapes.
    pub(crate) fn of(expr: &Expr) -> Option<Condition> {
        match expr {
            Expr::IsNotNull(inner) => text_column(inner).map(Condition::NotNull),
            Expr::Not(inner) => flag_column(inner).map(|flag| Condition::Flag(flag, false)),
            Expr::Column(_) => flag_column(expr).map(|flag| Condition::Flag(flag, true)),
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
                let equals = match op {
                    Operator::Eq => true,
                    Operator::NotEq => false,
                    Operator::Lt | Operator::LtEq | Operator::Gt | Operator::GtEq => {
                        return Some(Condition::Compare(Text::of(left)?, *op, Text::of(right)?));
                    }
                    _ => return None,
                };
                let ((column, Expr::Literal(literal, _)) | (Expr::Literal(literal, _), column)) =
                    (left.as_ref(), right.as_ref())
                else {
                    return Some(Condition::Compare(Text::of(left)?, *op, Text::of(right)?));
                };
                if let Some(text) = text_column(column) {
                    let value = text_literal(literal)?;
                    return Some(if equals {
                        Condition::Equals(text, value)
                    } else {
                        Condition::Differs(text, value)
                    });
                }
                if let Some(flag) = flag_column(column) {
                    let ScalarValue::Boolean(Some(value)) = literal else { return None };
                    return Some(Condition::Flag(flag, *value == equals));
                }
                Some(Condition::Compare(Text::of(left)?, *op, Text::of(right)?))
            }
            _ => None,
        }
    }

    /// Whether the filter is true for the row.
    pub(crate) fn holds<'r>(&'r self, replay: &'r Replay, row: &IssueRow) -> bool {
        self.judge(&|column| Ok(column.of(replay, row)), &|flag| flag.of(row))
            .expect("invariant: a row has every column")
    }

    /// Whether the filter may be true for a row of this kind: false only when it rests on the
    /// kind's columns alone and is false for them.
    pub(crate) fn may_hold_for(&self, kind: IssueKind) -> bool {
        self.judge(&|column| column.of_kind(kind), &|flag| flag.of_kind(kind)).unwrap_or(true)
    }

    /// Whether the filter is true, given each column's value; an error when a column it reads
    /// is not known.
    fn judge<'r>(
        &'r self,
        column_value: &impl Fn(IssueText) -> Result<Option<&'r str>, NotInKind>,
        flag_value: &impl Fn(IssueFlag) -> bool,
    ) -> Result<bool, NotInKind> {
        Ok(match self {
            Condition::NotNull(column) => column_value(*column)?.is_some(),
            Condition::Equals(column, text) => column_value(*column)? == Some(text.as_str()),
            Condition::Differs(column, text) => {
                column_value(*column)?.is_some_and(|value| value != text)
            }
            Condition::Flag(flag, value) => flag_value(*flag) == *value,
            Condition::Compare(left, op, right) => {
                let (Some(left), Some(right)) =
                    (left.value(column_value)?, right.value(column_value)?)
                else {
                    return Ok(false);
                };
                match op {
                    Operator::Eq => left == right,
                    Operator::NotEq => left != right,
                    Operator::Lt => left < right,
                    Operator::LtEq => left <= right,
                    Operator::Gt => left > right,
                    Operator::GtEq => left >= right,
                    _ => true,
                }
            }
        })
    }
}

/// The text column an expression reads, through casts between text types (which keep the
/// value).
fn text_column(expr: &Expr) -> Option<IssueText> {
    match expr {
        Expr::Column(column) => {
            IssueText::ALL.iter().find(|(_, name)| *name == column.name).map(|(c, _)| *c)
        }
        Expr::Cast(cast) if is_text(cast.field.data_type()) => text_column(&cast.expr),
        Expr::TryCast(cast) if is_text(cast.field.data_type()) => text_column(&cast.expr),
        _ => None,
    }
}

fn flag_column(expr: &Expr) -> Option<IssueFlag> {
    match expr {
        Expr::Column(column) => {
            IssueFlag::ALL.iter().find(|(_, name)| *name == column.name).map(|(f, _)| *f)
        }
        _ => None,
    }
}

fn is_text(data_type: &DataType) -> bool {
    matches!(data_type, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn text_literal(value: &ScalarValue) -> Option<String> {
    match value {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => Some(text.clone()),
        _ => None,
    }
}

/// The `issues` table as DataFusion sees it: the rows of the replay, one partition per core as
/// the other tables, each built with the conditions of the scan's filters.
#[derive(Debug)]
pub(crate) struct IssuesTable {
    pub(crate) replay: Arc<Replay>,
    pub(crate) schema: SchemaRef,
    /// The batches of each partition, by number.
    pub(crate) partitions: Vec<Vec<usize>>,
}

#[async_trait::async_trait]
impl TableProvider for IssuesTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> DfResult<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|filter| match Condition::of(filter) {
                Some(_) => TableProviderFilterPushDown::Inexact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DfResult<Arc<dyn ExecutionPlan>> {
        let keep: Arc<[Condition]> = filters.iter().filter_map(Condition::of).collect();
        let partitions = self
            .partitions
            .iter()
            .map(|batches| {
                Arc::new(FilteredPartition {
                    replay: self.replay.clone(),
                    batches: batches.clone(),
                    keep: keep.clone(),
                    schema: self.schema.clone(),
                }) as Arc<dyn PartitionStream>
            })
            .collect();
        Ok(Arc::new(StreamingTableExec::try_new(
            self.schema.clone(),
            partitions,
            projection,
            Vec::<LexOrdering>::new(),
            false,
            limit,
        )?))
    }
}

#[derive(Debug)]
struct FilteredPartition {
    replay: Arc<Replay>,
    batches: Vec<usize>,
    keep: Arc<[Condition]>,
    schema: SchemaRef,
}

impl PartitionStream for FilteredPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (replay, keep) = (self.replay.clone(), self.keep.clone());
        let batches = futures::stream::iter(self.batches.clone())
            .map(move |n| issues_batches_where(&replay, Part::Batch(n), &keep))
            .flat_map(crate::engine::in_stream);
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use caltrail_events::{Event, Timestamp};
    use caltrail_replay::{AsOf, KnownEntry, Replay, SnapshotHeader, SnapshotKey};
    use datafusion::logical_expr::{Operator, col, lit};

    use super::Condition;
    use crate::tables::{IssueFlag, IssueText};
    use crate::{Engine, RULES};

    /// Every fixture story and case history, replayed.
    fn engines() -> Vec<(String, Engine)> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut files = Vec::new();
        for (dir, ext) in [("fixtures", "jsonl"), ("tests/cases", "case")] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == ext) {
                    files.push(path);
                }
            }
        }
        files.sort();
        assert!(files.len() > 20, "the histories are missing");
        let now = Timestamp::parse("2026-06-01T00:00:00Z").unwrap();
        files
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap();
                let events: Vec<Event> = text
                    .lines()
                    .filter(|l| l.starts_with('{'))
                    .map(|l| Event::from_json(l).unwrap())
                    .collect();
                let entries = events.iter().enumerate().map(|(i, event)| KnownEntry {
                    seq: i as u64 + 1,
                    recorded_at: now,
                    hash: "",
                    event,
                });
                let replay = Replay::new(AsOf::Latest, now, false).fold_all(entries);
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                (name, Engine::new(Arc::new(replay)).unwrap())
            })
            .collect()
    }

    fn now() -> Timestamp {
        Timestamp::parse("2026-06-01T00:00:00Z").unwrap()
    }

    /// The state of `events`, with the first `in_snapshot` written to a snapshot file and read
    /// back (its `issues` rows left in the file), the rest folded on top; and the file.
    fn from_snapshot(events: &[Event], in_snapshot: usize) -> (Replay, tempfile::NamedTempFile) {
        fn entries(events: &[Event], first: usize) -> Vec<KnownEntry<'_>> {
            let at = |(i, event)| KnownEntry {
                seq: (first + i) as u64,
                recorded_at: now(),
                hash: "",
                event,
            };
            events.iter().enumerate().map(at).collect()
        }
        let (before, after) = events.split_at(in_snapshot);
        let mut state = Replay::new(AsOf::Latest, now(), false);
        state.fold(entries(before, 1));
        let file = tempfile::NamedTempFile::new().unwrap();
        let key = SnapshotKey { ledger_format: 1, n_entries: before.len() as u64, head: [1; 32] };
        state.write_snapshot(std::io::BufWriter::new(file.reopen().unwrap()), key).unwrap();
        let mut reading = file.reopen().unwrap();
        let header = SnapshotHeader::read(&mut reading).unwrap();
        let mut state =
            Replay::read_snapshot(reading, &header, AsOf::Latest, now(), after.len()).unwrap();
        state.fold(entries(after, in_snapshot + 1));
        (state.finish(), file)
    }

    #[test]
    fn the_filters_the_rules_use_are_recognised_as_sql_means_them() {
        let cal_type = || col("cal_type");
        assert_eq!(
            Condition::of(&cal_type().eq(lit("per_device"))),
            Some(Condition::Equals(IssueText::CalType, "per_device".into()))
        );
        assert_eq!(
            Condition::of(&lit("activated").not_eq(col("server_status"))),
            Some(Condition::Differs(IssueText::ServerStatus, "activated".into()))
        );
        assert_eq!(
            Condition::of(&col("session_host_version").is_not_null()),
            Some(Condition::NotNull(IssueText::SessionHostVersion))
        );
        assert_eq!(
            Condition::of(&!col("temporary")),
            Some(Condition::Flag(IssueFlag::Temporary, false))
        );
        assert_eq!(
            Condition::of(&col("renewal").not_eq(lit(true))),
            Some(Condition::Flag(IssueFlag::Renewal, false))
        );
        let level = |column: &str| {
            datafusion::logical_expr::when(col(column).eq(lit("2008R2")), lit("2008"))
                .otherwise(col(column))
                .unwrap()
        };
        let replace =
            |column| super::Text::Replace { column, from: "2008R2".into(), to: "2008".into() };
        assert_eq!(
            Condition::of(&level("session_host_version").gt(level("product_version"))),
            Some(Condition::Compare(
                replace(IssueText::SessionHostVersion),
                Operator::Gt,
                replace(IssueText::ProductVersion)
            ))
        );
        assert_eq!(
            Condition::of(&col("holder").lt_eq(lit("m"))),
            Some(Condition::Compare(
                super::Text::Column(IssueText::Holder),
                Operator::LtEq,
                super::Text::Literal("m".into())
            ))
        );
        assert_eq!(
            Condition::of(&level("session_host_version").eq(lit("2008"))),
            Some(Condition::Compare(
                replace(IssueText::SessionHostVersion),
                Operator::Eq,
                super::Text::Literal("2008".into())
            ))
        );
        // Anything else is left to DataFusion alone.
        let other_else = datafusion::logical_expr::when(col("holder").eq(lit("a")), lit("b"))
            .otherwise(col("server"))
            .unwrap();
        assert_eq!(Condition::of(&other_else.gt(col("holder"))), None);
        assert_eq!(Condition::of(&col("seq").gt(lit(5))), None);
        assert_eq!(Condition::of(&col("holder").gt(lit(5))), None);
        assert_eq!(Condition::of(&col("seq").eq(lit(5))), None);
        assert_eq!(Condition::of(&cal_type().eq(lit(5))), None);
        assert_eq!(Condition::of(&cal_type().like(lit("per%"))), None);
        assert_eq!(Condition::of(&cal_type().eq(lit("a")).or(col("temporary"))), None);
        assert_eq!(Condition::of(&col("holder").is_null()), None);
    }

    const FILTERS: &[&str] = &[
        "cal_type = 'per_device'",
        "'per_user' = cal_type",
        "cal_type <> 'per_user'",
        "session_host IS NOT NULL",
        "session_host_version IS NOT NULL AND product_version IS NOT NULL",
        "temporary",
        "NOT temporary",
        "temporary = false",
        "renewal <> true",
        "id IS NOT NULL",
        "server_status <> 'activated'",
        "NOT temporary AND cal_type = 'per_device' AND server_status <> 'activated'",
        "CAST(cal_type AS VARCHAR) = 'per_device'",
        "holder = 'NW-THIN-001' OR temporary",
        "CASE WHEN session_host_version = '2008R2' THEN '2008' ELSE session_host_version END \
             > CASE WHEN product_version = '2008R2' THEN '2008' ELSE product_version END",
        "CASE product_version WHEN '2008R2' THEN '2008' ELSE product_version END <= '2008'",
        "CASE WHEN '2008R2' = product_version THEN '2008' ELSE product_version END = '2008'",
        "CASE WHEN session_host_version = '2008R2' THEN '2008' ELSE session_host_version END \
             = '2008'",
        "session_host_version >= product_version",
        "session_host_version < product_version",
        "session_host_version = product_version",
        "session_host_version <> product_version",
        "holder < 'M'",
        "'2012' > product_version",
        "keypack <> server",
    ];

    /// Every filter gives the rows it gives with the scan unfiltered: the same query over the
    /// table behind a `LIMIT`, which keeps filters out of the scan.
    #[test]
    fn a_filtered_scan_returns_what_the_unfiltered_table_returns() {
        let unfiltered = "(SELECT * FROM issues LIMIT 1000000000) AS issues";
        let mut rows_found = 0;
        for (name, engine) in engines() {
            for filter in FILTERS {
                let query =
                    |from: &str| format!("SELECT * FROM {from} WHERE {filter} ORDER BY seq");
                let pushed = engine.query(&query("issues")).unwrap().rows().unwrap();
                let whole = engine.query(&query(unfiltered)).unwrap().rows().unwrap();
                assert_eq!(pushed, whole, "{name}: {filter}");
                rows_found += pushed.rows.len();
            }
            for rule in RULES.iter().filter(|rule| rule.sql.contains("FROM issues")) {
                let pushed = engine.run_rule(rule).unwrap().rows().unwrap();
                let whole_sql =
                    rule.sql.replace("FROM issues", "FROM (SELECT * FROM issues LIMIT 1000000000)");
                let whole = engine.query(&whole_sql).unwrap().rows().unwrap();
                assert_eq!(pushed, whole, "{name}: {}", rule.name);
            }
        }
        assert!(rows_found > 1000, "{rows_found} rows: the histories must exercise the filters");
        let skipped = super::SKIPPED.load(std::sync::atomic::Ordering::Relaxed);
        assert!(skipped > 1000, "{skipped} rows skipped: the filters must reach the scan");
    }

    /// Over a state whose `issues` rows are in a snapshot's file, a filtered scan skips the
    /// blocks with no row of a kind it keeps, and returns what the same query returns over the
    /// state replayed in memory.
    #[test]
    fn a_filtered_scan_of_stored_issues_skips_blocks_and_returns_what_memory_does() {
        // 65,536 CALs issued while ls01 is activated (the first block), then ls01 is
        // deactivated and issues 10 more, 5 of them temporary.
        let mut lines = vec![
            r#"{"id":"a1","type":"server.activated","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","license_server_id":"ABCDE12345FGHIJ67890KLMNO12345PQRST","os_version":"2022","method":"automatic"}}"#.to_owned(),
            r#"{"id":"k1","type":"keypack.installed","at":"2025-01-02T00:00:00Z","data":{"server":"ls01","keypack":"ls01/1","agreement":"EA-1","product_version":"2022","cal_type":"per_device","quantity":500}}"#.to_owned(),
        ];
        for i in 0..caltrail_replay::BLOCK_ROWS {
            lines.push(format!(
                r#"{{"id":"c{i}","type":"cal.issued","at":"2025-02-01T00:00:00Z","data":{{"server":"ls01","keypack":"ls01/1","holder":"PC-{}"}}}}"#,
                i % 400
            ));
        }
        lines.push(r#"{"id":"d1","type":"server.deactivated","at":"2025-03-01T00:00:00Z","data":{"server":"ls01","method":"automatic"}}"#.to_owned());
        for i in 0..10 {
            lines.push(format!(
                r#"{{"id":"late{i}","type":"cal.issued","at":"2025-03-02T00:00:00Z","data":{{"server":"ls01","keypack":"ls01/1","holder":"NEW-{i}","temporary":{}}}}}"#,
                i % 2 == 0
            ));
        }
        let events: Vec<Event> = lines.iter().map(|l| Event::from_json(l).unwrap()).collect();
        let in_memory = Engine::new(Arc::new(Replay::new(AsOf::Latest, now(), false).fold_all(
            events.iter().enumerate().map(|(i, event)| KnownEntry {
                seq: i as u64 + 1,
                recorded_at: now(),
                hash: "",
                event,
            }),
        )))
        .unwrap();
        // Stored: both blocks, and 3 rows folded on top; or the first block and part of the
        // second.
        for in_snapshot in [events.len() - 3, caltrail_replay::BLOCK_ROWS + 4] {
            let (state, _file) = from_snapshot(&events, in_snapshot);
            let stored = Engine::new(Arc::new(state)).unwrap();
            for filter in FILTERS {
                let query = format!("SELECT * FROM issues WHERE {filter} ORDER BY seq");
                let want = in_memory.query(&query).unwrap().rows().unwrap();
                assert_eq!(stored.query(&query).unwrap().rows().unwrap(), want, "{filter}");
            }
            for rule in RULES.iter().filter(|rule| rule.sql.contains("FROM issues")) {
                let want = in_memory.run_rule(rule).unwrap().rows().unwrap();
                assert_eq!(stored.run_rule(rule).unwrap().rows().unwrap(), want, "{}", rule.name);
            }
        }
        // With the first block's bytes changed after the state was read, a scan that needs
        // none of its kinds still answers; one that reads it fails and says why.
        let (state, file) = from_snapshot(&events, events.len());
        let mut bytes = std::fs::read(file.path()).unwrap();
        bytes[caltrail_replay::HEADER_LEN + 10] ^= 1;
        std::fs::write(file.path(), &bytes).unwrap();
        let stored = Engine::new(Arc::new(state)).unwrap();
        let inactive = RULES.iter().find(|rule| rule.name == "issued_while_inactive").unwrap();
        assert_eq!(stored.run_rule(inactive).unwrap().rows().unwrap().rows.len(), 5);
        let query = "SELECT count(*) FROM issues WHERE server_status = 'deactivated'";
        assert_eq!(
            format!("{:?}", stored.query(query).unwrap().rows().unwrap().rows),
            "[[Int(10)]]"
        );
        let error = stored.query("SELECT count(*) FROM issues").err().unwrap().to_string();
        assert!(error.contains("changed since the snapshot was read"), "{error}");
    }
}
