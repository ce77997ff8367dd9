//! Idempotency records in Redis and PostgreSQL (features `tower` + `redis` /
//! `postgres`). A record is in flight (fingerprint + token, kept for the
//! lease, renewed while the request runs) or done (fingerprint + encoded
//! response, kept for the layer's expiry).

#[cfg(feature = "postgres")]
pub use pg::PgIdempotencyStore;
#[cfg(feature = "redis")]
pub use redis_store::RedisIdempotencyStore;

#[cfg(feature = "redis")]
mod redis_store {
    use std::time::Duration;

    use redis::aio::MultiplexedConnection;

    use super::super::store::{Begin, IdempotencyStore, StoredResponse};
    use crate::error::{Error, Result};
    use crate::replay::{ClaimToken, TokenRepr, random_token, redis_prefix, store_error};

    /// Hex digits of the fingerprint at the end of a token's text.
    const FP_HEX: usize = 64;

    /// A token that also carries the request's fingerprint (not secret: it
    /// is a hash of the request), so a `finish` whose record lapsed can
    /// still record the response under it.
    fn token_for(fingerprint: &[u8; 32]) -> Result<ClaimToken> {
        let random = random_token()?.text();
        Ok(ClaimToken(
            TokenRepr::Random(format!(
                "{random}{}",
                crate::encoding::hex_lower(fingerprint)
            )),
            0,
        ))
    }

    /// The fingerprint a token from [`token_for`] carries (empty otherwise).
    fn fingerprint_of(token: &ClaimToken) -> Vec<u8> {
        let text = token.text();
        text.len()
            .checked_sub(FP_HEX)
            .and_then(|at| text.get(at..))
            .and_then(|h| crate::encoding::hex_lower_exact::<32>(h.as_bytes()))
            .map(|fp| fp.to_vec())
            .unwrap_or_default()
    }

    // Value layout: b"i" + fingerprint (32) + token while in flight,
    // b"d" + fingerprint (32) + encoded response when done.
    const BEGIN: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return ''
end
return v";

    // Renew, finish or abort, only for the token's owner: the record must be
    // in flight (`i`) and hold exactly this token after the fingerprint.
    // One exception: `finish` of a record that is gone (its lease lapsed and
    // no one began the key since) records the response under the
    // fingerprint the token carries (ARGV[5]): the handler ran, so the key
    // must not run it again.
    const OWNED: &str = r"
local v = redis.call('GET', KEYS[1])
if (not v) and ARGV[2] == 'finish' and string.len(ARGV[5]) == 32 then
  redis.call('SET', KEYS[1], 'd' .. ARGV[5] .. ARGV[3], 'PX', ARGV[4])
  return 1
end
if (not v) or string.sub(v, 1, 1) ~= 'i' or string.sub(v, 34) ~= ARGV[1] then
  return 0
end
if ARGV[2] == 'abort' then
  redis.call('DEL', KEYS[1])
elseif ARGV[2] == 'renew' then
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  redis.call('SET', KEYS[1], 'd' .. string.sub(v, 2, 33) .. ARGV[3], 'PX', ARGV[4])
end
return 1";

    /// An [`IdempotencyStore`] on Redis; keys are `<prefix>i<len>:<scope><key>`
    /// (the `i` keeps them apart from a [`crate::replay::RedisReplayStore`]'s
    /// keys under the same prefix).
    /// In-flight records carry the lease as their TTL (`PX`); done records
    /// the expiry.
    pub struct RedisIdempotencyStore {
        conn: MultiplexedConnection,
        prefix: String,
        begin: redis::Script,
        owned: redis::Script,
    }

