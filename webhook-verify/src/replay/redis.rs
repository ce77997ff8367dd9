//! Redis replay store: `SET key value NX PX lease` claims atomically; done and
//! release go through small Lua scripts that check the claim token first.

use redis::aio::MultiplexedConnection;

use super::{Claim, ClaimToken, ReplayKey, ReplayPolicy, ReplayStore, random_token, store_error};
use crate::error::{Error, Result};

// Our claim, or no key at all (the lease lapsed and no one took it over: the
// handler ran, so the event is recorded done). Another claim or a done marker
// is left alone.
const COMPLETE: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) or v == ARGV[1] then
  redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
  return 1
end
return 0";

const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0";

/// Check a key prefix given for a Redis store (replay or idempotency): at most
/// 128 printable characters, so keys stay readable and bounded.
pub(crate) fn redis_prefix(prefix: &str) -> Result<String> {
    if prefix.len() > 128 || prefix.chars().any(char::is_control) {
        return Err(Error::InvalidConfig(
            "redis key prefix must be at most 128 printable characters",
        ));
    }
    Ok(prefix.to_owned())
}

/// A [`ReplayStore`] on Redis. Keys are `<prefix><len>:<scope><len>:<provider><event id>`;
/// values are `p:<token>` while in progress and `d` when done. Expiry is
/// Redis's own (`PX`), so the Redis clock governs leases and TTLs.
pub struct RedisReplayStore {
    conn: MultiplexedConnection,
    prefix: String,
    complete: redis::Script,
    release: redis::Script,
}

impl std::fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisReplayStore {
    /// A store on `conn` with every key under `prefix` (for example `hisn:replay:`).
    pub fn new(conn: MultiplexedConnection, prefix: &str) -> Result<Self> {
        Ok(Self {
            conn,
            prefix: redis_prefix(prefix)?,
            complete: redis::Script::new(COMPLETE),
            release: redis::Script::new(RELEASE),
        })
    }

    fn key(&self, key: &ReplayKey<'_>) -> String {
        format!("{}{}", self.prefix, key.flat())
    }
}

impl ReplayStore for RedisReplayStore {
    async fn claim(&self, key: &ReplayKey<'_>, policy: &ReplayPolicy) -> Result<Claim> {
        let k = self.key(key);
        let mut conn = self.conn.clone();
        // The key can expire between SET NX failing and GET; then try again.
        for _ in 0..3 {
            let token = random_token()?;
            let set: Option<String> = redis::cmd("SET")
                .arg(&k)
                .arg(format!("p:{}", token.text()))
                .arg("NX")
                .arg("PX")
                .arg(policy.lease_millis())
                .query_async(&mut conn)
                .await
                .map_err(|e| store_error("claim", &e))?;
            if set.is_some() {
                return Ok(Claim::New(token));
            }
            let cur: Option<String> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .map_err(|e| store_error("claim", &e))?;
            match cur.as_deref() {
                Some("d") => return Ok(Claim::Done),
                Some(v) if v.starts_with("p:") => return Ok(Claim::InProgress),
                Some(_) => return Err(Error::StoreUnavailable),
                None => {}
            }
        }
        Err(Error::StoreUnavailable)
    }

    async fn complete(
        &self,
        key: &ReplayKey<'_>,
        token: &ClaimToken,
        policy: &ReplayPolicy,
    ) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .complete
            .key(self.key(key))
            .arg(format!("p:{}", token.text()))
            .arg(policy.done_ttl_millis(token))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| store_error("complete", &e))?;
        Ok(n == 1)
    }

    async fn release(&self, key: &ReplayKey<'_>, token: &ClaimToken) -> Result<bool> {
        let mut conn = self.conn.clone();
        let n: i64 = self
            .release
            .key(self.key(key))
            .arg(format!("p:{}", token.text()))
            .invoke_async(&mut conn)
            .await
            .map_err(|e| store_error("release", &e))?;
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key prefix is 0..=128 characters, none of them a control character.
    #[test]
    fn key_prefix_is_at_most_128_printable_characters() {
        assert_eq!(redis_prefix(""), Ok(String::new()));
        let longest = "p".repeat(128);
        assert_eq!(redis_prefix(&longest), Ok(longest.clone()));
        assert!(redis_prefix(&format!("{longest}p")).is_err());
        assert!(redis_prefix("hisn:replay:").is_ok());
        assert!(redis_prefix("hisn:\nreplay:").is_err());
        assert!(redis_prefix("\u{7f}").is_err());
    }
}
