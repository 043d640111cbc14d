//! In-memory view of one app's blacklist, built from its rows and matched on every validation.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{BlacklistEntry, BlacklistKind};

/// Parses and normalises an IP blacklist value: a single address (`203.0.113.7`, `2001:db8::1`)
/// or a CIDR network (`203.0.113.0/24`). Host bits of a network are cleared, so equivalent
/// spellings store as one row.
pub fn normalize_ip_value(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if let Ok(ip) = raw.parse::<IpAddr>() {
        return Ok(ip.to_canonical().to_string());
    }
    match raw.parse::<IpNet>() {
        Ok(net) => Ok(net.trunc().to_string()),
        Err(_) => Err(format!(
            "'{raw}' is neither an IP address nor a CIDR network"
        )),
    }
}

/// Validates a HWID blacklist or binding value.
pub fn normalize_hwid_value(raw: &str) -> Result<String, String> {
    let v = raw.trim();
    if v.is_empty() || v.len() > 256 {
        return Err("hwid must be 1 to 256 characters".to_string());
    }
    Ok(v.to_string())
}

#[derive(Debug, Default, Clone)]
pub struct BlacklistView {
    ips: HashSet<IpAddr>,
    nets: Vec<IpNet>,
    hwids: HashSet<String>,
}

impl BlacklistView {
    pub fn from_entries<'a>(entries: impl IntoIterator<Item = &'a BlacklistEntry>) -> Self {
        let mut view = BlacklistView::default();
        for e in entries {
            match e.kind {
                BlacklistKind::Hwid => {
                    view.hwids.insert(e.value.clone());
                }
                BlacklistKind::Ip => {
                    if let Ok(ip) = e.value.parse::<IpAddr>() {
                        view.ips.insert(ip);
                    } else if let Ok(net) = e.value.parse::<IpNet>() {
                        view.nets.push(net);
                    }
                }
            }
        }
        view
    }

    pub fn is_empty(&self) -> bool {
        self.ips.is_empty() && self.nets.is_empty() && self.hwids.is_empty()
    }

    pub fn blocks_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.ips.contains(&ip) || self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn blocks_hwid(&self, hwid: &str) -> bool {
        self.hwids.contains(hwid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use uuid::Uuid;

    fn entry(kind: BlacklistKind, value: &str) -> BlacklistEntry {
        BlacklistEntry {
            id: Uuid::new_v4(),
            app_id: Uuid::nil(),
            kind,
            value: value.to_string(),
            note: None,
            created_at: Utc::now(),
        }
    }

    #[test]
    fn matches_addresses_networks_and_hwids() {
        let entries = [
            entry(BlacklistKind::Ip, "198.51.100.7"),
            entry(BlacklistKind::Ip, "203.0.113.0/24"),
            entry(BlacklistKind::Ip, "2001:db8::/32"),
            entry(BlacklistKind::Hwid, "BAD-HWID"),
        ];
        let v = BlacklistView::from_entries(&entries);
        assert!(v.blocks_ip("198.51.100.7".parse().unwrap()));
        assert!(!v.blocks_ip("198.51.100.8".parse().unwrap()));
        assert!(v.blocks_ip("203.0.113.200".parse().unwrap()));
        assert!(v.blocks_ip("::ffff:203.0.113.9".parse().unwrap()));
        assert!(v.blocks_ip("2001:db8:1::5".parse().unwrap()));
        assert!(!v.blocks_ip("2001:db9::5".parse().unwrap()));
        assert!(v.blocks_hwid("BAD-HWID"));
        assert!(!v.blocks_hwid("bad-hwid"));
    }

    #[test]
    fn normalizes_values() {
        assert_eq!(normalize_ip_value(" 10.1.2.3/8 ").unwrap(), "10.0.0.0/8");
        assert_eq!(normalize_ip_value("::ffff:1.2.3.4").unwrap(), "1.2.3.4");
        assert!(normalize_ip_value("10.0.0.0/33").is_err());
        assert!(normalize_ip_value("example.com").is_err());
        assert!(normalize_hwid_value("  ").is_err());
    }
}
