//! `caltrail report`: the HTML holds every finding `check` reports with its numbers, the
//! position and true-up rows as the commands print them, the head hash, and links that land;
//! it fetches nothing, runs no script, escapes what the ledger holds, and lists at most
//! 10,000 events with a note of the rest.

use crate::{Sandbox, fixtures, stories};

/// maud's escaping of text and attribute values.
pub(crate) fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A ledger of the `estate-audit` story and its report, judged at a fixed time.
pub(crate) fn estate_audit_report(sandbox: &Sandbox) -> (String, String) {
    let head = sandbox.append_file(&fixtures().join("estate-audit.jsonl")).ok().head_hash();
    let run = sandbox
        .run(&[
            "report",
            "--out",
            "report.html",
            "--as-of",
            "2024-12-31",
            "--title",
            "Northwind: licence position at the end of 2024",
        ])
        .ok();
    let html = std::fs::read_to_string(sandbox.dir.path().join("report.html")).unwrap();
    let summary = run.stdout.rsplit_once(", ").unwrap().0;
    assert_eq!(summary, "report.html: 5 findings, 74 events listed");
    assert!(run.stderr.is_empty(), "{}", run.stderr);
    (head, html)
}

/// The rows a command printed as JSON Lines, as the report's tables print them.
fn html_rows(json_lines: &str, hidden: &[&str], mark_short: bool) -> Vec<String> {
    json_lines
        .lines()
        .map(|line| {
            let row: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(line).unwrap();
            let short = mark_short && row["headroom"].as_i64().is_some_and(|h| h < 0);
            let mut html =
                if short { "<tr class=\"short\">".to_owned() } else { "<tr>".to_owned() };
            for (name, value) in &row {
                if hidden.contains(&name.as_str()) {
                    continue;
                }
                html.push_str(&match value {
                    serde_json::Value::Number(n) => format!("<td class=\"n\">{n}</td>"),
                    serde_json::Value::String(s) => format!("<td>{}</td>", escape(s)),
                    serde_json::Value::Null => "<td></td>".to_owned(),
                    other => format!("<td>{other}</td>"),
                });
            }
            html + "</tr>"
        })
        .collect()
}

#[test]
fn the_report_shows_what_check_position_and_true_up_say() {
    let sandbox = Sandbox::new();
    let (head, html) = estate_audit_report(&sandbox);
    assert!(
        html.contains(&format!("id=\"head-hash\">{head}</dd>")),
        "the head hash is on the cover"
    );
    assert!(html.contains("<dt>Estate</dt><dd>2 license servers; agreement EA-7654321</dd>"));
    assert!(html.contains("<dt>As of</dt><dd>2024-12-31T23:59:59.999999Z</dd>"));
    assert!(html.contains("<dt>Events</dt><dd>74</dd>"));
    assert!(html.contains("<h1>Northwind: licence position at the end of 2024</h1>"));

    let check = sandbox.run(&["check", "--as-of", "2024-12-31", "--format", "json"]);
    assert_eq!(check.code, 1);
    assert_eq!(check.stdout.lines().count(), 5);
    assert_shows_findings(&html, &check.stdout, "estate-audit");
    assert!(
        html.contains("<p>4 errors and 1 warning. Each rests on the events listed with it.</p>")
    );

    let position = sandbox.run(&["position", "--as-of", "2024-12-31", "--format", "json"]).ok();
    let rows = html_rows(&position.stdout, &[], true);
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert!(html.contains(&row), "position row {row}");
    }
    let true_up = sandbox.run(&["true-up", "--as-of", "2024-12-31", "--format", "json"]).ok();
    let rows = html_rows(&true_up.stdout, &["agreement"], false);
    assert_eq!(rows.len(), 3);
    for row in rows {
        assert!(html.contains(&row), "true-up row {row}");
    }
    assert!(html.contains("Years from the anniversary of <strong>EA-7654321</strong>"));

    // The charts: one per CAL type, and the revocations of ls20 beside their limit.
    for title in [
        "per-device CALs: rights, installed and in use",
        "per-user CALs: rights, installed and in use",
        "Revocations on ls20.northwind.com, 2022 per-device CALs",
    ] {
        assert!(html.contains(&format!("<strong>{title}</strong>")), "{title}");
    }
    assert_eq!(html.matches("<figure class=\"chart\"").count(), 3);
    assert_eq!(html.matches("<svg ").count(), 3);
    // Every event of the period is listed.
    assert_eq!(html.matches("<tr id=\"ev-").count(), 74);
    assert!(html.contains("Every event of the period, in ledger order."));
}

