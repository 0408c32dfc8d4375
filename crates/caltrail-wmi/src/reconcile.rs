//! Setting a license server's export beside the ledger's view of it, pack by pack and holder by
//! holder, and deriving the events that would bring the ledger to what the export shows.

#![allow(
    missing_docs,
    reason = "each field is a column of reconcile's output, described in README"
)]

use std::collections::HashSet;

use caltrail_events::{CalType, Event, Name, ProductVersion, ServerName, Timestamp};
use caltrail_replay::{CalRow, KeypackRow, Replay};
use serde_json::json;

use crate::observed::{LicenseStatus, ObservedKeypack, ObservedLicense};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Match,
    MissingOnServer,
    NotInLedger,
    QuantityDiffers,
    IssuedDiffers,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Match => "match",
            Verdict::MissingOnServer => "missing_on_server",
            Verdict::NotInLedger => "not_in_ledger",
            Verdict::QuantityDiffers => "quantity_differs",
            Verdict::IssuedDiffers => "issued_differs",
        }
    }
}

/// One line of the report: a pack, or a holder of a CAL.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// `keypack` or `cal`.
    pub kind: &'static str,
    /// The ledger's name of the pack.
    pub keypack: Option<String>,
    /// The pack's `KeyPackId` on the server.
    pub wmi_keypack_id: Option<u32>,
    pub holder: Option<String>,
    pub product_version: Option<ProductVersion>,
    pub cal_type: Option<CalType>,
    /// How the export's pack was found for the ledger's: `wmi_keypack_id`,
    /// `version_type_quantity` or `version_type`.
    pub matched_by: Option<&'static str>,
    pub expected_total: Option<u64>,
    pub observed_total: Option<u64>,
    pub expected_issued: Option<u64>,
    pub observed_issued: Option<u64>,
    pub expected_available: Option<u64>,
    pub observed_available: Option<u64>,
    pub verdict: Verdict,
    pub note: Option<String>,
}

/// A ledger pack and the export's pack found for it.
struct Pair<'a> {
    ledger: Option<&'a KeypackRow>,
    observed: Option<&'a ObservedKeypack>,
    matched_by: Option<&'static str>,
}

/// Pairs the ledger's packs on the server (those still holding CALs) with the export's: by
/// WMI id where the ledger recorded it, then by version, type and quantity, then by version and
/// type when only one pack of each side is left for them.
fn pair<'a>(ledger: &[&'a KeypackRow], observed: &'a [ObservedKeypack]) -> Vec<Pair<'a>> {
    let mut used = vec![false; observed.len()];
    let mut found: Vec<Option<(usize, &'static str)>> = vec![None; ledger.len()];
    for (l, pack) in ledger.iter().enumerate() {
        if let Some(id) = pack.wmi_keypack_id
            && let Some(o) =
                (0..observed.len()).find(|o| !used[*o] && observed[*o].keypack_id == id)
        {
            used[o] = true;
            found[l] = Some((o, "wmi_keypack_id"));
        }
    }
    let same_kind = |p: &KeypackRow, o: &ObservedKeypack| {
        p.product_version == o.product_version && p.cal_type == o.cal_type
    };
    for (l, pack) in ledger.iter().enumerate() {
        if found[l].is_some() {
            continue;
        }
        if let Some(o) = (0..observed.len()).find(|o| {
            !used[*o]
                && same_kind(pack, &observed[*o])
                && observed[*o].total == pack.current_quantity
        }) {
            used[o] = true;
            found[l] = Some((o, "version_type_quantity"));
        }
    }
    for (l, pack) in ledger.iter().enumerate() {
        if found[l].is_some() {
            continue;
        }
        let candidates: Vec<usize> =
            (0..observed.len()).filter(|o| !used[*o] && same_kind(pack, &observed[*o])).collect();
        let [candidate] = candidates[..] else { continue };
        let rivals = ledger
            .iter()
            .enumerate()
            .filter(|(i, p)| found[*i].is_none() && same_kind(p, &observed[candidate]))
            .count();
        if rivals == 1 {
            used[candidate] = true;
            found[l] = Some((candidate, "version_type"));
        }
    }
    let mut pairs: Vec<Pair> = ledger
        .iter()
        .zip(&found)
        .map(|(pack, f)| Pair {
            ledger: Some(*pack),
            observed: f.map(|(o, _)| &observed[o]),
            matched_by: f.map(|(_, by)| by),
        })
        .collect();
    pairs.extend(observed.iter().enumerate().filter(|(o, _)| !used[*o]).map(|(_, o)| Pair {
        ledger: None,
        observed: Some(o),
        matched_by: None,
    }));
    pairs
}

pub(crate) fn packs_on<'a>(replay: &'a Replay, server: &ServerName) -> Vec<&'a KeypackRow> {
    let incarnation = replay.servers.get(server).map_or(1, |s| s.incarnation);
    replay
        .keypacks
        .iter()
        .filter(|p| &p.server == server && p.incarnation == incarnation && p.current_quantity > 0)
        .collect()
}

