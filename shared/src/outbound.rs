//! The one outbound HTTP client of both services: the KeyAuth `webhook` call (a client asks the
//! validator to fetch the vendor's configured URL) and the control-plane's event webhooks (POSTed
//! to URLs a tenant configured).
//!
//! Either way this code runs on a public server with attacker-influenced targets, so it is
//! hardened against server-side request forgery (SSRF):
//!
//! * only `http`/`https`, no credentials in the URL;
//! * unless the operator sets `allow_private`, loopback, private, link-local
//!   (cloud metadata), CGNAT, multicast, documentation and other special-purpose
//!   addresses are refused. The check is done on the exact addresses the
//!   connector dials: IP-literal hosts are checked before the request starts
//!   (hyper skips the resolver for them) and names go through [`GuardedResolver`],
//!   which drops blocked addresses, so DNS rebinding cannot swap in a private
//!   address between the check and the connect;
//! * no redirects (a redirect could point at a blocked target), no proxy taken
//!   from the environment, a whole-request timeout, and a response size cap
//!   enforced while streaming.

use std::error::Error as StdError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION, CONTENT_TYPE, USER_AGENT};
/// The URL type the checks return, re-exported so callers need no URL crate of their own.
pub use reqwest::Url;

/// Settings for [`Outbound`].
#[derive(Debug, Clone)]
pub struct OutboundConfig {
    /// Whole-request deadline: connect, send, headers and body.
    pub timeout: Duration,
    /// Largest response body accepted, in bytes.
    pub max_response_bytes: usize,
    /// Operator opt-in to loopback/private/link-local targets (e.g. a webhook
    /// receiver on the same host or LAN). Off by default.
    pub allow_private: bool,
    /// Cut a body larger than `max_response_bytes` at the cap instead of failing
    /// the call: event webhooks judge a delivery by its status and keep only a
    /// prefix of the body for their log. Off by default (the KeyAuth call relays
    /// the body to a client, where a cut body would be a wrong answer).
    pub truncate_response: bool,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_response_bytes: 1024 * 1024,
            allow_private: false,
            truncate_response: false,
        }
    }
}

/// One outbound call. POST when `body` is set, GET otherwise.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboundRequest<'a> {
    pub url: &'a str,
    pub body: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub user_agent: Option<&'a str>,
    pub authorization: Option<&'a str>,
    /// Further headers, e.g. a signature's (name, value); a name or value that is
    /// not valid in HTTP is refused as [`OutboundError::InvalidHeader`].
    pub headers: &'a [(&'static str, &'a str)],
}

/// What the remote answered. Any status is a response (3xx included: redirects
/// are never followed); the body is decoded as UTF-8 lossily.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    pub body: String,
}

/// Why an outbound call failed. Messages never include the URL: the vendor's
/// webhook URL may carry secrets and these messages may be shown to clients.
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    /// Not an absolute http(s) URL with a host and without credentials.
    #[error("invalid webhook URL: {0}")]
    InvalidUrl(String),
    /// A header value contains characters not allowed in HTTP headers.
    #[error("invalid {0} header value")]
    InvalidHeader(&'static str),
    /// The target is (or resolves only to) addresses the SSRF guard blocks.
    #[error(
        "webhook target {host} resolves to blocked address(es) {addrs:?} \
         (loopback/private/link-local/reserved); the operator can allow private targets"
    )]
    Forbidden { host: String, addrs: Vec<IpAddr> },
    /// The whole request did not finish within the configured timeout.
    #[error("webhook request timed out after {0:?}")]
    Timeout(Duration),
    /// The response body is larger than the configured cap.
    #[error("webhook response exceeded {limit} bytes")]
    TooLarge { limit: usize },
    /// TCP/TLS connection to the target failed.
    #[error("could not connect to webhook target: {0}")]
    Connect(String),
    /// Any other transport or protocol failure.
    #[error("webhook request failed: {0}")]
    Http(String),
    /// The HTTP client could not be constructed (bad config, TLS setup).
    #[error("could not build webhook HTTP client: {0}")]
    Build(String),
}

/// SSRF-guarded HTTP client. Cheap to clone: the inner reqwest client is
/// reference-counted and shares one connection pool.
#[derive(Debug, Clone)]
pub struct Outbound {
    client: reqwest::Client,
    cfg: OutboundConfig,
}

