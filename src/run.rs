//! `socklab run`: maps its arguments onto a [`RunPlan`], runs it through the harness
//! ([`socklab_harness::run`]), writes the report folder, and prints a summary with a
//! replay command for each case that did not pass.

use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use socklab_harness::external::Target;
use socklab_harness::report::{CaseResult, CaseStatus, Report};
use socklab_harness::run::{Overrides, PeerCommand, RunPlan, prepare, suite_file};
use socklab_harness::scenario::Registry;
use socklab_harness::suite::{Suite, value_text};
use socklab_harness::text::{needs_escape, printable_text};

use crate::Outcome;
use crate::progress::CaseProgress;
use socklab::cli::RunArgs;

/// Runs what `args` asks for. Configuration errors return `Err` (exit code 2).
pub fn run(args: &RunArgs, registry: &Registry) -> Result<Outcome> {
    let suite = match &args.suite {
        Some(path) => suite_file(path, &args.scenarios, registry)?,
        None if args.scenarios.is_empty() => {
            Suite::parse(socklab_scenarios::DEFAULT_SUITE, "default", registry)?
        }
        None => Suite::from_scenarios(&args.scenarios, registry)?,
    };
    let overrides = Overrides {
        sets: args.sets.clone(),
        keep_sweep: args.sweep,
        timeout: args.timeout.map(Duration::from_secs),
        repeat: args.repeat,
        target: args.target.clone().or_else(|| args.target_cmd.clone()),
    };
    let mut plan = RunPlan::new(suite, &overrides, registry)?;
    plan.cases = args.cases.clone();
    plan.seed = args.seed;
    plan.peer = args.peer_cmd.clone().map(|command| PeerCommand { command, addr: args.peer_addr });
    execute(plan, &args.out, &Replay::of_run(args), registry)
}

/// Runs `plan`, writes the report folder `out` and prints the summary: everything of
/// `socklab run` after the plan is made, which `socklab probe` shares. `replay` says how
/// a failing case is run again. Configuration errors return `Err` (exit code 2).
pub fn execute(mut plan: RunPlan, out: &Path, replay: &Replay, registry: &Registry) -> Result<Outcome> {
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    plan.git_revision = option_env!("SOCKLAB_GIT_REVISION").map(String::from);
    let prepared = prepare(&plan, registry)?;
    // Before any case runs: a run must never end in a report it cannot write.
    socklab_reports::check_out(out)?;
    let progress = CaseProgress::for_stderr();
    let output = prepared.execute(&progress)?;
    progress.finish();
    // Every FolderError names the path it failed on; a context would name it twice.
    socklab_reports::write_report_with(out, &output.report, &output.artifacts)?;
    print_summary(&output.report, out, replay, output.artifacts.len());
    Ok(if output.report.all_passed() { Outcome::Passed } else { Outcome::Failed })
}

/// How the summary tells a person to run a failing case again: the `socklab run`
/// arguments that select it, around the case's own id or parameters.
pub struct Replay {
    /// Words that select the run's suite again (`--suite FILE`, its `--set`s, `--sweep`),
    /// narrowed with `--case ID`; `None` names the case's scenario and sets every
    /// parameter the case had set, which runs exactly that case.
    pub suite: Option<Vec<String>>,
    /// Words after the case: the target, the peer, the timeout and repeat count.
    pub tail: Vec<String>,
}

impl Replay {
    /// The replay of a case of `socklab run` with `args`.
    fn of_run(args: &RunArgs) -> Replay {
        let from_suite = args.suite.is_some() || args.scenarios.is_empty();
        let suite = from_suite.then(|| {
            let mut words = Vec::new();
            if let Some(path) = &args.suite {
                words.push("--suite".into());
                words.push(shell_quote(&path.display().to_string()));
            }
            for set in &args.sets {
                words.push("--set".into());
                words.push(shell_quote(set));
            }
            if args.sweep {
                words.push("--sweep".into());
            }
            words
        });
        let mut tail: Vec<String> =
            target_words(args.target.as_ref().or(args.target_cmd.as_ref())).into_iter().collect();
        if let Some(command) = &args.peer_cmd {
            tail.push(format!("--peer-cmd {}", shell_quote(command)));
        }
        if let Some(addr) = &args.peer_addr {
            tail.push(format!("--peer-addr {addr}"));
        }
        if let Some(seconds) = args.timeout {
            tail.push(format!("--timeout {seconds}"));
        }
        if let Some(repeat) = args.repeat {
            tail.push(format!("--repeat {repeat}"));
        }
        Replay { suite, tail }
    }
}

