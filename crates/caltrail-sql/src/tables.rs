//! The replayed state as Arrow record batches, one per table of README's "Tables" section.
//! Column types are chosen so that other engines read the Parquet export as it is: text,
//! `Int64` (never unsigned), booleans and `Timestamp(Microsecond, "UTC")`.

use std::sync::Arc;

use caltrail_events::{CalType, ProductVersion, Timestamp};
use caltrail_replay::licence::level_of;
use caltrail_replay::{EventFields, EventRow, IssueKind, IssueRow, Replay, SnapshotError, StepRow};
use datafusion::arrow::array::{
    Array, ArrayBuilder, ArrayRef, BooleanArray, Int64Array, Int64Builder, ListBuilder,
    RecordBatch, StringArray, StringBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};

/// Declares the tables once: the enum, its names and the list of names.
macro_rules! tables {
    ($($variant:ident = $name:literal),+ $(,)?) => {
        /// A table of the replayed state. Every place that builds, registers, exports, lists or
        /// documents the tables goes through this enum, so a table added here and forgotten
        /// elsewhere fails to compile (a `match`) or fails a test (the README and the help).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Table { $(#[doc = concat!("`", $name, "`")] $variant),+ }

        /// The names of the tables, in the order `export` writes them.
        pub const TABLE_NAMES: &[&str] = &[$($name),+];

        impl Table {
            /// Every table, in the order `export` writes them.
            pub const ALL: &'static [Table] = &[$(Table::$variant),+];

            /// The table's name in SQL.
            pub fn name(self) -> &'static str {
                match self { $(Table::$variant => $name),+ }
            }

            /// The table of that name.
            pub fn parse(name: &str) -> Option<Table> {
                Table::ALL.iter().copied().find(|table| table.name() == name)
            }
        }
    };
}

tables! {
    Events = "events",
    Servers = "servers",
    Agreements = "agreements",
    Purchases = "purchases",
    Keypacks = "keypacks",
    Cals = "cals",
    Migrations = "migrations",
    ServerStatus = "server_status",
    Issues = "issues",
    Revocations = "revocations",
    Restores = "restores",
    QuantityChanges = "quantity_changes",
    TrueUpYears = "true_up_years",
    Holders = "holders",
    InUseChanges = "in_use_changes",
    RightsChanges = "rights_changes",
    InstalledChanges = "installed_changes",
    EstateLevels = "estate_levels",
    Debts = "debts",
    Versions = "versions",
}

/// Rows per record batch. Arrow's `Utf8` arrays address their bytes with 32-bit offsets, so one
/// array holds at most 2 GiB of text: the `events` table of 10M entries holds more. Batches are
/// built when a query reads them and dropped after, so their size also bounds the memory a scan
/// of a large table takes.
pub(crate) const BATCH_ROWS: usize = 1 << 16;

/// Which rows of a table to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// No rows: the table's schema.
    Empty,
    /// The `n`th batch of `BATCH_ROWS` rows.
    Batch(usize),
}

/// Builds the `part` of a table with `one`, which builds one batch from a slice of rows.
fn batches<R>(rows: &[R], part: Part, one: impl Fn(&[R]) -> RecordBatch) -> Vec<RecordBatch> {
    match part {
        Part::Empty => vec![one(&[])],
        Part::Batch(n) => rows.chunks(BATCH_ROWS).nth(n).map(one).into_iter().collect(),
    }
}

/// How many batches `Part::Batch` numbers for a table: at least one, so that an empty table
/// still has a schema and a partition.
pub(crate) fn n_batches(replay: &Replay, table: Table) -> usize {
    let rows = match table {
        Table::Events => replay.events.len(),
        Table::Servers => replay.servers.len() + replay.past_servers.len(),
        Table::Agreements => replay.agreements.len(),
        Table::Purchases => replay.purchases.len(),
        Table::Keypacks => replay.keypacks.len(),
        Table::Cals => replay.cals.len(),
        Table::Migrations => replay.migrations.len(),
        Table::ServerStatus => replay.status_changes.len(),
        Table::Issues => replay.issues.len(),
        Table::Revocations => replay.revocations.len(),
        Table::Restores => replay.restores.len(),
        Table::QuantityChanges => replay.quantity_changes.len(),
        Table::TrueUpYears => replay.true_up_years.len(),
        Table::Holders => replay.holders.len(),
        Table::InUseChanges => replay.in_use_steps.len(),
        Table::RightsChanges => replay.rights_steps.len(),
        Table::InstalledChanges => replay.installed_steps.len(),
        Table::EstateLevels => replay.estate_levels.len(),
        Table::Debts => replay.debts.len(),
        Table::Versions => replay.made_available.len(),
    };
    rows.div_ceil(BATCH_ROWS).max(1)
}

