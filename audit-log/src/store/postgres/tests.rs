//! Unit tests of the PostgreSQL store (need `HISN_TEST_DATABASE_URL`).

use super::*;
use crate::clock::FakeClock;
use crate::verify::Verdict;

fn events(t: &TenantId, n: i64) -> Vec<Event> {
    (0..n)
        .map(|i| {
            Event::builder(t, "u-1", "work_order.close")
                .entity("work_order", &format!("wo-{i}"))
                .subject("emp-1")
                .build(&FakeClock::new(Timestamp::from_unix_micros(
                    1_764_000_000_000_000 + i,
                )))
                .unwrap()
        })
        .collect()
}

#[test]
fn migration_matches_the_rust_side() {
    let sql = MIGRATIONS[0].sql;
    // The function checks for the prune record by its action.
    assert!(sql.contains(&format!("l.action = '{}'", crate::verify::PRUNE_ACTION)));
    assert!(sql.contains(&format!("ON FUNCTION {PRUNE_FUNCTION} FROM PUBLIC")));
    let grant = grant_app_role_sql("app").unwrap();
    assert!(grant.contains(&format!(
        "REVOKE ALL ON FUNCTION {PRUNE_FUNCTION} FROM \"app\""
    )));
    assert!(grant.contains("GRANT SELECT ON hisn_audit_prune_point TO \"app\""));
    assert!(!grant.contains("GRANT EXECUTE"));
}

/// Paged verification gives exactly the one-page verdicts (checkpoint
/// inside a page, truncation, pruned start whose prune record is on a later
/// page) and finds a tampered record on the second page.
#[tokio::test]
async fn verify_reads_pages_and_stops_at_tamper_on_a_later_page() {
    let Some(db) = hisn_test_support::postgres("audit_pg_verify_pages").await else {
        return;
    };
    let pool = db.pool().await;
    PgStore::migrate(&pool).await.unwrap();
    let store = PgStore::new(pool.clone());
    let key = SigningKey::from_bytes("audit", &[1; 32]).unwrap();
    let mut keys = TrustedKeys::new();
    keys.add(key.verifying_key());
    let four = Page {
        rows: 4,
        bytes: i64::MAX,
    };
    let all = Page {
        rows: 1_000,
        bytes: i64::MAX,
    };
    let one_byte = Page {
        rows: 1_000,
        bytes: 1,
    };
    let run = |t: TenantId, page: Page| {
        let (store, keys) = (store.clone(), keys.clone());
        async move {
            store
                .verify_paged(&t, Some(&keys), &[], page)
                .await
                .unwrap()
        }
    };

    // Intact chain with a checkpoint inside the second page.
    let a = TenantId::parse("acme").unwrap();
    let evs = events(&a, 12);
    store.append_batch(&evs[..5]).await.unwrap();
    store
        .checkpoint(&a, &key, Timestamp::from_unix_micros(1))
        .await
        .unwrap();
    store.append_batch(&evs[5..]).await.unwrap();
    let (whole, pages) = run(a.clone(), all).await;
    assert_eq!(pages, 1);
    assert_eq!(
        (whole.verdict, whole.seq, whole.size, whole.anchored_size),
        (Verdict::UnanchoredTail, Some(5), 12, 5)
    );
    let (paged, pages) = run(a.clone(), four).await;
    assert_eq!((paged, pages), (whole.clone(), 3));
    let (by_bytes, pages) = run(a.clone(), one_byte).await;
    assert_eq!((by_bytes, pages), (whole, 12), "the byte cap ends a page");

    // A record on the second page (seqs 4..8) altered by a superuser.
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(
        "ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change; \
         UPDATE hisn_audit_log SET record = set_byte(record, 40, get_byte(record, 40) # 1) \
             WHERE tenant = 'acme' AND seq = 6; \
         ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change;",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (whole, _) = run(a.clone(), all).await;
    assert_eq!((whole.verdict, whole.seq), (Verdict::Tampered, Some(6)));
    let (paged, pages) = run(a.clone(), four).await;
    assert!(pages >= 2, "read {pages} pages");
    assert_eq!(paged, whole);
    assert_eq!(store.verify(&a, Some(&keys), &[]).await.unwrap(), whole);

    // Truncation against a checkpoint, found after the last page.
    let b = TenantId::parse("beta").unwrap();
    store.append_batch(&events(&b, 10)).await.unwrap();
    store
        .checkpoint(&b, &key, Timestamp::from_unix_micros(1))
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(
        "ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change; \
         DELETE FROM hisn_audit_log WHERE tenant = 'beta' AND seq >= 7; \
         ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change;",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (whole, _) = run(b.clone(), all).await;
    assert_eq!((whole.verdict, whole.seq), (Verdict::Truncated, Some(7)));
    assert_eq!(run(b.clone(), four).await, (whole, 2));

    // Pruned start: the prune record (seq 10) is on the second page.
    let c = TenantId::parse("gamma").unwrap();
    store.append_batch(&events(&c, 10)).await.unwrap();
    let export = store.export(&c, 2).await.unwrap();
    let clock = FakeClock::new(Timestamp::from_unix_micros(1_764_000_001_000_000));
    assert_eq!(
        store.prune(&export.receipt, "ops", &clock).await.unwrap(),
        10
    );
    // With keys, a prune verifies only under a signed checkpoint.
    let (unsigned, _) = run(c.clone(), all).await;
    assert_eq!(
        (unsigned.verdict, unsigned.seq),
        (Verdict::Tampered, Some(3))
    );
    store
        .checkpoint(&c, &key, Timestamp::from_unix_micros(2))
        .await
        .unwrap();
    let (whole, _) = run(c.clone(), all).await;
    assert_eq!(
        (whole.verdict, whole.verified_from, whole.size),
        (Verdict::Intact, 3, 11)
    );
    assert_eq!(run(c.clone(), four).await, (whole, 2));
    drop(db);
}
