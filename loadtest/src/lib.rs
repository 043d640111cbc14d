//! Keyward's load generator as a library: the engine, scenarios, statistics and reports used by
//! the `keyward-loadtest` binary (and by its tests against a real validator).

pub mod baseline;
pub mod compare;
pub mod cpu;
pub mod engine;
pub mod fleet;
pub mod http1;
pub mod pacer;
pub mod probe;
pub mod progress;
pub mod report;
pub mod scenario;
pub mod setup;
pub mod stats;
pub mod suite;
pub mod throttle;
pub mod wrk;
