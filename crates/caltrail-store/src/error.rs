//! The store's errors. A damaged or foreign file is a value to report, never a panic.

#![allow(missing_docs, reason = "each variant's #[error] text is what it means")]

use std::path::PathBuf;

use caltrail_events::{EventId, Name};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no ledger at {path} (caltrail append creates one)")]
    NoLedger { path: PathBuf },
    #[error(
        "{path} is not a valid caltrail ledger: {reason} (give --db the file `caltrail append` writes)"
    )]
    NotALedger { path: PathBuf, reason: String },
    #[error(
        "{path} is a ledger of format {found}, newer than this caltrail reads ({supported}): upgrade caltrail"
    )]
    NewerFormat { path: PathBuf, found: i64, supported: i64 },
    #[error("{path}: cannot write to the ledger, the file or its folder is read-only ({detail})")]
    NotWritable { path: PathBuf, detail: String },
    #[error("{path}: entry {seq} is damaged ({reason}): run caltrail verify")]
    Corrupt { path: PathBuf, seq: u64, reason: String },
    /// SQLite's message is in the text; it is not also given as the source, which would print
    /// it twice.
    #[error("{path}: {error}")]
    Sqlite { path: PathBuf, error: rusqlite::Error },
}

/// Where the earlier event an appended one clashes with is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// Already in the ledger.
    Entry { seq: u64, id: String },
    /// Earlier in the same batch, at this position (0-based).
    InBatch { index: usize },
}

impl std::fmt::Display for Earlier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Earlier::Entry { seq, id } => write!(f, "entry {seq}, id {id:?}"),
            Earlier::InBatch { index } => write!(f, "event {} of this batch", index + 1),
        }
    }
}

/// Why an append was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `index` is the event's position in the batch (0-based).
    #[error("{}", self.message(&self.earlier().map(Earlier::to_string).unwrap_or_default()))]
    ConflictingId { index: usize, id: EventId, earlier: Earlier },
    #[error("{}", self.message(&self.earlier().map(Earlier::to_string).unwrap_or_default()))]
    KeypackExists { index: usize, keypack: Name, earlier: Earlier },
    /// An `event.retracted` names no earlier event.
    #[error("{}", self.message(""))]
    RetractsUnknown { index: usize, id: EventId },
    /// An `event.retracted` names another retraction.
    #[error("{}", self.message(&self.earlier().map(Earlier::to_string).unwrap_or_default()))]
    RetractsRetraction { index: usize, id: EventId, earlier: Earlier },
    /// An `event.retracted` names an event an earlier retraction already retracted.
    #[error("{}", self.message(&self.earlier().map(Earlier::to_string).unwrap_or_default()))]
    AlreadyRetracted { index: usize, id: EventId, earlier: Earlier },
}

impl AppendError {
    /// The position in the batch of the event that was refused, if one was.
    pub fn index(&self) -> Option<usize> {
        match self {
            AppendError::Store(_) => None,
            AppendError::ConflictingId { index, .. }
            | AppendError::KeypackExists { index, .. }
            | AppendError::RetractsUnknown { index, .. }
            | AppendError::RetractsRetraction { index, .. }
            | AppendError::AlreadyRetracted { index, .. } => Some(*index),
        }
    }

    /// The earlier event it clashes with, if any.
    pub fn earlier(&self) -> Option<&Earlier> {
        match self {
            AppendError::Store(_) | AppendError::RetractsUnknown { .. } => None,
            AppendError::ConflictingId { earlier, .. }
            | AppendError::KeypackExists { earlier, .. }
            | AppendError::RetractsRetraction { earlier, .. }
            | AppendError::AlreadyRetracted { earlier, .. } => Some(earlier),
        }
    }

    /// The field of the refused event the error is about.
    pub fn field(&self) -> &'static str {
        match self {
            AppendError::Store(_) => "",
            AppendError::ConflictingId { .. } => "id",
            AppendError::KeypackExists { .. } => "data.keypack",
            AppendError::RetractsUnknown { .. }
            | AppendError::RetractsRetraction { .. }
            | AppendError::AlreadyRetracted { .. } => "data.retracts",
        }
    }

    /// The message, with the earlier event named as `earlier` says (a file's line, or an
    /// entry of the ledger).
    pub fn message(&self, earlier: &str) -> String {
        match self {
            AppendError::Store(error) => error.to_string(),
            AppendError::ConflictingId { id, .. } => {
                format!("{:?} is already used by {earlier} with different content", id.as_str())
            }
            AppendError::KeypackExists { keypack, .. } => {
                format!(
                    "a key pack named {:?} already exists (created by {earlier})",
                    keypack.as_str()
                )
            }
            AppendError::RetractsUnknown { id, .. } => format!(
                "retracts {:?}, but no event with that id is in the ledger or earlier in this append",
                id.as_str()
            ),
            AppendError::RetractsRetraction { id, .. } => format!(
                "retracts {:?}, which is itself a retraction ({earlier}): a retraction cannot be retracted",
                id.as_str()
            ),
            AppendError::AlreadyRetracted { id, .. } => {
                format!("retracts {:?}, which {earlier} already retracted", id.as_str())
            }
        }
    }
}
