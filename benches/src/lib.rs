//! Fixtures shared by Keyward's criterion benches (`cargo bench -p keyward-benches`).

use chrono::Utc;
use keyward_shared::model::{BlacklistEntry, BlacklistKind};
use uuid::Uuid;

pub use keyward_shared::fixtures::{app, license};

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
