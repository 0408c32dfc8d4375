//! The report in a real browser, headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs): it loads with no console message, its DOM holds every finding's rule and the head
//! hash, each chart's box in a 1280x2000 screenshot is drawn on, and it prints to more than one
//! page. Without Chromium the test is skipped, except under `CI`, where it fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::report::estate_audit_report;
use crate::{Sandbox, root};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;

/// Chromium, or `None` where it is not installed and `CI` is not set.
fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file())
        })
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("Chromium is needed under CI (.ci/run installs Debian's chromium)")
        }
        None => {
            eprintln!("skipped: no Chromium here; .ci/run installs it");
            None
        }
    }
}

/// Runs headless Chromium on a file with `args`; returns its stdout and stderr.
fn headless(chromium: &Path, profile: &Path, page: &Path, args: &[&str]) -> (String, String) {
    let output = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            "--enable-logging=stderr",
            "--v=0",
            &format!("--window-size={WIDTH},{HEIGHT}"),
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("Chromium runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The messages the page wrote to the console, as Chromium logs them.
fn console_lines(stderr: &str) -> Vec<&str> {
    stderr.lines().filter(|line| line.contains(":CONSOLE")).collect()
}

/// Each chart's box (x, y, width, height in CSS pixels) at the screenshot's window size, read
/// by a script added to a copy of the page (the report itself has none).
fn chart_boxes(chromium: &Path, profile: &Path, html: &str, dir: &Path) -> Vec<[u32; 4]> {
    let probe = dir.join("probe.html");
    let script = "<script>const boxes = [...document.querySelectorAll('figure.chart svg')].map(e => { const r = e.getBoundingClientRect(); return [r.x, r.y, r.width, r.height].map(Math.round).join(' '); }); document.body.insertAdjacentHTML('beforeend', '<pre id=\"boxes\">' + boxes.join(';') + '</pre>');</script>";
    std::fs::write(&probe, html.replace("</body>", &format!("{script}</body>"))).unwrap();
    let (dom, _) = headless(chromium, profile, &probe, &["--dump-dom"]);
    // The last match: the script's own text, also in the DOM, holds the tag first.
    let boxes = dom.rsplit_once("<pre id=\"boxes\">").unwrap().1.split_once("</pre>").unwrap().0;
    boxes
        .split(';')
        .map(|b| {
            let n: Vec<u32> = b.split(' ').map(|n| n.parse().unwrap()).collect();
            [n[0], n[1], n[2], n[3]]
        })
        .collect()
}

#[test]
fn the_estate_audit_report_renders_in_chromium() {
    let Some(chromium) = chromium() else { return };
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path();
    let profile = dir.join("profile");
    let (head, html) = estate_audit_report(&sandbox);
    let page = dir.join("report.html");

    // The console check is shown to work on a page that does write to it.
    let control = dir.join("control.html");
    std::fs::write(&control, "<p>x</p><script>console.error('control message')</script>").unwrap();
    let (_, stderr) = headless(&chromium, &profile, &control, &["--dump-dom"]);
    assert_eq!(console_lines(&stderr).len(), 1, "{stderr}");

    let (dom, stderr) = headless(&chromium, &profile, &page, &["--dump-dom"]);
    assert_eq!(console_lines(&stderr), Vec::<&str>::new());
    assert!(dom.contains(&head), "the head hash is in the DOM");
    let check = sandbox.run(&["check", "--as-of", "2024-12-31", "--format", "json"]);
    for line in check.stdout.lines() {
        let finding: serde_json::Value = serde_json::from_str(line).unwrap();
        let rule = finding["rule"].as_str().unwrap();
        assert!(dom.contains(&format!("<span class=\"rule\">{rule}</span>")), "{rule}");
    }

    let boxes = chart_boxes(&chromium, &profile, &html, dir);
    assert_eq!(boxes.len(), 3);
    let shot = dir.join("report.png");
    headless(&chromium, &profile, &page, &[&format!("--screenshot={}", shot.display())]);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!((frame.width, frame.height), (WIDTH, HEIGHT));
    let channels = frame.line_size / frame.width as usize;
    for [x, y, w, h] in boxes {
        assert!(y + h <= HEIGHT && x + w <= WIDTH, "the chart at {x},{y} is in the screenshot");
        let mut drawn = 0usize;
        for row in y..y + h {
            for column in x..x + w {
                let at = row as usize * frame.line_size + column as usize * channels;
                if pixels[at..at + 3].iter().any(|c| *c < 200) {
                    drawn += 1;
                }
            }
        }
        // Axes, grid and lines: well over 2% of the box is drawn on; a blank box has none.
        let share = drawn as f64 / f64::from(w * h);
        eprintln!("the chart at {x},{y} ({w}x{h}): {:.1}% drawn", share * 100.0);
        assert!(share > 0.02, "the chart at {x},{y} is {:.1}% drawn", share * 100.0);
    }
    if crate::update_expect() {
        std::fs::copy(&shot, root().join("docs/report.png")).unwrap();
    }

    let pdf = dir.join("report.pdf");
    headless(
        &chromium,
        &profile,
        &page,
        &["--no-pdf-header-footer", &format!("--print-to-pdf={}", pdf.display())],
    );
    let bytes = std::fs::read(&pdf).unwrap();
    let pages = bytes
        .windows(11)
        .enumerate()
        .filter(|(i, w)| *w == b"/Type /Page" && bytes.get(i + 11) != Some(&b's'))
        .count();
    assert!(pages > 1, "the report prints on {pages} page(s)");
}
