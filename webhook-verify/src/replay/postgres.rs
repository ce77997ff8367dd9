//! PostgreSQL replay store: `INSERT .. ON CONFLICT DO NOTHING` claims
//! atomically under the primary key `(scope, provider, event_id)`.

use sqlx::PgPool;

use super::{Claim, ClaimToken, ReplayKey, ReplayPolicy, ReplayStore, random_token, store_error};
use crate::error::{Error, Result};

// The migration creating the table (also in `migrations/0001_webhook_replay.sql`).
const MIGRATION: &str = include_str!("../../migrations/0001_webhook_replay.sql");

/// A [`ReplayStore`] on PostgreSQL (table `hisn_webhook_replay`, see
/// [`PgReplayStore::MIGRATION`]). Expiry uses the database clock (`now()`).
#[derive(Debug, Clone)]
pub struct PgReplayStore {
    pool: PgPool,
}

impl PgReplayStore {
    /// The migration SQL.
    pub const MIGRATION: &'static str = MIGRATION;

    /// A store on `pool`; run [`PgReplayStore::migrate`] (or the SQL file) first.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Create the table and index if they do not exist.
    pub async fn migrate(&self) -> Result<()> {
        sqlx::raw_sql(MIGRATION)
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("migrate", &e))?;
        Ok(())
    }

    /// Delete every expired row; returns how many.
    pub async fn purge_expired(&self) -> Result<u64> {
        let r = sqlx::query("delete from hisn_webhook_replay where expires_at <= now()")
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("purge", &e))?;
        Ok(r.rows_affected())
    }
}

fn millis(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// `sql` with the key's `(scope, provider, event_id)` bound as `$1`-`$3`.
fn keyed<'q>(
    sql: &'static str,
    key: &'q ReplayKey<'_>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
        .bind(key.scope())
        .bind(key.provider())
        .bind(key.event_id())
}

impl ReplayStore for PgReplayStore {
    async fn claim(&self, key: &ReplayKey<'_>, policy: &ReplayPolicy) -> Result<Claim> {
        for _ in 0..3 {
            let token = random_token()?;
            // An expired row (lease lapsed or done marker past its TTL) is
            // deleted first; of concurrent claimants exactly one INSERT wins.
            keyed(
                "delete from hisn_webhook_replay where scope = $1 and provider = $2 and event_id = $3 and expires_at <= now()",
                key,
            )
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("claim", &e))?;
            let inserted = keyed(
                "insert into hisn_webhook_replay (scope, provider, event_id, state, token, expires_at) \
                 values ($1, $2, $3, 'p', $4, now() + $5 * interval '1 millisecond') on conflict do nothing",
                key,
            )
            .bind(token.text())
            .bind(millis(policy.lease_millis()))
            .execute(&self.pool)
            .await
            .map_err(|e| store_error("claim", &e))?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::New(token));
            }
            let state: Option<String> = sqlx::query_scalar(
                "select state from hisn_webhook_replay where scope = $1 and provider = $2 and event_id = $3 and expires_at > now()",
            )
            .bind(key.scope())
            .bind(key.provider())
            .bind(key.event_id())
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| store_error("claim", &e))?;
            match state.as_deref() {
                Some("d") => return Ok(Claim::Done),
                Some("p") => return Ok(Claim::InProgress),
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
        // Our claim, its lease lapsed or not (no one took it over: the
        // token is still ours) ...
        let r = keyed(
            "update hisn_webhook_replay set state = 'd', expires_at = now() + $5 * interval '1 millisecond' \
             where scope = $1 and provider = $2 and event_id = $3 and state = 'p' and token = $4",
            key,
        )
        .bind(token.text())
        .bind(millis(policy.done_ttl_millis(token)))
        .execute(&self.pool)
        .await
        .map_err(|e| store_error("complete", &e))?;
        if r.rows_affected() == 1 {
            return Ok(true);
        }
        // ... or no live row at all (purged, or another lapsed claim): the
        // handler ran, so the event is recorded done. A live row of another
        // claim, or a done marker, is left alone.
        let r = keyed(
            "insert into hisn_webhook_replay (scope, provider, event_id, state, token, expires_at) \
             values ($1, $2, $3, 'd', $4, now() + $5 * interval '1 millisecond') \
             on conflict (scope, provider, event_id) do update \
             set state = 'd', token = excluded.token, expires_at = excluded.expires_at \
             where hisn_webhook_replay.expires_at <= now()",
            key,
        )
        .bind(token.text())
        .bind(millis(policy.done_ttl_millis(token)))
        .execute(&self.pool)
        .await
        .map_err(|e| store_error("complete", &e))?;
        Ok(r.rows_affected() == 1)
    }

    async fn release(&self, key: &ReplayKey<'_>, token: &ClaimToken) -> Result<bool> {
        let r = keyed(
            "delete from hisn_webhook_replay where scope = $1 and provider = $2 and event_id = $3 and state = 'p' and token = $4",
            key,
        )
        .bind(token.text())
        .execute(&self.pool)
        .await
        .map_err(|e| store_error("release", &e))?;
        Ok(r.rows_affected() == 1)
    }
}
