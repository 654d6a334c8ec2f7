//! The agent's control loop, driven in memory exactly as `socklab agent --stdio` is
//! driven through its stdin and stdout: hostile input gets an error reply and the agent
//! serves on; versions are compared first; roles bind, run and report on loopback.

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};
use socklab_harness::metrics::LatencyRecorder;
use socklab_harness::peer::agent::protocol::DEFAULT_MAX_LINE;
use socklab_harness::peer::agent::{AgentConfig, AgentExit, SOCKLAB_VERSION, run_agent};
use socklab_harness::peer::bulk::pattern::Source;

fn hello() -> String {
    json!({"type": "hello", "protocol": 1, "socklab_version": SOCKLAB_VERSION}).to_string()
}

/// Runs the agent over `input` to its end; returns its replies and how it ended.
fn replies_to(input: &[u8]) -> (Vec<Value>, AgentExit) {
    let mut output = Vec::new();
    let exit = run_agent(Cursor::new(input.to_vec()), &mut output, AgentConfig::default());
    let replies = String::from_utf8(output)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("reply is not JSON ({e}): {line}")))
        .collect();
    (replies, exit)
}

fn code(reply: &Value) -> &str {
    assert_eq!(reply["type"], "error", "{reply}");
    reply["code"].as_str().unwrap()
}

