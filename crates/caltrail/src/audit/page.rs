//! The report's HTML: one file with its stylesheet inline and its charts as inline SVG, no
//! script and nothing fetched. Every text from the ledger goes through maud, which escapes it.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{Cover, EventListing, Finding, Report, ServerSection};
use crate::output::{Cell, Table};

const STYLE: &str = r#"
:root { color-scheme: light; }
body { font: 13px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: #1b1b1b; margin: 24px auto; max-width: 1240px; padding: 0 16px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; border-bottom: 2px solid #1b1b1b; padding-bottom: 2px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 18px 0 6px; }
.cover dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 8px 0; }
.cover dt { color: #555; }
.cover dd { margin: 0; overflow-wrap: anywhere; }
.hash { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 12px; }
th, td { border-bottom: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.short td { background: #fdecea; }
.charts { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px 20px; }
.chart { margin: 0; break-inside: avoid; }
.chart svg { width: 100%; height: auto; display: block; border: 1px solid #e3e3e3; }
.chart figcaption { font-size: 11px; color: #555; margin-top: 3px; }
.legend { color: #1b1b1b; margin-bottom: 2px; }
.legend .key { margin-right: 14px; white-space: nowrap; }
.swatch { display: inline-block; width: 16px; height: 3px; vertical-align: middle; margin-right: 5px;
          -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.finding { border-left: 4px solid #999; padding: 4px 10px; margin: 8px 0; break-inside: avoid; }
.finding.error { border-color: #c62828; }
.finding.warning { border-color: #ef8f00; }
.finding .rule { font-weight: 600; }
.finding .details, .finding .events { font-size: 11px; color: #444; }
.note { color: #555; font-style: italic; }
.ok { color: #2e7d32; }
.events-table td { font-size: 11px; }
.events-table td.data { font-family: ui-monospace, Menlo, Consolas, monospace; overflow-wrap: anywhere; max-width: 520px; }
tr.retracted td { color: #888; text-decoration: line-through; }
@page { margin: 14mm 12mm; }
@media print {
  body { margin: 0; max-width: none; font-size: 10.5px; }
  h2 { break-after: avoid; }
  .charts { grid-template-columns: repeat(2, minmax(0, 1fr)); }
  thead { display: table-header-group; }
  tr, .chart, .finding { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
  section.events { break-before: page; }
}
"#;

/// The whole page.
pub(super) fn render(report: &Report) -> String {
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (report.title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                (cover(&report.title, &report.cover))
                section id="position" {
                    h2 { "Position" }
                    p { "Per CAL type and level, newest first: purchased CALs, the rights they give at or above the level, what is installed and in use, and the headroom (rights − in use at or above; negative when short)." }
                    (position_table(&report.position))
                }
                section id="charts" {
                    h2 { "Over time" }
                    div class="charts" {
                        @for (i, chart) in report.charts.iter().enumerate() {
                            figure class="chart" id={ "chart-" (i + 1) } {
                                (PreEscaped(&chart.svg))
                                figcaption {
                                    div class="legend" {
                                        @for (label, color) in &chart.legend {
                                            span class="key" { span class="swatch" style={ "background:" (color) } {} (label) }
                                        }
                                    }
                                    strong { (chart.title) } ". " (chart.caption)
                                }
                            }
                        }
                    }
                    @for note in &report.charts_left_out {
                        p class="note" { (note) }
                    }
                }
                section id="true-up" {
                    h2 { "True-up" }
                    @match &report.true_up {
                        Ok((agreement, table)) => {
                            p { "Years from the anniversary of " strong { (agreement) } ". Per year, CAL type and level: the peak use at or above the level, the rights at the year's end, the shortfall and what to order." }
                            (table_markup(table, &["agreement"]))
                        }
                        Err(why) => p class="note" { (why) }
                    }
                }
                (findings(&report.findings))
                section id="servers" {
                    h2 { "License servers" }
                    @for server in &report.servers {
                        (server_section(server))
                    }
                }
                (events(&report.events))
            }
        }
    };
    markup.into_string()
}

fn cover(title: &str, cover: &Cover) -> Markup {
    html! {
        header class="cover" id="cover" {
            h1 { (title) }
            dl {
                dt { "Estate" } dd { (cover.estate) }
                dt { "As of" } dd { (cover.as_of) }
                @if let Some(known) = &cover.known_at {
                    dt { "Ledger read as" } dd { (known) }
                }
                dt { "Ledger" } dd { (cover.ledger) }
                dt { "Events" } dd {
                    (cover.n_events)
                    @if cover.n_events != cover.n_in_ledger {
                        " of the " (cover.n_in_ledger) " the ledger holds"
                    }
                }
                dt { "Head hash" } dd class="hash" id="head-hash" { (cover.head_hash) }
                dt { "Signed checkpoint" } dd {
                    @match &cover.checkpoint {
                        Some(checkpoint) => {
                            (checkpoint.origin) ", size " (checkpoint.size) ", root "
                            span class="hash" { (checkpoint.root) }
                            @if !checkpoint.signers.is_empty() {
                                "; signed by " (checkpoint.signers.join(", "))
                            }
                        }
                        None => span class="note" { "none stored (caltrail checkpoint --key signs one)" }
                    }
                }
                dt { "Written by" } dd { "caltrail " (cover.version) " at " (cover.written_at) }
            }
        }
    }
}

fn cell_markup(cell: &Cell) -> Markup {
    html! {
        @match cell {
            Cell::Int(_) | Cell::Float(_) => td class="n" { (cell.text()) },
            _ => td { (cell.text()) },
        }
    }
}

/// A table, leaving out the named columns.
fn table_markup(table: &Table, hidden: &[&str]) -> Markup {
    let shown: Vec<usize> = (0..table.columns.len())
        .filter(|i| !hidden.contains(&table.columns[*i].as_str()))
        .collect();
    html! {
        @if table.rows.is_empty() {
            p class="note" { "None." }
        } @else {
            table {
                thead { tr { @for i in &shown { th { (table.columns[*i]) } } } }
                tbody {
                    @for row in &table.rows {
                        tr { @for i in &shown { (cell_markup(&row[*i])) } }
                    }
                }
            }
        }
    }
}

/// The position, with the rows short of rights marked.
fn position_table(table: &Table) -> Markup {
    let headroom = table.columns.iter().position(|c| c == "headroom");
    html! {
        table {
            thead { tr { @for column in &table.columns { th { (column) } } } }
            tbody {
                @for row in &table.rows {
                    @let short = headroom.is_some_and(|i| matches!(row[i], Cell::Int(h) if h < 0));
                    tr class=[short.then_some("short")] { @for cell in row { (cell_markup(cell)) } }
                }
            }
        }
    }
}

fn findings(findings: &[Finding]) -> Markup {
    let n_errors = findings.iter().filter(|f| f.severity == "error").count();
    html! {
        section id="findings" {
            h2 { "Findings" }
            @if findings.is_empty() {
                p class="ok" { "No rule found anything." }
            } @else {
                p { (count(n_errors, "error")) " and " (count(findings.len() - n_errors, "warning")) ". Each rests on the events listed with it." }
            }
            @for severity in ["error", "warning"] {
                @let group: Vec<&Finding> = findings.iter().filter(|f| f.severity == severity).collect();
                @if !group.is_empty() {
                    h3 { @if severity == "error" { "Errors" } @else { "Warnings" } }
                    @for finding in group {
                        div class={ "finding " (severity) } {
                            div { span class="rule" { (finding.rule) } " · " (finding.subject) }
                            div class="message" { (finding.message) }
                            @if !finding.details.is_empty() {
                                div class="details" {
                                    @for (i, (name, value)) in finding.details.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        (name) " " b { (value) }
                                    }
                                }
                            }
                            @if !finding.events.is_empty() {
                                div class="events" {
                                    "Events: "
                                    @for (i, id) in finding.events.iter().enumerate() {
                                        @if i > 0 { ", " }
                                        a href={ "#ev-" (id) } { (id) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// "1 error", "2 errors".
fn count(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{n} {noun}s") }
}

fn server_section(server: &ServerSection) -> Markup {
    html! {
        div class="server" {
            h3 { (server.server) }
            (table_markup(&server.incarnations, &[]))
            @if server.status_history.rows.len() > 1 {
                p { "Status history" }
                (table_markup(&server.status_history, &[]))
            }
            p { "Key packs" }
            (table_markup(&server.packs, &[]))
            @if !server.migrations_out.rows.is_empty() {
                p { "Migrations out" }
                (table_markup(&server.migrations_out, &[]))
            }
            @if !server.migrations_in.rows.is_empty() {
                p { "Migrations in" }
                (table_markup(&server.migrations_in, &["target"]))
            }
        }
    }
}

fn events(listing: &EventListing) -> Markup {
    html! {
        section class="events" id="events" {
            h2 { "The events" }
            @if listing.n_left_out > 0 {
                p class="note" {
                    "The last " (listing.rows.len()) " events of the period, in ledger order; "
                    (listing.n_left_out) " earlier events are left out (caltrail log lists them all)."
                }
            } @else {
                p { "Every event of the period, in ledger order." }
            }
            @if !listing.cited.is_empty() {
                h3 { "Older events the findings rest on" }
                (event_table(&listing.cited))
                h3 { "The latest events" }
            }
            (event_table(&listing.rows))
        }
    }
}

fn event_table(rows: &[caltrail_replay::EventRow]) -> Markup {
    html! {
        table class="events-table" {
            thead { tr { th { "seq" } th { "id" } th { "type" } th { "at" } th { "recorded" } th { "server" } th { "data" } th { "hash" } } }
            tbody {
                @for row in rows {
                    tr id={ "ev-" (row.id) } class=[row.retracted_by.as_ref().map(|_| "retracted")] {
                        td class="n" { (row.seq) }
                        td { (row.id) }
                        td { (row.event_type) }
                        td { (row.at.to_rfc3339()) }
                        td { (row.recorded_at.to_rfc3339()) }
                        td {
                            @if let Some(server) = &row.server { (server) }
                            @if let Some(target) = &row.target_server { " → " (target) }
                        }
                        td class="data" {
                            (row.data)
                            @if let Some(note) = &row.note { br; i { (note) } }
                            @if let Some(by) = &row.retracted_by { br; "retracted by " (by) }
                        }
                        td class="hash" title=(row.hash) { (&row.hash[..row.hash.len().min(12)]) "…" }
                    }
                }
            }
        }
    }
}
