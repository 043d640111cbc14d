//! The README's run command, as a user runs it: `deploy/run.sh` starts a private PostgreSQL, both
//! services and a demo tenant; the `curl` it prints validates; Ctrl-C stops everything.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The URL and JSON body of the printed `curl -s -X POST <url> … -d '<json>'`.
fn parse_curl(line: &str) -> Option<(String, String)> {
    let url = line.split_whitespace().find(|w| w.starts_with("http://"))?;
    let body = line.split("-d '").nth(1)?.strip_suffix('\'')?;
    Some((url.to_string(), body.to_string()))
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The directory this test binary was built in (`<target>/<profile>/deps/<test>`): where cargo
/// builds, whatever `CARGO_TARGET_DIR` says.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.ancestors()
        .nth(3)
        .expect("<target>/<profile>/deps/<binary>")
        .to_path_buf()
}

/// Many developers export `CARGO_TARGET_DIR`: every script asks cargo where it builds instead
/// of assuming `./target`.
#[test]
fn scripts_ask_cargo_where_it_builds() {
    let ask = |env: Option<&str>| {
        let mut cmd = Command::new("bash");
        cmd.args(["-c", ". deploy/lib/services.sh && cargo_target_dir"])
            .current_dir(repo());
        match env {
            Some(dir) => cmd.env("CARGO_TARGET_DIR", dir),
            None => cmd.env_remove("CARGO_TARGET_DIR"),
        };
        let out = cmd.output().expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf-8")
            .trim()
            .to_string()
    };
    assert_eq!(
        ask(Some("/tmp/keyward-elsewhere")),
        "/tmp/keyward-elsewhere"
    );
    assert!(ask(None).starts_with('/'), "an absolute directory");
    for entry in std::fs::read_dir(repo().join("deploy")).expect("deploy/") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "sh") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("script");
        for (n, line) in text.lines().enumerate() {
            let code = line.split('#').next().unwrap_or("");
            // `target/` as a path of its own, not the end of a name such as `$target/`.
            let literal = code.match_indices("target/").any(|(i, _)| {
                code[..i]
                    .chars()
                    .next_back()
                    .is_none_or(|c| !(c.is_alphanumeric() || "$_{-".contains(c)))
            });
            assert!(
                !literal,
                "{}:{}: a path into ./target; use \"$(cargo_target_dir)\": {line}",
                path.display(),
                n + 1
            );
        }
    }
}

#[tokio::test]
async fn run_script_prints_a_curl_that_validates_and_ctrl_c_stops_everything() {
    let repo = repo();
    let state = std::env::temp_dir().join(format!(
        "keyward-run-test-{}",
        keyward_shared::secrets::random_token(8)
    ));
    let mut child = Command::new("bash")
        .arg("deploy/run.sh")
        .current_dir(&repo)
        .env_remove("DATABASE_URL")
        // Spelled out, as developers who build elsewhere do: the script must follow it.
        .env("CARGO_TARGET_DIR", target_dir())
        .env("KEYWARD_STATE_DIR", &state)
        .env("KEYWARD_PG_PORT", free_port().to_string())
        .env("KEYWARD_CP_PORT", free_port().to_string())
        .env("KEYWARD_VALIDATOR_PORT", free_port().to_string())
        // Its own process group, like a terminal's foreground job receiving Ctrl-C.
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run deploy/run.sh");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });

    // The script builds first, which can take minutes on a cold target directory.
    let deadline = Instant::now() + Duration::from_secs(900);
    let mut curl = None;
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("run.sh printed 'Press Ctrl-C' in time");
        println!("run.sh | {line}");
        if line.trim_start().starts_with("curl -s -X POST") && line.contains("/v1/validate") {
            curl = parse_curl(line.trim());
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    let (url, body) = curl.expect("a validation curl in the output");
    let resp = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .expect("validator answers");
    let verdict: serde_json::Value = resp.json().await.expect("json");
    assert_eq!(verdict["code"], "VALID", "{verdict}");

    // The script leads its own process group (see `process_group(0)` above); signal that group only.
    let status = Command::new("kill")
        .args(["-s", "INT", "--", &format!("-{}", child.id())])
        .status()
        .expect("kill");
    assert!(status.success());
    let stop_deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(
            Instant::now() < stop_deadline,
            "run.sh did not stop after Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(exit.code(), Some(130), "exit status after Ctrl-C");
    assert!(
        !state.join("pg/data/postmaster.pid").exists(),
        "the private PostgreSQL is still running"
    );
    let _ = std::fs::remove_dir_all(&state);
}
