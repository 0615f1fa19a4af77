//! The live progress bar of `fcgi bench`: on stderr, only when stderr is a terminal (and
//! neither `-s` nor `--json` was given), redrawn a few times per second by the driver's ticker,
//! never per request, so it costs no measurable CPU.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::load::{Plan, View};

/// The bar, if shown.
#[derive(Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    plan: Plan,
}

impl Progress {
    /// A bar when `enabled` and stderr is a terminal; otherwise one that does nothing.
    pub fn new(enabled: bool, plan: Plan) -> Progress {
        if !enabled || !std::io::stderr().is_terminal() {
            return Progress { bar: None, plan };
        }
        let style = ProgressStyle::with_template("{wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr_with_hz(4))
            .with_style(style);
        Progress { bar: Some(bar), plan }
    }

    /// Redraws from `view`.
    pub fn update(&self, view: View) {
        let Some(bar) = &self.bar else { return };
        if !view.measuring {
            let fraction = ratio(view.elapsed.as_secs_f64(), self.plan.warmup.as_secs_f64());
            bar.set_position((fraction * 1000.0) as u64);
            bar.set_message(format!("warming up {}/{}", seconds(view.elapsed), seconds(self.plan.warmup)));
            return;
        }
        let by_time = self.plan.duration.map(|d| ratio(view.elapsed.as_secs_f64(), d.as_secs_f64()));
        let by_count = self.plan.requests.map(|n| ratio(view.finished as f64, n as f64));
        let fraction = by_time.into_iter().chain(by_count).fold(0.0, f64::max);
        bar.set_position((fraction * 1000.0) as u64);
        let rate =
            if view.elapsed.is_zero() { 0.0 } else { view.finished as f64 / view.elapsed.as_secs_f64() };
        let time = match self.plan.duration {
            Some(d) => format!("{}/{}", seconds(view.elapsed), seconds(d)),
            None => seconds(view.elapsed),
        };
        let count = match self.plan.requests {
            Some(n) => format!("{}/{n}", view.finished),
            None => view.finished.to_string(),
        };
        bar.set_message(format!("{time}  {count} requests  {rate:.0} req/s  {} errors", view.failed));
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

fn ratio(part: f64, whole: f64) -> f64 {
    if whole <= 0.0 { 1.0 } else { (part / whole).clamp(0.0, 1.0) }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}
