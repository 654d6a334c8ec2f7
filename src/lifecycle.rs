//! How `socklab` ends early: on SIGINT, SIGTERM or SIGHUP, or when what it prints to is
//! closed, it first stops every process group it started (`--target-cmd` servers, the
//! `--peer-cmd` agent: [`groups`]), then exits.
//!
//! - **A signal** (`run` and `probe`, the commands that start processes): SIGTERM to each
//!   group, up to [`GRACE`] for them to end, SIGKILL to the rest, one line on stderr, and
//!   exit 128 + the signal's number (130 SIGINT, 143 SIGTERM, 129 SIGHUP), the status a
//!   shell shows for a command the signal ended. No report is written. `serve` and
//!   `proxy` handle Ctrl-C themselves (they print their counters) and start no
//!   processes.
//! - **A closed stdout or stderr** (`socklab run | head -1`), every command: the same
//!   stop, then socklab ends by SIGPIPE (status 141 in a shell), quietly, as `cat` and
//!   `grep` do. Rust ignores SIGPIPE, so every `println!` and `eprintln!` would panic
//!   instead (exit 101 with a backtrace); one panic hook catches exactly those panics,
//!   wherever they print from, and lets every other panic through to the default hook.

use std::io::Write;
use std::time::Duration;

use socklab_harness::external::groups;

/// Between SIGTERM and SIGKILL for the groups socklab started: a case's own stop grace.
pub const GRACE: Duration = socklab_harness::runner::TARGET_STOP_GRACE;

/// The start of the message of std's panic when `print!` and friends fail.
const PRINT_FAILED: &str = "failed printing to std";

/// Handles SIGINT, SIGTERM and SIGHUP on a thread of their own from now on: stop every
/// group, say so on stderr, exit 128 + the signal.
///
/// # Errors
/// When the handlers cannot be installed (no runtime for the signal streams).
pub fn stop_groups_on_signals() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let runtime = tokio::runtime::Builder::new_current_thread().enable_io().build()?;
    let (mut interrupt, mut terminate, mut hangup) = {
        let _entered = runtime.enter();
        (signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?, signal(SignalKind::hangup())?)
    };
    std::thread::Builder::new().name("socklab-signals".into()).spawn(move || {
        let (number, name) = runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => (libc::SIGINT, "SIGINT"),
                _ = terminate.recv() => (libc::SIGTERM, "SIGTERM"),
                _ = hangup.recv() => (libc::SIGHUP, "SIGHUP"),
            }
        });
        let stopped = groups::stop_all(GRACE);
        let what = match stopped {
            0 => String::new(),
            1 => "; stopped the process group it had started".to_string(),
            n => format!("; stopped the {n} process groups it had started"),
        };
        // Not eprintln!: stderr may be closed too, and nothing must stop the exit.
        let _ = writeln!(std::io::stderr(), "socklab: interrupted by {name}, no report written{what}");
        std::process::exit(128 + number);
    })?;
    Ok(())
}

/// Makes a failed print end the process as described in the module docs.
pub fn quiet_on_closed_output() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match payload_text(info.payload()) {
        Some(message) if message.starts_with(PRINT_FAILED) => {
            if message.ends_with(&format!("(os error {})", libc::EPIPE)) {
                die_of_sigpipe();
            }
            // Another failure (a full disk behind `> file`): one line, exit 2.
            groups::stop_all(GRACE);
            let _ = writeln!(std::io::stderr(), "error: {message}");
            std::process::exit(2);
        }
        _ => default(info),
    }));
}

/// A panic's message: a `panic!` with arguments carries a `String`, one without a
/// `&str`.
fn payload_text(payload: &(dyn std::any::Any + Send)) -> Option<&str> {
    payload.downcast_ref::<String>().map(String::as_str).or_else(|| payload.downcast_ref::<&str>().copied())
}

/// Whether `error` (or one of its causes) is a write into a closed pipe.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Stops every group, then ends the process by SIGPIPE, as a tool that never ignored it.
pub fn die_of_sigpipe() -> ! {
    groups::stop_all(GRACE);
    // SAFETY: signal(2) and raise(3) with constant arguments; no memory is involved. The
    // default action of SIGPIPE ends the whole process.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    // Not reached; in case the signal is blocked in this thread.
    std::process::exit(128 + libc::SIGPIPE)
}
