//! Command-line conventions: `--db` and `CALTRAIL_DB`, exit codes, formats, help, a closed pipe,
//! and `log` with its filters.

use std::io::Read;
use std::process::Stdio;

use crate::{Sandbox, fixtures};

fn estate() -> Sandbox {
    let sandbox = Sandbox::new();
    for story in ["migration-unreachable-source.jsonl", "reactivation-telephone.jsonl"] {
        sandbox.append_file(&fixtures().join(story)).ok();
    }
    sandbox
}

#[test]
fn log_lists_events_with_filters() {
    let sandbox = estate();
    let run = sandbox
        .run(&[
            "log",
            "--server",
            "LS01.contoso.com",
            "--type",
            "cals.migrated",
            "--type",
            "source.cals_removed",
        ])
        .ok();
    assert_eq!(
        run.stdout,
        "seq  at                    type                 id       server                                summary\n  \
           8  2025-03-01T15:30:00Z  cals.migrated        mus-008  ls01.contoso.com -> ls02.contoso.com  migrated 100 CALs from ls01/4 to ls02/2 (source_replaced), still on source\n \
          10  2025-03-27T11:20:00Z  source.cals_removed  mus-010  ls01.contoso.com                      removed 100 migrated CALs from ls01/4 by hand (wmi)\n"
    );
    let run = sandbox
        .run(&[
            "log",
            "--since",
            "2025-05-12",
            "--until",
            "2025-05-14T11:00:00Z",
            "--format",
            "csv",
        ])
        .ok();
    assert_eq!(
        run.stdout,
        "seq,at,type,id,server,summary\n\
         17,2025-05-12T08:10:00Z,cal.issued,rt-006,ls06.woodgrove.com,issued CAL from ls06/3 to WG-KIOSK-02\n\
         18,2025-05-14T11:00:00Z,server.reactivated,rt-007,ls06.woodgrove.com,\"reactivated (certificate_expired, telephone), new id VW56XYZ78ABC90DEF12GHI34JKL56MNO78P\"\n"
    );
    let run = sandbox.run(&["log", "--limit", "1", "--format", "json"]).ok();
    assert_eq!(
        run.stdout,
        "{\"seq\":1,\"at\":\"2024-06-15T10:00:00Z\",\"type\":\"agreement.purchased\",\"id\":\"mus-001\",\"server\":\"\",\"summary\":\"EA-6543210 bought 100 2019 per_user CALs (enterprise_agreement)\"}\n"
    );
}

#[test]
fn the_ledger_comes_from_caltrail_db_when_no_db_is_given() {
    let sandbox = estate();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_caltrail"))
        .args(["log", "--limit", "1", "--format", "csv"])
        .env("CALTRAIL_DB", sandbox.db())
        .output()
        .unwrap();
    assert!(run.status.success());
    assert!(String::from_utf8(run.stdout).unwrap().contains("mus-001"));
}

#[test]
fn usage_and_input_errors_exit_2() {
    let sandbox = Sandbox::new();
    let run = sandbox.run(&["verify"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: no ledger at {} (caltrail append creates one)\n",
            sandbox.db().display()
        )
    );
    assert_eq!(sandbox.run(&["frobnicate"]).code, 2);
    assert_eq!(sandbox.run(&["log", "--since", "yesterday"]).code, 2);
    let run = sandbox.run(&["append", "no-such-file.jsonl"]);
    assert_eq!(run.code, 2);
    assert!(run.stderr.starts_with("caltrail: cannot read no-such-file.jsonl: "), "{}", run.stderr);
    std::fs::write(sandbox.db(), "not a database, just text that is long enough to be a header....................................................................").unwrap();
    let run = sandbox.run(&["verify"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {} is not a valid caltrail ledger: file is not a database (give --db the file `caltrail append` writes)\n",
            sandbox.db().display()
        )
    );
}

#[test]
fn a_sqlite_file_of_another_application_is_refused() {
    let sandbox = Sandbox::new();
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    drop(conn);
    let before = crate::fingerprint(&sandbox.db());
    let run = sandbox.append_file(&fixtures().join("database-rebuilt.jsonl"));
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {} is not a valid caltrail ledger: a SQLite database without the caltrail mark (give --db the file `caltrail append` writes)\n",
            sandbox.db().display()
        )
    );
    assert_eq!(crate::fingerprint(&sandbox.db()), before);
}

