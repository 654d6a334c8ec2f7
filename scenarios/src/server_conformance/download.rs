//! `download`: a source server's frames read to the end, each checked against the size
//! its header announced — the tutorials' file transfer (`struct.pack('i', len(header))`,
//! a JSON header `{"file_name", "file_desc", "file_size"}`, then the body), with the
//! framing `json-header:le:file_size`, or any other framing a source sends.

use std::time::Duration;

use bytes::BytesMut;
use serde_json::Value;
use socklab_harness::check::Check;
use socklab_harness::framing::{FramingStrategy, JsonHeaderCodec};
use socklab_harness::params::Invalid;
use socklab_harness::peer::{Behaviour, ServerConfig};
use socklab_harness::scenario::{CaseContext, CaseOutcome};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_util::codec::Decoder;

use super::check::{ConformanceCheck, RelayLoad, Seen, refuse_if};
use super::conn::{End, Peer, io_within};
use super::setup::Setup;
use super::wire::MAX_REPLY_FRAME;
use super::{metric, ms};

/// Most frames read from one source before the check stops reading.
const MAX_FRAMES: usize = 100_000;

/// One frame received: its name (the header's `file_name` or `name`, when there is one),
/// the size its header announced (or its length, for framings without a header) and
/// the body bytes that came.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct File {
    name: Option<String>,
    announced: u64,
    received: u64,
}

/// The check; see the module docs.
pub(crate) struct Download;

impl ConformanceCheck for Download {
    const NAME: &'static str = "download";
    /// The default server (echo) has nothing to download.
    const IN_DEFAULT_SWEEP: bool = false;
    type Measure = Measure;

    fn applies(setup: &Setup) -> Result<(), Invalid> {
        let behaviour = setup.params.behaviour;
        refuse_if(behaviour != Behaviour::Source, "behaviour", || {
            format!(
                "download applies to a source, which sends frames until it closes; this server is {behaviour}"
            )
        })
    }

    fn relay(setup: &Setup) -> RelayLoad {
        RelayLoad::Moves { bytes: setup.conversation_bytes(), sized_by: None }
    }

    /// A download reads to the server's close: the reference source sends `messages`
    /// frames, then closes.
    fn reference(setup: &Setup, config: &mut ServerConfig) {
        config.source_max_messages = setup.params.messages;
    }

    async fn run(_setup: &Setup, peer: &Peer, _ctx: &CaseContext) -> Measure {
        let started = peer.clock.elapsed();
        let mut measure = Measure::default();
        let mut stream = match io_within(peer, TcpStream::connect(peer.addr)).await {
            Ok(stream) => stream,
            Err(end) => return Measure { end, ..measure },
        };
        let mut json = match peer.wire.0 {
            FramingStrategy::JsonHeader(layout) => {
                Some(JsonHeaderCodec::new().layout(layout).max_body_len(MAX_REPLY_FRAME))
            }
            _ => None,
        };
        let mut other = peer.wire.codec();
        let mut buffer = BytesMut::new();
        let mut chunk = vec![0u8; 64 << 10];
        // Each pass reads at least one byte or ends; frames are capped by MAX_FRAMES and each
        // read by the reply timeout.
        loop {
            let n = match io_within(peer, stream.read(&mut chunk)).await {
                Ok(n) => n,
                Err(end) => {
                    measure.end = end;
                    break;
                }
            };
            if n > 0 {
                buffer.extend_from_slice(&chunk[..n]);
            }
            let eof = n == 0;
            let decoded = drain(&mut json, &mut other, &mut buffer, eof, &mut measure.files);
            if let Err(e) = decoded {
                measure.error = Some(e);
                measure.end = End::Closed;
                break;
            }
            if eof {
                measure.end = End::Closed;
                break;
            }
            if measure.files.len() >= MAX_FRAMES {
                measure.end = End::TooMuch;
                break;
            }
        }
        measure.took = peer.clock.elapsed().saturating_sub(started);
        measure
    }

