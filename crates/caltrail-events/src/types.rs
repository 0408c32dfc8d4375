//! The value types of the event contract (EVENTS.md, "Value types"): each parses from text with
//! the contract's rules and holds only valid values. No I/O and no judgement on licensing.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use compact_str::CompactString;

/// Declares a closed set of text values with its parser and its spelling.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $(#[doc = concat!("`\"", $text, "\"`")] $variant),+ }

        impl $name {
            /// Every value, in the order the contract lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value as the contract spells it.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the contract's spelling; the error lists the values allowed.
            pub fn parse(text: &str) -> Result<$name, String> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of {}, got {:?}",
                        [$(concat!("\"", $text, "\"")),+].join(", "),
                        text
                    )),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum! {
    /// A Windows Server version, as a CAL version or a server's OS version. Ordered oldest first,
    /// so `a < b` means `a` is older.
    ProductVersion {
        V2008 = "2008",
        V2008R2 = "2008R2",
        V2012 = "2012",
        V2016 = "2016",
        V2019 = "2019",
        V2022 = "2022",
        V2025 = "2025",
    }
}

text_enum! {
    /// Who a CAL is for: a named user, or a device.
    CalType { PerUser = "per_user", PerDevice = "per_device" }
}

text_enum! {
    /// How a license server was activated with the Clearinghouse.
    ActivationMethod { Automatic = "automatic", WebBrowser = "web_browser", Telephone = "telephone" }
}

text_enum! {
    /// The licence program an agreement was bought under.
    Program {
        Retail = "retail",
        OpenLicense = "open_license",
        Select = "select",
        EnterpriseAgreement = "enterprise_agreement",
        CampusAgreement = "campus_agreement",
        SchoolAgreement = "school_agreement",
        Spla = "spla",
        OtherAgreement = "other_agreement",
    }
}

text_enum! {
    /// Why a license server was reactivated.
    ReactivationReason {
        CertificateExpired = "certificate_expired",
        CertificateCorrupt = "certificate_corrupt",
        KeyCompromised = "key_compromised",
        Redeployed = "redeployed",
        Upgraded = "upgraded",
    }
}

text_enum! {
    /// Why CALs were migrated to another license server (the wizard's two choices).
    MigrationReason { SourceReplaced = "source_replaced", SourceNotFunctioning = "source_not_functioning" }
}

text_enum! {
    /// Why a license server is gone (v2).
    DecommissionReason {
        RoleRemoved = "role_removed",
        MachineRetired = "machine_retired",
        MachineLost = "machine_lost",
    }
}

text_enum! {
    /// How migrated CALs were taken off the source server by hand.
    RemovalMethod { Wmi = "wmi", Deactivated = "deactivated", RoleRemoved = "role_removed" }
}

/// The writer's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(
    // Invariant: 1 to 128 characters of `A-Za-z0-9._:-`.
    CompactString,
);

impl EventId {
    /// Parses an id, refusing what the invariant excludes.
    pub fn parse(text: &str) -> Result<EventId, String> {
        // The bytes alone decide a valid id (it is ASCII); the checks below word the refusal.
        let allowed = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-');
        if (1..=128).contains(&text.len()) && text.as_bytes().iter().all(allowed) {
            return Ok(EventId(CompactString::new(text)));
        }
        Self::parse_check_by_check(text)
    }

    /// What `parse` decides, one check at a time, each with its own words for a refusal.
    fn parse_check_by_check(text: &str) -> Result<EventId, String> {
        if text.is_empty() || text.len() > 128 {
            return Err(format!("must be 1 to 128 characters long, got {}", text.chars().count()));
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')))
        {
            return Err(format!("may only hold A-Z, a-z, 0-9, '.', '_', ':' and '-', got {bad:?}"));
        }
        Ok(EventId(CompactString::new(text)))
    }
    /// The id as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A license server's host name, stored lower-case because host names are case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerName(
    // Invariant: 1 to 253 characters of lower-case `a-z0-9.-_`, not starting or ending with '.'.
    CompactString,
);

/// The bytes a host name may hold: ASCII letters and digits, `.`, `-` and `_`.
const HOST_NAME_BYTES: [bool; 256] = {
    let mut allowed = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        allowed[b] = c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_');
        b += 1;
    }
    allowed
};