/// Builds one table column by column from a slice of rows.
struct TableBuilder<'a, R> {
    rows: &'a [R],
    fields: Vec<Field>,
    columns: Vec<ArrayRef>,
}

impl<'a, R> TableBuilder<'a, R> {
    fn new(rows: &'a [R]) -> Self {
        TableBuilder { rows, fields: Vec::new(), columns: Vec::new() }
    }

    fn text<S: AsRef<str>>(mut self, name: &str, value: impl Fn(&'a R) -> Option<S>) -> Self {
        let array: StringArray = self.rows.iter().map(value).collect();
        self.fields.push(Field::new(name, DataType::Utf8, true));
        self.columns.push(Arc::new(array));
        self
    }

    fn int(mut self, name: &str, value: impl Fn(&R) -> Option<i64>) -> Self {
        let array: Int64Array = self.rows.iter().map(value).collect();
        self.fields.push(Field::new(name, DataType::Int64, true));
        self.columns.push(Arc::new(array));
        self
    }

    fn count(self, name: &str, value: impl Fn(&R) -> u64) -> Self {
        self.int(name, move |r| Some(i64::try_from(value(r)).unwrap_or(i64::MAX)))
    }

    fn boolean(mut self, name: &str, value: impl Fn(&R) -> Option<bool>) -> Self {
        let array: BooleanArray = self.rows.iter().map(value).collect();
        self.fields.push(Field::new(name, DataType::Boolean, true));
        self.columns.push(Arc::new(array));
        self
    }

    /// A list of texts: the ids a row rests on.
    fn list<S: AsRef<str>>(mut self, name: &str, value: impl Fn(&'a R) -> Vec<S>) -> Self {
        let mut builder = ListBuilder::new(StringBuilder::new());
        for row in self.rows {
            for item in value(row) {
                builder.values().append_value(item.as_ref());
            }
            builder.append(true);
        }
        let array = builder.finish();
        self.fields.push(Field::new(name, array.data_type().clone(), true));
        self.columns.push(Arc::new(array));
        self
    }

    fn time(mut self, name: &str, value: impl Fn(&R) -> Option<Timestamp>) -> Self {
        let array: TimestampMicrosecondArray =
            self.rows.iter().map(|r| value(r).map(Timestamp::micros)).collect();
        let array = array.with_timezone("UTC");
        self.fields.push(Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ));
        self.columns.push(Arc::new(array));
        self
    }

    fn finish(self) -> RecordBatch {
        let schema = Arc::new(Schema::new(self.fields));
        RecordBatch::try_new(schema, self.columns)
            .expect("invariant: every column has one value per row")
    }
}

fn version(v: ProductVersion) -> Option<&'static str> {
    Some(v.as_str())
}

/// The licence level of a version as text: `"2008"` for 2008 and 2008 R2.
fn level(v: ProductVersion) -> Option<&'static str> {
    Some(level_of(v).as_str())
}

/// Step rows: a count at or above a level from `at` on.
fn steps(rows: &[StepRow], part: Part, value: &str) -> Vec<RecordBatch> {
    batches(rows, part, |rows| {
        TableBuilder::new(rows)
            .text("cal_type", |r| cal_type(r.cal_type))
            .text("level", |r| version(r.level))
            .time("at", |r| Some(r.at))
            .int(value, |r| Some(r.value))
            .finish()
    })
}

fn cal_type(t: CalType) -> Option<&'static str> {
    Some(t.as_str())
}

