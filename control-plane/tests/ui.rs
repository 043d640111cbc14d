//! The admin UI's serving rules, without a browser: the exact CSP and security headers on every
//! `/ui/` answer, every file the UI loads served with the right type, caching by ETag, no path
//! escapes, `/v1` still without CORS, and the size budget of what a browser downloads.
//! (The UI itself is driven in Chromium by `validator/tests/admin_ui.rs`.)

mod common;

use std::collections::BTreeMap;

use common::*;
use keyward_control_plane::ui::CONTENT_SECURITY_POLICY;
use reqwest::Method;

/// What the spec allows the UI to add to a first load, gzipped.
const BUDGET_GZIPPED_BYTES: usize = 150 * 1024;

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

async fn get(cp: &Cp, path: &str, headers: &[(&str, &str)]) -> Got {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut req = http.get(format!("{}{path}", cp.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let r = req.send().await.expect("request");
    Got {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.expect("body").to_vec(),
    }
}

fn header<'a>(g: &'a Got, name: &str) -> &'a str {
    g.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn assert_secured(g: &Got, what: &str) {
    assert_eq!(
        header(g, "content-security-policy"),
        CONTENT_SECURITY_POLICY,
        "{what}"
    );
    assert_eq!(header(g, "x-content-type-options"), "nosniff", "{what}");
    assert_eq!(header(g, "referrer-policy"), "no-referrer", "{what}");
    assert_eq!(header(g, "x-frame-options"), "DENY", "{what}");
}

/// The quoted strings following `marker` in `text`.
fn quoted_after(text: &str, marker: &str) -> Vec<String> {
    text.match_indices(marker)
        .filter_map(|(i, _)| {
            let rest = &text[i + marker.len()..];
            let quote = rest.chars().next()?;
            let rest = &rest[quote.len_utf8()..];
            rest.find(quote).map(|end| rest[..end].to_string())
        })
        .collect()
}

/// Resolves `reference` (relative to the file at `from`, both under /ui/).
fn resolve(from: &str, reference: &str) -> String {
    let mut parts: Vec<&str> = from.split('/').collect();
    parts.pop();
    for seg in reference.split('/') {
        match seg {
            "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

/// Every file the UI can load, from index.html through its links, scripts, imports and the
/// router's page modules, with its body.
async fn crawl(cp: &Cp) -> BTreeMap<String, Got> {
    let mut seen = BTreeMap::new();
    let mut queue = vec!["index.html".to_string()];
    while let Some(file) = queue.pop() {
        if seen.contains_key(&file) {
            continue;
        }
        let path = if file == "index.html" {
            "/ui/".to_string()
        } else {
            format!("/ui/{file}")
        };
        let got = get(cp, &path, &[]).await;
        assert_eq!(
            got.status, 200,
            "{path} is referenced by the UI but not served"
        );
        assert_secured(&got, &path);
        let text = String::from_utf8_lossy(&got.body).to_string();
        let mut refs = Vec::new();
        if file.ends_with(".html") {
            refs.extend(quoted_after(&text, "src="));
            refs.extend(quoted_after(&text, "href="));
        }
        if file.ends_with(".mjs") {
            let statements = text
                .lines()
                .filter(|l| l.starts_with("import ") || l.starts_with("export "));
            for line in statements {
                refs.extend(quoted_after(line, "from "));
            }
            refs.extend(quoted_after(&text, "import("));
            // The router loads `pages/<module>.mjs` for each route: `['/path', label, 'module']`.
            for line in text.lines().filter(|l| l.trim_start().starts_with("['/")) {
                let quoted: Vec<&str> = line.split('\'').collect();
                // The module is the last quoted string (the label may be `null`).
                let module = quoted.len().checked_sub(2).map(|i| quoted[i]);
                if let Some(module) = module.filter(|m| !m.is_empty() && quoted.len() >= 5) {
                    refs.push(format!("./pages/{module}.mjs"));
                }
            }
        }
        for r in refs {
            if r.starts_with('#') || r.contains("${") || r.contains("://") {
                continue;
            }
            queue.push(resolve(&file, &r));
        }
        seen.insert(file, got);
    }
    seen
}

#[tokio::test]
async fn every_file_the_ui_loads_is_served_with_its_type_and_the_exact_csp() {
    let cp = Cp::start().await;
    let files = crawl(&cp).await;
    for name in [
        "app.mjs",
        "api.mjs",
        "kit.mjs",
        "style.css",
        "vendor/preact-htm.mjs",
    ] {
        assert!(
            files.contains_key(name),
            "{name} not reached from index.html"
        );
    }
    let pages = files.keys().filter(|f| f.starts_with("pages/")).count();
    assert!(pages >= 19, "only {pages} page modules reached");
    for (name, got) in &files {
        let expected = match name.rsplit_once('.').map(|(_, e)| e) {
            Some("mjs" | "js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("html") => "text/html; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("unexpected file type {other:?} ({name})"),
        };
        assert_eq!(header(got, "content-type"), expected, "{name}");
        assert_eq!(header(got, "cache-control"), "no-cache", "{name}");
    }
    // No inline code in the page itself: CSP would block it, and the rule is that there is none.
    let index = String::from_utf8_lossy(&files["index.html"].body).to_string();
    for banned in [
        " onload=",
        " onclick=",
        " style=",
        "<script>",
        "javascript:",
    ] {
        assert!(!index.contains(banned), "index.html contains {banned:?}");
    }
    for (name, got) in files.iter().filter(|(n, _)| !n.starts_with("vendor/")) {
        let text = String::from_utf8_lossy(&got.body);
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "dangerouslySetInnerHTML",
            "document.write",
            "eval(",
            "new Function",
        ] {
            assert!(!text.contains(sink), "{name} uses {sink}");
        }
    }
}

#[tokio::test]
async fn what_a_browser_downloads_fits_the_budget() {
    let cp = Cp::start().await;
    let files = crawl(&cp).await;
    let mut total = 0;
    for (name, got) in &files {
        // gzip = deflate + an 18-byte header and trailer.
        let gz = miniz_oxide::deflate::compress_to_vec(&got.body, 9).len() + 18;
        println!("{name:32} {:>7} B  {gz:>6} B gzipped", got.body.len());
        total += gz;
    }
    println!("total: {total} B gzipped (budget {BUDGET_GZIPPED_BYTES})");
    assert!(
        total <= BUDGET_GZIPPED_BYTES,
        "the UI's assets are {total} B gzipped, over the {BUDGET_GZIPPED_BYTES} B budget"
    );
}

#[tokio::test]
async fn ui_answers_redirect_cache_and_refuse_escapes() {
    let cp = Cp::start().await;
    let bare = get(&cp, "/ui", &[]).await;
    assert_eq!(bare.status, 308);
    assert_eq!(header(&bare, "location"), "/ui/");

    let first = get(&cp, "/ui/app.mjs", &[]).await;
    let etag = header(&first, "etag").to_string();
    assert!(
        etag.len() == 66 && etag.starts_with('"'),
        "ETag is the quoted sha256: {etag}"
    );
    let again = get(&cp, "/ui/app.mjs", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_secured(&again, "304");
    let changed = get(&cp, "/ui/app.mjs", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(changed.status, 200);

    for path in [
        "/ui/nope.mjs",
        "/ui/pages/",
        "/ui/vendor/",
        "/ui/../Cargo.toml",
        "/ui/%2e%2e/Cargo.toml",
        "/ui/pages/..%2f..%2fCargo.toml",
        "/ui//etc/passwd",
    ] {
        let g = get(&cp, path, &[]).await;
        assert!(g.status == 404 || g.status == 400, "{path} → {}", g.status);
        let body = String::from_utf8_lossy(&g.body);
        assert!(!body.contains("[package]"), "{path} leaked a file");
        // (The client itself resolves `/../` and `/%2e%2e/` before sending: those leave /ui/.)
        if g.status == 404 && !path.contains("/../") && !path.contains("/%2e%2e/") {
            assert_secured(&g, path);
        }
    }
}

#[tokio::test]
async fn the_api_stays_without_cors_and_ui_tokens_are_short_and_renewable() {
    let cp = Cp::start().await;
    let token = cp.admin("alice").await;
    let r = cp
        .http
        .get(format!("{}/v1/apps", cp.base))
        .bearer_auth(&token)
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let preflight = cp
        .http
        .request(Method::OPTIONS, format!("{}/v1/apps", cp.base))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .expect("request");
    assert!(preflight
        .headers()
        .get("access-control-allow-origin")
        .is_none());

    // The UI asks for a 30-minute token; nobody gets a longer one than the server's default.
    let login = |ttl: serde_json::Value| {
        cp.call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(serde_json::json!({"username": "alice", "password": PASSWORD, "ttl_secs": ttl})),
        )
    };
    let short = login(1800.into()).await;
    assert_eq!(short.status, 200, "{}", short.body);
    let lifetime = |body: &serde_json::Value| {
        let at = body["expires_at"].as_str().expect("expires_at");
        (chrono::DateTime::parse_from_rfc3339(at)
            .expect("date")
            .timestamp()
            - chrono::Utc::now().timestamp())
        .abs()
    };
    assert!((1790..=1810).contains(&lifetime(&short.body)));
    let long = login(10_000_000.into()).await;
    assert!(lifetime(&long.body) <= 86_400 + 10);
    assert_eq!(login(5.into()).await.status, 400);
    assert_eq!(login("soon".into()).await.status, 400);

    let ui_token = short.body["token"].as_str().expect("token");
    let renewed = cp
        .call(
            Method::POST,
            "/v1/auth/refresh",
            Some(ui_token),
            Some(serde_json::json!({"ttl_secs": 600})),
        )
        .await;
    assert_eq!(renewed.status, 200, "{}", renewed.body);
    assert!((590..=610).contains(&lifetime(&renewed.body)));
    let renewed_token = renewed.body["token"].as_str().expect("token");
    assert_eq!(
        cp.call(Method::GET, "/v1/account", Some(renewed_token), None)
            .await
            .status,
        200
    );
    // An API key is not a login and is not renewed; no token at all is refused.
    let key = cp
        .ok(
            Method::POST,
            "/v1/api-keys",
            &token,
            Some(serde_json::json!({"name": "ci", "scopes": ["apps:read"]})),
        )
        .await;
    let secret = key["key"].as_str().or(key["secret"].as_str()).expect("key");
    let by_key = cp
        .call(
            Method::POST,
            "/v1/auth/refresh",
            Some(secret),
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(by_key.status, 403, "{}", by_key.body);
    let anonymous = cp
        .call(
            Method::POST,
            "/v1/auth/refresh",
            None,
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(anonymous.status, 401);
}
