//! Framing codec throughput: every socklab strategy against tokio-util's
//! `LengthDelimitedCodec` and `LinesCodec` (the ecosystem anchors) and a plain memcpy of
//! the same bytes (the physical limit), one criterion group per message size.
//!
//! Decode: a pre-encoded stream of about 1 MiB of messages is appended to the read
//! buffer in 64 KiB chunks, as reads from a socket would arrive, and every frame is
//! decoded. Encode: the same messages are encoded into one buffer. Throughput is counted
//! in **payload bytes** for every entry, so that headers and delimiters count as cost, not
//! as throughput, and entries in a group compare directly.
//!
//! Run: `cargo bench -p socklab-benches --bench framing` (add `-- --quick` for a fast pass).

use std::hint::black_box;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use criterion::{
    BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main, measurement::WallTime,
};
use socklab_framing::{
    CobsCodec, DelimitedCodec, FixedSizeCodec, JsonFrame, JsonHeaderCodec, LengthPrefixedCodec, RawCodec,
    VarintCodec,
};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec, LinesCodec};

/// Message sizes, one group each.
const SIZES: [(usize, &str); 4] = [(16, "16B"), (256, "256B"), (4 * 1024, "4KiB"), (64 * 1024, "64KiB")];
/// Payload bytes per iteration.
const STREAM_BYTES: usize = 1 << 20;
/// Bytes appended to the read buffer at a time, like one large socket read.
const READ_CHUNK: usize = 64 * 1024;

/// `count` messages of `size` printable bytes, never `\n`, so every codec can carry them.
fn messages(size: usize) -> Vec<Bytes> {
    let count = (STREAM_BYTES / size).max(8);
    (0..count)
        .map(|i| Bytes::from((0..size).map(|j| b'a' + ((i * 7 + j) % 26) as u8).collect::<Vec<u8>>()))
        .collect()
}

fn encode_with<I, E: Encoder<I>>(mut encoder: E, items: impl IntoIterator<Item = I>) -> Vec<u8>
where
    E::Error: std::fmt::Debug,
{
    let mut dst = BytesMut::new();
    for item in items {
        encoder.encode(item, &mut dst).expect("benchmark messages fit every codec");
    }
    dst.to_vec()
}

/// Appends `stream` to a read buffer chunk by chunk and decodes every frame.
fn decode_all<D: Decoder>(mut decoder: D, stream: &[u8]) -> usize
where
    D::Error: std::fmt::Debug,
{
    let mut buf = BytesMut::with_capacity(2 * READ_CHUNK);
    let mut frames = 0;
    for chunk in stream.chunks(READ_CHUNK) {
        buf.extend_from_slice(chunk);
        while let Some(frame) = decoder.decode(&mut buf).expect("benchmark stream is valid") {
            black_box(frame);
            frames += 1;
        }
    }
    frames
}

fn bench_decoder<D: Decoder>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    make: impl Fn() -> D,
    stream: &[u8],
    expected: usize,
) where
    D::Error: std::fmt::Debug,
{
    assert_eq!(decode_all(make(), stream), expected, "{name} decodes every message");
    group.bench_function(name, |b| b.iter(|| decode_all(make(), black_box(stream))));
}

fn decode(c: &mut Criterion) {
    for (size, label) in SIZES {
        let msgs = messages(size);
        let n = msgs.len();
        let payload: usize = msgs.iter().map(Bytes::len).sum();
        let raw = encode_with(RawCodec, &msgs);
        let line = encode_with(DelimitedCodec::new(), &msgs);
        let cobs = encode_with(CobsCodec::new(), &msgs);
        let u32be = encode_with(LengthPrefixedCodec::u32_be(), &msgs);
        let varint = encode_with(VarintCodec::new(), &msgs);
        let json = encode_with(JsonHeaderCodec::new(), msgs.iter().map(|m| JsonFrame::new(m.clone())));
        let fixed = encode_with(FixedSizeCodec::new(size), &msgs);
        assert_eq!(u32be, encode_with(LengthDelimitedCodec::new(), msgs.iter().cloned()), "same wire format");

        let mut group = c.benchmark_group(format!("decode-{label}"));
        group.throughput(Throughput::Bytes(payload as u64));
        group.bench_function("memcpy", |b| {
            let mut buf = BytesMut::with_capacity(READ_CHUNK);
            b.iter(|| {
                for chunk in black_box(&raw[..]).chunks(READ_CHUNK) {
                    buf.clear();
                    buf.extend_from_slice(chunk);
                    black_box(&buf);
                }
            })
        });
        bench_decoder(&mut group, "tokio-util LengthDelimitedCodec", LengthDelimitedCodec::new, &u32be, n);
        bench_decoder(&mut group, "tokio-util LinesCodec", LinesCodec::new, &line, n);
        bench_decoder(&mut group, "socklab u32be", LengthPrefixedCodec::u32_be, &u32be, n);
        bench_decoder(&mut group, "socklab line", DelimitedCodec::new, &line, n);
        bench_decoder(&mut group, "socklab varint", VarintCodec::new, &varint, n);
        bench_decoder(&mut group, "socklab cobs", CobsCodec::new, &cobs, n);
        bench_decoder(&mut group, "socklab fixed", || FixedSizeCodec::new(size), &fixed, n);
        bench_decoder(&mut group, "socklab json-header", JsonHeaderCodec::new, &json, n);
        group.bench_function("socklab raw", |b| b.iter(|| decode_all(RawCodec, black_box(&raw))));
        group.finish();
    }
}

