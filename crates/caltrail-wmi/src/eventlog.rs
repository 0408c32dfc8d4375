//! The license server's own event log (the `Microsoft-Windows-TerminalServices-Licensing` and
//! `TermServLicensing` providers), the evidence admins already have: read from `.evtx` files,
//! `wevtutil qe /f:xml` and `Get-WinEvent | Export-Csv` (or `ConvertTo-Json`), and set beside
//! the ledger (`eventlog_findings`).

use caltrail_events::{ServerName, Timestamp};
use caltrail_replay::Replay;

use crate::dates::parse_date;
use crate::error::ExportError;
use crate::records::{ExportFormat, records_of_text};

/// The licensing events caltrail reads, with what each says.
pub const KNOWN_EVENTS: &[(u32, &str)] = &[
    (4, "the license server was activated"),
    (17, "the license server's certificate: a problem was reported"),
    (18, "the license server's certificate: a problem was reported"),
    (20, "the license server is running out of CALs"),
    (21, "the license server has no permanent CALs left"),
    (81, "a revocation was refused: the limit of revocations was reached"),
    (89, "migration: the CALs were removed from the source license server"),
    (90, "migration: removing the CALs from the source license server failed"),
    (91, "migration: the source license server's OS cannot delete CALs"),
    (92, "migration: the source license server could not be reached"),
    (93, "migration: the source license server is no longer functioning"),
];

/// What an event id says, for the ids caltrail reads.
pub fn meaning(event_id: u32) -> Option<&'static str> {
    KNOWN_EVENTS.iter().find(|(id, _)| *id == event_id).map(|(_, m)| *m)
}

fn is_licensing_provider(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    name.contains("terminalservices-licensing") || name == "termservlicensing"
}

/// One licensing event the log holds.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedEvent {
    /// Where it is in the file (`event 3 (line 12)`, `record 17`, `row 2 (line 3)`).
    pub place: String,
    /// When it was logged.
    pub time: Timestamp,
    /// Its event ID (4, 17, 18, 20, 21, 81, 89 to 93).
    pub event_id: u32,
    /// The provider that wrote it.
    pub provider: String,
    /// The computer that logged it.
    pub computer: String,
    /// The event's data: named fields, or `param1`, `param2` ... in order.
    pub fields: Vec<(String, String)>,
    /// The rendered message, where the export has one.
    pub message: Option<String>,
}

/// An event log, read.
#[derive(Debug, Clone)]
pub struct EventLog {
    /// `evtx`, `xml`, `csv` or `json`.
    pub format: &'static str,
    /// The licensing events of the ids in `KNOWN_EVENTS`, in the file's order.
    pub events: Vec<LoggedEvent>,
    /// Events of other providers or ids, left out.
    pub left_out: usize,
}

/// Reads an event log in any of the forms above, telling them apart by their first bytes.
/// `date_format` names the culture format of a CSV export's `TimeCreated`, as for the WMI
/// exports.
pub fn read_eventlog(bytes: &[u8], date_format: Option<&str>) -> Result<EventLog, ExportError> {
    let (format, all) = if bytes.starts_with(b"ElfFile\0") {
        ("evtx", read_evtx(bytes)?)
    } else {
        let text = crate::records::decode_text(bytes)?;
        if text.trim_start().starts_with('<') {
            ("xml", read_xml(&text, None)?)
        } else {
            let (format, records) = records_of_text(&text)?;
            let format = if format == ExportFormat::Json { "json" } else { "csv" };
            (format, read_table(&records, date_format)?)
        }
    };
    let total = all.len();
    let events: Vec<LoggedEvent> = all
        .into_iter()
        .filter(|e| is_licensing_provider(&e.provider) && meaning(e.event_id).is_some())
        .collect();
    Ok(EventLog { format, left_out: total - events.len(), events })
}

fn invalid(detail: String) -> ExportError {
    ExportError::EventLog { detail }
}

