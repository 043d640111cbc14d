//! Keyward's domain core, shared by the validator and the control-plane.
//!
//! Everything that decides something lives here once: the model, the validation rules
//! ([`verdict::decide`]), key generation from masks, secret handling, the SQL of every resource
//! ([`store`]) and the one write path that audits and invalidates in the same transaction
//! ([`write::WriteTx`]). The services only translate wire formats to these calls.

// serde_json's `json!` recurses once per member: Keygen's policy document has many.
#![recursion_limit = "256"]

pub mod blacklist;
pub mod client_api;
pub mod db;
pub mod error;
pub mod invalidation;
pub mod keygen;
pub mod keygen_doc;
pub mod keygen_signature;
pub mod keygen_validation;
pub mod license_facts;
pub mod license_file;
pub mod model;
pub mod outbound;
pub mod policy;
pub mod secrets;
pub mod serve;
pub mod signers;
pub mod signing;
pub mod store;
pub mod tls;
pub mod verdict;
pub mod write;

#[cfg(any(test, feature = "test-support"))]
pub mod fixtures;
#[cfg(feature = "test-support")]
pub mod keepalive;
#[cfg(feature = "test-support")]
pub mod test_tls;
#[cfg(feature = "test-support")]
pub mod testing;

pub use error::StoreError;