/// Benchmarks encoding every message into one buffer. `encode_one` hands a message to
/// the encoder in the form its API takes: a reference where the codec accepts one
/// (socklab's codecs, `LinesCodec`), an owned `Bytes` clone where it needs ownership
/// (`LengthDelimitedCodec`), a `JsonFrame` for the JSON header codec; that cost is part of
/// each API.
fn bench_encoder<E>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    make: impl Fn() -> E,
    msgs: &[Bytes],
    encode_one: impl Fn(&mut E, &Bytes, &mut BytesMut),
) {
    let mut dst = BytesMut::with_capacity(2 * STREAM_BYTES + 64 * 1024);
    group.bench_function(name, |b| {
        b.iter(|| {
            dst.clear();
            let mut encoder = make();
            for m in black_box(msgs) {
                encode_one(&mut encoder, m, &mut dst);
            }
            black_box(&dst);
        })
    });
}

/// Encodes one message by reference, for encoders that accept `&Bytes`.
fn by_ref<E: for<'a> Encoder<&'a Bytes>>(encoder: &mut E, m: &Bytes, dst: &mut BytesMut) {
    if encoder.encode(m, dst).is_err() {
        panic!("benchmark messages fit every codec");
    }
}

fn encode(c: &mut Criterion) {
    for (size, label) in SIZES {
        let msgs = messages(size);
        let payload: usize = msgs.iter().map(Bytes::len).sum();
        // LinesCodec encodes `AsRef<str>`; the same messages as strings, built outside the loop.
        let lines: Vec<String> =
            msgs.iter().map(|m| String::from_utf8(m.to_vec()).expect("messages are ASCII")).collect();
        let mut group = c.benchmark_group(format!("encode-{label}"));
        group.throughput(Throughput::Bytes(payload as u64));
        let mut dst = BytesMut::with_capacity(2 * STREAM_BYTES);
        group.bench_function("memcpy", |b| {
            b.iter(|| {
                dst.clear();
                for m in black_box(&msgs) {
                    dst.extend_from_slice(m);
                }
                black_box(&dst);
            })
        });
        bench_encoder(
            &mut group,
            "tokio-util LengthDelimitedCodec",
            LengthDelimitedCodec::new,
            &msgs,
            |e, m, dst| e.encode(m.clone(), dst).expect("fits"),
        );
        group.bench_function("tokio-util LinesCodec", |b| {
            let mut dst = BytesMut::with_capacity(2 * STREAM_BYTES);
            b.iter(|| {
                dst.clear();
                let mut encoder = LinesCodec::new();
                for line in black_box(&lines) {
                    encoder.encode(line, &mut dst).expect("fits");
                }
                black_box(&dst);
            })
        });
        bench_encoder(&mut group, "socklab u32be", LengthPrefixedCodec::u32_be, &msgs, by_ref);
        bench_encoder(&mut group, "socklab line", DelimitedCodec::new, &msgs, by_ref);
        bench_encoder(&mut group, "socklab varint", VarintCodec::new, &msgs, by_ref);
        bench_encoder(&mut group, "socklab cobs", CobsCodec::new, &msgs, by_ref);
        bench_encoder(&mut group, "socklab fixed", || FixedSizeCodec::new(size), &msgs, by_ref);
        bench_encoder(&mut group, "socklab json-header", JsonHeaderCodec::new, &msgs, |e, m, dst| {
            e.encode(JsonFrame::new(m.clone()), dst).expect("fits")
        });
        bench_encoder(&mut group, "socklab raw", || RawCodec, &msgs, by_ref);
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