/// Compares the ledger's view of `server` with its export.
pub fn reconcile(
    replay: &Replay,
    server: &ServerName,
    observed: &[ObservedKeypack],
    licenses: Option<&[ObservedLicense]>,
) -> Vec<Comparison> {
    let ledger = packs_on(replay, server);
    let mut report = Vec::new();
    for pair in pair(&ledger, observed) {
        let expected = pair.ledger;
        let seen = pair.observed;
        let expected_issued = expected.map(|p| issued_in_database(replay, p));
        let verdict = match (expected, seen) {
            (Some(_), None) => Verdict::MissingOnServer,
            (None, _) => Verdict::NotInLedger,
            (Some(e), Some(o)) if e.current_quantity != o.total => Verdict::QuantityDiffers,
            (Some(_), Some(o)) if expected_issued != Some(o.issued) => Verdict::IssuedDiffers,
            _ => Verdict::Match,
        };
        report.push(Comparison {
            kind: "keypack",
            keypack: expected.map(|p| p.keypack.clone()),
            wmi_keypack_id: seen.map(|o| o.keypack_id).or(expected.and_then(|p| p.wmi_keypack_id)),
            holder: None,
            product_version: expected
                .map(|p| p.product_version)
                .or(seen.map(|o| o.product_version)),
            cal_type: expected.map(|p| p.cal_type).or(seen.map(|o| o.cal_type)),
            matched_by: pair.matched_by,
            expected_total: expected.map(|p| p.current_quantity),
            observed_total: seen.map(|o| o.total),
            expected_issued,
            observed_issued: seen.map(|o| o.issued),
            expected_available: expected
                .zip(expected_issued)
                .map(|(p, issued)| p.current_quantity.saturating_sub(issued)),
            observed_available: seen
                .map(|o| o.available.unwrap_or(o.total.saturating_sub(o.issued))),
            verdict,
            note: expected.and_then(|p| restore_note(replay, p)),
        });
    }
    if let Some(licenses) = licenses {
        report.extend(compare_holders(replay, server, licenses));
    }
    report
}

/// The per-device CALs the ledger shows available on `server` at the judged time: installed
/// and not issued, over its current packs.
pub fn available_per_device(replay: &Replay, server: &ServerName) -> u64 {
    packs_on(replay, server)
        .into_iter()
        .filter(|p| p.cal_type == caltrail_events::CalType::PerDevice)
        .map(|p| p.current_quantity.saturating_sub(issued_in_database(replay, p)))
        .sum()
}

/// The CALs of a pack the license server's database holds as issued at the judged time: not
/// revoked, not cleared, and not past an expiry an event gave. The default lifetimes are left
/// out here: they bound how long the rules count use when renewals go unrecorded, while the
/// server's database keeps a CAL that its holder renews without the ledger hearing of it.
fn issued_in_database(replay: &Replay, pack: &KeypackRow) -> u64 {
    let at = replay.active_at;
    let issued = replay
        .cals
        .iter()
        .filter(|c| {
            replay.strings.get(c.keypack) == pack.keypack
                && c.revoked_at.is_none()
                && c.cleared_at.is_none()
                && c.issued_at <= at
                && c.expires_at_given.is_none_or(|t| t > at)
        })
        .count() as u64;
    issued.min(pack.current_quantity)
}

