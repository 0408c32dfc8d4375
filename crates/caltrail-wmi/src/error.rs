//! The errors of reading an export: the file as a whole, or one value of one row.

#![allow(missing_docs, reason = "each variant's #[error] text is what it means")]

use std::fmt;

/// A value that cannot be read, with where it is: `row 3 (line 5), column ProductType: ...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub place: String,
    pub column: String,
    pub message: String,
}

impl fmt::Display for RowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, column {}: {}", self.place, self.column, self.message)
    }
}

impl std::error::Error for RowError {}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("not a text file: {detail}")]
    NotText { detail: String },
    #[error("not a valid CSV export: {detail}")]
    Csv { detail: String },
    #[error("not a valid JSON export: {detail}")]
    Json { detail: String },
    #[error("not a valid event log: {detail}")]
    EventLog { detail: String },
    #[error(transparent)]
    Row(#[from] RowError),
}
