//! Running SQL over the replayed state with DataFusion: the rules and the user's own read-only
//! queries. The Parquet export is in `export`.

use std::sync::Arc;

use futures::StreamExt;

use caltrail_replay::Replay;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::{DataFusionError, Result as DfResult};
use datafusion::execution::TaskContext;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::sql::parser::{DFParser, Statement};

use crate::error::SqlError;
use crate::prefilter::IssuesTable;
use crate::rules::{FINDING_COLUMNS, Rule};
use crate::tables::{Part, Table, build_part, n_batches};

/// A query's result: its schema (also when no row came back) and its batches.
pub struct QueryResult {
    /// The result's columns.
    pub schema: SchemaRef,
    /// The result's rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// The result as rows of typed cells.
    pub fn rows(&self) -> Result<crate::Rows, SqlError> {
        crate::cells::rows_of(&self.schema, &self.batches)
    }

    /// How many rows.
    pub fn n_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The tables of one replayed state, registered in a DataFusion session.
///
/// A table's record batches are built when a query scans it and dropped once the query has
/// used them: a table no query reads is never built, and the state is held once, as the
/// replay's rows, however many tables and queries there are.
pub struct Engine {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    replay: Arc<Replay>,
}

impl Engine {
    /// Registers every table of the state.
    pub fn new(replay: Arc<Replay>) -> Result<Engine, SqlError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(SqlError::Runtime)?;
        let ctx = SessionContext::new();
        let n_cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        for table in Table::ALL.iter().copied() {
            let schema = table_schema(&replay, table);
            // One partition per core, each building its share of the batches in turn, so that
            // DataFusion scans in parallel while few batches exist at once.
            let n_batches = n_batches(&replay, table);
            let n_partitions = n_batches.min(n_cores);
            if table == Table::Issues {
                let partitions = (0..n_partitions)
                    .map(|first| (first..n_batches).step_by(n_partitions).collect())
                    .collect();
                ctx.register_table(
                    table.name(),
                    Arc::new(IssuesTable { replay: replay.clone(), schema, partitions }),
                )?;
                continue;
            }
            let partitions = (0..n_partitions)
                .map(|first| {
                    Arc::new(LazyPartition {
                        replay: replay.clone(),
                        table,
                        batches: (first..n_batches).step_by(n_partitions).collect(),
                        schema: schema.clone(),
                    }) as Arc<dyn PartitionStream>
                })
                .collect();
            ctx.register_table(
                table.name(),
                Arc::new(StreamingTable::try_new(schema, partitions)?),
            )?;
        }
        Ok(Engine { ctx, runtime, replay })
    }

    /// Runs a rule and checks it returns the columns every finding has.
    pub fn run_rule(&self, rule: &Rule) -> Result<QueryResult, SqlError> {
        self.run(rule.sql, false).and_then(|result| with_finding_columns(rule, result))
    }

    /// Runs rules at once, each as a task of its own on the query threads: most of a rule's
    /// time is planning and small scans, one thread's work. The results come in `rules`' order.
    pub fn run_rules(&self, rules: &[&Rule]) -> Vec<Result<QueryResult, SqlError>> {
        let tasks: Vec<_> = rules
            .iter()
            .map(|rule| {
                let (ctx, rule) = (self.ctx.clone(), **rule);
                self.runtime.spawn(async move {
                    let result = run_sql(&ctx, rule.sql, false).await?;
                    with_finding_columns(&rule, result)
                })
            })
            .collect();
        self.runtime.block_on(async {
            let mut results = Vec::with_capacity(tasks.len());
            for task in tasks {
                results.push(task.await.unwrap_or_else(|e| match e.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(e) => Err(SqlError::Runtime(std::io::Error::other(e))),
                }));
            }
            results
        })
    }

    /// Runs a report of `queries/` (trusted SQL, no finding columns required).
    pub fn run_report(&self, report: &Rule) -> Result<QueryResult, SqlError> {
        self.run(report.sql, false)
    }

    /// Every row of a table, in the order the replay holds them: built batch by batch on this
    /// thread, so that `state` prints the same order on every run (a query's partitions
    /// arrive in any order).
    pub fn table(&self, table: Table) -> Result<QueryResult, SqlError> {
        let mut batches = Vec::new();
        for n in 0..n_batches(&self.replay, table) {
            batches.extend(build_part(&self.replay, table, Part::Batch(n))?);
        }
        Ok(QueryResult { schema: table_schema(&self.replay, table), batches })
    }

    /// Runs the user's SQL: one read-only statement. DDL, DML, `COPY` and session statements
    /// are refused before anything runs.
    pub fn query(&self, sql: &str) -> Result<QueryResult, SqlError> {
        self.run(sql, true)
    }

    fn run(&self, sql: &str, read_only: bool) -> Result<QueryResult, SqlError> {
        self.runtime.block_on(run_sql(&self.ctx, sql, read_only))
    }

    /// The replayed state the tables are built from.
    pub(crate) fn replay(&self) -> &Replay {
        &self.replay
    }
}

