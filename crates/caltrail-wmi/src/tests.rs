//! The readers against export files written from the documented column layouts.

use caltrail_events::{CalType, ProductVersion};

use crate::{ExportFormat, LicenseStatus, read_keypacks, read_licenses};

macro_rules! fixture {
    ($name:literal) => {
        include_bytes!(concat!("../../../fixtures/wmi/", $name))
    };
}

#[test]
fn the_three_forms_of_a_key_pack_export_read_the_same() {
    let wmi = read_keypacks(fixture!("ls07-keypacks-wmi.csv"), None).unwrap();
    let cim = read_keypacks(fixture!("ls07-keypacks-cim.csv"), None).unwrap();
    let json = read_keypacks(fixture!("ls07-keypacks.json"), None).unwrap();
    assert_eq!(
        (wmi.format, cim.format, json.format),
        (ExportFormat::Csv, ExportFormat::Csv, ExportFormat::Json)
    );
    for export in [&wmi, &cim, &json] {
        assert_eq!(export.built_in_left_out, 1);
        assert_eq!(export.keypacks.len(), 1);
        let pack = &export.keypacks[0];
        assert_eq!(
            (
                pack.keypack_id,
                pack.product_version,
                pack.cal_type,
                pack.total,
                pack.issued,
                pack.available
            ),
            (4, ProductVersion::V2019, CalType::PerUser, 3, 3, Some(0))
        );
        assert_eq!(pack.expires_at.unwrap().to_rfc3339(), "2038-01-01T01:00:00Z");
    }
    assert_eq!(wmi.keypacks[0].place, "row 2 (line 4)");
    assert_eq!(json.keypacks[0].place, "object 2");
}

#[test]
fn quoted_commas_keypack_type_7_and_a_missing_version_id_read() {
    let export = read_keypacks(fixture!("ls30-keypacks-wmi.csv"), None).unwrap();
    let retail = &export.keypacks[1];
    assert_eq!(retail.description.as_deref(), Some("Retail, bought 2024, \"spare\""));
    assert_eq!((retail.keypack_type, retail.product_version), (7, ProductVersion::V2022));
    assert_eq!(export.keypacks[0].product_version, ProductVersion::V2012);
}

#[test]
fn the_three_forms_of_an_issued_license_export_read_the_same() {
    let forms = [
        read_licenses(fixture!("ls06-issued-wmi.csv"), None).unwrap().1,
        read_licenses(fixture!("ls06-issued-cim.csv"), None).unwrap().1,
        read_licenses(fixture!("ls06-issued.json"), None).unwrap().1,
    ];
    for licenses in &forms {
        let summary: Vec<(u32, &str, LicenseStatus, String)> = licenses
            .iter()
            .map(|l| (l.license_id, l.holder.as_str(), l.status, l.issued_at.unwrap().to_rfc3339()))
            .collect();
        assert_eq!(
            summary,
            [
                (11, "WG-KIOSK-02", LicenseStatus::Active, "2025-05-12T08:10:00Z".to_owned()),
                (12, "WG-KIOSK-03", LicenseStatus::Active, "2025-05-15T08:20:00Z".to_owned()),
                (13, "WG-KIOSK-04", LicenseStatus::Temporary, "2025-05-20T09:00:00Z".to_owned()),
            ]
        );
    }
}

#[test]
fn utf16_without_a_bom_is_not_text() {
    assert!(read_keypacks(b"\x00\"\x00K", None).is_err());
    assert!(read_keypacks(b"\xff\xfe\x00", None).is_err());
    let empty = read_keypacks(b"", None);
    assert!(empty.is_err());
}