fn read_evtx(bytes: &[u8]) -> Result<Vec<LoggedEvent>, ExportError> {
    let mut parser = evtx::EvtxParser::from_buffer(bytes.to_vec())
        .map_err(|e| invalid(format!("not a readable .evtx file: {e}")))?;
    let mut events = Vec::new();
    for record in parser.records() {
        let record = record.map_err(|e| invalid(format!("a record cannot be read: {e}")))?;
        let place = format!("record {}", record.event_record_id);
        events.extend(read_xml(&record.data, Some(&place))?);
    }
    Ok(events)
}

/// `wevtutil qe /f:xml` writes one `<Event>` after another with no root element (`/e:Events`
/// adds one); both are read, as is the XML of one `.evtx` record (`place` names it).
fn read_xml(text: &str, place: Option<&str>) -> Result<Vec<LoggedEvent>, ExportError> {
    let body = match text.trim_start().strip_prefix("<?xml") {
        Some(rest) => rest.split_once("?>").map_or("", |(_, after)| after),
        None => text,
    };
    // The wrapper adds no line, so positions stay the file's (less the declaration's lines).
    let declaration_lines = text[..text.len() - body.len()].matches('\n').count();
    let wrapped = format!("<caltrail-log>{body}</caltrail-log>");
    let document = roxmltree::Document::parse(&wrapped).map_err(|e| {
        let at = place.map_or_else(
            || format!("line {}", e.pos().row as usize + declaration_lines),
            str::to_owned,
        );
        invalid(format!("not valid XML at {at}: {e}"))
    })?;
    let mut events = Vec::new();
    for (i, event) in
        document.descendants().filter(|n| n.has_tag_name("Event") && n.is_element()).enumerate()
    {
        let line = document.text_pos_at(event.range().start).row as usize + declaration_lines;
        let place = match place {
            Some(place) => place.to_owned(),
            None => format!("event {} (line {line})", i + 1),
        };
        let system = child(event, "System")
            .ok_or_else(|| invalid(format!("{place}: no <System> element")))?;
        let provider = child(system, "Provider")
            .and_then(|p| p.attribute("Name"))
            .unwrap_or_default()
            .to_owned();
        let id_text = child(system, "EventID").and_then(|n| n.text()).unwrap_or_default();
        let event_id = id_text
            .trim()
            .parse::<u32>()
            .map_err(|_| invalid(format!("{place}, EventID: not a number: {id_text:?}")))?;
        let time_text = child(system, "TimeCreated")
            .and_then(|n| n.attribute("SystemTime"))
            .ok_or_else(|| invalid(format!("{place}, TimeCreated: SystemTime is missing")))?;
        let time = parse_date(time_text, None)
            .map_err(|m| invalid(format!("{place}, TimeCreated: {m}")))?;
        let computer =
            child(system, "Computer").and_then(|n| n.text()).unwrap_or_default().trim().to_owned();
        let mut fields = Vec::new();
        if let Some(data) = child(event, "EventData") {
            for (k, item) in data.children().filter(roxmltree::Node::is_element).enumerate() {
                let name =
                    item.attribute("Name").map_or_else(|| format!("param{}", k + 1), str::to_owned);
                fields.push((name, item.text().unwrap_or_default().trim().to_owned()));
            }
        }
        if let Some(user_data) = child(event, "UserData") {
            for leaf in user_data
                .descendants()
                .filter(|n| n.is_element() && !n.children().any(|c| c.is_element()))
            {
                fields.push((
                    leaf.tag_name().name().to_owned(),
                    leaf.text().unwrap_or_default().trim().to_owned(),
                ));
            }
        }
        let message = child(event, "RenderingInfo")
            .and_then(|r| child(r, "Message"))
            .and_then(|m| m.text())
            .map(|m| m.trim().to_owned());
        events.push(LoggedEvent { place, time, event_id, provider, computer, fields, message });
    }
    Ok(events)
}

