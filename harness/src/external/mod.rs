//! External targets: what plays the server role of a case when it is not socklab's own.
//! (The module is not called `target`, the name of Cargo's build folder, which tools skip.)
//!
//! By default a scenario runs socklab's own reference server in process
//! ([`Target::Reference`]). A team testing its own server points socklab at it:
//!
//! - [`Target::Addr`] (`--target 127.0.0.1:9000`): a server that is already running;
//! - [`Target::Command`] (`--target-cmd 'python3 server.py {port}'`): a command socklab
//!   starts for each case, with `{port}` replaced by a free port, waits for until the
//!   port accepts connections, and stops afterwards ([`process`]).
//!
//! Only scenarios that talk to a server over the network can use an external target
//! ([`crate::scenario::Scenario::EXTERNAL_TARGET`]); the others are refused with one
//! line before anything runs, never quietly run against the reference peer.

pub mod groups;
pub mod process;

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use process::TargetProcess;

/// The placeholder a `--target-cmd` must contain.
pub const PORT_PLACEHOLDER: &str = "{port}";

/// What plays the server role of a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Target {
    /// socklab's reference peers, in the same process as the client.
    #[default]
    Reference,
    /// A server already running at this address.
    Addr(SocketAddr),
    /// A command started for each case; see [`CommandTemplate`].
    Command(CommandTemplate),
}

impl Target {
    /// Whether something other than the reference peers plays the server.
    pub fn is_external(&self) -> bool {
        !matches!(self, Target::Reference)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Reference => f.write_str("reference peer (in process)"),
            Target::Addr(addr) => write!(f, "{addr} (a server in another process)"),
            Target::Command(command) => write!(f, "command `{}` (started per case)", command.0),
        }
    }
}

/// A shell command with a [`PORT_PLACEHOLDER`], run with `sh -c`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandTemplate(String);

impl CommandTemplate {
    /// Checks that `command` has the port placeholder.
    ///
    /// # Errors
    /// [`TargetError::NoPortPlaceholder`].
    pub fn new(command: &str) -> Result<Self, TargetError> {
        if command.contains(PORT_PLACEHOLDER) {
            Ok(CommandTemplate(command.to_string()))
        } else {
            Err(TargetError::NoPortPlaceholder(command.to_string()))
        }
    }

    /// The command with `{port}` replaced.
    pub fn with_port(&self, port: u16) -> String {
        self.0.replace(PORT_PLACEHOLDER, &port.to_string())
    }

    /// The command as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A target given on the command line or in a suite that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    /// Not an `IP:PORT` address.
    #[error("cannot parse target address `{0}`: expected IP:PORT, e.g. 127.0.0.1:9000 or [::1]:9000")]
    BadAddr(String),
    /// An address with port 0, where no server can be reached.
    #[error(
        "target address `{0}` has port 0, where no server can be reached: give the port your server listens on, e.g. 127.0.0.1:9000"
    )]
    PortZero(String),
    /// Nothing accepts TCP connections at the target address (connection refused).
    #[error(
        "nothing listens at {0}: the connection was refused; start your server there first, or let socklab start it \
         with --target-cmd"
    )]
    NothingListens(SocketAddr),
    /// The target address did not accept a TCP connection for another reason.
    #[error("cannot reach the target at {addr}: {reason}")]
    Unreachable {
        /// The address.
        addr: SocketAddr,
        /// Why (timed out, no route).
        reason: String,
    },
    /// A command without `{port}`.
    #[error(
        "--target-cmd `{0}` has no {{port}}: socklab picks a free port and puts it there, e.g. 'python3 server.py {{port}}'"
    )]
    NoPortPlaceholder(String),
    /// Both an address and a command.
    #[error("give either --target ADDR or --target-cmd CMD, not both")]
    Both,
    /// The command could not be started or never accepted connections.
    #[error("{0}")]
    Start(String),
}

/// Parses `IP:PORT` (or `reference`).
///
/// # Errors
/// [`TargetError::BadAddr`] with an example of what is valid; [`TargetError::PortZero`].
pub fn parse_target(text: &str) -> Result<Target, TargetError> {
    if text == "reference" {
        return Ok(Target::Reference);
    }
    match text.parse::<SocketAddr>() {
        Ok(addr) if addr.port() == 0 => Err(TargetError::PortZero(text.to_string())),
        Ok(addr) => Ok(Target::Addr(addr)),
        Err(_) => Err(TargetError::BadAddr(text.to_string())),
    }
}

/// How long [`check_listening`] waits for a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects to `addr` once (TCP, at most [`CONNECT_TIMEOUT`]) and closes: a target where
/// nothing listens is one error before any case, not a failure in every check.
///
/// # Errors
/// [`TargetError::NothingListens`] when the connection is refused,
/// [`TargetError::Unreachable`] for a timeout or any other failure.
pub fn check_listening(addr: SocketAddr) -> Result<(), TargetError> {
    match std::net::TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Err(TargetError::NothingListens(addr)),
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(TargetError::Unreachable {
            addr,
            reason: format!("no answer to a TCP connection within {} s", CONNECT_TIMEOUT.as_secs()),
        }),
        Err(e) => Err(TargetError::Unreachable { addr, reason: e.to_string() }),
    }
}

/// The external server a case runs against, as the scenario sees it.
#[derive(Debug, Clone)]
pub struct ExternalTarget {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The process socklab started for this case, when it started one (for its CPU time).
    pub process: Option<Arc<TargetProcess>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_or_say_what_is_valid() {
        assert_eq!(parse_target("127.0.0.1:9000").unwrap(), Target::Addr("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(parse_target("[::1]:80").unwrap(), Target::Addr("[::1]:80".parse().unwrap()));
        assert_eq!(parse_target("reference").unwrap(), Target::Reference);
        assert_eq!(
            parse_target("127.0.0.1:0").unwrap_err().to_string(),
            "target address `127.0.0.1:0` has port 0, where no server can be reached: give the port your server \
             listens on, e.g. 127.0.0.1:9000"
        );
        let err = parse_target("localhost").unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot parse target address `localhost`: expected IP:PORT, e.g. 127.0.0.1:9000 or [::1]:9000"
        );
    }

    #[test]
    fn a_port_where_nothing_listens_is_said_so() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(check_listening(addr), Err(TargetError::NothingListens(addr)));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        assert_eq!(check_listening(listener.local_addr().unwrap()), Ok(()));
    }

    #[test]
    fn commands_need_the_port_placeholder() {
        let command = CommandTemplate::new("python3 s.py {port} --port={port}").unwrap();
        assert_eq!(command.with_port(4000), "python3 s.py 4000 --port=4000");
        let err = CommandTemplate::new("python3 s.py").unwrap_err();
        assert!(err.to_string().starts_with("--target-cmd `python3 s.py` has no {port}"), "{err}");
    }
}
