//! The events of the contract (EVENTS.md, "Types") as Rust types, read from a value tree with
//! every check the contract states, and written back in canonical form. Reading cannot judge
//! licensing: a fact that breaks a rule is still a valid event.

#![allow(
    missing_docs,
    reason = "each field is the event's data field of the same name in EVENTS.md and schemas/"
)]

use std::mem::ManuallyDrop;

use compact_str::CompactString;

use crate::bytes::same;
use crate::cbor::Cursor;
use crate::fields::{FieldError, MAX_SLOTS, Object, ObjectWriter};
use crate::types::{
    ActivationMethod, Anniversary, CalType, DateOrTime, DecommissionReason, EventId,
    LicenseServerId, MigrationReason, Name, ProductVersion, Program, Quantity, ReactivationReason,
    RemovalMethod, ServerName, Timestamp,
};
use crate::value::Value;

/// One recorded fact: the envelope and the type's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub at: Timestamp,
    pub actor: Option<String>,
    pub note: Option<String>,
    pub data: EventData,
}

#[derive(Debug, Clone, PartialEq)]
pub enum EventData {
    AgreementPurchased(AgreementPurchased),
    ServerActivated(ServerActivated),
    ServerReactivated(ServerReactivated),
    ServerDeactivated(ServerDeactivated),
    KeypackInstalled(KeypackInstalled),
    KeypackRemoved(KeypackRemoved),
    CalsMigrated(CalsMigrated),
    SourceCalsRemoved(SourceCalsRemoved),
    CalIssued(CalIssued),
    CalRevoked(CalRevoked),
    ServerRestored(ServerRestored),
    ServerDatabaseRebuilt(ServerDatabaseRebuilt),
    ServerDecommissioned(ServerDecommissioned),
    EventRetracted(EventRetracted),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AgreementPurchased {
    pub agreement: Name,
    pub program: Program,
    pub number: Option<String>,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    pub quantity: Quantity,
    pub anniversary: Option<Anniversary>,
    /// When Software Assurance on these CALs ends (v2).
    pub software_assurance_until: Option<DateOrTime>,
    /// The newest version the licensing statement shows for these CALs (v2).
    pub rights_through: Option<ProductVersion>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerActivated {
    pub server: ServerName,
    pub license_server_id: LicenseServerId,
    pub os_version: ProductVersion,
    pub method: ActivationMethod,
    /// An opening balance: recorded on the first day for a server activated earlier (v2).
    /// Stored only when true, so activations written before it keep their bytes.
    pub opening: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerReactivated {
    pub server: ServerName,
    pub license_server_id: LicenseServerId,
    pub reason: ReactivationReason,
    pub method: ActivationMethod,
    pub os_version: Option<ProductVersion>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerDeactivated {
    pub server: ServerName,
    pub method: ActivationMethod,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeypackInstalled {
    pub server: ServerName,
    pub keypack: Name,
    pub agreement: Name,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    pub quantity: Quantity,
    /// The purchased version when this is a downgrade key. Invariant: newer than `product_version`.
    pub downgraded_from: Option<ProductVersion>,
    pub wmi_keypack_id: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct KeypackRemoved {
    pub server: ServerName,
    pub keypack: Name,
    /// All that remain when absent.
    pub quantity: Option<Quantity>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CalsMigrated {
    pub source: ServerName,
    pub target: ServerName,
    pub reason: MigrationReason,
    pub source_reachable: bool,
    pub from_keypack: Name,
    pub keypack: Name,
    pub quantity: Quantity,
    pub source_removed: bool,
    /// What the wizard was told, for a source the ledger never knew (v2).
    pub agreement: Option<Name>,
    pub product_version: Option<ProductVersion>,
    pub cal_type: Option<CalType>,
    pub source_license_server_id: Option<LicenseServerId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SourceCalsRemoved {
    pub server: ServerName,
    pub keypack: Name,
    pub quantity: Quantity,
    pub migration: Option<EventId>,
    pub method: RemovalMethod,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CalIssued {
    pub server: ServerName,
    pub keypack: Name,
    pub holder: Name,
    pub hardware_id: Option<CompactString>,
    pub temporary: bool,
    pub expires_at: Option<Timestamp>,
    pub session_host: Option<CompactString>,
    pub session_host_version: Option<ProductVersion>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CalRevoked {
    pub server: ServerName,
    pub keypack: Name,
    pub holder: Name,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerRestored {
    pub server: ServerName,
    /// Invariant: not later than the event's `at`.
    pub backup_taken_at: Timestamp,
    pub same_machine: bool,
    pub os_replaced: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerDatabaseRebuilt {
    pub server: ServerName,
}

/// The license server is gone (v2): every pack on it, every CAL it issued, and what its
/// migrations left on it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerDecommissioned {
    pub server: ServerName,
    pub reason: DecommissionReason,
}

/// A correction (v2): the named event was recorded in error and never happened.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRetracted {
    pub retracts: EventId,
    /// Invariant: 1 to 500 characters.
    pub reason: String,
}

/// The `type` of an event, as the contract spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EventType {
    AgreementPurchased,
    ServerActivated,
    ServerReactivated,
    ServerDeactivated,
    KeypackInstalled,
    KeypackRemoved,
    CalsMigrated,
    SourceCalsRemoved,
    CalIssued,
    CalRevoked,
    ServerRestored,
    ServerDatabaseRebuilt,
    ServerDecommissioned,
    EventRetracted,
}

impl EventType {
    pub const ALL: &'static [EventType] = &[
        EventType::AgreementPurchased,
        EventType::ServerActivated,
        EventType::ServerReactivated,
        EventType::ServerDeactivated,
        EventType::KeypackInstalled,
        EventType::KeypackRemoved,
        EventType::CalsMigrated,
        EventType::SourceCalsRemoved,
        EventType::CalIssued,
        EventType::CalRevoked,
        EventType::ServerRestored,
        EventType::ServerDatabaseRebuilt,
        EventType::ServerDecommissioned,
        EventType::EventRetracted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AgreementPurchased => "agreement.purchased",
            EventType::ServerActivated => "server.activated",
            EventType::ServerReactivated => "server.reactivated",
            EventType::ServerDeactivated => "server.deactivated",
            EventType::KeypackInstalled => "keypack.installed",
            EventType::KeypackRemoved => "keypack.removed",
            EventType::CalsMigrated => "cals.migrated",
            EventType::SourceCalsRemoved => "source.cals_removed",
            EventType::CalIssued => "cal.issued",
            EventType::CalRevoked => "cal.revoked",
            EventType::ServerRestored => "server.restored",
            EventType::ServerDatabaseRebuilt => "server.database_rebuilt",
            EventType::ServerDecommissioned => "server.decommissioned",
            EventType::EventRetracted => "event.retracted",
        }
    }

    pub fn parse(text: &str) -> Result<EventType, String> {
        EventType::from_bytes(text.as_bytes()).ok_or_else(|| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            format!("unknown event type {text:?} (expected one of: {})", known.join(", "))
        })
    }

    /// The type the bytes spell, if any: a stored entry's type is read without checking its
    /// bytes for UTF-8 (every spelling is ASCII, so bytes equal to one are text).
    pub(crate) fn from_bytes(bytes: &[u8]) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| same(t.as_str().as_bytes(), bytes))
    }

    /// The fields of the type's `data`, in canonical order.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            EventType::AgreementPurchased => &[
                "agreement",
                "program",
                "number",
                "product_version",
                "cal_type",
                "quantity",
                "anniversary",
                "software_assurance_until",
                "rights_through",
            ],
            EventType::ServerActivated => {
                &["server", "license_server_id", "os_version", "method", "opening"]
            }
            EventType::ServerReactivated => {
                &["server", "license_server_id", "reason", "method", "os_version"]
            }
            EventType::ServerDeactivated => &["server", "method"],
            EventType::KeypackInstalled => &[
                "server",
                "keypack",
                "agreement",
                "product_version",
                "cal_type",
                "quantity",
                "downgraded_from",
                "wmi_keypack_id",
            ],
            EventType::KeypackRemoved => &["server", "keypack", "quantity"],
            EventType::CalsMigrated => &[
                "source",
                "target",
                "reason",
                "source_reachable",
                "from_keypack",
                "keypack",
                "quantity",
                "source_removed",
                "agreement",
                "product_version",
                "cal_type",
                "source_license_server_id",
            ],
            EventType::SourceCalsRemoved => {
                &["server", "keypack", "quantity", "migration", "method"]
            }
            EventType::CalIssued => &[
                "server",
                "keypack",
                "holder",
                "hardware_id",
                "temporary",
                "expires_at",
                "session_host",
                "session_host_version",
            ],
            EventType::CalRevoked => &["server", "keypack", "holder"],
            EventType::ServerRestored => {
                &["server", "backup_taken_at", "same_machine", "os_replaced"]
            }
            EventType::ServerDatabaseRebuilt => &["server"],
            EventType::ServerDecommissioned => &["server", "reason"],
            EventType::EventRetracted => &["retracts", "reason"],
        }
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

const ENVELOPE_FIELDS: &[&str] = &["id", "type", "at", "actor", "note", "data"];

impl Event {
    /// Reads and validates one JSON line.
    pub fn from_json(line: &str) -> Result<Event, FieldError> {
        let value = Value::from_json(line).map_err(|e| {
            // serde_json counts lines inside the text it was given; the caller knows the file's
            // line, so only the column is worth saying.
            let message = e.to_string();
            let message =
                message.rfind(" at line ").map_or(message.as_str(), |end| &message[..end]);
            FieldError::new("", format!("not valid JSON at column {}: {message}", e.column()))
        })?;
        Event::from_value(&value)
    }

    /// Reads and validates an event from a value tree, whether it came from JSON or from the
    /// ledger's stored CBOR. `prefix` is the path of the event inside the tree ("" at the top).
    pub fn from_value_at(value: &Value<'_>, prefix: &str) -> Result<Event, FieldError> {
        let envelope = Object::open(value, prefix, ENVELOPE_FIELDS)?;
        let id = envelope.parsed("id", EventId::parse)?;
        let event_type = envelope.parsed("type", EventType::parse)?;
        let at = envelope.parsed("at", Timestamp::parse)?;
        let actor = envelope.optional_text("actor")?.map(str::to_owned);
        let note = envelope.optional_text("note")?.map(str::to_owned);
        let data = envelope.open_field("data", event_type.fields())?;
        let data = read_data(event_type, &data, at)?;
        Ok(Event { id, at, actor, note, data })
    }

    /// Reads an event in the canonical CBOR `to_cbor` writes, straight from the bytes: the
    /// envelope's fields in contract order, then the data's, each a text, an integer or a
    /// boolean under a name its type allows, in the order `EventType::fields` gives. Every
    /// value is checked by the code `from_value_at` uses (`read_data`). `None` for anything
    /// else, and for anything the checks refuse: `from_value_at` then reads the same bytes as a
    /// value tree and says exactly what is wrong. Stored entries are canonical, so a replay
    /// reads them all here, without building a tree.
    pub(crate) fn from_canonical<'a>(c: &mut Cursor<'a>) -> Option<Event> {
        let n_fields = c.map().ok()?;
        let key = |c: &mut Cursor<'a>| c.text_bytes().ok();
        same(key(c)?, b"id").then_some(())?;
        let id = EventId::parse(c.text().ok()?).ok()?;
        same(key(c)?, b"type").then_some(())?;
        let event_type = EventType::from_bytes(c.text_bytes().ok()?)?;
        same(key(c)?, b"at").then_some(())?;
        let at = Timestamp::parse_bytes(c.text_bytes().ok()?)?;
        let mut next = key(c)?;
        let mut read = 3;
        let mut optional_text = |c: &mut Cursor<'a>, name: &[u8], next: &mut &'a [u8]| {
            if !same(next, name) {
                return Some(None);
            }
            let text = c.text().ok()?.to_owned();
            *next = key(c)?;
            read += 1;
            Some(Some(text))
        };
        let actor = optional_text(c, b"actor", &mut next)?;
        let note = optional_text(c, b"note", &mut next)?;
        if !same(next, b"data") || read + 1 != n_fields {
            return None;
        }
        let allowed = event_type.fields();
        let n_data = c.map().ok()?;
        // Only integers, booleans and borrowed text go in (`Cursor::scalar_into`): nothing to free,
        // so the slots are not dropped one by one.
        let mut values: ManuallyDrop<[Option<Value<'a>>; MAX_SLOTS]> = ManuallyDrop::default();
        let mut from = 0;
        for _ in 0..n_data {
            let name = c.text_bytes().ok()?;
            let index =
                from + allowed.get(from..)?.iter().position(|a| same(a.as_bytes(), name))?;
            from = index + 1;
            c.scalar_into(values.get_mut(index)?).ok()?.then_some(())?;
        }
        let data = Object::of_slots(allowed, &values, "event", "data");
        let data = read_data(event_type, &data, at).ok()?;
        Some(Event { id, at, actor, note, data })
    }

    pub fn from_value(value: &Value<'_>) -> Result<Event, FieldError> {
        Event::from_value_at(value, "")
    }

    /// The canonical value tree: envelope fields in contract order, absent optional fields left
    /// out, times in UTC. Two inputs that mean the same give the same tree.
    pub fn to_value(&self) -> Value<'_> {
        ObjectWriter::tree()
            .text("id", self.id.as_str())
            .text("type", self.event_type().as_str())
            .text("at", self.at.to_rfc3339())
            .optional_text("actor", self.actor.as_deref())
            .optional_text("note", self.note.as_deref())
            .value("data", self.data.to_value())
            .finish()
    }

    /// The canonical CBOR of `to_value`, as it sits inside a stored entry.
    pub fn to_cbor(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(256);
        crate::cbor::encode(&self.to_value(), &mut bytes);
        bytes
    }

    pub fn event_type(&self) -> EventType {
        self.data.event_type()
    }

    /// The key pack this event creates, if any: names that must be unique in a ledger.
    pub fn new_keypack(&self) -> Option<&Name> {
        match &self.data {
            EventData::KeypackInstalled(e) => Some(&e.keypack),
            EventData::CalsMigrated(e) => Some(&e.keypack),
            _ => None,
        }
    }

    /// The id of the event this one retracts, for a correction.
    pub fn retracts(&self) -> Option<&EventId> {
        match &self.data {
            EventData::EventRetracted(e) => Some(&e.retracts),
            _ => None,
        }
    }

    /// The servers the event concerns, the first one first (the source, for a migration).
    pub fn servers(&self) -> impl Iterator<Item = &ServerName> {
        // An array, not a `Vec`: a replay asks this of every event it folds.
        let servers: [Option<&ServerName>; 2] = match &self.data {
            EventData::AgreementPurchased(_) | EventData::EventRetracted(_) => [None, None],
            EventData::ServerDecommissioned(e) => [Some(&e.server), None],
            EventData::ServerActivated(e) => [Some(&e.server), None],
            EventData::ServerReactivated(e) => [Some(&e.server), None],
            EventData::ServerDeactivated(e) => [Some(&e.server), None],
            EventData::KeypackInstalled(e) => [Some(&e.server), None],
            EventData::KeypackRemoved(e) => [Some(&e.server), None],
            EventData::CalsMigrated(e) => [Some(&e.source), Some(&e.target)],
            EventData::SourceCalsRemoved(e) => [Some(&e.server), None],
            EventData::CalIssued(e) => [Some(&e.server), None],
            EventData::CalRevoked(e) => [Some(&e.server), None],
            EventData::ServerRestored(e) => [Some(&e.server), None],
            EventData::ServerDatabaseRebuilt(e) => [Some(&e.server), None],
        };
        servers.into_iter().flatten()
    }
}

impl EventData {
    pub fn event_type(&self) -> EventType {
        match self {
            EventData::AgreementPurchased(_) => EventType::AgreementPurchased,
            EventData::ServerActivated(_) => EventType::ServerActivated,
            EventData::ServerReactivated(_) => EventType::ServerReactivated,
            EventData::ServerDeactivated(_) => EventType::ServerDeactivated,
            EventData::KeypackInstalled(_) => EventType::KeypackInstalled,
            EventData::KeypackRemoved(_) => EventType::KeypackRemoved,
            EventData::CalsMigrated(_) => EventType::CalsMigrated,
            EventData::SourceCalsRemoved(_) => EventType::SourceCalsRemoved,
            EventData::CalIssued(_) => EventType::CalIssued,
            EventData::CalRevoked(_) => EventType::CalRevoked,
            EventData::ServerRestored(_) => EventType::ServerRestored,
            EventData::ServerDatabaseRebuilt(_) => EventType::ServerDatabaseRebuilt,
            EventData::ServerDecommissioned(_) => EventType::ServerDecommissioned,
            EventData::EventRetracted(_) => EventType::EventRetracted,
        }
    }

    /// The canonical `data` object.
    pub fn to_value(&self) -> Value<'_> {
        self.write_fields(&mut ObjectWriter::tree())
    }

    /// Appends the compact JSON text of the `data` object to `out`: `to_value().write_json(out)`
    /// without the tree.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        self.write_fields(&mut ObjectWriter::json(out));
    }

