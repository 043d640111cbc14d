//! CyberLicense's exports over real HTTP and PostgreSQL: the licenses' CSV read back by Python's
//! csv module and compared, column by column, with the licenses the native API lists under the
//! same filters; the PDF's text (poppler's pdftotext) holding every exported key whole and none
//! of the others, over several pages; the transactions' CSV under each filter; the native
//! transactions resource; headers, file names, audit entries, auth, tenants and bad filters.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use chrono::{DateTime, Utc};
use common::*;
use keyward_shared::store::{licenses, tokens};
use keyward_shared::verdict::Activation;
use keyward_shared::write::{Actor, Origin, WriteTx};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

const LICENSE_HEADER: [&str; 11] = [
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

/// Rows of a CSV as Python's csv module reads them (strict quoting, UTF-8).
fn python_csv(body: &[u8]) -> Vec<Vec<String>> {
    const PY: &str = "import csv, io, json, sys\n\
        text = io.TextIOWrapper(sys.stdin.buffer, encoding='utf-8', errors='strict', newline='')\n\
        print(json.dumps(list(csv.reader(text, strict=True))))";
    let mut child = Command::new("python3")
        .args(["-c", PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body)
        .expect("write the CSV");
    let out = child.wait_with_output().expect("python3 ends");
    assert!(
        out.status.success(),
        "python's csv refused the export: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("python printed JSON")
}

/// The text of a PDF as `pdftotext -layout` reads it; `None` when poppler is not installed.
fn pdftotext(pdf: &[u8]) -> Option<String> {
    let path = std::env::temp_dir().join(format!("keyward-export-{}.pdf", Uuid::new_v4()));
    std::fs::write(&path, pdf).expect("write the PDF");
    let out = Command::new("pdftotext")
        .args(["-layout", "-enc", "UTF-8"])
        .arg(&path)
        .arg("-")
        .output();
    let _ = std::fs::remove_file(&path);
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        other => other.expect("pdftotext runs"),
    };
    assert!(
        out.status.success(),
        "pdftotext refused the PDF: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).expect("UTF-8 text"))
}

/// `…ss.SSSZ` of an RFC 3339 time the native API rendered.
fn ms(rfc3339: &str) -> String {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_string()
}

/// A raw answer: status, headers and body bytes.
struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
}

async fn get_raw(cp: &Cp, path: &str, token: Option<&str>) -> Raw {
    let mut req = cp.http.get(format!("{}{path}", cp.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    Raw {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.expect("body").to_vec(),
    }
}

/// A 200 export: checks its type and `attachment; filename={name}-{Unix ms}.{ext}` (a time
/// taken while the request ran) and returns the body.
async fn export(cp: &Cp, path: &str, token: &str, name: &str, ext: &str) -> Vec<u8> {
    let before = Utc::now().timestamp_millis();
    let r = get_raw(cp, path, Some(token)).await;
    let after = Utc::now().timestamp_millis();
    assert_eq!(
        r.status,
        200,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    let content_type = r.header("content-type");
    match ext {
        "csv" => assert!(content_type.starts_with("text/csv"), "{content_type}"),
        _ => assert_eq!(content_type, "application/pdf"),
    }
    let disposition = r.header("content-disposition");
    let stamp = disposition
        .strip_prefix(&format!("attachment; filename={name}-"))
        .and_then(|rest| rest.strip_suffix(&format!(".{ext}")))
        .unwrap_or_else(|| panic!("{path}: Content-Disposition {disposition}"));
    assert_eq!(stamp.len(), 13, "Unix milliseconds: {disposition}");
    let stamp: i64 = stamp.parse().expect("digits");
    assert!(
        (before..=after).contains(&stamp),
        "{stamp} not in {before}..={after}"
    );
    assert_eq!(r.header("x-export-truncated"), "", "not truncated");
    r.body
}

/// A refusal in CyberLicense's shape.
async fn refused(cp: &Cp, path: &str, token: Option<&str>, status: u16, error: &str) {
    let r = get_raw(cp, path, token).await;
    assert_eq!(
        r.status,
        status,
        "{path}: {}",
        String::from_utf8_lossy(&r.body)
    );
    assert_eq!(
        r.json(),
        json!({"success": false, "error": error}),
        "{path}"
    );
}

struct World {
    cp: std::sync::Arc<Cp>,
    jwt: String,
    account: Uuid,
    /// (id, name)
    apps: Vec<(String, String)>,
    /// (id, e-mail)
    customers: Vec<(String, String)>,
}

impl World {
    async fn new(admin: &str) -> World {
        World::on(std::sync::Arc::new(Cp::start().await), admin).await
    }

    /// A second account on the same deployment.
    async fn other_tenant(&self, admin: &str) -> World {
        World::on(self.cp.clone(), admin).await
    }

    async fn on(cp: std::sync::Arc<Cp>, admin: &str) -> World {
        let jwt = cp.admin(admin).await;
        let me = cp.ok(Method::GET, "/v1/account", &jwt, None).await;
        let account = s(&me["id"]).parse().expect("account id");
        World {
            cp,
            jwt,
            account,
            apps: Vec::new(),
            customers: Vec::new(),
        }
    }

    async fn app(&mut self, name: &str) -> String {
        let id = self.cp.app(&self.jwt, name).await;
        self.apps.push((id.clone(), name.to_string()));
        id
    }

    async fn customer(&mut self, email: &str) -> String {
        let u = self
            .cp
            .ok(
                Method::POST,
                "/keygen/v1/users",
                &self.jwt,
                Some(
                    json!({"data": {"type": "users", "attributes": {"email": email,
                    "password": "customer password"}}}),
                ),
            )
            .await;
        let id = s(&u["data"]["id"]);
        self.customers.push((id.clone(), email.to_string()));
        id
    }

    async fn license(&self, app: &str, spec: Value) -> Value {
        self.cp
            .licenses(&self.jwt, app, spec)
            .await
            .pop()
            .expect("one license")
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        self.cp.ok(Method::POST, path, &self.jwt, Some(body)).await
    }

    /// Records IPs and binds HWIDs as validators' first uses do.
    async fn use_license(&self, id: &str, ips: &[&str], hwids: &[&str]) {
        let mut c = self.cp.db.client().await;
        let mut w = WriteTx::begin(&mut c, self.actor()).await.expect("begin");
        let n = ips.len().max(hwids.len());
        for i in 0..n {
            let act = Activation {
                bind_hwid: hwids.get(i).map(|h| h.to_string()),
                record_ip: ips.get(i).map(|ip| ip.parse().expect("an IP")),
                first_use: true,
            };
            licenses::activate(&mut w, id.parse().expect("uuid"), &act)
                .await
                .expect("activate");
        }
        w.commit().await.expect("commit");
    }

    fn actor(&self) -> Actor {
        Actor {
            account_id: self.account,
            label: "test".into(),
            origin: Origin::default(),
        }
    }

    /// Every license the native API lists, newest first.
    async fn all_licenses(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/licenses?limit=500&cursor={c}"),
                None => "/v1/licenses?limit=500".to_string(),
            };
            let page = self.cp.ok(Method::GET, &path, &self.jwt, None).await;
            all.extend(page["items"].as_array().expect("items").iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => return all,
            }
        }
    }

    fn app_name(&self, id: &str) -> String {
        self.apps
            .iter()
            .find(|(a, _)| a == id)
            .map(|(_, n)| n.clone())
            .unwrap_or_else(|| panic!("app {id}"))
    }

    fn email(&self, id: &Value) -> String {
        match id.as_str() {
            None => String::new(),
            Some(id) => self
                .customers
                .iter()
                .find(|(c, _)| c == id)
                .map(|(_, e)| e.clone())
                .unwrap_or_else(|| panic!("customer {id}")),
        }
    }

    /// The CSV row a native license should export as.
    fn expected_row(&self, l: &Value) -> Vec<String> {
        let join = |items: Vec<String>| items.join(";");
        vec![
            s(&l["key"]),
            self.app_name(&s(&l["app_id"])),
            self.email(&l["owner_id"]),
            (l["status"] == "active").to_string(),
            s(&l["license_type"]),
            l["expires_at"].as_str().map(ms).unwrap_or_default(),
            l["ip_limit"].as_i64().expect("ip_limit").to_string(),
            l["hwid_limit"].as_i64().expect("hwid_limit").to_string(),
            join(l["ips"].as_array().unwrap().iter().map(s).collect()),
            join(
                l["hwids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| s(&h["hwid"]))
                    .collect(),
            ),
            ms(&s(&l["created_at"])),
        ]
    }

    /// A customer's token (what the customer portal holds).
    async fn customer_token(&self, customer: &str) -> String {
        let mut c = self.cp.db.client().await;
        let mut w = WriteTx::begin(&mut c, self.actor()).await.expect("begin");
        let (_, token) = tokens::create(
            &mut w,
            tokens::Bearer::User(customer.parse().expect("uuid")),
            Some("portal"),
            None,
        )
        .await
        .expect("token");
        w.commit().await.expect("commit");
        token
    }
}

const TYPES: [&str; 4] = ["fixed", "trial", "consumption", "enterprise"];
const STATES: [&str; 5] = ["active", "active", "banned", "revoked", "disabled"];

/// Licenses over two products, three customers (and none), the four types and every state,
/// with limits, expiries, used IPs and HWIDs (values with commas and quotes among them), and
/// keys with a comma and a quote.
async fn seed(w: &mut World) {
    let alpha = w.app("Alpha Suite").await;
    let beta = w.app("Beta Tööls, \"Pro\" Ω").await;
    let c1 = w.customer("ann@example.com").await;
    let c2 = w.customer("bob@example.com").await;
    let c3 = w.customer("carol+long.address@sub.example.org").await;
    let owners = [Some(&c1), Some(&c2), None, Some(&c3)];
    for i in 0..20usize {
        let app = if i % 2 == 0 { &alpha } else { &beta };
        let ty = TYPES[(i / 2) % 4];
        let mut spec =
            json!({"count": 1, "license_type": ty, "hwid_limit": i % 3, "ip_limit": 5 - i % 3});
        if let Some(owner) = owners[i % 4] {
            spec["owner_id"] = json!(owner);
        }
        if ty == "trial" || i % 3 == 0 {
            spec["expires_at"] = json!(format!("2031-0{}-1{}T08:30:15.25Z", 1 + i % 9, i % 10));
        }
        if ty == "consumption" {
            spec["max_uses"] = json!(10 + i);
        }
        if i % 7 == 3 {
            spec["key"] = json!(format!("QUOTE\"AND,COMMA-{i}"));
        }
        let l = w.license(app, spec).await;
        let id = s(&l["id"]);
        if i % 3 == 0 {
            let ips = [format!("10.0.0.{i}"), format!("2001:db8::{i:x}")];
            let hwids = [format!("HW-{i}-A"), format!("HW,{i}\"B")];
            let ips: Vec<&str> = ips.iter().map(String::as_str).collect();
            let hwids: Vec<&str> = hwids.iter().map(String::as_str).collect();
            // The HWID limit may refuse the second: what is bound is what the export shows.
            w.use_license(&id, &ips, &hwids).await;
        }
        match STATES[i % 5] {
            "active" => {}
            "banned" => {
                w.post(
                    &format!("/v1/licenses/{id}/ban"),
                    json!({"reason": "chargeback"}),
                )
                .await;
            }
            other => {
                w.post(
                    &format!("/v1/licenses/{id}/{}", &other[..other.len() - 1]),
                    json!({}),
                )
                .await;
            }
        }
    }
}

#[tokio::test]
async fn licenses_csv_parses_and_matches_the_filtered_licenses() {
    let mut w = World::new("alice").await;
    seed(&mut w).await;
    let all = w.all_licenses().await;
    assert_eq!(all.len(), 20);
    let (alpha, beta) = (w.apps[0].0.clone(), w.apps[1].0.clone());
    let (c1, c2) = (w.customers[0].0.clone(), w.customers[1].0.clone());
    // Every state, type and owner is represented.
    for st in ["active", "banned", "revoked", "disabled"] {
        assert!(all.iter().any(|l| l["status"] == st), "{st}");
    }

    type Pick = Box<dyn Fn(&Value) -> bool>;
    let app_is = |a: &str| -> Pick {
        let a = a.to_string();
        Box::new(move |l: &Value| l["app_id"] == a.as_str())
    };
    let owner_is = |c: &str| -> Pick {
        let c = c.to_string();
        Box::new(move |l: &Value| l["owner_id"] == c.as_str())
    };
    let cases: Vec<(String, Pick)> = vec![
        (String::new(), Box::new(|_: &Value| true)),
        (format!("product={alpha}"), app_is(&alpha)),
        (format!("customer={c1}"), owner_is(&c1)),
        (
            "active=true".into(),
            Box::new(|l: &Value| l["status"] == "active"),
        ),
        (
            "active=1".into(),
            Box::new(|l: &Value| l["status"] == "active"),
        ),
        (
            "active=false".into(),
            Box::new(|l: &Value| l["status"] != "active"),
        ),
        (
            "active=0".into(),
            Box::new(|l: &Value| l["status"] != "active"),
        ),
        (
            "licenseType=trial".into(),
            Box::new(|l: &Value| l["license_type"] == "trial"),
        ),
        (
            format!("product={beta}&active=true&licenseType=consumption"),
            Box::new({
                let beta = beta.clone();
                move |l: &Value| {
                    l["app_id"] == beta.as_str()
                        && l["status"] == "active"
                        && l["license_type"] == "consumption"
                }
            }),
        ),
        (
            format!("customer={c2}&product={beta}"),
            Box::new({
                let (beta, c2) = (beta.clone(), c2.clone());
                move |l: &Value| l["app_id"] == beta.as_str() && l["owner_id"] == c2.as_str()
            }),
        ),
        // A product id of nothing: the header alone.
        (
            format!("product={}", Uuid::new_v4()),
            Box::new(|_: &Value| false),
        ),
    ];
    let mut saw_quoted = false;
    for (query, pick) in &cases {
        let body = export(
            &w.cp,
            &format!("/api/export/licenses/csv?{query}"),
            &w.jwt,
            "licenses",
            "csv",
        )
        .await;
        saw_quoted |= body.windows(2).any(|p| p == b"\"\"");
        let rows = python_csv(&body);
        assert_eq!(rows[0], LICENSE_HEADER, "{query}");
        let expected: Vec<Vec<String>> = all
            .iter()
            .filter(|l| pick(l))
            .map(|l| w.expected_row(l))
            .collect();
        assert_eq!(rows[1..], expected[..], "?{query}");
        println!("?{query}: {} rows", expected.len());
    }
    assert!(
        saw_quoted,
        "a quoted field with a doubled quote was exported"
    );
    // The filters narrowed for real, and the unfiltered export held the awkward values.
    let everything =
        python_csv(&export(&w.cp, "/api/export/licenses/csv", &w.jwt, "licenses", "csv").await);
    let flat: Vec<&str> = everything.iter().flatten().map(String::as_str).collect();
    for v in [
        "Beta Tööls, \"Pro\" Ω",
        "QUOTE\"AND,COMMA-3",
        "carol+long.address@sub.example.org",
    ] {
        assert!(flat.contains(&v), "{v}");
    }
    assert!(flat
        .iter()
        .any(|v| v.contains("HW,0\"B") || v.contains("HW-0-A")));
    assert!(
        flat.iter().any(|v| v.contains(";2001:db8::")),
        "IPs joined with ;"
    );

    // The native twin answers the same CSV for the same filters.
    let native = export(
        &w.cp,
        &format!(
            "/v1/licenses/export?format=csv&app_id={beta}&active=true&license_type=consumption"
        ),
        &w.jwt,
        "licenses",
        "csv",
    )
    .await;
    let facade = export(
        &w.cp,
        &format!("/api/export/licenses/csv?product={beta}&active=true&licenseType=consumption"),
        &w.jwt,
        "licenses",
        "csv",
    )
    .await;
    assert_eq!(native, facade);

    // Each export is audited with its filters and row count.
    let audit =
        w.cp.ok(
            Method::GET,
            "/v1/audit-log?action=license.export&limit=1",
            &w.jwt,
            None,
        )
        .await;
    let entry = &audit["items"][0];
    assert_eq!(entry["target_type"], "license");
    let consumption_beta = all
        .iter()
        .filter(|l| {
            l["app_id"] == beta.as_str()
                && l["status"] == "active"
                && l["license_type"] == "consumption"
        })
        .count();
    assert_eq!(
        entry["details"],
        json!({"filters": {"app_id": beta, "owner_id": null, "active": true,
                           "license_type": "consumption"},
               "format": "csv", "rows": consumption_beta, "truncated": false})
    );
    let n =
        w.cp.ok(
            Method::GET,
            "/v1/audit-log?action=license.export&limit=500",
            &w.jwt,
            None,
        )
        .await["items"]
            .as_array()
            .unwrap()
            .len();
    assert_eq!(n, cases.len() + 3);
}

#[tokio::test]
async fn licenses_pdf_holds_every_exported_key_whole_over_several_pages() {
    let mut w = World::new("alice").await;
    let alpha = w.app("Alpha Suite").await;
    let beta = w.app("Beta").await;
    let ann = w
        .customer("ann.longname.for.wrapping@customers.example.com")
        .await;
    let mut kept: Vec<String> =
        w.cp.licenses(
            &w.jwt,
            &alpha,
            json!({"count": 118, "owner_id": ann, "expires_at": "2030-01-01T00:00:00Z"}),
        )
        .await
        .iter()
        .map(|l| s(&l["key"]))
        .collect();
    // The longest key a license may have, and one with characters PDF strings escape.
    for key in [
        "K".repeat(100) + &"9".repeat(28),
        r"PAREN(1)\BACK-SLASH".to_string(),
    ] {
        kept.push(s(
            &w.license(&alpha, json!({"count": 1, "key": key})).await["key"]
        ));
    }
    let busy = w
        .license(&alpha, json!({"count": 1, "license_type": "enterprise"}))
        .await;
    kept.push(s(&busy["key"]));
    let hwids: Vec<String> = (0..6)
        .map(|i| format!("{i:02}-9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"))
        .collect();
    let hwids: Vec<&str> = hwids.iter().map(String::as_str).collect();
    w.use_license(
        &s(&busy["id"]),
        &["192.0.2.1", "192.0.2.2", "2001:db8::1"],
        &hwids,
    )
    .await;
    let left_out: Vec<String> =
        w.cp.licenses(&w.jwt, &beta, json!({"count": 20}))
            .await
            .iter()
            .map(|l| s(&l["key"]))
            .collect();

    let pdf = export(
        &w.cp,
        &format!("/api/export/licenses/pdf?product={alpha}"),
        &w.jwt,
        "licenses",
        "pdf",
    )
    .await;
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    let Some(text) = pdftotext(&pdf) else {
        println!("SKIPPED: pdftotext (Debian's poppler-utils) is not installed");
        return;
    };
    let words: std::collections::HashSet<&str> = text.split_whitespace().collect();
    for key in &kept {
        assert!(
            words.contains(key.as_str()),
            "{key} is not whole in the PDF's text"
        );
    }
    for key in &left_out {
        assert!(!text.contains(key.as_str()), "{key} was filtered out");
    }
    let pages = text.matches("Page ").count();
    assert!(pages >= 3, "{pages} pages for {} licenses", kept.len());
    assert!(text.contains(&format!("Page 1 of {pages}")));
    assert!(text.contains(&format!("Page {pages} of {pages}")));
    // The heading names the filter by the product's name; the header row is on every page.
    assert!(text.contains("Filters: product \"Alpha Suite\""));
    assert_eq!(
        text.matches("Product").count(),
        pages,
        "header row on each page"
    );
    assert!(text.contains("121 licenses"), "the count in the heading");
    println!(
        "PDF: {} bytes, {pages} pages, {} keys found whole, {} filtered out",
        pdf.len(),
        kept.len(),
        left_out.len()
    );

    // The native twin renders the same table.
    let native = export(
        &w.cp,
        &format!("/v1/licenses/export?format=pdf&app_id={alpha}"),
        &w.jwt,
        "licenses",
        "pdf",
    )
    .await;
    let native_text = pdftotext(&native).expect("pdftotext");
    for key in &kept {
        assert!(native_text.contains(key.as_str()));
    }
    // Nothing matching: one page that says so.
    let empty = export(
        &w.cp,
        "/api/export/licenses/pdf?licenseType=trial",
        &w.jwt,
        "licenses",
        "pdf",
    )
    .await;
    let empty = pdftotext(&empty).expect("pdftotext");
    assert!(empty.contains("No license matches the filters."));
    assert!(empty.contains("Page 1 of 1"));
}

/// (id, customer e-mail, status, amount, currency, createdAt) of a transaction.
fn tx_row(t: &Value, email: &str, amount: &str) -> Vec<String> {
    vec![
        s(&t["id"]),
        email.to_string(),
        s(&t["status"]),
        amount.to_string(),
        s(&t["currency"]),
        ms(&s(&t["created_at"])),
    ]
}

#[tokio::test]
async fn transactions_csv_follows_each_filter() {
    let mut w = World::new("alice").await;
    let app = w.app("Alpha").await;
    let c1 = w.customer("ann@example.com").await;
    let c2 = w.customer("bob@example.com").await;
    let lic = s(&w.license(&app, json!({"count": 1, "owner_id": c1})).await["id"]);
    let mut t = Vec::new();
    for (customer, status, amount, currency, at) in [
        (Some(&c1), "completed", 1999, "USD", "2024-03-01T10:00:00Z"),
        (Some(&c2), "pending", 500, "EUR", "2024-03-15T23:59:59.999Z"),
        (Some(&c1), "refunded", 0, "usd", "2024-03-31T12:00:00Z"),
        (None, "failed", 123456, "GBP", "2024-04-01T00:00:00Z"),
        (Some(&c2), "completed", 1, "JPY", "2024-02-29T23:59:59Z"),
    ] {
        let mut body = json!({"status": status, "amount_minor": amount, "currency": currency,
            "created_at": at, "provider": "store", "license_id": lic, "app_id": app});
        if let Some(c) = customer {
            body["customer_id"] = json!(c);
        }
        t.push(w.post("/v1/transactions", body).await);
    }
    assert_eq!(t[2]["currency"], "USD", "stored upper-case");
    let rows = [
        tx_row(&t[0], "ann@example.com", "19.99"),
        tx_row(&t[1], "bob@example.com", "5.00"),
        tx_row(&t[2], "ann@example.com", "0.00"),
        tx_row(&t[3], "", "1234.56"),
        tx_row(&t[4], "bob@example.com", "0.01"),
    ];
    // Newest first.
    let cases: [(String, Vec<usize>); 8] = [
        (String::new(), vec![3, 2, 1, 0, 4]),
        (format!("customer={c1}"), vec![2, 0]),
        ("status=completed".into(), vec![0, 4]),
        ("startDate=2024-03-01".into(), vec![3, 2, 1, 0]),
        // A bare end date includes its day.
        ("endDate=2024-03-31".into(), vec![2, 1, 0, 4]),
        // Times are inclusive at both ends.
        (
            "startDate=2024-03-01T10:00:00Z&endDate=2024-03-15T23:59:59.999Z".into(),
            vec![1, 0],
        ),
        (format!("customer={c2}&status=completed"), vec![4]),
        (format!("customer={}", Uuid::new_v4()), vec![]),
    ];
    for (query, want) in &cases {
        let body = export(
            &w.cp,
            &format!("/api/export/transactions/csv?{}", query.replace('+', "%2B")),
            &w.jwt,
            "transactions",
            "csv",
        )
        .await;
        let got = python_csv(&body);
        assert_eq!(
            got[0],
            [
                "id",
                "customer",
                "status",
                "amount",
                "currency",
                "createdAt"
            ]
        );
        let want: Vec<Vec<String>> = want.iter().map(|&i| rows[i].clone()).collect();
        assert_eq!(got[1..], want[..], "?{query}");
    }
    let audit =
        w.cp.ok(
            Method::GET,
            "/v1/audit-log?action=transaction.export&limit=1",
            &w.jwt,
            None,
        )
        .await;
    assert_eq!(audit["items"][0]["target_type"], "transaction");
    assert_eq!(audit["items"][0]["details"]["rows"], 0);
    assert_eq!(audit["items"][0]["details"]["format"], "csv");
}

#[tokio::test]
async fn transactions_resource_records_checks_pages_and_audits() {
    let mut w = World::new("alice").await;
    let app = w.app("Alpha").await;
    let other_app = w.app("Beta").await;
    let c1 = w.customer("ann@example.com").await;
    let lic = s(&w.license(&app, json!({"count": 1})).await["id"]);

    let t = w
        .post(
            "/v1/transactions",
            json!({"customer_id": c1, "license_id": lic, "app_id": app, "amount_minor": 4999,
                   "currency": "eur", "provider": "BuiltByBit", "reference": "order-77",
                   "note": "first purchase"}),
        )
        .await;
    let id = s(&t["id"]);
    assert_eq!(t["status"], "pending");
    assert_eq!(t["currency"], "EUR");
    assert_eq!(t["customer_email"], "ann@example.com");
    assert_eq!(t["amount_minor"], 4999);
    assert_eq!(
        w.cp.ok(Method::GET, &format!("/v1/transactions/{id}"), &w.jwt, None)
            .await,
        t
    );

    let patched =
        w.cp.ok(
            Method::PATCH,
            &format!("/v1/transactions/{id}"),
            &w.jwt,
            Some(json!({"status": "completed", "note": null})),
        )
        .await;
    assert_eq!(patched["status"], "completed");
    assert_eq!(patched["note"], Value::Null);
    assert_eq!(patched["reference"], "order-77", "absent fields kept");
    let audit =
        w.cp.ok(
            Method::GET,
            "/v1/audit-log?target_type=transaction",
            &w.jwt,
            None,
        )
        .await;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["transaction.update", "transaction.create"]);
    let update = &audit["items"][0];
    assert_eq!(update["target_id"], id.as_str());
    assert_eq!(update["details"]["before"]["status"], "pending");
    assert_eq!(update["details"]["before"]["note"], "first purchase");
    assert_eq!(update["details"]["after"]["status"], "completed");
    assert_eq!(update["details"]["after"]["note"], Value::Null);

    // Refused input, each a 400 naming what is wrong; nothing written.
    let bad = [
        json!({"amount_minor": -1, "currency": "USD"}),
        json!({"amount_minor": 1, "currency": "US"}),
        json!({"amount_minor": 1, "currency": "12X"}),
        json!({"amount_minor": 1}),
        json!({"amount_minor": 1, "currency": "USD", "status": "done"}),
        json!({"amount_minor": 1, "currency": "USD", "customer_id": Uuid::new_v4()}),
        json!({"amount_minor": 1, "currency": "USD", "license_id": Uuid::new_v4()}),
        json!({"amount_minor": 1, "currency": "USD", "app_id": Uuid::new_v4()}),
        json!({"amount_minor": 1, "currency": "USD", "license_id": lic, "app_id": other_app}),
        json!({"amount_minor": 1, "currency": "USD", "provider": "p".repeat(65)}),
        json!({"amount_minor": 1, "currency": "USD", "surprise": true}),
    ];
    for body in bad {
        let r =
            w.cp.call(
                Method::POST,
                "/v1/transactions",
                Some(&w.jwt),
                Some(body.clone()),
            )
            .await;
        assert_eq!(r.status, 400, "{body} → {}", r.body);
    }
    let r =
        w.cp.call(
            Method::PATCH,
            &format!("/v1/transactions/{id}"),
            Some(&w.jwt),
            Some(json!({"amount_minor": -5})),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);

    // Pages, newest first, and the filters.
    for i in 0..4 {
        w.post(
            "/v1/transactions",
            json!({"amount_minor": i, "currency": "USD", "status": "failed",
                   "created_at": format!("2020-01-0{}T00:00:00Z", i + 1)}),
        )
        .await;
    }
    let mut seen = Vec::new();
    let mut path = "/v1/transactions?limit=2".to_string();
    loop {
        let page = w.cp.ok(Method::GET, &path, &w.jwt, None).await;
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|t| t["amount_minor"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/transactions?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [4999, 3, 2, 1, 0]);
    let failed =
        w.cp.ok(
            Method::GET,
            "/v1/transactions?status=failed&since=2020-01-02T00:00:00Z&until=2020-01-04T00:00:00Z",
            &w.jwt,
            None,
        )
        .await;
    let amounts: Vec<i64> = failed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount_minor"].as_i64().unwrap())
        .collect();
    assert_eq!(amounts, [2, 1]);
    for q in [
        format!("customer_id={c1}"),
        format!("license_id={lic}"),
        format!("app_id={app}"),
    ] {
        let page =
            w.cp.ok(Method::GET, &format!("/v1/transactions?{q}"), &w.jwt, None)
                .await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{q}");
        assert_eq!(page["items"][0]["id"], id.as_str());
    }

    // Scopes: a read-only key reads and cannot write.
    let key = w
        .post(
            "/v1/api-keys",
            json!({"name": "reader", "scopes": ["transactions:read"]}),
        )
        .await;
    let key = s(&key["key"]);
    w.cp.ok(Method::GET, "/v1/transactions", &key, None).await;
    let r =
        w.cp.call(
            Method::POST,
            "/v1/transactions",
            Some(&key),
            Some(json!({"amount_minor": 1, "currency": "USD"})),
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // Deleting the customer keeps the purchase, without a customer.
    let r =
        w.cp.call(
            Method::DELETE,
            &format!("/v1/transactions/{id}"),
            Some(&key),
            None,
        )
        .await;
    assert_eq!(r.status, 403);
    let r =
        w.cp.call(
            Method::DELETE,
            &format!("/v1/transactions/{id}"),
            Some(&w.jwt),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    let r =
        w.cp.call(
            Method::GET,
            &format!("/v1/transactions/{id}"),
            Some(&w.jwt),
            None,
        )
        .await;
    assert_eq!(r.status, 404);
    let audit =
        w.cp.ok(
            Method::GET,
            "/v1/audit-log?action=transaction.delete",
            &w.jwt,
            None,
        )
        .await;
    assert_eq!(audit["items"][0]["details"]["before"]["id"], id.as_str());
    assert_eq!(audit["items"][0]["details"]["after"], Value::Null);
}

#[tokio::test]
async fn exports_need_an_admin_and_refuse_bad_filters() {
    let mut w = World::new("alice").await;
    let customer = w.customer("ann@example.com").await;
    let paths = [
        "/api/export/licenses/csv",
        "/api/export/licenses/pdf",
        "/api/export/transactions/csv",
    ];
    let customer_token = w.customer_token(&customer).await;
    for path in paths {
        refused(&w.cp, path, None, 401, "Unauthorized").await;
        refused(&w.cp, path, Some("not-a-token"), 401, "Unauthorized").await;
        refused(&w.cp, path, Some(&customer_token), 401, "Unauthorized").await;
    }
    // An API key needs the CyberLicense admin scope.
    let scoped = s(&w
        .post(
            "/v1/api-keys",
            json!({"name": "cl", "scopes": ["cyberlicense:admin"]}),
        )
        .await["key"]);
    let unscoped = s(&w
        .post(
            "/v1/api-keys",
            json!({"name": "ro", "scopes": ["licenses:read"]}),
        )
        .await["key"]);
    for path in paths {
        let name = if path.contains("transactions") {
            "transactions"
        } else {
            "licenses"
        };
        export(&w.cp, path, &scoped, name, &path[path.len() - 3..]).await;
        let r = get_raw(&w.cp, path, Some(&unscoped)).await;
        assert!(r.status == 401 || r.status == 403, "{path}: {}", r.status);
        assert_eq!(r.json()["success"], false);
    }
    // Exports are no customer's: the native twin needs licenses:read.
    let r = get_raw(&w.cp, "/v1/licenses/export", Some(&customer_token)).await;
    assert_eq!(r.status, 401);
    let reader = s(&w
        .post(
            "/v1/api-keys",
            json!({"name": "t", "scopes": ["transactions:read"]}),
        )
        .await["key"]);
    assert_eq!(
        get_raw(&w.cp, "/v1/licenses/export", Some(&reader))
            .await
            .status,
        403
    );

    for (path, param) in [
        ("/api/export/licenses/csv?active=yes", "active"),
        ("/api/export/licenses/pdf?active=TRUE", "active"),
        ("/api/export/licenses/csv?licenseType=gold", "licenseType"),
        ("/api/export/licenses/csv?product=not-an-id", "product"),
        ("/api/export/licenses/pdf?customer=12345", "customer"),
        ("/api/export/transactions/csv?status=done", "status"),
        ("/api/export/transactions/csv?customer=x", "customer"),
        (
            "/api/export/transactions/csv?startDate=yesterday",
            "startDate",
        ),
        ("/api/export/transactions/csv?endDate=2024-13-01", "endDate"),
    ] {
        refused(
            &w.cp,
            path,
            Some(&w.jwt),
            400,
            &format!("Invalid query parameter: {param}"),
        )
        .await;
    }
    for query in [
        "format=xls",
        "active=maybe",
        "license_type=gold",
        "app_id=x",
        "surprise=1",
    ] {
        let r = get_raw(&w.cp, &format!("/v1/licenses/export?{query}"), Some(&w.jwt)).await;
        assert_eq!(r.status, 400, "{query}");
        assert_eq!(r.json()["success"], false);
    }
    // Empty filters are absent filters.
    let body = export(
        &w.cp,
        "/api/export/licenses/csv?product=&active=&licenseType=",
        &w.jwt,
        "licenses",
        "csv",
    )
    .await;
    assert_eq!(python_csv(&body), [LICENSE_HEADER]);
}

#[tokio::test]
async fn another_tenant_exports_and_reaches_nothing_of_the_first() {
    let mut a = World::new("alice").await;
    seed(&mut a).await;
    let a_customer = a.customers[0].0.clone();
    let a_app = a.apps[0].0.clone();
    let a_licenses = a.all_licenses().await;
    let a_license = s(&a_licenses[0]["id"]);
    let a_tx = s(&a
        .post(
            "/v1/transactions",
            json!({"amount_minor": 100, "currency": "USD", "customer_id": a_customer,
                   "reference": "alice-order"}),
        )
        .await["id"]);

    let mut b = a.other_tenant("bob").await;
    let b_app = b.app("Bob's app").await;
    let b_keys: Vec<String> =
        b.cp.licenses(&b.jwt, &b_app, json!({"count": 2}))
            .await
            .iter()
            .map(|l| s(&l["key"]))
            .collect();
    b.post(
        "/v1/transactions",
        json!({"amount_minor": 7, "currency": "USD"}),
    )
    .await;

    let leaks = |body: &[u8]| {
        let text = String::from_utf8_lossy(body);
        a_licenses
            .iter()
            .map(|l| s(&l["key"]))
            .chain([
                a_customer.clone(),
                a_app.clone(),
                a_tx.clone(),
                "alice-order".into(),
            ])
            .chain(a.customers.iter().map(|c| c.1.clone()))
            .filter(|mark| text.contains(mark.as_str()))
            .collect::<Vec<_>>()
    };
    let mine =
        python_csv(&export(&b.cp, "/api/export/licenses/csv", &b.jwt, "licenses", "csv").await);
    let mut keys: Vec<&str> = mine[1..].iter().map(|r| r[0].as_str()).collect();
    keys.sort();
    let mut want: Vec<&str> = b_keys.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(keys, want);
    for path in [
        format!("/api/export/licenses/csv?product={a_app}"),
        format!("/api/export/licenses/csv?customer={a_customer}"),
        format!("/v1/licenses/export?app_id={a_app}"),
    ] {
        let body = export(&b.cp, &path, &b.jwt, "licenses", "csv").await;
        assert_eq!(python_csv(&body), [LICENSE_HEADER], "{path}");
    }
    let txs = export(
        &b.cp,
        "/api/export/transactions/csv",
        &b.jwt,
        "transactions",
        "csv",
    )
    .await;
    assert_eq!(python_csv(&txs).len(), 2, "B's one transaction");
    assert!(leaks(&txs).is_empty(), "{:?}", leaks(&txs));
    let txs = export(
        &b.cp,
        &format!("/api/export/transactions/csv?customer={a_customer}"),
        &b.jwt,
        "transactions",
        "csv",
    )
    .await;
    assert_eq!(python_csv(&txs).len(), 1);
    let pdf = export(&b.cp, "/api/export/licenses/pdf", &b.jwt, "licenses", "pdf").await;
    if let Some(text) = pdftotext(&pdf) {
        assert!(
            leaks(text.as_bytes()).is_empty(),
            "{:?}",
            leaks(text.as_bytes())
        );
        for key in &b_keys {
            assert!(text.contains(key.as_str()));
        }
    }

    // A's transaction is not B's to read, change or delete, nor A's rows B's to reference.
    b.cp.all_not_found(
        &b.jwt,
        vec![
            (Method::GET, format!("/v1/transactions/{a_tx}"), None),
            (
                Method::PATCH,
                format!("/v1/transactions/{a_tx}"),
                Some(json!({"status": "refunded"})),
            ),
            (Method::DELETE, format!("/v1/transactions/{a_tx}"), None),
        ],
    )
    .await;
    for field in [
        ("customer_id", &a_customer),
        ("license_id", &a_license),
        ("app_id", &a_app),
    ] {
        let r =
            b.cp.call(
                Method::POST,
                "/v1/transactions",
                Some(&b.jwt),
                Some(json!({"amount_minor": 1, "currency": "USD", field.0: field.1})),
            )
            .await;
        assert_eq!(r.status, 400, "{} → {}", field.0, r.body);
        assert!(leaks(r.body.to_string().as_bytes()).is_empty());
    }
    let listed = b.cp.ok(Method::GET, "/v1/transactions", &b.jwt, None).await;
    assert!(leaks(listed.to_string().as_bytes()).is_empty());
    // Untouched.
    let still =
        a.cp.ok(
            Method::GET,
            &format!("/v1/transactions/{a_tx}"),
            &a.jwt,
            None,
        )
        .await;
    assert_eq!(still["status"], "pending");
}

/// Renders page 1 of a representative licenses PDF to `docs/images/cyberlicense-licenses-pdf.png`
/// (pdftoppm, 70 dpi) for the README. Run by hand: `cargo nextest run -p keyward-control-plane
/// -E 'binary(cyberlicense_export)' --run-ignored only`.
#[tokio::test]
#[ignore = "writes docs/images; run by hand when the PDF's look changes"]
async fn render_the_readme_page() {
    let mut w = World::new("vendor").await;
    let products = [
        w.app("Skyline Plugin").await,
        w.app("Skyline Pro Suite").await,
    ];
    let mut customers = Vec::new();
    for email in [
        "maria.gonzalez@example.com",
        "j.smith@example.org",
        "studio-ops@northwind.example",
        "zoë.müller@example.de",
    ] {
        customers.push(w.customer(email).await);
    }
    for i in 0..30usize {
        let ty = TYPES[i % 4];
        let ip_limit = [0, 3, 5][i % 3];
        let mut spec = json!({"count": 1, "license_type": ty, "hwid_limit": 1 + i % 3,
                              "ip_limit": ip_limit});
        if i % 5 != 4 {
            spec["owner_id"] = json!(customers[i % 4]);
        }
        if ty == "trial" || i % 3 == 1 {
            spec["expires_at"] = json!(format!(
                "2027-{:02}-{:02}T12:00:00Z",
                1 + i % 12,
                1 + i % 28
            ));
        }
        if ty == "consumption" {
            spec["max_uses"] = json!(1000);
        }
        let l = w.license(&products[i % 2], spec).await;
        let id = s(&l["id"]);
        if i % 2 == 0 {
            let ips = [
                format!("203.0.113.{}", 10 + i),
                format!("198.51.100.{}", 40 + i),
            ];
            let hwid = format!(
                "{:016X}",
                0x9F86_D081_884C_7D65u64.wrapping_mul(i as u64 + 1)
            );
            let ips: Vec<&str> = ips.iter().take(1 + i % 3).map(String::as_str).collect();
            w.use_license(&id, &ips, &[hwid.as_str()]).await;
        }
        match i % 9 {
            4 => {
                w.post(&format!("/v1/licenses/{id}/ban"), json!({})).await;
            }
            7 => {
                w.post(&format!("/v1/licenses/{id}/revoke"), json!({}))
                    .await;
            }
            _ => {}
        }
    }
    let pdf = export(&w.cp, "/api/export/licenses/pdf", &w.jwt, "licenses", "pdf").await;
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/images");
    std::fs::create_dir_all(&dir).expect("docs/images");
    let pdf_path = std::env::temp_dir().join("keyward-readme-licenses.pdf");
    std::fs::write(&pdf_path, &pdf).expect("write the PDF");
    let status = Command::new("pdftoppm")
        .args(["-png", "-r", "70", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&pdf_path)
        .arg(dir.join("cyberlicense-licenses-pdf"))
        .status()
        .expect("pdftoppm (poppler-utils) runs");
    assert!(status.success());
    println!(
        "wrote {}",
        dir.join("cyberlicense-licenses-pdf.png").display()
    );
}
