//! The SQL of every resource, used by both services. Reads take any client; writes that can
//! change a validator's answer take a [`crate::write::WriteTx`].

pub mod accounts;
pub mod api_keys;
pub mod apps;
pub mod audit;
pub mod blacklist;
pub mod licenses;
pub mod usage;

/// Clamps a requested page size into `1..=max`, defaulting when absent.
pub fn page_size(requested: Option<i64>, default: i64, max: i64) -> i64 {
    requested.unwrap_or(default).clamp(1, max)
}
