//! Given these events, when replayed to this point, then the state holds these facts.

use caltrail_events::{Event, Timestamp};
use serde_json::json;

use crate::{AsOf, KnownEntry, Replay};

fn event(id: &str, event_type: &str, at: &str, data: serde_json::Value) -> Event {
    let line = json!({"id": id, "type": event_type, "at": at, "data": data}).to_string();
    Event::from_json(&line).unwrap()
}

fn replay(events: &[Event], as_of: AsOf) -> Replay {
    let now = Timestamp::parse("2030-01-01T00:00:00Z").unwrap();
    Replay::new(as_of, now, true).fold_all(events.iter().enumerate().map(|(i, event)| KnownEntry {
        seq: i as u64 + 1,
        recorded_at: now,
        hash: "",
        event,
    }))
}

fn install(id: &str, at: &str, server: &str, keypack: &str, quantity: u32) -> Event {
    event(
        id,
        "keypack.installed",
        at,
        json!({"server": server, "keypack": keypack, "agreement": "EA-1",
               "product_version": "2022", "cal_type": "per_user", "quantity": quantity}),
    )
}

fn issue(id: &str, at: &str, keypack: &str, holder: &str) -> Event {
    event(id, "cal.issued", at, json!({"server": "ls01", "keypack": keypack, "holder": holder}))
}

#[test]
fn a_renewal_is_not_a_second_cal() {
    let state = replay(
        &[
            install("k", "2025-01-01T00:00:00Z", "ls01", "p", 5),
            issue("c1", "2025-01-02T00:00:00Z", "p", "CONTOSO\\Ann"),
            issue("c2", "2025-02-02T00:00:00Z", "p", "contoso\\ann"),
        ],
        // Without `expires_at` a per-user CAL lapses 60 days after its latest issue.
        AsOf::Time(Timestamp::parse("2025-04-02T00:00:00Z").unwrap()),
    );
    assert_eq!(state.cals.len(), 1);
    assert_eq!(state.cals[0].n_issues, 2);
    assert_eq!(state.issues.folded().iter().map(|i| i.renewal).collect::<Vec<_>>(), [false, true]);
    assert_eq!(state.keypacks[0].active_issued, 1);
    assert_eq!(state.keypacks[0].available, 4);
}

#[test]
fn removing_more_than_a_pack_holds_leaves_zero() {
    let state = replay(
        &[
            install("k", "2025-01-01T00:00:00Z", "ls01", "p", 5),
            event(
                "r",
                "keypack.removed",
                "2025-01-02T00:00:00Z",
                json!({"server": "ls01", "keypack": "p", "quantity": 9}),
            ),
            event(
                "r2",
                "keypack.removed",
                "2025-01-03T00:00:00Z",
                json!({"server": "ls01", "keypack": "unknown"}),
            ),
        ],
        AsOf::Latest,
    );
    let pack = &state.keypacks[0];
    assert_eq!((pack.installed, pack.removed, pack.current_quantity), (5, 5, 0));
    assert_eq!(state.quantity_changes.iter().map(|c| c.delta).collect::<Vec<_>>(), [5, -5]);
}

#[test]
fn as_of_a_sequence_number_judges_activity_at_that_event() {
    let events = [
        install("k", "2025-01-01T00:00:00Z", "ls01", "p", 5),
        event(
            "c",
            "cal.issued",
            "2025-01-02T00:00:00Z",
            json!({"server": "ls01", "keypack": "p", "holder": "a", "expires_at": "2025-02-01T00:00:00Z"}),
        ),
        install("k2", "2025-03-01T00:00:00Z", "ls01", "p2", 5),
    ];
    let at_two = replay(&events, AsOf::Seq(2));
    assert_eq!(at_two.active_at, Timestamp::parse("2025-01-02T00:00:00Z").unwrap());
    assert_eq!((at_two.n_applied, at_two.keypacks.len()), (2, 1));
    assert!(at_two.cals[0].active);
    // Past its `expires_at`, a per-user CAL still stays with its user for 90 days after its
    // first issue (until 2025-04-02).
    let at_three = replay(&events, AsOf::Seq(3));
    assert!(at_three.cals[0].active);
    let after = replay(&events, AsOf::Time(Timestamp::parse("2025-04-02T00:00:00Z").unwrap()));
    assert!(!after.cals[0].active);
    let by_time = replay(&events, AsOf::Time(Timestamp::parse("2025-01-15T00:00:00Z").unwrap()));
    assert_eq!(by_time.last_seq, 2);
    assert!(by_time.cals[0].active);
}