/// The first child element of `parent` named `name`, whatever its namespace.
fn child<'a, 'input>(
    parent: roxmltree::Node<'a, 'input>,
    name: &str,
) -> Option<roxmltree::Node<'a, 'input>> {
    parent.children().find(|n| n.is_element() && n.tag_name().name() == name)
}

/// `Get-WinEvent ... | Export-Csv` (or `ConvertTo-Json`): `Id`, `TimeCreated`, `MachineName`,
/// `ProviderName`, `Message`. The structured data does not survive `Export-Csv`; the message
/// does.
fn read_table(
    records: &[crate::records::Record],
    date_format: Option<&str>,
) -> Result<Vec<LoggedEvent>, ExportError> {
    let mut events = Vec::new();
    for record in records {
        let id_column = if record.has_column("Id") { "Id" } else { "EventID" };
        let id = record.required_integer(id_column)?;
        let event_id = u32::try_from(id)
            .map_err(|_| record.error(id_column, format!("not an event id: {id}")))?;
        let time_text = record
            .text("TimeCreated")
            .ok_or_else(|| record.error("TimeCreated", "is empty or missing"))?;
        let time =
            parse_date(&time_text, date_format).map_err(|m| record.error("TimeCreated", m))?;
        events.push(LoggedEvent {
            place: record.to_string(),
            time,
            event_id,
            provider: record.text("ProviderName").unwrap_or_default(),
            computer: record.text("MachineName").unwrap_or_default().trim().to_owned(),
            fields: Vec::new(),
            message: record.text("Message").map(|m| m.trim().to_owned()),
        });
    }
    Ok(events)
}

/// The ledger's server a log's computer name is: the same name, else the one server whose
/// first label it is (`LS01` for `ls01.contoso.com`), ignoring case.
pub fn server_of(replay: &Replay, computer: &str) -> Option<ServerName> {
    let computer = computer.to_ascii_lowercase();
    let names: Vec<&ServerName> = replay.servers.keys().collect();
    if let Some(name) = names.iter().find(|n| n.as_str().to_ascii_lowercase() == computer) {
        return Some((*name).clone());
    }
    let label = computer.split('.').next().unwrap_or_default();
    let matching: Vec<&&ServerName> = names
        .iter()
        .filter(|n| n.as_str().to_ascii_lowercase().split('.').next() == Some(label))
        .collect();
    match matching.as_slice() {
        [one] => Some((**one).clone()),
        _ => None,
    }
}

/// What the log says that the ledger does not, for one logged event.
#[derive(Debug, Clone, PartialEq)]
pub struct LogFinding {
    /// Where the logged event is in the file.
    pub place: String,
    /// When it was logged, in UTC.
    pub time: Timestamp,
    /// Its event ID.
    pub event_id: u32,
    /// The computer that logged it.
    pub computer: String,
    /// The ledger's server of that name, if it has one.
    pub server: Option<ServerName>,
    /// `match`, `not_in_ledger`, `before_ledger`, `contradicts_ledger`, `unknown_server`.
    pub verdict: &'static str,
    /// What to record in the ledger, in a sentence; empty for a match.
    pub what_to_record: String,
}

/// How far a logged time and the ledger's `at` may be apart and still be one happening: the
/// times of a CSV export are local time read as UTC, and a record may be rounded.
const SAME_HAPPENING_MICROS: i64 = 24 * 3600 * 1_000_000;

fn near(a: Timestamp, b: Timestamp) -> bool {
    (a.micros() - b.micros()).abs() <= SAME_HAPPENING_MICROS
}

