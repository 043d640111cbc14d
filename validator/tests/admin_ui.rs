//! Acceptance of the admin web UI in a real browser: Debian's Chromium driven by Playwright for
//! Python (pinned to the release built for the same Chromium major), against a control-plane and a
//! validator on port 0 over a real PostgreSQL. `control-plane/tests/browser/admin_flow.py` signs
//! in, creates an app, generates licenses, searches, bans (and asks the validator, which must
//! answer BANNED), resets HWIDs, adds a blacklist CIDR, reads the audit entry of each action and
//! signs out; it checks the pages with axe-core, takes the README's screenshots and times the
//! licenses page over 10 000 licenses. Any console error or CSP violation fails it.
//!
//! It lives with the validator's tests because only they can start both services. A missing
//! browser, Playwright or axe-core fails the test: nothing is skipped.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use common::keygen_clients::blocking;
use common::*;
use keyward_shared::testing::TestDb;
use serde_json::{json, Value};

const FLOW: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../control-plane/tests/browser/admin_flow.py"
);
const CHROMIUM: &str = "/usr/bin/chromium";
/// Built for Chromium 156, the major of Debian bookworm's chromium (re-pin rule: the Playwright
/// release whose bundled Chromium major equals `chromium --version`'s; see admin-ui.md §5.2).
const PLAYWRIGHT: pip::Package = pip::Package {
    spec: "playwright==1.64.1",
    dir: "playwright-1.64.1",
    dist_info: "playwright-1.64.1.dist-info",
    module: "playwright/__init__.py",
};
const AXE_CORE: &str = "axe-core@4.11.1";
/// Licenses in the account when the licenses page's first load is timed.
const LOAD_LICENSES: usize = 10_000;
const PASSWORD: &str = "correct horse battery";

fn playwright_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| pip::install(&PLAYWRIGHT)).clone()
}

/// axe-core's browser build from the npm registry, once per target dir.
fn axe_js() -> PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(install_axe).clone()
}

fn install_axe() -> PathBuf {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let file = root.join(format!("{}.min.js", AXE_CORE.replace('@', "-")));
    if file.is_file() {
        return file;
    }
    let work = root.join(format!("axe-core.partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).expect("axe-core work dir");
    let packed = Command::new("npm")
        .args(["pack", "--silent", AXE_CORE])
        .current_dir(&work)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm to fetch {AXE_CORE}: {e}"));
    assert!(
        packed.status.success(),
        "`npm pack {AXE_CORE}` failed: the accessibility check needs the real axe-core from \
         the npm registry.\n{}",
        String::from_utf8_lossy(&packed.stderr)
    );
    let tarball = String::from_utf8_lossy(&packed.stdout).trim().to_string();
    let untar = Command::new("tar")
        .args(["xzf", &tarball, "package/axe.min.js"])
        .current_dir(&work)
        .status()
        .expect("tar");
    assert!(untar.success(), "cannot unpack {tarball}");
    // A rename is atomic: concurrent test processes never read half a file.
    std::fs::rename(work.join("package/axe.min.js"), &file).expect("axe.min.js into place");
    let _ = std::fs::remove_dir_all(&work);
    file
}

/// A broken Chromium package (e.g. Debian's 150.0.7871.46, which crashed at headless start-up)
/// fails here with its own message rather than as a Playwright timeout.
fn chromium_preflight() -> String {
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: ./deploy/test.sh installs Debian's chromium package"
    );
    let version = Command::new(CHROMIUM)
        .arg("--version")
        .output()
        .expect("chromium --version");
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    let dom = Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--dump-dom",
            "about:blank",
        ])
        .output()
        .expect("chromium --dump-dom");
    assert!(
        dom.status.success() && String::from_utf8_lossy(&dom.stdout).contains("<body>"),
        "{version} cannot render about:blank headless: {}",
        String::from_utf8_lossy(&dom.stderr)
    );
    version
}

