//! Exports as CSV (RFC 4180): UTF-8, one header row, CRLF line ends, a field quoted when it holds
//! a comma, a quote or a line break (its quotes doubled). Columns are CyberLicense's.

use chrono::{DateTime, Utc};
use keyward_shared::store::license_exports::ExportRow;
use keyward_shared::store::transactions::Transaction;

pub const LICENSE_HEADER: [&str; 11] = [
    "key",
    "product",
    "customer",
    "active",
    "licenseType",
    "expiresAt",
    "ipLimit",
    "hwidLimit",
    "usedIps",
    "usedHwids",
    "createdAt",
];

pub const TRANSACTION_HEADER: [&str; 6] = [
    "id",
    "customer",
    "status",
    "amount",
    "currency",
    "createdAt",
];

/// Licenses: the product's name, the customer's e-mail (empty: none), `active` as true/false,
/// times `…ss.SSSZ` (empty: never expires), the limits as numbers (0: unlimited), the used IPs
/// and HWIDs joined with `;`.
pub fn licenses(rows: &[ExportRow]) -> String {
    let mut out = String::with_capacity(128 * (rows.len() + 1));
    record(&mut out, LICENSE_HEADER);
    for r in rows {
        let ips: Vec<String> = r.ips.iter().map(|ip| ip.to_string()).collect();
        record(
            &mut out,
            [
                r.key.as_str(),
                &r.product,
                r.customer.as_deref().unwrap_or(""),
                if r.active() { "true" } else { "false" },
                r.license_type.as_str(),
                &r.expires_at.map(timestamp).unwrap_or_default(),
                &r.ip_limit.to_string(),
                &r.hwid_limit.to_string(),
                &ips.join(";"),
                &r.hwids.join(";"),
                &timestamp(r.created_at),
            ],
        );
    }
    out
}

/// Transactions: the customer's e-mail (empty: none), the amount in major units with two
/// decimals.
pub fn transactions(rows: &[Transaction]) -> String {
    let mut out = String::with_capacity(96 * (rows.len() + 1));
    record(&mut out, TRANSACTION_HEADER);
    for t in rows {
        record(
            &mut out,
            [
                t.id.to_string().as_str(),
                t.customer_email.as_deref().unwrap_or(""),
                t.status.as_str(),
                &amount(t.amount_minor),
                &t.currency,
                &timestamp(t.created_at),
            ],
        );
    }
    out
}

/// `1999` → `19.99`.
fn amount(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
}

/// ISO 8601 UTC with milliseconds (`2024-12-31T23:59:59.000Z`).
fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn record<'a>(out: &mut String, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, f);
    }
    out.push_str("\r\n");
}

fn field(out: &mut String, f: &str) {
    if f.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&f.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        let mut out = String::new();
        record(
            &mut out,
            [
                "plain",
                "a,b",
                "say \"hi\"",
                "two\nlines",
                "cr\r",
                "",
                "é ü",
            ],
        );
        assert_eq!(
            out,
            "plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\",\"cr\r\",,é ü\r\n"
        );
    }

    #[test]
    fn amounts_have_two_decimals() {
        assert_eq!(amount(0), "0.00");
        assert_eq!(amount(5), "0.05");
        assert_eq!(amount(1999), "19.99");
        assert_eq!(amount(100_000), "1000.00");
        assert_eq!(amount(-250), "-2.50");
        assert_eq!(amount(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn timestamps_have_milliseconds() {
        let t = DateTime::parse_from_rfc3339("2024-12-31T23:59:59.5+00:00")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(timestamp(t), "2024-12-31T23:59:59.500Z");
    }
}
