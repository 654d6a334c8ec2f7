//! The `socklab` command line as a library: its argument definitions ([`cli`]), so
//! tests and tools can check a command line against the real parser (the CI recipe's
//! test does) without running it. The binary (`src/main.rs`) does the work.

pub mod cli;