impl ServerName {
    /// Parses a host name, lower-casing it.
    pub fn parse(text: &str) -> Result<ServerName, String> {
        // One pass over the bytes, without a branch per byte, decides a valid name (it is
        // ASCII): every byte allowed, and no label empty (no dot first, last, or after a dot).
        // The checks below word the refusal.
        let mut refused = false;
        let mut after_dot = true;
        for &c in text.as_bytes() {
            let dot = c == b'.';
            #[expect(clippy::needless_bitwise_bool, reason = "no branch per byte; measured")]
            let refused_here = !HOST_NAME_BYTES[usize::from(c)] | (dot & after_dot);
            refused |= refused_here;
            after_dot = dot;
        }
        if (1..=253).contains(&text.len()) && !refused && !after_dot {
            return Ok(ServerName::lower_case(text));
        }
        Self::parse_check_by_check(text)
    }

    /// What `parse` decides, one check at a time, each with its own words for a refusal.
    fn parse_check_by_check(text: &str) -> Result<ServerName, String> {
        if text.is_empty() || text.len() > 253 {
            return Err(format!("must be a host name of 1 to 253 characters, got {text:?}"));
        }
        if let Some(bad) =
            text.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
        {
            return Err(format!(
                "must be a host name (letters, digits, '.', '-', '_'), got {text:?} with {bad:?}"
            ));
        }
        if text.starts_with('.') || text.ends_with('.') || text.contains("..") {
            return Err(format!("must be a host name with no empty label, got {text:?}"));
        }
        Ok(ServerName::lower_case(text))
    }

    /// `text`, whose bytes the parser allowed, in lower case.
    fn lower_case(text: &str) -> ServerName {
        let mut name = CompactString::new(text);
        name.make_ascii_lowercase();
        ServerName(name)
    }

    /// The lower-case host name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A name the writer gives a key pack or an agreement in this ledger.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(
    // Invariant: 1 to 256 characters, no control character, no white space at either end.
    CompactString,
);

impl Name {
    /// Parses a name, refusing what the invariant excludes.
    pub fn parse(text: &str) -> Result<Name, String> {
        // An ASCII name is decided on its bytes: its length is its count of characters, its
        // control characters are the bytes below a space and DEL, and the only white space
        // that is not a control character is the space. The checks below word the refusal.
        let b = text.as_bytes();
        if (1..=256).contains(&b.len())
            && b.iter().all(|&c| (b' '..0x7f).contains(&c))
            && b[0] != b' '
            && b[b.len() - 1] != b' '
        {
            return Ok(Name(CompactString::new(text)));
        }
        Self::parse_check_by_check(text)
    }

    /// What `parse` decides, one check at a time, each with its own words for a refusal.
    fn parse_check_by_check(text: &str) -> Result<Name, String> {
        if text.is_empty() {
            return Err("must not be empty".to_owned());
        }
        if text.chars().count() > 256 {
            return Err("must be at most 256 characters long".to_owned());
        }
        if text.chars().any(char::is_control) {
            return Err(format!("must not hold control characters, got {text:?}"));
        }
        if text.trim() != text {
            return Err(format!("must not start or end with white space, got {text:?}"));
        }
        Ok(Name(CompactString::new(text)))
    }
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A number of CALs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Quantity(
    // Invariant: 1 to 1,000,000.
    u32,
);

impl Quantity {
    /// The largest quantity one event may carry.
    pub const MAX: u32 = 1_000_000;

    /// A quantity from 1 to `MAX`.
    pub fn new(n: i128) -> Result<Quantity, String> {
        match u32::try_from(n) {
            Ok(n) if (1..=Self::MAX).contains(&n) => Ok(Quantity(n)),
            _ => Err(format!("must be between 1 and {}, got {n}", Self::MAX)),
        }
    }
    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

/// The Clearinghouse's License Server ID, kept without hyphens and in upper case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LicenseServerId(
    // Invariant: exactly 35 characters of `A-Z0-9`.
    String,
);

impl LicenseServerId {
    /// Accepts the 35 characters either run together or as 7 groups of 5 joined by hyphens.
    pub fn parse(text: &str) -> Result<LicenseServerId, String> {
        let grouped = text.len() == 41
            && text.split('-').count() == 7
            && text.split('-').all(|group| group.len() == 5);
        let compact: String = if grouped { text.split('-').collect() } else { text.to_owned() };
        if compact.len() != 35 || !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(format!(
                "must be 35 letters and digits, optionally as 7 groups of 5 joined by '-', got {text:?}"
            ));
        }
        Ok(LicenseServerId(compact.to_ascii_uppercase()))
    }
    /// The ID as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An enrollment anniversary, month and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Anniversary {
    // Invariant: a day that exists in that month in a leap year.
    month: u8,
    day: u8,
}