/// What the last restore of the pack's server did to it, in words an admin acts on.
fn restore_note(replay: &Replay, pack: &KeypackRow) -> Option<String> {
    let restore = replay.restores.iter().rev().find(|r| r.keypack == pack.keypack)?;
    let day = restore.at.datetime().format("%Y-%m-%d");
    let backup = restore.backup_taken_at.datetime().format("%Y-%m-%d");
    let mut notes = Vec::new();
    if pack.resurrected > 0 {
        notes.push(format!(
            "back since the restore of {day} (backup of {backup}) although {} CALs were migrated away or removed after the backup: remove them again",
            pack.resurrected
        ));
    }
    let owed = replay.debts.iter().find(|d| {
        d.server == pack.server
            && d.incarnation == pack.incarnation
            && d.agreement == pack.agreement
            && d.requirement == pack.entitlement_version()
            && d.cal_type == pack.cal_type
    });
    if let Some(debt) = owed {
        notes.push(format!(
            "the restore of {day} lost {} unissued CALs; {} {} {} CALs of {} are still owed to the server: the Clearinghouse must re-issue them",
            restore.unissued_lost,
            debt.owed,
            debt.requirement,
            debt.cal_type,
            debt.agreement
        ));
    }
    (!notes.is_empty()).then(|| notes.join("; "))
}

fn compare_holders(
    replay: &Replay,
    server: &ServerName,
    licenses: &[ObservedLicense],
) -> Vec<Comparison> {
    let ledger: Vec<_> = replay
        .cals
        .iter()
        .filter(|c| {
            replay.strings.get(c.server) == server.as_str()
                && c.active
                && c.cal_type == Some(CalType::PerDevice)
        })
        .collect();
    let held: Vec<_> = licenses.iter().filter(|l| l.status.is_held()).collect();
    let observed_holders: HashSet<String> = held.iter().map(|l| l.holder.to_lowercase()).collect();
    let holder = |cal: &CalRow| replay.strings.get(cal.holder);
    let ledger_holders: HashSet<String> = ledger.iter().map(|c| holder(c).to_lowercase()).collect();
    let mut report = Vec::new();
    let blank = |holder: String, verdict: Verdict| Comparison {
        kind: "cal",
        keypack: None,
        wmi_keypack_id: None,
        holder: Some(holder),
        product_version: None,
        cal_type: Some(CalType::PerDevice),
        matched_by: None,
        expected_total: None,
        observed_total: None,
        expected_issued: None,
        observed_issued: None,
        expected_available: None,
        observed_available: None,
        verdict,
        note: None,
    };
    for cal in &ledger {
        if !observed_holders.contains(&holder(cal).to_lowercase()) {
            let mut row = blank(holder(cal).to_owned(), Verdict::MissingOnServer);
            row.keypack = Some(replay.strings.get(cal.keypack).to_owned());
            row.product_version = cal.product_version;
            report.push(row);
        }
    }
    for license in &held {
        if !ledger_holders.contains(&license.holder.to_lowercase()) {
            let mut row = blank(license.holder.clone(), Verdict::NotInLedger);
            row.wmi_keypack_id = Some(license.keypack_id);
            report.push(row);
        }
    }
    report
}

/// Where the agreement of an imported pack comes from.
#[derive(Debug, Clone)]
pub enum AgreementSource {
    One(Name),
    /// `KeyPackId=agreement` or `version/cal_type=agreement` lines.
    Map(Vec<(String, Name)>),
}

