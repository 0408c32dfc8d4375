//! Replaying a ledger's events into the state they describe, as plain rows: the facts the SQL
//! rules judge. Folding an event cannot fail and makes no licensing judgement; an event that
//! breaks a rule is data for the rules. No storage, no Arrow, no SQL, no printing.

#![forbid(unsafe_code)]

mod fold;
mod issues;
pub mod licence;
mod order;
mod rows;
mod snapshot;
mod strings;

pub use fold::{AsOf, LOOK_AHEAD, Replay, event_fields, event_row};
pub use issues::{BLOCK_ROWS, Issues};
pub use order::{KnownEntry, out_of_order};
pub use rows::*;
pub use snapshot::{HEADER_LEN, SnapshotError, SnapshotHeader, SnapshotKey};
pub use strings::{Strings, Sym};

#[cfg(test)]
mod tests;
