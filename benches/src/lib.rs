//! Fixtures shared by Keyward's criterion benches (`cargo bench -p keyward-benches`).

use chrono::{Duration, Utc};
use keyward_shared::model::{
    App, BlacklistEntry, BlacklistKind, BoundHwid, License, LicenseStatus,
};
use uuid::Uuid;

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
        max_uses: 1,
        uses: 0,
        used_by: None,
    }
}

/// A blacklist with `n` addresses, `n` HWIDs and a few networks.
pub fn blacklist(n: usize) -> Vec<BlacklistEntry> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(entry(
            BlacklistKind::Ip,
            format!("198.51.{}.{}", i / 250, i % 250),
        ));
        v.push(entry(BlacklistKind::Hwid, format!("BAD-HWID-{i}")));
    }
    for net in ["10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"] {
        v.push(entry(BlacklistKind::Ip, net.to_string()));
    }
    v
}

fn entry(kind: BlacklistKind, value: String) -> BlacklistEntry {
    BlacklistEntry {
        id: Uuid::new_v4(),
        app_id: Uuid::nil(),
        kind,
        value,
        note: None,
        created_at: Utc::now(),
    }
}
