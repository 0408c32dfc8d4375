//! `caltrail reconcile` and `caltrail import`: reading a license server's PowerShell exports and
//! setting them beside the ledger. File reading and printing only; the comparison is in
//! `caltrail-wmi`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use caltrail_events::{ActivationMethod, LicenseServerId, ProductVersion, ServerName, Timestamp};
use caltrail_wmi::{AgreementSource, Comparison, ObservedLicense, Verdict};

use crate::Outcome;
use crate::output::{Cell, Format, Table};
use crate::report::{AsOfArgs, replay};
use crate::timearg::parse_time;

#[derive(Debug, clap::Args)]
pub(crate) struct ExportFiles {
    /// The license server the export comes from.
    #[arg(long, value_parser = |s: &str| ServerName::parse(s))]
    server: Option<ServerName>,
    /// Win32_TSLicenseKeyPack exported with Export-Csv, ConvertTo-Csv or ConvertTo-Json.
    #[arg(long, value_name = "FILE")]
    keypacks: Option<PathBuf>,
    /// Win32_TSIssuedLicense exported the same way.
    #[arg(long, value_name = "FILE")]
    issued: Option<PathBuf>,
    /// The chrono format of culture-formatted dates when they cannot be told apart, such as
    /// "%d/%m/%Y %H:%M:%S" for en-GB.
    #[arg(long, value_name = "FORMAT")]
    date_format: Option<String>,
}

struct Exports {
    server: ServerName,
    keypacks: Vec<caltrail_wmi::ObservedKeypack>,
    licenses: Option<Vec<ObservedLicense>>,
}