impl Outbound {
    pub fn new(cfg: OutboundConfig) -> Result<Outbound, OutboundError> {
        if cfg.timeout.is_zero() {
            // A zero deadline would fail every call; surface the misconfiguration early.
            return Err(OutboundError::Build("timeout must be non-zero".into()));
        }
        let client = reqwest::Client::builder()
            // A redirect could point at a blocked target; return 3xx as-is instead.
            .redirect(reqwest::redirect::Policy::none())
            // An HTTP(S)_PROXY in the environment would make the proxy dial the
            // target, bypassing the address check.
            .no_proxy()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .dns_resolver(Arc::new(GuardedResolver {
                allow_private: cfg.allow_private,
            }))
            .build()
            .map_err(|e| OutboundError::Build(error_chain(&e)))?;
        Ok(Outbound { client, cfg })
    }

    /// Performs the call. See the module docs for the rules applied.
    pub async fn call(&self, req: &OutboundRequest<'_>) -> Result<OutboundResponse, OutboundError> {
        // Runs before the first await: a blocked IP literal is refused without
        // any DNS or network traffic.
        let url = self.preflight(req.url)?;

        let mut builder = match req.body {
            Some(body) => self.client.post(url).body(body.to_owned()),
            None => self.client.get(url),
        };
        for (name, label, value) in [
            (CONTENT_TYPE, "content-type", req.content_type),
            (USER_AGENT, "user-agent", req.user_agent),
            (AUTHORIZATION, "authorization", req.authorization),
        ] {
            if let Some(value) = value {
                builder = builder.header(name.clone(), header_value(&name, label, value)?);
            }
        }
        for &(label, value) in req.headers {
            let name = HeaderName::from_bytes(label.as_bytes())
                .map_err(|_| OutboundError::InvalidHeader(label))?;
            let value = header_value(&name, label, value)?;
            builder = builder.header(name, value);
        }

        let mut resp = builder.send().await.map_err(|e| self.classify(e))?;
        let status = resp.status().as_u16();
        let limit = self.cfg.max_response_bytes;

        // Reject early when the server announces an oversized body.
        let announced = resp.content_length();
        if announced.is_some_and(|len| len > limit as u64) && !self.cfg.truncate_response {
            return Err(OutboundError::TooLarge { limit });
        }
        // Pre-size only up to the cap; the announced length is untrusted.
        let mut buf = Vec::with_capacity(announced.map_or(0, |len| (len as usize).min(limit)));
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.classify(e))? {
            // Checked before appending, so at most `limit` bytes are buffered
            // (plus the one chunk reqwest hands us).
            let room = limit - buf.len();
            if chunk.len() > room {
                if !self.cfg.truncate_response {
                    return Err(OutboundError::TooLarge { limit });
                }
                // Keep the prefix and stop reading: dropping `resp` closes the
                // connection instead of draining an unbounded body.
                buf.extend_from_slice(&chunk[..room]);
                break;
            }
            buf.extend_from_slice(&chunk);
        }

        Ok(OutboundResponse {
            status,
            body: String::from_utf8_lossy(&buf).into_owned(),
        })
    }

    /// Parses and validates the URL, and applies the SSRF check to IP-literal
    /// hosts. Synchronous on purpose (see [`Outbound::call`]).
    fn preflight(&self, raw: &str) -> Result<Url, OutboundError> {
        check_target(raw, self.cfg.allow_private)
    }

    fn classify(&self, err: reqwest::Error) -> OutboundError {
        // The URL may carry secrets; keep it out of messages.
        let err = err.without_url();
        if let Some(blocked) = find_source::<BlockedTarget>(&err) {
            return OutboundError::Forbidden {
                host: blocked.host.clone(),
                addrs: blocked.addrs.clone(),
            };
        }
        if err.is_timeout() {
            return OutboundError::Timeout(self.cfg.timeout);
        }
        let msg = error_chain(&err);
        if err.is_connect() {
            OutboundError::Connect(msg)
        } else {
            OutboundError::Http(msg)
        }
    }
}