/// Builds a part of a table. Only `issues` can fail: its rows may be read back from a
/// snapshot's file, which must still hold what it held when the state was read.
pub(crate) fn build_part(
    replay: &Replay,
    table: Table,
    part: Part,
) -> Result<Vec<RecordBatch>, SnapshotError> {
    Ok(match table {
        Table::Events => events_batches(replay, part),
        Table::Servers => servers_batches(replay, part),
        Table::Agreements => agreements_batches(replay, part),
        Table::Purchases => purchases_batches(replay, part),
        Table::Keypacks => keypacks_batches(replay, part),
        Table::Cals => cals_batches(replay, part),
        Table::Migrations => migrations_batches(replay, part),
        Table::ServerStatus => server_status_batches(replay, part),
        Table::Issues => issues_batches_where(replay, part, &[])?,
        Table::Revocations => revocations_batches(replay, part),
        Table::Restores => restores_batches(replay, part),
        Table::QuantityChanges => quantity_changes_batches(replay, part),
        Table::TrueUpYears => true_up_years_batches(replay, part),
        Table::Holders => holders_batches(replay, part),
        Table::InUseChanges => in_use_changes_batches(replay, part),
        Table::RightsChanges => rights_changes_batches(replay, part),
        Table::InstalledChanges => installed_changes_batches(replay, part),
        Table::EstateLevels => estate_levels_batches(replay, part),
        Table::Debts => debts_batches(replay, part),
        Table::Versions => versions_batches(replay, part),
    })
}

/// The `events` table.
fn events_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.events, part, events_batch)
}

/// One batch of the `events` table, from its rows.
pub(crate) fn events_batch(rows: &[EventRow]) -> RecordBatch {
    let mut columns = EventColumns::with_capacity(rows.len());
    for row in rows {
        columns.push(row.fields());
    }
    columns.finish()
}

/// The `events` table's columns, filled a row at a time: each text is copied once, from the
/// entry into the column.
pub(crate) struct EventColumns {
    seq: Int64Builder,
    id: StringBuilder,
    event_type: StringBuilder,
    at: TimestampMicrosecondBuilder,
    recorded_at: TimestampMicrosecondBuilder,
    actor: StringBuilder,
    note: StringBuilder,
    server: StringBuilder,
    target_server: StringBuilder,
    data: StringBuilder,
    hash: StringBuilder,
    retracted_by: StringBuilder,
}

impl EventColumns {
    /// Room for `rows` rows.
    pub(crate) fn with_capacity(rows: usize) -> EventColumns {
        let text = |bytes_per_row: usize| StringBuilder::with_capacity(rows, rows * bytes_per_row);
        let time = || TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC");
        EventColumns {
            seq: Int64Builder::with_capacity(rows),
            id: text(24),
            event_type: text(16),
            at: time(),
            recorded_at: time(),
            actor: text(8),
            note: text(0),
            server: text(8),
            target_server: text(0),
            data: text(160),
            hash: text(64),
            retracted_by: text(0),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.seq.len()
    }

    pub(crate) fn push(&mut self, row: EventFields<'_>) {
        self.seq.append_value(i64::try_from(row.seq).unwrap_or(i64::MAX));
        self.id.append_value(row.id);
        self.event_type.append_value(row.event_type);
        self.at.append_value(row.at.micros());
        self.recorded_at.append_value(row.recorded_at.micros());
        self.actor.append_option(row.actor);
        self.note.append_option(row.note);
        self.server.append_option(row.server);
        self.target_server.append_option(row.target_server);
        self.data.append_value(row.data);
        self.hash.append_value(row.hash);
        self.retracted_by.append_option(row.retracted_by);
    }

    /// The rows pushed, as a batch.
    pub(crate) fn finish(mut self) -> RecordBatch {
        let text = |builder: &mut StringBuilder| -> ArrayRef { Arc::new(builder.finish()) };
        let time =
            |builder: &mut TimestampMicrosecondBuilder| -> ArrayRef { Arc::new(builder.finish()) };
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("seq", Arc::new(self.seq.finish())),
            ("id", text(&mut self.id)),
            ("type", text(&mut self.event_type)),
            ("at", time(&mut self.at)),
            ("recorded_at", time(&mut self.recorded_at)),
            ("actor", text(&mut self.actor)),
            ("note", text(&mut self.note)),
            ("server", text(&mut self.server)),
            ("target_server", text(&mut self.target_server)),
            ("data", text(&mut self.data)),
            ("hash", text(&mut self.hash)),
            ("retracted_by", text(&mut self.retracted_by)),
        ];
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, column)| Field::new(*name, column.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            columns.into_iter().map(|(_, column)| column).collect(),
        )
        .expect("invariant: every column has one value per row")
    }
}

