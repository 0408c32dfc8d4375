//! The rows of the projected tables. Each struct is one table of README's "Tables" section; the
//! SQL crate turns them into Arrow columns of the same names.

#![allow(
    missing_docs,
    reason = "each field is a column of the table README's Tables section describes, under the same name"
)]

use caltrail_events::{CalType, ProductVersion, ServerName, Timestamp};

use crate::strings::Sym;

/// One entry of the ledger, as the `events` table shows it.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: u64,
    pub id: String,
    pub event_type: &'static str,
    pub at: Timestamp,
    pub recorded_at: Timestamp,
    pub actor: Option<String>,
    pub note: Option<String>,
    /// The server the event concerns (the source, for a migration).
    pub server: Option<String>,
    /// The target server of a migration.
    pub target_server: Option<String>,
    /// The event's `data` as canonical JSON text.
    pub data: String,
    pub hash: String,
    /// The id of the `event.retracted` that retracts it, when one is known.
    pub retracted_by: Option<String>,
}

impl EventRow {
    /// The row's columns, borrowed.
    pub fn fields(&self) -> EventFields<'_> {
        EventFields {
            seq: self.seq,
            id: &self.id,
            event_type: self.event_type,
            at: self.at,
            recorded_at: self.recorded_at,
            actor: self.actor.as_deref(),
            note: self.note.as_deref(),
            server: self.server.as_deref(),
            target_server: self.target_server.as_deref(),
            data: &self.data,
            hash: &self.hash,
            retracted_by: self.retracted_by.as_deref(),
        }
    }
}

/// One entry's `events` row, borrowed from the entry: what an export writes straight into its
/// columns, where an [`EventRow`] would allocate each text once more.
#[derive(Debug, Clone, Copy)]
pub struct EventFields<'a> {
    pub seq: u64,
    pub id: &'a str,
    pub event_type: &'static str,
    pub at: Timestamp,
    pub recorded_at: Timestamp,
    pub actor: Option<&'a str>,
    pub note: Option<&'a str>,
    pub server: Option<&'a str>,
    pub target_server: Option<&'a str>,
    pub data: &'a str,
    pub hash: &'a str,
    pub retracted_by: Option<&'a str>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ServerStatus {
    NeverActivated,
    Activated,
    Deactivated,
    /// Gone (`server.decommissioned`); a later activation starts a new incarnation.
    Decommissioned,
}

impl ServerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ServerStatus::NeverActivated => "never_activated",
            ServerStatus::Activated => "activated",
            ServerStatus::Deactivated => "deactivated",
            ServerStatus::Decommissioned => "decommissioned",
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerRow {
    pub server: ServerName,
    /// 1 for the first machine of the name; a `server.activated` after a decommission adds 1.
    pub incarnation: u32,
    pub status: ServerStatus,
    pub license_server_id: Option<String>,
    pub os_version: Option<ProductVersion>,
    pub activated_at: Option<Timestamp>,
    /// The activation was recorded as an opening balance.
    pub opening: bool,
    pub deactivated_at: Option<Timestamp>,
    pub decommissioned_at: Option<Timestamp>,
    pub reactivated_at: Option<Timestamp>,
    pub last_restored_at: Option<Timestamp>,
    pub last_backup_taken_at: Option<Timestamp>,
    pub last_rebuilt_at: Option<Timestamp>,
}

/// What was bought, per agreement, version and CAL type.
#[derive(Debug, Clone)]
pub struct AgreementRow {
    pub agreement: String,
    pub program: &'static str,
    pub number: Option<String>,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    pub purchased: u64,
    pub n_purchases: u64,
    pub anniversary: Option<String>,
    pub first_purchased_at: Timestamp,
    pub last_purchased_at: Timestamp,
}

/// One `agreement.purchased` event.
#[derive(Debug, Clone)]
pub struct PurchaseRow {
    pub seq: u64,
    pub id: String,
    pub at: Timestamp,
    pub agreement: String,
    pub program: &'static str,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    pub quantity: u64,
    pub anniversary: Option<caltrail_events::Anniversary>,
    /// The last moment of Software Assurance (a date given means its end).
    pub software_assurance_until: Option<Timestamp>,
    pub rights_through: Option<ProductVersion>,
    /// The newest level its rights reach at the judged time (`licence::ceiling`).
    pub ceiling: ProductVersion,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Installed,
    Migrated,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Installed => "installed",
            Origin::Migrated => "migrated",
        }
    }
}

#[derive(Debug, Clone)]
pub struct KeypackRow {
    pub keypack: String,
    pub server: ServerName,
    /// The incarnation of the server current at the pack's `installed_at`.
    pub incarnation: u32,
    pub agreement: String,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    pub downgraded_from: Option<ProductVersion>,
    pub wmi_keypack_id: Option<u32>,
    pub origin: Origin,
    /// The `cals.migrated` event that created it, for a migrated pack.
    pub migration: Option<String>,
    pub from_keypack: Option<String>,
    /// The entry that created it, and its id.
    pub installed_seq: u64,
    pub installed_id: String,
    pub installed_at: Timestamp,
    pub installed: u64,
    /// Taken out: `keypack.removed`, `source.cals_removed`, migrations with `source_removed`.
    pub removed: u64,
    /// Brought back by restores.
    pub restored: u64,
    /// Lost to restores and database rebuilds.
    pub lost: u64,
    /// Invariant: `installed - removed + restored - lost`, never negative.
    pub current_quantity: u64,
    /// CALs the last restore brought back that had left by a migration or a removal after its
    /// backup, and are still there.
    pub resurrected: u64,
    /// The restore that brought them back.
    pub resurrected_by: Option<String>,
    pub active_issued: u64,
    pub available: u64,
}

