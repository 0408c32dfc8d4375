//! The SQL crate's errors.

#![allow(missing_docs, reason = "each variant's #[error] text is what it means")]

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    /// DataFusion's message; its error chain repeats the message, so only the text is kept.
    #[error("{0}")]
    DataFusion(String),
    #[error("only queries that read may run here (SELECT, WITH, EXPLAIN): {0}")]
    NotReadOnly(String),
    #[error("unknown rule {name:?} (the rules are: {known})")]
    UnknownRule { name: String, known: String },
    #[error("unknown table {name:?} (the tables are: {known})")]
    UnknownTable { name: String, known: String },
    #[error("rule {rule} does not return the column {column}: this is a bug of the rule")]
    RuleShape { rule: String, column: String },
    #[error("cannot write {path}: {error}")]
    Write { path: String, error: std::io::Error },
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
    #[error(
        "the snapshot beside the ledger changed while it was read ({0}): run the command again"
    )]
    SnapshotChanged(#[from] caltrail_replay::SnapshotError),
}

impl From<datafusion::error::DataFusionError> for SqlError {
    fn from(error: datafusion::error::DataFusionError) -> SqlError {
        SqlError::DataFusion(error.to_string())
    }
}