/// The `servers` table.
fn servers_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    let mut rows: Vec<_> = replay.servers.values().chain(replay.past_servers.iter()).collect();
    rows.sort_by(|a, b| (&a.server, a.incarnation).cmp(&(&b.server, b.incarnation)));
    batches(&rows, part, |rows| {
        TableBuilder::new(rows)
            .text("server", |r| Some(r.server.as_str()))
            .count("incarnation", |r| u64::from(r.incarnation))
            .text("status", |r| Some(r.status.as_str()))
            .text("license_server_id", |r| r.license_server_id.as_ref())
            .text("os_version", |r| r.os_version.map(caltrail_events::ProductVersion::as_str))
            .time("activated_at", |r| r.activated_at)
            .boolean("opening", |r| Some(r.opening))
            .time("deactivated_at", |r| r.deactivated_at)
            .time("decommissioned_at", |r| r.decommissioned_at)
            .time("reactivated_at", |r| r.reactivated_at)
            .time("last_restored_at", |r| r.last_restored_at)
            .time("last_backup_taken_at", |r| r.last_backup_taken_at)
            .time("last_rebuilt_at", |r| r.last_rebuilt_at)
            .finish()
    })
}

/// The `agreements` table.
fn agreements_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    let rows: Vec<_> = replay.agreements.values().collect();
    batches(&rows, part, |rows| {
        TableBuilder::new(rows)
            .text("agreement", |r| Some(&r.agreement))
            .text("program", |r| Some(r.program))
            .text("number", |r| r.number.as_ref())
            .text("product_version", |r| version(r.product_version))
            .text("cal_type", |r| cal_type(r.cal_type))
            .count("purchased", |r| r.purchased)
            .count("n_purchases", |r| r.n_purchases)
            .text("anniversary", |r| r.anniversary.as_ref())
            .time("first_purchased_at", |r| Some(r.first_purchased_at))
            .time("last_purchased_at", |r| Some(r.last_purchased_at))
            .finish()
    })
}

/// The `purchases` table.
fn purchases_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.purchases, part, |rows| {
        TableBuilder::new(rows)
            .count("seq", |r| r.seq)
            .text("id", |r| Some(&r.id))
            .time("at", |r| Some(r.at))
            .text("agreement", |r| Some(&r.agreement))
            .text("program", |r| Some(r.program))
            .text("product_version", |r| version(r.product_version))
            .text("level", |r| level(r.product_version))
            .text("cal_type", |r| cal_type(r.cal_type))
            .count("quantity", |r| r.quantity)
            .time("software_assurance_until", |r| r.software_assurance_until)
            .text("rights_through", |r| {
                r.rights_through.map(caltrail_events::ProductVersion::as_str)
            })
            .text("ceiling", |r| version(r.ceiling))
            .finish()
    })
}

/// The `keypacks` table.
fn keypacks_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.keypacks, part, |rows| {
        TableBuilder::new(rows)
            .text("keypack", |r| Some(&r.keypack))
            .text("server", |r| Some(r.server.as_str()))
            .count("incarnation", |r| u64::from(r.incarnation))
            .text("agreement", |r| Some(&r.agreement))
            .text("product_version", |r| version(r.product_version))
            .text("cal_type", |r| cal_type(r.cal_type))
            .text("downgraded_from", |r| {
                r.downgraded_from.map(caltrail_events::ProductVersion::as_str)
            })
            .text("entitlement_version", |r| version(r.entitlement_version()))
            .text("requirement", |r| level(r.entitlement_version()))
            .text("level", |r| level(r.product_version))
            .int("wmi_keypack_id", |r| r.wmi_keypack_id.map(i64::from))
            .text("origin", |r| Some(r.origin.as_str()))
            .text("migration", |r| r.migration.as_ref())
            .text("from_keypack", |r| r.from_keypack.as_ref())
            .count("installed_seq", |r| r.installed_seq)
            .text("installed_id", |r| Some(&r.installed_id))
            .time("installed_at", |r| Some(r.installed_at))
            .count("installed", |r| r.installed)
            .count("removed", |r| r.removed)
            .count("restored", |r| r.restored)
            .count("lost", |r| r.lost)
            .count("current_quantity", |r| r.current_quantity)
            .count("resurrected", |r| r.resurrected)
            .text("resurrected_by", |r| r.resurrected_by.as_ref())
            .count("active_issued", |r| r.active_issued)
            .count("available", |r| r.available)
            .finish()
    })
}

