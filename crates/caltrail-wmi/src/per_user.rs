//! Per-user CALs, which `Win32_TSIssuedLicense` does not list: their assignments on user
//! objects in Active Directory (`Get-ADUser ... -Properties msTS*`: `msTSManagingLS`,
//! `msTSExpireDate`, `msTSLicenseVersion`/`3`, slots 2 to 4 of each) and the license server's
//! per-user usage report (`Win32_TSLicenseReport`, `FetchReportEntries`), read into one shape.

use std::collections::{HashMap, HashSet};

use caltrail_events::{CalType, Event, ProductVersion, ServerName, Timestamp};
use caltrail_replay::{CalRow, Replay};
use serde_json::json;

use crate::error::{ExportError, RowError};
use crate::observed::{date, product_version};
use crate::reconcile::{build, import_id, packs_on};
use crate::records::{Record, read_records};
use crate::versions::{licence_code, looks_like_code, version_of_text};

/// One per-user CAL an export shows.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedUserCal {
    /// Where it is in the file (`row 3 (line 4), slot 2`), for messages.
    pub place: String,
    /// The account: `DOMAIN\sam` with `--domain`, else the UPN; the report's `User`.
    pub holder: String,
    /// The managing license server's ID as the export holds it (Active Directory), with the
    /// column it came from; `None` for the usage report, which one server writes.
    pub managing_ls: Option<(String, String)>,
    /// The CAL's version, from its licence code.
    pub product_version: ProductVersion,
    /// When the CAL expires, if the export says.
    pub expires_at: Option<Timestamp>,
    /// When the export says it was issued, if it says.
    pub issued_at: Option<Timestamp>,
}

/// The attribute names of slot `n` (1 to 4): `msTSManagingLS`, `msTSManagingLS2`, ...
fn slot_column(base: &str, slot: usize) -> String {
    if slot == 1 { base.to_owned() } else { format!("{base}{slot}") }
}

/// Reads an Active Directory export of user objects: one CAL per filled slot.
pub fn read_ad_users(
    bytes: &[u8],
    date_format: Option<&str>,
    domain: Option<&str>,
) -> Result<Vec<ObservedUserCal>, ExportError> {
    let (_, records) = read_records(bytes)?;
    let mut cals = Vec::new();
    for record in &records {
        let mut holder = None;
        for slot in 1..=4 {
            let ls_column = slot_column("msTSManagingLS", slot);
            let Some(managing_ls) = record.text(&ls_column) else { continue };
            if holder.is_none() {
                holder = Some(account(record, domain)?);
            }
            let expires_at = date(record, &slot_column("msTSExpireDate", slot), date_format)?;
            cals.push(ObservedUserCal {
                place: if slot == 1 {
                    record.to_string()
                } else {
                    format!("{record}, slot {slot}")
                },
                holder: holder.clone().expect("invariant: set above"),
                managing_ls: Some((managing_ls.trim().to_owned(), ls_column)),
                product_version: ad_version(record, slot)?,
                expires_at,
                issued_at: date(record, "IssueDate", date_format)?,
            });
        }
    }
    Ok(cals)
}

/// The account a user object names: `DOMAIN\sam` with `--domain` (the form the usage report
/// and the license server use), else its UPN.
fn account(record: &Record, domain: Option<&str>) -> Result<String, RowError> {
    if let (Some(domain), Some(sam)) = (domain, record.text("SamAccountName")) {
        return Ok(format!("{domain}\\{}", sam.trim()));
    }
    match (record.text("UserPrincipalName"), domain) {
        (Some(upn), _) => Ok(upn.trim().to_owned()),
        (None, Some(_)) => Err(record.error("SamAccountName", "is empty or missing")),
        (None, None) => Err(record.error(
            "UserPrincipalName",
            "is empty or missing: give --domain to name accounts DOMAIN\\SamAccountName",
        )),
    }
}