impl ExportFiles {
    fn server(&self) -> anyhow::Result<&ServerName> {
        self.server.as_ref().context("give --server, the license server the export comes from")
    }
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn read_exports(files: &ExportFiles) -> anyhow::Result<Exports> {
    let format = files.date_format.as_deref();
    let server = files.server()?.clone();
    let path = files.keypacks.as_ref().context("give --keypacks, the key pack export")?;
    let keypacks = caltrail_wmi::read_keypacks(&read_file(path)?, format)
        .with_context(|| path.display().to_string())?;
    let licenses = match &files.issued {
        Some(path) => {
            let (_, licenses) = caltrail_wmi::read_licenses(&read_file(path)?, format)
                .with_context(|| path.display().to_string())?;
            Some(licenses)
        }
        None => None,
    };
    Ok(Exports { server, keypacks: keypacks.keypacks, licenses })
}

/// Compare a license server's export with the ledger; exit 1 unless everything matches.
///
/// Per pack: what the ledger expects (total, issued, available), what the export shows, and a
/// verdict: match, missing_on_server, not_in_ledger, quantity_differs or issued_differs. With
/// --issued, holders of per-device CALs found on one side only. After a restore, the note says
/// which packs are back although migrated or removed, and what the Clearinghouse must re-issue.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail reconcile --server ls07.litware.com --keypacks keypacks.csv --as-of 2025-02-01T01:00:00Z\n  caltrail reconcile --server ls07.litware.com --keypacks keypacks.csv --issued issued.csv"
)]
pub(crate) struct ReconcileArgs {
    #[command(flatten)]
    files: ExportFiles,
    /// The license server's event log (.evtx, wevtutil qe /f:xml, or Get-WinEvent exported
    /// with Export-Csv or ConvertTo-Json) instead of its WMI exports: the licensing events the
    /// ledger should reflect, and what to record for each.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keypacks", "issued"])]
    eventlog: Option<PathBuf>,
    #[command(flatten)]
    as_of: AsOfArgs,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(crate) fn reconcile(
    db: &Path,
    args: &ReconcileArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    if let Some(path) = &args.eventlog {
        return reconcile_eventlog(db, path, args, out);
    }
    let exports = read_exports(&args.files)?;
    let state = replay(db, &args.as_of, false)?;
    let report = caltrail_wmi::reconcile(
        &state,
        &exports.server,
        &exports.keypacks,
        exports.licenses.as_deref(),
    );
    let clean = report.iter().all(|c| c.verdict == Verdict::Match);
    comparison_table(&report).write(args.format, out)?;
    Ok(if clean { Outcome::Clean } else { Outcome::Found })
}

fn read_eventlog(path: &Path, date_format: Option<&str>) -> anyhow::Result<caltrail_wmi::EventLog> {
    caltrail_wmi::read_eventlog(&read_file(path)?, date_format)
        .with_context(|| path.display().to_string())
}

/// `reconcile --eventlog`: each licensing event beside the ledger.
fn reconcile_eventlog(
    db: &Path,
    path: &Path,
    args: &ReconcileArgs,
    out: &mut dyn Write,
) -> anyhow::Result<Outcome> {
    let log = read_eventlog(path, args.files.date_format.as_deref())?;
    let state = replay(db, &args.as_of, false)?;
    // "No permanent CALs left" is judged against what the ledger showed at that moment.
    let mut available_at = |server: &ServerName, t: Timestamp| -> Result<u64, String> {
        let then = replay(db, &args.as_of.at_time(t), false).map_err(|e| format!("{e:#}"))?;
        Ok(caltrail_wmi::available_per_device(&then, server))
    };
    // With --server, only that server's events: a log gathered from several servers is read
    // for one of them.
    let events: Vec<caltrail_wmi::LoggedEvent> = match &args.files.server {
        Some(server) => log
            .events
            .into_iter()
            .filter(|e| caltrail_wmi::server_of(&state, &e.computer).as_ref() == Some(server))
            .collect(),
        None => log.events,
    };
    let findings = caltrail_wmi::eventlog_findings(&state, &events, &mut available_at)
        .map_err(anyhow::Error::msg)?;
    let mut table = Table::new(&[
        "time",
        "event_id",
        "computer",
        "server",
        "place",
        "verdict",
        "what_to_record",
    ]);
    for f in &findings {
        table.rows.push(vec![
            Cell::from(f.time.to_rfc3339()),
            Cell::from(u64::from(f.event_id)),
            Cell::from(f.computer.clone()),
            Cell::from(f.server.as_ref().map(|s| s.as_str().to_owned())),
            Cell::from(f.place.clone()),
            Cell::from(f.verdict),
            Cell::from(f.what_to_record.clone()),
        ]);
    }
    table.write(args.format, out)?;
    Ok(if findings.iter().all(|f| f.verdict == "match") { Outcome::Clean } else { Outcome::Found })
}

/// List the licensing events of a license server's event log.
///
/// Reads .evtx files, `wevtutil qe ... /f:xml` (with or without /e:Events) and
/// `Get-WinEvent | Export-Csv` or `ConvertTo-Json`, and lists the events of the
/// TerminalServices-Licensing and TermServLicensing providers caltrail knows: activation (4),
/// certificates (17, 18), running out (20, 21), revocation refused at the limit (81) and
/// migrations (89 to 93), with their time, computer and data. Times without an offset are read
/// as UTC.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail eventlog licensing.evtx\n  caltrail eventlog licensing.xml --format csv"
)]
pub(crate) struct EventlogArgs {
    /// The event log file.
    file: PathBuf,
    /// The chrono format of a CSV export's culture-formatted TimeCreated when it cannot be
    /// told apart, such as "%d/%m/%Y %H:%M:%S" for en-GB.
    #[arg(long, value_name = "FORMAT")]
    date_format: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

pub(crate) fn eventlog(args: &EventlogArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let log = read_eventlog(&args.file, args.date_format.as_deref())?;
    let mut table =
        Table::new(&["time", "event_id", "provider", "computer", "meaning", "fields", "message"]);
    for e in &log.events {
        let fields: Vec<String> = e.fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
        table.rows.push(vec![
            Cell::from(e.time.to_rfc3339()),
            Cell::from(u64::from(e.event_id)),
            Cell::from(e.provider.clone()),
            Cell::from(e.computer.clone()),
            Cell::from(caltrail_wmi::meaning(e.event_id)),
            Cell::from(fields.join("; ")),
            Cell::from(e.message.clone()),
        ]);
    }
    table.write(args.format, out)?;
    Ok(Outcome::Clean)
}

fn comparison_table(report: &[Comparison]) -> Table {
    let mut table = Table::new(&[
        "kind",
        "keypack",
        "wmi_keypack_id",
        "holder",
        "product_version",
        "cal_type",
        "matched_by",
        "expected_total",
        "observed_total",
        "expected_issued",
        "observed_issued",
        "expected_available",
        "observed_available",
        "verdict",
        "note",
    ]);
    for c in report {
        table.rows.push(vec![
            Cell::from(c.kind),
            Cell::from(c.keypack.clone()),
            Cell::from(c.wmi_keypack_id.map(u64::from)),
            Cell::from(c.holder.clone()),
            Cell::from(c.product_version.map(caltrail_events::ProductVersion::as_str)),
            Cell::from(c.cal_type.map(caltrail_events::CalType::as_str)),
            Cell::from(c.matched_by),
            Cell::from(c.expected_total),
            Cell::from(c.observed_total),
            Cell::from(c.expected_issued),
            Cell::from(c.observed_issued),
            Cell::from(c.expected_available),
            Cell::from(c.observed_available),
            Cell::from(c.verdict.as_str()),
            Cell::from(c.note.clone()),
        ]);
    }
    table
}

/// Write, as JSON Lines for `caltrail append`, the events that bring the ledger's view of a
/// server to what its export shows.
///
/// Packs the ledger lacks become keypack.installed (the agreement from --agreement or
/// --agreement-map), issued licenses it does not know become cal.issued, revoked ones it holds
/// as active become cal.revoked. Event ids come from the server and the WMI ids, so importing
/// the same export again writes nothing the ledger does not already have. Review, then append.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Agreement map lines: KEYPACKID=AGREEMENT or VERSION/CAL_TYPE=AGREEMENT, such as\n  4=EA-6543210\n  2019/per_user=EA-6543210\n\nExamples:\n  caltrail import --server ls01.contoso.com --keypacks keypacks.csv --issued issued.csv --agreement EA-6543210 > import.jsonl\n  caltrail import --ad-users ad-users.csv --domain NORTHWIND > per-user.jsonl"
)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    files: ExportFiles,
    /// Per-user CALs from Active Directory: Get-ADUser ... -Properties msTS* exported with
    /// Export-Csv, ConvertTo-Csv or ConvertTo-Json. Each filled slot (msTSManagingLS,
    /// msTSManagingLS2 to 4) is a CAL.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keypacks", "issued", "usage_report"])]
    ad_users: Option<PathBuf>,
    /// Per-user CALs from the license server's per-user usage report
    /// (Win32_TSLicenseReport, FetchReportEntries) of --server.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["keypacks", "issued"])]
    usage_report: Option<PathBuf>,
    /// Name each account DOMAIN\SamAccountName, as the license server and its usage report
    /// do (without it: the UserPrincipalName).
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// A license server ID of msTSManagingLS and the server's name, for a server the ledger
    /// holds no activation of (repeat for several).
    #[arg(long = "server-map", value_name = "ID=NAME", value_parser = |s: &str| caltrail_wmi::ServerLookup::parse_map_entry(s))]
    server_map: Vec<(String, ServerName)>,
    /// The agreement every imported pack was bought under.
    #[arg(long, conflicts_with = "agreement_map", required_unless_present_any = ["agreement_map", "ad_users", "usage_report"])]
    agreement: Option<String>,
    /// A file naming the agreement per KeyPackId or per version and CAL type.
    #[arg(long, value_name = "FILE")]
    agreement_map: Option<PathBuf>,
    /// The time recorded for imported packs and revocations, which the export does not carry
    /// (default: now). CALs keep their IssueDate.
    #[arg(long, value_parser = parse_time)]
    at: Option<Timestamp>,
    /// For a server the ledger holds no activation of, the import writes an opening
    /// activation: from this time (default: the earliest IssueDate of --issued, else --at).
    #[arg(long, value_parser = parse_time)]
    activated_at: Option<Timestamp>,
    /// The server's Windows Server version, for the opening activation.
    #[arg(long, value_name = "VERSION", value_parser = |s: &str| ProductVersion::parse(s))]
    os_version: Option<ProductVersion>,
    /// The server's License Server ID, for the opening activation.
    #[arg(long, value_name = "ID", value_parser = |s: &str| LicenseServerId::parse(s))]
    license_server_id: Option<LicenseServerId>,
    /// How the server was activated, for the opening activation, when known.
    #[arg(long, value_name = "METHOD", default_value = "automatic", value_parser = |s: &str| ActivationMethod::parse(s))]
    activation_method: ActivationMethod,
}

