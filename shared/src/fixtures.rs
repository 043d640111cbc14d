//! Fixtures for benches and tests: an app and the common cache-hit license.

use chrono::{Duration, Utc};
use uuid::Uuid;

use crate::model::{App, BoundHwid, License, LicenseStatus};

pub fn app() -> App {
    App {
        id: Uuid::new_v4(),
        account_id: Uuid::new_v4(),
        name: "bench".into(),
        secret: "secret".into(),
        version: "1.0".into(),
        paused: false,
        hwid_lock: true,
        anti_vpn: false,
        hash_check: false,
        download_url: None,
        force_hwid: true,
        min_hwid_len: 20,
        session_secs: 21600,
        force_encryption: false,
        min_username_len: 1,
        program_hashes: Vec::new(),
        messages: Default::default(),
        signing_key_id: None,
        code: None,
        url: None,
        platforms: Vec::new(),
        metadata: serde_json::Map::new(),
        key_system: Default::default(),
        description: None,
        license_prefix: "LIC".into(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
    }
}

/// An activated license bound to `hwid`, expiring in 30 days: the common cache-hit case.
pub fn license(hwid: &str) -> License {
    License {
        id: Uuid::new_v4(),
        account_id: Uuid::new_v4(),
        app_id: Uuid::new_v4(),
        policy_id: Uuid::new_v4(),
        key: "ABCDE-FGHIJ-KLMNO-PQRST-UVWXY".into(),
        status: LicenseStatus::Active,
        level: 1,
        note: None,
        created_at: Utc::now(),
        used_at: Some(Utc::now()),
        expires_at: Some(Utc::now() + Duration::days(30)),
        duration_secs: None,
        hwid_limit: 1,
        ip_limit: 0,
        ban_reason: None,
        hwids: vec![BoundHwid {
            hwid: hwid.into(),
            bound_at: Utc::now(),
            bound_by: "validate".into(),
        }],
        ips: vec![],
        last_validated_at: None,
        validation_count: 0,
        max_uses: Some(1),
        uses: 0,
        used_by: None,
        traits: crate::model::KeyTraits {
            hwid_check: true,
            ..Default::default()
        },
        license_type: crate::model::LicenseType::Fixed,
        owner_id: None,
    }
}
