//! `socklab compare BASE NEW`: a baseline against a new run, metric by metric, with a
//! verdict that respects noise; Markdown on stdout, `compare.json` and `compare.md` with
//! `--out`, one line per regression on stderr, exit 1 when `--fail-on regression` trips.

use std::path::Path;

use anyhow::{Context, Result};
use socklab_harness::report::Report;
use socklab_harness::text::printable_text;
use socklab_reports::compare::{compare, render_markdown};

use crate::Outcome;
use socklab::cli::{CompareArgs, FailOn};

/// Compares the two reports `args` names.
pub fn run(args: &CompareArgs) -> Result<Outcome> {
    let base = load(&args.base)?;
    let new = load(&args.new)?;
    let name = |p: &Path| p.display().to_string();
    let comparison = compare(&base, &name(&args.base), &new, &name(&args.new), args.threshold)?;
    let threshold = args.threshold.unwrap_or(new.run.compare.threshold_pct);
    let markdown = render_markdown(&comparison, threshold, &new.run.compare.metrics)?;
    print!("{markdown}");
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        let json = serde_json::to_string_pretty(&comparison)? + "\n";
        for (file, text) in [("compare.md", markdown.as_str()), ("compare.json", json.as_str())] {
            let path = dir.join(file);
            std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
        }
    }
    for line in comparison.regressions() {
        // Case ids and metric names come from the report files, which anyone may write.
        eprintln!("regression: {}", printable_text(&line));
    }
    Ok(match args.fail_on {
        FailOn::Regression if comparison.regressed() => Outcome::Failed,
        _ => Outcome::Passed,
    })
}

/// A report from a report folder or a `report.json` file, read within bounds (a
/// regular file, at most `MAX_REPORT_BYTES`).
fn load(path: &Path) -> Result<Report> {
    // Every LoadError names the path it failed on; a context would name it twice.
    Ok(socklab_reports::load_report_at(path)?)
}