/// Parses `raw` as an absolute http(s) URL with a host and without credentials
/// and, unless `allow_private`, refuses an IP-literal host outside the public
/// unicast ranges. Host names are checked when they are resolved
/// ([`GuardedResolver`]); callers that store a URL for later calls check it here
/// first so the tenant hears of a bad one at once.
pub fn check_target(raw: &str, allow_private: bool) -> Result<Url, OutboundError> {
    // The parsed `Url` is what reqwest sends, so there is no second parser
    // that could disagree with this check.
    let url = Url::parse(raw).map_err(|e| OutboundError::InvalidUrl(e.to_string()))?;
    match url.scheme() {
        "http" | "https" => {}
        other => {
            return Err(OutboundError::InvalidUrl(format!(
                "scheme `{other}` is not allowed (only http and https)"
            )))
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(OutboundError::InvalidUrl(
            "credentials in the URL are not allowed".into(),
        ));
    }
    let host = match url.host_str() {
        Some(h) if !h.is_empty() => h,
        _ => return Err(OutboundError::InvalidUrl("URL has no host".into())),
    };
    if !allow_private {
        // Same test hyper-util uses to skip DNS (brackets stripped, then
        // `parse` as v4/v6): whatever it would dial directly is checked here;
        // everything else goes through `GuardedResolver`.
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            if !is_public_ip(ip) {
                return Err(OutboundError::Forbidden {
                    host: host.to_owned(),
                    addrs: vec![ip],
                });
            }
        }
    }
    Ok(url)
}

fn header_value(
    name: &HeaderName,
    label: &'static str,
    value: &str,
) -> Result<HeaderValue, OutboundError> {
    let mut v = HeaderValue::from_str(value).map_err(|_| OutboundError::InvalidHeader(label))?;
    // Keeps credentials out of Debug output and HPACK tables.
    v.set_sensitive(name == AUTHORIZATION);
    Ok(v)
}

/// Returned by [`GuardedResolver`] when every address of a name is blocked;
/// found again in the reqwest error's source chain to report `Forbidden`.
#[derive(Debug)]
struct BlockedTarget {
    host: String,
    addrs: Vec<IpAddr>,
}

impl std::fmt::Display for BlockedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} resolves only to blocked addresses {:?}",
            self.host, self.addrs
        )
    }
}

impl StdError for BlockedTarget {}

/// DNS resolver that hands the connector only addresses passing
/// [`is_public_ip`]. Because the connector dials exactly what this returns, the
/// checked address is the connected address (no rebinding window).
#[derive(Debug)]
struct GuardedResolver {
    allow_private: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow_private = self.allow_private;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0: the connector substitutes the URL's (or the scheme's) port.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow_private {
                return Ok(Box::new(resolved.into_iter()) as Addrs);
            }
            let (allowed, blocked): (Vec<SocketAddr>, Vec<SocketAddr>) =
                resolved.into_iter().partition(|a| is_public_ip(a.ip()));
            if allowed.is_empty() {
                let err: Box<dyn StdError + Send + Sync> = if blocked.is_empty() {
                    format!("{host} resolved to no addresses").into()
                } else {
                    Box::new(BlockedTarget {
                        host,
                        addrs: blocked.iter().map(SocketAddr::ip).collect(),
                    })
                };
                return Err(err);
            }
            // Mixed answers: silently use only the public addresses.
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// True when `ip` is an ordinary globally routable unicast address, i.e. a
/// webhook may connect to it without the operator's `allow_private` opt-in.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

/// IPv4 ranges that are not ordinary public unicast (IANA special-purpose
/// registry, RFC 6890 and successors).
const BLOCKED_V4: &[([u8; 4], u8)] = &[
    ([0, 0, 0, 0], 8),       // "this network", incl. 0.0.0.0 unspecified
    ([10, 0, 0, 0], 8),      // private
    ([100, 64, 0, 0], 10),   // CGNAT shared address space
    ([127, 0, 0, 0], 8),     // loopback
    ([169, 254, 0, 0], 16),  // link-local, incl. cloud metadata 169.254.169.254
    ([172, 16, 0, 0], 12),   // private
    ([192, 0, 0, 0], 24),    // IETF protocol assignments
    ([192, 0, 2, 0], 24),    // documentation TEST-NET-1
    ([192, 88, 99, 0], 24),  // deprecated 6to4 relay anycast
    ([192, 168, 0, 0], 16),  // private
    ([198, 18, 0, 0], 15),   // benchmarking
    ([198, 51, 100, 0], 24), // documentation TEST-NET-2
    ([203, 0, 113, 0], 24),  // documentation TEST-NET-3
    ([224, 0, 0, 0], 4),     // multicast
    ([240, 0, 0, 0], 4),     // reserved, incl. 255.255.255.255 broadcast
];

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !BLOCKED_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX << (32 - u32::from(len));
        bits & mask == u32::from_be_bytes(net)
    })
}

