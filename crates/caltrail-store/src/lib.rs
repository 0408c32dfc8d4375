//! The ledger store: one SQLite file holding an append-only, hash-chained table of entries.
//! The only crate that knows SQLite. It stores and verifies; it does not interpret events.

mod error;
mod hash;
#[allow(unsafe_code, reason = "AVX2 intrinsics; every block has its SAFETY comment")]
mod hash_lanes;
mod ledger;
mod pipeline;
mod tree;
mod verify;

pub use error::{AppendError, Earlier, StoreError};
pub use hash::{EntryHash, HASH_CONTEXT, HexDigits};
pub use hash_lanes::chain_all as chain_hashes;
pub use ledger::{
    APPLICATION_ID, AppendReport, Appender, ChainAhead, FORMAT_VERSION, Head, Ledger,
    PreparedEvent, StoredEntry,
};
pub use tree::{StoredTree, TILE, TileProblem};
pub use verify::{Depth, Problem, ProblemKind, VerifyReport};