#[test]
fn garbage_unknown_types_extra_fields_and_huge_lines_get_errors_and_the_agent_serves_on() {
    let marker = std::env::temp_dir().join(format!("socklab-agent-pwned-{}", std::process::id()));
    let mut input = String::new();
    input += r#"{"type":"clock","id":1}"#; // before hello
    input += "\n";
    input += &hello();
    input += "\n";
    input += "this is not json\n";
    input += "\u{1}\u{2}garbage\u{7f}\n";
    input += "[1, 2, 3]\n";
    input += &format!("{{\"type\":\"exec\",\"id\":7,\"cmd\":\"touch {}\"}}\n", marker.display());
    input += r#"{"type":"clock","id":8,"cmd":"sh"}"#;
    input += "\n";
    input += r#"{"type":"start","id":9,"role":{"kind":"stream_reader","read_size":0,"read_delay_ms":0,"warm_round_trips":0,"max_bytes":1}}"#;
    input += "\n";
    input += r#"{"type":"stop","id":10,"role":42,"wait_ms":0}"#;
    input += "\n";
    let mut bytes = input.into_bytes();
    // One line over the 1 MiB limit, then a valid request: the agent must still answer.
    bytes.extend(std::iter::repeat_n(b'{', DEFAULT_MAX_LINE + 1));
    bytes.push(b'\n');
    bytes.extend_from_slice(b"\xff\xfe\n");
    bytes.extend_from_slice(br#"{"type":"clock","id":11}"#);
    bytes.push(b'\n');
    let (replies, exit) = replies_to(&bytes);
    assert_eq!(exit, AgentExit::Finished);
    let codes: Vec<&str> = replies.iter().map(|r| r["code"].as_str().unwrap_or("")).collect();
    assert_eq!(
        codes,
        [
            "hello_first",
            "",
            "malformed",
            "malformed",
            "malformed",
            "unknown_type",
            "bad_request",
            "bad_request",
            "no_such_role",
            "line_too_long",
            "malformed",
            ""
        ],
        "{replies:#?}"
    );
    assert_eq!(replies[1]["type"], "hello");
    assert!(replies[5]["message"].as_str().unwrap().contains("runs no commands"), "{}", replies[5]);
    assert_eq!(replies[5]["id"], 7);
    assert!(replies[6]["message"].as_str().unwrap().contains("unknown field `cmd`"), "{}", replies[6]);
    assert!(
        replies[7]["message"].as_str().unwrap().contains("read_size 0 is outside 1..="),
        "{}",
        replies[7]
    );
    assert!(replies[9]["message"].as_str().unwrap().contains(&format!("{} bytes", DEFAULT_MAX_LINE + 1)));
    assert_eq!(replies[11]["type"], "clock");
    assert_eq!(replies[11]["id"], 11);
    assert!(!marker.exists(), "the agent ran a command");
}

#[test]
fn input_that_ends_in_the_middle_of_a_message_is_an_error_and_the_end() {
    let input = format!("{}\n{{\"type\":\"clock\",\"id\":", hello());
    let (replies, exit) = replies_to(input.as_bytes());
    assert_eq!(exit, AgentExit::Truncated);
    assert_eq!(exit.code(), 1);
    assert_eq!(replies.len(), 2);
    assert_eq!(code(&replies[1]), "truncated");
    assert!(replies[1]["message"].as_str().unwrap().contains("21 bytes without a newline"), "{}", replies[1]);
    // A clean end at a line boundary is a normal exit.
    let (replies, exit) = replies_to(format!("{}\n", hello()).as_bytes());
    assert_eq!((replies.len(), exit), (1, AgentExit::Finished));
}

#[test]
fn a_version_mismatch_is_one_error_and_exit_2() {
    let input = concat!(
        r#"{"type":"hello","protocol":1,"socklab_version":"9.9.9"}"#,
        "\n",
        r#"{"type":"clock","id":1}"#,
        "\n"
    );
    let (replies, exit) = replies_to(input.as_bytes());
    assert_eq!(exit, AgentExit::VersionMismatch);
    assert_eq!(exit.code(), 2);
    assert_eq!(replies.len(), 1, "nothing after the mismatch is served: {replies:?}");
    assert_eq!(code(&replies[0]), "version_mismatch");
    let message = replies[0]["message"].as_str().unwrap();
    assert!(message.contains("9.9.9") && message.contains(SOCKLAB_VERSION), "{message}");
    let (replies, _) = replies_to(b"{\"type\":\"hello\",\"protocol\":2,\"socklab_version\":\"0.1.0\"}\n");
    assert_eq!(code(&replies[0]), "version_mismatch");
}

/// An agent on a thread, fed through a socket pair (a pipe, both ways), its replies read
/// line by line.
struct LiveAgent {
    input: UnixStream,
    output: BufReader<UnixStream>,
    thread: std::thread::JoinHandle<AgentExit>,
}

impl LiveAgent {
    fn start() -> LiveAgent {
        let (input_reader, input) = UnixStream::pair().unwrap();
        let (output_reader, output_writer) = UnixStream::pair().unwrap();
        let thread = std::thread::spawn(move || {
            run_agent(BufReader::new(input_reader), output_writer, AgentConfig::default())
        });
        let mut agent = LiveAgent { input, output: BufReader::new(output_reader), thread };
        let reply = agent.ask(&hello());
        assert_eq!(reply["type"], "hello", "{reply}");
        assert_eq!(reply["host"]["kernel"], socklab_harness::host::kernel_release());
        agent
    }

    fn ask(&mut self, request: &str) -> Value {
        writeln!(self.input, "{request}").unwrap();
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// The loopback address of a role's port.
    fn started(&mut self, request: Value) -> (u64, SocketAddr) {
        let reply = self.ask(&request.to_string());
        assert_eq!(reply["type"], "started", "{reply}");
        let addr: SocketAddr = reply["addr"].as_str().unwrap().parse().unwrap();
        (reply["role"].as_u64().unwrap(), SocketAddr::from(([127, 0, 0, 1], addr.port())))
    }

    fn finish(mut self) -> AgentExit {
        let reply = self.ask(r#"{"type":"bye","id":999}"#);
        assert_eq!(reply["type"], "bye");
        drop(self.input);
        self.thread.join().unwrap()
    }
}

#[test]
fn a_stream_reader_reports_every_read_with_its_bytes() {
    let mut agent = LiveAgent::start();
    let (role, addr) = agent.started(json!({"type": "start", "id": 1, "role": {
        "kind": "stream_reader", "read_size": 5, "read_delay_ms": 100, "warm_round_trips": 0, "max_bytes": 17}}));
    let mut client = TcpStream::connect(addr).unwrap();
    for message in ["1234567", "abcde", "hhhhh"] {
        client.write_all(message.as_bytes()).unwrap();
    }
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = agent.ask(&json!({"type": "stop", "id": 2, "role": role, "wait_ms": 5000}).to_string());
    assert_eq!(reply["type"], "stopped", "{reply}");
    let observation = &reply["observation"];
    let engine = base64::engine::general_purpose::STANDARD;
    let reads: Vec<String> = observation["reads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8(engine.decode(r["data"].as_str().unwrap()).unwrap()).unwrap())
        .collect();
    assert_eq!(reads, ["12345", "67abc", "dehhh", "hh"]);
    assert_eq!(observation["queued_at_first_read"], 17);
    // The role is gone once stopped.
    let again = agent.ask(&json!({"type": "stop", "id": 3, "role": role, "wait_ms": 0}).to_string());
    assert_eq!(code(&again), "no_such_role");
    assert_eq!(agent.finish(), AgentExit::Finished);
}

#[test]
fn a_bulk_sink_verifies_every_byte() {
    let mut agent = LiveAgent::start();
    let (role, addr) = agent.started(json!({"type": "start", "id": 1, "role": {
        "kind": "bulk_sink", "read_size": 65536, "rcvbuf": 0, "expected_bytes": 1048576}}));
    let mut client = TcpStream::connect(addr).unwrap();
    let mut source = Source::new(1 << 20);
    client.write_all(source.chunk(0, 1 << 20)).unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    let reply = agent.ask(&json!({"type": "stop", "id": 2, "role": role, "wait_ms": 10000}).to_string());
    let observation = &reply["observation"];
    assert_eq!(observation["received"], 1 << 20, "{reply}");
    assert_eq!(observation["first_mismatch"], Value::Null);
    assert!(observation["elapsed_us"].as_u64().unwrap() > 0);
    agent.finish();
}

#[test]
fn a_workload_against_a_server_role_returns_its_histogram_and_the_server_its_counts() {
    let mut agent = LiveAgent::start();
    let (role, addr) = agent.started(json!({"type": "start", "id": 1, "role": {
        "kind": "server", "framing": "u32be", "behaviour": "echo", "flavour": "tokio"}}));
    let reply = agent.ask(
        &json!({"type": "workload", "id": 2, "addr": addr.to_string(), "workload": {
            "mode": "ping-pong", "framing": "u32be", "message_size": 64, "duration_ms": 100, "max_messages": 50,
            "window": 1, "rate_per_s": 1000.0, "nodelay": true, "server_behaviour": "echo"}})
        .to_string(),
    );
    assert_eq!(reply["type"], "workload", "{reply}");
    let result = &reply["result"];
    assert_eq!(result["sent"], result["replied"]);
    assert!(result["sent"].as_u64().unwrap() > 0);
    let histogram = LatencyRecorder::from_base64(result["latency_histogram"].as_str().unwrap()).unwrap();
    assert_eq!(histogram.count(), result["replied"].as_u64().unwrap());
    let stopped = agent.ask(&json!({"type": "stop", "id": 3, "role": role, "wait_ms": 0}).to_string());
    assert_eq!(stopped["observation"]["messages"], result["sent"], "{stopped}");
    // A workload against nothing is an error reply, and the agent goes on.
    let refused = agent.ask(
        &json!({"type": "workload", "id": 4, "addr": "127.0.0.1:1", "workload": {
            "mode": "ping-pong", "framing": "u32be", "message_size": 64, "duration_ms": 100, "max_messages": 5,
            "window": 1, "rate_per_s": 1000.0, "nodelay": true, "server_behaviour": "echo"}})
        .to_string(),
    );
    assert_eq!(code(&refused), "failed");
    agent.finish();
}

#[test]
fn a_role_that_does_not_finish_is_stopped_after_its_wait() {
    let mut agent = LiveAgent::start();
    let (role, _) = agent.started(json!({"type": "start", "id": 1, "role": {
        "kind": "stream_reader", "read_size": 5, "read_delay_ms": 0, "warm_round_trips": 0, "max_bytes": 10}}));
    let started = std::time::Instant::now();
    let reply = agent.ask(&json!({"type": "stop", "id": 2, "role": role, "wait_ms": 100}).to_string());
    assert_eq!(code(&reply), "failed");
    assert!(reply["message"].as_str().unwrap().contains("did not finish within 100 ms"), "{reply}");
    assert!(started.elapsed() < Duration::from_secs(5));
    agent.finish();
}

#[test]
fn eof_on_stdin_stops_every_role() {
    let (input_reader, mut input) = UnixStream::pair().unwrap();
    let (mut output_reader, output_writer) = UnixStream::pair().unwrap();
    let thread = std::thread::spawn(move || {
        run_agent(BufReader::new(input_reader), output_writer, AgentConfig::default())
    });
    writeln!(input, "{}", hello()).unwrap();
    writeln!(input, r#"{{"type":"start","id":1,"role":{{"kind":"server","framing":"line","behaviour":"echo","flavour":"threaded"}}}}"#).unwrap();
    drop(input);
    assert_eq!(thread.join().unwrap(), AgentExit::Finished);
    let mut text = String::new();
    output_reader.read_to_string(&mut text).unwrap();
    let started: Value = serde_json::from_str(text.lines().nth(1).unwrap()).unwrap();
    let port = started["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap().port();
    // The server was stopped: nothing accepts on its port any more (within its poll).
    std::thread::sleep(Duration::from_millis(300));
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

/// An agent on a thread whose end is awaited with a deadline: a test must not hang on an
/// agent that does not end.
struct WatchedAgent {
    input: UnixStream,
    output: BufReader<UnixStream>,
    done: std::sync::mpsc::Receiver<AgentExit>,
}

impl WatchedAgent {
    fn start() -> WatchedAgent {
        let (input_reader, input) = UnixStream::pair().unwrap();
        let (output_reader, output_writer) = UnixStream::pair().unwrap();
        let (done_tx, done) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ =
                done_tx.send(run_agent(BufReader::new(input_reader), output_writer, AgentConfig::default()));
        });
        let mut agent = WatchedAgent { input, output: BufReader::new(output_reader), done };
        assert_eq!(agent.ask(&hello())["type"], "hello");
        agent
    }

    fn ask(&mut self, request: &str) -> Value {
        writeln!(self.input, "{request}").unwrap();
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }

    /// Sends `request`, closes the input 500 ms later, and returns how long the agent
    /// took to end after that, and how it ended.
    fn close_during(mut self, request: &Value) -> (Duration, AgentExit) {
        writeln!(self.input, "{request}").unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let closed = std::time::Instant::now();
        drop(self.input);
        let exit = self.done.recv_timeout(Duration::from_secs(30)).expect("the agent ends within 30 s");
        (closed.elapsed(), exit)
    }
}

/// The end of the input ends the agent within a second even while a request is at work
/// (before, it was noticed only after the request: a stop could wait ten minutes, a
/// workload a minute). Its input is a socket pair closed mid-request, as a pipe is when
/// the runner's ssh dies.
#[test]
fn the_end_of_the_input_ends_a_stop_or_a_workload_at_work() {
    // A stop that would wait 600 s for a reader nobody connects to.
    let mut agent = WatchedAgent::start();
    let started = agent.ask(
        &json!({"type": "start", "id": 1, "role": {
            "kind": "stream_reader", "read_size": 5, "read_delay_ms": 0, "warm_round_trips": 0, "max_bytes": 10}})
        .to_string(),
    );
    let stop = json!({"type": "stop", "id": 2, "role": started["role"], "wait_ms": 600_000});
    let (took, exit) = agent.close_during(&stop);
    assert_eq!(exit, AgentExit::Finished);
    assert!(took < Duration::from_secs(5), "the stop was abandoned {took:?} after the input ended");

    // A one-minute workload against a server role of the agent's own.
    let mut agent = WatchedAgent::start();
    let started = agent.ask(
        &json!({"type": "start", "id": 1, "role": {
            "kind": "server", "framing": "u32be", "behaviour": "echo", "flavour": "tokio"}})
        .to_string(),
    );
    let port = started["addr"].as_str().unwrap().parse::<SocketAddr>().unwrap().port();
    let workload = json!({"type": "workload", "id": 2, "addr": format!("127.0.0.1:{port}"), "workload": {
        "mode": "ping-pong", "framing": "u32be", "message_size": 64, "duration_ms": 60_000,
        "max_messages": 100_000_000, "window": 1, "rate_per_s": 100.0, "nodelay": true,
        "server_behaviour": "echo"}});
    let (took, exit) = agent.close_during(&workload);
    assert_eq!(exit, AgentExit::Finished);
    assert!(took < Duration::from_secs(5), "the workload was abandoned {took:?} after the input ended");
}
