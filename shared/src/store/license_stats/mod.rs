//! Per-license usage statistics (CyberLicense's `usageStats`, usage and daily stats): validations
//! by UTC day and outcome, the distinct IPs and HWIDs seen, and the newest requests. Written
//! behind by the validators ([`write`]), never a row write per validation; read by the
//! control-plane ([`read`]).

pub mod read;
pub mod write;
