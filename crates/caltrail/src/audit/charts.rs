//! The report's charts: the series come from SQL over the same tables as the rules, and are
//! drawn to SVG text with plotters when the report is written, so the page needs no script.

use anyhow::anyhow;
use caltrail_events::Timestamp;
use caltrail_sql::Engine;
use plotters::prelude::*;

use super::query;
use crate::output::{Cell, Table};

/// At most this many charts of each kind; the page names the ones left out.
const MAX_PER_KIND: usize = 4;

const WIDTH: u32 = 620;
const HEIGHT: u32 = 300;

/// One chart, drawn.
pub(crate) struct Chart {
    pub title: String,
    /// What the chart shows, in a sentence, for the reader and for print.
    pub caption: String,
    /// Each line's label and colour (CSS), shown under the chart rather than over its lines.
    pub legend: Vec<(String, String)>,
    pub svg: String,
}

impl Chart {
    fn new(
        title: String,
        caption: String,
        series: &[Series],
        markers: &[Marker],
        end: i64,
    ) -> anyhow::Result<Chart> {
        let svg = draw(&title, series, markers, end)?;
        let mut legend: Vec<(String, String)> = series
            .iter()
            .map(|s| (s.label.clone(), format!("rgb({},{},{})", s.color.0, s.color.1, s.color.2)))
            .collect();
        if !markers.is_empty() {
            legend.push(("true-up peak".to_owned(), "rgb(0,0,0)".to_owned()));
        }
        Ok(Chart { title, caption, legend, svg })
    }
}

/// A line of a chart: (seconds since 1970, value) points joined in order.
struct Series {
    label: String,
    color: RGBColor,
    points: Vec<(i64, i64)>,
}

/// A point drawn as a marker with a label.
struct Marker {
    label: String,
    at: i64,
    value: i64,
}

const IN_USE: RGBColor = RGBColor(200, 30, 30);
const RIGHTS: RGBColor = RGBColor(20, 80, 180);
const INSTALLED: RGBColor = RGBColor(120, 120, 120);
const PALETTE: [RGBColor; 6] = [
    RGBColor(20, 80, 180),
    RGBColor(200, 30, 30),
    RGBColor(30, 140, 60),
    RGBColor(150, 60, 170),
    RGBColor(220, 120, 0),
    RGBColor(0, 140, 150),
];

/// Every chart of the report, and a note for each kind that had more than fit.
pub(super) fn gather(
    engine: &Engine,
    true_up: Option<&(String, Table)>,
    judged_at: Timestamp,
) -> anyhow::Result<(Vec<Chart>, Vec<String>)> {
    let end = judged_at.micros() / 1_000_000;
    let mut charts = position_charts(engine, true_up, end)?;
    let mut left_out = Vec::new();
    let (migration_charts, n_migrations) = migration_chart(engine, end)?;
    charts.extend(migration_charts);
    if n_migrations > MAX_PER_KIND * 2 {
        left_out.push(format!(
            "The migrations chart shows the {} migrations with the most CALs left on their source, of {n_migrations}.",
            MAX_PER_KIND * 2
        ));
    }
    let (revocation_charts, n_pairs) = revocation_charts(engine, end)?;
    if n_pairs > revocation_charts.len() {
        left_out.push(format!(
            "Revocations are charted for the {} servers and versions closest to their limit, of {n_pairs}.",
            revocation_charts.len()
        ));
    }
    charts.extend(revocation_charts);
    Ok((charts, left_out))
}

fn int(cell: &Cell) -> i64 {
    match cell {
        Cell::Int(i) => *i,
        Cell::Float(f) => *f as i64,
        _ => 0,
    }
}

