//! Boundary-map computation: how fast socklab joins writes to reads.
//!
//! The map is computed once per stream case, after the case, so it is never on a
//! measured path; this bench keeps it cheap enough to run over long streams (a 64 MiB
//! bulk transfer read in 1-byte reads is 67 million reads). The baseline in the same
//! group sums the lengths — the least any join must do — so the ratio shows the cost of
//! recording the pieces.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use socklab_harness::boundary::BoundaryMap;

/// `messages` messages of 1..=64 bytes read in chunks of `read_size`, from a fixed
/// pseudo-random sequence so every run measures the same work.
fn workload(messages: usize, read_size: usize) -> (Vec<usize>, Vec<usize>) {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let sources: Vec<usize> = (0..messages)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % 64) as usize + 1
        })
        .collect();
    let total: usize = sources.iter().sum();
    let targets = vec![read_size; total.div_ceil(read_size)];
    (sources, targets)
}

fn boundary_map(c: &mut Criterion) {
    let mut group = c.benchmark_group("boundary_map");
    for read_size in [5, 1024] {
        let (sources, targets) = workload(10_000, read_size);
        group.throughput(Throughput::Elements(sources.len() as u64));
        group.bench_with_input(BenchmarkId::new("compute", read_size), &read_size, |b, _| {
            b.iter(|| BoundaryMap::compute(black_box(&sources), black_box(&targets)))
        });
        group.bench_with_input(BenchmarkId::new("sum_lengths_baseline", read_size), &read_size, |b, _| {
            b.iter(|| black_box(&sources).iter().sum::<usize>() + black_box(&targets).iter().sum::<usize>())
        });
        let map = BoundaryMap::compute(&sources, &targets);
        group.bench_with_input(BenchmarkId::new("sticky_and_split", read_size), &read_size, |b, _| {
            b.iter(|| (black_box(&map).sticky_targets(), black_box(&map).split_sources()))
        });
    }
    group.finish();
}

criterion_group!(benches, boundary_map);
criterion_main!(benches);
