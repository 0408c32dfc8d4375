//! The SQL crate's errors.

#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("{0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    #[error("only queries that read may run here (SELECT, WITH, EXPLAIN): {0}")]
    NotReadOnly(String),
    #[error("unknown rule {name:?} (the rules are: {known})")]
    UnknownRule { name: String, known: String },
    #[error("unknown table {name:?} (the tables are: {known})")]
    UnknownTable { name: String, known: String },
    #[error("rule {rule} does not return the column {column}: this is a bug of the rule")]
    RuleShape { rule: String, column: String },
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the query runtime: {0}")]
    Runtime(std::io::Error),
}