    fn write_fields<'a>(&'a self, w: &mut ObjectWriter<'a, '_>) -> Value<'a> {
        match self {
            EventData::AgreementPurchased(e) => w
                .text("agreement", e.agreement.as_str())
                .text("program", e.program.as_str())
                .optional_text("number", e.number.as_deref())
                .text("product_version", e.product_version.as_str())
                .text("cal_type", e.cal_type.as_str())
                .integer("quantity", e.quantity.get())
                .optional_text("anniversary", e.anniversary.map(|a| a.to_string()))
                .optional_text(
                    "software_assurance_until",
                    e.software_assurance_until.map(|d| d.to_string()),
                )
                .optional_text(
                    "rights_through",
                    e.rights_through.map(super::types::ProductVersion::as_str),
                ),
            EventData::ServerActivated(e) => w
                .text("server", e.server.as_str())
                .text("license_server_id", e.license_server_id.as_str())
                .text("os_version", e.os_version.as_str())
                .text("method", e.method.as_str())
                .optional_boolean("opening", e.opening.then_some(true)),
            EventData::ServerReactivated(e) => w
                .text("server", e.server.as_str())
                .text("license_server_id", e.license_server_id.as_str())
                .text("reason", e.reason.as_str())
                .text("method", e.method.as_str())
                .optional_text(
                    "os_version",
                    e.os_version.map(super::types::ProductVersion::as_str),
                ),
            EventData::ServerDeactivated(e) => {
                w.text("server", e.server.as_str()).text("method", e.method.as_str())
            }
            EventData::KeypackInstalled(e) => w
                .text("server", e.server.as_str())
                .text("keypack", e.keypack.as_str())
                .text("agreement", e.agreement.as_str())
                .text("product_version", e.product_version.as_str())
                .text("cal_type", e.cal_type.as_str())
                .integer("quantity", e.quantity.get())
                .optional_text(
                    "downgraded_from",
                    e.downgraded_from.map(super::types::ProductVersion::as_str),
                )
                .optional_integer("wmi_keypack_id", e.wmi_keypack_id),
            EventData::KeypackRemoved(e) => w
                .text("server", e.server.as_str())
                .text("keypack", e.keypack.as_str())
                .optional_integer("quantity", e.quantity.map(Quantity::get)),
            EventData::CalsMigrated(e) => w
                .text("source", e.source.as_str())
                .text("target", e.target.as_str())
                .text("reason", e.reason.as_str())
                .boolean("source_reachable", e.source_reachable)
                .text("from_keypack", e.from_keypack.as_str())
                .text("keypack", e.keypack.as_str())
                .integer("quantity", e.quantity.get())
                .boolean("source_removed", e.source_removed)
                .optional_text("agreement", e.agreement.as_ref().map(Name::as_str))
                .optional_text(
                    "product_version",
                    e.product_version.map(super::types::ProductVersion::as_str),
                )
                .optional_text("cal_type", e.cal_type.map(super::types::CalType::as_str))
                .optional_text(
                    "source_license_server_id",
                    e.source_license_server_id.as_ref().map(LicenseServerId::as_str),
                ),
            EventData::SourceCalsRemoved(e) => w
                .text("server", e.server.as_str())
                .text("keypack", e.keypack.as_str())
                .integer("quantity", e.quantity.get())
                .optional_text("migration", e.migration.as_ref().map(EventId::as_str))
                .text("method", e.method.as_str()),
            EventData::CalIssued(e) => w
                .text("server", e.server.as_str())
                .text("keypack", e.keypack.as_str())
                .text("holder", e.holder.as_str())
                .optional_text("hardware_id", e.hardware_id.as_deref())
                .boolean("temporary", e.temporary)
                .optional_text("expires_at", e.expires_at.map(Timestamp::to_rfc3339))
                .optional_text("session_host", e.session_host.as_deref())
                .optional_text(
                    "session_host_version",
                    e.session_host_version.map(super::types::ProductVersion::as_str),
                ),
            EventData::CalRevoked(e) => w
                .text("server", e.server.as_str())
                .text("keypack", e.keypack.as_str())
                .text("holder", e.holder.as_str()),
            EventData::ServerRestored(e) => w
                .text("server", e.server.as_str())
                .text("backup_taken_at", e.backup_taken_at.to_rfc3339())
                .boolean("same_machine", e.same_machine)
                .boolean("os_replaced", e.os_replaced),
            EventData::ServerDatabaseRebuilt(e) => w.text("server", e.server.as_str()),
            EventData::ServerDecommissioned(e) => {
                w.text("server", e.server.as_str()).text("reason", e.reason.as_str())
            }
            EventData::EventRetracted(e) => {
                w.text("retracts", e.retracts.as_str()).text("reason", e.reason.as_str())
            }
        };
        w.finish()
    }
}