async fn login(http: &reqwest::Client, base: &str) -> String {
    let r = reply(
        http.post(format!("{base}/v1/auth/login"))
            .json(&json!({"username": "alice", "password": PASSWORD}))
            .send()
            .await
            .expect("login"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["token"].as_str().expect("token").to_string()
}

/// An app holding `LOAD_LICENSES` licenses, generated through the API as a vendor would.
async fn seed_load(http: &reqwest::Client, base: &str, token: &str) {
    let app: Value = http
        .post(format!("{base}/v1/apps"))
        .bearer_auth(token)
        .json(&json!({"name": "Load Test Tool"}))
        .send()
        .await
        .expect("app")
        .json()
        .await
        .expect("app json");
    let app = app["id"].as_str().expect("app id").to_string();
    for _ in 0..LOAD_LICENSES / 500 {
        let r = http
            .post(format!("{base}/v1/apps/{app}/licenses"))
            .bearer_auth(token)
            .json(&json!({"count": 500, "mask": "LOAD-XXXX-XXXX-XXXX", "duration_days": 30, "note": "bulk"}))
            .send()
            .await
            .expect("generate");
        assert_eq!(r.status(), 201);
    }
}

/// Where the screenshots go: the README's folder when asked to refresh them
/// (`KEYWARD_UI_SCREENSHOTS=docs/images`), else the target dir.
fn screenshots_dir() -> PathBuf {
    match std::env::var_os("KEYWARD_UI_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui-screenshots"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_runs_the_licensing_workflow_in_a_real_browser() {
    let chromium = chromium_preflight();
    println!("browser: {chromium}");
    let (playwright, axe) = blocking(|| (playwright_dir(), axe_js())).await;

    let db = TestDb::new().await;
    keyward_control_plane::create_admin(&db.url, "alice", PASSWORD)
        .await
        .expect("admin");
    let mut cfg = keyward_control_plane::Config::new(db.url.clone());
    cfg.login_rate_per_minute = 1000;
    let cp = keyward_control_plane::start(cfg)
        .await
        .expect("control-plane");
    let v = validator(&db.url, |_| {}).await;
    let base = format!("http://{}", cp.addr());
    let http = reqwest::Client::new();
    let token = login(&http, &base).await;
    seed_load(&http, &base, &token).await;

    let shots = screenshots_dir();
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let mut cmd = Command::new("python3");
    cmd.arg(FLOW)
        .env("PYTHONPATH", playwright)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("KEYWARD_BASE", &base)
        .env("KEYWARD_VALIDATOR", format!("http://{}", v.addr()))
        .env("KEYWARD_USER", "alice")
        .env("KEYWARD_PASSWORD", PASSWORD)
        .env("KEYWARD_AXE_JS", axe)
        .env("KEYWARD_CHROMIUM", CHROMIUM)
        .env("KEYWARD_SHOTS", &shots)
        .env("KEYWARD_LOAD_LICENSES", LOAD_LICENSES.to_string());
    let out = blocking(move || cmd.output())
        .await
        .unwrap_or_else(|e| panic!("cannot run python3 {FLOW}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    let steps: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(
        out.status.success(),
        "the browser flow failed ({}); its last steps: {:?}",
        out.status,
        steps.iter().rev().take(3).collect::<Vec<_>>()
    );
    let done: Vec<&str> = steps.iter().filter_map(|s| s["step"].as_str()).collect();
    for step in [
        "sign in",
        "create app",
        "generate 25 licenses",
        "search one",
        "ban: validator answers BANNED",
        "reset HWIDs",
        "add blacklist CIDR",
        "audit entries",
        "hostile text rendered as text",
        "accessibility",
        "keyboard",
        "phone width",
        "licenses first load",
        "sign out",
    ] {
        assert!(
            done.contains(&step),
            "the flow never reported {step:?}: {done:?}"
        );
    }
    let timing = steps
        .iter()
        .find(|s| s["step"] == "licenses first load")
        .expect("timing");
    println!(
        "licenses page, first load over {LOAD_LICENSES} licenses: {} ms (reported, not asserted)",
        timing["ms"]
    );
    v.shutdown().await;
}