/// The replayed ledger an import compares with: a first import may come before anything was
/// recorded, and no ledger means an empty one.
fn state_for_import(db: &Path) -> anyhow::Result<caltrail_replay::Replay> {
    Ok(if db.exists() {
        replay(db, &AsOfArgs::latest(), false)?
    } else {
        caltrail_replay::Replay::new(caltrail_replay::AsOf::Latest, Timestamp::now(), false)
            .finish()
    })
}

/// `import --ad-users` and `import --usage-report`: per-user CALs.
fn import_per_user(db: &Path, args: &ImportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let format = args.files.date_format.as_deref();
    let state = state_for_import(db)?;
    let (cals, servers, note) = match (&args.ad_users, &args.usage_report) {
        (Some(path), _) => (
            caltrail_wmi::read_ad_users(&read_file(path)?, format, args.domain.as_deref())
                .with_context(|| path.display().to_string())?,
            caltrail_wmi::ServerLookup::by_id(&state, &args.server_map),
            "imported from Active Directory (msTS attributes)",
        ),
        (None, Some(path)) => {
            let server = caltrail_wmi::ServerLookup::One(args.files.server()?.clone());
            (
                caltrail_wmi::read_usage_report(&read_file(path)?, format)
                    .with_context(|| path.display().to_string())?,
                server,
                "imported from a per-user usage report",
            )
        }
        (None, None) => unreachable!("called for --ad-users or --usage-report"),
    };
    let path = args.ad_users.as_ref().or(args.usage_report.as_ref()).expect("invariant: matched");
    let events = caltrail_wmi::import_user_events(
        &state,
        &cals,
        &servers,
        args.at.unwrap_or_else(Timestamp::now),
        note,
    )
    .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?;
    for event in &events {
        writeln!(out, "{}", event.to_value().to_json())?;
    }
    Ok(Outcome::Clean)
}

