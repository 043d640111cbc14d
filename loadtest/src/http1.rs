//! The engine's HTTP/1.1 client connection: one request in flight, the request written in one
//! `write`, the answer parsed in place (httparse) from one buffer reused for every answer. hyper's
//! client — a dispatcher task, a channel and header maps per request — held the generator to
//! ≈ 0.8 × wrk's rate against the bare baseline, which then capped every A/B comparison.

use std::ops::Range;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest answer head and body accepted (a load test reads licensing answers, not files).
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Connecting failed or timed out.
    Connect,
    /// Reset, closed mid-answer, or not HTTP/1.x.
    Protocol,
}

/// One answer, borrowed from the connection's buffer until the next exchange.
pub struct Answer<'a> {
    pub status: u16,
    /// The server closes after this answer (`Connection: close`, HTTP/1.0, or a body to EOF).
    pub close: bool,
    pub body: &'a [u8],
    buf: &'a [u8],
    headers: &'a [HeaderSpan],
}

/// A header's name and value as ranges of the connection's buffer.
pub type HeaderSpan = (Range<usize>, Range<usize>);

impl<'a> Answer<'a> {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        let buf = self.buf;
        self.headers
            .iter()
            .find(|(n, _)| buf[n.clone()].eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| &buf[v.clone()])
    }

    /// An answer over borrowed parts (tests of the scenarios' checks).
    pub fn from_parts(
        status: u16,
        buf: &'a [u8],
        headers: &'a [HeaderSpan],
        body: &'a [u8],
    ) -> Answer<'a> {
        Answer {
            status,
            close: false,
            body,
            buf,
            headers,
        }
    }
}

enum Body {
    Length(usize),
    Chunked,
    ToEof,
}

/// What the head said, as offsets into the buffer (so the buffer can grow while the body is read).
struct Head {
    status: u16,
    len: usize,
    body: Body,
    close: bool,
}

pub struct Connection {
    stream: TcpStream,
    /// Bytes read; the current answer starts at 0.
    buf: Vec<u8>,
    /// End of the current answer in `buf` (what the next exchange drops).
    consumed: usize,
    headers: Vec<HeaderSpan>,
    /// A chunked answer's body, decoded.
    dechunked: Vec<u8>,
}

