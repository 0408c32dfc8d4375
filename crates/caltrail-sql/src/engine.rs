//! Running SQL over the replayed state with DataFusion: the rules, the user's own read-only
//! queries, and the Parquet export. The only code that knows DataFusion.

use std::path::Path;
use std::sync::Arc;

use caltrail_replay::Replay;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::context::{SQLOptions, SessionContext};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::sql::parser::{DFParser, Statement};

use crate::error::SqlError;
use crate::rules::{FINDING_COLUMNS, Rule};
use crate::tables::{TABLE_NAMES, build};

/// A query's result: its schema (also when no row came back) and its batches.
pub struct QueryResult {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    pub fn n_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// The tables of one replayed state, registered in a DataFusion session.
pub struct Engine {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    tables: Vec<(&'static str, Vec<RecordBatch>)>,
}

impl Engine {
    /// Registers every table of the state.
    pub fn new(replay: &Replay) -> Result<Engine, SqlError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(SqlError::Runtime)?;
        let ctx = SessionContext::new();
        let mut tables = Vec::new();
        for name in TABLE_NAMES {
            let batches = build(replay, name).expect("invariant: TABLE_NAMES are all buildable");
            let schema = batches[0].schema();
            // One partition per batch, so that DataFusion can scan them in parallel.
            let partitions = batches.iter().map(|b| vec![b.clone()]).collect();
            ctx.register_table(*name, Arc::new(MemTable::try_new(schema, partitions)?))?;
            tables.push((*name, batches));
        }
        Ok(Engine { ctx, runtime, tables })
    }

    /// Runs a rule and checks it returns the columns every finding has.
    pub fn run_rule(&self, rule: &Rule) -> Result<QueryResult, SqlError> {
        let result = self.run(rule.sql, false)?;
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

    /// Runs a report of `queries/` (trusted SQL, no finding columns required).
    pub fn run_report(&self, report: &Rule) -> Result<QueryResult, SqlError> {
        self.run(report.sql, false)
    }

    /// Runs the user's SQL: one read-only statement. DDL, DML, `COPY` and session statements
    /// are refused before anything runs.
    pub fn query(&self, sql: &str) -> Result<QueryResult, SqlError> {
        self.run(sql, true)
    }

    fn run(&self, sql: &str, read_only: bool) -> Result<QueryResult, SqlError> {
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
        self.runtime.block_on(async {
            let frame = self.ctx.sql_with_options(sql, options).await.map_err(|e| {
                if read_only && e.to_string().contains("not supported") {
                    SqlError::NotReadOnly(e.to_string())
                } else {
                    SqlError::from(e)
                }
            })?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let batches = frame.collect().await?;
            Ok(QueryResult { schema, batches })
        })
    }

    /// Writes every table to `dir/<table>.parquet`; returns each table's name and row count.
    pub fn export_parquet(&self, dir: &Path) -> Result<Vec<(&'static str, usize)>, SqlError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| SqlError::Write { path: dir.display().to_string(), error })?;
        let properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let mut written = Vec::new();
        for (name, batches) in &self.tables {
            let path = dir.join(format!("{name}.parquet"));
            let write_error =
                |error: std::io::Error| SqlError::Write { path: path.display().to_string(), error };
            let file = std::fs::File::create(&path).map_err(write_error)?;
            let mut writer =
                ArrowWriter::try_new(file, batches[0].schema(), Some(properties.clone()))
                    .map_err(|e| write_error(std::io::Error::other(e)))?;
            for batch in batches {
                writer.write(batch).map_err(|e| write_error(std::io::Error::other(e)))?;
            }
            writer.close().map_err(|e| write_error(std::io::Error::other(e)))?;
            written.push((*name, batches.iter().map(RecordBatch::num_rows).sum()));
        }
        Ok(written)
    }
}