#[test]
fn a_restore_brings_back_what_was_migrated_after_the_backup() {
    let state = replay(
        &[
            install("k", "2025-01-01T00:00:00Z", "ls01", "p", 10),
            event(
                "m",
                "cals.migrated",
                "2025-03-01T00:00:00Z",
                json!({"source": "ls01", "target": "ls02", "reason": "source_replaced",
                         "source_reachable": true, "from_keypack": "p", "keypack": "q",
                         "quantity": 6, "source_removed": true}),
            ),
            event(
                "b",
                "server.restored",
                "2025-04-01T00:00:00Z",
                json!({"server": "ls01", "backup_taken_at": "2025-02-01T00:00:00Z",
                         "same_machine": true, "os_replaced": false}),
            ),
        ],
        AsOf::Latest,
    );
    let p = &state.keypacks[0];
    assert_eq!((p.current_quantity, p.restored, p.resurrected), (10, 6, 6));
    assert_eq!(state.keypacks[1].current_quantity, 6);
    let r = &state.restores[0];
    assert_eq!(
        (r.quantity_at_backup, r.quantity_before, r.came_back, r.unissued_lost),
        (10, 4, 6, 0)
    );
}

#[test]
fn true_up_years_start_on_the_anniversary_before_the_first_purchase() {
    let state = replay(
        &[event(
            "p",
            "agreement.purchased",
            "2024-03-15T00:00:00Z",
            json!({"agreement": "EA-1", "program": "enterprise_agreement",
                       "product_version": "2022", "cal_type": "per_user", "quantity": 1,
                       "anniversary": "07-01"}),
        )],
        AsOf::Time(Timestamp::parse("2025-08-01T00:00:00Z").unwrap()),
    );
    let years: Vec<(String, String, bool)> = state
        .true_up_years
        .iter()
        .map(|p| (p.period_start.to_rfc3339(), p.period_end.to_rfc3339(), p.default))
        .collect();
    // The last year ends at the judged time.
    assert_eq!(
        years,
        [
            ("2023-07-01T00:00:00Z".into(), "2024-07-01T00:00:00Z".into(), true),
            ("2024-07-01T00:00:00Z".into(), "2025-07-01T00:00:00Z".into(), true),
            ("2025-07-01T00:00:00Z".into(), "2025-08-01T00:00:00Z".into(), true),
        ]
    );
}

#[test]
fn a_late_record_applies_at_its_valid_time() {
    // Recorded after the restore, done before it: the restore brings the 40 back.
    let events = [
        install("k", "2025-01-01T00:00:00Z", "ls01", "p", 100),
        event(
            "b",
            "server.restored",
            "2025-04-01T00:00:00Z",
            json!({"server": "ls01", "backup_taken_at": "2025-03-01T00:00:00Z",
                   "same_machine": true, "os_replaced": false}),
        ),
        event(
            "r",
            "keypack.removed",
            "2025-03-15T00:00:00Z",
            json!({"server": "ls01", "keypack": "p", "quantity": 40}),
        ),
    ];
    let state = replay(&events, AsOf::Latest);
    let pack = &state.keypacks[0];
    assert_eq!(
        (pack.removed, pack.restored, pack.current_quantity, pack.resurrected),
        (40, 40, 100, 40)
    );
    let before_restore =
        replay(&events, AsOf::Time(Timestamp::parse("2025-03-20T00:00:00Z").unwrap()));
    assert_eq!(before_restore.keypacks[0].current_quantity, 60);
    // The first three entries, judged at the latest `at` among them: the restore's.
    let by_seq = replay(&events, AsOf::Seq(3));
    assert_eq!(by_seq.active_at, Timestamp::parse("2025-04-01T00:00:00Z").unwrap());
}