impl Connection {
    pub async fn open(authority: &str, timeout: Duration) -> Result<Connection, Failure> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
            Ok(Ok(s)) => s,
            Ok(Err(_)) | Err(_) => return Err(Failure::Connect),
        };
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(8192),
            consumed: 0,
            headers: Vec::with_capacity(16),
            dechunked: Vec::new(),
        })
    }

    /// Sends `request` (a complete HTTP/1.1 request) and reads its answer.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Answer<'_>, Failure> {
        self.buf.drain(..self.consumed);
        self.consumed = 0;
        self.stream
            .write_all(request)
            .await
            .map_err(|_| Failure::Protocol)?;
        let head = loop {
            match self.parse_head()? {
                Some(head) if (100..200).contains(&head.status) && head.status != 101 => {
                    // An interim answer (100 Continue, 103 Early Hints): the real one follows.
                    self.buf.drain(..head.len);
                }
                Some(head) => break head,
                None => self.fill(MAX_HEAD).await?,
            }
        };
        let mut close = head.close;
        let body = match head.body {
            Body::Length(n) => {
                while self.buf.len() < head.len + n {
                    self.fill(head.len + MAX_BODY).await?;
                }
                self.consumed = head.len + n;
                head.len..head.len + n
            }
            Body::Chunked => {
                self.consumed = self.dechunk(head.len).await?;
                0..0
            }
            Body::ToEof => {
                close = true;
                while self.fill(head.len + MAX_BODY).await.is_ok() {}
                self.consumed = self.buf.len();
                head.len..self.buf.len()
            }
        };
        let chunked = matches!(head.body, Body::Chunked);
        Ok(Answer {
            status: head.status,
            close,
            body: if chunked {
                &self.dechunked
            } else {
                &self.buf[body]
            },
            buf: &self.buf,
            headers: &self.headers,
        })
    }

    /// Reads more bytes; an end of stream is a failure (the answer is incomplete).
    async fn fill(&mut self, limit: usize) -> Result<(), Failure> {
        if self.buf.len() >= limit {
            return Err(Failure::Protocol);
        }
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(8192);
        }
        match self.stream.read_buf(&mut self.buf).await {
            Ok(0) | Err(_) => Err(Failure::Protocol),
            Ok(_) => Ok(()),
        }
    }

    fn parse_head(&mut self) -> Result<Option<Head>, Failure> {
        let mut raw = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut raw);
        let len = match resp.parse(&self.buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(_) => return Err(Failure::Protocol),
        };
        let status = resp.code.ok_or(Failure::Protocol)?;
        let http10 = resp.version == Some(0);
        let base = self.buf.as_ptr() as usize;
        let offset = |s: &[u8]| {
            let start = s.as_ptr() as usize - base;
            start..start + s.len()
        };
        self.headers.clear();
        let mut length = None;
        let mut chunked = false;
        let mut close = http10;
        for h in resp.headers.iter() {
            self.headers
                .push((offset(h.name.as_bytes()), offset(h.value)));
            if h.name.eq_ignore_ascii_case("content-length") {
                let n = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .ok_or(Failure::Protocol)?;
                length = Some(n);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = h
                    .value
                    .split(|b| *b == b',')
                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in h.value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if token.eq_ignore_ascii_case(b"close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case(b"keep-alive") && http10 {
                        close = false;
                    }
                }
            }
        }
        let body = if status == 204 || status == 304 || (100..200).contains(&status) {
            Body::Length(0)
        } else if chunked {
            Body::Chunked
        } else if let Some(n) = length {
            if n > MAX_BODY {
                return Err(Failure::Protocol);
            }
            Body::Length(n)
        } else {
            Body::ToEof
        };
        Ok(Some(Head {
            status,
            len,
            body,
            close,
        }))
    }

    /// Decodes a chunked body starting at `at` into `dechunked`; returns where the answer ends.
    async fn dechunk(&mut self, mut at: usize) -> Result<usize, Failure> {
        self.dechunked.clear();
        loop {
            let (size_len, size) = loop {
                match httparse::parse_chunk_size(&self.buf[at..]) {
                    Ok(httparse::Status::Complete((n, size))) => break (n, size as usize),
                    Ok(httparse::Status::Partial) => self.fill(at + MAX_HEAD).await?,
                    Err(_) => return Err(Failure::Protocol),
                }
            };
            if size == 0 {
                // No trailers expected; skip them if any, up to the empty line.
                let start = at + size_len;
                loop {
                    if self.buf[start..].starts_with(b"\r\n") {
                        return Ok(start + 2);
                    }
                    if let Some(end) = self.buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
                        return Ok(start + end + 4);
                    }
                    self.fill(start + MAX_HEAD).await?;
                }
            }
            if self.dechunked.len() + size > MAX_BODY {
                return Err(Failure::Protocol);
            }
            let end = at + size_len + size;
            while self.buf.len() < end + 2 {
                self.fill(end + 2 + MAX_HEAD).await?;
            }
            self.dechunked
                .extend_from_slice(&self.buf[at + size_len..end]);
            at = end + 2;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    /// A server that answers each request (read up to its blank line) with the next canned answer.
    async fn canned(answers: Vec<&'static [u8]>) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            for answer in answers {
                loop {
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        break;
                    }
                    let mut chunk = [0u8; 1024];
                    let n = s.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                // In two writes: the client must put an answer together from several reads.
                let (a, b) = answer.split_at(answer.len() / 2);
                s.write_all(a).await.unwrap();
                s.flush().await.unwrap();
                tokio::task::yield_now().await;
                s.write_all(b).await.unwrap();
            }
        });
        addr
    }

    const GET: &[u8] = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n";

    /// A connection to a [`canned`] server.
    async fn connected(answers: Vec<&'static [u8]>) -> Connection {
        let addr = canned(answers).await;
        Connection::open(&addr, Duration::from_secs(5))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn keep_alive_answers_by_length_chunked_and_interim() {
        let mut c = connected(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nSignature: ab\r\n\r\nhello",
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            b"HTTP/1.1 204 No Content\r\n\r\n",
            b"HTTP/1.1 429 Too Many\r\nconnection: close\r\ncontent-length: 2\r\n\r\nno",
        ]).await;
        let a = c.exchange(GET).await.unwrap();
        assert_eq!((a.status, a.body, a.close), (200, &b"hello"[..], false));
        assert_eq!(a.header("signature"), Some(&b"ab"[..]));
        assert_eq!(a.header("x-missing"), None);
        let a = c.exchange(GET).await.unwrap();
        assert_eq!((a.status, a.body), (201, &b"abcde"[..]));
        let a = c.exchange(GET).await.unwrap();
        assert_eq!((a.status, a.body), (204, &b""[..]));
        let a = c.exchange(GET).await.unwrap();
        assert_eq!((a.status, a.body, a.close), (429, &b"no"[..], true));
    }

    #[tokio::test]
    async fn a_body_to_the_end_of_the_stream_and_a_truncated_answer() {
        let mut c = connected(vec![b"HTTP/1.0 200 OK\r\n\r\nall of it"]).await;
        let a = c.exchange(GET).await.unwrap();
        assert_eq!((a.status, a.body, a.close), (200, &b"all of it"[..], true));

        let mut c = connected(vec![b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nshort"]).await;
        assert_eq!(c.exchange(GET).await.err(), Some(Failure::Protocol));
    }

    #[tokio::test]
    async fn not_http_is_a_protocol_failure() {
        let mut c = connected(vec![b"SSH-2.0-OpenSSH\r\n\r\n"]).await;
        assert_eq!(c.exchange(GET).await.err(), Some(Failure::Protocol));
    }
}
