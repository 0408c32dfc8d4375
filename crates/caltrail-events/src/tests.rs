//! Unit tests of parsing, validation messages and the canonical entry bytes.

use crate::{Entry, EntryColumns, EntryDecoder, Event, EventData, EventType, Timestamp};

fn error_of(line: &str) -> String {
    Event::from_json(line).unwrap_err().to_string()
}

const INSTALL: &str = r#"{"id":"i1","type":"keypack.installed","at":"2025-03-01T09:30:00Z","data":{"server":"ls01.contoso.com","keypack":"ls01/4","agreement":"EA-6543210","product_version":"2022","cal_type":"per_user","quantity":50}}"#;

#[test]
fn inputs_that_mean_the_same_encode_the_same() {
    let a = r#"{"id":"a1","type":"server.activated","at":"2025-03-01T10:30:00+01:00","data":{"server":"LS01.Contoso.com","license_server_id":"abcde-12345-fghij-67890-klmno-12345-pqrst","os_version":"2022","method":"automatic"},"note":null}"#;
    let b = r#"{ "data": {"method":"automatic","os_version":"2022","license_server_id":"ABCDE12345FGHIJ67890KLMNO12345PQRST","server":"ls01.contoso.com"},
                 "at":"2025-03-01T09:30:00Z", "type":"server.activated", "id":"a1" }"#;
    let ea = Event::from_json(a).unwrap();
    let eb = Event::from_json(b).unwrap();
    assert_eq!(ea, eb);
    let recorded_at = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    let bytes_a = Entry { seq: 1, recorded_at, event: ea }.encode();
    let bytes_b = Entry { seq: 1, recorded_at, event: eb }.encode();
    assert_eq!(bytes_a, bytes_b);
}

