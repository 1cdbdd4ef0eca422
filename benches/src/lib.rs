//! The ws-channels benchmark suite: the servers compared, the load generator that drives
//! them, and the plumbing the programs in `src/bin/` share (child processes, CPU pinning,
//! file-descriptor limits, statistics). Each program's header says how to run it; the figures
//! of a full run are in `benches/RESULTS.md`.

pub mod load;
pub mod proc;
pub mod raw;
pub mod results;
pub mod servers;
pub mod stats;
pub mod wire;

/// The error type of the whole suite: benchmarks report and stop, they do not recover.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A `Result` with [`BoxError`].
pub type Result<T, E = BoxError> = std::result::Result<T, E>;