#[test]
fn a_ledger_of_a_newer_format_is_refused() {
    let sandbox = estate();
    let conn = rusqlite::Connection::open(sandbox.db()).unwrap();
    conn.pragma_update(None, "user_version", 2).unwrap();
    drop(conn);
    let run = sandbox.run(&["verify"]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        format!(
            "caltrail: {} is a ledger of format 2, newer than this caltrail reads (1): upgrade caltrail\n",
            sandbox.db().display()
        )
    );
}

#[test]
fn help_and_version() {
    let sandbox = Sandbox::new();
    for command in ["append", "verify", "log"] {
        let run = sandbox.run(&[command, "--help"]).ok();
        assert!(run.stdout.contains("Example"), "{command} --help has no example");
    }
    let run = sandbox.run(&["--version"]).ok();
    assert_eq!(run.stdout, format!("caltrail {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn a_closed_pipe_is_not_an_error() {
    let sandbox = estate();
    let mut child =
        sandbox.caltrail(&["log"]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
}

#[test]
fn a_parquet_export_reads_back_with_the_types_other_engines_expect() {
    use arrow::datatypes::{DataType, TimeUnit};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let sandbox = estate();
    let out = sandbox.dir.path().join("parquet");
    let run = sandbox.run(&["export", "--parquet", out.to_str().unwrap()]).ok();
    assert_eq!(run.stdout.lines().count(), caltrail_sql::TABLE_NAMES.len());
    assert!(run.stdout.contains(&format!("{}: 19 rows", out.join("events.parquet").display())));
    let file = std::fs::File::open(out.join("keypacks.parquet")).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let batches: Vec<_> = reader.map(Result::unwrap).collect();
    let schema = batches[0].schema();
    assert_eq!(batches.iter().map(arrow::array::RecordBatch::num_rows).sum::<usize>(), 3);
    assert_eq!(
        schema.field_with_name("installed_at").unwrap().data_type(),
        &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(schema.field_with_name("current_quantity").unwrap().data_type(), &DataType::Int64);
    assert_eq!(schema.field_with_name("keypack").unwrap().data_type(), &DataType::Utf8);
    let keypacks = batches[0].column_by_name("keypack").unwrap();
    let keypacks = keypacks.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
    assert_eq!(
        keypacks.iter().collect::<Vec<_>>(),
        // Valid-time order of creation: ls06/3 was installed first.
        [Some("ls06/3"), Some("ls01/4"), Some("ls02/2")]
    );
}

/// The `events` table `export` writes from its own scan of the ledger is the one `sql` reads
/// from a replay, row for row and in valid-time order (`at`, then `seq`), at every kind of point: every story in
/// one ledger (retractions; entries out of valid-time order, which the scan holds and merges
/// in). The other tables are the same files whether a snapshot serves the replay or not.
#[test]
fn the_events_table_exported_is_the_one_sql_reads() {
    let sandbox = Sandbox::new();
    for story in crate::stories() {
        sandbox.append_file(&story).ok();
    }
    let points: [&[&str]; 6] = [
        &[],
        &["--as-of", "40"],
        &["--as-of", "2024-07-11"],
        &["--as-of", "2025-01-12T08:00:00Z"],
        &["--known-at", "30"],
        &["--known-at", "60", "--as-of", "2024-09-01"],
    ];
    for (i, point) in points.iter().enumerate() {
        let out = sandbox.dir.path().join(format!("out{i}"));
        let mut export = vec!["export", "--parquet", out.to_str().unwrap()];
        export.extend_from_slice(point);
        let exported = sandbox.run(&export).ok();
        let mut sql = vec!["sql", "--format", "json", "SELECT * FROM events ORDER BY \"at\", seq"];
        sql.extend_from_slice(point);
        let expected = sandbox.run(&sql).ok().stdout;

        let actual = json_lines(&parquet_rows(&out.join("events.parquet")));
        assert_eq!(actual, expected, "at {point:?}");
        assert!(
            exported.stdout.starts_with(&format!(
                "{}: {} rows\n",
                out.join("events.parquet").display(),
                expected.lines().count()
            )),
            "{}",
            exported.stdout
        );
    }
    assert_eq!(
        sandbox
            .run(&["sql", "--format", "csv", "SELECT count(*) AS n FROM events"])
            .ok()
            .stdout
            .lines()
            .nth(1),
        Some("152"),
        "every story's events"
    );

    // The first export above wrote a snapshot; this one is served by it.
    let served = sandbox.dir.path().join("served");
    let from_start = sandbox.dir.path().join("from-start");
    sandbox.run(&["export", "--parquet", served.to_str().unwrap()]).ok();
    sandbox.run(&["export", "--no-snapshot", "--parquet", from_start.to_str().unwrap()]).ok();
    assert!(sandbox.db().with_extension("db.snapshot").exists());
    for table in caltrail_sql::TABLE_NAMES {
        let name = format!("{table}.parquet");
        let [served, from_start] = [&served, &from_start].map(|dir| {
            let mut rows = parquet_rows(&dir.join(&name));
            if *table == "true_up_years" {
                // The year in progress ends at the time it is judged: the clock, which moves
                // between the two runs.
                let end = rows.columns.iter().position(|c| c == "period_end").unwrap();
                let open = rows.columns.iter().position(|c| c == "through_end").unwrap();
                for row in &mut rows.rows {
                    if row[open] == caltrail_sql::Cell::Bool(true) {
                        row[end] = caltrail_sql::Cell::Null;
                    }
                }
            }
            rows
        });
        assert!(!served.columns.is_empty(), "{name}");
        assert_eq!(served, from_start, "{name}");
    }
}

/// Rows as `--format json` prints them: an object per line.
fn json_lines(rows: &caltrail_sql::Rows) -> String {
    let mut lines = String::new();
    for row in &rows.rows {
        let object: serde_json::Map<String, serde_json::Value> = rows
            .columns
            .iter()
            .cloned()
            .zip(row.iter().map(|cell| match cell {
                caltrail_sql::Cell::Null => serde_json::Value::Null,
                caltrail_sql::Cell::Int(n) => serde_json::Value::from(*n),
                caltrail_sql::Cell::Text(text) => serde_json::Value::from(text.as_str()),
                other => panic!("the events table holds no {other:?}"),
            }))
            .collect();
        lines.push_str(&format!("{}\n", serde_json::Value::Object(object)));
    }
    lines
}

/// A table of more than one batch (65,536 rows): the `events` file is written a batch at a
/// time on a thread of its own, and holds every row in order.
#[test]
fn an_events_table_of_many_batches_is_exported_whole_and_in_order() {
    let sandbox = Sandbox::new();
    let estate = sandbox.run(&["generate", "--events", "70000", "--seed", "7"]).ok().stdout;
    let file = sandbox.dir.path().join("estate.jsonl");
    std::fs::write(&file, estate).unwrap();
    sandbox.append_file(&file).ok();
    let out = sandbox.dir.path().join("out");
    let exported = sandbox.run(&["export", "--parquet", out.to_str().unwrap()]).ok();
    let expected = sandbox
        .run(&["sql", "--format", "json", "SELECT * FROM events ORDER BY \"at\", seq"])
        .ok()
        .stdout;
    let n = expected.lines().count();
    assert!(n > 65_536, "{n} events");
    assert!(
        exported
            .stdout
            .starts_with(&format!("{}: {n} rows\n", out.join("events.parquet").display()))
    );
    assert_eq!(json_lines(&parquet_rows(&out.join("events.parquet"))), expected);
}

/// A Parquet file's rows, read back as another engine would.
fn parquet_rows(path: &std::path::Path) -> caltrail_sql::Rows {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    let file = std::fs::File::open(path).unwrap();
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = reader.schema().clone();
    let batches = reader.build().unwrap().map(Result::unwrap).collect();
    caltrail_sql::QueryResult { schema, batches }.rows().unwrap()
}

/// The first day with caltrail: an export of a server the ledger has never seen, imported,
/// appended and reconciled; importing it again writes nothing. The import opens with an
/// activation from the earliest IssueDate, so the CALs it brings (issued before the packs'
/// recorded install) are not read as issued by a server never activated.
#[test]
fn import_then_append_then_reconcile_matches() {
    let sandbox = Sandbox::new();
    let wmi = fixtures().join("wmi");
    let keypacks = wmi.join("ls30-keypacks-wmi.csv");
    let issued = wmi.join("ls30-issued.json");
    let import_args = [
        "import",
        "--server",
        "LS30.contoso.com",
        "--keypacks",
        keypacks.to_str().unwrap(),
        "--issued",
        issued.to_str().unwrap(),
        "--agreement",
        "EA-1",
        "--at",
        "2025-06-01T00:00:00Z",
        "--os-version",
        "2022",
        "--license-server-id",
        "ABCDE-12345-FGHIJ-67890-KLMNO-12345-PQRST",
    ];
    let imported = sandbox.run(&import_args).ok();
    assert_eq!(
        imported.stdout,
        concat!(
            r#"{"id":"import:ls30.contoso.com:activated:opening","type":"server.activated","at":"2025-05-12T08:10:00Z","note":"opening balance recorded by import: activated on or before this time","data":{"server":"ls30.contoso.com","license_server_id":"ABCDE12345FGHIJ67890KLMNO12345PQRST","os_version":"2022","method":"automatic","opening":true}}"#,
            "\n",
            r#"{"id":"import:ls30.contoso.com:keypack:4","type":"keypack.installed","at":"2025-06-01T00:00:00Z","note":"imported from a Win32_TSLicenseKeyPack export","data":{"server":"ls30.contoso.com","keypack":"ls30.contoso.com/4","agreement":"EA-1","product_version":"2012","cal_type":"per_user","quantity":20,"wmi_keypack_id":4}}"#,
            "\n",
            r#"{"id":"import:ls30.contoso.com:keypack:5","type":"keypack.installed","at":"2025-06-01T00:00:00Z","note":"imported from a Win32_TSLicenseKeyPack export","data":{"server":"ls30.contoso.com","keypack":"ls30.contoso.com/5","agreement":"EA-1","product_version":"2022","cal_type":"per_device","quantity":5,"wmi_keypack_id":5}}"#,
            "\n",
            r#"{"id":"import:ls30.contoso.com:license:1:20250720T081000Z","type":"cal.issued","at":"2025-05-12T08:10:00Z","note":"imported from a Win32_TSIssuedLicense export","data":{"server":"ls30.contoso.com","keypack":"ls30.contoso.com/5","holder":"PC-A","hardware_id":"a1","temporary":false,"expires_at":"2025-07-20T08:10:00Z"}}"#,
            "\n",
            r#"{"id":"import:ls30.contoso.com:license:2:20250720T081000Z","type":"cal.issued","at":"2025-05-12T08:15:00Z","note":"imported from a Win32_TSIssuedLicense export","data":{"server":"ls30.contoso.com","keypack":"ls30.contoso.com/5","holder":"PC-B","hardware_id":"b2","temporary":false,"expires_at":"2025-07-20T08:10:00Z"}}"#,
            "\n",
        )
    );
    assert!(!sandbox.db().exists(), "import writes nothing to the ledger");
    let file = sandbox.dir.path().join("import.jsonl");
    std::fs::write(&file, &imported.stdout).unwrap();
    let appended = sandbox.append_file(&file).ok();
    assert!(appended.stdout.starts_with("appended 5 events (0 duplicates skipped)"));
    assert_eq!(sandbox.run(&import_args).ok().stdout, "");
    let check = sandbox.run(&["check", "--rule", "issued_while_inactive"]);
    assert_eq!(
        (check.code, check.stdout.as_str()),
        (0, "rule  severity  subject  message  quantity\n")
    );
    let reconciled = sandbox.run(&[
        "reconcile",
        "--server",
        "ls30.contoso.com",
        "--keypacks",
        keypacks.to_str().unwrap(),
        "--issued",
        issued.to_str().unwrap(),
        "--as-of",
        "2025-06-01",
        "--format",
        "csv",
    ]);
    // Per-user CALs are not in Win32_TSIssuedLicense: the 11 the server counts stay unknown.
    assert_eq!(
        reconciled.stdout,
        "kind,keypack,wmi_keypack_id,holder,product_version,cal_type,matched_by,expected_total,observed_total,expected_issued,observed_issued,expected_available,observed_available,verdict,note\n\
         keypack,ls30.contoso.com/4,4,,2012,per_user,wmi_keypack_id,20,20,0,11,20,9,issued_differs,\n\
         keypack,ls30.contoso.com/5,5,,2022,per_device,wmi_keypack_id,5,5,2,2,3,3,match,\n"
    );
    assert_eq!(reconciled.code, 1);
}

#[test]
fn an_agreement_map_names_the_agreement_per_pack() {
    let sandbox = Sandbox::new();
    let map = sandbox.dir.path().join("agreements.txt");
    std::fs::write(
        &map,
        "# per KeyPackId, then per version and type\n5=RETAIL-1\n2012/per_user=EA-2\n",
    )
    .unwrap();
    let keypacks = fixtures().join("wmi/ls30-keypacks-wmi.csv");
    let run = sandbox
        .run(&[
            "import",
            "--server",
            "ls30",
            "--keypacks",
            keypacks.to_str().unwrap(),
            "--agreement-map",
            map.to_str().unwrap(),
            "--at",
            "2025-06-01T00:00:00Z",
            "--os-version",
            "2022",
            "--license-server-id",
            "ABCDE12345FGHIJ67890KLMNO12345PQRST",
        ])
        .ok();
    let agreements: Vec<String> = run
        .stdout
        .lines()
        .filter(|l| l.contains("keypack.installed"))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["data"]["agreement"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(agreements, ["EA-2", "RETAIL-1"]);
    std::fs::write(&map, "5=RETAIL-1\n").unwrap();
    let run = sandbox.run(&[
        "import",
        "--server",
        "ls30",
        "--keypacks",
        keypacks.to_str().unwrap(),
        "--agreement-map",
        map.to_str().unwrap(),
        "--os-version",
        "2022",
        "--license-server-id",
        "ABCDE12345FGHIJ67890KLMNO12345PQRST",
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(
        run.stderr,
        "caltrail: row 1 (line 3): no agreement for KeyPackId 4 (2012 per_user) in the agreement map\n"
    );
}

/// An import for a server the ledger never saw activated must say what the opening activation
/// is: the refusal names the missing flag, and nothing is printed.
#[test]
fn an_import_without_an_activation_names_the_missing_flag() {
    let sandbox = Sandbox::new();
    let keypacks = fixtures().join("wmi/ls30-keypacks-wmi.csv");
    let run = sandbox.run(&[
        "import",
        "--server",
        "ls30",
        "--keypacks",
        keypacks.to_str().unwrap(),
        "--agreement",
        "EA-1",
        "--os-version",
        "2022",
    ]);
    assert_eq!(run.code, 2);
    assert_eq!(run.stdout, "");
    assert_eq!(
        run.stderr,
        "caltrail: the ledger holds no activation of ls30: the import records an opening activation, which needs --os-version and --license-server-id (missing: --license-server-id)\n"
    );
}

/// A generated estate gives exactly the findings its planted servers plant, and the same sizes
/// and seed give the same bytes.
#[test]
fn a_generated_estate_checks_to_exactly_its_planted_findings() {
    let sandbox = Sandbox::new();
    let args = [
        "generate",
        "--servers",
        "3",
        "--devices",
        "300",
        "--users",
        "90",
        "--years",
        "2",
        "--seed",
        "5",
    ];
    let first = sandbox.run(&args).ok();
    assert_eq!(sandbox.run(&args).ok().stdout, first.stdout);
    let lines = first.stdout.lines().count();
    assert!(lines > 4_000, "{lines}");
    assert!(
        first
            .stderr
            .starts_with(&format!("caltrail: generated {lines} events; planted findings: "))
    );
    let file = sandbox.dir.path().join("estate.jsonl");
    std::fs::write(&file, &first.stdout).unwrap();
    sandbox.append_file(&file).ok();
    sandbox.run(&["verify"]).ok();
    let run = sandbox.run(&["check", "--format", "csv"]);
    assert_eq!(run.code, 1);
    let rules: Vec<&str> =
        run.stdout.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
    let planted: Vec<&str> = caltrail_generate::PLANTED
        .iter()
        .flat_map(|(rule, n)| std::iter::repeat_n(*rule, *n as usize))
        .collect();
    assert_eq!(rules, planted);
}