impl Anniversary {
    /// Parses `MM-DD`, refusing a day that no year has.
    pub fn parse(text: &str) -> Result<Anniversary, String> {
        let bad = || format!("must be a month and day as MM-DD, got {text:?}");
        let (month, day) = text.split_once('-').ok_or_else(bad)?;
        if month.len() != 2 || day.len() != 2 {
            return Err(bad());
        }
        let month: u8 = month.parse().map_err(|_| bad())?;
        let day: u8 = day.parse().map_err(|_| bad())?;
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 => 29,
            _ => return Err(bad()),
        };
        if day == 0 || day > days_in_month {
            return Err(bad());
        }
        Ok(Anniversary { month, day })
    }
    /// The month, 1 to 12.
    pub fn month(self) -> u32 {
        self.month.into()
    }
    /// The day of the month.
    pub fn day(self) -> u32 {
        self.day.into()
    }
}

impl fmt::Display for Anniversary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}-{:02}", self.month, self.day)
    }
}

/// A date (`YYYY-MM-DD`) or an RFC 3339 time: how licensing statements give the end of
/// Software Assurance. Kept as given (a time in UTC), so that a date stays a date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DateOrTime {
    /// A date: its end, in UTC, where a moment is needed.
    Date(chrono::NaiveDate),
    /// A moment.
    Time(Timestamp),
}

impl DateOrTime {
    /// Parses a date (`YYYY-MM-DD`) or an RFC 3339 time in UTC.
    pub fn parse(text: &str) -> Result<DateOrTime, String> {
        if text.len() == 10 {
            return chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .map(DateOrTime::Date)
                .map_err(|_| {
                    format!("must be a date (YYYY-MM-DD) or an RFC 3339 time, got {text:?}")
                });
        }
        Timestamp::parse(text)
            .map(DateOrTime::Time)
            .map_err(|_| format!("must be a date (YYYY-MM-DD) or an RFC 3339 time, got {text:?}"))
    }

    /// The last moment it covers: a date covers its whole day, in UTC.
    pub fn end(self) -> Timestamp {
        match self {
            DateOrTime::Time(t) => t,
            DateOrTime::Date(date) => {
                let start =
                    date.and_hms_opt(0, 0, 0).expect("invariant: midnight exists every day");
                Timestamp::from_micros(start.and_utc().timestamp_micros() + 86_400_000_000 - 1)
                    .expect("invariant: a four-digit year fits in i64 microseconds")
            }
        }
    }
}

impl fmt::Display for DateOrTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DateOrTime::Date(date) => write!(f, "{}", date.format("%Y-%m-%d")),
            DateOrTime::Time(t) => f.write_str(&t.to_rfc3339()),
        }
    }
}

/// A point in time, in UTC, to the microsecond.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(
    // Microseconds since 1970 (UTC) with the sign bit flipped. Invariant: within what chrono's
    // `DateTime<Utc>` holds. Kept as a number, not as chrono's date and time, because a replay
    // compares, sorts, stores and reads back millions of them; chrono is met only to format
    // and to parse. Flipping the sign bit makes the unsigned order the order in time, and
    // leaves 0 (`i64::MIN` microseconds, far outside chrono's range) unused, so that an
    // `Option<Timestamp>` takes 8 bytes: a CAL's row holds seven.
    std::num::NonZeroU64,
);

const SIGN: u64 = 1 << 63;