/// Golden bytes: if this fails, the stored format changed and every ledger's hashes with it.
#[test]
fn golden_entry_bytes() {
    let event = Event::from_json(INSTALL).unwrap();
    let entry =
        Entry { seq: 7, recorded_at: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(), event };
    let bytes = entry.encode();
    let golden = concat!(
        "a466666f726d61740163736571076b7265636f726465645f617474323032362d30312d30315430303a30303a30",
        "305a656576656e74a46269646269316474797065716b65797061636b2e696e7374616c6c656462617474323032",
        "352d30332d30315430393a33303a30305a6464617461a666736572766572706c7330312e636f6e746f736f2e63",
        "6f6d676b65797061636b666c7330312f346961677265656d656e746a45412d363534333231306f70726f647563",
        "745f76657273696f6e64323032326863616c5f74797065687065725f75736572687175616e746974791832",
    );
    assert_eq!(hex(&bytes), golden);
    assert_eq!(Entry::decode(&bytes).unwrap(), entry);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn field_errors_name_the_field() {
    let cases: [(String, &str); 12] = [
        (
            INSTALL.replace("\"quantity\":50", "\"quantity\":0"),
            "data.quantity: must be between 1 and 1000000, got 0",
        ),
        (
            INSTALL.replace("\"quantity\":50", "\"quantity\":5.5"),
            "data.quantity: must be a whole number, got 5.5",
        ),
        (
            INSTALL.replace("\"quantity\":50", "\"quantity\":\"50\""),
            "data.quantity: must be a number, got a string",
        ),
        (
            INSTALL.replace("\"cal_type\"", "\"caltype\""),
            "data.caltype: unknown field (expected one of: server, keypack, agreement, product_version, cal_type, quantity, downgraded_from, wmi_keypack_id)",
        ),
        (
            INSTALL.replace("\"at\"", "\"when\""),
            "when: unknown field (expected one of: id, type, at, actor, note, data)",
        ),
        (INSTALL.replace(",\"quantity\":50", ""), "data.quantity: is required"),
        (
            INSTALL.replace("keypack.installed", "keypack.install"),
            "type: unknown event type \"keypack.install\" (expected one of: agreement.purchased, server.activated, server.reactivated, server.deactivated, keypack.installed, keypack.removed, cals.migrated, source.cals_removed, cal.issued, cal.revoked, server.restored, server.database_rebuilt, server.decommissioned, event.retracted)",
        ),
        (
            INSTALL.replace("2025-03-01T09:30:00Z", "2025-03-01 09:30"),
            "at: must be an RFC 3339 time with an offset (2025-03-01T09:30:00Z), got \"2025-03-01 09:30\"",
        ),
        (
            INSTALL.replace("\"i1\"", "\"bad id\""),
            "id: may only hold A-Z, a-z, 0-9, '.', '_', ':' and '-', got ' '",
        ),
        (
            INSTALL.replace("\"2022\"", "\"2022\",\"downgraded_from\":\"2019\""),
            "data.downgraded_from: must be newer than data.product_version (2022), got \"2019\"",
        ),
        ("[1]".to_owned(), "the line must be a JSON object, got an array"),
        (r#"{"id":"x","id":"y"}"#.to_owned(), "not valid JSON at column 14: duplicate key \"id\""),
    ];
    for (input, expected) in &cases {
        assert_eq!(error_of(input), *expected, "{input}");
    }
}

/// An event of every type, with most of its optional fields.
const EVERY_TYPE: &[&str] = &[
    r#"{"id":"p","type":"agreement.purchased","at":"2025-01-01T00:00:00Z","data":{"agreement":"EA-1","program":"enterprise_agreement","number":"6543210","product_version":"2022","cal_type":"per_user","quantity":100,"anniversary":"07-01"}}"#,
    r#"{"id":"r","type":"server.reactivated","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","license_server_id":"ABCDE12345FGHIJ67890KLMNO12345PQRST","reason":"upgraded","method":"telephone","os_version":"2025"}}"#,
    r#"{"id":"d","type":"server.deactivated","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","method":"web_browser"}}"#,
    r#"{"id":"k","type":"keypack.removed","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","keypack":"p1"}}"#,
    r#"{"id":"m","type":"cals.migrated","at":"2025-01-01T00:00:00Z","data":{"source":"ls01","target":"ls02","reason":"source_replaced","source_reachable":false,"from_keypack":"p1","keypack":"p2","quantity":5,"source_removed":false}}"#,
    r#"{"id":"s","type":"source.cals_removed","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","keypack":"p1","quantity":5,"migration":"m","method":"wmi"}}"#,
    r#"{"id":"c","type":"cal.issued","at":"2025-01-01T00:00:00Z","actor":"a","note":"n","data":{"server":"ls01","keypack":"p1","holder":"CONTOSO\\jdoe","hardware_id":"hw","temporary":true,"expires_at":"2025-04-01T00:00:00Z","session_host":"rdsh01","session_host_version":"2022"}}"#,
    r#"{"id":"v","type":"cal.revoked","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","keypack":"p1","holder":"pc-17"}}"#,
    r#"{"id":"b","type":"server.restored","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","backup_taken_at":"2024-12-01T00:00:00Z","same_machine":true,"os_replaced":false}}"#,
    r#"{"id":"i","type":"keypack.installed","at":"2023-05-02T10:30:00+02:00","data":{"server":"ls09.adatum.com","keypack":"ls09/2","agreement":"RET-001","product_version":"2016","cal_type":"per_device","quantity":30,"wmi_keypack_id":2}}"#,
    r#"{"id":"a","type":"server.activated","at":"2023-05-02T10:00:00Z","data":{"server":"ls09.adatum.com","license_server_id":"9Z8Y7X6W5V4U3T2S1R9Q8P7O6N5M4L3K2J1","os_version":"2016","method":"automatic"}}"#,
    r#"{"id":"x","type":"server.database_rebuilt","at":"2025-01-01T00:00:00Z","data":{"server":"ls01"}}"#,
    r#"{"id":"o","type":"server.activated","at":"2023-05-02T10:00:00Z","data":{"server":"ls09","license_server_id":"9Z8Y7X6W5V4U3T2S1R9Q8P7O6N5M4L3K2J1","os_version":"2016","method":"automatic","opening":true}}"#,
    r#"{"id":"g","type":"cals.migrated","at":"2025-01-01T00:00:00Z","data":{"source":"ts-old","target":"ts-old","reason":"source_not_functioning","source_reachable":false,"from_keypack":"p1","keypack":"p2","quantity":5,"source_removed":false,"agreement":"EA-1","product_version":"2016","cal_type":"per_device","source_license_server_id":"9Z8Y7X6W5V4U3T2S1R9Q8P7O6N5M4L3K2J1"}}"#,
    r#"{"id":"q","type":"agreement.purchased","at":"2025-01-01T00:00:00Z","data":{"agreement":"EA-1","program":"enterprise_agreement","product_version":"2019","cal_type":"per_user","quantity":10,"software_assurance_until":"2022-01-31","rights_through":"2022"}}"#,
    r#"{"id":"q2","type":"agreement.purchased","at":"2025-01-01T00:00:00Z","data":{"agreement":"EA-1","program":"select","product_version":"2019","cal_type":"per_user","quantity":10,"software_assurance_until":"2022-01-31T12:00:00Z"}}"#,
    r#"{"id":"z","type":"server.decommissioned","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","reason":"role_removed"}}"#,
    r#"{"id":"y","type":"event.retracted","at":"2025-01-01T00:00:00Z","data":{"retracts":"q","reason":"recorded twice"}}"#,
];

/// The `data` JSON written straight out is the value tree's, for every type, with its optional
/// fields and without them, and with text that needs escapes.
#[test]
fn data_json_written_straight_is_the_trees() {
    let bare = r#"{"id":"n","type":"keypack.removed","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","keypack":"p1"}}"#;
    let escaped = r#"{"id":"e","type":"event.retracted","at":"2025-01-01T00:00:00Z","data":{"retracts":"q","reason":"a \"quoted\"\n\u0001 reason, é"}}"#;
    for line in EVERY_TYPE.iter().chain([&bare, &escaped]) {
        let event = Event::from_json(line).unwrap();
        let mut tree = Vec::new();
        event.data.to_value().write_json(&mut tree);
        let mut straight = b"[".to_vec();
        event.data.write_json(&mut straight);
        assert_eq!(
            String::from_utf8(straight).unwrap(),
            format!("[{}", String::from_utf8(tree).unwrap()),
            "{line}"
        );
    }
}

#[test]
fn every_type_round_trips_through_the_stored_form() {
    for line in EVERY_TYPE {
        let event = Event::from_json(line).unwrap();
        let entry =
            Entry { seq: 3, recorded_at: Timestamp::parse("2026-01-01T00:00:00Z").unwrap(), event };
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), entry, "{line}");
        let columns = EntryColumns::read(&bytes).unwrap();
        assert_eq!(
            (columns.seq, columns.recorded_at, columns.id, columns.event_type, columns.at),
            (
                3,
                entry.recorded_at.to_rfc3339().as_bytes(),
                entry.event.id.as_str().as_bytes(),
                entry.event.event_type().as_str().as_bytes(),
                entry.event.at.to_rfc3339().as_bytes()
            )
        );
        assert_eq!(
            columns.keypack,
            entry.event.new_keypack().map(|k| k.as_str().as_bytes()),
            "{line}"
        );
    }
    assert_eq!(EventType::ALL.len(), 14);
}

