//! Shared helpers.

use hisn_audit_log::{Event, FakeClock, SigningKey, TenantId, Timestamp, TrustedKeys};

pub(crate) fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).unwrap()
}

/// The file store's directory for tenant `t` under the store `dir`.
pub(crate) fn tdir(dir: &std::path::Path, t: &TenantId) -> std::path::PathBuf {
    dir.join(format!("t-{}", hex::encode(t.as_str())))
}

/// The test clock's current time.
pub(crate) fn now() -> Timestamp {
    hisn_audit_log::Clock::now(&clock())
}

pub(crate) fn clock() -> FakeClock {
    FakeClock::new(Timestamp::from_unix_micros(1_764_000_000_000_000))
}

/// A varied event: subject `emp-{i % 5}`, a diff, an IP for even `i`.
pub(crate) fn event(t: &TenantId, i: u64) -> Event {
    let mut b = Event::state_transition(
        t,
        &format!("u-{}", i % 7),
        "work_order",
        &format!("wo-{i}"),
        "open",
        "closed",
    )
    .subject(&format!("emp-{}", i % 5))
    .diff(&serde_json::json!({ "status": ["open", "closed"], "n": i }))
    .request_id(&format!("r-{i}"))
    .at(Timestamp::from_unix_micros(
        1_764_000_000_000_000 + i as i64,
    ));
    if i.is_multiple_of(2) {
        b = b.source_ip("203.0.113.7".parse().unwrap());
    }
    b.build(&clock()).unwrap()
}

pub(crate) fn key(name: &str, seed: u8) -> SigningKey {
    SigningKey::from_bytes(name, &[seed; 32]).unwrap()
}

pub(crate) fn trusted(keys: &[&SigningKey]) -> TrustedKeys {
    let mut t = TrustedKeys::new();
    for k in keys {
        t.add(k.verifying_key());
    }
    t
}

/// A fresh migrated database and a store over it, or `None` (skip) when
/// `HISN_TEST_DATABASE_URL` is unset.
#[cfg(feature = "postgres")]
pub(crate) async fn setup(
    name: &str,
) -> Option<(
    hisn_test_support::TestDatabase,
    sqlx::PgPool,
    hisn_audit_log::store::postgres::PgStore,
)> {
    use hisn_audit_log::store::postgres::PgStore;
    let db = hisn_test_support::postgres(name).await?;
    let pool = db.pool().await;
    PgStore::migrate(&pool).await.unwrap();
    let store = PgStore::new(pool.clone());
    Some((db, pool, store))
}

/// Appends per task in the 64-task full-shape tests (`HISN_AUDIT_PG_PER_TASK`,
/// default 10,000).
#[cfg(feature = "postgres")]
pub(crate) fn pg_per_task() -> u64 {
    std::env::var("HISN_AUDIT_PG_PER_TASK")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}
