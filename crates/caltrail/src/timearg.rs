//! Reading times given on the command line: RFC 3339, or a bare date in UTC.

use caltrail_events::Timestamp;

/// A date means its start: for `--since`.
pub(crate) fn parse_time(text: &str) -> Result<Timestamp, String> {
    parse(text, false)
}

/// A date means its last microsecond: for `--until` and `--as-of`, so that the day is included.
pub(crate) fn parse_time_end_of_day(text: &str) -> Result<Timestamp, String> {
    parse(text, true)
}

fn parse(text: &str, end_of_day: bool) -> Result<Timestamp, String> {
    if let Ok(date) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let start = date.and_hms_opt(0, 0, 0).expect("invariant: midnight exists every day");
        let micros =
            start.and_utc().timestamp_micros() + if end_of_day { 86_400_000_000 - 1 } else { 0 };
        return Timestamp::from_micros(micros).ok_or_else(|| format!("{text:?} is out of range"));
    }
    Timestamp::parse(text).map_err(|_| {
        format!(
            "must be an RFC 3339 time (2025-03-01T09:30:00Z) or a date (2025-03-01), got {text:?}"
        )
    })
}
