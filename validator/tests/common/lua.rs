//! Runs the real Roblox key-system client libraries vendored under `tests/roblox_clients/`
//! (Panda's V2LoaderLib and PandaBetaLib, Junkie's `library.lua`) unmodified, under Debian's
//! `lua5.1` + `lua-cjson` (installed by `deploy/test.sh`), against a server on loopback.
//!
//! `roblox_clients/prelude.lua` is loaded first: it stands in for Roblox and the executor
//! (`game:GetService`, `request`, `gethwid`, …; spec `roblox-key-systems.md` §4) and sends the
//! libraries' hard-coded hosts to `base_url`. Then a driver runs: one of `roblox_clients/drivers/`
//! (see `run_driver`) or a script of the test's own (`run_lua`). A driver prints one JSON object
//! per line on stdout (`KEYWARD.step`/`KEYWARD.emit`), and what a library prints goes to stderr.
//!
//! A run is bounded (`TIMEOUT`); the validator under test serves from the test's runtime, so
//! async tests call the `*_async` forms, which run on the blocking pool.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The directory of the vendored clients, the prelude and the drivers.
pub const CLIENTS_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/roblox_clients");
/// The interpreter (Debian package `lua5.1`).
pub const LUA: &str = "lua5.1";
/// How long one run may take before it is killed.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Vendored files (paths under `CLIENTS_DIR`), as pinned in `roblox_clients/SHA256SUMS`.
pub const V2_LOADER_V1: &str = "panda/V2LoaderLib.aacdee3.lua";
pub const V2_LOADER_HEAD: &str = "panda/V2LoaderLib.6edee22.lua";
pub const PANDA_BETA: &str = "panda/PandaBetaLib.lua";
pub const JUNKIE: &str = "junkie/library.lua";

/// A path under `CLIENTS_DIR`, which must exist.
pub fn client_path(rel: &str) -> PathBuf {
    let path = PathBuf::from(CLIENTS_DIR).join(rel);
    assert!(path.is_file(), "no vendored client file {}", path.display());
    path
}

/// The text of a file under `CLIENTS_DIR`.
pub fn client_source(rel: &str) -> String {
    let path = client_path(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// Whether the third-party Lua libraries are on this machine. They have no registry to install
/// them from and are kept out of the repository (see `roblox_clients/README.md`), so a clean
/// clone runs the tests that need them only once a developer has put them in place; those tests
/// then say loudly that they were skipped. When present they must match `SHA256SUMS`.
pub fn third_party_present() -> bool {
    let present = [
        "panda/V2LoaderLib.aacdee3.lua",
        "panda/V2LoaderLib.6edee22.lua",
        "panda/PandaBetaLib.lua",
        "junkie/library.lua",
    ]
    .iter()
    // Not `client_path`, which insists that the file exists.
    .all(|f| PathBuf::from(CLIENTS_DIR).join(f).is_file());
    if present {
        assert_pinned();
    } else {
        eprintln!(
            "SKIPPED: the third-party Lua clients are not in {CLIENTS_DIR} (kept out of the repository; \
             see its README.md for where each comes from)"
        );
    }
    present
}

/// Checks every vendored file against `roblox_clients/SHA256SUMS` (`sha256sum -c`), so a test
/// cannot pass on a silently changed copy.
pub fn assert_pinned() {
    let out = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(CLIENTS_DIR)
        .output()
        .unwrap_or_else(|e| panic!("cannot run sha256sum: {e}"));
    assert!(
        out.status.success(),
        "vendored clients differ from roblox_clients/SHA256SUMS:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What a client program did: its exit, its output, and its JSON lines.
#[derive(Debug)]
pub struct ClientRun {
    /// Exit code; `None` when killed (by a signal or the timeout).
    pub status: Option<i32>,
    pub success: bool,
    pub timed_out: bool,
    pub stdout: String,
    pub stderr: String,
}

/// The Lua runs' name for it.
pub type LuaRun = ClientRun;

impl ClientRun {
    /// Every stdout line, each a JSON object (panics, with the output, on anything else).
    pub fn lines(&self) -> Vec<Value> {
        self.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!(
                        "client printed a non-JSON line {l:?}: {e}\nstderr:\n{}",
                        self.stderr
                    )
                })
            })
            .collect()
    }

    /// The line of the step with this name (`{"step": name, …}`), whether it succeeded or not.
    pub fn step(&self, name: &str) -> Value {
        self.lines()
            .into_iter()
            .find(|l| l["step"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "no step {name:?} in the client's output ({}):\n{}\nstderr:\n{}",
                    self.describe(),
                    self.stdout,
                    self.stderr
                )
            })
    }

    /// The first return value of a step that did not raise (`result[0]`).
    pub fn result(&self, name: &str) -> Value {
        let s = self.step(name);
        assert_eq!(
            s["ok"], true,
            "step {name:?} raised: {s}\nstderr:\n{}",
            self.stderr
        );
        s["result"][0].clone()
    }

    /// The HTTP exchanges a step made: `{method, url, target?, refused?, headers, body?, status,
    /// response?}` each (`url` as the library built it, `target` where it really went).
    pub fn http(&self, name: &str) -> Vec<Value> {
        match &self.step(name)["http"] {
            Value::Array(a) => a.clone(),
            _ => Vec::new(),
        }
    }

    /// The run ended normally with its final `done` line.
    pub fn assert_done(&self) {
        assert!(
            self.success,
            "client run failed ({}):\nstdout:\n{}\nstderr:\n{}",
            self.describe(),
            self.stdout,
            self.stderr
        );
        assert!(
            self.lines().last().is_some_and(|l| l["step"] == "done"),
            "client run ended without its `done` line:\n{}\nstderr:\n{}",
            self.stdout,
            self.stderr
        );
    }

    fn describe(&self) -> String {
        match (self.timed_out, self.status) {
            (true, _) => format!("killed after {}s", TIMEOUT.as_secs()),
            (false, Some(c)) => format!("exit {c}"),
            (false, None) => "killed by a signal".to_string(),
        }
    }
}

