//! The `socklab` command: argument parsing and wiring; the work happens in the harness,
//! scenarios and reports crates.

mod catalog;

mod compare;
mod lifecycle;
mod probe;
mod progress;
mod proxy;
mod run;
mod serve;

use std::process::ExitCode;

use anyhow::Result;
use clap::Parser;

use socklab::cli::{AgentArgs, Cli, Command};

/// How a command ended, as an exit code.
pub enum Outcome {
    /// Exit 0: every check passed.
    Passed,
    /// Exit 1: a check failed, or a case did not finish.
    Failed,
}

fn main() -> ExitCode {
    lifecycle::quiet_on_closed_output();
    let cli = Cli::parse(); // usage errors exit 2
    if let Command::Agent(args) = &cli.command {
        return agent(args);
    }
    // The commands that start processes stop them when interrupted.
    if matches!(cli.command, Command::Run(_) | Command::Probe(_))
        && let Err(e) = lifecycle::stop_groups_on_signals()
    {
        eprintln!("error: cannot listen for SIGINT, SIGTERM and SIGHUP: {e}");
        return ExitCode::from(2);
    }
    match dispatch(&cli) {
        Ok(Outcome::Passed) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(e) if lifecycle::is_closed_pipe(&e) => lifecycle::die_of_sigpipe(),
        Err(e) => {
            // Errors quote peers (an agent's reply) and users (a value): no raw control bytes.
            eprintln!("error: {}", socklab_harness::text::printable_text(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}

/// `socklab agent --stdio`: stdout carries protocol lines only; anything for people goes
/// to stderr.
fn agent(args: &AgentArgs) -> ExitCode {
    use socklab_harness::peer::agent::{AgentConfig, AgentExit, run_agent};
    let config = AgentConfig { max_line: args.max_line as usize };
    let input = std::io::BufReader::new(std::io::stdin());
    let exit = run_agent(input, std::io::stdout().lock(), config);
    match &exit {
        AgentExit::VersionMismatch => {
            eprintln!("socklab agent: the runner's version differs (see the error reply)")
        }
        AgentExit::Truncated => eprintln!("socklab agent: the input ended in the middle of a message"),
        AgentExit::Failed(reason) => eprintln!("socklab agent: {reason}"),
        AgentExit::Finished => {}
    }
    ExitCode::from(exit.code())
}

fn dispatch(cli: &Cli) -> Result<Outcome> {
    let registry = socklab_scenarios::registry();
    match &cli.command {
        Command::List(args) => {
            let text = if args.json { catalog::list_json(&registry) } else { catalog::list_text(&registry) };
            print!("{text}");
            if args.json {
                println!();
            }
        }
        Command::Explain(args) => print!("{}", catalog::explain_text(registry.get(&args.scenario)?)),
        Command::Run(args) => return run::run(args, &registry),
        Command::Compare(args) => return compare::run(args),
        Command::Serve(args) => serve::serve(args)?,
        Command::Probe(args) => return probe::probe(args, &registry),
        Command::Agent(_) => unreachable!("socklab agent is dispatched before the others"),
        Command::Proxy(args) => proxy::proxy(args)?,
        Command::Report(args) => {
            socklab_reports::rerender_report(&args.dir)?;
            println!(
                "re-rendered {}/ (index.html, report.md, junit.xml) from report.json; cases/ kept",
                args.dir.display()
            );
        }
    }
    Ok(Outcome::Passed)
}