/// Per CAL type, at its oldest level (where every CAL counts): holders in use, purchased
/// rights and installed CALs over time, one point per day (the day's highest count, then the
/// count the day ended on), with each true-up year's peak marked.
fn position_charts(
    engine: &Engine,
    true_up: Option<&(String, Table)>,
    end: i64,
) -> anyhow::Result<Vec<Chart>> {
    let levels = query(
        engine,
        "SELECT cal_type, MIN(level) AS level FROM estate_levels GROUP BY cal_type ORDER BY cal_type",
    )?;
    let mut charts = Vec::new();
    for row in &levels.rows {
        let (cal_type, level) = (row[0].text(), row[1].text());
        let mut series = Vec::new();
        for (table, column, label, color) in [
            ("rights_changes", "rights", "rights (purchased)", RIGHTS),
            ("installed_changes", "installed", "installed", INSTALLED),
            ("in_use_changes", "in_use", "in use", IN_USE),
        ] {
            let daily = query(
                engine,
                &format!(
                    "SELECT to_unixtime(date_bin(INTERVAL '1 day', \"at\", TIMESTAMP '1970-01-01T00:00:00')) AS day, \
                     MAX({column}) AS high, last_value({column} ORDER BY \"at\") AS close \
                     FROM {table} WHERE cal_type = '{cal_type}' AND level = '{level}' GROUP BY 1 ORDER BY 1"
                ),
            )?;
            let mut points = Vec::new();
            for day in &daily.rows {
                let (start, high, close) = (int(&day[0]), int(&day[1]), int(&day[2]));
                points.push((start, high));
                if close != high {
                    points.push((start + 86_400, close));
                }
            }
            series.push(Series { label: label.to_owned(), color, points });
        }
        let mut markers = Vec::new();
        if let Some((_, table)) = true_up {
            let column = |name: &str| table.columns.iter().position(|c| c == name);
            if let (Some(t), Some(l), Some(peak), Some(at)) =
                (column("cal_type"), column("level"), column("peak_in_use"), column("peak_at"))
            {
                // A year without use has nothing to mark.
                for year in table.rows.iter().filter(|r| {
                    r[t].text() == cal_type && r[l].text() == level && int(&r[peak]) > 0
                }) {
                    let Ok(peak_at) = Timestamp::parse(&year[at].text()) else { continue };
                    markers.push(Marker {
                        label: int(&year[peak]).to_string(),
                        at: peak_at.micros() / 1_000_000,
                        value: int(&year[peak]),
                    });
                }
            }
        }
        let kind = cal_type.replace('_', "-");
        let title = format!("{kind} CALs: rights, installed and in use");
        let caption = match true_up {
            Some((agreement, _)) => format!(
                "Counts at or above level {level} (every {kind} CAL of the estate): purchased CALs whose rights reach it, installed CALs, and holders in use, per day; the markers are the peak use of each true-up year of {agreement}."
            ),
            None => format!(
                "Counts at or above level {level} (every {kind} CAL of the estate): purchased CALs whose rights reach it, installed CALs, and holders in use, per day."
            ),
        };
        charts.push(Chart::new(title, caption, &series, &markers, end)?);
    }
    Ok(charts)
}