/// Sets each licensing event the ledger should reflect beside it: removals (89) and migrations
/// (92, 93) the ledger lacks, an activation (4) before the ledger's first, revocations refused at
/// the limit (81), and "no permanent CALs left" (21) while the ledger shows CALs available
/// (`available_at(server, time)`: the per-device CALs the ledger shows available then). Events
/// that call for no record (17, 18, 20, 90, 91) are listed by `read_eventlog` only.
pub fn eventlog_findings(
    replay: &Replay,
    events: &[LoggedEvent],
    available_at: &mut dyn FnMut(&ServerName, Timestamp) -> Result<u64, String>,
) -> Result<Vec<LogFinding>, String> {
    let mut findings = Vec::new();
    for logged in events.iter().filter(|e| matches!(e.event_id, 4 | 21 | 81 | 89 | 92 | 93)) {
        let server = server_of(replay, &logged.computer);
        let finding = |verdict: &'static str, what: String| LogFinding {
            place: logged.place.clone(),
            time: logged.time,
            event_id: logged.event_id,
            computer: logged.computer.clone(),
            server: server.clone(),
            verdict,
            what_to_record: what,
        };
        let Some(name) = &server else {
            findings.push(finding(
                "unknown_server",
                format!(
                    "{} is no license server the ledger knows: record its server.activated, or name it as the ledger does",
                    logged.computer
                ),
            ));
            continue;
        };
        let at = logged.time.to_rfc3339();
        findings.push(match logged.event_id {
            89 => {
                // Removals, and migrations that took the CALs off their source, lower the
                // source's packs.
                let removed = replay
                    .quantity_changes
                    .iter()
                    .any(|q| &q.server == name && q.delta < 0 && near(q.at, logged.time));
                if removed {
                    finding("match", String::new())
                } else {
                    finding(
                        "not_in_ledger",
                        format!(
                            "record source.cals_removed on {} at {at} (or mark the migration's source_removed): the server removed migrated CALs",
                            name.as_str()
                        ),
                    )
                }
            }
            92 | 93 => {
                if replay.migrations.iter().any(|m| &m.target == name && near(m.at, logged.time)) {
                    finding("match", String::new())
                } else {
                    let how = if logged.event_id == 92 {
                        "\"source_reachable\": false"
                    } else {
                        "\"reason\": \"source_not_functioning\""
                    };
                    finding(
                        "not_in_ledger",
                        format!(
                            "record cals.migrated to {} at {at} ({how}); then source.cals_removed on the source once its CALs are gone",
                            name.as_str()
                        ),
                    )
                }
            }
            4 => {
                let first = replay
                    .past_servers
                    .iter()
                    .chain(replay.servers.get(name))
                    .filter(|s| &s.server == name)
                    .filter_map(|s| s.activated_at)
                    .min();
                match first {
                    Some(first) if first.micros() <= logged.time.micros() + SAME_HAPPENING_MICROS => {
                        finding("match", String::new())
                    }
                    Some(first) => finding(
                        "before_ledger",
                        format!(
                            "record server.activated of {} at {at}: the ledger's first activation is at {}",
                            name.as_str(),
                            first.to_rfc3339()
                        ),
                    ),
                    None => finding(
                        "not_in_ledger",
                        format!("record server.activated of {} at {at}", name.as_str()),
                    ),
                }
            }
            81 => {
                let revoked = replay
                    .revocations
                    .iter()
                    .find(|r| &r.server == name && near(r.at, logged.time));
                match revoked {
                    Some(revocation) => finding(
                        "contradicts_ledger",
                        format!(
                            "the server refused a revocation at {at} (the limit was reached), but the ledger records a revocation on {} then ({}): retract it with event.retracted if it is that one",
                            name.as_str(),
                            revocation.id
                        ),
                    ),
                    None => finding("match", String::new()),
                }
            }
            21 => {
                let available = available_at(name, logged.time)?;
                if available == 0 {
                    finding("match", String::new())
                } else {
                    finding(
                        "contradicts_ledger",
                        format!(
                            "the server had no permanent CALs left at {at}, but the ledger shows {available} per-device CALs available on {}: record the issues, removals or migrations it lacks",
                            name.as_str()
                        ),
                    )
                }
            }
            _ => unreachable!("filtered above"),
        });
    }
    Ok(findings)
}
