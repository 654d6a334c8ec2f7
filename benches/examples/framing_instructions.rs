//! Runs one framing benchmark entry a fixed number of times, for counting instructions
//! with callgrind (`benches/callgrind.sh` runs every entry and prints the table).
//! Instruction counts do not depend on what else the machine is doing, so they compare
//! a change before and after on a loaded machine where wall-clock time cannot.
//!
//! ```text
//! framing_instructions decode|encode ENTRY SIZE_BYTES [REPS]   run ENTRY REPS times (default 10)
//! framing_instructions list decode|encode                      print the entries, one a line
//! ```
//!
//! The line it prints ends with the wall-clock time of the counted part (`elapsed_ns=`),
//! for quick timings outside criterion.
//!
//! Only [`measured`] is meant to be counted: run callgrind with
//! `--collect-atstart=no --toggle-collect='*measured*'` so that building the streams is
//! left out.

use std::process::ExitCode;

use bytes::BytesMut;
use socklab_benches::framing::{
    DECODE_ENTRIES, ENCODE_ENTRIES, READ_CHUNK, STREAM_BYTES, Streams, run_decode, run_encode,
};

/// The counted part: `reps` runs of one entry.
#[inline(never)]
fn measured(mode: &str, entry: &str, streams: &Streams, reps: usize, buf: &mut BytesMut) -> usize {
    let mut total = 0;
    for _ in 0..reps {
        total += match mode {
            "decode" => run_decode(entry, streams, buf),
            _ => run_encode(entry, streams, buf),
        };
    }
    total
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let usage = "usage: framing_instructions decode|encode ENTRY SIZE_BYTES [REPS] | list decode|encode";
    match args.as_slice() {
        ["list", "decode"] => DECODE_ENTRIES.iter().for_each(|e| println!("{e}")),
        ["list", "encode"] => ENCODE_ENTRIES.iter().for_each(|e| println!("{e}")),
        [mode @ ("decode" | "encode"), entry, size, rest @ ..] if rest.len() <= 1 => {
            let entries: &[&str] = if *mode == "decode" { &DECODE_ENTRIES } else { &ENCODE_ENTRIES };
            if !entries.contains(entry) {
                eprintln!("unknown {mode} entry {entry:?}; known: {entries:?}");
                return ExitCode::from(2);
            }
            let (Ok(size), Ok(reps)) =
                (size.parse::<usize>(), rest.first().unwrap_or(&"10").parse::<usize>())
            else {
                eprintln!("{usage}");
                return ExitCode::from(2);
            };
            if size == 0 {
                eprintln!("SIZE_BYTES must be at least 1");
                return ExitCode::from(2);
            }
            let streams = Streams::new(size);
            let capacity = if *mode == "decode" { READ_CHUNK } else { 2 * STREAM_BYTES + 64 * 1024 };
            let mut buf = BytesMut::with_capacity(capacity);
            let start = std::time::Instant::now();
            let total = measured(mode, entry, &streams, reps, &mut buf);
            let elapsed = start.elapsed();
            println!(
                "{mode} {entry} {size} reps={reps} payload_bytes={} result={total} elapsed_ns={}",
                streams.payload,
                elapsed.as_nanos()
            );
        }
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    }
    ExitCode::SUCCESS
}