impl AgreementSource {
    /// Reads a map file: one `KEY=AGREEMENT` a line, `#` comments and blank lines skipped.
    pub fn parse_map(text: &str) -> Result<AgreementSource, String> {
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (key, agreement) = line.split_once('=').ok_or_else(|| {
                format!("line {}: expected KEYPACKID=AGREEMENT or VERSION/CAL_TYPE=AGREEMENT, got {line:?}", i + 1)
            })?;
            let agreement = Name::parse(agreement.trim())
                .map_err(|m| format!("line {}: agreement {m}", i + 1))?;
            entries.push((key.trim().to_owned(), agreement));
        }
        Ok(AgreementSource::Map(entries))
    }

    fn for_pack(&self, pack: &ObservedKeypack) -> Option<&Name> {
        match self {
            AgreementSource::One(name) => Some(name),
            AgreementSource::Map(entries) => {
                let by_id = pack.keypack_id.to_string();
                let by_kind = format!("{}/{}", pack.product_version, pack.cal_type);
                entries
                    .iter()
                    .find(|(k, _)| *k == by_id)
                    .or_else(|| entries.iter().find(|(k, _)| *k == by_kind))
                    .map(|(_, name)| name)
            }
        }
    }
}

/// An opening activation for `import_events` to write, for a server the ledger holds no
/// activation of (EVENTS.md, `server.activated`, `opening`).
#[derive(Debug, Clone)]
pub struct OpeningActivation {
    /// When the activation is known to hold from; `None`: the earliest `IssueDate` of the
    /// export, else the import's time.
    pub at: Option<Timestamp>,
    pub os_version: caltrail_events::ProductVersion,
    pub license_server_id: caltrail_events::LicenseServerId,
    pub method: caltrail_events::ActivationMethod,
}

/// Whether the ledger holds no activation of `server`: an import then needs an opening one,
/// or every CAL it brings would read as issued by a server never activated.
pub fn needs_opening_activation(replay: &Replay, server: &ServerName) -> bool {
    let activated = |row: &caltrail_replay::ServerRow| {
        row.server == *server && (row.activated_at.is_some() || row.reactivated_at.is_some())
    };
    !(replay.servers.get(server).is_some_and(activated)
        || replay.past_servers.iter().any(activated))
}

