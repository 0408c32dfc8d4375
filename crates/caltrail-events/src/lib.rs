//! The event model of caltrail: the input contract of EVENTS.md as Rust types, its validation,
//! and the canonical bytes an entry is stored as. No I/O, no storage, no SQL, no printing.

#![forbid(unsafe_code)]

pub mod bytes;
pub mod cbor;
mod entry;
mod event;
mod fields;
mod types;
mod value;

pub use entry::{DecodeError, ENTRY_FORMAT, Entry, EntryColumns, EntryDecoder};
pub use event::{
    AgreementPurchased, CalIssued, CalRevoked, CalsMigrated, Event, EventData, EventRetracted,
    EventType, KeypackInstalled, KeypackRemoved, ServerActivated, ServerDatabaseRebuilt,
    ServerDeactivated, ServerDecommissioned, ServerReactivated, ServerRestored, SourceCalsRemoved,
};
pub use fields::FieldError;
pub use types::{
    ActivationMethod, Anniversary, CalType, DateOrTime, DecommissionReason, EventId,
    LicenseServerId, MigrationReason, Name, ProductVersion, Program, Quantity, ReactivationReason,
    RemovalMethod, ServerName, Timestamp,
};
pub use value::Value;

#[cfg(test)]
mod tests;
