//! Cross-checks with wrk (Debian's package): the same request, the same connections and threads,
//! against the same servers. wrk does none of what this generator adds (open loop, per-step
//! histograms, signature checks), so where both are server-bound they must agree, and the
//! generator-ceiling row compares the two on the bare baseline.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::http1::Connection;
use crate::scenario::Scenario;

pub fn available() -> bool {
    Command::new("wrk")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// What wrk measured.
#[derive(Debug, Clone, Copy)]
pub struct WrkRun {
    pub rps: f64,
    /// wrk's CPU over the middle of its run, as a share of its threads' cores.
    pub cpu_share: Option<f64>,
}

/// A wrk script sending exactly `request` (a whole HTTP/1.1 request) on every connection: wrk
/// builds the request once from these fields and sets `Host` itself.
pub fn script(request: &[u8]) -> anyhow::Result<String> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = req.parse(request)? else {
        bail!("incomplete request");
    };
    let lua = |b: &[u8]| {
        let mut s = String::from("\"");
        for &c in b {
            match c {
                b'"' | b'\\' => {
                    s.push('\\');
                    s.push(c as char);
                }
                0x20..=0x7e => s.push(c as char),
                _ => s.push_str(&format!("\\{c:03}")),
            }
        }
        s.push('"');
        s
    };
    let mut out = format!(
        "wrk.method = {}\nwrk.path = {}\n",
        lua(req.method.context("method")?.as_bytes()),
        lua(req.path.context("path")?.as_bytes())
    );
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("host") || h.name.eq_ignore_ascii_case("content-length") {
            continue;
        }
        out.push_str(&format!(
            "wrk.headers[{}] = {}\n",
            lua(h.name.as_bytes()),
            lua(h.value)
        ));
    }
    out.push_str(&format!("wrk.body = {}\n", lua(&request[len..])));
    Ok(out)
}

/// The request the scenario repeats once its flow is under way (KeyAuth: after init and, for
/// `check`, license, with a live session), played through once against `url` to get there.
pub async fn steady_request(url: &str, scenario: &Scenario, step: &str) -> anyhow::Result<Vec<u8>> {
    let target = crate::engine::Target::parse(url)?;
    let mut client = scenario.client(0x5eed, &target.authority);
    let mut conn = Connection::open(&target.authority, Duration::from_secs(5))
        .await
        .map_err(|f| anyhow::anyhow!("connecting to {url}: {f:?}"))?;
    for _ in 0..4 {
        let (name, request) = client.next_request();
        let request = request.to_vec();
        if name == step {
            return Ok(request);
        }
        let answer = conn
            .exchange(&request)
            .await
            .map_err(|f| anyhow::anyhow!("{name} at {url}: {f:?}"))?;
        if !(200..300).contains(&answer.status) {
            bail!("{name} at {url}: status {}", answer.status);
        }
        client
            .check(&answer)
            .map_err(|e| anyhow::anyhow!("{name} at {url}: {e:?}"))?;
    }
    bail!("the scenario never reached {step}")
}

/// Runs wrk for `seconds` with `script`; blocking (call from a blocking thread).
pub fn run_blocking(
    url: &str,
    script_path: &std::path::Path,
    connections: usize,
    threads: usize,
    seconds: u64,
) -> anyhow::Result<WrkRun> {
    let seconds = seconds.max(2);
    let mut child = Command::new("wrk")
        .arg(format!("-t{threads}"))
        .arg(format!("-c{connections}"))
        .arg(format!("-d{seconds}s"))
        .arg("-s")
        .arg(script_path)
        .arg(url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting wrk")?;
    // CPU over the middle of the run, away from its connecting and its reporting: two samples
    // of a running process's counters, not a wait for anything to happen.
    std::thread::sleep(Duration::from_millis(500));
    let t0 = std::time::Instant::now();
    let c0 = crate::cpu::process_time(child.id());
    std::thread::sleep(Duration::from_secs(seconds) - Duration::from_millis(1000));
    let c1 = crate::cpu::process_time(child.id());
    let window = t0.elapsed().as_secs_f64();
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out)?;
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("wrk failed: {out}");
    }
    let rps = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| format!("no Requests/sec in wrk's output: {out}"))?;
    let cpu_share = c0
        .zip(c1)
        .map(|(a, b)| b.saturating_sub(a).as_secs_f64() / (window * threads as f64));
    Ok(WrkRun { rps, cpu_share })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_sends_the_request_as_given() {
        let req = b"POST /api/1.2/ HTTP/1.1\r\nhost: 127.0.0.1:1\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 19\r\n\r\ntype=check&s=\"a\"\\\x01";
        let s = script(req).unwrap();
        assert!(s.contains("wrk.method = \"POST\"\n"), "{s}");
        assert!(s.contains("wrk.path = \"/api/1.2/\"\n"), "{s}");
        assert!(
            s.contains("wrk.headers[\"content-type\"] = \"application/x-www-form-urlencoded\"\n")
        );
        assert!(!s.contains("host") && !s.contains("content-length"), "{s}");
        assert!(
            s.contains(r#"wrk.body = "type=check&s=\"a\"\\\001""#),
            "{s}"
        );
    }
}