    impl std::fmt::Debug for RedisIdempotencyStore {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("RedisIdempotencyStore")
                .field("prefix", &self.prefix)
                .finish_non_exhaustive()
        }
    }

    impl RedisIdempotencyStore {
        /// A store on `conn` with every key under `prefix`.
        pub fn new(conn: MultiplexedConnection, prefix: &str) -> Result<Self> {
            Ok(Self {
                conn,
                prefix: redis_prefix(prefix)?,
                begin: redis::Script::new(BEGIN),
                owned: redis::Script::new(OWNED),
            })
        }

        /// `i` after the prefix: a replay store's keys have a digit there,
        /// so the two stores never share a key even under one prefix.
        fn key(&self, scope: &str, key: &str) -> String {
            format!("{}i{}:{scope}{key}", self.prefix, scope.len())
        }

        async fn owned(
            &self,
            scope: &str,
            key: &str,
            token: &ClaimToken,
            op: &'static str,
            payload: &[u8],
            ttl: Duration,
        ) -> Result<bool> {
            let mut conn = self.conn.clone();
            let fingerprint = if op == "finish" {
                fingerprint_of(token)
            } else {
                Vec::new()
            };
            let n: i64 = self
                .owned
                .key(self.key(scope, key))
                .arg(token.text())
                .arg(op)
                .arg(payload)
                .arg(ms(ttl).max(1))
                .arg(fingerprint)
                .invoke_async(&mut conn)
                .await
                .map_err(|e| store_error("idempotency update", &e))?;
            Ok(n == 1)
        }
    }

    fn in_flight(fp: &[u8; 32], token: &ClaimToken) -> Vec<u8> {
        [&b"i"[..], fp, token.text().as_bytes()].concat()
    }

    fn ms(d: Duration) -> u64 {
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    impl IdempotencyStore for RedisIdempotencyStore {
        async fn begin(
            &self,
            scope: &str,
            key: &str,
            fingerprint: [u8; 32],
            lease: Duration,
        ) -> Result<Begin> {
            let token = token_for(&fingerprint)?;
            let mut conn = self.conn.clone();
            let v: Vec<u8> = self
                .begin
                .key(self.key(scope, key))
                .arg(in_flight(&fingerprint, &token))
                .arg(ms(lease).max(1))
                .invoke_async(&mut conn)
                .await
                .map_err(|e| store_error("idempotency begin", &e))?;
            if v.is_empty() {
                return Ok(Begin::New(token));
            }
            let (kind, fp, rest) = match (v.first(), v.get(1..33), v.get(33..)) {
                (Some(k), Some(fp), Some(rest)) => (*k, fp, rest),
                _ => return Err(Error::StoreUnavailable),
            };
            if !bool::from(subtle::ConstantTimeEq::ct_eq(fp, &fingerprint[..])) {
                return Ok(Begin::Mismatch);
            }
            match kind {
                b'i' => Ok(Begin::InFlight),
                b'd' => StoredResponse::decode(rest)
                    .map(Begin::Completed)
                    .ok_or(Error::StoreUnavailable),
                _ => Err(Error::StoreUnavailable),
            }
        }

        async fn renew(
            &self,
            scope: &str,
            key: &str,
            token: &ClaimToken,
            lease: Duration,
        ) -> Result<bool> {
            self.owned(scope, key, token, "renew", b"", lease).await
        }

        async fn finish(
            &self,
            scope: &str,
            key: &str,
            token: &ClaimToken,
            response: StoredResponse,
            expiry: Duration,
        ) -> Result<()> {
            self.owned(scope, key, token, "finish", &response.encode(), expiry)
                .await
                .map(drop)
        }

        async fn abort(&self, scope: &str, key: &str, token: &ClaimToken) -> Result<()> {
            self.owned(scope, key, token, "abort", b"", Duration::ZERO)
                .await
                .map(drop)
        }
    }
}

#[cfg(feature = "postgres")]
mod pg {
    use std::time::Duration;

    use sqlx::{PgPool, Row};

    use super::super::store::{Begin, IdempotencyStore, StoredResponse};
    use crate::error::{Error, Result};
    use crate::replay::{ClaimToken, random_token, store_error};

    const MIGRATION: &str = include_str!("../../migrations/0002_idempotency.sql");

    /// An [`IdempotencyStore`] on PostgreSQL (table `hisn_idempotency`).
    #[derive(Debug, Clone)]
    pub struct PgIdempotencyStore {
        pool: PgPool,
    }

    fn ms(d: Duration) -> i64 {
        i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
    }