/// Runs `cmd` to its end or until `timeout` (then kills it), feeding it `stdin`.
pub fn run_bounded(mut cmd: Command, stdin: Option<String>, timeout: Duration) -> ClientRun {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {program}: {e} (deploy/test.sh installs lua5.1, lua-cjson, curl and \
             python3-pip when they are missing)"
        )
    });
    let writer = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("stdin");
        thread::spawn(move || {
            // The child may exit without reading it all; that is its business.
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let reader = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = reader(Box::new(child.stdout.take().expect("stdout")));
    let err = reader(Box::new(child.stderr.take().expect("stderr")));
    let deadline = Instant::now() + timeout;
    let mut timed_out = false;
    let status = loop {
        match child.try_wait().expect("wait for the client") {
            Some(status) => break status,
            None if Instant::now() >= deadline => {
                timed_out = true;
                let _ = child.kill();
                break child.wait().expect("wait for the killed client");
            }
            None => thread::sleep(Duration::from_millis(20)),
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    ClientRun {
        status: status.code(),
        success: status.success() && !timed_out,
        timed_out,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// `lua5.1` with the prelude loaded, reaching `base_url` as a player whose `gethwid()` (and
/// `RbxAnalyticsService:GetClientId()`) is `hwid`. `env` adds or overrides variables (the
/// prelude's `KEYWARD_*` knobs, a driver's inputs).
fn lua_command(base_url: &str, hwid: &str, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(LUA);
    cmd.arg("-e")
        .arg("dofile(os.getenv('KEYWARD_PRELUDE'))")
        .current_dir(CLIENTS_DIR)
        .env("KEYWARD_PRELUDE", client_path("prelude.lua"))
        .env("KEYWARD_CLIENTS_DIR", CLIENTS_DIR)
        .env("KEYWARD_BASE", base_url)
        .env("KEYWARD_HWID", hwid)
        // The server is on loopback; a proxy from the environment must not get in between.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a Lua script of the test's own after the prelude. It can load a vendored library with
/// `KEYWARD.load_client("panda/PandaBetaLib.lua")` and report with `KEYWARD.step(name, fn)` /
/// `KEYWARD.emit(table)` / `KEYWARD.finish()`.
pub fn run_lua(base_url: &str, hwid: &str, script: &str) -> ClientRun {
    run_lua_env(base_url, hwid, script, &[])
}

pub fn run_lua_env(base_url: &str, hwid: &str, script: &str, env: &[(&str, &str)]) -> ClientRun {
    let mut cmd = lua_command(base_url, hwid, env);
    cmd.arg("-");
    run_bounded(cmd, Some(script.to_string()), TIMEOUT)
}

/// Runs `roblox_clients/drivers/<driver>.lua` (`panda_v2loader_v1`, `panda_v2loader_head`,
/// `panda_beta`, `junkie`); its inputs come from `env` (`KEYWARD_SERVICE`, `KEYWARD_KEY`,
/// `KEYWARD_STEPS`, …: see the driver's header).
pub fn run_driver(base_url: &str, hwid: &str, driver: &str, env: &[(&str, &str)]) -> ClientRun {
    let mut cmd = lua_command(base_url, hwid, env);
    cmd.arg(client_path(&format!("drivers/{driver}.lua")));
    run_bounded(cmd, None, TIMEOUT)
}

/// `run_lua` on the blocking pool.
pub async fn run_lua_async(base_url: &str, hwid: &str, script: &str) -> ClientRun {
    let (b, h, s) = (base_url.to_string(), hwid.to_string(), script.to_string());
    blocking(move || run_lua(&b, &h, &s)).await
}

/// `run_lua_env` on the blocking pool.
pub async fn run_lua_env_async(
    base_url: &str,
    hwid: &str,
    script: &str,
    env: &[(&str, &str)],
) -> ClientRun {
    let (b, h, s) = (base_url.to_string(), hwid.to_string(), script.to_string());
    let env = owned(env);
    blocking(move || run_lua_env(&b, &h, &s, &borrowed(&env))).await
}

/// `run_driver` on the blocking pool.
pub async fn run_driver_async(
    base_url: &str,
    hwid: &str,
    driver: &str,
    env: &[(&str, &str)],
) -> ClientRun {
    let (b, h, d) = (base_url.to_string(), hwid.to_string(), driver.to_string());
    let env = owned(env);
    blocking(move || run_driver(&b, &h, &d, &borrowed(&env))).await
}

pub(crate) fn owned(env: &[(&str, &str)]) -> Vec<(String, String)> {
    env.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub(crate) fn borrowed(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Runs `f` on the blocking pool, passing its panic on as is.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}