/// `--target ADDR` or `--target-cmd CMD`; nothing for the reference peers.
pub fn target_words(target: Option<&Target>) -> Option<String> {
    match target {
        Some(Target::Addr(addr)) => Some(format!("--target {addr}")),
        Some(Target::Command(command)) => Some(format!("--target-cmd {}", shell_quote(command.as_str()))),
        Some(Target::Reference) | None => None,
    }
}

fn print_summary(report: &Report, out: &Path, replay: &Replay, artifacts: usize) {
    let tally = report.tally();
    println!(
        "{} {}: {} passed, {} failed, {} errors, {} timed out{} (seed {})",
        report.cases.len(),
        if report.cases.len() == 1 { "case" } else { "cases" },
        tally.passed,
        tally.failed,
        tally.errors,
        tally.timed_out,
        tally.skipped_suffix(),
        report.run.seed
    );
    // Case ids carry parameter values and errors a server's words: escaped, never raw.
    for case in report.cases.iter().filter(|c| c.status == CaseStatus::Skipped) {
        let why = case.error.as_deref().unwrap_or("skipped");
        println!("SKIP {}: {}", printable_text(&case.id), printable_text(why));
    }
    for case in report.cases.iter().filter(|c| !matches!(c.status, CaseStatus::Passed | CaseStatus::Skipped))
    {
        println!("{} {}", case.status.word(), printable_text(&case.id));
        println!("  replay: {}", replay_command(case, replay, report.run.seed));
    }
    let captures =
        if artifacts > 0 { format!(", {artifacts} capture.pcap under cases/") } else { String::new() };
    println!("report: {}/ (index.html, report.json, report.md, junit.xml{captures})", out.display());
}

/// The command that runs `case` alone, as it ran: the same seed, thresholds and timeout.
/// A suite run (a file, or the default suite) is selected again with the same `--set`
/// arguments and narrowed with `--case`; a scenario run sets every parameter the case
/// had set, which runs exactly that case (a `--set` turns a built-in sweep off).
fn replay_command(case: &CaseResult, replay: &Replay, run_seed: u64) -> String {
    let mut words = vec!["socklab".to_string(), "run".to_string()];
    match &replay.suite {
        Some(suite) => {
            words.extend(suite.iter().cloned());
            words.push("--case".into());
            words.push(shell_quote(&case.id));
        }
        None => {
            words.push(case.scenario.clone());
            for (key, value) in &case.set_params {
                words.push("--set".into());
                words.push(shell_quote(&format!("{key}={}", value_text(value))));
            }
        }
    }
    words.extend(replay.tail.iter().cloned());
    words.push(format!("--seed {run_seed}"));
    words.join(" ")
}

/// `word` as a POSIX shell reads it back: bare when plain, in single quotes otherwise,
/// and — when it holds a control character, which must not reach the terminal raw, or a
/// line break, which would split the command — in bash's `$'…'` quotes with each such
/// character escaped (`$'a\x1b[31m'`), which reads back as the same bytes.
fn shell_quote(word: &str) -> String {
    if word.chars().all(|c| c.is_ascii_alphanumeric() || "_-.,=/:".contains(c)) {
        word.to_string()
    } else if word.chars().any(escaped) {
        let mut quoted = String::from("$'");
        for c in word.chars() {
            match c {
                '\\' | '\'' => quoted.extend(['\\', c]),
                c if escaped(c) && u32::from(c) < 0x80 => quoted += &format!("\\x{:02x}", u32::from(c)),
                c if escaped(c) => quoted += &format!("\\u{:04x}", u32::from(c)),
                c => quoted.push(c),
            }
        }
        quoted + "'"
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// Whether [`shell_quote`] writes `c` as an escape: what a terminal must not see raw, and
/// line breaks.
fn escaped(c: char) -> bool {
    needs_escape(c) || c == '\n' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::shell_quote;

    #[test]
    fn words_are_quoted_so_a_shell_reads_them_back() {
        assert_eq!(shell_quote("read_size=5"), "read_size=5");
        assert_eq!(shell_quote("messages=a b"), "'messages=a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("m=a\x1b[31m\x07'\\\n"), r"$'m=a\x1b[31m\x07\'\\\x0a'");
        assert_eq!(shell_quote("\u{202e}x"), r"$'\u202ex'");
    }
}