    fn evaluate(setup: &Setup, seen: Seen<Measure>, outcome: &mut CaseOutcome) -> Check {
        let params = &setup.params;
        let name = "download";
        let expected = format!(
            "every {} frame whole and of its announced size, up to the server's close at a frame boundary",
            params.framing
        );
        let Some(m) = seen.measure else {
            return Check::nothing_to_judge(name, expected, "the download did not run");
        };
        let bytes: u64 = m.files.iter().map(|f| f.received).sum();
        outcome
            .key_metric(metric::files, m.files.len() as f64)
            .metric(metric::download_bytes, bytes as f64)
            .metric(metric::download_ms, ms(m.took));
        if m.files.is_empty() && m.error.is_none() {
            let why = m.end.words(Duration::from_millis(params.reply_timeout_ms));
            return Check::nothing_to_judge(name, expected, &format!("no frame arrived ({why})"));
        }
        let listed: Vec<String> = m
            .files
            .iter()
            .take(10)
            .map(|f| format!("{} {} B", f.name.as_deref().unwrap_or("(no name)"), f.received))
            .collect();
        let more = m.files.len().saturating_sub(listed.len());
        let list =
            if more > 0 { format!("{}, and {more} more", listed.join(", ")) } else { listed.join(", ") };
        let short = m.files.iter().filter(|f| f.received != f.announced).count();
        let (passed, sentence) = match (&m.error, &m.end, short) {
            (None, End::Closed, 0) => (
                true,
                format!(
                    "{} frames arrived whole, each of its announced size, and the server closed at a frame boundary",
                    m.files.len()
                ),
            ),
            (Some(error), _, _) => (
                false,
                format!(
                    "after {} whole frames the stream broke off: {error}: the server closed mid-frame (a send() that took only part of it?)",
                    m.files.len()
                ),
            ),
            (None, End::Closed, n) => {
                (false, format!("{n} frames were shorter than their headers announced"))
            }
            (None, end, _) => (
                false,
                format!(
                    "the server did not close after its last frame ({}); a download needs an end",
                    end.words(Duration::from_millis(params.reply_timeout_ms))
                ),
            ),
        };
        Check::new(name, expected, format!("{} frames: {list}", m.files.len()), passed, sentence)
    }
}

/// What the download saw.
#[derive(Debug, Default)]
pub(crate) struct Measure {
    files: Vec<File>,
    /// How the stream ended.
    end: End,
    /// The decoder's error, when the stream did not end at a frame boundary.
    error: Option<String>,
    /// How long the whole download took.
    took: Duration,
}

/// Decodes every whole frame in `buffer` (at end of stream, `decode_eof`, which fails on
/// a cut-off frame).
fn drain(
    json: &mut Option<JsonHeaderCodec>,
    other: &mut Option<socklab_harness::framing::MessageCodec>,
    buffer: &mut BytesMut,
    eof: bool,
    files: &mut Vec<File>,
) -> Result<(), String> {
    loop {
        let file = match (json.as_mut(), other.as_mut()) {
            (Some(codec), _) => {
                let frame = if eof { codec.decode_eof(buffer) } else { codec.decode(buffer) };
                frame.map_err(|e| e.to_string())?.map(|f| {
                    let name = ["file_name", "name"]
                        .iter()
                        .find_map(|k| f.header.get(*k).and_then(Value::as_str).map(String::from));
                    // The codec cut exactly the announced size, so both are the body's length
                    // here; a short body shows as the stream ending mid-frame instead.
                    File { name, announced: f.body.len() as u64, received: f.body.len() as u64 }
                })
            }
            (None, Some(codec)) => {
                let frame = if eof { codec.decode_eof(buffer) } else { codec.decode(buffer) };
                frame.map_err(|e| e.to_string())?.map(|body| File {
                    name: None,
                    announced: body.len() as u64,
                    received: body.len() as u64,
                })
            }
            (None, None) => return Err("stop-and-wait has no stream to download".into()),
        };
        match file {
            Some(file) => files.push(file),
            None => return Ok(()),
        }
        if files.len() >= MAX_FRAMES {
            return Ok(());
        }
    }
}
