//! Progress while cases run: an indicatif bar on a terminal, one plain line per finished
//! case otherwise (CI logs). Colour only on a terminal and never with `NO_COLOR` set.

use std::cell::{Cell, OnceCell};
use std::io::IsTerminal;

use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use socklab_harness::report::{CaseResult, CaseStatus};
use socklab_harness::runner::Progress;
use socklab_harness::suite::CaseSpec;
use socklab_harness::text::printable_text;

/// Shows progress on stderr.
pub struct CaseProgress {
    terminal: bool,
    /// Made when the first case starts, so a run that stops at a configuration error
    /// (a target command or an agent that cannot start) leaves no empty bar behind.
    bar: OnceCell<ProgressBar>,
    total: Cell<usize>,
}

impl CaseProgress {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn for_stderr() -> Self {
        let terminal = std::io::stderr().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        console::set_colors_enabled_stderr(terminal && !no_color);
        CaseProgress { terminal, bar: OnceCell::new(), total: Cell::new(0) }
    }

    /// Removes the bar once the run is over.
    pub fn finish(&self) {
        if let Some(bar) = self.bar.get() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for CaseProgress {
    fn run_started(&self, total: usize) {
        self.total.set(total);
        if self.terminal {
            let bar = self.bar.get_or_init(|| {
                let bar = ProgressBar::new(0);
                if let Ok(bar_style) =
                    ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
                {
                    bar.set_style(bar_style);
                }
                bar
            });
            bar.set_length(total as u64);
        }
    }

    fn case_started(&self, _index: usize, case: &CaseSpec) {
        if let Some(bar) = self.bar.get() {
            bar.set_message(printable_text(&case.id).into_owned());
        }
    }

    fn case_finished(&self, index: usize, result: &CaseResult) {
        let line = finished_line(index, self.total.get(), result);
        match self.bar.get() {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }
}

/// `[2/8] PASS tcp-coalescing[read_size=5] (51 ms)`, with the failed checks or the
/// error after a failure.
fn finished_line(index: usize, total: usize, result: &CaseResult) -> String {
    let word = match result.status {
        CaseStatus::Passed => style(result.status.word()).green(),
        CaseStatus::Failed => style(result.status.word()).red().bold(),
        CaseStatus::Error | CaseStatus::TimedOut => style(result.status.word()).yellow().bold(),
        CaseStatus::Skipped => style(result.status.word()).dim(),
    };
    // Ids carry parameter values, errors and checks a server's words: escaped, never raw.
    let shown = |text: &str| printable_text(text).into_owned();
    let mut line =
        format!("[{}/{total}] {word} {} ({:.0} ms)", index + 1, shown(&result.id), result.duration_ms);
    if let Some(error) = &result.error {
        line += &format!(": {}", shown(error));
    }
    for check in result.checks.iter().filter(|c| !c.passed) {
        line += &format!(
            "\n      {}: expected {}, observed {}",
            shown(&check.name),
            shown(&check.expected),
            shown(&check.observed)
        );
    }
    line
}