/// Names held inline (up to 24 bytes) and on the heap read back the same, through the stored
/// form and both readings of it; a host name is lower-cased either way.
#[test]
fn names_of_every_length_round_trip_through_the_stored_form() {
    let recorded_at = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    for n in [1, 22, 23, 24, 25, 26, 64, 128] {
        let id = "i".repeat(n);
        let server = format!("{}.Example", "S".repeat(n));
        let keypack = format!("pack {}", "k".repeat(n));
        let holder = format!("CONTOSO\\{}é", "u".repeat(n));
        let line = serde_json::json!({
            "id": id, "type": "cal.issued", "at": "2025-01-01T00:00:00Z",
            "data": {
                "server": server, "keypack": keypack, "holder": holder,
                "session_host": "h".repeat(n), "hardware_id": "w".repeat(n),
            },
        })
        .to_string();
        let event = Event::from_json(&line).unwrap();
        let EventData::CalIssued(e) = &event.data else { panic!("a CAL issue") };
        assert_eq!(event.id.as_str(), id);
        assert_eq!(e.server.as_str(), server.to_ascii_lowercase());
        assert_eq!(e.keypack.as_str(), keypack);
        assert_eq!(e.holder.as_str(), holder);
        assert_eq!(e.session_host.as_deref(), Some("h".repeat(n).as_str()));
        assert_eq!(e.hardware_id.as_deref(), Some("w".repeat(n).as_str()));
        let entry = Entry { seq: 1, recorded_at, event };
        let bytes = entry.encode();
        assert_eq!(Entry::decode(&bytes).unwrap(), entry, "{n}");
        assert_eq!(EntryDecoder::default().decode(&bytes).unwrap(), entry, "{n}");
    }
}

