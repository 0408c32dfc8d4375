//! The Parquet export: a state's tables to `DIR/<table>.parquet`, written in parallel, and the
//! `events` table written batch by batch, on a thread of its own, as a ledger scan hands its
//! rows over, never held whole.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use caltrail_replay::EventFields;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;

use crate::engine::{Engine, table_schema};
use crate::error::SqlError;
use crate::tables::{BATCH_ROWS, EventColumns, Part, Table, build_part, events_batch, n_batches};

/// Columns whose values are (nearly) all distinct, or distinct enough that a dictionary of them
/// outgrows its page: it would be built for the first rows of each row group and thrown away.
/// Without it every table's file is smaller (ZSTD finds what the dictionary would have) and the
/// writer skips hashing each value: at 4.5M events, 288 MB of files became 275 MB.
const DISTINCT_COLUMNS: [&str; 6] = ["id", "data", "hash", "seq", "at", "holder"];

/// How every table is written: ZSTD, and no dictionary for the columns of distinct values.
fn properties() -> WriterProperties {
    DISTINCT_COLUMNS
        .iter()
        .fold(WriterProperties::builder(), |builder, column| {
            builder.set_column_dictionary_enabled(ColumnPath::from(*column), false)
        })
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .build()
}

/// The directory `dir`, created if missing.
pub fn create_dir(dir: &Path) -> Result<(), SqlError> {
    std::fs::create_dir_all(dir)
        .map_err(|error| SqlError::Write { path: dir.display().to_string(), error })
}

/// One table's Parquet file being written.
struct TableFile {
    path: PathBuf,
    writer: ArrowWriter<File>,
    n_rows: usize,
}

impl TableFile {
    fn create(dir: &Path, table: Table, schema: SchemaRef) -> Result<TableFile, SqlError> {
        let path = dir.join(format!("{}.parquet", table.name()));
        let file = File::create(&path).map_err(|error| write_error(&path, error))?;
        let writer = ArrowWriter::try_new(file, schema, Some(properties()))
            .map_err(|e| write_error(&path, std::io::Error::other(e)))?;
        Ok(TableFile { path, writer, n_rows: 0 })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), SqlError> {
        self.writer.write(batch).map_err(|e| write_error(&self.path, std::io::Error::other(e)))?;
        self.n_rows += batch.num_rows();
        Ok(())
    }

    /// Writes the footer; returns the row count.
    fn close(self) -> Result<usize, SqlError> {
        let TableFile { path, writer, n_rows } = self;
        writer.close().map_err(|e| write_error(&path, std::io::Error::other(e)))?;
        Ok(n_rows)
    }
}

fn write_error(path: &Path, error: std::io::Error) -> SqlError {
    SqlError::Write { path: path.display().to_string(), error }
}

/// The `events` table's file, filled as rows come: the caller's scan puts each row straight
/// into Arrow columns, and each `BATCH_ROWS` rows go as a batch to a thread of their own that
/// encodes and writes them while the scan goes on. A scan of any length holds three batches at
/// most: the one being filled, one waiting, one being written.
pub struct EventsFile {
    columns: EventColumns,
    to_writer: Option<mpsc::SyncSender<RecordBatch>>,
    writer: Option<std::thread::JoinHandle<Result<usize, SqlError>>>,
}

impl EventsFile {
    /// Creates `dir/events.parquet`.
    pub fn create(dir: &Path) -> Result<EventsFile, SqlError> {
        let mut file = TableFile::create(dir, Table::Events, events_batch(&[]).schema())?;
        let (to_writer, batches) = mpsc::sync_channel::<RecordBatch>(1);
        let writer = std::thread::Builder::new()
            .name("caltrail-events-file".to_owned())
            .spawn(move || {
                for batch in batches {
                    file.write(&batch)?;
                }
                file.close()
            })
            .map_err(|error| write_error(&dir.join("events.parquet"), error))?;
        Ok(EventsFile {
            columns: EventColumns::with_capacity(BATCH_ROWS),
            to_writer: Some(to_writer),
            writer: Some(writer),
        })
    }

    /// Adds the next row; rows are written in the order they come.
    pub fn push(&mut self, row: EventFields<'_>) -> Result<(), SqlError> {
        self.columns.push(row);
        if self.columns.len() == BATCH_ROWS { self.send() } else { Ok(()) }
    }

    fn send(&mut self) -> Result<(), SqlError> {
        // Fresh columns with their room for a whole batch: a builder emptied by `finish` would
        // grow again from nothing.
        let batch =
            std::mem::replace(&mut self.columns, EventColumns::with_capacity(BATCH_ROWS)).finish();
        let sent = self.to_writer.as_ref().is_some_and(|to_writer| to_writer.send(batch).is_ok());
        if sent {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.finish_writer().and(Err(SqlError::Write {
            path: "events.parquet".to_owned(),
            error: std::io::Error::other("its writer stopped"),
        }))
    }

    /// Waits for the writer to write what it was sent and the footer.
    fn finish_writer(&mut self) -> Result<usize, SqlError> {
        drop(self.to_writer.take());
        match self.writer.take().map(std::thread::JoinHandle::join) {
            Some(Ok(written)) => written,
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Ok(0),
        }
    }

    /// Writes what is left and the footer; returns the row count.
    pub fn finish(mut self) -> Result<usize, SqlError> {
        if self.columns.len() > 0 {
            self.send()?;
        }
        self.finish_writer()
    }
}

impl Engine {
    /// Writes `tables` of the state to `dir/<table>.parquet` (`dir` must exist), in parallel;
    /// returns each table's row count, in `tables`' order.
    pub fn export_parquet(
        &self,
        dir: &Path,
        tables: &[Table],
    ) -> Result<Vec<(Table, usize)>, SqlError> {
        let replay = self.replay();
        // One table per worker at a time, the largest first so that the long ones start early.
        let mut order: Vec<Table> = tables.to_vec();
        order.sort_by_key(|table| std::cmp::Reverse(n_batches(replay, *table)));
        let next = AtomicUsize::new(0);
        let n_workers =
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get).min(order.len());
        let results: Vec<Result<Vec<(Table, usize)>, SqlError>> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..n_workers)
                .map(|_| {
                    scope.spawn(|| {
                        let mut done = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(&table) = order.get(i) else { break };
                            done.push((table, self.write_table(dir, table)?));
                        }
                        Ok(done)
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|worker| {
                    worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        let mut written: Vec<(Table, usize)> = Vec::new();
        for result in results {
            written.extend(result?);
        }
        written.sort_by_key(|(table, _)| tables.iter().position(|t| t == table));
        Ok(written)
    }

    /// Writes one table, a batch at a time so that it is never whole in memory; returns its
    /// row count.
    fn write_table(&self, dir: &Path, table: Table) -> Result<usize, SqlError> {
        let replay = self.replay();
        let mut file = TableFile::create(dir, table, table_schema(replay, table))?;
        for part in 0..n_batches(replay, table) {
            for batch in build_part(replay, table, Part::Batch(part))? {
                file.write(&batch)?;
            }
        }
        file.close()
    }
}