/// The `cals` table.
fn cals_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    let strings = &replay.strings;
    batches(&replay.cals, part, |rows| {
        TableBuilder::new(rows)
            .text("server", |r| Some(strings.get(r.server)))
            .text("keypack", |r| Some(strings.get(r.keypack)))
            .text("holder", |r| Some(strings.get(r.holder)))
            .text("cal_type", |r| r.cal_type.map(caltrail_events::CalType::as_str))
            .text("product_version", |r| {
                r.product_version.map(caltrail_events::ProductVersion::as_str)
            })
            .text("hardware_id", |r| r.hardware_id.as_ref())
            .boolean("temporary", |r| Some(r.temporary))
            .time("issued_at", |r| Some(r.issued_at))
            .time("renewed_at", |r| r.renewed_at)
            .count("n_issues", |r| r.n_issues)
            .time("expires_at", |r| r.expires_at)
            .time("expires_at_given", |r| r.expires_at_given)
            .time("active_until", |r| r.active_until)
            .time("revoked_at", |r| r.revoked_at)
            .time("cleared_at", |r| r.cleared_at)
            .text("session_host", |r| r.session_host.map(|h| strings.get(h)))
            .text("session_host_version", |r| {
                r.session_host_version.map(caltrail_events::ProductVersion::as_str)
            })
            .text("level", |r| r.level.map(caltrail_events::ProductVersion::as_str))
            .boolean("active", |r| Some(r.active))
            .finish()
    })
}

/// The `migrations` table.
fn migrations_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.migrations, part, |rows| {
        TableBuilder::new(rows)
            .text("migration", |r| Some(&r.migration))
            .count("seq", |r| r.seq)
            .time("at", |r| Some(r.at))
            .text("source", |r| Some(r.source.as_str()))
            .text("target", |r| Some(r.target.as_str()))
            .text("reason", |r| Some(r.reason))
            .boolean("source_reachable", |r| Some(r.source_reachable))
            .text("from_keypack", |r| Some(&r.from_keypack))
            .count("source_incarnation", |r| u64::from(r.source_incarnation))
            .count("target_incarnation", |r| u64::from(r.target_incarnation))
            .text("keypack", |r| Some(&r.keypack))
            .count("quantity", |r| r.quantity)
            .boolean("source_removed", |r| Some(r.source_removed))
            .count("removed_by_hand", |r| r.removed_by_hand)
            .time("removed_at", |r| r.removed_at)
            .list("removals", |r| r.removals.iter().collect())
            .count("not_removed", |r| r.not_removed)
            .text("agreement", |r| r.agreement.as_ref())
            .text("product_version", |r| {
                r.product_version.map(caltrail_events::ProductVersion::as_str)
            })
            .text("cal_type", |r| r.cal_type.map(caltrail_events::CalType::as_str))
            .text("source_license_server_id", |r| r.source_license_server_id.as_ref())
            .boolean("pack_known", |r| Some(r.pack_known))
            .finish()
    })
}

/// The `server_status` table.
fn server_status_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.status_changes, part, |rows| {
        TableBuilder::new(rows)
            .count("seq", |r| r.seq)
            .time("at", |r| Some(r.at))
            .text("server", |r| Some(r.server.as_str()))
            .count("incarnation", |r| u64::from(r.incarnation))
            .text("status", |r| Some(r.status.as_str()))
            .text("license_server_id", |r| r.license_server_id.as_ref())
            .text("os_version", |r| r.os_version.map(caltrail_events::ProductVersion::as_str))
            .finish()
    })
}