#[test]
fn restore_before_its_backup_is_refused() {
    let line = r#"{"id":"b","type":"server.restored","at":"2025-01-01T00:00:00Z","data":{"server":"ls01","backup_taken_at":"2025-02-01T00:00:00Z","same_machine":true,"os_replaced":false}}"#;
    assert_eq!(
        error_of(line),
        "data.backup_taken_at: must not be later than at (2025-01-01T00:00:00Z), got 2025-02-01T00:00:00Z"
    );
}

#[test]
fn garbage_bytes_decode_to_errors_not_panics() {
    for bytes in [&b""[..], b"\xff", b"\xa1\x01\x02", b"\x9f", b"\xa4\x66format\x02"] {
        assert!(Entry::decode(bytes).is_err(), "{bytes:?}");
    }
}

/// The fast path of `Timestamp::parse` agrees with chrono on every form it takes.
#[test]
fn timestamps_parse_as_chrono_parses_them() {
    let mut texts = vec![
        "1970-01-01T00:00:00Z".to_owned(),
        "0001-01-01T00:00:00Z".to_owned(),
        "9999-12-31T23:59:59.999999Z".to_owned(),
        "2024-02-29T12:00:00.5Z".to_owned(),
        "2023-02-29T12:00:00Z".to_owned(),
        "2100-02-29T00:00:00Z".to_owned(),
        "2000-02-29T00:00:00Z".to_owned(),
        "2025-13-01T00:00:00Z".to_owned(),
        "2025-04-31T00:00:00Z".to_owned(),
        "2025-01-01T24:00:00Z".to_owned(),
        "2025-01-01T23:59:60Z".to_owned(),
        "2025-01-01T00:00:00.1234567Z".to_owned(),
        "2025-01-01T00:00:00.Z".to_owned(),
        "2025-01-01t00:00:00z".to_owned(),
        "2025-01-01T00:00:00+01:00".to_owned(),
    ];
    let mut rng = caltrail_generate::Rng::new(1);
    for _ in 0..20_000 {
        let seed = rng.next_u64();
        let n = |m: u64, s: u32| (seed >> s) % m;
        let fraction = match n(4, 40) {
            0 => String::new(),
            k => format!(
                ".{:0width$}",
                n(1_000_000, 20) % 10u64.pow(k as u32 * 2),
                width = (k * 2) as usize
            ),
        };
        texts.push(format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{fraction}Z",
            1900 + n(300, 0),
            n(14, 8),
            n(33, 12),
            n(25, 16),
            n(61, 24),
            n(61, 32)
        ));
    }
    for text in texts {
        let chrono = chrono::DateTime::parse_from_rfc3339(&text)
            .ok()
            .filter(|_| text.split_once('.').is_none_or(|(_, f)| f.len() <= 7))
            .map(|t| t.timestamp_micros());
        assert_eq!(Timestamp::parse(&text).ok().map(Timestamp::micros), chrono, "{text}");
    }
}

