//! Workloads shared by socklab's benchmarks: the criterion benches in `benches/` time
//! them, and `examples/framing_instructions.rs` runs the same code under callgrind to
//! count instructions, which, unlike time, does not depend on what else the machine runs.

pub mod framing;