/// A text column of the `issues` table: what `issues_batches` writes and what a filter pushed
/// into the scan (`prefilter`) reads, from one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssueText {
    Id,
    Server,
    Keypack,
    Holder,
    CalType,
    ProductVersion,
    SessionHost,
    SessionHostVersion,
    ServerStatus,
}

impl IssueText {
    pub(crate) const ALL: [(IssueText, &'static str); 9] = [
        (IssueText::Id, "id"),
        (IssueText::Server, "server"),
        (IssueText::Keypack, "keypack"),
        (IssueText::Holder, "holder"),
        (IssueText::CalType, "cal_type"),
        (IssueText::ProductVersion, "product_version"),
        (IssueText::SessionHost, "session_host"),
        (IssueText::SessionHostVersion, "session_host_version"),
        (IssueText::ServerStatus, "server_status"),
    ];

    /// The column's name.
    pub(crate) fn name(self) -> &'static str {
        Self::ALL.iter().find(|(column, _)| *column == self).map_or("", |(_, name)| name)
    }

    /// The column's value in rows of this kind, unless the kind does not have the column.
    pub(crate) fn of_kind(self, kind: IssueKind) -> Result<Option<&'static str>, NotInKind> {
        match self {
            IssueText::Id
            | IssueText::Server
            | IssueText::Keypack
            | IssueText::Holder
            | IssueText::SessionHost => Err(NotInKind),
            IssueText::CalType => Ok(kind.cal_type.map(CalType::as_str)),
            IssueText::ProductVersion => Ok(kind.product_version.map(ProductVersion::as_str)),
            IssueText::SessionHostVersion => {
                Ok(kind.session_host_version.map(ProductVersion::as_str))
            }
            IssueText::ServerStatus => Ok(Some(kind.server_status.as_str())),
        }
    }

    /// The column's value in a row.
    pub(crate) fn of<'r>(self, replay: &'r Replay, r: &IssueRow) -> Option<&'r str> {
        let strings = &replay.strings;
        match self {
            IssueText::Id => r.id.map(|id| strings.get(id)),
            IssueText::Server => Some(strings.get(r.server)),
            IssueText::Keypack => Some(strings.get(r.keypack)),
            IssueText::Holder => Some(strings.get(r.holder)),
            IssueText::SessionHost => r.session_host.map(|h| strings.get(h)),
            IssueText::CalType
            | IssueText::ProductVersion
            | IssueText::SessionHostVersion
            | IssueText::ServerStatus => self.of_kind(r.kind()).unwrap_or(None),
        }
    }
}

/// A column an `IssueKind` does not have: its value differs from row to row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NotInKind;

/// A boolean column of the `issues` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IssueFlag {
    Temporary,
    Renewal,
}