/// IPv6 ranges that are not ordinary public unicast. Ranges that embed an IPv4
/// address are handled separately in [`is_public_v6`].
const BLOCKED_V6: &[(u128, u8)] = &[
    (0, 96), // ::/96: unspecified ::, loopback ::1, deprecated IPv4-compatible
    (0x0064_ff9b_0001 << 80, 48), // 64:ff9b:1::/48 local-use NAT64
    (0x0100 << 112, 64), // 100::/64 discard-only
    (0x2001 << 112, 23), // 2001::/23 IETF protocol assignments (Teredo, benchmarking, ORCHID)
    (0x2001_0db8 << 96, 32), // 2001:db8::/32 documentation
    (0x3fff << 112, 20), // 3fff::/20 documentation
    (0x5f00 << 112, 16), // 5f00::/16 SRv6 SIDs
    (0xfc00 << 112, 7), // fc00::/7 unique-local
    (0xfe80 << 112, 10), // fe80::/10 link-local
    (0xfec0 << 112, 10), // fec0::/10 deprecated site-local
    (0xff00 << 112, 8), // ff00::/8 multicast
];

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let in_net = |net: u128, len: u32| bits & (u128::MAX << (128 - len)) == net;

    // Forms that carry an IPv4 address the traffic may end up at are judged by
    // that address, so e.g. ::ffff:127.0.0.1 is loopback.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4); // ::ffff:0:0/96
    }
    if in_net(0x0064_ff9b << 96, 96) {
        return is_public_v4(Ipv4Addr::from(bits as u32)); // 64:ff9b::/96 NAT64
    }
    if in_net(0x2002 << 112, 16) {
        return is_public_v4(Ipv4Addr::from((bits >> 80) as u32)); // 2002::/16 6to4
    }
    !BLOCKED_V6
        .iter()
        .any(|&(net, len)| in_net(net, u32::from(len)))
}

/// Finds an error of type `T` anywhere in `err`'s source chain.
fn find_source<'e, T: StdError + 'static>(err: &'e (dyn StdError + 'static)) -> Option<&'e T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        cur = e.source();
    }
    None
}

