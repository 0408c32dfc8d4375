//! The date forms PowerShell writes: CIM datetime (`Get-WmiObject`), `/Date(ms)/`
//! (`ConvertTo-Json` in Windows PowerShell 5.1), ISO 8601 (PowerShell 7) and culture-formatted
//! text (`Get-CimInstance | Export-Csv`), and LDAP's GeneralizedTime (Active Directory's
//! attributes as ldifde prints them). Text without an offset is taken as UTC.

use caltrail_events::Timestamp;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// Culture formats tried in order when the user names none: en-US first, as PowerShell's
/// invariant culture writes, then forms that cannot be mistaken for it.
const CULTURE_FORMATS: &[&str] = &[
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
    "%m/%d/%Y",
];

/// Parses one date. `format` is a chrono format the user named for culture-formatted text.
pub fn parse_date(text: &str, format: Option<&str>) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Some(t) = cim_datetime(text) {
        return t;
    }
    if let Some(t) = json_date(text) {
        return t;
    }
    if let Some(t) = generalized_time(text) {
        return t;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return micros(t.with_timezone(&Utc));
    }
    for iso in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, iso) {
            return micros(Utc.from_utc_datetime(&t));
        }
    }
    let formats: Vec<&str> = match format {
        Some(format) => vec![format],
        None => CULTURE_FORMATS.to_vec(),
    };
    for format in &formats {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return micros(Utc.from_utc_datetime(&t));
        }
        if let Ok(d) = NaiveDate::parse_from_str(text, format) {
            let midnight = d.and_hms_opt(0, 0, 0).expect("invariant: midnight exists every day");
            return micros(Utc.from_utc_datetime(&midnight));
        }
    }
    Err(match format {
        Some(format) => format!("is not a date in the format {format:?}: {text:?}"),
        None => format!(
            "is not a date caltrail recognises: {text:?} (name its format with --date-format, such as \"%d/%m/%Y %H:%M:%S\")"
        ),
    })
}

fn micros(t: DateTime<Utc>) -> Result<Timestamp, String> {
    Timestamp::from_micros(t.timestamp_micros()).ok_or_else(|| format!("{t} is out of range"))
}

/// `yyyymmddHHMMSS.ffffff+UUU`: UUU is the offset from UTC in minutes.
fn cim_datetime(text: &str) -> Option<Result<Timestamp, String>> {
    let bytes = text.as_bytes();
    if bytes.len() != 25 || bytes[14] != b'.' || !matches!(bytes[21], b'+' | b'-') {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| text.get(range)?.parse::<u32>().ok();
    let bad = || Err(format!("is not a valid CIM datetime: {text:?}"));
    let (Some(year), Some(month), Some(day), Some(hour), Some(minute), Some(second)) =
        (digits(0..4), digits(4..6), digits(6..8), digits(8..10), digits(10..12), digits(12..14))
    else {
        return Some(bad());
    };
    let (Some(fraction), Some(offset)) = (digits(15..21), digits(22..25)) else {
        return Some(bad());
    };
    let Some(naive) = NaiveDate::from_ymd_opt(year as i32, month, day)
        .and_then(|d| d.and_hms_micro_opt(hour, minute, second, fraction))
    else {
        return Some(bad());
    };
    let offset_minutes = i64::from(offset) * if bytes[21] == b'-' { -1 } else { 1 };
    let utc = Utc.from_utc_datetime(&naive) - chrono::Duration::minutes(offset_minutes);
    Some(micros(utc))
}

/// LDAP's GeneralizedTime, as ldifde and ADSI print Active Directory's `msTSExpireDate`:
/// `yyyymmddHHMMSS[.f]Z`, in UTC.
fn generalized_time(text: &str) -> Option<Result<Timestamp, String>> {
    let body = text.strip_suffix('Z')?;
    let (whole, fraction) = body.split_once('.').unwrap_or((body, ""));
    if whole.len() != 14
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    Some(match NaiveDateTime::parse_from_str(whole, "%Y%m%d%H%M%S") {
        Ok(t) => micros(Utc.from_utc_datetime(&t)),
        Err(_) => Err(format!("is not a valid LDAP time: {text:?}")),
    })
}

/// `/Date(2145916800000)/`, optionally with an offset such as `/Date(2145916800000+0100)/`:
/// the milliseconds are UTC either way.
fn json_date(text: &str) -> Option<Result<Timestamp, String>> {
    let inner = text.strip_prefix("/Date(")?.strip_suffix(")/")?;
    let end = inner.char_indices().skip(1).find(|(_, c)| *c == '+' || *c == '-').map(|(i, _)| i);
    let millis = &inner[..end.unwrap_or(inner.len())];
    Some(
        millis
            .parse::<i64>()
            .ok()
            .and_then(|ms| Timestamp::from_micros(ms.checked_mul(1000)?))
            .ok_or_else(|| format!("is not a valid /Date()/ value: {text:?}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        parse_date(text, None).unwrap().to_rfc3339()
    }

    #[test]
    fn every_form_powershell_writes() {
        assert_eq!(utc("20380101010000.000000-000"), "2038-01-01T01:00:00Z");
        assert_eq!(utc("20250301093000.000000+060"), "2025-03-01T08:30:00Z");
        assert_eq!(utc("/Date(2145916800000)/"), "2038-01-01T00:00:00Z");
        assert_eq!(utc("/Date(2145916800000+0100)/"), "2038-01-01T00:00:00Z");
        assert_eq!(utc("2038-01-01T01:00:00"), "2038-01-01T01:00:00Z");
        assert_eq!(utc("2038-01-01T01:00:00+01:00"), "2038-01-01T00:00:00Z");
        assert_eq!(utc("1/1/2038 1:00:00 AM"), "2038-01-01T01:00:00Z");
        assert_eq!(utc("3/14/2025 2:05:09 PM"), "2025-03-14T14:05:09Z");
        assert_eq!(utc("14.03.2025 14:05:09"), "2025-03-14T14:05:09Z");
        assert_eq!(utc("20250810090000.0Z"), "2025-08-10T09:00:00Z");
        assert_eq!(utc("20250810090000Z"), "2025-08-10T09:00:00Z");
    }

    #[test]
    fn a_named_format_settles_the_ambiguous_ones() {
        let uk = parse_date("03/04/2025 10:00:00", Some("%d/%m/%Y %H:%M:%S")).unwrap();
        assert_eq!(uk.to_rfc3339(), "2025-04-03T10:00:00Z");
        assert_eq!(utc("03/04/2025 10:00:00"), "2025-03-04T10:00:00Z");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse_date("20381301010000.000000-000", None).is_err());
        assert!(parse_date("soon", None).is_err());
        assert!(parse_date("/Date(abc)/", None).is_err());
    }
}