impl IssueFlag {
    pub(crate) const ALL: [(IssueFlag, &'static str); 2] =
        [(IssueFlag::Temporary, "temporary"), (IssueFlag::Renewal, "renewal")];

    /// The column's name.
    pub(crate) fn name(self) -> &'static str {
        Self::ALL.iter().find(|(flag, _)| *flag == self).map_or("", |(_, name)| name)
    }

    /// The column's value in a row.
    pub(crate) fn of(self, r: &IssueRow) -> bool {
        self.of_kind(r.kind())
    }

    /// The column's value in rows of this kind.
    pub(crate) fn of_kind(self, kind: IssueKind) -> bool {
        match self {
            IssueFlag::Temporary => kind.temporary,
            IssueFlag::Renewal => kind.renewal,
        }
    }
}

/// The `issues` table's batches, with only the rows every condition keeps: a row dropped here is
/// one no query filter with these conditions would return.
pub(crate) fn issues_batches_where(
    replay: &Replay,
    part: Part,
    keep: &[crate::prefilter::Condition],
) -> Result<Vec<RecordBatch>, SnapshotError> {
    let build = |rows: &[IssueRow]| {
        use IssueText as T;
        TableBuilder::new(rows)
            .count("seq", |r| r.seq)
            .text(T::Id.name(), |r| T::Id.of(replay, r))
            .time("at", |r| Some(r.at))
            .text(T::Server.name(), |r| T::Server.of(replay, r))
            .text(T::Keypack.name(), |r| T::Keypack.of(replay, r))
            .text(T::Holder.name(), |r| T::Holder.of(replay, r))
            .text(T::CalType.name(), |r| T::CalType.of(replay, r))
            .text(T::ProductVersion.name(), |r| T::ProductVersion.of(replay, r))
            .boolean(IssueFlag::Temporary.name(), |r| Some(IssueFlag::Temporary.of(r)))
            .boolean(IssueFlag::Renewal.name(), |r| Some(IssueFlag::Renewal.of(r)))
            .text(T::SessionHost.name(), |r| T::SessionHost.of(replay, r))
            .text(T::SessionHostVersion.name(), |r| T::SessionHostVersion.of(replay, r))
            .text(T::ServerStatus.name(), |r| T::ServerStatus.of(replay, r))
            .finish()
    };
    let n = match part {
        Part::Empty => return Ok(vec![build(&[])]),
        Part::Batch(n) => n,
    };
    let start = n.saturating_mul(BATCH_ROWS);
    if start >= replay.issues.len() {
        return Ok(Vec::new());
    }
    if keep.is_empty() {
        let rows = replay.issues.range(start, start.saturating_add(BATCH_ROWS))?;
        return Ok(vec![build(&rows)]);
    }
    // Stored blocks with no row of a kind every condition may keep are not read back.
    let rows = replay.issues.range_where(start, start.saturating_add(BATCH_ROWS), |kind| {
        keep.iter().all(|c| c.may_hold_for(*kind))
    })?;
    let kept: Vec<IssueRow> =
        rows.iter().filter(|r| keep.iter().all(|c| c.holds(replay, r))).cloned().collect();
    #[cfg(test)]
    crate::prefilter::SKIPPED
        .fetch_add(rows.len() - kept.len(), std::sync::atomic::Ordering::Relaxed);
    Ok(vec![build(&kept)])
}

/// The `revocations` table.
fn revocations_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.revocations, part, |rows| {
        TableBuilder::new(rows)
            .count("seq", |r| r.seq)
            .text("id", |r| Some(&r.id))
            .time("at", |r| Some(r.at))
            .text("server", |r| Some(r.server.as_str()))
            .text("keypack", |r| Some(&r.keypack))
            .text("holder", |r| Some(&r.holder))
            .text("cal_type", |r| r.cal_type.map(caltrail_events::CalType::as_str))
            .text("product_version", |r| {
                r.product_version.map(caltrail_events::ProductVersion::as_str)
            })
            .count("installed_on_server", |r| r.installed_on_server)
            .finish()
    })
}

/// The `restores` table.
fn restores_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.restores, part, |rows| {
        TableBuilder::new(rows)
            .count("seq", |r| r.seq)
            .text("id", |r| Some(&r.id))
            .time("at", |r| Some(r.at))
            .text("server", |r| Some(r.server.as_str()))
            .time("backup_taken_at", |r| Some(r.backup_taken_at))
            .boolean("same_machine", |r| Some(r.same_machine))
            .boolean("os_replaced", |r| Some(r.os_replaced))
            .text("keypack", |r| Some(&r.keypack))
            .text("agreement", |r| Some(&r.agreement))
            .text("product_version", |r| version(r.product_version))
            .text("cal_type", |r| cal_type(r.cal_type))
            .text("entitlement_version", |r| version(r.entitlement_version))
            .count("quantity_at_backup", |r| r.quantity_at_backup)
            .count("issued_at_backup", |r| r.issued_at_backup)
            .count("quantity_before", |r| r.quantity_before)
            .count("quantity_after", |r| r.quantity_after)
            .count("came_back", |r| r.came_back)
            .count("unissued_lost", |r| r.unissued_lost)
            .count("resurrected", |r| r.resurrected)
            .finish()
    })
}

/// The `quantity_changes` table.
fn quantity_changes_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.quantity_changes, part, |rows| {
        TableBuilder::new(rows)
            .count("seq", |r| r.seq)
            .time("at", |r| Some(r.at))
            .text("keypack", |r| Some(&r.keypack))
            .text("server", |r| Some(r.server.as_str()))
            .text("agreement", |r| Some(&r.agreement))
            .text("entitlement_version", |r| version(r.entitlement_version))
            .text("cal_type", |r| cal_type(r.cal_type))
            .int("delta", |r| Some(r.delta))
            .finish()
    })
}

