//! `deploy/k8s/`: every manifest validates against the Kubernetes schemas (the PyPI
//! `kubernetes-validate` package ships them; `--strict` rejects unknown fields), and the objects
//! fit together the way the schemas cannot check: probes on the right paths and on the port the
//! process listens on, resources set, the HPA and PDB aimed at the validators, Services selecting
//! existing pods, ConfigMap keys the binaries actually read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

// The acceptance tests' pip helper, shared rather than copied.
#[path = "../../validator/tests/common/pip.rs"]
mod pip;

const KUBERNETES_VALIDATE: pip::Package = pip::Package {
    spec: "kubernetes-validate==1.37.0",
    dir: "pypi-kubernetes-validate-1.37.0",
    dist_info: "kubernetes_validate-1.37.0.dist-info",
    module: "kubernetes_validate/__init__.py",
};

/// The oldest version the manifests support (the preStop `sleep` action is on by default from
/// 1.30) and the newest the package ships.
const K8S_VERSIONS: [&str; 2] = ["1.31.0", "1.37.0"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn k8s_dir() -> PathBuf {
    repo().join("deploy/k8s")
}

/// Every `*.yaml` of deploy/k8s but the kustomization.
fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(k8s_dir())
        .expect("deploy/k8s")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/k8s");
    files
}

/// PyYAML from the kubernetes-validate install (one of its dependencies) turns each file into
/// JSON: file name → its documents.
fn parse_yaml(pythonpath: &Path, files: &[PathBuf]) -> BTreeMap<String, Vec<Value>> {
    const SCRIPT: &str = "import json, os, sys, yaml\n\
        print(json.dumps({os.path.basename(f): [d for d in yaml.safe_load_all(open(f)) if d is not None] for f in sys.argv[1:]}))";
    let out = Command::new("python3")
        .env("PYTHONPATH", pythonpath)
        .args(["-c", SCRIPT])
        .args(files)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "parsing the manifests failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON from python")
}

fn run_validate(pythonpath: &Path, version: &str, files: &[PathBuf]) -> std::process::Output {
    Command::new("python3")
        .env("PYTHONPATH", pythonpath)
        .args(["-m", "kubernetes_validate", "--strict", "-k", version])
        .args(files)
        .output()
        .expect("run python3 -m kubernetes_validate")
}

#[test]
fn kustomization_lists_every_manifest() {
    let dir = pip::install(&KUBERNETES_VALIDATE);
    let k = parse_yaml(&dir, &[k8s_dir().join("kustomization.yaml")]);
    let k = &k["kustomization.yaml"][0];
    assert_eq!(k["kind"], "Kustomization");
    let listed: BTreeSet<String> = k["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_string())
        .collect();
    let present: BTreeSet<String> = manifest_files()
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        listed, present,
        "kustomization.yaml must list exactly the manifests in deploy/k8s"
    );
    assert_eq!(k["namespace"], "keyward");
}

