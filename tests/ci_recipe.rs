//! The CI recipe (`ci/github-actions.yml`) cannot rot: it parses as YAML, and every
//! `socklab` command line in its `run:` steps is accepted by the real argument parser.

use clap::Parser;
use socklab::cli::Cli;
use yaml_rust2::{Yaml, YamlLoader};

/// Every `run:` script of every step of every job.
fn run_scripts(doc: &Yaml) -> Vec<String> {
    let mut scripts = Vec::new();
    let Some(jobs) = doc["jobs"].as_hash() else { return scripts };
    for job in jobs.values() {
        for step in job["steps"].as_vec().into_iter().flatten() {
            if let Some(run) = step["run"].as_str() {
                scripts.push(run.to_string());
            }
        }
    }
    scripts
}

/// The socklab invocations in a shell script: the words after `.../socklab` up to the
/// end of the command (a redirection, pipe, `||`, `&&` or `;`), quotes removed.
fn socklab_commands(script: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    for line in script.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let Some(start) = words.iter().position(|w| w.ends_with("/socklab") || *w == "socklab") else {
            continue;
        };
        if words.get(start.wrapping_sub(1)) == Some(&"setcap") || words[..start].contains(&"setcap") {
            continue; // `setcap ... target/release/socklab` names the binary, not a run of it
        }
        let args: Vec<String> = words[start..]
            .iter()
            .take_while(|w| !matches!(**w, ">" | ">>" | "|" | "||" | "&&" | ";" | "2>&1"))
            .map(|w| w.trim_matches('\'').trim_matches('"').to_string())
            .collect();
        commands.push(args);
    }
    commands
}

#[test]
fn every_socklab_command_of_the_recipe_parses() {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/ci/github-actions.yml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("ci/github-actions.yml is valid YAML");
    let commands: Vec<Vec<String>> = run_scripts(&docs[0]).iter().flat_map(|s| socklab_commands(s)).collect();
    let verbs: Vec<&str> = commands.iter().filter_map(|c| c.get(1).map(String::as_str)).collect();
    assert!(verbs.contains(&"run") && verbs.contains(&"compare"), "the recipe runs and compares: {verbs:?}");
    for command in &commands {
        if let Err(e) = Cli::try_parse_from(command) {
            panic!("ci/github-actions.yml: `{}` is refused:\n{e}", command.join(" "));
        }
    }
    // The suite it names exists, so the run would start.
    assert!(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios/suites/ci.toml")).exists());
}

#[test]
fn a_command_the_parser_refuses_is_caught() {
    let commands = socklab_commands("target/release/socklab compare a b --fail-on always > x.md");
    assert_eq!(commands, [["target/release/socklab", "compare", "a", "b", "--fail-on", "always"]]);
    assert!(Cli::try_parse_from(&commands[0]).is_err(), "--fail-on always is not a value");
}