/// The `true_up_years` table.
fn true_up_years_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.true_up_years, part, |rows| {
        TableBuilder::new(rows)
            .text("agreement", |r| Some(&r.agreement))
            .text("anniversary", |r| Some(&r.anniversary))
            .time("period_start", |r| Some(r.period_start))
            .time("period_end", |r| Some(r.period_end))
            .boolean("through_end", |r| Some(r.through_end))
            .boolean("is_default", |r| Some(r.default))
            .finish()
    })
}

/// The `holders` table.
fn holders_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.holders, part, |rows| {
        TableBuilder::new(rows)
            .text("cal_type", |r| cal_type(r.cal_type))
            .text("holder", |r| Some(&r.holder))
            .text("level", |r| version(r.level))
            .boolean("temporary", |r| Some(r.temporary))
            .count("n_cals", |r| r.n_cals)
            .finish()
    })
}

/// The `in_use_changes` table.
fn in_use_changes_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    steps(&replay.in_use_steps, part, "in_use")
}

/// The `rights_changes` table.
fn rights_changes_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    steps(&replay.rights_steps, part, "rights")
}

/// The `installed_changes` table.
fn installed_changes_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    steps(&replay.installed_steps, part, "installed")
}

/// The `estate_levels` table.
fn estate_levels_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.estate_levels, part, |rows| {
        TableBuilder::new(rows)
            .text("cal_type", |r| cal_type(r.0))
            .text("level", |r| version(r.1))
            .finish()
    })
}

/// The `debts` table.
fn debts_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.debts, part, |rows| {
        TableBuilder::new(rows)
            .text("server", |r| Some(r.server.as_str()))
            .count("incarnation", |r| u64::from(r.incarnation))
            .text("agreement", |r| Some(&r.agreement))
            .text("requirement", |r| version(r.requirement))
            .text("cal_type", |r| cal_type(r.cal_type))
            .count("owed", |r| r.owed)
            .time("since", |r| Some(r.since))
            .list("events", |r| r.events.iter().collect())
            .finish()
    })
}

/// The `versions` table.
fn versions_batches(replay: &Replay, part: Part) -> Vec<RecordBatch> {
    batches(&replay.made_available, part, |rows| {
        TableBuilder::new(rows)
            .text("version", |r| version(r.0))
            .text("level", |r| level(r.0))
            .time("made_available", |r| Some(r.1))
            .finish()
    })
}

#[cfg(test)]
mod tests {
    use caltrail_events::{Event, Timestamp};
    use caltrail_replay::{AsOf, Replay};

    use super::{BATCH_ROWS, Part, build_part, n_batches};

    /// Regression: `export` of a 10M-event ledger panicked with "byte array offset overflow"
    /// when the `events` table's `data` column went past 2 GiB in one array. Tables are now
    /// built in batches of `BATCH_ROWS` rows.
    #[test]
    fn large_tables_are_built_in_batches() {
        let purchase = Event::from_json(
            r#"{"id":"p","type":"agreement.purchased","at":"2025-01-01T00:00:00Z","data":{"agreement":"EA-1","program":"select","product_version":"2022","cal_type":"per_user","quantity":1}}"#,
        )
        .unwrap();
        let now = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
        let mut replay = Replay::new(AsOf::Latest, now, false);
        for seq in 1..=BATCH_ROWS as u64 * 3 + 1 {
            replay.apply(seq, now, "", &purchase);
        }
        let replay = replay.finish();
        assert_eq!(n_batches(&replay, super::Table::Purchases), 4);
        let sizes: Vec<usize> = (0..5)
            .flat_map(|n| build_part(&replay, super::Table::Purchases, Part::Batch(n)).unwrap())
            .map(|b| b.num_rows())
            .collect();
        assert_eq!(sizes, [BATCH_ROWS, BATCH_ROWS, BATCH_ROWS, 1]);
        let engine = crate::Engine::new(std::sync::Arc::new(replay)).unwrap();
        let result =
            engine.query("SELECT count(*) AS n, sum(quantity) AS q FROM purchases").unwrap();
        let batch = &result.batches[0];
        let n = batch
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(n.value(0), BATCH_ROWS as i64 * 3 + 1);
    }
}