#[test]
fn a_retracted_event_never_happened_and_its_pack_is_unknown() {
    let events = [
        install("k", "2025-01-01T00:00:00Z", "ls01", "p", 100),
        issue("c", "2025-01-02T00:00:00Z", "p", "ann"),
        event(
            "x",
            "event.retracted",
            "2025-01-03T00:00:00Z",
            json!({"retracts": "k", "reason": "wrong server"}),
        ),
    ];
    let state = replay(&events, AsOf::Latest);
    assert!(state.keypacks.is_empty());
    assert_eq!((state.cals[0].cal_type, state.issues.folded()[0].cal_type), (None, None));
    assert_eq!(state.n_applied, 1);
    let marks: Vec<Option<&str>> = state.events.iter().map(|e| e.retracted_by.as_deref()).collect();
    assert_eq!(marks, [Some("x"), None, None]);
    // A retraction applies whatever its `at`: as of before it, the pack never was either.
    let earlier = replay(&events, AsOf::Time(Timestamp::parse("2025-01-01T12:00:00Z").unwrap()));
    assert!(earlier.keypacks.is_empty());
}

#[test]
fn a_holders_cals_from_several_packs_stay_apart_whatever_came_last() {
    let mut events = vec![
        install("k1", "2025-01-01T00:00:00Z", "ls01", "p", 5),
        install("k2", "2025-01-01T00:00:01Z", "ls01", "q", 5),
    ];
    // Ann from both packs in turn, in both cases; Bob from one.
    let holders_and_packs = [
        ("CONTOSO\\Ann", "p"),
        ("contoso\\ann", "q"),
        ("CONTOSO\\Ann", "q"),
        ("CONTOSO\\Bob", "q"),
        ("contoso\\ANN", "p"),
        ("contoso\\ann", "p"),
        ("CONTOSO\\Ann", "q"),
    ];
    for (i, (holder, pack)) in holders_and_packs.iter().enumerate() {
        let at = format!("2025-01-02T00:00:{i:02}Z");
        events.push(issue(&format!("c{i}"), &at, pack, holder));
    }
    let state = replay(&events, AsOf::Latest);
    let cals: Vec<(&str, &str, u64)> = state
        .cals
        .iter()
        .map(|c| (state.strings.get(c.keypack), state.strings.get(c.holder), c.n_issues))
        .collect();
    // A CAL keeps the holder's name as first issued.
    assert_eq!(
        cals,
        [("p", "CONTOSO\\Ann", 3), ("q", "contoso\\ann", 3), ("q", "CONTOSO\\Bob", 1)]
    );
    let renewals: Vec<bool> = state.issues.folded().iter().map(|i| i.renewal).collect();
    assert_eq!(renewals, [false, false, true, false, true, true, true]);
    // Every CAL is found under its own key, and no key finds another's.
    for (row, cal) in state.cals.iter().enumerate() {
        let key = (cal.keypack, state.holder_keys[row]);
        assert_eq!(state.find_cal(key), Some(row));
        assert_eq!(state.cal_index.get(&key), Some(&row));
    }
    let (ann, p) = (state.holder_keys[0], state.cals[0].keypack);
    let bob = state.holder_keys[2];
    assert_eq!(state.find_cal((p, bob)), None);
    assert_eq!(state.find_cal((state.cals[1].keypack, ann)), Some(1));
}

#[test]
fn a_server_first_named_by_a_cal_issued_gets_a_row_never_activated() {
    let state = replay(
        &[
            install("k", "2025-01-01T00:00:00Z", "ls01", "p", 5),
            event(
                "c",
                "cal.issued",
                "2025-01-02T00:00:00Z",
                json!({"server": "ls02", "keypack": "p", "holder": "CONTOSO\\Ann"}),
            ),
        ],
        AsOf::Latest,
    );
    let mut servers: Vec<(&str, &str)> =
        state.servers.values().map(|s| (s.server.as_str(), s.status.as_str())).collect();
    servers.sort_unstable();
    assert_eq!(servers, [("ls01", "never_activated"), ("ls02", "never_activated")]);
    let statuses: Vec<&str> =
        state.issues.folded().iter().map(|i| i.server_status.as_str()).collect();
    assert_eq!(statuses, ["never_activated"]);
}
