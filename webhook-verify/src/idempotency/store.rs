//! The store contract and the stored-response encoding.

use std::future::Future;
use std::time::Duration;

use crate::error::Result;
use crate::replay::ClaimToken;

/// A stored response, replayed to later requests with the same key.
///
/// When the first response's body was larger than the layer's `max_body`,
/// the record holds the status and headers only ([`StoredResponse::body_omitted`]):
/// completion is still recorded (the side effect must not run twice), and a
/// replay answers the stored status with an empty body and the header
/// `idempotency-body-omitted: ?1`.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredResponse {
    /// Status code.
    pub status: u16,
    /// Header names and values, in order (never a denied header such as
    /// `set-cookie`).
    pub headers: Vec<(String, Vec<u8>)>,
    /// The body (empty when [`StoredResponse::body_omitted`]).
    pub body: Vec<u8>,
    /// The body was too large to store; only status and headers are kept.
    pub body_omitted: bool,
}

impl std::fmt::Debug for StoredResponse {
    // Bodies may hold personal data: print sizes only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredResponse")
            .field("status", &self.status)
            .field("headers", &self.headers.len())
            .field("body_len", &self.body.len())
            .field("body_omitted", &self.body_omitted)
            .finish()
    }
}

/// The outcome of starting a keyed request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Begin {
    /// First use of the key (or takeover of an expired lease): run the
    /// request, renew the lease while it runs, then `finish` or `abort`.
    New(ClaimToken),
    /// The first request with this key is still running under a live lease (`409`).
    InFlight,
    /// The key was used with another fingerprint (`422`).
    Mismatch,
    /// The stored response of the first request (replay it).
    Completed(StoredResponse),
}

/// A store of idempotency records, keyed by `(scope, key)`.
///
/// A record is in flight (fingerprint, token, lease) or done (fingerprint,
/// response, expiry). An in-flight record whose lease ran out is taken over by
/// the next `begin`, so a crashed worker blocks its key for one lease, not for
/// the whole expiry.
pub trait IdempotencyStore: Send + Sync + 'static {
    /// Start a request with an in-flight lease of `lease`. Atomic: of
    /// concurrent `begin`s of one key, at most one returns [`Begin::New`]
    /// until the lease runs out or the request is aborted.
    fn begin(
        &self,
        scope: &str,
        key: &str,
        fingerprint: [u8; 32],
        lease: Duration,
    ) -> impl Future<Output = Result<Begin>> + Send;

    /// Extend the lease of a running [`Begin::New`] request to `lease` from
    /// now. `false` when `token` no longer owns the record.
    fn renew(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        lease: Duration,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Store the response of a [`Begin::New`] request, kept for `expiry`.
    fn finish(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
        response: StoredResponse,
        expiry: Duration,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Forget a [`Begin::New`] request that failed (or was dropped), so the
    /// client may retry.
    fn abort(
        &self,
        scope: &str,
        key: &str,
        token: &ClaimToken,
    ) -> impl Future<Output = Result<()>> + Send;
}

/// First byte of the current encoding; the legacy encoding starts with the
/// status's high byte (at most 0x03), so the two never collide.
const FORMAT_V1: u8 = 0xb1;
const FLAG_BODY_OMITTED: u8 = 1;

impl StoredResponse {
    /// A response with its body.
    pub fn new(status: u16, headers: Vec<(String, Vec<u8>)>, body: Vec<u8>) -> Self {
        Self {
            status,
            headers,
            body,
            body_omitted: false,
        }
    }

    /// A response whose body was too large to store.
    pub fn without_body(status: u16, headers: Vec<(String, Vec<u8>)>) -> Self {
        Self {
            status,
            headers,
            body: Vec::new(),
            body_omitted: true,
        }
    }

    /// Binary encoding for shared stores: `0xb1`, flags (1), status (2 bytes,
    /// big-endian), header count (4), each header as name length (4), name,
    /// value length (4), value, then the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 64);
        out.push(FORMAT_V1);
        out.push(if self.body_omitted {
            FLAG_BODY_OMITTED
        } else {
            0
        });
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

    /// Inverse of [`StoredResponse::encode`] (also reads records written
    /// before the format byte existed); `None` on any inconsistency.
    pub fn decode(mut b: &[u8]) -> Option<Self> {
        fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (h, t) = (b.get(..n)?, b.get(n..)?);
            *b = t;
            Some(h)
        }
        fn u32_at(b: &mut &[u8]) -> Option<usize> {
            let raw: [u8; 4] = take(b, 4)?.try_into().ok()?;
            usize::try_from(u32::from_be_bytes(raw)).ok()
        }
        let mut body_omitted = false;
        if b.first() == Some(&FORMAT_V1) {
            let flags = *take(&mut b, 2)?.get(1)?;
            if flags & !FLAG_BODY_OMITTED != 0 {
                return None;
            }
            body_omitted = flags & FLAG_BODY_OMITTED != 0;
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
        if body_omitted && !b.is_empty() {
            return None;
        }
        Some(Self {
            status,
            headers,
            body: b.to_vec(),
            body_omitted,
        })
    }
}

fn len32(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_response_encoding_round_trips_and_rejects_truncation() {
        let r = StoredResponse::new(
            201,
            vec![
                ("content-type".into(), b"application/json".to_vec()),
                ("x".into(), vec![0, 255]),
            ],
            b"{\"ok\":true}".to_vec(),
        );
        let enc = r.encode();
        assert_eq!(StoredResponse::decode(&enc), Some(r.clone()));
        assert_eq!(StoredResponse::decode(&enc[..5]), None);
        assert_eq!(StoredResponse::decode(&[0, 200, 255, 255, 255, 255]), None);
        let omitted = StoredResponse::without_body(200, vec![("x".into(), b"1".to_vec())]);
        let enc = omitted.encode();
        assert_eq!(StoredResponse::decode(&enc), Some(omitted));
        // A body-omitted record with body bytes, or an unknown flag, is refused.
        assert_eq!(StoredResponse::decode(&[&enc[..], b"x"].concat()), None);
        let mut bad = enc.clone();
        bad[1] = 2;
        assert_eq!(StoredResponse::decode(&bad), None);
    }

    /// Stored bodies and header values may hold personal data: `Debug`
    /// shows the status and sizes only.
    #[test]
    fn debug_shows_status_and_sizes_not_contents() {
        let r = StoredResponse::new(
            201,
            vec![("x-user".into(), b"alice@example.com".to_vec())],
            b"secret body".to_vec(),
        );
        let s = format!("{r:?}");
        assert_eq!(
            s,
            "StoredResponse { status: 201, headers: 1, body_len: 11, body_omitted: false }"
        );
    }

    #[test]
    fn legacy_records_without_the_format_byte_still_decode() {
        let legacy = [&[0u8, 201][..], &[0, 0, 0, 0], b"body"].concat();
        assert_eq!(
            StoredResponse::decode(&legacy),
            Some(StoredResponse::new(201, Vec::new(), b"body".to_vec()))
        );
    }
}
