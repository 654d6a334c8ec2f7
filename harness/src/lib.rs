//! The engine every socklab scenario uses.
//!
//! A **scenario** ([`scenario::Scenario`]) is a small, exact experiment about socket
//! behaviour with typed parameters ([`params`]). A **suite** ([`suite`]) lists scenario
//! runs with parameter matrices; expanding it yields **cases**, which the [`runner`]
//! executes one at a time with a timeout each. Every case produces a
//! [`report::CaseResult`] — metrics, observations and [`check`]s — and the whole run is a
//! [`report::Report`], the versioned model every renderer reads. [`run`] is the whole
//! path from a plan (a suite with the command line's overrides) to that report, which
//! `socklab run` and `socklab probe` share and a Rust test can call.
//!
//! The harness knows no scenario by name: scenarios live in `socklab-scenarios` and are
//! handed to the runner through a [`scenario::Registry`].

pub mod cancel;
pub mod capture;
pub mod external;
pub mod host;
pub mod impair;
pub mod link;
pub mod metrics;
pub mod net;
pub mod params;
pub mod peer;
pub mod privilege;
pub mod repeat;
pub mod run;
pub mod runner;
pub mod scenario;
pub mod seed;
pub mod shared_params;
pub mod suite;

/// The plain data of a run, from its own crate (`socklab-model`): the report model,
/// metrics, checks, the boundary map, units and pure analysis. Its modules are also
/// reachable here under their own names.
pub use socklab_model as model;
pub use socklab_model::{boundary, check, metric, report, text};

/// The framing codecs, from their own crate (`socklab-framing`), where users can depend on
/// them without the rest of the harness.
pub use socklab_framing as framing;

/// What the declaration macros (`params!`, `named_enum!`) expand to, so that users of
/// them need no dependency of their own for it.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
