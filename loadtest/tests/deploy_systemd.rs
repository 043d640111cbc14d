//! `deploy/systemd/`: the units pass `systemd-analyze verify` without a single warning about them,
//! score below a threshold in `systemd-analyze security --offline=yes`, carry the hardening and
//! limits the deployment relies on, and their environment-file examples only set variables the
//! binaries read.
//!
//! `verify` checks that each `ExecStart=` binary exists and is executable. The units name
//! /usr/local/bin/…, where an install puts the binaries; the test copies them to a temporary
//! directory with that prefix rewritten to stub executables (a shell script each), since
//! whether a file is there is all `verify` looks at, and this test need not build the binaries.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const UNITS: [&str; 3] = [
    "keyward-migrate.service",
    "keyward-control-plane.service",
    "keyward-validator@.service",
];

/// The instance the template is checked as (its name is its port).
const INSTANCE: &str = "keyward-validator@8081.service";

/// `systemd-analyze security` rates 0–10 (10: no sandboxing); below 2 is its "OK" band.
const MAX_EXPOSURE: f64 = 2.0;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn unit_dir() -> PathBuf {
    repo().join("deploy/systemd")
}

fn analyze() -> Command {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "systemd-analyze is missing: ./deploy/test.sh installs Debian's systemd package ({found:?})"
    );
    Command::new("systemd-analyze")
}

/// The units copied under the target dir, their binaries replaced by stubs.
fn staged_units(tag: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("deploy-systemd-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    for b in ["control-plane", "validator"] {
        let p = bin.join(b);
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    for u in UNITS {
        let text = std::fs::read_to_string(unit_dir().join(u)).unwrap();
        assert!(text.contains("ExecStart=/usr/local/bin/"), "{u}");
        let staged = text.replace("/usr/local/bin/", &format!("{}/", bin.display()));
        std::fs::write(dir.join(u), staged).unwrap();
    }
    dir
}

/// What the units are checked as: the template through one instance.
fn checked_names() -> Vec<&'static str> {
    UNITS
        .iter()
        .map(|u| {
            if u.ends_with("@.service") {
                INSTANCE
            } else {
                u
            }
        })
        .collect()
}

/// Runs `verify` on the staged units and returns every line of its output about them.
fn verify(dir: &Path) -> (std::process::ExitStatus, Vec<String>) {
    let out = analyze()
        .args(["verify", "--man=no"])
        .args(checked_names().iter().map(|n| dir.join(n)))
        .output()
        .expect("run systemd-analyze verify");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("systemd-analyze verify:\n{text}");
    let ours = text
        .lines()
        .filter(|l| l.contains(&*dir.to_string_lossy()) || l.contains("keyward-"))
        .map(str::to_string)
        .collect();
    (out.status, ours)
}