impl KeypackRow {
    /// The version purchases are counted against: the purchased version of a downgrade.
    pub fn entitlement_version(&self) -> ProductVersion {
        self.downgraded_from.unwrap_or(self.product_version)
    }
}

/// One CAL: a holder of a pack. Issuing again to the same holder from the same pack renews it.
#[derive(Debug, Clone)]
pub struct CalRow {
    /// The texts are handles into the replay's `strings`: a large ledger holds hundreds of
    /// thousands of CALs, and a snapshot reads them all back.
    pub server: Sym,
    pub keypack: Sym,
    /// As its first issue spelt it.
    pub holder: Sym,
    /// From the pack; unknown when the pack is not in the ledger.
    pub cal_type: Option<CalType>,
    pub product_version: Option<ProductVersion>,
    pub hardware_id: Option<String>,
    pub temporary: bool,
    pub issued_at: Timestamp,
    pub renewed_at: Option<Timestamp>,
    pub n_issues: u64,
    /// The expiry of the latest issue: its `expires_at`, else its `at` plus the default
    /// lifetime of its kind (RULES.md, "Active CAL").
    pub expires_at: Option<Timestamp>,
    /// The `expires_at` the latest issue gave, if it gave one.
    pub expires_at_given: Option<Timestamp>,
    /// When it stops being active if nothing cuts it short: `expires_at`, and for a per-user
    /// CAL at least 90 days after its first issue.
    pub active_until: Option<Timestamp>,
    /// Its session host's version when the latest issue gave it, else its pack's version.
    pub level: Option<ProductVersion>,
    pub revoked_at: Option<Timestamp>,
    /// When a database rebuild or a restore took the CAL out of the server's database.
    pub cleared_at: Option<Timestamp>,
    pub session_host: Option<Sym>,
    pub session_host_version: Option<ProductVersion>,
    pub active: bool,
    /// Since when the stretch of use it is in runs, and at what level, while the fold goes
    /// (`finish` closes it): in the row, not in a list beside it, because a renewal reads both
    /// and a large ledger holds millions of CALs, in no order the memory follows.
    pub(crate) open_interval: Option<(Timestamp, ProductVersion)>,
}

#[derive(Debug, Clone)]
pub struct MigrationRow {
    pub migration: String,
    pub seq: u64,
    pub at: Timestamp,
    pub source: ServerName,
    pub target: ServerName,
    pub reason: &'static str,
    pub source_reachable: bool,
    pub from_keypack: String,
    /// The incarnation of the source that held `from_keypack` (the source's current one at the
    /// migration when the pack is unknown), and of the target that got the new pack.
    pub source_incarnation: u32,
    pub target_incarnation: u32,
    pub keypack: String,
    pub quantity: u64,
    pub source_removed: bool,
    /// What the event says of a source the ledger never knew.
    pub agreement: Option<String>,
    pub product_version: Option<ProductVersion>,
    pub cal_type: Option<CalType>,
    pub source_license_server_id: Option<String>,
    /// Whether the ledger knows the pack the CALs came from, or the event says what they are:
    /// false means the CALs cannot be counted anywhere.
    pub pack_known: bool,
    /// Covered by removals from the source pack after it (`source.cals_removed`,
    /// `keypack.removed`), and the ids of those removals.
    pub removed_by_hand: u64,
    pub removals: Vec<String>,
    pub removed_at: Option<Timestamp>,
    /// Invariant: `quantity - removed_by_hand` when not `source_removed`, else 0.
    pub not_removed: u64,
}

/// A change of a license server's activation status.
#[derive(Debug, Clone)]
pub struct StatusChangeRow {
    pub seq: u64,
    pub at: Timestamp,
    pub server: ServerName,
    pub incarnation: u32,
    pub status: ServerStatus,
    pub license_server_id: Option<String>,
    pub os_version: Option<ProductVersion>,
}

/// One `cal.issued` event, with what was true at that moment. The texts are in
/// `Replay::strings`: this row exists once per issue, millions of times in a large estate.
#[derive(Debug, Clone)]
pub struct IssueRow {
    pub seq: u64,
    /// The event's id, kept only for an issue a history rule may cite: its server was not
    /// activated, or its session host's level is newer than its pack's. Keeping every issue's
    /// id would double a large replay's memory; the `events` table has them all.
    pub id: Option<Sym>,
    pub at: Timestamp,
    pub server: Sym,
    pub keypack: Sym,
    pub holder: Sym,
    pub cal_type: Option<CalType>,
    pub product_version: Option<ProductVersion>,
    pub temporary: bool,
    pub renewal: bool,
    pub session_host: Option<Sym>,
    pub session_host_version: Option<ProductVersion>,
    pub server_status: ServerStatus,
}

