//! `control-plane healthcheck`: one plain-HTTP GET that succeeds on a 2xx answer. The container
//! image has no curl; this lets its `HEALTHCHECK` probe `/readyz` of either service with std
//! alone (plain HTTP only: a TLS-terminating instance is probed by its orchestrator instead).

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

/// GETs `url` (`http://host:port/path`) within `timeout` and fails unless the status is 2xx.
pub fn check(url: &str, timeout: Duration) -> anyhow::Result<u16> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("{url}: only http:// URLs can be checked"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    let addrs: Vec<_> = authority
        .to_socket_addrs()
        .with_context(|| format!("{url}: the host needs an explicit port"))?
        .collect();
    let mut last = None;
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = Some(e),
        }
    }
    let mut stream = match (stream, last) {
        (Some(s), _) => s,
        (None, Some(e)) => return Err(e).with_context(|| format!("connecting to {authority}")),
        (None, None) => bail!("{authority} resolves to no address"),
    };
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // HTTP/1.0 without keep-alive: the server closes after answering, so reading to the end
    // never waits for a body length we do not care about.
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: keyward-healthcheck\r\n\r\n"
    )
    .context("sending the request")?;
    let mut head = Vec::new();
    stream
        .take(4096)
        .read_to_end(&mut head)
        .context("reading the answer")?;
    let head = String::from_utf8_lossy(&head);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .with_context(|| format!("{url}: not an HTTP answer"))?;
    if !(200..300).contains(&status) {
        let body = head.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        bail!("{url} answered {status}: {body}");
    }
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serves one connection with `answer` and returns the `http://` URL of `/readyz`.
    fn serve_once(answer: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf);
            s.write_all(answer.as_bytes()).unwrap();
        });
        format!("http://{addr}/readyz")
    }

    #[test]
    fn ready_is_success_and_not_ready_is_an_error_with_the_reason() {
        let t = Duration::from_secs(5);
        let ok = serve_once("HTTP/1.1 200 OK\r\ncontent-length: 14\r\n\r\n{\"ready\":true}");
        assert_eq!(check(&ok, t).unwrap(), 200);
        let down = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n{\"ready\":false}");
        let err = check(&down, t).unwrap_err().to_string();
        assert!(
            err.contains("503") && err.contains("ready\":false"),
            "{err}"
        );
    }

    #[test]
    fn refused_and_malformed_urls_fail() {
        let t = Duration::from_secs(5);
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        assert!(check(&format!("http://127.0.0.1:{port}/readyz"), t).is_err());
        assert!(check("https://127.0.0.1:1/readyz", t).is_err());
        assert!(check("http://127.0.0.1/readyz", t).is_err());
    }
}
