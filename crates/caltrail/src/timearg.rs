//! Reading times given on the command line: RFC 3339, or a bare date meaning its start in UTC.

use caltrail_events::Timestamp;

pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).expect("invariant: midnight exists every day");
        return Timestamp::from_micros(start.and_utc().timestamp_micros())
            .ok_or_else(|| format!("{text:?} is out of range"));
    }
    Timestamp::parse(text).map_err(|_| {
        format!(
            "must be an RFC 3339 time (2025-03-01T09:30:00Z) or a date (2025-03-01), got {text:?}"
        )
    })
}
