//! `Ledger::scan_named` finds the same entries through the indexes (retractions, pack names) as
//! through a scan of the table, for every range a replay asks, and on a ledger without the
//! retractions index.

use caltrail_events::{Event, EventType, Timestamp};
use caltrail_store::Ledger;

/// A history of 40 entries with retractions, installed packs and migrations among CAL issues.
fn history() -> Vec<Event> {
    let mut lines = Vec::new();
    for i in 1..=40u32 {
        let id = format!("e{i}");
        let at = format!("2025-01-{:02}T00:00:00Z", 1 + i % 28);
        let line = match i % 8 {
            1 => serde_json::json!({"id": id, "type": "keypack.installed", "at": at,
                  "data": {"server": "ls01", "keypack": format!("p{i}"), "agreement": "EA-1",
                           "product_version": "2022", "cal_type": "per_user", "quantity": 10}}),
            4 => serde_json::json!({"id": id, "type": "event.retracted", "at": at,
                  "data": {"retracts": format!("e{}", i - 1), "reason": "recorded in error"}}),
            6 => serde_json::json!({"id": id, "type": "cals.migrated", "at": at,
                  "data": {"source": "ls01", "target": "ls02", "reason": "source_replaced",
                           "source_reachable": true, "from_keypack": format!("p{}", i - 5),
                           "keypack": format!("m{i}"), "quantity": 1, "source_removed": false}}),
            _ => serde_json::json!({"id": id, "type": "cal.issued", "at": at,
                  "data": {"server": "ls01", "keypack": "p1", "holder": format!("h{i}")}}),
        };
        lines.push(Event::from_json(&line.to_string()).unwrap());
    }
    lines
}

const NAMED: &[EventType] =
    &[EventType::EventRetracted, EventType::KeypackInstalled, EventType::CalsMigrated];

fn named(ledger: &Ledger, after: u64, until: u64, types: &[EventType]) -> Vec<(u64, String)> {
    let mut found = Vec::new();
    ledger
        .scan_named(after, until, types, |stored| {
            found.push((stored.entry.seq, stored.entry.event.id.as_str().to_owned()));
        })
        .unwrap();
    found
}

/// What the history holds, by position: the entries of `types` after `after` up to `until`.
fn expected(events: &[Event], after: u64, until: u64, types: &[EventType]) -> Vec<(u64, String)> {
    (1..=events.len() as u64)
        .zip(events)
        .filter(|(seq, event)| *seq > after && *seq <= until && types.contains(&event.event_type()))
        .map(|(seq, event)| (seq, event.id.as_str().to_owned()))
        .collect()
}

#[test]
fn the_indexes_find_what_a_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ledger.db");
    let events = history();
    let mut ledger = Ledger::open_or_create(&path).unwrap();
    ledger.append(&events, Timestamp::parse("2025-02-01T00:00:00Z").unwrap()).unwrap();
    let type_sets: &[&[EventType]] = &[
        NAMED,
        &[EventType::EventRetracted],
        &[EventType::KeypackInstalled],
        &[EventType::CalsMigrated, EventType::KeypackInstalled],
        // Not found through an index: the scan answers.
        &[EventType::CalIssued, EventType::EventRetracted],
    ];
    let ranges = [(0, 40), (0, 17), (3, 40), (12, 29), (38, 40), (40, 40), (0, 0)];
    let answers = |ledger: &Ledger| -> Vec<Vec<(u64, String)>> {
        let mut answers = Vec::new();
        for types in type_sets {
            for (after, until) in ranges {
                let found = named(ledger, after, until, types);
                assert_eq!(
                    found,
                    expected(&events, after, until, types),
                    "{types:?} {after}..{until}"
                );
                answers.push(found);
            }
        }
        answers
    };
    let with_index = answers(&ledger);
    assert_eq!(with_index[0].len(), 5 + 5 + 5, "the history has 5 of each named type");

    // A ledger written before the index: the same answers, from the table.
    drop(ledger);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("DROP INDEX entries_retractions").unwrap();
    drop(conn);
    let ledger = Ledger::open_existing(&path).unwrap();
    assert_eq!(answers(&ledger), with_index);
}