/// The events that bring the ledger's view of `server` to what the export shows: packs it does
/// not have, CALs it does not know of, and revocations. Ids are derived from the server and the
/// WMI ids, so importing the same export again gives events the ledger already has.
pub fn import_events(
    replay: &Replay,
    server: &ServerName,
    observed: &[ObservedKeypack],
    licenses: &[ObservedLicense],
    agreements: &AgreementSource,
    at: Timestamp,
    opening: Option<&OpeningActivation>,
) -> Result<Vec<Event>, String> {
    let ledger = packs_on(replay, server);
    let pairs = pair(&ledger, observed);
    let mut events = Vec::new();
    if let Some(opening) = opening {
        let earliest_issue = licenses.iter().filter_map(|l| l.issued_at).min();
        let activated_at = opening.at.or(earliest_issue).unwrap_or(at);
        events.push(build(json!({
            "id": import_id(server, "activated", "opening")?,
            "type": "server.activated",
            "at": activated_at.to_rfc3339(),
            "note": "opening balance recorded by import: activated on or before this time",
            "data": {
                "server": server.as_str(),
                "license_server_id": opening.license_server_id.as_str(),
                "os_version": opening.os_version.as_str(),
                "method": opening.method.as_str(),
                "opening": true,
            }
        }))?);
    }
    // The ledger's name of the pack behind each KeyPackId of the export.
    let mut names: Vec<(u32, String)> = Vec::new();
    for pair in &pairs {
        let Some(pack) = pair.observed else { continue };
        if let Some(ledger_pack) = pair.ledger {
            names.push((pack.keypack_id, ledger_pack.keypack.clone()));
            continue;
        }
        let agreement = agreements.for_pack(pack).ok_or_else(|| {
            format!(
                "{}: no agreement for KeyPackId {} ({} {}) in the agreement map",
                pack.place, pack.keypack_id, pack.product_version, pack.cal_type
            )
        })?;
        if pack.total == 0 || pack.total > 1_000_000 {
            return Err(format!(
                "{}, column TotalLicenses: {} cannot be recorded (a pack holds 1 to 1000000 CALs)",
                pack.place, pack.total
            ));
        }
        let name = format!("{}/{}", server.as_str(), pack.keypack_id);
        events.push(build(json!({
            "id": import_id(server, "keypack", pack.keypack_id)?,
            "type": "keypack.installed",
            "at": at.to_rfc3339(),
            "note": "imported from a Win32_TSLicenseKeyPack export",
            "data": {
                "server": server.as_str(),
                "keypack": name,
                "agreement": agreement.as_str(),
                "product_version": pack.product_version.as_str(),
                "cal_type": pack.cal_type.as_str(),
                "quantity": pack.total,
                "wmi_keypack_id": pack.keypack_id,
            }
        }))?);
        names.push((pack.keypack_id, name));
    }
    // A CAL is known when the ledger holds it, not revoked or cleared, with the same expiry: a
    // renewal moves the expiry and is imported as a new issue.
    let known_cal = |keypack: &str, license: &ObservedLicense| {
        replay.cals.iter().any(|c| {
            replay.strings.get(c.server) == server.as_str()
                && replay.strings.get(c.keypack) == keypack
                && replay.strings.get(c.holder).to_lowercase() == license.holder.to_lowercase()
                && c.revoked_at.is_none()
                && c.cleared_at.is_none()
                && match license.expires_at {
                    Some(expires_at) => c.expires_at == Some(expires_at),
                    None => c.active,
                }
        })
    };
    for license in licenses {
        let Some((_, keypack)) = names.iter().find(|(id, _)| *id == license.keypack_id) else {
            return Err(format!(
                "{}, column KeyPackId: {} is not a pack of the key pack export",
                license.place, license.keypack_id
            ));
        };
        let known = known_cal(keypack, license);
        if license.status.is_held() && !known {
            let mut data = json!({
                "server": server.as_str(),
                "keypack": keypack,
                "holder": license.holder,
                "temporary": license.status == LicenseStatus::Temporary,
            });
            if let Some(hardware_id) = &license.hardware_id {
                data["hardware_id"] = json!(hardware_id);
            }
            if let Some(expires_at) = license.expires_at {
                data["expires_at"] = json!(expires_at.to_rfc3339());
            }
            events.push(build(json!({
                "id": license_event_id(server, license)?,
                "type": "cal.issued",
                "at": license.issued_at.unwrap_or(at).to_rfc3339(),
                "note": "imported from a Win32_TSIssuedLicense export",
                "data": data,
            }))?);
        } else if license.status == LicenseStatus::Revoked && known {
            events.push(build(json!({
                "id": import_id(server, "revoked", license.license_id)?,
                "type": "cal.revoked",
                "at": at.to_rfc3339(),
                "note": "imported from a Win32_TSIssuedLicense export",
                "data": {"server": server.as_str(), "keypack": keypack, "holder": license.holder},
            }))?);
        }
    }
    Ok(events)
}

/// A license keeps its `LicenseId` when renewed; its expiry tells one issue from the next.
fn license_event_id(server: &ServerName, license: &ObservedLicense) -> Result<String, String> {
    match license.expires_at {
        Some(t) => import_id(
            server,
            "license",
            format!("{}:{}", license.license_id, t.datetime().format("%Y%m%dT%H%M%SZ")),
        ),
        None => import_id(server, "license", license.license_id.to_string()),
    }
}

pub(crate) fn import_id(
    server: &ServerName,
    what: &str,
    id: impl std::fmt::Display,
) -> Result<String, String> {
    let text = format!("import:{}:{what}:{id}", server.as_str());
    if text.len() > 128 {
        return Err(format!("the server name {} is too long for an event id", server.as_str()));
    }
    Ok(text)
}

pub(crate) fn build(value: serde_json::Value) -> Result<Event, String> {
    Event::from_json(&value.to_string()).map_err(|e| format!("an imported event is not valid: {e}"))
}
