//! Framing codec throughput: every socklab strategy against its floor (the simplest
//! correct decoder of the same wire format), tokio-util's `LengthDelimitedCodec` and
//! `LinesCodec` (the ecosystem anchors) and a plain memcpy of the same bytes (the
//! physical limit), one criterion group per message size, so every ratio comes from one
//! run. The workload itself lives in `socklab_benches::framing`, shared with the
//! instruction counter (`examples/framing_instructions.rs`).
//!
//! Decode: a pre-encoded stream of about 1 MiB of messages is appended to the read
//! buffer in 64 KiB chunks, as reads from a socket would arrive, and every frame is
//! decoded and dropped. Encode: the same messages are encoded into one buffer.
//! Throughput is counted in **payload bytes** for every entry, so that headers and
//! delimiters count as cost, not as throughput, and entries in a group compare directly.
//!
//! Run: `cargo bench -p socklab-benches --bench framing` (add `-- --quick` for a fast
//! pass; `-- --test` runs each entry once, untimed, as CI does).

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use socklab_benches::framing::{
    DECODE_ENTRIES, ENCODE_ENTRIES, READ_CHUNK, SIZES, STREAM_BYTES, Streams, run_decode, run_encode,
};

fn decode(c: &mut Criterion) {
    for (size, label) in SIZES {
        let streams = Streams::new(size);
        let mut group = c.benchmark_group(format!("decode-{label}"));
        group.throughput(Throughput::Bytes(streams.payload as u64));
        let mut scratch = BytesMut::with_capacity(READ_CHUNK);
        for entry in DECODE_ENTRIES {
            let frames = run_decode(entry, &streams, &mut scratch);
            // Raw has no messages to give back: every read is one "frame".
            if !entry.ends_with(" raw") {
                assert_eq!(frames, streams.count(), "{entry} decodes every message");
            }
            group.bench_function(entry, |b| b.iter(|| run_decode(entry, black_box(&streams), &mut scratch)));
        }
        group.finish();
    }
}

fn encode(c: &mut Criterion) {
    for (size, label) in SIZES {
        let streams = Streams::new(size);
        let mut group = c.benchmark_group(format!("encode-{label}"));
        group.throughput(Throughput::Bytes(streams.payload as u64));
        let mut dst = BytesMut::with_capacity(2 * STREAM_BYTES + 64 * 1024);
        for entry in ENCODE_ENTRIES {
            group.bench_function(entry, |b| b.iter(|| run_encode(entry, black_box(&streams), &mut dst)));
        }
        group.finish();
    }
}

criterion_group! {
    name = codecs;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    targets = decode, encode
}
criterion_main!(codecs);