/// The columns of an `issues` row that take few values: a block of stored rows lists the
/// kinds it holds, so that a scan whose filter rests on these columns alone skips the blocks
/// that hold none it keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IssueKind {
    pub cal_type: Option<CalType>,
    pub product_version: Option<ProductVersion>,
    pub temporary: bool,
    pub renewal: bool,
    pub session_host_version: Option<ProductVersion>,
    pub server_status: ServerStatus,
}

impl IssueRow {
    /// The row's kind.
    pub fn kind(&self) -> IssueKind {
        IssueKind {
            cal_type: self.cal_type,
            product_version: self.product_version,
            temporary: self.temporary,
            renewal: self.renewal,
            session_host_version: self.session_host_version,
            server_status: self.server_status,
        }
    }
}

/// One `cal.revoked` event, with the per-device CALs of that version installed on the server.
#[derive(Debug, Clone)]
pub struct RevocationRow {
    pub seq: u64,
    pub id: String,
    pub at: Timestamp,
    pub server: ServerName,
    pub keypack: String,
    pub holder: String,
    pub cal_type: Option<CalType>,
    pub product_version: Option<ProductVersion>,
    pub installed_on_server: u64,
}

/// What one restore did to one pack of the restored server.
#[derive(Debug, Clone)]
pub struct RestoreRow {
    pub seq: u64,
    pub id: String,
    pub at: Timestamp,
    pub server: ServerName,
    pub backup_taken_at: Timestamp,
    pub same_machine: bool,
    pub os_replaced: bool,
    pub keypack: String,
    pub agreement: String,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    pub entitlement_version: ProductVersion,
    pub quantity_at_backup: u64,
    pub issued_at_backup: u64,
    pub quantity_before: u64,
    pub quantity_after: u64,
    pub came_back: u64,
    pub unissued_lost: u64,
    /// Of `came_back`, what had left by a migration or a removal between backup and restore.
    pub resurrected: u64,
}

/// A change of a pack's current quantity, for peaks over time.
#[derive(Debug, Clone)]
pub struct QuantityChangeRow {
    pub seq: u64,
    pub at: Timestamp,
    pub keypack: String,
    pub server: ServerName,
    pub agreement: String,
    pub entitlement_version: ProductVersion,
    pub cal_type: CalType,
    pub delta: i64,
}

/// A stretch of time a holder's CAL was active, at one level: what "in use" is counted from.
#[derive(Debug, Clone)]
pub struct UseInterval {
    pub cal_type: CalType,
    /// The holder's name in lower case: names are compared without case.
    pub holder: Sym,
    /// The CAL's level (`licence::level_of`).
    pub level: ProductVersion,
    pub temporary: bool,
    pub start: Timestamp,
    /// Exclusive.
    pub end: Timestamp,
}

/// A count at or above a level, from `at` until the next row of the same type and level.
#[derive(Debug, Clone)]
pub struct StepRow {
    pub cal_type: CalType,
    pub level: ProductVersion,
    pub at: Timestamp,
    pub value: i64,
}

/// A holder in use at the judged time, once per CAL type, at the newest level among its
/// active CALs (RULES.md, "In use").
#[derive(Debug, Clone)]
pub struct HolderRow {
    pub cal_type: CalType,
    pub holder: String,
    pub level: ProductVersion,
    /// Every active CAL it holds is temporary.
    pub temporary: bool,
    pub n_cals: u64,
}

/// CALs a server incarnation is owed after a rebuild or a restore, per agreement, requirement
/// and CAL type, after what later installs and recoveries paid down (RULES.md,
/// `lost_not_reinstalled`).
#[derive(Debug, Clone)]
pub struct DebtRow {
    pub server: ServerName,
    pub incarnation: u32,
    pub agreement: String,
    pub requirement: ProductVersion,
    pub cal_type: CalType,
    pub owed: u64,
    pub since: Timestamp,
    /// The rebuilds and restores that made it.
    pub events: Vec<String>,
}

/// One true-up year of an agreement: from an anniversary to the next, the last one ending at
/// the judged time.
#[derive(Debug, Clone)]
pub struct TrueUpYearRow {
    pub agreement: String,
    pub anniversary: String,
    pub period_start: Timestamp,
    pub period_end: Timestamp,
    /// The last year, which ends at the judged time and includes it.
    pub through_end: bool,
    /// The agreement `true-up` reports without `--agreement`: the enterprise, campus or
    /// school agreement with the latest purchase.
    pub default: bool,
}

#[cfg(test)]
mod tests {
    /// The issues table has a row per CAL issued (10M in a large ledger), held in memory and
    /// in snapshots: its size is a budget.
    #[test]
    fn an_issue_row_takes_48_bytes() {
        assert_eq!(std::mem::size_of::<super::IssueRow>(), 48);
        assert_eq!(std::mem::size_of::<Option<crate::Sym>>(), 4);
    }
}
