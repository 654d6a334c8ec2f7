//! socklab as a library, from `cargo test`: servers nobody on the project wrote (Python's
//! standard library `socketserver`) probed through `socklab_harness::run`, with the
//! verdicts asserted on. The README's "Use socklab from `cargo test`" shows the code
//! between the `README:begin` and `README:end` lines; the last test keeps the two the
//! same.

// README:begin
use std::net::SocketAddr;

use socklab_harness::check::Check;
use socklab_harness::external::Target;
use socklab_harness::run::{Overrides, RunPlan, execute};
use socklab_harness::runner::Silent;

/// socklab's `reassembly` check against the line-framed echo server at `addr`: messages
/// sent one per write, all in one write, byte by byte, cut mid-frame and in random
/// pieces must each come back whole and in order.
fn reassembly(addr: SocketAddr) -> Check {
    let registry = socklab_scenarios::registry();
    let overrides = Overrides {
        sets: vec!["check=reassembly".into(), "framing=line".into(), "behaviour=echo".into()],
        target: Some(Target::Addr(addr)),
        ..Overrides::default()
    };
    let plan = RunPlan::scenarios(&["server-conformance"], &overrides, &registry).unwrap();
    let output = execute(&plan, &registry, &Silent).unwrap();
    let case = &output.report.cases[0];
    let check = case.checks.iter().find(|check| check.name == "reassembly");
    check.cloned().unwrap_or_else(|| panic!("no reassembly check: {case:#?}"))
}

/// A line echo server: `rfile` buffers what arrives and hands out whole lines.
const LINE_ECHO: &str = r#"
import socketserver

class Echo(socketserver.StreamRequestHandler):
    def handle(self):
        for line in self.rfile:
            self.wfile.write(line)

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// The same server written the naive way: each recv() taken to be one message.
const RECV_ECHO: &str = r#"
import socketserver

class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(1024):
            self.request.sendall(data.replace(b"\n", b"") + b"\n")

server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

#[test]
fn a_server_that_reads_whole_lines_passes_reassembly() {
    let server = Python::start(LINE_ECHO);
    let check = reassembly(server.addr);
    assert!(check.passed, "{check:#?}");
}

#[test]
fn a_server_that_takes_a_recv_for_a_message_fails_reassembly() {
    let server = Python::start(RECV_ECHO);
    let check = reassembly(server.addr);
    assert!(!check.passed, "{check:#?}");
    assert!(check.explanation.contains("the server treats each recv() as one message"), "{check:#?}");
}
// README:end

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// A Python program serving on a port of its own choosing (port 0), which it prints as
/// its first line; killed when dropped.
struct Python {
    child: Child,
    addr: SocketAddr,
}

impl Python {
    fn start(program: &str) -> Python {
        let mut child = Command::new("python3")
            .args(["-c", program])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 on PATH");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped stdout");
        BufReader::new(stdout).read_line(&mut line).expect("the server's port");
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("not a port: {line:?}"));
        Python { child, addr: SocketAddr::from(([127, 0, 0, 1], port)) }
    }
}

impl Drop for Python {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The README's code block under "Use socklab from `cargo test`" is this file's code
/// between `README:begin` and `README:end`, character for character.
#[test]
fn the_readme_shows_this_code() {
    let readme = include_str!("../README.md");
    let this = include_str!("library.rs");
    let between = |text: &'static str, start: &str, end: &str| -> &'static str {
        let from = text.find(start).unwrap_or_else(|| panic!("no `{start}`")) + start.len();
        let to = from + text[from..].find(end).unwrap_or_else(|| panic!("no `{end}` after `{start}`"));
        &text[from..to]
    };
    let section = between(readme, "## Use socklab from `cargo test`\n", "\n## ");
    let shown = between(section, "```rust\n", "```\n");
    let code = between(this, "// README:begin\n", "// README:end\n");
    assert_eq!(shown, code, "README.md's example differs from tests/library.rs: copy the code across");
}
