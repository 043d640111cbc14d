//! The validators' write-behind of the statistics: a flush hands over the validations it
//! buffered, and they land as per-day counters, distinct IPs/HWIDs and the newest requests.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// How a validation of an existing license ended, as CyberLicense's usage counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UseStatus {
    /// Valid.
    Success,
    /// Refused by an IP or HWID limit.
    Blocked,
    /// Any other refusal of an existing license.
    Invalid,
}

impl UseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UseStatus::Success => "success",
            UseStatus::Blocked => "blocked",
            UseStatus::Invalid => "invalid",
        }
    }
}

/// One validation of an existing license.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseEvent {
    pub license_id: Uuid,
    pub ip: Option<String>,
    pub hwid: Option<String>,
    pub status: UseStatus,
    pub at: DateTime<Utc>,
}
