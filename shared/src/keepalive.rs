//! Test support (feature `test-support`): a raw HTTP/1.1 client that checks what connection
//! pools rely on. After any answer, the same keep-alive connection must carry the next request,
//! unless the answer said `Connection: close`; closing it silently turns a 429 or 413 into
//! "connection reset" in the client (Python `requests.Session`, Go's `http.Client`, SDK pools).

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One answer as it came off the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The answer told the client not to reuse the connection.
    pub fn says_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// What became of the connection after the first answer.
#[derive(Debug)]
pub enum Reuse {
    /// The answer said `Connection: close` (the client knows not to reuse it).
    SaidClose,
    /// The next request on it was answered.
    Reused(RawResponse),
    /// The connection was closed or broken without warning.
    Broken(String),
}

const ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// How long the server gets to answer from the head alone before the body is sent (what a
/// client writing head and body in two calls, as Python's http.client does, gives it).
const EARLY_ANSWER_WINDOW: Duration = Duration::from_millis(200);

/// Sends `head` (request line and headers, without the blank line; `Content-Length` is added),
/// lets the server answer early, sends `body`, reads the answer, then asks `GET follow_up` on
/// the same connection.
pub async fn answer_then_reuse(
    addr: SocketAddr,
    head: &str,
    body: &[u8],
    follow_up: &str,
) -> (RawResponse, Reuse) {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let mut conn = BufReader::new(stream);
    let head = format!(
        "{head}\r\nhost: localhost\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.get_mut()
        .write_all(head.as_bytes())
        .await
        .expect("write the head");
    // Either the server answers from the head alone (then the body follows it, as it does from
    // a real client), or the window passes; the outcome is judged the same way in both cases.
    let _ = tokio::time::timeout(EARLY_ANSWER_WINDOW, conn.get_ref().readable()).await;
    // A server that already closed may refuse the body; what it answered is what counts.
    let _ = conn.get_mut().write_all(body).await;
    let first = read_response(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("no answer to the first request: {e}"));
    if first.says_close() {
        return (first, Reuse::SaidClose);
    }
    let next = format!("GET {follow_up} HTTP/1.1\r\nhost: localhost\r\n\r\n");
    if let Err(e) = conn.get_mut().write_all(next.as_bytes()).await {
        return (
            first,
            Reuse::Broken(format!("writing the next request: {e}")),
        );
    }
    match read_response(&mut conn).await {
        Ok(r) => (first, Reuse::Reused(r)),
        Err(e) => (first, Reuse::Broken(e)),
    }
}

/// Reads one answer (status, headers, a `Content-Length` or chunked body) within a deadline.
pub async fn read_response<R: AsyncBufRead + Unpin>(conn: &mut R) -> Result<RawResponse, String> {
    tokio::time::timeout(ANSWER_DEADLINE, read_response_inner(conn))
        .await
        .map_err(|_| format!("no answer within {ANSWER_DEADLINE:?}"))?
}

async fn read_response_inner<R: AsyncBufRead + Unpin>(conn: &mut R) -> Result<RawResponse, String> {
    let mut line = String::new();
    let n = conn
        .read_line(&mut line)
        .await
        .map_err(|e| format!("reading the status line: {e}"))?;
    if n == 0 {
        return Err("the connection was closed without an answer".into());
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not a status line: {line:?}"))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)
            .await
            .map_err(|e| format!("reading headers: {e}"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    let mut r = RawResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if let Some(len) = r
        .header("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        r.body.resize(len, 0);
        conn.read_exact(&mut r.body)
            .await
            .map_err(|e| format!("reading the body: {e}"))?;
    } else if r
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        loop {
            line.clear();
            conn.read_line(&mut line)
                .await
                .map_err(|e| format!("reading a chunk size: {e}"))?;
            let size = usize::from_str_radix(line.trim(), 16)
                .map_err(|_| format!("not a chunk size: {line:?}"))?;
            let mut chunk = vec![0; size + 2];
            conn.read_exact(&mut chunk)
                .await
                .map_err(|e| format!("reading a chunk: {e}"))?;
            if size == 0 {
                break;
            }
            r.body.extend_from_slice(&chunk[..size]);
        }
    }
    Ok(r)
}
