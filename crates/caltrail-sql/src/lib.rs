//! SQL over the replayed state: the state as Arrow tables, the compliance rules of `queries/`,
//! the user's own read-only SQL and the Parquet export. The only crate that knows DataFusion.
//! It judges nothing in Rust: every finding comes from a rule's SQL.

#![forbid(unsafe_code)]

mod cells;
mod engine;
mod error;
mod export;
mod prefilter;
mod rules;
mod tables;

pub use cells::{Cell, Rows};
pub use engine::{Engine, QueryResult};
pub use error::SqlError;
pub use export::{EventsFile, create_dir};
pub use rules::{FINDING_COLUMNS, POSITION, RULES, Rule, TRUE_UP, find as find_rule};
pub use tables::{TABLE_NAMES, Table};