/// The version of a slot's CAL: a licence code in the slot's own `msTSLicenseVersion` column or
/// in `msTSLicenseVersion3` (the user's), else the number in `msTSLicenseVersion` (major in the
/// high 16 bits, minor in the low: 0x60002 is 6.02) or a version text.
fn ad_version(record: &Record, slot: usize) -> Result<ProductVersion, RowError> {
    let own = slot_column("msTSLicenseVersion", slot);
    for column in [own.as_str(), "msTSLicenseVersion3"] {
        if let Some(text) = record.text(column).filter(|t| looks_like_code(t)) {
            let code = licence_code(&text).map_err(|m| record.error(column, m))?;
            if code.cal_type != CalType::PerUser {
                return Err(record.error(
                    column,
                    format!(
                        "{text:?} is a per-device licence code: Active Directory holds per-user CALs"
                    ),
                ));
            }
            return Ok(code.product_version);
        }
    }
    let column = "msTSLicenseVersion";
    let Some(text) = record.text(column) else {
        return Err(record.error(
            "msTSLicenseVersion3",
            "no licence version: msTSLicenseVersion3 and msTSLicenseVersion are empty or missing",
        ));
    };
    let number = text
        .trim()
        .strip_prefix("0x")
        .map_or_else(|| text.trim().parse::<u64>().ok(), |hex| u64::from_str_radix(hex, 16).ok());
    if let Some(number) = number {
        let code = format!("C50-{}.{:02}", number >> 16, number & 0xFFFF);
        return licence_code(&code).map(|c| c.product_version).map_err(|_| {
            record.error(
                column,
                format!(
                    "{text} (version {}.{:02}) is not a version caltrail knows",
                    number >> 16,
                    number & 0xFFFF
                ),
            )
        });
    }
    version_of_text(&text).ok_or_else(|| {
        record.error(column, format!("{text:?} is not a licence version caltrail can read"))
    })
}

/// Reads the per-user usage report (`FetchReportEntries`: `User`, `ProductVersion`,
/// `ProductVersionID`, `CALType`, `ExpirationDate`) of one license server.
pub fn read_usage_report(
    bytes: &[u8],
    date_format: Option<&str>,
) -> Result<Vec<ObservedUserCal>, ExportError> {
    let (_, records) = read_records(bytes)?;
    let mut cals = Vec::new();
    for record in &records {
        let holder = record
            .text("User")
            .ok_or_else(|| record.error("User", "is empty or missing"))?
            .trim()
            .to_owned();
        if let Some(cal_type) = record.text("CALType") {
            let words = cal_type.to_ascii_lowercase();
            if words.trim() == "0" || words.contains("device") {
                return Err(record
                    .error(
                        "CALType",
                        format!("{cal_type:?} is per device: the usage report lists per-user CALs"),
                    )
                    .into());
            }
        }
        let product_version = product_version(record)?;
        cals.push(ObservedUserCal {
            place: record.to_string(),
            holder,
            managing_ls: None,
            product_version,
            expires_at: date(record, "ExpirationDate", date_format)?,
            issued_at: date(record, "IssueDate", date_format)?,
        });
    }
    Ok(cals)
}

/// Where each per-user CAL's license server comes from.
pub enum ServerLookup {
    /// The usage report: one server wrote it.
    One(ServerName),
    /// Active Directory: the managing license server's ID, looked up in `--server-map ID=NAME`
    /// first, then among the ledger's servers.
    ById(Vec<(String, ServerName)>),
}

/// A license server ID as compared: letters and digits only, upper case (AD and WMI write it
/// with or without dashes and braces).
fn id_key(id: &str) -> String {
    id.chars().filter(char::is_ascii_alphanumeric).map(|c| c.to_ascii_uppercase()).collect()
}

impl ServerLookup {
    /// The ledger's servers by license server ID (every incarnation), after the map's lines.
    pub fn by_id(replay: &Replay, map: &[(String, ServerName)]) -> ServerLookup {
        let mut ids: Vec<(String, ServerName)> =
            map.iter().map(|(id, server)| (id_key(id), server.clone())).collect();
        for row in replay.servers.values().chain(&replay.past_servers) {
            if let Some(id) = &row.license_server_id {
                ids.push((id_key(id), row.server.clone()));
            }
        }
        ServerLookup::ById(ids)
    }

    /// Reads `--server-map` values: `ID=NAME`.
    pub fn parse_map_entry(text: &str) -> Result<(String, ServerName), String> {
        let (id, name) = text.split_once('=').ok_or_else(|| {
            format!("{text:?} is not ID=NAME (a license server ID, then its name)")
        })?;
        if id_key(id).is_empty() {
            return Err(format!("{text:?} names no license server ID before '='"));
        }
        let server = ServerName::parse(name.trim()).map_err(|m| format!("{text:?}: {m}"))?;
        Ok((id.trim().to_owned(), server))
    }