pub(crate) fn import(db: &Path, args: &ImportArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if args.ad_users.is_some() || args.usage_report.is_some() {
        return import_per_user(db, args, out);
    }
    let agreements = match (&args.agreement, &args.agreement_map) {
        (Some(name), _) => AgreementSource::One(
            caltrail_events::Name::parse(name).map_err(|m| anyhow::anyhow!("--agreement {m}"))?,
        ),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            AgreementSource::parse_map(&text)
                .map_err(|m| anyhow::anyhow!("{}: {m}", path.display()))?
        }
        (None, None) => anyhow::bail!("give --agreement or --agreement-map"),
    };
    let exports = read_exports(&args.files)?;
    let state = state_for_import(db)?;
    let opening = if caltrail_wmi::needs_opening_activation(&state, &exports.server) {
        let missing: Vec<&str> = [
            ("--os-version", args.os_version.is_none()),
            ("--license-server-id", args.license_server_id.is_none()),
        ]
        .iter()
        .filter(|(_, missing)| *missing)
        .map(|(flag, _)| *flag)
        .collect();
        if !missing.is_empty() {
            anyhow::bail!(
                "the ledger holds no activation of {}: the import records an opening activation, which needs {} (missing: {})",
                exports.server.as_str(),
                "--os-version and --license-server-id",
                missing.join(", ")
            );
        }
        Some(caltrail_wmi::OpeningActivation {
            at: args.activated_at,
            os_version: args.os_version.expect("invariant: checked above"),
            license_server_id: args.license_server_id.clone().expect("invariant: checked above"),
            method: args.activation_method,
        })
    } else {
        None
    };
    let events = caltrail_wmi::import_events(
        &state,
        &exports.server,
        &exports.keypacks,
        exports.licenses.as_deref().unwrap_or(&[]),
        &agreements,
        args.at.unwrap_or_else(Timestamp::now),
        opening.as_ref(),
    )
    .map_err(anyhow::Error::msg)?;
    for event in &events {
        writeln!(out, "{}", event.to_value().to_json())?;
    }
    Ok(Outcome::Clean)
}
