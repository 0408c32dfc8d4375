//! `caltrail log`: the recorded events in ledger order, filtered, with a one-line summary each.

use std::io::Write;
use std::path::Path;

use caltrail_events::{EventData, EventType, ServerName, Timestamp};

use crate::Outcome;
use crate::output::{Cell, Format, Table};
use crate::timearg::{parse_time, parse_time_end_of_day};

/// List recorded events in ledger order.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  caltrail log --server ls01.contoso.com --since 2025-01-01\n  caltrail log --type cals.migrated --format json"
)]
pub(crate) struct LogArgs {
    /// Only events of this type (repeat for several).
    #[arg(long = "type", value_name = "TYPE", value_parser = parse_type)]
    types: Vec<EventType>,
    /// Only events concerning this license server.
    #[arg(long, value_parser = |s: &str| ServerName::parse(s))]
    server: Option<ServerName>,
    /// Only events whose `at` is at or after this time (RFC 3339 or YYYY-MM-DD).
    #[arg(long, value_parser = parse_time)]
    since: Option<Timestamp>,
    /// Only events whose `at` is at or before this time (RFC 3339, or YYYY-MM-DD: its end).
    #[arg(long, value_parser = parse_time_end_of_day)]
    until: Option<Timestamp>,
    /// At most this many events (the first ones in ledger order).
    #[arg(long)]
    limit: Option<usize>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

fn parse_type(text: &str) -> Result<EventType, String> {
    EventType::parse(text)
}

pub(crate) fn run(db: &Path, args: &LogArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let ledger = crate::report::open_with_events(db)?;
    let mut table = Table::new(&["seq", "at", "type", "id", "server", "summary"]);
    let limit = args.limit.unwrap_or(usize::MAX);
    ledger.for_each_entry(None, |stored| {
        let event = &stored.entry.event;
        let keep = table.rows.len() < limit
            && (args.types.is_empty() || args.types.contains(&event.event_type()))
            && args.server.as_ref().is_none_or(|s| event.servers().any(|server| server == s))
            && args.since.is_none_or(|t| event.at >= t)
            && args.until.is_none_or(|t| event.at <= t);
        if keep {
            let servers: Vec<&str> = event.servers().map(ServerName::as_str).collect();
            table.rows.push(vec![
                Cell::from(stored.entry.seq),
                Cell::from(event.at.to_rfc3339()),
                Cell::from(event.event_type().as_str()),
                Cell::from(event.id.as_str()),
                Cell::from(servers.join(" -> ")),
                Cell::from(summary(&event.data)),
            ]);
        }
        Ok(())
    })?;
    table.write(args.format, out)?;
    Ok(Outcome::Clean)
}

/// One line a licensing admin reads at a glance.
fn summary(data: &EventData) -> String {
    match data {
        EventData::AgreementPurchased(e) => format!(
            "{} bought {} {} {} CALs ({})",
            e.agreement.as_str(),
            e.quantity.get(),
            e.product_version,
            e.cal_type,
            e.program
        ),
        EventData::ServerActivated(e) => format!(
            "activated ({}), Windows Server {}, id {}{}",
            e.method,
            e.os_version,
            e.license_server_id.as_str(),
            if e.opening { ", opening balance" } else { "" }
        ),
        EventData::ServerReactivated(e) => format!(
            "reactivated ({}, {}), new id {}{}",
            e.reason,
            e.method,
            e.license_server_id.as_str(),
            e.os_version.map(|v| format!(", now Windows Server {v}")).unwrap_or_default()
        ),
        EventData::ServerDeactivated(e) => format!("deactivated ({})", e.method),
        EventData::KeypackInstalled(e) => format!(
            "installed {} {} {} CALs as {} under {}{}",
            e.quantity.get(),
            e.product_version,
            e.cal_type,
            e.keypack.as_str(),
            e.agreement.as_str(),
            e.downgraded_from.map(|v| format!(", downgraded from {v}")).unwrap_or_default()
        ),
        EventData::KeypackRemoved(e) => match e.quantity {
            Some(q) => format!("removed {} CALs from {}", q.get(), e.keypack.as_str()),
            None => format!("removed all remaining CALs from {}", e.keypack.as_str()),
        },
        EventData::CalsMigrated(e) => format!(
            "migrated {} CALs from {} to {} ({}){}",
            e.quantity.get(),
            e.from_keypack.as_str(),
            e.keypack.as_str(),
            e.reason,
            if e.source_removed { ", removed from source" } else { ", still on source" }
        ),
        EventData::SourceCalsRemoved(e) => format!(
            "removed {} migrated CALs from {} by hand ({})",
            e.quantity.get(),
            e.keypack.as_str(),
            e.method
        ),
        EventData::CalIssued(e) => format!(
            "issued {}CAL from {} to {}",
            if e.temporary { "temporary " } else { "" },
            e.keypack.as_str(),
            e.holder.as_str()
        ),
        EventData::CalRevoked(e) => {
            format!("revoked CAL from {} held by {}", e.keypack.as_str(), e.holder.as_str())
        }
        EventData::ServerRestored(e) => format!(
            "restored from backup of {}{}{}",
            e.backup_taken_at,
            if e.same_machine { "" } else { ", other machine" },
            if e.os_replaced { ", OS reinstalled" } else { "" }
        ),
        EventData::ServerDatabaseRebuilt(_) => "licensing database rebuilt".to_owned(),
        EventData::ServerDecommissioned(e) => format!("decommissioned ({})", e.reason),
        EventData::EventRetracted(e) => {
            format!("retracts {}: {}", e.retracts.as_str(), e.reason)
        }
    }
}