/// Each migration's CALs left on its source over time: the migrated quantity from the
/// migration until removals (or the source's decommission) bring it to what is still there.
fn migration_chart(engine: &Engine, end: i64) -> anyhow::Result<(Vec<Chart>, usize)> {
    let migrations = query(
        engine,
        "SELECT m.migration, m.source, to_unixtime(m.\"at\") AS t, m.quantity, m.not_removed, \
         to_unixtime(m.removed_at) AS removed, to_unixtime(s.decommissioned_at) AS decommissioned \
         FROM migrations m LEFT JOIN servers s \
           ON s.server = m.source AND s.incarnation = m.source_incarnation \
         WHERE m.pack_known AND NOT m.source_removed AND m.quantity > 0 \
         ORDER BY m.not_removed DESC, m.quantity DESC, m.seq",
    )?;
    let n = migrations.rows.len();
    if n == 0 {
        return Ok((Vec::new(), 0));
    }
    let series = migrations
        .rows
        .iter()
        .take(MAX_PER_KIND * 2)
        .enumerate()
        .map(|(i, row)| {
            let (at, quantity, left) = (int(&row[2]), int(&row[3]), int(&row[4]));
            let dropped = match (&row[5], &row[6]) {
                (Cell::Int(removed), _) => Some(*removed),
                (_, Cell::Int(decommissioned)) if left < quantity => Some(*decommissioned),
                _ => None,
            };
            let mut points = vec![(at, quantity)];
            if let Some(dropped) = dropped {
                points.push((dropped, quantity));
                points.push((dropped, left));
            }
            Series {
                label: format!("{} from {}", row[0].text(), row[1].text()),
                color: PALETTE[i % PALETTE.len()],
                points,
            }
        })
        .collect::<Vec<_>>();
    let title = "CALs left on migration sources".to_owned();
    let caption = "Per migration, the CALs still on its source pack: the migrated quantity until removals from the source (or its decommission) take it to what is left.".to_owned();
    Ok((vec![Chart::new(title, caption, &series, &[], end)?], n))
}

/// Per license server and version: the per-device revocations within the last 90 days
/// (the window the rule `revocation_limit` judges: a revocation counts from its moment until
/// 90 days after), beside the limit, max(1, 20% of the CALs installed at each revocation).
fn revocation_charts(engine: &Engine, judged: i64) -> anyhow::Result<(Vec<Chart>, usize)> {
    // A revocation counts from its moment until 90 days after (the rule's window, `at - 90
    // days` excluded); at one moment the departures count before the arrivals, so the last row
    // of a moment holds the count then, and each arrival's row its window's.
    let counted = query(
        engine,
        "WITH revoked AS ( \
            SELECT seq, server, product_version, \"at\", \
                   GREATEST(1, installed_on_server / 5) AS revocation_limit \
            FROM revocations WHERE cal_type = 'per_device' AND product_version IS NOT NULL), \
         changes AS ( \
            SELECT server, product_version, \"at\" AS t, 1 AS delta, revocation_limit, seq \
            FROM revoked \
            UNION ALL \
            SELECT server, product_version, \"at\" + INTERVAL '90 days', -1, \
                   CAST(NULL AS BIGINT), seq \
            FROM revoked), \
         counted AS ( \
            SELECT *, SUM(delta) OVER ( \
                PARTITION BY server, product_version ORDER BY t, delta, seq \
                ROWS UNBOUNDED PRECEDING) AS in_window \
            FROM changes) \
         SELECT server, product_version, to_unixtime(t) AS t, in_window, revocation_limit, \
                MAX(in_window - revocation_limit) OVER (PARTITION BY server, product_version) \
                    AS worst \
         FROM counted ORDER BY server, product_version, t, delta, seq",
    )?;
    // Per server and version, in order: the count at each moment and the limit as it changes.
    let mut drawn: Vec<(i64, (String, String), Series, Series)> = Vec::new();
    for row in &counted.rows {
        let key = (row[0].text(), row[1].text());
        let (at, in_window) = (int(&row[2]), int(&row[3]));
        if drawn.last().is_none_or(|(_, last, ..)| *last != key) {
            let revoked = Series {
                label: "revoked in the last 90 days".into(),
                color: IN_USE,
                points: vec![],
            };
            let limit = Series { label: "limit".into(), color: RIGHTS, points: vec![] };
            drawn.push((int(&row[5]), key, revoked, limit));
        }
        let (_, _, revoked, limit) = drawn.last_mut().expect("invariant: pushed above");
        match revoked.points.last_mut() {
            Some(last) if last.0 == at => last.1 = in_window,
            _ => revoked.points.push((at, in_window)),
        }
        if let Cell::Int(value) = row[4]
            && limit.points.last().is_none_or(|last| last.1 != value)
        {
            limit.points.push((at, value));
        }
    }
    let n_pairs = drawn.len();
    drawn.sort_by_key(|(worst, ..)| std::cmp::Reverse(*worst));
    let mut charts = Vec::new();
    for (_, (server, version), revoked, limit) in drawn.into_iter().take(MAX_PER_KIND) {
        let end = revoked.points.last().map_or(judged, |p| p.0.min(judged));
        let title = format!("Revocations on {server}, {version} per-device CALs");
        let caption = format!(
            "Per-device {version} CALs revoked on {server} in the 90 days to each moment, beside the limit: max(1, 20% of those installed at the revocation)."
        );
        charts.push(Chart::new(title, caption, &[revoked, limit], &[], end)?);
    }
    Ok((charts, n_pairs))
}

