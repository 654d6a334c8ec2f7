//! Every error type of the harness, printed the way the CLI prints errors (the message,
//! then each `source()` in turn, as anyhow's `{:#}` does): each cause appears once.
//!
//! The rule these tests pin: an error whose message includes its cause does not also
//! return that cause from `source()`.

use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::path::Path;

use socklab_harness::capture::CaptureError;
use socklab_harness::framing::FramingError;
use socklab_harness::metrics::LatencyRecorder;
use socklab_harness::net::{NetnsError, SnmpError, read_udp_counters_from};
use socklab_harness::peer::PeerError;
use socklab_harness::scenario::{CaseError, IoContext};
use socklab_harness::suite::{Suite, SuiteError};

/// The error and its sources joined by `: `, as `anyhow`'s `{:#}` prints them.
fn chain(error: &dyn Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text += &format!(": {c}");
        cause = c.source();
    }
    text
}

/// `error`'s chain shows `cause` exactly once, and is its message.
fn assert_cause_once(error: &dyn Error, cause: &str) {
    let printed = chain(error);
    assert_eq!(printed.matches(cause).count(), 1, "`{cause}` should appear once in `{printed}`");
    assert_eq!(printed, error.to_string(), "the message already holds the cause");
}

fn not_found() -> io::Error {
    io::Error::from(io::ErrorKind::NotFound)
}

const NOT_FOUND: &str = "entity not found";
const ADDR: &str = "127.0.0.1:9";

#[test]
fn a_missing_suite_file_names_its_cause_once() {
    let registry = socklab_harness::scenario::Registry::default();
    let err = Suite::load(Path::new("/nonexistent/suite.toml"), &registry).unwrap_err();
    assert!(matches!(err, SuiteError::Read { .. }));
    assert_cause_once(&err, "No such file or directory (os error 2)");
    assert_eq!(
        err.to_string(),
        "cannot read suite file /nonexistent/suite.toml: No such file or directory (os error 2)"
    );
}

#[test]
fn io_errors_of_the_net_module_name_their_cause_once() {
    let err = read_udp_counters_from(Path::new("/nonexistent/snmp")).unwrap_err();
    assert!(matches!(err, SnmpError::Read { .. }));
    assert_cause_once(&err, "No such file or directory (os error 2)");
    let err = NetnsError::Setup { context: "bring lo up", error: not_found() };
    assert_cause_once(&err, NOT_FOUND);
}

#[test]
fn framing_and_peer_errors_name_their_cause_once() {
    assert_cause_once(&FramingError::from(not_found()), NOT_FOUND);
    let addr: SocketAddr = ADDR.parse().unwrap();
    assert_cause_once(&PeerError::Bind { addr, error: not_found() }, NOT_FOUND);
    assert_cause_once(&PeerError::Connect { addr, error: not_found() }, NOT_FOUND);
    assert_cause_once(&PeerError::from(not_found()), NOT_FOUND);
    // A framing error inside a peer error is shown as it is, once.
    assert_cause_once(&PeerError::from(FramingError::from(not_found())), NOT_FOUND);
}

#[test]
fn case_capture_and_histogram_errors_name_their_cause_once() {
    let err: CaseError = Err::<(), _>(not_found()).context("connect to 127.0.0.1:9").unwrap_err();
    assert_cause_once(&err, NOT_FOUND);
    assert_eq!(err.to_string(), "connect to 127.0.0.1:9: entity not found");
    let err = CaptureError::Io { action: "bind packet socket", interface: "lo".into(), error: not_found() };
    assert_cause_once(&err, NOT_FOUND);
    let err = LatencyRecorder::from_base64("not base64!").unwrap_err();
    assert!(err.source().is_none(), "{err}");
}