#[test]
fn units_verify_without_warnings() {
    let dir = staged_units("verify");
    let (status, ours) = verify(&dir);
    assert!(status.success(), "systemd-analyze verify failed: {ours:?}");
    assert!(ours.is_empty(), "warnings about our units: {ours:#?}");

    // The control: an unknown directive is reported (verify still exits 0 on it, hence the
    // check of its output above).
    let t = dir.join("keyward-validator@.service");
    let text = std::fs::read_to_string(&t).unwrap();
    std::fs::write(
        &t,
        text.replacen("[Service]\n", "[Service]\nProtectSystem=sideways\n", 1),
    )
    .unwrap();
    let (_, ours) = verify(&dir);
    assert!(
        ours.iter()
            .any(|l| l.contains("ProtectSystem") || l.contains("protect system")),
        "verify did not report a bad directive: {ours:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn units_score_low_exposure() {
    let dir = staged_units("security");
    for name in checked_names() {
        let out = analyze()
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(dir.join(name))
            .output()
            .expect("run systemd-analyze security");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "systemd-analyze security --offline=yes {name} failed (this systemd too old?):\n{text}"
        );
        let line = text
            .lines()
            .find(|l| l.contains("Overall exposure level for"))
            .unwrap_or_else(|| panic!("no exposure score for {name}:\n{text}"));
        let score: f64 = line
            .rsplit(':')
            .next()
            .and_then(|s| s.split_whitespace().next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the score in {line:?}"));
        println!("{name}: exposure {score} (threshold {MAX_EXPOSURE})");
        assert!(
            score < MAX_EXPOSURE,
            "{name}: exposure {score} ≥ {MAX_EXPOSURE}:\n{text}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `KEY=value` settings of a unit's `[Service]` section (repeated keys: each occurrence).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(unit_dir().join(unit)).unwrap();
    let mut in_service = false;
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service && !line.starts_with('#') {
            if let Some((k, v)) = line.split_once('=') {
                out.push((k.to_string(), v.to_string()));
            }
        }
    }
    out
}

fn seconds(v: &str) -> u64 {
    if let Some(m) = v.strip_suffix("min") {
        m.parse::<u64>().unwrap() * 60
    } else {
        v.trim_end_matches('s').parse().unwrap()
    }
}

#[test]
fn units_carry_the_hardening_and_limits() {
    const REQUIRED: [(&str, &str); 23] = [
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("SystemCallFilter", "@system-service"),
        ("SystemCallArchitectures", "native"),
        ("MemoryDenyWriteExecute", "yes"),
        ("LockPersonality", "yes"),
        ("ProtectKernelTunables", "yes"),
        ("ProtectKernelModules", "yes"),
        ("ProtectKernelLogs", "yes"),
        ("ProtectControlGroups", "yes"),
        ("ProtectClock", "yes"),
        ("ProtectHostname", "yes"),
        ("RestrictNamespaces", "yes"),
        ("RestrictRealtime", "yes"),
        ("RestrictSUIDSGID", "yes"),
        ("UMask", "0077"),
        ("DevicePolicy", "closed"),
    ];
    for unit in UNITS {
        let s = service_settings(unit);
        for (k, v) in REQUIRED {
            assert!(
                s.iter().any(|(sk, sv)| sk == k && sv == v),
                "{unit}: {k}={v} missing"
            );
        }
        let get = |k: &str| s.iter().find(|(sk, _)| sk == k).map(|(_, v)| v.as_str());
        for f in s.iter().filter(|(k, _)| k == "EnvironmentFile") {
            let path = f.1.trim_start_matches('-');
            let name = path
                .strip_prefix("/etc/keyward/")
                .unwrap_or_else(|| panic!("{unit}: {path} outside /etc/keyward"))
                .replace("%i", "8081");
            assert!(
                unit_dir().join(format!("{name}.example")).is_file(),
                "{unit}: no deploy/systemd/{name}.example"
            );
        }
        if unit == "keyward-migrate.service" {
            assert_eq!(get("Type"), Some("oneshot"));
            continue;
        }
        assert_eq!(get("Restart"), Some("on-failure"), "{unit}");
        let nofile: u64 = get("LimitNOFILE").expect("LimitNOFILE").parse().unwrap();
        assert!(nofile >= 65536, "{unit}: LimitNOFILE {nofile}");
        let stop = seconds(get("TimeoutStopSec").expect("TimeoutStopSec"));
        // The control-plane's in-flight grace is fixed at 10 s; the validator's drain is its
        // configured delay + grace, read from the example environment.
        let drain = if unit.starts_with("keyward-validator") {
            let env = example_env("validator.env.example");
            let var = |k: &str, d: u64| {
                env.iter()
                    .find(|(n, _, on)| n == k && *on)
                    .map_or(d, |(_, v, _)| v.parse().unwrap())
            };
            var("KEYWARD_SHUTDOWN_DELAY_SECS", 0) + var("KEYWARD_SHUTDOWN_GRACE_SECS", 10)
        } else {
            10
        };
        println!("{unit}: drain {drain} s, TimeoutStopSec {stop} s, LimitNOFILE {nofile}");
        assert!(
            stop >= drain + 10,
            "{unit}: TimeoutStopSec {stop} s leaves no margin over the {drain} s drain"
        );
    }
    let cp = std::fs::read_to_string(unit_dir().join("keyward-control-plane.service")).unwrap();
    assert!(cp.contains("Requires=keyward-migrate.service"));
    assert!(cp.contains("After=keyward-migrate.service"));
    let v = std::fs::read_to_string(unit_dir().join("keyward-validator@.service")).unwrap();
    assert!(v.contains("Environment=KEYWARD_VALIDATOR_LISTEN=127.0.0.1:%i"));
    assert!(v.contains("After=keyward-migrate.service"));
}

/// `(name, value, set)` of each `NAME=value` line of an example (`set` false: commented out).
fn example_env(file: &str) -> Vec<(String, String, bool)> {
    std::fs::read_to_string(unit_dir().join(file))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (on, l) = match l.strip_prefix('#') {
                Some(rest) => (false, rest),
                None => (true, l),
            };
            let (k, v) = l.split_once('=')?;
            let valid = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
            valid.then(|| (k.to_string(), v.to_string(), on))
        })
        .collect()
}

/// `env = "NAME"` of every clap argument under these source directories, and `RUST_LOG`.
fn env_names(dirs: &[&str]) -> BTreeSet<String> {
    fn walk(dir: &Path, names: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, names);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let src = std::fs::read_to_string(&p).unwrap();
                for part in src.split("env = \"").skip(1) {
                    if let Some(name) = part.split('"').next() {
                        names.insert(name.to_string());
                    }
                }
            }
        }
    }
    let mut names = BTreeSet::from(["RUST_LOG".to_string()]);
    for d in dirs {
        walk(&repo().join(d), &mut names);
    }
    names
}

#[test]
fn env_examples_set_only_what_the_binaries_read() {
    let validator = env_names(&["validator/src", "shared/src"]);
    let control_plane = env_names(&["control-plane/src", "shared/src"]);
    let mut seen = 0;
    for e in std::fs::read_dir(unit_dir()).unwrap() {
        let name = e.unwrap().file_name().to_string_lossy().into_owned();
        if !name.ends_with(".env.example") {
            continue;
        }
        seen += 1;
        let known = if name.starts_with("validator") {
            &validator
        } else {
            &control_plane
        };
        let vars = example_env(&name);
        for (k, _, _) in &vars {
            assert!(known.contains(k), "{name}: {k} is not read by the binary");
        }
        if name == "validator.env.example" {
            assert!(
                !vars.iter().any(|(k, _, _)| k == "KEYWARD_VALIDATOR_LISTEN"),
                "every instance reads validator.env: a listen address there overrides the port"
            );
        }
        for (k, v, on) in &vars {
            if *on && k == "DATABASE_URL" {
                assert!(
                    v.contains("REPLACE-ME"),
                    "{name}: example password not marked"
                );
            }
        }
    }
    assert!(seen >= 2, "env examples missing in deploy/systemd");
}