/// Fields added in v2 are written only when given (`opening` only when true), so the bytes of
/// every event written before them are unchanged; a date stays a date.
#[test]
fn fields_added_later_leave_earlier_bytes_alone() {
    let plain = r#"{"id":"a","type":"server.activated","at":"2023-05-02T10:00:00Z","data":{"server":"ls09","license_server_id":"9Z8Y7X6W5V4U3T2S1R9Q8P7O6N5M4L3K2J1","os_version":"2016","method":"automatic"}}"#;
    let not_opening = plain.replace("\"automatic\"", "\"automatic\",\"opening\":false");
    assert_eq!(
        Event::from_json(plain).unwrap().to_cbor(),
        Event::from_json(&not_opening).unwrap().to_cbor()
    );
    let opening = plain.replace("\"automatic\"", "\"automatic\",\"opening\":true");
    assert_ne!(
        Event::from_json(plain).unwrap().to_cbor(),
        Event::from_json(&opening).unwrap().to_cbor()
    );
    let purchase = r#"{"id":"q","type":"agreement.purchased","at":"2025-01-01T00:00:00Z","data":{"agreement":"EA-1","program":"select","product_version":"2019","cal_type":"per_user","quantity":10,"software_assurance_until":"2022-01-31"}}"#;
    let event = Event::from_json(purchase).unwrap();
    assert_eq!(
        event.data.to_value().to_json().to_string(),
        r#"{"agreement":"EA-1","program":"select","product_version":"2019","cal_type":"per_user","quantity":10,"software_assurance_until":"2022-01-31"}"#
    );
    assert_eq!(
        error_of(&purchase.replace("2022-01-31", "2022-02-30")),
        "data.software_assurance_until: must be a date (YYYY-MM-DD) or an RFC 3339 time, got \"2022-02-30\""
    );
    let long = format!(
        r#"{{"id":"y","type":"event.retracted","at":"2025-01-01T00:00:00Z","data":{{"retracts":"q","reason":"{}"}}}}"#,
        "x".repeat(501)
    );
    assert_eq!(error_of(&long), "data.reason: must be 1 to 500 characters long, got 501");
}

/// The canonical reading (`Entry::decode_canonical`) takes only what the value tree takes, and
/// reads it the same: on the entries of every type and of a generated estate, and on every
/// copy of them with a byte changed or the end cut off, read alone and read after the entry
/// they were copied from (whose recording time an `EntryDecoder` keeps).
#[test]
fn the_canonical_reading_agrees_with_the_value_tree_on_good_and_damaged_bytes() {
    let recorded_at = Timestamp::parse("2026-01-01T00:00:00Z").unwrap();
    let mut events: Vec<Event> = EVERY_TYPE.iter().map(|l| Event::from_json(l).unwrap()).collect();
    let n_listed = events.len();
    caltrail_generate::generate(caltrail_generate::Estate::for_events(3_000, 5), &mut |line| {
        events.push(Event::from_json(line).unwrap());
    });
    let mut n_damaged_read = 0;
    for (i, event) in events.into_iter().enumerate() {
        let entry = Entry { seq: i as u64 + 1, recorded_at, event };
        let bytes = entry.encode();
        assert_eq!(Entry::decode_canonical(&bytes, &mut None).as_ref(), Some(&entry));
        assert_eq!(Entry::decode_tree(&bytes).as_ref(), Ok(&entry));
        // Every byte of the listed entries, and of every 20th generated one.
        if i >= n_listed && i % 20 != 0 {
            continue;
        }
        let mut damaged: Vec<Vec<u8>> = (0..bytes.len()).map(|end| bytes[..end].to_vec()).collect();
        for at in 0..bytes.len() {
            for flip in [0x01, 0x02, 0x20, 0x40, 0x80, 0xff] {
                let mut changed = bytes.clone();
                changed[at] ^= flip;
                damaged.push(changed);
            }
        }
        for damaged in damaged {
            let tree = Entry::decode_tree(&damaged);
            if let Some(canonical) = Entry::decode_canonical(&damaged, &mut None) {
                assert_eq!(tree.as_ref(), Ok(&canonical), "{damaged:x?}");
                n_damaged_read += 1;
            }
            assert_eq!(Entry::decode(&damaged), tree, "{damaged:x?}");
            let mut after_the_original = EntryDecoder::default();
            assert_eq!(after_the_original.decode(&bytes).as_ref(), Ok(&entry));
            assert_eq!(after_the_original.decode(&damaged), tree, "{damaged:x?}");
        }
    }
    // Changed letters in names still make valid entries: the canonical reading takes those.
    assert!(n_damaged_read > 1_000, "{n_damaged_read}");
}

/// A stored entry's data is read into one place per field its type allows
/// (`fields::MAX_SLOTS`): a type allowing more would never be read that way.
#[test]
fn every_type_allows_no_more_fields_than_the_canonical_reading_has_places() {
    for event_type in EventType::ALL {
        assert!(event_type.fields().len() <= crate::fields::MAX_SLOTS, "{event_type}");
    }
}