    fn server(&self, cal: &ObservedUserCal) -> Result<ServerName, String> {
        match (self, &cal.managing_ls) {
            (ServerLookup::One(server), _) => Ok(server.clone()),
            (ServerLookup::ById(ids), Some((id, column))) => ids
                .iter()
                .find(|(key, _)| *key == id_key(id))
                .map(|(_, server)| server.clone())
                .ok_or_else(|| {
                    format!(
                        "{}, column {column}: the license server {id} is in no activation the ledger holds: give --server-map {id}=NAME",
                        cal.place
                    )
                }),
            (ServerLookup::ById(_), None) => {
                Err(format!("{}: no managing license server is given", cal.place))
            }
        }
    }
}

/// `text` in the letters an event id may hold: every other character, and `_` itself, as `_`
/// and its code in hex (`fabrikam\alice` is `fabrikam_5calice`), so two holders never share one.
fn id_part(text: &str) -> String {
    let mut part = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '-') {
            part.push(c);
        } else {
            part.push_str(&format!("_{:x}", u32::from(c)));
        }
    }
    part
}

/// The `cal.issued` events that bring the ledger to the per-user CALs an export shows, each
/// from the oldest current per-user pack of its version on its server. Ids come from the
/// server, holder, version and expiry, so importing the same export again writes nothing the
/// ledger does not already have; a CAL whose expiry moved is a renewal, imported as an issue.
pub fn import_user_events(
    replay: &Replay,
    cals: &[ObservedUserCal],
    servers: &ServerLookup,
    at: Timestamp,
    note: &str,
) -> Result<Vec<Event>, String> {
    let mut events: Vec<Event> = Vec::new();
    let mut written: HashSet<String> = HashSet::new();
    // The ledger's CALs by server, pack and holder (names compared without case): looked up
    // once per CAL of the export, which may list tens of thousands of users.
    let text = |sym| replay.strings.get(sym);
    let mut ledger_cals: HashMap<(&str, &str, String), Vec<&CalRow>> = HashMap::new();
    for c in &replay.cals {
        ledger_cals
            .entry((text(c.server), text(c.keypack), text(c.holder).to_lowercase()))
            .or_default()
            .push(c);
    }
    for cal in cals {
        let server = servers.server(cal)?;
        let pack = packs_on(replay, &server)
            .into_iter()
            .filter(|p| p.cal_type == CalType::PerUser && p.product_version == cal.product_version)
            .min_by_key(|p| p.installed_seq)
            .ok_or_else(|| {
                format!(
                    "{}: the ledger holds no per-user {} key pack on {}: record its keypack.installed first (caltrail import --keypacks reads its key pack export)",
                    cal.place,
                    cal.product_version,
                    server.as_str()
                )
            })?;
        let holder = cal.holder.to_lowercase();
        let held = ledger_cals.get(&(server.as_str(), pack.keypack.as_str(), holder.clone()));
        let known = held.into_iter().flatten().any(|c| {
            c.revoked_at.is_none()
                && c.cleared_at.is_none()
                && match cal.expires_at {
                    Some(expires_at) => c.expires_at_given == Some(expires_at),
                    None => c.active,
                }
        });
        let expiry = cal.expires_at.map_or_else(
            || "open".to_owned(),
            |t| t.datetime().format("%Y%m%dT%H%M%SZ").to_string(),
        );
        let id = import_id(
            &server,
            "user",
            format!("{}:{}:{expiry}", id_part(&holder), cal.product_version),
        )
        .map_err(|m| format!("{}: {m}", cal.place))?;
        if known || !written.insert(id.clone()) {
            continue;
        }
        let mut data = json!({
            "server": server.as_str(),
            "keypack": pack.keypack,
            "holder": cal.holder,
        });
        if let Some(expires_at) = cal.expires_at {
            data["expires_at"] = json!(expires_at.to_rfc3339());
        }
        events.push(
            build(json!({
                "id": id,
                "type": "cal.issued",
                "at": cal.issued_at.unwrap_or(at).to_rfc3339(),
                "note": note,
                "data": data,
            }))
            .map_err(|m| format!("{}: {m}", cal.place))?,
        );
    }
    Ok(events)
}