/// The first and last microsecond chrono's `DateTime<Utc>` can hold.
fn chrono_micros_range() -> std::ops::RangeInclusive<i64> {
    static RANGE: std::sync::OnceLock<std::ops::RangeInclusive<i64>> = std::sync::OnceLock::new();
    RANGE
        .get_or_init(|| {
            DateTime::<Utc>::MIN_UTC.timestamp_micros()
                ..=DateTime::<Utc>::MAX_UTC.timestamp_micros()
        })
        .clone()
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({:?})", self.datetime())
    }
}

impl Timestamp {
    /// Parses RFC 3339 with an offset and converts it to UTC. Finer than a microsecond is refused
    /// rather than rounded: rounding would make two different inputs the same.
    pub fn parse(text: &str) -> Result<Timestamp, String> {
        // The form caltrail writes, parsed without chrono: it is read for every stored entry.
        if let Some(timestamp) = parse_utc_fast(text.as_bytes()) {
            return Ok(timestamp);
        }
        let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| {
            format!("must be an RFC 3339 time with an offset (2025-03-01T09:30:00Z), got {text:?}")
        })?;
        // Checked on the text, not the value, so that the JSON Schema's pattern can say the same.
        let fraction_digits = text
            .split_once('.')
            .map_or(0, |(_, rest)| rest.bytes().take_while(u8::is_ascii_digit).count());
        if fraction_digits > 6 {
            return Err(format!("must not be more precise than a microsecond, got {text:?}"));
        }
        Timestamp::from_micros(parsed.timestamp_micros())
            .ok_or_else(|| format!("must be a time chrono can hold, got {text:?}"))
    }

    /// `parse` of a text's bytes, `None` for bytes that are not UTF-8 or that `parse` refuses:
    /// for stored entries, whose times are read straight from the bytes (decoding, `verify`'s
    /// columns). The form caltrail writes is ASCII, so the bytes are checked for UTF-8 only
    /// when they are not in it.
    pub fn parse_bytes(bytes: &[u8]) -> Option<Timestamp> {
        parse_utc_fast(bytes).or_else(|| Timestamp::parse(std::str::from_utf8(bytes).ok()?).ok())
    }

    /// The moment this many microseconds after 1970 (UTC), if chrono can hold it.
    pub fn from_micros(micros: i64) -> Option<Timestamp> {
        if !chrono_micros_range().contains(&micros) {
            return None;
        }
        Timestamp::from_micros_in_range(micros)
    }

    /// The moment `micros` microseconds after 1970, which the caller knows chrono holds: the
    /// sign-flipped number, `None` only for `i64::MIN` (0 once flipped), far outside the range.
    fn from_micros_in_range(micros: i64) -> Option<Timestamp> {
        std::num::NonZeroU64::new(micros.cast_unsigned() ^ SIGN).map(Timestamp)
    }

    /// The current time, cut to the microsecond.
    pub fn now() -> Timestamp {
        let now = Utc::now();
        Timestamp::from_micros(now.timestamp_micros())
            .expect("invariant: the current time fits in i64 microseconds")
    }

    /// Microseconds since 1970 (UTC).
    pub fn micros(self) -> i64 {
        (self.0.get() ^ SIGN).cast_signed()
    }

    /// The moment as chrono's.
    pub fn datetime(self) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(self.micros())
            .expect("invariant: a timestamp is within chrono's range")
    }

    /// The canonical text: UTC with `Z`, and 3 or 6 fractional digits only when needed.
    pub fn to_rfc3339(self) -> String {
        self.datetime().to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z` exactly, as `to_rfc3339` writes it; `None` for anything
/// else (other offsets, leap seconds, lower-case letters, invalid dates), which chrono then
/// reads or refuses with its message. It reads every stored entry's times, so it works on
/// fixed byte positions with no loop over the text.
fn parse_utc_fast(b: &[u8]) -> Option<Timestamp> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' || *b.last()? != b'Z' {
        return None;
    }
    // Each digit as its value; anything but a digit wraps to more than 9.
    let digit = |i: usize| b[i].wrapping_sub(b'0');
    let positions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18];
    if positions.iter().fold(0, |worst, &i| worst.max(digit(i))) > 9 {
        return None;
    }
    let two = |i: usize| i64::from(digit(i) * 10 + digit(i + 1));
    let (year, month, day) = (two(0) * 100 + two(2), two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    let micros_of_second = match &b[19..b.len() - 1] {
        [] => 0,
        [b'.', digits @ ..] if (1..=6).contains(&digits.len()) => {
            let mut n = 0i64;
            for d in digits {
                let d = d.wrapping_sub(b'0');
                if d > 9 {
                    return None;
                }
                n = n * 10 + i64::from(d);
            }
            n * 10i64.pow(6 - digits.len() as u32)
        }
        _ => return None,
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    // Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let year_of_era = y - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    let seconds = days * 86_400 + hour * 3_600 + minute * 60 + second;
    // Years 0000 to 9999 are well inside chrono's range (about 262,000 years either way), so
    // the range check of `from_micros` is not needed.
    Timestamp::from_micros_in_range(seconds * 1_000_000 + micros_of_second)
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn license_server_id_forms() {
        let compact = "ABCDE12345FGHIJ67890KLMNO12345PQRST";
        assert_eq!(LicenseServerId::parse(compact).unwrap().as_str(), compact);
        let grouped = "abcde-12345-fghij-67890-klmno-12345-pqrst";
        assert_eq!(LicenseServerId::parse(grouped).unwrap().as_str(), compact);
        assert!(LicenseServerId::parse("ABCDE-12345FGHIJ67890KLMNO12345PQRST").is_err());
        assert!(LicenseServerId::parse("ABCDE12345FGHIJ67890KLMNO12345PQRS").is_err());
        assert!(LicenseServerId::parse("ABCDE12345FGHIJ67890KLMNO12345PQRS!").is_err());
    }

    /// A timestamp is a number of microseconds; it holds exactly what chrono holds.
    #[test]
    fn timestamps_hold_what_chrono_holds() {
        let first = DateTime::<Utc>::MIN_UTC.timestamp_micros();
        let last = DateTime::<Utc>::MAX_UTC.timestamp_micros();
        for micros in [i64::MIN, first - 1, first, 0, -1, last, last + 1, i64::MAX] {
            assert_eq!(
                Timestamp::from_micros(micros).map(Timestamp::datetime),
                DateTime::from_timestamp_micros(micros),
                "{micros}"
            );
        }
        let t = Timestamp::parse("2025-03-01T09:30:00.250Z").unwrap();
        assert_eq!(format!("{t:?}"), "Timestamp(2025-03-01T09:30:00.250Z)");
        assert_eq!(t.micros(), t.datetime().timestamp_micros());
    }

    /// Timestamps order as their microseconds do, across 1970 and to both ends of the range,
    /// give them back unchanged, and leave room for `None` in an `Option` of one.
    #[test]
    fn timestamps_order_as_time_and_an_optional_one_takes_eight_bytes() {
        let first = DateTime::<Utc>::MIN_UTC.timestamp_micros();
        let last = DateTime::<Utc>::MAX_UTC.timestamp_micros();
        let micros = [first, first + 1, -86_400_000_000, -1, 0, 1, 1_740_821_400_000_000, last];
        let times: Vec<Timestamp> =
            micros.iter().map(|m| Timestamp::from_micros(*m).unwrap()).collect();
        assert!(times.windows(2).all(|pair| pair[0] < pair[1]));
        assert_eq!(times.iter().map(|t| t.micros()).collect::<Vec<_>>(), micros);
        assert_eq!(std::mem::size_of::<Option<Timestamp>>(), 8);
    }

    #[test]
    fn timestamps_are_utc_and_canonical() {
        let t = Timestamp::parse("2025-03-01T10:30:00+01:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-01T09:30:00Z");
        let t = Timestamp::parse("2025-03-01T09:30:00.250Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2025-03-01T09:30:00.250Z");
        assert!(Timestamp::parse("2025-03-01T09:30:00.0000001Z").is_err());
        assert!(Timestamp::parse("2025-03-01T09:30:00").is_err());
        assert!(Timestamp::parse("2025-02-30T09:30:00Z").is_err());
    }

    proptest::proptest! {
        /// The fast reading of times gives what chrono gives, on the form it reads (every
        /// fraction length, every day of years 0 to 9999) and on that form with a byte changed:
        /// it reads a time as chrono does, or leaves it to chrono.
        #[test]
        fn the_fast_reading_of_times_agrees_with_chrono(
            micros in -62_167_219_200_000_000i64..253_402_300_800_000_000,
            fraction_digits in 0usize..=6,
            flip in proptest::option::of((0usize..27, proptest::prelude::any::<u8>())),
        ) {
            let whole = micros - micros.rem_euclid(10i64.pow(6 - fraction_digits as u32));
            let datetime = DateTime::from_timestamp_micros(whole).unwrap();
            let mut text = datetime.format("%Y-%m-%dT%H:%M:%S").to_string();
            if fraction_digits > 0 {
                let fraction = format!("{:06}", whole.rem_euclid(1_000_000));
                text.push('.');
                text.push_str(&fraction[..fraction_digits]);
            }
            text.push('Z');
            let mut bytes = text.into_bytes();
            if let Some((at, byte)) = flip
                && at < bytes.len()
            {
                bytes[at] = byte;
            }
            let from_bytes = Timestamp::parse_bytes(&bytes).map(Timestamp::micros);
            let Ok(text) = String::from_utf8(bytes) else {
                proptest::prop_assert_eq!(from_bytes, None);
                return Ok(());
            };
            let by_chrono = DateTime::parse_from_rfc3339(&text).ok().map(|t| t.timestamp_micros());
            proptest::prop_assert_eq!(from_bytes, Timestamp::parse(&text).ok().map(Timestamp::micros));
            match parse_utc_fast(text.as_bytes()) {
                Some(fast) => proptest::prop_assert_eq!(Some(fast.micros()), by_chrono),
                None => proptest::prop_assert!(flip.is_some(), "{text} left to chrono"),
            }
            if flip.is_none() {
                proptest::prop_assert_eq!(Timestamp::parse(&text).map(Timestamp::micros), Ok(whole));
            }
        }

        /// Names, server names and ids are accepted and refused on their bytes as the checks
        /// one at a time accept and refuse them, with the same words.
        #[test]
        fn names_are_decided_on_their_bytes_as_check_by_check(
            text in "[ a-zA-Z0-9._:\\-]{0,3}[\\x00-\\x7f\\u{85}\\u{a0}\\u{e9}]{0,3}[ .a-z]{0,2}",
            long in 120usize..300,
        ) {
            for text in [text.clone(), text.repeat(long / text.len().max(1) + 1)] {
                proptest::prop_assert_eq!(Name::parse(&text), Name::parse_check_by_check(&text));
                proptest::prop_assert_eq!(
                    ServerName::parse(&text),
                    ServerName::parse_check_by_check(&text)
                );
                proptest::prop_assert_eq!(EventId::parse(&text), EventId::parse_check_by_check(&text));
            }
        }
    }

    #[test]
    fn quantities() {
        assert_eq!(Quantity::new(1).unwrap().get(), 1);
        assert_eq!(Quantity::new(1_000_000).unwrap().get(), 1_000_000);
        assert_eq!(Quantity::new(0).unwrap_err(), "must be between 1 and 1000000, got 0");
        assert!(Quantity::new(1_000_001).is_err());
        assert!(Quantity::new(-5).is_err());
    }

    #[test]
    fn anniversaries() {
        assert_eq!(Anniversary::parse("02-29").unwrap().to_string(), "02-29");
        assert!(Anniversary::parse("02-30").is_err());
        assert!(Anniversary::parse("13-01").is_err());
        assert!(Anniversary::parse("1-01").is_err());
    }

    #[test]
    fn server_names_are_lower_case() {
        assert_eq!(ServerName::parse("LS01.Contoso.COM").unwrap().as_str(), "ls01.contoso.com");
        assert!(ServerName::parse("ls 01").is_err());
        assert!(ServerName::parse("").is_err());
    }

    #[test]
    fn versions_are_ordered() {
        assert!(ProductVersion::V2019 < ProductVersion::V2022);
        assert!(ProductVersion::V2008 < ProductVersion::V2008R2);
        assert_eq!(
            ProductVersion::parse("2021").unwrap_err(),
            "must be one of \"2008\", \"2008R2\", \"2012\", \"2016\", \"2019\", \"2022\", \"2025\", got \"2021\""
        );
    }
}
