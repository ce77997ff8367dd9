//! Where idempotency records live.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::clock::{Clock, SystemClock};
use crate::error::{Error, Result};
use crate::replay::{ClaimToken, TokenRepr};

/// A stored response, replayed byte-for-byte.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body.
    pub body: Vec<u8>,
}

impl std::fmt::Debug for StoredResponse {
    // Bodies may hold personal data: print sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// The outcome of starting a keyed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begin {
    /// First use of the key: run the request, then `finish` or `abort`.
    New(ClaimToken),
    /// The first request with this key is still running (`409`).
    InFlight,
    /// The key was used with another fingerprint (`422`).
    Mismatch,
    /// The stored response of the first request (replay it).
    Completed(StoredResponse),
}

/// A store of idempotency records, keyed by `(scope, key)`.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Start a request. Atomic: of concurrent `begin`s of one key, at most one
    /// returns [`Begin::New`].
    fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        expiry: Duration,
    ) -> impl Future<Output = Result<Begin>> + Send;

    /// Store the response of a [`Begin::New`] request.
    fn finish(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        response: StoredResponse,
        expiry: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Forget a [`Begin::New`] request that failed, so the client may retry.
    fn abort(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<()>> + Send;
}

#[derive(Debug)]
enum Record {
    InFlight {
        token: u64,
        fingerprint: [u8; 32],
        until_ms: u64,
    },
    Done {
        fingerprint: [u8; 32],
        response: StoredResponse,
        until_ms: u64,
    },
}

impl Record {
    fn until(&self) -> u64 {
        match self {
            Self::InFlight { until_ms, .. } | Self::Done { until_ms, .. } => *until_ms,
        }
    }
}

/// Bounded in-memory [`IdempotencyStore`] (one process).
#[derive(Debug)]
pub struct MemoryIdempotencyStore {
    map: Mutex<HashMap<(String, String), Record>>,
    max_entries: usize,
    clock: Arc<dyn Clock>,
    next: AtomicU64,
}

impl MemoryIdempotencyStore {
    /// A store of at most `max_entries` records on the system clock.
    pub fn new(max_entries: usize) -> Self {
        Self::with_clock(max_entries, Arc::new(SystemClock))
    }

    /// A store with an injected clock.
    pub fn with_clock(max_entries: usize, clock: Arc<dyn Clock>) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            max_entries: max_entries.max(1),
            clock,
            next: AtomicU64::new(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), Record>> {
        self.map
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn begin_now(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        expiry: Duration,
    ) -> Result<Begin> {
        let now = self.clock.now_unix_millis();
        let until_ms = now.saturating_add(u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX));
        let mut map = self.lock();
        let k = (scope.to_owned(), key.to_owned());
        if let Some(r) = map.get(&k)
            && r.until() > now
        {
            let (fp, done) = match r {
                Record::InFlight { fingerprint, .. } => (fingerprint, None),
                Record::Done {
                    fingerprint,
                    response,
                    ..
                } => (fingerprint, Some(response)),
            };
            if !bool::from(subtle::ConstantTimeEq::ct_eq(&fp[..], &fingerprint[..])) {
                return Ok(Begin::Mismatch);
            }
            return Ok(done.map_or(Begin::InFlight, |resp| Begin::Completed(resp.clone())));
        }
        if map.len() >= self.max_entries {
            map.retain(|_, r| r.until() > now);
            if map.len() >= self.max_entries {
                return Err(Error::StoreFull);
            }
        }
        let token = self.next.fetch_add(1, Ordering::Relaxed);
        map.insert(
            k,
            Record::InFlight {
                token,
                fingerprint,
                until_ms,
            },
        );
        Ok(Begin::New(ClaimToken::local(token)))
    }

    fn end(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        response: Option<(StoredResponse, Duration)>,
    ) {
        let now = self.clock.now_unix_millis();
        let mut map = self.lock();
        let k = (scope.to_owned(), key.to_owned());
        let fp = match map.get(&k) {
            Some(Record::InFlight {
                token: t,
                fingerprint,
                ..
            }) if token.0 == TokenRepr::Local(*t) => *fingerprint,
            _ => return,
        };
        match response {
            Some((response, expiry)) => {
                let until_ms =
                    now.saturating_add(u64::try_from(expiry.as_millis()).unwrap_or(u64::MAX));
                map.insert(
                    k,
                    Record::Done {
                        fingerprint: fp,
                        response,
                        until_ms,
                    },
                );
            }
            None => {
                map.remove(&k);
            }
        }
    }
}

impl IdempotencyStore for MemoryIdempotencyStore {
    fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        expiry: Duration,
    ) -> impl Future<Output = Result<Begin>> + Send {
        std::future::ready(self.begin_now(scope, key, fingerprint, expiry))
    }

    fn finish(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        response: StoredResponse,
        expiry: Duration,
    ) -> impl Future<Output = Result<()>> + Send {
        self.end(scope, key, token, Some((response, expiry)));
        std::future::ready(Ok(()))
    }

    fn abort(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<()>> + Send {
        self.end(scope, key, token, None);
        std::future::ready(Ok(()))
    }
}

impl StoredResponse {
    /// Binary encoding for shared stores: status (2 bytes, big-endian), header
    /// count (4), each header as name length (4), name, value length (4), value,
    /// then the body.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.extend_from_slice(&self.status.to_be_bytes());
        out.extend_from_slice(&len32(self.headers.len()));
        for (n, v) in &self.headers {
            out.extend_from_slice(&len32(n.len()));
            out.extend_from_slice(n.as_bytes());
            out.extend_from_slice(&len32(v.len()));
            out.extend_from_slice(v);
        }
        out.extend_from_slice(&self.body);
        out
    }

    /// Inverse of [`StoredResponse::encode`]; `None` on any inconsistency.
    #[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
    pub(crate) fn decode(mut b: &[u8]) -> Option<Self> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (h, t) = (b.get(..n)?, b.get(n..)?);
            *b = t;
            Some(h)
        }
        fn u32_at(b: &mut &[u8]) -> Option<usize> {
            let raw: [u8; 4] = take(b, 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(raw)).ok()
        }
        let status = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
        let count = u32_at(&mut b)?;
        let mut headers = Vec::with_capacity(count.min(256));
        for _ in 0..count {
            let nl = u32_at(&mut b)?;
            let name = String::from_utf8(take(&mut b, nl)?.to_vec()).ok()?;
            let vl = u32_at(&mut b)?;
            headers.push((name, take(&mut b, vl)?.to_vec()));
        }
        Some(Self {
            status,
            headers,
            body: b.to_vec(),
        })
    }
}

#[cfg_attr(not(any(feature = "redis", feature = "postgres")), allow(dead_code))]
fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_response_encoding_round_trips_and_rejects_truncation() {
        let r = StoredResponse {
            status: 201,
            headers: vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("x".into(), vec![0, 255]),
            ],
            body: b"{\"ok\":true}".to_vec(),
        };
        let enc = r.encode();
        assert_eq!(StoredResponse::decode(&enc), Some(r));
        assert_eq!(StoredResponse::decode(&enc[..5]), None);
        assert_eq!(StoredResponse::decode(&[0, 200, 255, 255, 255, 255]), None);
    }
}
