//! Reading what a license server says about itself (PowerShell exports of the RD Licensing WMI
//! classes) and setting it beside the ledger: the reconcile report and the events an import
//! would append. It reads bytes it is given; it opens no file and writes nothing.

#![forbid(unsafe_code)]

mod dates;
mod error;
mod eventlog;
mod observed;
mod per_user;
mod reconcile;
mod records;
mod versions;

pub use dates::parse_date;
pub use error::{ExportError, RowError};
pub use eventlog::{
    EventLog, KNOWN_EVENTS, LogFinding, LoggedEvent, eventlog_findings, meaning, read_eventlog,
    server_of,
};
pub use observed::{
    BUILT_IN_QUANTITY, KeypackExport, LicenseStatus, ObservedKeypack, ObservedLicense,
    read_keypacks, read_licenses,
};
pub use per_user::{
    ObservedUserCal, ServerLookup, import_user_events, read_ad_users, read_usage_report,
};
pub use reconcile::{
    AgreementSource, Comparison, OpeningActivation, Verdict, available_per_device, import_events,
    needs_opening_activation, reconcile,
};
pub use records::{ExportFormat, decode_text};

#[cfg(test)]
mod tests;
