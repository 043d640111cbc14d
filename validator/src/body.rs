//! A request's body: read at most once by its handler, and settled before the answer goes out.
//!
//! Handlers may answer without reading the body (the rate limiters, an unsupported content type,
//! an unknown route). Left unread, hyper would close the keep-alive connection after the answer
//! without saying so, and a client reusing it (a pooled SDK connection) would see "connection
//! closed" instead of the 429 it was sent. So whatever the handler left unread is drained, up to
//! the route's cap and within a deadline; when that cannot be done (a body declared or found too
//! large, one that stalls or breaks) the answer says `Connection: close`.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body, Incoming};
use hyper::header::{HeaderMap, HeaderValue, CONNECTION, CONTENT_LENGTH};
use hyper::Response;

/// A body still arriving after this long is given up (slow-body protection, as the headers'
/// read timeout is for the head).
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds {0} bytes")]
    TooLarge(usize),
    #[error("the request body did not arrive within {} s", READ_DEADLINE.as_secs())]
    TimedOut,
    #[error("could not read the request body: {0}")]
    Unreadable(String),
}

pub struct RequestBody {
    incoming: Option<Incoming>,
    declared: Option<u64>,
    /// Part of the body was read and the rest abandoned: the connection cannot be reused.
    broken: bool,
}

impl RequestBody {
    pub fn new(incoming: Incoming, headers: &HeaderMap) -> RequestBody {
        let declared = headers
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        RequestBody {
            incoming: Some(incoming),
            declared,
            broken: false,
        }
    }

    /// The whole body, at most `limit` bytes. A second call reads nothing.
    pub async fn read(&mut self, limit: usize) -> Result<Bytes, BodyError> {
        let Some(incoming) = self.incoming.take() else {
            return Ok(Bytes::new());
        };
        if self.declared.is_some_and(|n| n > limit as u64) {
            self.broken = true;
            return Err(BodyError::TooLarge(limit));
        }
        match tokio::time::timeout(READ_DEADLINE, Limited::new(incoming, limit).collect()).await {
            Ok(Ok(collected)) => Ok(collected.to_bytes()),
            Ok(Err(e)) => {
                self.broken = true;
                if e.is::<http_body_util::LengthLimitError>() {
                    Err(BodyError::TooLarge(limit))
                } else {
                    Err(BodyError::Unreadable(e.to_string()))
                }
            }
            Err(_) => {
                self.broken = true;
                Err(BodyError::TimedOut)
            }
        }
    }

    /// Drains what the handler left unread (at most `limit` bytes) so the connection can carry
    /// the next request; marks the answer `Connection: close` when that is not possible.
    pub async fn settle<B>(mut self, limit: usize, resp: &mut Response<B>) {
        let unread = self.incoming.as_ref().is_some_and(|b| !b.is_end_stream());
        let reusable = !self.broken && (!unread || self.read(limit).await.is_ok());
        if !reusable {
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
    }
}
