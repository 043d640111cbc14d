//! Runs the real, unmodified PyPI package `PandaAuthPy` 1.0.2 (MIT) against a server on loopback,
//! through `roblox_clients/panda_auth_py.py`, which swaps the module's `requests` for a
//! namespace whose `get()` sends `https://pandadevelopment.net/...` to the server and refuses
//! every other host. `api.ipify.org` is refused, so the library's HWID is always
//! `sha256("BAD_REQUEST")` (`BAD_REQUEST_HWID`).
//!
//! The package (and `requests`) is installed with pip under the cargo target dir, once, the way
//! `keygen_sdk.rs` installs keygen-sdk; a registry that cannot be reached fails the tests rather
//! than skipping them. Needs `super::lua` (the bounded runner).

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use super::lua::{blocking, borrowed, owned, run_bounded, ClientRun, CLIENTS_DIR, TIMEOUT};

/// What PandaAuthPy sends as `hwid` when its public-IP lookup fails: sha256("BAD_REQUEST").
pub const BAD_REQUEST_HWID: &str =
    "1bb80880a6e9556d1c2b8f33f3bbdcd0faa322d9da8b091c5f0c57d4488a18fd";

/// The directory holding PandaAuthPy and `requests`, for `PYTHONPATH`. Installed once per target
/// dir: each test process installs into a directory of its own and renames it into place, so
/// concurrent test processes never see half an install.
pub fn package_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(install).clone()
}

fn install() -> PathBuf {
    super::pip::install(&super::pip::Package {
        spec: "PandaAuthPy==1.0.2",
        dir: "pandaauthpy-1.0.2",
        dist_info: "pandaauthpy-1.0.2.dist-info",
        module: "PandaAuthPy/auth.py",
    })
}

/// Runs the driver: `steps` from `validate_key`, `validate_premium_key`, `get_key`, `hwid`. Each
/// prints `{"step", "ok", "result": [value], "http": [...]}`, then a final `done` line; the value
/// is the library's return value: a bool for the validations, the get-key URL, the HWID.
pub fn run_panda_py(base_url: &str, service: &str, key: &str, steps: &[&str]) -> ClientRun {
    let steps = steps.join(",");
    run_panda_py_env(
        base_url,
        &[
            ("KEYWARD_SERVICE", service),
            ("KEYWARD_KEY", key),
            ("KEYWARD_STEPS", &steps),
        ],
    )
}

/// The same with the driver's environment given whole (`KEYWARD_SERVICE`, `KEYWARD_KEY`,
/// `KEYWARD_STEPS`).
pub fn run_panda_py_env(base_url: &str, env: &[(&str, &str)]) -> ClientRun {
    let mut cmd = Command::new("python3");
    cmd.arg(PathBuf::from(CLIENTS_DIR).join("panda_auth_py.py"))
        .env("PYTHONPATH", package_dir())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("KEYWARD_BASE", base_url)
        // The server is on loopback; a proxy from the environment must not get in between.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (k, v) in env {
        cmd.env(k, v);
    }
    run_bounded(cmd, None, TIMEOUT)
}

/// `run_panda_py` on the blocking pool (the install, too).
pub async fn run_panda_py_async(
    base_url: &str,
    service: &str,
    key: &str,
    steps: &[&str],
) -> ClientRun {
    let (b, s, k) = (base_url.to_string(), service.to_string(), key.to_string());
    let steps: Vec<String> = steps.iter().map(|s| s.to_string()).collect();
    blocking(move || {
        let steps: Vec<&str> = steps.iter().map(String::as_str).collect();
        run_panda_py(&b, &s, &k, &steps)
    })
    .await
}

/// `run_panda_py_env` on the blocking pool.
pub async fn run_panda_py_env_async(base_url: &str, env: &[(&str, &str)]) -> ClientRun {
    let b = base_url.to_string();
    let env = owned(env);
    blocking(move || run_panda_py_env(&b, &borrowed(&env))).await
}