#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    let dir = pip::install(&KUBERNETES_VALIDATE);
    let files = manifest_files();
    for version in K8S_VERSIONS {
        let out = run_validate(&dir, version, &files);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("kubernetes-validate --strict -k {version}:\n{text}");
        assert!(
            out.status.success(),
            "manifests invalid for Kubernetes {version}:\n{text}"
        );
        // Every document must have been checked against a schema, none merely warned about.
        let passed = text.lines().filter(|l| l.contains(" passed ")).count();
        let docs: usize = parse_yaml(&dir, &files).values().map(Vec::len).sum();
        assert_eq!(passed, docs, "not every document passed:\n{text}");
        assert!(
            !text.contains("WARN") && !text.contains("ERROR"),
            "warnings for Kubernetes {version}:\n{text}"
        );
    }

    // The control: the same validator rejects an unknown field, so the pass above means something.
    let bad = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("deploy-k8s-negative-{}.yaml", std::process::id()));
    let validator = std::fs::read_to_string(k8s_dir().join("validator.yaml")).unwrap();
    std::fs::write(
        &bad,
        validator.replacen(
            "terminationGracePeriodSeconds:",
            "terminationGraceSeconds: 1\n      terminationGracePeriodSeconds:",
            1,
        ),
    )
    .unwrap();
    let out = run_validate(&dir, K8S_VERSIONS[0], std::slice::from_ref(&bad));
    let _ = std::fs::remove_file(&bad);
    assert!(
        !out.status.success(),
        "--strict accepted an unknown field: {}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A CPU quantity in millicores.
fn millicores(q: &str) -> u64 {
    match q.strip_suffix('m') {
        Some(m) => m.parse().expect("millicores"),
        None => (q.parse::<f64>().expect("cores") * 1000.0) as u64,
    }
}

/// A memory quantity in bytes (the binary suffixes these manifests use).
fn bytes(q: &str) -> u64 {
    for (suffix, mult) in [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30)] {
        if let Some(n) = q.strip_suffix(suffix) {
            return n.parse::<u64>().expect("memory quantity") * mult;
        }
    }
    q.parse().expect("memory in bytes")
}

/// `env = "NAME"` of every clap argument under these source directories.
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
    let mut names = BTreeSet::new();
    for d in dirs {
        walk(&repo().join(d), &mut names);
    }
    // Read by tracing-subscriber's filter in both binaries.
    names.insert("RUST_LOG".into());
    names
}

fn labels_match(selector: &Value, labels: &Value) -> bool {
    let sel = selector.as_object().expect("matchLabels");
    !sel.is_empty() && sel.iter().all(|(k, v)| labels.get(k) == Some(v))
}

struct Objects(Vec<Value>);

impl Objects {
    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.0.iter().filter(|o| o["kind"] == kind).collect()
    }
    fn named(&self, kind: &str, name: &str) -> &Value {
        self.of_kind(kind)
            .into_iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} named {name}"))
    }
}

/// The value of an environment variable of a container: its `env`, else the ConfigMaps it takes
/// with `envFrom` (as Kubernetes resolves it: `env` wins).
fn container_env(objs: &Objects, c: &Value, name: &str) -> Option<String> {
    for e in c["env"].as_array().into_iter().flatten() {
        if e["name"] == name {
            return e["value"].as_str().map(str::to_string);
        }
    }
    for from in c["envFrom"].as_array().into_iter().flatten() {
        if let Some(cm) = from["configMapRef"]["name"].as_str() {
            if let Some(v) = objs.named("ConfigMap", cm)["data"][name].as_str() {
                return Some(v.to_string());
            }
        }
    }
    None
}

/// The container port a probe or Service targets (by name or number).
fn resolve_port(c: &Value, port: &Value) -> Option<u64> {
    let ports = c["ports"].as_array()?;
    match port {
        Value::String(name) => ports
            .iter()
            .find(|p| p["name"] == name.as_str())
            .and_then(|p| p["containerPort"].as_u64()),
        Value::Number(n) => ports
            .iter()
            .find(|p| p["containerPort"].as_u64() == n.as_u64())
            .and_then(|p| p["containerPort"].as_u64()),
        _ => None,
    }
}