fn date(seconds: i64) -> String {
    chrono::DateTime::from_timestamp(seconds, 0)
        .map_or_else(String::new, |t| t.format("%Y-%m-%d").to_string())
}

/// Draws lines over time on a white ground, with a legend, to SVG text.
fn draw(title: &str, series: &[Series], markers: &[Marker], end: i64) -> anyhow::Result<String> {
    let drawing = |e: &dyn std::fmt::Display| anyhow!("drawing the chart {title:?}: {e}");
    // Nothing after the judged time: the tables hold the expiries ahead of it, which are not
    // history yet.
    let series: Vec<Series> = series
        .iter()
        .map(|s| Series {
            label: s.label.clone(),
            color: s.color,
            points: s.points.iter().copied().filter(|p| p.0 <= end).collect(),
        })
        .collect();
    let series = &series[..];
    let times = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .chain(markers.iter().map(|m| m.at));
    let start = times.clone().min().unwrap_or(end);
    let last = times.max().unwrap_or(end).max(start + 86_400);
    // The x axis runs to the judged time unless that is far past the last change.
    let stop = if end > last && end - last < (last - start) / 4 {
        end
    } else {
        (last + (last - start) / 20).min(end.max(last))
    };
    let high = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .chain(markers.iter().map(|m| m.value))
        .max()
        .unwrap_or(0)
        .max(1);
    let top = high + (high / 8).max(1);
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| drawing(&e))?;
        let mut chart = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(44)
            .build_cartesian_2d(start..stop, 0i64..top)
            .map_err(|e| drawing(&e))?;
        chart
            .configure_mesh()
            .x_labels(5)
            .y_labels(6)
            .x_label_formatter(&|x| date(*x))
            .light_line_style(RGBColor(235, 235, 235))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(|e| drawing(&e))?;
        for line in series {
            // A count holds until its next change, so each line is drawn as steps, the last
            // one running on to the chart's end.
            let mut steps = Vec::with_capacity(line.points.len() * 2 + 1);
            for (i, &(at, value)) in line.points.iter().enumerate() {
                if let Some(&(_, previous)) = i.checked_sub(1).map(|j| &line.points[j]) {
                    steps.push((at, previous));
                }
                steps.push((at, value));
            }
            if let Some(&(at, value)) = steps.last()
                && at < stop
            {
                steps.push((stop, value));
            }
            chart
                .draw_series(LineSeries::new(steps, line.color.stroke_width(2)))
                .map_err(|e| drawing(&e))?;
        }
        let middle = start + (stop - start) / 2;
        chart
            .draw_series(markers.iter().map(|m| {
                // Labels go to the side with room, so that none runs off the chart.
                let offset =
                    if m.at > middle { (-8 - 6 * m.label.len() as i32, -18) } else { (8, -18) };
                EmptyElement::at((m.at, m.value))
                    + Circle::new((0, 0), 5, BLACK.filled())
                    + Text::new(m.label.clone(), offset, ("sans-serif", 11))
            }))
            .map_err(|e| drawing(&e))?;
        root.present().map_err(|e| drawing(&e))?;
    }
    Ok(svg)
}
