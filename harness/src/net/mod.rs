//! Socket facts and settings the kernel knows and the application usually does not:
//! queue lengths, socket options, kernel counters, network namespaces.

mod queue;

pub use queue::bytes_queued;