#[test]
fn manifests_are_wired_together() {
    let dir = pip::install(&KUBERNETES_VALIDATE);
    let objs = Objects(
        parse_yaml(&dir, &manifest_files())
            .into_values()
            .flatten()
            .collect(),
    );

    let ns = objs.of_kind("Namespace");
    assert_eq!(ns.len(), 1);
    let ns = ns[0]["metadata"]["name"].as_str().unwrap();
    for o in &objs.0 {
        if o["kind"] != "Namespace" {
            assert_eq!(
                o["metadata"]["namespace"], ns,
                "{} {} outside the namespace",
                o["kind"], o["metadata"]["name"]
            );
        }
    }

    // The example Secret is marked as such and its values cannot go live unedited.
    for s in objs.of_kind("Secret") {
        for (k, v) in s["stringData"].as_object().expect("stringData") {
            assert!(
                v.as_str().unwrap().contains("REPLACE-ME"),
                "Secret key {k} is not marked as an example value"
            );
        }
    }

    let listen_var = |component: &str| match component {
        "validator" => "KEYWARD_VALIDATOR_LISTEN",
        "control-plane" => "KEYWARD_CP_LISTEN",
        other => panic!("unexpected Deployment component {other}"),
    };
    let known_env = |component: &str| match component {
        "validator" => env_names(&["validator/src", "shared/src"]),
        _ => env_names(&["control-plane/src", "shared/src"]),
    };

    let deployments = objs.of_kind("Deployment");
    assert_eq!(deployments.len(), 2, "control-plane and validator");
    // Pod templates: (component, labels, containers), for the Services, HPA and PDB below.
    let mut pods = Vec::new();
    for d in &deployments {
        let name = d["metadata"]["name"].as_str().unwrap();
        let tpl = &d["spec"]["template"];
        let labels = &tpl["metadata"]["labels"];
        let component = labels["app.kubernetes.io/component"].as_str().unwrap();
        assert!(
            labels_match(&d["spec"]["selector"]["matchLabels"], labels),
            "{name}: selector does not match its pod template"
        );
        let pod = &tpl["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true, "{name}");
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
            "{name}"
        );
        for c in pod["containers"].as_array().unwrap() {
            let cname = c["name"].as_str().unwrap();
            let what = format!("{name}/{cname}");
            let sc = &c["securityContext"];
            assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
            assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
            assert_eq!(
                sc["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{what}"
            );

            // The process listens where the pod's port and probes point.
            let listen = container_env(&objs, c, listen_var(component))
                .unwrap_or_else(|| panic!("{what}: {} unset", listen_var(component)));
            let addr: std::net::SocketAddr = listen.parse().expect("listen address");
            assert!(
                addr.ip().is_unspecified(),
                "{what}: listens on {addr}, unreachable from outside the pod"
            );
            for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")] {
                let get = &c[probe]["httpGet"];
                assert_eq!(get["path"], path, "{what}: {probe}");
                assert_eq!(
                    resolve_port(c, &get["port"]),
                    Some(u64::from(addr.port())),
                    "{what}: {probe} port is not the listen port {}",
                    addr.port()
                );
            }

            let res = &c["resources"];
            for kind in ["cpu", "memory"] {
                let req = res["requests"][kind].as_str();
                let lim = res["limits"][kind].as_str();
                let (Some(req), Some(lim)) = (req, lim) else {
                    panic!("{what}: {kind} request and limit must both be set");
                };
                let (r, l) = if kind == "cpu" {
                    (millicores(req), millicores(lim))
                } else {
                    (bytes(req), bytes(lim))
                };
                assert!(r > 0 && r <= l, "{what}: {kind} request {req} limit {lim}");
            }

            // Every setting from a ConfigMap is one the binary reads (a typo is silently ignored
            // otherwise), and every referenced ConfigMap/Secret key exists.
            let known = known_env(component);
            for e in c["env"].as_array().into_iter().flatten() {
                let n = e["name"].as_str().unwrap();
                assert!(
                    known.contains(n),
                    "{what}: env {n} is not read by the binary"
                );
                if let Some(r) = e["valueFrom"]["secretKeyRef"].as_object() {
                    let s = objs.named("Secret", r["name"].as_str().unwrap());
                    assert!(s["stringData"].get(r["key"].as_str().unwrap()).is_some());
                }
            }
            for from in c["envFrom"].as_array().into_iter().flatten() {
                if let Some(cm) = from["configMapRef"]["name"].as_str() {
                    for k in objs.named("ConfigMap", cm)["data"]
                        .as_object()
                        .unwrap()
                        .keys()
                    {
                        assert!(
                            known.contains(k),
                            "{what}: ConfigMap {cm} sets {k}, which the binary does not read"
                        );
                    }
                }
                if let Some(s) = from["secretRef"]["name"].as_str() {
                    objs.named("Secret", s);
                }
            }

            if component == "validator" {
                // SIGKILL must not cut the drain short: delay + in-flight grace, plus margin for
                // the final counter flush.
                let secs = |var: &str, default: u64| {
                    container_env(&objs, c, var).map_or(default, |v| v.parse().unwrap())
                };
                let drain = secs("KEYWARD_SHUTDOWN_DELAY_SECS", 0)
                    + secs("KEYWARD_SHUTDOWN_GRACE_SECS", 10);
                let grace = pod["terminationGracePeriodSeconds"].as_u64().unwrap_or(30);
                println!("validator drain {drain} s, terminationGracePeriodSeconds {grace}");
                assert!(
                    grace >= drain + 5,
                    "terminationGracePeriodSeconds {grace} leaves no margin over the {drain} s drain"
                );
            }
        }
        pods.push((
            component.to_string(),
            name.to_string(),
            labels.clone(),
            pod.clone(),
        ));
    }

    let validator = objs.named("Deployment", "keyward-validator");
    assert_eq!(validator["spec"]["replicas"], 3);
    let vlabels = &validator["spec"]["template"]["metadata"]["labels"];

    // Each Service selects exactly one Deployment's pods and targets one of their ports.
    let services = objs.of_kind("Service");
    assert_eq!(services.len(), 2);
    for s in services {
        let sname = s["metadata"]["name"].as_str().unwrap();
        assert_eq!(s["spec"]["type"], "ClusterIP", "{sname}");
        let selected: Vec<_> = pods
            .iter()
            .filter(|(_, _, labels, _)| labels_match(&s["spec"]["selector"], labels))
            .collect();
        assert_eq!(
            selected.len(),
            1,
            "Service {sname} must select one Deployment's pods"
        );
        let container = &selected[0].3["containers"][0];
        for p in s["spec"]["ports"].as_array().unwrap() {
            assert!(
                resolve_port(container, &p["targetPort"]).is_some(),
                "Service {sname}: targetPort {} is not a port of {}",
                p["targetPort"],
                selected[0].1
            );
        }
    }

    let hpa = objs.of_kind("HorizontalPodAutoscaler");
    assert_eq!(hpa.len(), 1);
    let hpa = hpa[0];
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    let target = &hpa["spec"]["scaleTargetRef"];
    assert_eq!(target["kind"], "Deployment");
    assert_eq!(target["name"], "keyward-validator");
    assert_eq!(target["apiVersion"], "apps/v1");
    let metrics = hpa["spec"]["metrics"].as_array().unwrap();
    let cpu = metrics
        .iter()
        .find(|m| m["type"] == "Resource" && m["resource"]["name"] == "cpu")
        .expect("a CPU metric");
    let util = cpu["resource"]["target"]["averageUtilization"]
        .as_u64()
        .unwrap();
    assert!((60..=70).contains(&util), "CPU target {util} %");
    assert!(hpa["spec"]["minReplicas"].as_u64().unwrap() >= 3);

    let pdb = objs.of_kind("PodDisruptionBudget");
    assert_eq!(pdb.len(), 1);
    let sel = &pdb[0]["spec"]["selector"]["matchLabels"];
    assert!(
        labels_match(sel, vlabels),
        "the PDB must select the validator pods"
    );
    for (component, name, labels, _) in &pods {
        if component != "validator" {
            assert!(!labels_match(sel, labels), "the PDB also selects {name}");
        }
    }
    let spec = &pdb[0]["spec"];
    assert!(
        spec["maxUnavailable"] == 1 || spec["minAvailable"].is_number(),
        "PDB: {spec}"
    );

    for np in objs.of_kind("NetworkPolicy") {
        assert!(labels_match(
            &np["spec"]["podSelector"]["matchLabels"],
            vlabels
        ));
    }
}