/// Asserts that `html` shows each finding of `check --format json` with its message, every
/// number beside its name, and a link to each event it rests on that lands on a listed event.
fn assert_shows_findings(html: &str, check_json: &str, story: &str) {
    for line in check_json.lines() {
        let finding: serde_json::Value = serde_json::from_str(line).unwrap();
        let rule = finding["rule"].as_str().unwrap();
        let message = escape(finding["message"].as_str().unwrap());
        let subject = escape(finding["subject"].as_str().unwrap());
        let severity = finding["severity"].as_str().unwrap();
        let opening = format!(
            "<div class=\"finding {severity}\"><div><span class=\"rule\">{rule}</span> · {subject}</div><div class=\"message\">{message}</div>"
        );
        assert!(html.contains(&opening), "{story}: {opening}");
        for (name, value) in finding.as_object().unwrap() {
            if let Some(n) = value.as_i64() {
                assert!(
                    html.contains(&format!("{name} <b>{n}</b>")),
                    "{story}: {rule}: {name} {n}"
                );
            }
        }
        for id in finding["events"].as_array().unwrap() {
            let id = id.as_str().unwrap();
            assert!(html.contains(&format!("<a href=\"#ev-{id}\">{id}</a>")), "{story}: {id}");
            assert!(html.contains(&format!("<tr id=\"ev-{id}\"")), "{story}: {id} is listed");
        }
    }
    let n = check_json.lines().count();
    if n == 0 {
        assert!(html.contains("No rule found anything."), "{story}");
    } else {
        let errors = check_json.lines().filter(|l| l.contains("\"severity\":\"error\"")).count();
        let count = |n: usize, noun: &str| {
            if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
        };
        let summary =
            format!("<p>{} and {}.", count(errors, "error"), count(n - errors, "warning"));
        assert!(html.contains(&summary), "{story}: {summary}");
    }
}

#[test]
fn every_story_s_report_names_every_finding_check_reports() {
    for story in stories() {
        let name = story.file_stem().unwrap().to_string_lossy().into_owned();
        let sandbox = Sandbox::new();
        sandbox.append_file(&story).ok();
        let check = sandbox.run(&["check", "--format", "json"]);
        assert!(check.code <= 1, "{name}: {}", check.stderr);
        sandbox.run(&["report", "--out", "r.html"]).ok();
        let html = std::fs::read_to_string(sandbox.dir.path().join("r.html")).unwrap();
        assert_shows_findings(&html, &check.stdout, &name);
    }
}

#[test]
fn the_report_is_self_contained_and_escapes_what_the_ledger_holds() {
    let sandbox = Sandbox::new();
    sandbox.append_file(&fixtures().join("estate-audit.jsonl")).ok();
    let hostile = sandbox.dir.path().join("hostile.jsonl");
    std::fs::write(
        &hostile,
        r#"{"id":"x-1","type":"cal.issued","at":"2024-07-09T08:00:00Z","note":"<img src=x onerror=alert(2)>","data":{"server":"ls20.northwind.com","keypack":"ls20/2","holder":"<script>alert(1)</script>"}}"#,
    )
    .unwrap();
    sandbox.append_file(&hostile).ok();
    sandbox.run(&["report", "--out", "r.html", "--title", "Q3 <b>audit</b> & \"true-up\""]).ok();
    let html = std::fs::read_to_string(sandbox.dir.path().join("r.html")).unwrap();
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(html.contains("&lt;img src=x onerror=alert(2)&gt;"));
    assert!(html.contains("<title>Q3 &lt;b&gt;audit&lt;/b&gt; &amp; &quot;true-up&quot;</title>"));
    let lower = html.to_lowercase();
    for forbidden in
        ["<script", "<img", "<link", "<iframe", "src=\"", "url(", "@import", "https://"]
    {
        assert!(!lower.contains(forbidden), "the report holds {forbidden:?}");
    }
    // The only address is SVG's namespace, which names and fetches nothing.
    assert_eq!(
        lower.matches("http://").count(),
        lower.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
    );
}

#[test]
fn a_long_history_lists_its_last_10000_events_and_says_how_many_are_left_out() {
    let sandbox = Sandbox::new();
    let estate = sandbox.run(&["generate", "--events", "12000", "--seed", "3"]).ok().stdout;
    let file = sandbox.dir.path().join("estate.jsonl");
    std::fs::write(&file, &estate).unwrap();
    sandbox.append_file(&file).ok();
    let n_events = estate.lines().count();
    let run = sandbox.run(&["report", "--out", "r.html"]).ok();
    let html = std::fs::read_to_string(sandbox.dir.path().join("r.html")).unwrap();
    // Events the findings cite from before the listing are listed apart, so every link lands.
    let cited = html
        .split_once("<h3>Older events the findings rest on</h3>")
        .and_then(|(_, rest)| rest.split_once("<h3>The latest events</h3>"))
        .map_or(0, |(table, _)| table.matches("<tr id=\"ev-").count());
    assert!(cited > 0, "the planted findings cite events older than the last 10,000");
    assert_eq!(html.matches("<tr id=\"ev-").count(), 10_000 + cited);
    assert!(run.stdout.contains(&format!(" {} events listed, ", 10_000 + cited)), "{}", run.stdout);
    assert!(html.contains(&format!(
        "The last 10000 events of the period, in ledger order; {} earlier events are left out",
        n_events - 10_000
    )));
    // The last event is listed, the one 10,000 before it is not (unless a finding cites it).
    let last_id = serde_json::from_str::<serde_json::Value>(estate.lines().last().unwrap())
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(html.contains(&format!("<tr id=\"ev-{last_id}\"")));
    assert!(html.len() < 20 << 20, "{} bytes", html.len());
}