/// A rule's result, once it has the columns every finding has.
fn with_finding_columns(rule: &Rule, result: QueryResult) -> Result<QueryResult, SqlError> {
    for column in FINDING_COLUMNS {
        if result.schema.index_of(column).is_err() {
            return Err(SqlError::RuleShape {
                rule: rule.name.to_owned(),
                column: (*column).to_owned(),
            });
        }
    }
    Ok(result)
}

/// Plans and runs one statement; a `read_only` one may not write or change the session.
async fn run_sql(
    ctx: &SessionContext,
    sql: &str,
    read_only: bool,
) -> Result<QueryResult, SqlError> {
    let statements = DFParser::parse_sql(sql)?;
    if statements.len() != 1 {
        return Err(SqlError::NotReadOnly(format!(
            "give exactly one statement, got {}",
            statements.len()
        )));
    }
    if read_only && !matches!(statements.front(), Some(Statement::Statement(_))) {
        return Err(SqlError::NotReadOnly("COPY and CREATE EXTERNAL TABLE write".into()));
    }
    let options = SQLOptions::new()
        .with_allow_ddl(!read_only)
        .with_allow_dml(!read_only)
        .with_allow_statements(!read_only);
    let frame = ctx.sql_with_options(sql, options).await.map_err(|e| {
        if read_only && e.to_string().contains("not supported") {
            SqlError::NotReadOnly(e.to_string())
        } else {
            SqlError::from(e)
        }
    })?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await?;
    Ok(QueryResult { schema, batches })
}

/// The schema of a table, from an empty build of it.
pub(crate) fn table_schema(replay: &Replay, table: Table) -> SchemaRef {
    build_part(replay, table, Part::Empty)
        .expect("invariant: an empty build reads no row")
        .first()
        .map(RecordBatch::schema)
        .expect("invariant: an empty build is one batch")
}

/// Some batches of a table, each built from the replayed rows when a query polls for it.
#[derive(Debug)]
struct LazyPartition {
    replay: Arc<Replay>,
    table: Table,
    batches: Vec<usize>,
    schema: SchemaRef,
}

impl PartitionStream for LazyPartition {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (replay, table) = (self.replay.clone(), self.table);
        let batches = futures::stream::iter(self.batches.clone())
            .map(move |n| build_part(&replay, table, Part::Batch(n)))
            .flat_map(in_stream);
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), batches))
    }
}

/// A part's batches as a stream's items: a snapshot's file that no longer holds what it held
/// when the state was read ends the query with an error.
pub(crate) fn in_stream(
    built: Result<Vec<RecordBatch>, caltrail_replay::SnapshotError>,
) -> impl futures::Stream<Item = DfResult<RecordBatch>> {
    let items: Vec<DfResult<RecordBatch>> = match built {
        Ok(batches) => batches.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(DataFusionError::External(Box::new(e)))],
    };
    futures::stream::iter(items)
}