    impl PgIdempotencyStore {
        /// The migration SQL (`migrations/0002_idempotency.sql`).
        pub const MIGRATION: &'static str = MIGRATION;

        /// A store on `pool`; run [`PgIdempotencyStore::migrate`] first.
        pub fn new(pool: PgPool) -> Self {
            Self { pool }
        }

        /// Create the table if it does not exist.
        pub async fn migrate(&self) -> Result<()> {
            sqlx::raw_sql(MIGRATION)
                .execute(&self.pool)
                .await
                .map_err(|e| store_error("migrate", &e))?;
            Ok(())
        }
    }

    impl IdempotencyStore for PgIdempotencyStore {
        async fn begin(
            &self,
            scope: &str,
            key: &str,
            fingerprint: [u8; 32],
            lease: Duration,
        ) -> Result<Begin> {
            let err = |e: sqlx::Error| store_error("idempotency begin", &e);
            for _ in 0..3 {
                let token = random_token()?;
                sqlx::query("delete from hisn_idempotency where scope = $1 and key = $2 and expires_at <= now()")
                    .bind(scope)
                    .bind(key)
                    .execute(&self.pool)
                    .await
                    .map_err(err)?;
                let ins = sqlx::query(
                    "insert into hisn_idempotency (scope, key, fingerprint, token, expires_at) \
                     values ($1, $2, $3, $4, now() + $5 * interval '1 millisecond') on conflict do nothing",
                )
                .bind(scope)
                .bind(key)
                .bind(&fingerprint[..])
                .bind(token.text())
                .bind(ms(lease))
                .execute(&self.pool)
                .await
                .map_err(err)?;
                if ins.rows_affected() == 1 {
                    return Ok(Begin::New(token));
                }
                let row = sqlx::query(
                    "select fingerprint, response from hisn_idempotency \
                     where scope = $1 and key = $2 and expires_at > now()",
                )
                .bind(scope)
                .bind(key)
                .fetch_optional(&self.pool)
                .await
                .map_err(err)?;
                let Some(row) = row else { continue };
                let fp: Vec<u8> = row.try_get(0).map_err(err)?;
                let response: Option<Vec<u8>> = row.try_get(1).map_err(err)?;
                if !bool::from(subtle::ConstantTimeEq::ct_eq(&fp[..], &fingerprint[..])) {
                    return Ok(Begin::Mismatch);
                }
                return match response {
                    None => Ok(Begin::InFlight),
                    Some(r) => StoredResponse::decode(&r)
                        .map(Begin::Completed)
                        .ok_or(Error::StoreUnavailable),
                };
            }
            Err(Error::StoreUnavailable)
        }

        async fn renew(
            &self,
            scope: &str,
            key: &str,
            token: &ClaimToken,
            lease: Duration,
        ) -> Result<bool> {
            let r = sqlx::query(
                "update hisn_idempotency set expires_at = now() + $4 * interval '1 millisecond' \
                 where scope = $1 and key = $2 and token = $3 and response is null",
            )
            .bind(scope)
            .bind(key)
            .bind(token.text())
            .bind(ms(lease))
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("idempotency renew", &e))?;
            Ok(r.rows_affected() == 1)
        }

        async fn finish(
            &self,
            scope: &str,
            key: &str,
            token: &ClaimToken,
            response: StoredResponse,
            expiry: Duration,
        ) -> Result<()> {
            sqlx::query(
                "update hisn_idempotency set response = $4, token = '', expires_at = now() + $5 * interval '1 millisecond' \
                 where scope = $1 and key = $2 and token = $3 and response is null",
            )
            .bind(scope)
            .bind(key)
            .bind(token.text())
            .bind(response.encode())
            .bind(ms(expiry))
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("idempotency finish", &e))?;
            Ok(())
        }

        async fn abort(&self, scope: &str, key: &str, token: &ClaimToken) -> Result<()> {
            sqlx::query("delete from hisn_idempotency where scope = $1 and key = $2 and token = $3 and response is null")
                .bind(scope)
                .bind(key)
                .bind(token.text())
                .execute(&self.pool)
                .await
                .map_err(|e| store_error("idempotency abort", &e))?;
            Ok(())
        }
    }
}
