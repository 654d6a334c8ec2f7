//! The cost of recording one latency sample (target: at most 20 ns), next to the least a
//! recorder can do — a store into a preallocated array — and hdrhistogram's own
//! `record`, so the ratio shows what socklab's wrapper (clamping, overflow count) adds.

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hdrhistogram::Histogram;
use socklab_harness::metrics::LatencyRecorder;

/// Sample values spread over 1 µs .. 100 ms, so every bucket size is exercised.
fn samples() -> Vec<u64> {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    (0..4096)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            1_000 + state % 100_000_000
        })
        .collect()
}

fn latency_record(c: &mut Criterion) {
    let samples = samples();
    let mut group = c.benchmark_group("latency_record");
    group.throughput(Throughput::Elements(samples.len() as u64));
    group.bench_function("socklab_record_ns", |b| {
        let mut recorder = LatencyRecorder::new();
        b.iter(|| {
            for &ns in &samples {
                recorder.record_ns(black_box(ns));
            }
        })
    });
    group.bench_function("socklab_record_duration", |b| {
        let mut recorder = LatencyRecorder::new();
        let durations: Vec<Duration> = samples.iter().map(|&ns| Duration::from_nanos(ns)).collect();
        b.iter(|| {
            for &d in &durations {
                recorder.record(black_box(d));
            }
        })
    });
    group.bench_function("hdrhistogram_record", |b| {
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 3_600_000_000_000, 3).unwrap();
        b.iter(|| {
            for &ns in &samples {
                let _ = histogram.record(black_box(ns));
            }
        })
    });
    group.bench_function("array_store_baseline", |b| {
        let mut store = vec![0u64; samples.len()];
        b.iter(|| {
            for (slot, &ns) in store.iter_mut().zip(&samples) {
                *slot = black_box(ns);
            }
        })
    });
    group.finish();
}

criterion_group!(benches, latency_record);
criterion_main!(benches);