fn quantity(data: &Object, name: &str) -> Result<Quantity, FieldError> {
    Quantity::new(data.integer(name)?).map_err(|m| FieldError::new(data.path(name), m))
}

fn optional_quantity(data: &Object, name: &str) -> Result<Option<Quantity>, FieldError> {
    data.optional_integer(name)?
        .map(|n| Quantity::new(n).map_err(|m| FieldError::new(data.path(name), m)))
        .transpose()
}

/// Free text that must say something: a holder, a hardware id, a session host.
fn optional_free_text<T: for<'t> From<&'t str>>(
    data: &Object,
    name: &str,
) -> Result<Option<T>, FieldError> {
    match data.optional_text(name)? {
        Some("") => Err(FieldError::new(data.path(name), "must not be empty")),
        other => Ok(other.map(T::from)),
    }
}

fn read_data(event_type: EventType, d: &Object, at: Timestamp) -> Result<EventData, FieldError> {
    Ok(match event_type {
        EventType::AgreementPurchased => EventData::AgreementPurchased(AgreementPurchased {
            agreement: d.parsed("agreement", Name::parse)?,
            program: d.parsed("program", Program::parse)?,
            number: optional_free_text(d, "number")?,
            product_version: d.parsed("product_version", ProductVersion::parse)?,
            cal_type: d.parsed("cal_type", CalType::parse)?,
            quantity: quantity(d, "quantity")?,
            anniversary: d.optional_parsed("anniversary", Anniversary::parse)?,
            software_assurance_until: d
                .optional_parsed("software_assurance_until", DateOrTime::parse)?,
            rights_through: d.optional_parsed("rights_through", ProductVersion::parse)?,
        }),
        EventType::ServerActivated => EventData::ServerActivated(ServerActivated {
            server: d.parsed("server", ServerName::parse)?,
            license_server_id: d.parsed("license_server_id", LicenseServerId::parse)?,
            os_version: d.parsed("os_version", ProductVersion::parse)?,
            method: d.parsed("method", ActivationMethod::parse)?,
            opening: d.optional_boolean("opening")?.unwrap_or(false),
        }),
        EventType::ServerReactivated => EventData::ServerReactivated(ServerReactivated {
            server: d.parsed("server", ServerName::parse)?,
            license_server_id: d.parsed("license_server_id", LicenseServerId::parse)?,
            reason: d.parsed("reason", ReactivationReason::parse)?,
            method: d.parsed("method", ActivationMethod::parse)?,
            os_version: d.optional_parsed("os_version", ProductVersion::parse)?,
        }),
        EventType::ServerDeactivated => EventData::ServerDeactivated(ServerDeactivated {
            server: d.parsed("server", ServerName::parse)?,
            method: d.parsed("method", ActivationMethod::parse)?,
        }),
        EventType::KeypackInstalled => {
            let product_version = d.parsed("product_version", ProductVersion::parse)?;
            let downgraded_from = d.optional_parsed("downgraded_from", ProductVersion::parse)?;
            if let Some(from) = downgraded_from
                && from <= product_version
            {
                return Err(FieldError::new(
                    d.path("downgraded_from"),
                    format!(
                        "must be newer than data.product_version ({product_version}), got \"{from}\""
                    ),
                ));
            }
            let wmi_keypack_id = d
                .optional_integer("wmi_keypack_id")?
                .map(|n| {
                    u32::try_from(n).map_err(|_| {
                        FieldError::new(
                            d.path("wmi_keypack_id"),
                            format!("must be between 0 and {}, got {n}", u32::MAX),
                        )
                    })
                })
                .transpose()?;
            EventData::KeypackInstalled(KeypackInstalled {
                server: d.parsed("server", ServerName::parse)?,
                keypack: d.parsed("keypack", Name::parse)?,
                agreement: d.parsed("agreement", Name::parse)?,
                product_version,
                cal_type: d.parsed("cal_type", CalType::parse)?,
                quantity: quantity(d, "quantity")?,
                downgraded_from,
                wmi_keypack_id,
            })
        }
        EventType::KeypackRemoved => EventData::KeypackRemoved(KeypackRemoved {
            server: d.parsed("server", ServerName::parse)?,
            keypack: d.parsed("keypack", Name::parse)?,
            quantity: optional_quantity(d, "quantity")?,
        }),
        EventType::CalsMigrated => {
            // The source may be the target (v2): a replacement machine given the old one's name.
            let source = d.parsed("source", ServerName::parse)?;
            let target = d.parsed("target", ServerName::parse)?;
            let from_keypack = d.parsed("from_keypack", Name::parse)?;
            let keypack = d.parsed("keypack", Name::parse)?;
            if from_keypack == keypack {
                return Err(FieldError::new(
                    d.path("keypack"),
                    "must name the new pack on the target, not data.from_keypack",
                ));
            }
            EventData::CalsMigrated(CalsMigrated {
                source,
                target,
                reason: d.parsed("reason", MigrationReason::parse)?,
                source_reachable: d.boolean("source_reachable")?,
                from_keypack,
                keypack,
                quantity: quantity(d, "quantity")?,
                source_removed: d.boolean("source_removed")?,
                agreement: d.optional_parsed("agreement", Name::parse)?,
                product_version: d.optional_parsed("product_version", ProductVersion::parse)?,
                cal_type: d.optional_parsed("cal_type", CalType::parse)?,
                source_license_server_id: d
                    .optional_parsed("source_license_server_id", LicenseServerId::parse)?,
            })
        }
        EventType::SourceCalsRemoved => EventData::SourceCalsRemoved(SourceCalsRemoved {
            server: d.parsed("server", ServerName::parse)?,
            keypack: d.parsed("keypack", Name::parse)?,
            quantity: quantity(d, "quantity")?,
            migration: d.optional_parsed("migration", EventId::parse)?,
            method: d.parsed("method", RemovalMethod::parse)?,
        }),
        EventType::CalIssued => EventData::CalIssued(CalIssued {
            server: d.parsed("server", ServerName::parse)?,
            keypack: d.parsed("keypack", Name::parse)?,
            holder: d.parsed("holder", Name::parse)?,
            hardware_id: optional_free_text(d, "hardware_id")?,
            temporary: d.optional_boolean("temporary")?.unwrap_or(false),
            expires_at: d.optional_parsed("expires_at", Timestamp::parse)?,
            session_host: optional_free_text(d, "session_host")?,
            session_host_version: d
                .optional_parsed("session_host_version", ProductVersion::parse)?,
        }),
        EventType::CalRevoked => EventData::CalRevoked(CalRevoked {
            server: d.parsed("server", ServerName::parse)?,
            keypack: d.parsed("keypack", Name::parse)?,
            holder: d.parsed("holder", Name::parse)?,
        }),
        EventType::ServerRestored => {
            let backup_taken_at = d.parsed("backup_taken_at", Timestamp::parse)?;
            if backup_taken_at > at {
                return Err(FieldError::new(
                    d.path("backup_taken_at"),
                    format!("must not be later than at ({at}), got {backup_taken_at}"),
                ));
            }
            EventData::ServerRestored(ServerRestored {
                server: d.parsed("server", ServerName::parse)?,
                backup_taken_at,
                same_machine: d.boolean("same_machine")?,
                os_replaced: d.boolean("os_replaced")?,
            })
        }
        EventType::ServerDatabaseRebuilt => {
            EventData::ServerDatabaseRebuilt(ServerDatabaseRebuilt {
                server: d.parsed("server", ServerName::parse)?,
            })
        }
        EventType::ServerDecommissioned => EventData::ServerDecommissioned(ServerDecommissioned {
            server: d.parsed("server", ServerName::parse)?,
            reason: d.parsed("reason", DecommissionReason::parse)?,
        }),
        EventType::EventRetracted => {
            let reason = d.text("reason")?;
            let length = reason.chars().count();
            if !(1..=500).contains(&length) {
                return Err(FieldError::new(
                    d.path("reason"),
                    format!("must be 1 to 500 characters long, got {length}"),
                ));
            }
            EventData::EventRetracted(EventRetracted {
                retracts: d.parsed("retracts", EventId::parse)?,
                reason: reason.to_owned(),
            })
        }
    })
}
