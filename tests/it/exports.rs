//! Exports other people's tools write, end to end: key pack lists re-exported by monitoring
//! agents and scripts (a section line, `;` separators, WMI's -1, a header with one column more
//! than its rows), per-user CALs from Active Directory and from the usage report. Each is
//! imported, appended and reconciled; a malformed variant of each gives its exact error.

use crate::{Sandbox, fixtures};

const LS41_ID: &str = "FA41A-BC41D-EF41G-HI41J-KL41M-NO41P-QR41S";
const LS42_ID: &str = "FA42A-BC42D-EF42G-HI42J-KL42M-NO42P-QR42S";

fn wmi(name: &str) -> String {
    fixtures().join("wmi").join(name).to_str().unwrap().to_owned()
}

/// Imports a key pack export of a server the ledger has not seen, appends it, and returns the
/// keypack.installed lines as (keypack, version, type, quantity).
fn import_keypacks(
    sandbox: &Sandbox,
    server: &str,
    file: &str,
    os: &str,
    id: &str,
) -> Vec<(String, String, String, u64)> {
    let imported = sandbox
        .run(&[
            "import",
            "--server",
            server,
            "--keypacks",
            &wmi(file),
            "--agreement",
            "EA-41",
            "--at",
            "2025-06-01T00:00:00Z",
            "--os-version",
            os,
            "--license-server-id",
            id,
        ])
        .ok();
    let path = sandbox.dir.path().join(format!("{server}.jsonl"));
    std::fs::write(&path, &imported.stdout).unwrap();
    sandbox.append_file(&path).ok();
    imported
        .stdout
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .filter(|event| event["type"] == "keypack.installed")
        .map(|event| {
            let data = &event["data"];
            (
                data["keypack"].as_str().unwrap().to_owned(),
                data["product_version"].as_str().unwrap().to_owned(),
                data["cal_type"].as_str().unwrap().to_owned(),
                data["quantity"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn pack(
    keypack: &str,
    version: &str,
    cal_type: &str,
    quantity: u64,
) -> (String, String, String, u64) {
    (keypack.to_owned(), version.to_owned(), cal_type.to_owned(), quantity)
}

fn reconcile(sandbox: &Sandbox, server: &str, file: &str) -> (i32, String) {
    let run = sandbox.run(&[
        "reconcile",
        "--server",
        server,
        "--keypacks",
        &wmi(file),
        "--as-of",
        "2025-07-02",
        "--format",
        "csv",
    ]);
    (run.code, run.stdout)
}

const HEADER: &str = "kind,keypack,wmi_keypack_id,holder,product_version,cal_type,matched_by,expected_total,observed_total,expected_issued,observed_issued,expected_available,observed_available,verdict,note\n";

/// Three estates' key pack lists in three shapes, then their per-user CALs from Active
/// Directory (two slots for one user, on two servers) and from the usage report, which adds
/// only the users Active Directory did not show. Every pack then reconciles.
#[test]
fn re_exported_key_packs_and_per_user_cals_import_append_and_reconcile() {
    let sandbox = Sandbox::new();
    // A monitoring agent's section: the built-in pack (ProductType 3, -1) and the temporary
    // pool (KeyPackType 4) left out; "2008 oder 2008 R2" with ID 2 is 2008; ID 7 is 2022.
    assert_eq!(
        import_keypacks(
            &sandbox,
            "ls41.fabrikam.com",
            "ls41-keypacks-section.csv",
            "2022",
            LS41_ID
        ),
        [
            pack("ls41.fabrikam.com/8", "2008", "per_device", 40),
            pack("ls41.fabrikam.com/9", "2022", "per_user", 25),
        ]
    );
    // German culture, `;`: ID 8 is 2025 and ID 7 is 2022 whatever the text says.
    assert_eq!(
        import_keypacks(
            &sandbox,
            "ls42.fabrikam.com",
            "ls42-keypacks-semicolon.csv",
            "2025",
            LS42_ID
        ),
        [
            pack("ls42.fabrikam.com/3", "2008", "per_device", 10),
            pack("ls42.fabrikam.com/4", "2025", "per_user", 30),
            pack("ls42.fabrikam.com/5", "2022", "per_device", 15),
        ]
    );
    // VBScript: -1 totals, and a header naming TypeAndModel, which no row carries.
    assert_eq!(
        import_keypacks(
            &sandbox,
            "ls43.fabrikam.com",
            "ls43-keypacks-vbscript.csv",
            "2019",
            "FA43A-BC43D-EF43G-HI43J-KL43M-NO43P-QR43S"
        ),
        [
            pack("ls43.fabrikam.com/5", "2019", "per_device", 50),
            pack("ls43.fabrikam.com/6", "2016", "per_user", 10),
        ]
    );

    let ad_args = |file: &str| {
        vec![
            "import".to_owned(),
            "--ad-users".to_owned(),
            wmi(file),
            "--domain".to_owned(),
            "FABRIKAM".to_owned(),
            "--at".to_owned(),
            "2025-06-15T00:00:00Z".to_owned(),
        ]
    };
    let run_args = |args: &[String]| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        sandbox.run(&args)
    };
    let from_csv = run_args(&ad_args("ad-users.csv")).ok();
    assert_eq!(
        from_csv.stdout,
        concat!(
            r#"{"id":"import:ls41.fabrikam.com:user:fabrikam_5calice:2022:20250810T090000Z","type":"cal.issued","at":"2025-06-15T00:00:00Z","note":"imported from Active Directory (msTS attributes)","data":{"server":"ls41.fabrikam.com","keypack":"ls41.fabrikam.com/9","holder":"FABRIKAM\\alice","temporary":false,"expires_at":"2025-08-10T09:00:00Z"}}"#,
            "\n",
            r#"{"id":"import:ls41.fabrikam.com:user:fabrikam_5cbob:2022:20250812T103000Z","type":"cal.issued","at":"2025-06-15T00:00:00Z","note":"imported from Active Directory (msTS attributes)","data":{"server":"ls41.fabrikam.com","keypack":"ls41.fabrikam.com/9","holder":"FABRIKAM\\bob","temporary":false,"expires_at":"2025-08-12T10:30:00Z"}}"#,
            "\n",
            r#"{"id":"import:ls42.fabrikam.com:user:fabrikam_5cbob:2025:20250730T080000Z","type":"cal.issued","at":"2025-06-15T00:00:00Z","note":"imported from Active Directory (msTS attributes)","data":{"server":"ls42.fabrikam.com","keypack":"ls42.fabrikam.com/4","holder":"FABRIKAM\\bob","temporary":false,"expires_at":"2025-07-30T08:00:00Z"}}"#,
            "\n",
        )
    );
    assert_eq!(run_args(&ad_args("ad-users.json")).ok().stdout, from_csv.stdout);
    let path = sandbox.dir.path().join("ad.jsonl");
    std::fs::write(&path, &from_csv.stdout).unwrap();
    assert!(sandbox.append_file(&path).ok().stdout.starts_with("appended 3 events"));
    assert_eq!(run_args(&ad_args("ad-users.csv")).ok().stdout, "", "a re-import writes nothing");

    let report = sandbox
        .run(&[
            "import",
            "--usage-report",
            &wmi("ls41-usage-report.csv"),
            "--server",
            "ls41.fabrikam.com",
            "--at",
            "2025-06-20T00:00:00Z",
        ])
        .ok();
    let holders: Vec<String> = report
        .stdout
        .lines()
        .map(|line| {
            let event: serde_json::Value = serde_json::from_str(line).unwrap();
            event["data"]["holder"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(holders, ["FABRIKAM\\carol", "FABRIKAM\\dave"]);
    let path = sandbox.dir.path().join("report.jsonl");
    std::fs::write(&path, &report.stdout).unwrap();
    sandbox.append_file(&path).ok();

    assert_eq!(
        reconcile(&sandbox, "ls41.fabrikam.com", "ls41-keypacks-section.csv"),
        (
            0,
            format!(
                "{HEADER}keypack,ls41.fabrikam.com/8,8,,2008,per_device,wmi_keypack_id,40,40,0,0,40,40,match,\n\
                 keypack,ls41.fabrikam.com/9,9,,2022,per_user,wmi_keypack_id,25,25,4,4,21,21,match,\n"
            )
        )
    );
    assert_eq!(
        reconcile(&sandbox, "ls42.fabrikam.com", "ls42-keypacks-semicolon.csv"),
        (
            0,
            format!(
                "{HEADER}keypack,ls42.fabrikam.com/3,3,,2008,per_device,wmi_keypack_id,10,10,0,0,10,10,match,\n\
                 keypack,ls42.fabrikam.com/4,4,,2025,per_user,wmi_keypack_id,30,30,1,1,29,29,match,\n\
                 keypack,ls42.fabrikam.com/5,5,,2022,per_device,wmi_keypack_id,15,15,0,0,15,15,match,\n"
            )
        )
    );
    assert_eq!(
        reconcile(&sandbox, "ls43.fabrikam.com", "ls43-keypacks-vbscript.csv"),
        (
            0,
            format!(
                "{HEADER}keypack,ls43.fabrikam.com/5,5,,2019,per_device,wmi_keypack_id,50,50,0,0,50,50,match,\n\
                 keypack,ls43.fabrikam.com/6,6,,2016,per_user,wmi_keypack_id,10,10,0,0,10,10,match,\n"
            )
        )
    );
}

/// Each malformed variant: exit 2, one line naming the file, row, line and column, and nothing
/// written.
#[test]
fn malformed_exports_name_the_row_and_column() {
    let sandbox = Sandbox::new();
    import_keypacks(&sandbox, "ls41.fabrikam.com", "ls41-keypacks-section.csv", "2022", LS41_ID);
    let head = sandbox.run(&["verify"]).ok().stdout;
    let malformed = |name: &str| wmi(&format!("malformed/{name}"));
    let cases: [(Vec<String>, String); 4] = [
        (
            vec![
                "--server".into(),
                "ls41.fabrikam.com".into(),
                "--keypacks".into(),
                malformed("short-row.csv"),
                "--agreement".into(),
                "EA-41".into(),
            ],
            format!(
                "caltrail: {}: not a valid CSV export: row 2 (line 4), column ExpirationDate: no value (the row has 9 values where the header names 10 columns)\n",
                malformed("short-row.csv")
            ),
        ),
        (
            vec!["--ad-users".into(), malformed("ad-unknown-code.csv")],
            format!(
                "caltrail: {}: row 2 (line 3), column msTSLicenseVersion3: \"C50-11.00-S\" names a version caltrail does not know: \"11.00\" (it knows 6.00 (2008), 6.01 (2008R2), 6.02 (2012), 10.00 (2016), 10.01 (2019), 10.02 (2022), 10.03 (2025))\n",
                malformed("ad-unknown-code.csv")
            ),
        ),
        (
            vec!["--ad-users".into(), malformed("ad-unknown-server.csv")],
            format!(
                "caltrail: {}: row 1 (line 2), column msTSManagingLS: the license server FA99A-BC99D-EF99G-HI99J-KL99M-NO99P-QR99S is in no activation the ledger holds: give --server-map FA99A-BC99D-EF99G-HI99J-KL99M-NO99P-QR99S=NAME\n",
                malformed("ad-unknown-server.csv")
            ),
        ),
        (
            vec![
                "--usage-report".into(),
                malformed("usage-per-device.csv"),
                "--server".into(),
                "ls41.fabrikam.com".into(),
            ],
            format!(
                "caltrail: {}: row 2 (line 3), column CALType: \"Per Device\" is per device: the usage report lists per-user CALs\n",
                malformed("usage-per-device.csv")
            ),
        ),
    ];
    for (args, stderr) in cases {
        let mut all = vec!["import"];
        all.extend(args.iter().map(String::as_str));
        let run = sandbox.run(&all);
        assert_eq!((run.code, run.stdout.as_str(), run.stderr.as_str()), (2, "", stderr.as_str()));
    }
    assert_eq!(sandbox.run(&["verify"]).ok().stdout, head, "nothing was written");
}

fn eventlog(name: &str) -> String {
    fixtures().join("eventlog").join(name).to_str().unwrap().to_owned()
}

/// The event log in two forms: ls01's as `wevtutil qe /f:xml` writes it (no root element, a
/// classic TermServLicensing event and one of another provider), ls02's as `Get-WinEvent |
/// Export-Csv` writes it. `eventlog` lists the licensing events; `reconcile --eventlog` sets
/// them beside the `migration-unreachable-source` story.
#[test]
fn the_event_log_is_listed_and_set_beside_the_ledger() {
    let sandbox = Sandbox::new();
    let listed =
        sandbox.run(&["eventlog", &eventlog("ls01-licensing.xml"), "--format", "csv"]).ok();
    assert_eq!(
        listed.stdout,
        "time,event_id,provider,computer,meaning,fields,message\n\
         2024-06-10T09:12:44Z,4,TermServLicensing,LS01.contoso.com,the license server was activated,param1=8QJ2K-4HR7T-PW3XM-9D6FB-2CVNL-7YG4S-K5E8A,\n\
         2025-02-14T07:30:00Z,18,Microsoft-Windows-TerminalServices-Licensing,LS01.contoso.com,the license server's certificate: a problem was reported,param1=LS01,\n\
         2025-03-10T16:02:11.531Z,90,Microsoft-Windows-TerminalServices-Licensing,LS01.contoso.com,migration: removing the CALs from the source license server failed,param1=4; param2=100,\n\
         2025-03-27T11:21:07.123456Z,89,Microsoft-Windows-TerminalServices-Licensing,LS01.contoso.com,migration: the CALs were removed from the source license server,param1=4; param2=100,\n"
    );
    let listed =
        sandbox.run(&["eventlog", &eventlog("ls02-licensing.csv"), "--format", "csv"]).ok();
    let ids: Vec<&str> =
        listed.stdout.lines().skip(1).map(|l| l.split(',').nth(1).unwrap()).collect();
    assert_eq!(ids, ["4", "92", "81", "21", "93"]);

    sandbox.append_file(&fixtures().join("migration-unreachable-source.jsonl")).ok();
    let run = sandbox.run(&[
        "reconcile",
        "--eventlog",
        &eventlog("ls01-licensing.xml"),
        "--format",
        "csv",
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "time,event_id,computer,server,place,verdict,what_to_record\n\
             2024-06-10T09:12:44Z,4,LS01.contoso.com,ls01.contoso.com,event 1 (line 1),before_ledger,record server.activated of ls01.contoso.com at 2024-06-10T09:12:44Z: the ledger's first activation is at 2024-06-20T06:15:00Z\n\
             2025-03-27T11:21:07.123456Z,89,LS01.contoso.com,ls01.contoso.com,event 5 (line 5),match,\n"
        )
    );
    // With --server, only that server's events: ls01's file holds none of ls02's.
    let run = sandbox.run(&[
        "reconcile",
        "--eventlog",
        &eventlog("ls01-licensing.xml"),
        "--server",
        "ls02.contoso.com",
        "--format",
        "csv",
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (0, "time,event_id,computer,server,place,verdict,what_to_record\n")
    );
    let run = sandbox.run(&[
        "reconcile",
        "--eventlog",
        &eventlog("ls02-licensing.csv"),
        "--format",
        "csv",
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "time,event_id,computer,server,place,verdict,what_to_record\n\
             2025-03-01T14:00:40Z,4,ls02.contoso.com,ls02.contoso.com,row 1 (line 3),match,\n\
             2025-03-01T15:31:02Z,92,ls02.contoso.com,ls02.contoso.com,row 2 (line 4),match,\n\
             2025-05-02T10:15:00Z,81,ls02.contoso.com,ls02.contoso.com,row 3 (line 5),match,\n\
             2025-06-01T08:00:00Z,21,ls02.contoso.com,ls02.contoso.com,row 4 (line 6),match,\n\
             2025-09-01T09:45:10Z,93,ls02.contoso.com,ls02.contoso.com,row 5 (line 7),not_in_ledger,\"record cals.migrated to ls02.contoso.com at 2025-09-01T09:45:10Z (\"\"reason\"\": \"\"source_not_functioning\"\"); then source.cals_removed on the source once its CALs are gone\"\n"
        )
    );
}

/// The same log as a `.evtx` file (fixtures/eventlog/make_evtx.py writes it in the Windows event
/// log format: a file header, a chunk, binary XML records), read through the evtx crate.
#[test]
fn an_evtx_file_reads_as_its_xml_does() {
    let sandbox = Sandbox::new();
    let listed =
        sandbox.run(&["eventlog", &eventlog("ls01-licensing.evtx"), "--format", "csv"]).ok();
    assert_eq!(
        listed.stdout,
        "time,event_id,provider,computer,meaning,fields,message\n\
         2024-06-10T09:12:44Z,4,TermServLicensing,LS01.contoso.com,the license server was activated,param1=8QJ2K-4HR7T-PW3XM-9D6FB-2CVNL-7YG4S-K5E8A,\n\
         2025-03-10T16:02:11.531Z,90,Microsoft-Windows-TerminalServices-Licensing,LS01.contoso.com,migration: removing the CALs from the source license server failed,param1=4; param2=100,\n\
         2025-03-27T11:21:07.123456Z,89,Microsoft-Windows-TerminalServices-Licensing,LS01.contoso.com,migration: the CALs were removed from the source license server,param1=4; param2=100,\n"
    );
    sandbox.append_file(&fixtures().join("migration-unreachable-source.jsonl")).ok();
    let run = sandbox.run(&[
        "reconcile",
        "--eventlog",
        &eventlog("ls01-licensing.evtx"),
        "--format",
        "csv",
    ]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (
            1,
            "time,event_id,computer,server,place,verdict,what_to_record\n\
             2024-06-10T09:12:44Z,4,LS01.contoso.com,ls01.contoso.com,record 20311,before_ledger,record server.activated of ls01.contoso.com at 2024-06-10T09:12:44Z: the ledger's first activation is at 2024-06-20T06:15:00Z\n\
             2025-03-27T11:21:07.123456Z,89,LS01.contoso.com,ls01.contoso.com,record 31388,match,\n"
        )
    );
}

/// A removal, a revocation and "no permanent CALs left" the ledger contradicts, on a small
/// per-device estate written here: each finding says what to record.
#[test]
fn the_event_log_finds_what_the_ledger_lacks_or_contradicts() {
    let sandbox = Sandbox::new();
    let history = sandbox.dir.path().join("history.jsonl");
    std::fs::write(
        &history,
        [
            r#"{"id":"el-1","type":"agreement.purchased","at":"2025-01-01T00:00:00Z","data":{"agreement":"EA-7","program":"enterprise_agreement","product_version":"2022","cal_type":"per_device","quantity":10,"anniversary":"01-01"}}"#,
            r#"{"id":"el-2","type":"server.activated","at":"2025-01-02T00:00:00Z","data":{"server":"ls09.contoso.com","license_server_id":"AAAAA-BBBBB-CCCCC-DDDDD-EEEEE-FFFFF-GGGGG","os_version":"2022","method":"automatic"}}"#,
            r#"{"id":"el-3","type":"keypack.installed","at":"2025-01-03T00:00:00Z","data":{"server":"ls09.contoso.com","keypack":"ls09/2","agreement":"EA-7","product_version":"2022","cal_type":"per_device","quantity":10}}"#,
            r#"{"id":"el-4","type":"cal.issued","at":"2025-02-01T09:00:00Z","data":{"server":"ls09.contoso.com","keypack":"ls09/2","holder":"PC-1","expires_at":"2025-04-01T09:00:00Z"}}"#,
            r#"{"id":"el-5","type":"cal.revoked","at":"2025-02-10T09:05:00Z","data":{"server":"ls09.contoso.com","keypack":"ls09/2","holder":"PC-1"}}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    sandbox.append_file(&history).ok();
    let log = sandbox.dir.path().join("ls09.xml");
    let event = |id: u32, time: &str| {
        format!(
            "<Event xmlns='http://schemas.microsoft.com/win/2004/08/events/event'><System><Provider Name='Microsoft-Windows-TerminalServices-Licensing'/><EventID>{id}</EventID><TimeCreated SystemTime='{time}'/><Computer>LS09</Computer></System></Event>\n"
        )
    };
    std::fs::write(
        &log,
        [
            event(81, "2025-02-10T09:00:00Z"),
            event(21, "2025-03-01T00:00:00Z"),
            event(89, "2025-03-05T00:00:00Z"),
        ]
        .concat(),
    )
    .unwrap();
    let run = sandbox.run(&["reconcile", "--eventlog", log.to_str().unwrap(), "--format", "json"]);
    let findings: Vec<(String, String)> = run
        .stdout
        .lines()
        .map(|line| {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                row["verdict"].as_str().unwrap().to_owned(),
                row["what_to_record"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(run.code, 1);
    assert_eq!(
        findings,
        [
            (
                "contradicts_ledger".to_owned(),
                "the server refused a revocation at 2025-02-10T09:00:00Z (the limit was reached), but the ledger records a revocation on ls09.contoso.com then (el-5): retract it with event.retracted if it is that one".to_owned()
            ),
            (
                "contradicts_ledger".to_owned(),
                "the server had no permanent CALs left at 2025-03-01T00:00:00Z, but the ledger shows 10 per-device CALs available on ls09.contoso.com: record the issues, removals or migrations it lacks".to_owned()
            ),
            (
                "not_in_ledger".to_owned(),
                "record source.cals_removed on ls09.contoso.com at 2025-03-05T00:00:00Z (or mark the migration's source_removed): the server removed migrated CALs".to_owned()
            ),
        ]
    );
}

/// A malformed variant of each form: exit 2 and the place named.
#[test]
fn malformed_event_logs_name_the_place() {
    let sandbox = Sandbox::new();
    for (name, message) in [
        (
            "bad-event-id.xml",
            "not a valid event log: event 2 (line 3), EventID: not a number: \"eighty-nine\"",
        ),
        (
            "bad-time.csv",
            "row 2 (line 3), column TimeCreated: is not a date caltrail recognises: \"the first of March\" (name its format with --date-format, such as \"%d/%m/%Y %H:%M:%S\")",
        ),
        (
            "truncated.evtx",
            "not a valid event log: not a readable .evtx file: An error occurred while trying to deserialize evtx stream.",
        ),
    ] {
        let path = eventlog(&format!("malformed/{name}"));
        let run = sandbox.run(&["eventlog", &path]);
        assert_eq!(
            (run.code, run.stdout.as_str(), run.stderr.as_str()),
            (2, "", format!("caltrail: {path}: {message}\n").as_str())
        );
    }
}
