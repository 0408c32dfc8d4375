//! What the fuzz targets check, shared with the smoke test of the integration suite: no input
//! makes a reader panic, and whatever is accepted survives a round trip unchanged.

use caltrail_events::{Entry, Event, Timestamp};

/// A JSON line: refused with an error, or accepted and then identical after writing it back in
/// canonical form and after storing and decoding it.
pub(super) fn event_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(event) = Event::from_json(text) else { return };
    let canonical = event.to_value().to_json().to_string();
    let again = Event::from_json(&canonical).expect("a canonical event must read back");
    assert_eq!(again, event, "canonical JSON changed the event");
    let entry = Entry {
        seq: 1,
        recorded_at: Timestamp::from_micros(0).expect("the epoch is a valid time"),
        event,
    };
    let bytes = entry.encode();
    assert_eq!(Entry::decode(&bytes).expect("encoded bytes must decode"), entry);
    assert_eq!(Entry::decode(&bytes).map(|e| e.encode()), Ok(bytes), "encoding is not stable");
}

/// Stored bytes: refused with an error, or decoded to an entry that encodes to the same bytes
/// when they were canonical.
pub(super) fn entry_bytes(data: &[u8]) {
    let Ok(entry) = Entry::decode(data) else { return };
    let bytes = entry.encode();
    assert_eq!(Entry::decode(&bytes).expect("re-encoded bytes must decode"), entry);
}

/// An export file: read as key packs and as issued licenses, with and without a named date
/// format; errors are fine, panics are not.
pub(super) fn wmi_export(data: &[u8]) {
    let _ = caltrail_wmi::read_keypacks(data, None);
    let _ = caltrail_wmi::read_licenses(data, None);
    let _ = caltrail_wmi::read_keypacks(data, Some("%d/%m/%Y %H:%M:%S"));
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = caltrail_wmi::parse_date(text, None);
    }
}
