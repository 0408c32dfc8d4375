//! What a license server's export says: its key packs (`Win32_TSLicenseKeyPack`) and its issued
//! per-device CALs (`Win32_TSIssuedLicense`), mapped to the ledger's words (DOMAIN.md, "Real
//! exports"). The built-in pack and the temporary pool are recognised and left out; WMI's
//! uint32 printed as -1 reads as 4294967295.

#![allow(
    missing_docs,
    reason = "each field is the export's column of the same meaning, as README's section on license server exports names them"
)]

use caltrail_events::{CalType, ProductVersion, Timestamp};

use crate::dates::parse_date;
use crate::error::{ExportError, RowError};
use crate::records::{ExportFormat, Record, read_records};

/// The quantity WMI reports for the built-in per-device pack, which is never counted.
pub const BUILT_IN_QUANTITY: i64 = 4_294_967_295;

/// `KeyPackType` of the temporary per-device pool, which holds no purchase.
const TEMPORARY_POOL: i64 = 4;

#[derive(Debug, Clone, PartialEq)]
pub struct ObservedKeypack {
    /// Where it is in the file (`row 3 (line 5)`), for messages.
    pub place: String,
    pub keypack_id: u32,
    pub product_version: ProductVersion,
    pub cal_type: CalType,
    /// WMI's KeyPackType: 0 unknown, 1 retail, 2 volume, 3 concurrent, 4 temporary, 5 open,
    /// 6 not supported, 7 seen in the wild (unknown).
    pub keypack_type: u8,
    pub total: u64,
    pub issued: u64,
    pub available: Option<u64>,
    pub expires_at: Option<Timestamp>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseStatus {
    Unknown,
    Temporary,
    Active,
    Upgrade,
    Revoked,
    Pending,
    Concurrent,
}

impl LicenseStatus {
    fn from_wmi(n: i64) -> Option<LicenseStatus> {
        Some(match n {
            0 => LicenseStatus::Unknown,
            1 => LicenseStatus::Temporary,
            2 => LicenseStatus::Active,
            3 => LicenseStatus::Upgrade,
            4 => LicenseStatus::Revoked,
            5 => LicenseStatus::Pending,
            6 => LicenseStatus::Concurrent,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LicenseStatus::Unknown => "unknown",
            LicenseStatus::Temporary => "temporary",
            LicenseStatus::Active => "active",
            LicenseStatus::Upgrade => "upgrade",
            LicenseStatus::Revoked => "revoked",
            LicenseStatus::Pending => "pending",
            LicenseStatus::Concurrent => "concurrent",
        }
    }

    /// Whether the CAL is held: issued and neither revoked nor waiting.
    pub fn is_held(self) -> bool {
        matches!(
            self,
            LicenseStatus::Temporary
                | LicenseStatus::Active
                | LicenseStatus::Upgrade
                | LicenseStatus::Concurrent
        )
    }
}

/// One issued per-device CAL.
#[derive(Debug, Clone, PartialEq)]
pub struct ObservedLicense {
    pub place: String,
    pub license_id: u32,
    pub keypack_id: u32,
    /// The device it was issued to (`sIssuedToComputer`), else the user.
    pub holder: String,
    pub hardware_id: Option<String>,
    pub status: LicenseStatus,
    pub issued_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
}

/// A key pack export, read.
#[derive(Debug, Clone)]
pub struct KeypackExport {
    pub format: ExportFormat,
    pub keypacks: Vec<ObservedKeypack>,
    /// The built-in per-device pack: never a purchase.
    pub built_in_left_out: usize,
    /// The temporary per-device pool (KeyPackType 4): never a purchase either.
    pub temporary_left_out: usize,
}

/// Reads `Win32_TSLicenseKeyPack` in any of the forms PowerShell writes.
pub fn read_keypacks(
    bytes: &[u8],
    date_format: Option<&str>,
) -> Result<KeypackExport, ExportError> {
    let (format, records) = read_records(bytes)?;
    let mut keypacks = Vec::new();
    let (mut built_in_left_out, mut temporary_left_out) = (0, 0);
    for record in &records {
        let total = uint32(record.required_integer("TotalLicenses")?);
        let model = record.text("TypeAndModel").unwrap_or_default();
        // The built-in pack shows as unlimited, as "Built-in ..." or as ProductType 3, and not
        // every export carries each marker (TypeAndModel is often left out).
        if total == BUILT_IN_QUANTITY && record.integer("KeyPackType")? != Some(TEMPORARY_POOL)
            || model.to_ascii_lowercase().starts_with("built-in")
            || record.integer("ProductType")? == Some(3)
        {
            built_in_left_out += 1;
            continue;
        }
        if record.integer("KeyPackType")? == Some(TEMPORARY_POOL) {
            temporary_left_out += 1;
            continue;
        }
        keypacks.push(read_keypack(record, total, date_format)?);
    }
    Ok(KeypackExport { format, keypacks, built_in_left_out, temporary_left_out })
}

fn read_keypack(
    record: &Record,
    total: i64,
    date_format: Option<&str>,
) -> Result<ObservedKeypack, RowError> {
    let keypack_id = unsigned(record, "KeyPackId")?;
    let cal_type = match record.required_integer("ProductType")? {
        0 => CalType::PerDevice,
        1 => CalType::PerUser,
        2 => return Err(record.error("ProductType", "is 2 (invalid): the pack has no CAL type")),
        n => {
            return Err(record.error(
                "ProductType",
                format!("unknown value {n} (expected 0 per device or 1 per user)"),
            ));
        }
    };
    let keypack_type = match record.integer("KeyPackType")? {
        None => 0,
        Some(n @ 0..=7) => n as u8,
        Some(n) => {
            return Err(record.error("KeyPackType", format!("unknown value {n} (expected 0 to 7)")));
        }
    };
    let issued = count(record, "IssuedLicenses")?.unwrap_or(0);
    Ok(ObservedKeypack {
        place: record.to_string(),
        keypack_id,
        product_version: product_version(record)?,
        cal_type,
        keypack_type,
        total: u64::try_from(total).map_err(|_| {
            record.error("TotalLicenses", format!("must not be negative, got {total}"))
        })?,
        issued,
        available: count(record, "AvailableLicenses")?,
        expires_at: date(record, "ExpirationDate", date_format)?,
        description: record.text("Description"),
    })
}

/// `ProductVersionID` first (the reliable field), else the `ProductVersion` text
/// (`versions.rs`, one table for both).
pub(crate) fn product_version(record: &Record) -> Result<ProductVersion, RowError> {
    let id = record.integer("ProductVersionID")?;
    if let Some(version) = id.and_then(crate::versions::version_of_id) {
        return Ok(version);
    }
    let text = record.text("ProductVersion");
    if let Some(version) = text.as_deref().and_then(crate::versions::version_of_text) {
        return Ok(version);
    }
    Err(match (id, text) {
        (Some(id), Some(text)) => record.error(
            "ProductVersionID",
            format!(
                "{id} is not a version caltrail knows (2 to 8: 2008 to 2025), and the ProductVersion text {text:?} names none it can map"
            ),
        ),
        (Some(id), None) => record.error(
            "ProductVersionID",
            format!("{id} is not a version caltrail knows (2 to 8: 2008 to 2025)"),
        ),
        (None, Some(text)) => record.error(
            "ProductVersion",
            format!("{text:?} is a version caltrail cannot map (it knows 2008 to 2025)"),
        ),
        (None, None) => record.error(
            "ProductVersion",
            "the columns ProductVersion and ProductVersionID are both missing or empty",
        ),
    })
}

/// Reads `Win32_TSIssuedLicense` in any of the forms PowerShell writes.
pub fn read_licenses(
    bytes: &[u8],
    date_format: Option<&str>,
) -> Result<(ExportFormat, Vec<ObservedLicense>), ExportError> {
    let (format, records) = read_records(bytes)?;
    let mut licenses = Vec::new();
    for record in &records {
        let status = record.required_integer("LicenseStatus")?;
        let status = LicenseStatus::from_wmi(status).ok_or_else(|| {
            record.error("LicenseStatus", format!("unknown value {status} (expected 0 to 6)"))
        })?;
        let holder = record
            .text("sIssuedToComputer")
            .or_else(|| record.text("sIssuedToUser"))
            .ok_or_else(|| {
                record.error(
                    "sIssuedToComputer",
                    "neither sIssuedToComputer nor sIssuedToUser is given",
                )
            })?;
        licenses.push(ObservedLicense {
            place: record.to_string(),
            license_id: unsigned(record, "LicenseId")?,
            keypack_id: unsigned(record, "KeyPackId")?,
            holder,
            hardware_id: record.text("sHardwareId"),
            status,
            issued_at: date(record, "IssueDate", date_format)?,
            expires_at: date(record, "ExpirationDate", date_format)?,
        });
    }
    Ok((format, licenses))
}

/// A WMI uint32 as VBScript and some PowerShell paths print it: 4294967295 comes out as -1.
fn uint32(n: i64) -> i64 {
    if n == -1 { BUILT_IN_QUANTITY } else { n }
}

fn unsigned(record: &Record, column: &str) -> Result<u32, RowError> {
    let n = uint32(record.required_integer(column)?);
    u32::try_from(n)
        .map_err(|_| record.error(column, format!("must be between 0 and 4294967295, got {n}")))
}

fn count(record: &Record, column: &str) -> Result<Option<u64>, RowError> {
    record
        .integer(column)?
        .map(uint32)
        .map(|n| {
            u64::try_from(n)
                .map_err(|_| record.error(column, format!("must not be negative, got {n}")))
        })
        .transpose()
}

pub(crate) fn date(
    record: &Record,
    column: &str,
    format: Option<&str>,
) -> Result<Option<Timestamp>, RowError> {
    record
        .text(column)
        .map(|text| parse_date(&text, format).map_err(|m| record.error(column, m)))
        .transpose()
}