/// "outer: inner: root cause", since reqwest's top-level Display alone is vague.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut msg = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let part = e.to_string();
        if !msg.ends_with(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        cur = e.source();
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::net::TcpListener as StdListener;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};
    use tokio::task::JoinHandle;

    const CAP: usize = 64 * 1024;
    const BIG: usize = 1024 * 1024;

    fn client(allow_private: bool) -> Outbound {
        client_with(allow_private, Duration::from_secs(10))
    }

    fn client_with(allow_private: bool, timeout: Duration) -> Outbound {
        Outbound::new(OutboundConfig {
            timeout,
            max_response_bytes: CAP,
            allow_private,
            truncate_response: false,
        })
        .expect("client builds")
    }

    fn get(url: &str) -> OutboundRequest<'_> {
        OutboundRequest {
            url,
            ..Default::default()
        }
    }

    /// Reads one HTTP/1.1 request (headers plus Content-Length body).
    async fn read_request(sock: &mut TcpStream) -> Vec<u8> {
        let mut buf = Vec::new();
        let mut tmp = [0u8; 4096];
        loop {
            if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len {
                    return buf;
                }
            }
            match sock.read(&mut tmp).await {
                Ok(0) | Err(_) => return buf,
                Ok(n) => buf.extend_from_slice(&tmp[..n]),
            }
        }
    }

    /// Accepts one connection, reads one request, writes `response`, closes.
    /// The handle yields the raw request bytes.
    async fn serve_once(response: Vec<u8>) -> (SocketAddr, JoinHandle<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            let req = read_request(&mut sock).await;
            // The client may hang up mid-body (size cap); that is expected.
            let _ = sock.write_all(&response).await;
            let _ = sock.shutdown().await;
            req
        });
        (addr, handle)
    }

    /// Accepts one connection, reads the request, writes `prefix`, then never
    /// answers further; ends when the client hangs up.
    async fn serve_stall(prefix: Vec<u8>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.expect("accept");
            read_request(&mut sock).await;
            let _ = sock.write_all(&prefix).await;
            let mut tmp = [0u8; 1024];
            while matches!(sock.read(&mut tmp).await, Ok(n) if n > 0) {}
        });
        addr
    }

    /// A listener nobody should reach; `assert_untouched` checks its backlog.
    /// A TCP connect to loopback completes the handshake in the kernel, so any
    /// connection attempt made before the call returned is already queued.
    fn sentinel(addr: &str) -> Option<StdListener> {
        let l = StdListener::bind(addr).ok()?;
        l.set_nonblocking(true).expect("nonblocking");
        Some(l)
    }

    fn assert_untouched(l: &StdListener) {
        match l.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("guarded target received a connection: {other:?}"),
        }
    }

    /// Polls `call` exactly once. Ready on the first poll proves no DNS lookup
    /// or non-loopback connect happened (both would return Pending).
    fn call_first_poll(ob: &Outbound, url: &str) -> Result<OutboundResponse, OutboundError> {
        first_poll(ob, &get(url))
    }

    fn first_poll(
        ob: &Outbound,
        req: &OutboundRequest<'_>,
    ) -> Result<OutboundResponse, OutboundError> {
        let mut fut = pin!(ob.call(req));
        match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("{}: not refused before the first await", req.url),
        }
    }

    fn ok_response(body: &str) -> Vec<u8> {
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }

    // ---- 1. allowed private target: GET and POST round trip ----

    #[tokio::test]
    async fn get_reaches_loopback_when_allowed() {
        let (addr, server) = serve_once(ok_response("hello")).await;
        let url = format!("http://{addr}/hook?x=1");
        let resp = client(true).call(&get(&url)).await.expect("call");
        assert_eq!(resp.status, 200);
        assert_eq!(resp.body, "hello");
        let req = String::from_utf8(server.await.expect("server")).expect("utf8");
        assert!(req.starts_with("GET /hook?x=1 HTTP/1.1\r\n"), "{req}");
    }

    #[tokio::test]
    async fn post_sends_body_and_headers_when_allowed() {
        let (addr, server) = serve_once(
            b"HTTP/1.1 201 Created\r\nContent-Length: 7\r\nConnection: close\r\n\r\ncreated"
                .to_vec(),
        )
        .await;
        let url = format!("http://{addr}/submit");
        let req = OutboundRequest {
            url: &url,
            body: Some(r#"{"key":"ABC"}"#),
            content_type: Some("application/json"),
            user_agent: Some("KeyAuth"),
            authorization: Some("Bearer s3cret"),
            headers: &[
                ("Keygen-Signature", "keyid=\"a\""),
                ("date", "Sun, 22 Nov 2026"),
            ],
        };
        let resp = client(true).call(&req).await.expect("call");
        assert_eq!(resp.status, 201);
        assert_eq!(resp.body, "created");

        let raw = String::from_utf8(server.await.expect("server")).expect("utf8");
        let (head, body) = raw.split_once("\r\n\r\n").expect("header end");
        let head = head.to_ascii_lowercase();
        assert!(head.starts_with("post /submit http/1.1\r\n"), "{head}");
        assert!(
            head.contains("\r\ncontent-type: application/json"),
            "{head}"
        );
        assert!(head.contains("\r\nuser-agent: keyauth"), "{head}");
        assert!(head.contains("\r\nauthorization: bearer s3cret"), "{head}");
        assert!(head.contains("\r\nkeygen-signature: keyid=\"a\""), "{head}");
        assert!(head.contains("\r\ndate: sun, 22 nov 2026"), "{head}");
        assert!(head.contains("\r\ncontent-length: 13"), "{head}");
        assert_eq!(body, r#"{"key":"ABC"}"#);
    }

    #[tokio::test]
    async fn non_utf8_body_is_decoded_lossily() {
        let (addr, _server) =
            serve_once(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\na\xffb".to_vec()).await;
        let url = format!("http://{addr}/");
        let resp = client(true).call(&get(&url)).await.expect("call");
        assert_eq!(resp.body, "a\u{fffd}b");
    }

    #[tokio::test]
    async fn invalid_header_value_is_rejected() {
        let req = OutboundRequest {
            url: "http://127.0.0.1:9/",
            authorization: Some("x\r\nInjected: 1"),
            ..Default::default()
        };
        let err = first_poll(&client(true), &req).expect_err("must fail");
        assert!(
            matches!(err, OutboundError::InvalidHeader("authorization")),
            "{err:?}"
        );
        for headers in [&[("bad name", "v")][..], &[("digest", "a\nb")][..]] {
            let req = OutboundRequest {
                url: "http://127.0.0.1:9/",
                headers,
                ..Default::default()
            };
            let err = first_poll(&client(true), &req).expect_err("must fail");
            assert!(matches!(err, OutboundError::InvalidHeader(_)), "{err:?}");
        }
    }

    // ---- 2. SSRF guard ----

    #[tokio::test]
    async fn loopback_literal_refused_without_connecting() {
        let listener = sentinel("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ob = client(false);
        let err = call_first_poll(&ob, &format!("http://127.0.0.1:{port}/")).expect_err("refused");
        match &err {
            OutboundError::Forbidden { addrs, .. } => {
                assert_eq!(addrs, &[IpAddr::from([127, 0, 0, 1])]);
                let msg = err.to_string();
                assert!(
                    msg.contains("127.0.0.1") && msg.contains("allow private"),
                    "{msg}"
                );
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        assert_untouched(&listener);
    }

    #[tokio::test]
    async fn localhost_name_refused_by_resolver_without_connecting() {
        let v4 = sentinel("127.0.0.1:0").expect("bind");
        let port = v4.local_addr().expect("addr").port();
        // `localhost` may also resolve to ::1; watch that too where IPv6 exists.
        let v6 = sentinel(&format!("[::1]:{port}"));
        let err = client(false)
            .call(&get(&format!("http://localhost:{port}/")))
            .await
            .expect_err("refused");
        match &err {
            OutboundError::Forbidden { host, addrs } => {
                assert_eq!(host, "localhost");
                assert!(
                    !addrs.is_empty() && addrs.iter().all(|a| a.is_loopback()),
                    "{addrs:?}"
                );
            }
            other => panic!("expected Forbidden, got {other:?}"),
        }
        assert_untouched(&v4);
        if let Some(v6) = &v6 {
            assert_untouched(v6);
        }
    }

    #[tokio::test]
    async fn blocked_literals_refused_before_any_io() {
        let ob = client(false);
        for url in [
            "http://[::1]:8080/",
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "https://192.168.1.1/",
            "http://0.0.0.0/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fd00::1]/",
            // WHATWG number forms are normalised by the URL parser to 127.0.0.1.
            "http://2130706433/",
            "http://0x7f.1/",
        ] {
            // The pure check first: if it ever regressed, the test stops here
            // instead of letting `call` send a SYN to a non-loopback address.
            match ob.preflight(url) {
                Err(OutboundError::Forbidden { .. }) => {}
                other => panic!("{url}: preflight expected Forbidden, got {other:?}"),
            }
            match call_first_poll(&ob, url) {
                Err(OutboundError::Forbidden { .. }) => {}
                other => panic!("{url}: expected Forbidden, got {other:?}"),
            }
        }
    }

    #[test]
    fn public_literals_pass_preflight() {
        let ob = client(false);
        for url in [
            "http://8.8.8.8/",
            "https://[2606:4700:4700::1111]/",
            "https://example.com/hook",
        ] {
            assert!(ob.preflight(url).is_ok(), "{url}");
        }
    }

    #[tokio::test]
    async fn resolver_filters_blocked_addresses() {
        let guarded = GuardedResolver {
            allow_private: false,
        };
        let name: Name = "localhost".parse().expect("name");
        let err = match guarded.resolve(name).await {
            Ok(addrs) => panic!("expected refusal, got {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e,
        };
        let blocked = err.downcast_ref::<BlockedTarget>().expect("BlockedTarget");
        assert!(blocked.addrs.iter().all(|a| a.is_loopback()));

        let open = GuardedResolver {
            allow_private: true,
        };
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<SocketAddr> = open.resolve(name).await.expect("resolves").collect();
        assert!(!addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()));
    }

    // ---- 3. response size cap ----

    async fn expect_too_large(response: Vec<u8>) {
        let (addr, _server) = serve_once(response).await;
        let url = format!("http://{addr}/");
        match client(true).call(&get(&url)).await {
            Err(OutboundError::TooLarge { limit }) => assert_eq!(limit, CAP),
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn oversized_body_with_content_length_is_rejected() {
        let mut resp = format!("HTTP/1.1 200 OK\r\nContent-Length: {BIG}\r\n\r\n").into_bytes();
        resp.resize(resp.len() + BIG, b'a');
        expect_too_large(resp).await;
    }

    #[tokio::test]
    async fn oversized_close_delimited_body_is_rejected() {
        let mut resp = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        resp.resize(resp.len() + BIG, b'a');
        expect_too_large(resp).await;
    }

    #[tokio::test]
    async fn oversized_chunked_body_is_rejected() {
        let mut resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        for _ in 0..BIG / 16384 {
            resp.extend_from_slice(b"4000\r\n");
            resp.resize(resp.len() + 16384, b'a');
            resp.extend_from_slice(b"\r\n");
        }
        resp.extend_from_slice(b"0\r\n\r\n");
        expect_too_large(resp).await;
    }

    #[tokio::test]
    async fn body_exactly_at_cap_is_accepted() {
        for with_length in [true, false] {
            let mut resp = if with_length {
                format!("HTTP/1.1 200 OK\r\nContent-Length: {CAP}\r\n\r\n").into_bytes()
            } else {
                b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec()
            };
            resp.resize(resp.len() + CAP, b'z');
            let (addr, _server) = serve_once(resp).await;
            let url = format!("http://{addr}/");
            let body = client(true).call(&get(&url)).await.expect("call").body;
            assert_eq!(body.len(), CAP, "with_length={with_length}");
        }
    }

    #[tokio::test]
    async fn oversized_body_is_cut_when_truncation_is_on() {
        let truncating = Outbound::new(OutboundConfig {
            timeout: Duration::from_secs(10),
            max_response_bytes: CAP,
            allow_private: true,
            truncate_response: true,
        })
        .expect("client builds");
        for with_length in [true, false] {
            let mut resp = if with_length {
                format!("HTTP/1.1 500 Oops\r\nContent-Length: {BIG}\r\n\r\n").into_bytes()
            } else {
                b"HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\n".to_vec()
            };
            resp.resize(resp.len() + BIG, b'q');
            let (addr, _server) = serve_once(resp).await;
            let url = format!("http://{addr}/");
            let got = truncating.call(&get(&url)).await.expect("call");
            assert_eq!(got.status, 500, "with_length={with_length}");
            assert_eq!(got.body.len(), CAP, "with_length={with_length}");
        }
    }

    // ---- 4. timeout ----

    #[tokio::test]
    async fn silent_server_times_out() {
        let addr = serve_stall(Vec::new()).await;
        let url = format!("http://{addr}/");
        let timeout = Duration::from_millis(300);
        match client_with(true, timeout).call(&get(&url)).await {
            Err(OutboundError::Timeout(d)) => assert_eq!(d, timeout),
            other => panic!("expected Timeout, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn stalled_body_times_out() {
        let addr =
            serve_stall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial".to_vec()).await;
        let url = format!("http://{addr}/");
        match client_with(true, Duration::from_millis(300))
            .call(&get(&url))
            .await
        {
            Err(OutboundError::Timeout(_)) => {}
            other => panic!("expected Timeout, got {other:?}"),
        }
    }

    // ---- 5. redirects ----

    #[tokio::test]
    async fn redirect_is_returned_not_followed() {
        let target = sentinel("127.0.0.1:0").expect("bind");
        let target_addr = target.local_addr().expect("addr");
        let (addr, _server) = serve_once(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: http://{target_addr}/next\r\nContent-Length: 5\r\n\r\nmoved"
            )
            .into_bytes(),
        )
        .await;
        let url = format!("http://{addr}/");
        let resp = client(true).call(&get(&url)).await.expect("call");
        assert_eq!(resp.status, 302);
        assert_eq!(resp.body, "moved");
        assert_untouched(&target);
    }

    // ---- 6. URL validation ----

    #[tokio::test]
    async fn invalid_urls_are_rejected() {
        let ob = client(true);
        for url in [
            "ftp://x",
            "http://user:pw@host/",
            "http://user@host/",
            "not a url",
            "file:///etc/passwd",
            "http://",
            "",
        ] {
            match call_first_poll(&ob, url) {
                Err(OutboundError::InvalidUrl(_)) => {}
                other => panic!("{url:?}: expected InvalidUrl, got {other:?}"),
            }
        }
    }

    #[test]
    fn zero_timeout_is_a_build_error() {
        let cfg = OutboundConfig {
            timeout: Duration::ZERO,
            ..Default::default()
        };
        assert!(matches!(Outbound::new(cfg), Err(OutboundError::Build(_))));
    }

    // ---- is_public_ip ----

    fn blocked(addrs: &[&str]) {
        for a in addrs {
            let ip: IpAddr = a.parse().expect("test address");
            assert!(!is_public_ip(ip), "{a} should be blocked");
        }
    }

    fn public(addrs: &[&str]) {
        for a in addrs {
            let ip: IpAddr = a.parse().expect("test address");
            assert!(is_public_ip(ip), "{a} should be public");
        }
    }

    #[test]
    fn v4_loopback() {
        blocked(&["127.0.0.1", "127.255.255.255", "127.1.2.3"]);
    }

    #[test]
    fn v4_unspecified_and_this_network() {
        blocked(&["0.0.0.0", "0.1.2.3", "0.255.255.255"]);
        public(&["1.0.0.1"]);
    }

    #[test]
    fn v4_private() {
        blocked(&["10.0.0.0", "10.255.255.255", "172.16.0.0", "172.31.255.255"]);
        blocked(&["192.168.0.0", "192.168.255.255"]);
        public(&["9.255.255.255", "11.0.0.0", "172.15.255.255", "172.32.0.0"]);
        public(&["192.167.255.255", "192.169.0.0"]);
    }

    #[test]
    fn v4_link_local_and_metadata() {
        blocked(&["169.254.0.0", "169.254.169.254", "169.254.255.255"]);
        public(&["169.253.255.255", "169.255.0.0"]);
    }

    #[test]
    fn v4_cgnat() {
        blocked(&["100.64.0.0", "100.127.255.255"]);
        public(&["100.63.255.255", "100.128.0.0"]);
    }

    #[test]
    fn v4_multicast_broadcast_reserved() {
        blocked(&[
            "224.0.0.1",
            "239.255.255.255",
            "240.0.0.1",
            "255.255.255.255",
        ]);
        public(&["223.255.255.255"]);
    }

    #[test]
    fn v4_documentation_and_benchmark() {
        blocked(&["192.0.2.0", "192.0.2.255", "198.51.100.7", "203.0.113.255"]);
        blocked(&["198.18.0.0", "198.19.255.255", "192.0.0.8", "192.88.99.1"]);
        public(&["198.17.255.255", "198.20.0.0", "203.0.114.0", "192.0.3.0"]);
    }

    #[test]
    fn v4_public() {
        public(&["8.8.8.8", "1.1.1.1", "93.184.215.14", "151.101.1.69"]);
    }

    #[test]
    fn v6_loopback_and_unspecified() {
        blocked(&["::1", "::", "::127.0.0.1"]);
    }

    #[test]
    fn v6_link_local_unique_local_site_local() {
        blocked(&[
            "fe80::1",
            "febf:ffff::1",
            "fc00::1",
            "fdff:ffff::1",
            "fec0::1",
        ]);
    }

    #[test]
    fn v6_multicast() {
        blocked(&["ff02::1", "ff0e::1"]);
    }

    #[test]
    fn v6_documentation_and_special() {
        blocked(&["2001:db8::1", "2001:db8:ffff::1", "3fff::1"]);
        blocked(&["2001::1", "2001:2::1", "100::1", "64:ff9b:1::1"]);
        public(&["2001:db9::1", "2001:200::1"]);
    }

    #[test]
    fn v6_embedded_v4_judged_by_v4() {
        // IPv4-mapped
        blocked(&[
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ]);
        public(&["::ffff:8.8.8.8"]);
        // NAT64 well-known prefix
        blocked(&["64:ff9b::127.0.0.1", "64:ff9b::a00:1"]);
        public(&["64:ff9b::8.8.8.8"]);
        // 6to4: 2002:AABB:CCDD:: embeds AA.BB.CC.DD
        blocked(&["2002:7f00:1::", "2002:a9fe:a9fe::1"]);
        public(&["2002:808:808::1"]);
    }

    #[test]
    fn v6_public() {
        public(&[
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
            "2620:fe::fe",
        ]);
    }
}
