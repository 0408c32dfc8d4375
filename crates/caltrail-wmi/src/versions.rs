//! The one table of how exports name a CAL's version and type (`data/versions.csv`, and the
//! licence description codes such as `C50-10.01-S`): ProductVersionID, localized ProductVersion
//! texts, and the codes of `Win32_TSLicenseKeyPack.Description` and Active Directory's
//! `msTSLicenseVersion3`.

use std::sync::OnceLock;

use caltrail_events::{CalType, ProductVersion};

const TABLE: &str = include_str!("../data/versions.csv");

/// What a description code's prefix says of the CAL type.
const TYPE_CODES: &[(&str, CalType)] = &[("A02", CalType::PerDevice), ("C50", CalType::PerUser)];

struct Table {
    ids: Vec<(i64, ProductVersion)>,
    texts: Vec<(String, ProductVersion)>,
    codes: Vec<(String, ProductVersion)>,
}

fn table() -> &'static Table {
    static TABLE_ONCE: OnceLock<Table> = OnceLock::new();
    TABLE_ONCE.get_or_init(|| {
        let mut table = Table { ids: Vec::new(), texts: Vec::new(), codes: Vec::new() };
        for line in TABLE.lines() {
            if line.starts_with('#') || line.is_empty() || line == "kind,key,version" {
                continue;
            }
            let mut fields = line.split(',');
            let (Some(kind), Some(key), Some(version), None) =
                (fields.next(), fields.next(), fields.next(), fields.next())
            else {
                panic!("invariant: versions.csv has three columns: {line}");
            };
            let version = ProductVersion::parse(version)
                .unwrap_or_else(|_| panic!("invariant: versions.csv names versions: {line}"));
            match kind {
                "id" => table.ids.push((key.parse().expect("invariant: ids are numbers"), version)),
                "text" => table.texts.push((normalize(key), version)),
                "code" => table.codes.push((key.to_owned(), version)),
                _ => panic!("invariant: versions.csv kinds are id, text and code: {line}"),
            }
        }
        table
    })
}

/// Lower case, runs of white space as one space, trimmed.
fn normalize(text: &str) -> String {
    text.split_whitespace().map(str::to_lowercase).collect::<Vec<_>>().join(" ")
}

/// The version a `ProductVersionID` names, if the table knows it.
pub(crate) fn version_of_id(id: i64) -> Option<ProductVersion> {
    table().ids.iter().find(|(key, _)| *key == id).map(|(_, v)| *v)
}

/// The version a `ProductVersion` text names: a text of the table, else a text naming exactly
/// one version ("Windows Server 2019 Datacenter"). `None` when it names none or several.
pub(crate) fn version_of_text(text: &str) -> Option<ProductVersion> {
    let text = normalize(text);
    if let Some((_, version)) = table().texts.iter().find(|(key, _)| *key == text) {
        return Some(*version);
    }
    let words: Vec<&str> = text.split(' ').collect();
    let mut named: Vec<ProductVersion> = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let r2 = words.get(i + 1) == Some(&"r2");
        let version = match (*word, r2) {
            ("2008", true) => ProductVersion::V2008R2,
            ("2008", false) => ProductVersion::V2008,
            // 2012 R2 session hosts take 2012 CALs.
            ("2012", _) => ProductVersion::V2012,
            ("2016", _) => ProductVersion::V2016,
            ("2019", _) => ProductVersion::V2019,
            ("2022", _) => ProductVersion::V2022,
            ("2025", _) => ProductVersion::V2025,
            _ => continue,
        };
        if !named.contains(&version) {
            named.push(version);
        }
    }
    match named.as_slice() {
        [one] => Some(*one),
        _ => None,
    }
}

/// A licence description code read: `C50-10.01-S` is a per-user 2019 CAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LicenceCode {
    pub cal_type: CalType,
    pub product_version: ProductVersion,
}

/// Whether `text` has the shape of a description code (`XXX-N.NN[-X]`), known or not.
pub(crate) fn looks_like_code(text: &str) -> bool {
    let mut parts = text.trim().split('-');
    let prefix = parts.next().unwrap_or("");
    let version = parts.next().unwrap_or("");
    prefix.len() == 3
        && prefix.chars().all(|c| c.is_ascii_alphanumeric())
        && version.contains('.')
        && version.chars().all(|c| c.is_ascii_digit() || c == '.')
}

/// Reads a description code, or says why not (naming the codes caltrail knows).
pub(crate) fn licence_code(text: &str) -> Result<LicenceCode, String> {
    let text = text.trim();
    let mut parts = text.split('-');
    let (prefix, version) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let cal_type = TYPE_CODES
        .iter()
        .find(|(code, _)| code.eq_ignore_ascii_case(prefix))
        .map(|(_, t)| *t)
        .ok_or_else(|| {
            format!(
                "{text:?} is not a licence code caltrail knows: it starts with A02 (per device) or C50 (per user)"
            )
        })?;
    let product_version =
        table().codes.iter().find(|(code, _)| code == version).map(|(_, v)| *v).ok_or_else(
            || {
                let known: Vec<String> =
                    table().codes.iter().map(|(c, v)| format!("{c} ({v})")).collect();
                format!(
                    "{text:?} names a version caltrail does not know: {version:?} (it knows {})",
                    known.join(", ")
                )
            },
        )?;
    Ok(LicenceCode { cal_type, product_version })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_reads_and_names_each_version() {
        assert_eq!(version_of_id(2), Some(ProductVersion::V2008));
        assert_eq!(version_of_id(3), Some(ProductVersion::V2008R2));
        assert_eq!(version_of_id(7), Some(ProductVersion::V2022));
        assert_eq!(version_of_id(8), Some(ProductVersion::V2025));
        assert_eq!(version_of_id(0), None);
        assert_eq!(
            version_of_text("Windows Server 2008 oder Windows Server 2008 R2"),
            Some(ProductVersion::V2008)
        );
        assert_eq!(version_of_text("windows  server 7"), Some(ProductVersion::V2008R2));
        assert_eq!(version_of_text("Windows Server 2019 Datacenter"), Some(ProductVersion::V2019));
        assert_eq!(version_of_text("Windows Server 2008 und Windows Server 2008 R2"), None);
        assert_eq!(version_of_text("Windows 2000 Server"), None);
    }

    #[test]
    fn licence_codes_read_and_unknown_ones_are_named() {
        assert_eq!(
            licence_code("C50-10.01-S"),
            Ok(LicenceCode { cal_type: CalType::PerUser, product_version: ProductVersion::V2019 })
        );
        assert_eq!(
            licence_code("A02-6.00-S"),
            Ok(LicenceCode {
                cal_type: CalType::PerDevice,
                product_version: ProductVersion::V2008
            })
        );
        assert!(licence_code("C50-11.00-S").unwrap_err().contains("\"11.00\""));
        assert!(licence_code("B77-6.00-S").unwrap_err().contains("A02 (per device)"));
        assert!(looks_like_code("C50-6.02-S"));
        assert!(!looks_like_code("393216"));
    }
}
