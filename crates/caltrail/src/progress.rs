//! Progress bars on stderr for the commands that read or write a whole ledger. A bar appears
//! only when stderr is a terminal, `--quiet` is not given, and the work has run for about a
//! second: piped output and quick commands stay exactly as they were.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};

/// How long work runs before its bar appears: `CALTRAIL_PROGRESS_AFTER_MS`, else one second.
fn delay() -> Duration {
    std::env::var("CALTRAIL_PROGRESS_AFTER_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(Duration::from_secs(1), Duration::from_millis)
}

/// Positions are reported to the bar at most once per this many units, so that counting every
/// event costs a comparison, not a lock.
const STRIDE: u64 = 4096;

/// A bar over a known number of units (events or bytes), hidden until it has been running for
/// the delay.
pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    started: Instant,
    delay: Duration,
    shown: AtomicBool,
}

impl Progress {
    /// A bar over `total` events, labelled with the command's name.
    pub(crate) fn events(command: &str, total: u64, quiet: bool) -> Progress {
        Progress::new(
            command,
            total,
            quiet,
            "{prefix} [{bar:25}] {human_pos}/{human_len} events, {rate}, {eta} left",
        )
    }

    /// A bar over `total` bytes of input, for work whose event count is not known ahead.
    pub(crate) fn bytes(command: &str, total: u64, quiet: bool) -> Progress {
        Progress::new(
            command,
            total,
            quiet,
            "{prefix} [{bar:25}] {bytes}/{total_bytes} {msg}, {eta} left",
        )
    }

    fn new(command: &str, total: u64, quiet: bool, template: &str) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
            let style = ProgressStyle::with_template(template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .with_key("rate", |state: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                })
                .progress_chars("=> ");
            bar.set_style(style);
            bar.set_prefix(command.to_owned());
            bar
        });
        Progress { bar, started: Instant::now(), delay: delay(), shown: AtomicBool::new(false) }
    }

    /// A bar that never shows.
    pub(crate) fn none() -> Progress {
        Progress {
            bar: None,
            started: Instant::now(),
            delay: Duration::MAX,
            shown: AtomicBool::new(false),
        }
    }

    /// The total, once it is known.
    pub(crate) fn set_length(&self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    /// The work has reached `position`; cheap enough to call for every unit.
    pub(crate) fn at(&self, position: u64) {
        if position.is_multiple_of(STRIDE) {
            self.set(position);
        }
    }

    /// The work has reached `position`, reported at once.
    pub(crate) fn set(&self, position: u64) {
        let Some(bar) = &self.bar else { return };
        if !self.shown.load(Ordering::Relaxed) {
            if self.started.elapsed() < self.delay {
                bar.set_position(position);
                return;
            }
            self.shown.store(true, Ordering::Relaxed);
            bar.set_draw_target(ProgressDrawTarget::stderr());
        }
        bar.set_position(position);
    }

    /// A short note after the figures (what has been written so far).
    pub(crate) fn note(&self, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_message(message);
        }
    }

    /// Takes the bar off the terminal, leaving the command's own output as it would be.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
