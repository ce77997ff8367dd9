//! PostgreSQL retention (export, prune, verify from the prune point) on a real
//! server (skipped unless HISN_TEST_DATABASE_URL is set).
#![cfg(feature = "postgres")]

use hisn_audit_log::store::postgres::{PgStore, grant_app_role};
use hisn_audit_log::{
    AuditRead, Clock, Error, Export, FakeClock, Link, MemoryStore, PRUNE_ACTION, TenantId,
    Timestamp, Verdict, decode_record,
};
use sqlx::AssertSqlSafe;

use crate::common::*;

/// The clock of the prune records (the same in PostgreSQL and the memory
/// store, so both chains come out byte for byte identical).
fn prune_clock() -> FakeClock {
    FakeClock::new(Timestamp::from_unix_micros(1_764_000_100_000_000))
}

async fn append_n(store: &PgStore, t: &TenantId, range: std::ops::Range<u64>) {
    for i in range {
        store.append(&event(t, i)).await.unwrap();
    }
}

/// Run `stmt` as the superuser with the append-only triggers disabled (what
/// an attacker with superuser rights can do).
async fn bypass_triggers(pool: &sqlx::PgPool, stmt: &str) {
    let mut tx = pool.begin().await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change; \
         ALTER TABLE hisn_audit_subject DISABLE TRIGGER hisn_audit_subject_no_change; \
         {stmt}; \
         ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change; \
         ALTER TABLE hisn_audit_subject ENABLE ALWAYS TRIGGER hisn_audit_subject_no_change;"
    )))
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

async fn count(pool: &sqlx::PgPool, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

fn boundary(export: &Export) -> Link {
    export.records.last().unwrap().link
}

/// Tenant `acme` with 30 records and a signed checkpoint of all of them; the
/// keys that trust it.
async fn thirty_checkpointed(
    store: &PgStore,
) -> (
    TenantId,
    hisn_audit_log::SigningKey,
    hisn_audit_log::TrustedKeys,
) {
    let t = tenant("acme");
    let k = key("audit", 1);
    append_n(store, &t, 0..30).await;
    store
        .checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .await
        .unwrap();
    let keys = trusted(&[&k]);
    (t, k, keys)
}

fn is_refused<T: std::fmt::Debug>(r: &hisn_audit_log::Result<T>) -> bool {
    matches!(r, Err(Error::PruneRefused { .. }))
}

#[tokio::test]
async fn pg_prune_exported_prefix_then_verify_from_the_boundary() {
    let Some((_db, pool, store)) = setup("audit_pg_prune").await else {
        return;
    };
    let (t, k, keys) = thirty_checkpointed(&store).await;
    let export = store.export(&t, 9).await.unwrap();
    assert_eq!(export.receipt.through(), 9);
    assert_eq!(
        export.records.iter().map(|r| r.seq).collect::<Vec<_>>(),
        (0..10).collect::<Vec<_>>()
    );
    assert_eq!(
        store
            .prune(&export.receipt, "ops", &prune_clock())
            .await
            .unwrap(),
        30
    );
    // The prefix is gone from both tables; the chain starts after it.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM hisn_audit_log").await,
        21
    );
    assert_eq!(
        count(&pool, "SELECT min(seq) FROM hisn_audit_log").await,
        10
    );
    assert_eq!(
        count(&pool, "SELECT min(seq) FROM hisn_audit_subject").await,
        10
    );
    let b = store.bounds(&t).await.unwrap();
    assert_eq!(
        (b.first_seq, b.start_prev, b.size),
        (10, boundary(&export), 31)
    );
    // With keys, a prune is accepted only under a signature: until a
    // checkpoint covers the prune record (seq 30), the pruned start is not proven.
    let r = store.verify(&t, Some(&keys), &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.seq, r.verified_from, r.size),
        (Verdict::Tampered, Some(10), 10, 31)
    );
    store
        .checkpoint(&t, &k, Timestamp::from_unix_micros(2))
        .await
        .unwrap();
    let r = store.verify(&t, Some(&keys), &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::Intact, 10, 31)
    );
    // Appends continue after the prune record.
    assert_eq!(store.append(&event(&t, 30)).await.unwrap(), 31);
    // The same operations on the memory store give the same chain.
    let m = MemoryStore::new();
    for i in 0..30 {
        m.append(&event(&t, i)).unwrap();
    }
    let me = m.export(&t, 9).unwrap();
    assert_eq!(m.prune(&me.receipt, "ops", &prune_clock()).unwrap(), 30);
    m.append(&event(&t, 30)).unwrap();
    assert_eq!(m.bounds(&t).unwrap(), store.bounds(&t).await.unwrap());
}

#[tokio::test]
async fn pg_prune_refuses_receipts_that_do_not_match_the_store() {
    let Some((_db, pool, store)) = setup("audit_pg_prune_refused").await else {
        return;
    };
    let t = tenant("acme");
    append_n(&store, &t, 0..20).await;
    // Another chain of the same tenant: a different boundary link.
    let other = MemoryStore::new();
    for i in 0..20 {
        other.append(&event(&t, 100 + i)).unwrap();
    }
    let foreign = other.export(&t, 9).unwrap();
    assert!(is_refused(
        &store.prune(&foreign.receipt, "ops", &prune_clock()).await
    ));
    // The same chain, but longer: the range runs past the stored head.
    let longer = MemoryStore::new();
    for i in 0..25 {
        longer.append(&event(&t, i)).unwrap();
    }
    let pg_link_9 = store.read_range(&t, 9, 10).await.unwrap()[0].link;
    assert_eq!(boundary(&longer.export(&t, 9).unwrap()), pg_link_9);
    let past_head = longer.export(&t, 22).unwrap();
    assert!(is_refused(
        &store.prune(&past_head.receipt, "ops", &prune_clock()).await
    ));
    // Refusals change nothing.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM hisn_audit_log").await,
        20
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM hisn_audit_prune_point").await,
        0
    );
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::UnanchoredTail, 0, 20)
    );
    // A receipt whose first record is no longer the chain's first.
    let stale = store.export(&t, 9).await.unwrap();
    let first = store.export(&t, 4).await.unwrap();
    assert_eq!(
        store
            .prune(&first.receipt, "ops", &prune_clock())
            .await
            .unwrap(),
        20
    );
    assert!(is_refused(
        &store.prune(&stale.receipt, "ops", &prune_clock()).await
    ));
    assert!(
        is_refused(&store.prune(&first.receipt, "ops", &prune_clock()).await),
        "spent"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM hisn_audit_log").await,
        16
    );
    // Exports outside what is held are refused.
    assert!(is_refused(&store.export(&t, 4).await));
    assert!(is_refused(&store.export(&t, 21).await));
    // The whole held chain may be pruned: the prune record is then the chain.
    let all = store.export(&t, 20).await.unwrap();
    assert_eq!(
        store
            .prune(&all.receipt, "ops", &prune_clock())
            .await
            .unwrap(),
        21
    );
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::UnanchoredTail, 21, 22)
    );
}

#[tokio::test]
async fn pg_prune_record_names_range_count_boundary_and_actor() {
    let Some((_db, pool, store)) = setup("audit_pg_prune_record").await else {
        return;
    };
    let t = tenant("acme");
    append_n(&store, &t, 0..12).await;
    let export = store.export(&t, 7).await.unwrap();
    let seq = store
        .prune(&export.receipt, "ops-alice", &prune_clock())
        .await
        .unwrap();
    assert_eq!(seq, 12);
    let rec = store.read_range(&t, seq, seq + 1).await.unwrap().remove(0);
    let (_, e) = decode_record(&rec.bytes).unwrap();
    assert_eq!(
        (e.action(), e.actor(), e.entity_type(), e.entity_id()),
        (PRUNE_ACTION, "ops-alice", "audit_log", "acme")
    );
    assert_eq!(e.time(), prune_clock().now());
    let diff: serde_json::Value = serde_json::from_str(e.diff().unwrap()).unwrap();
    assert_eq!(
        diff,
        serde_json::json!({
            "from": 0,
            "through": 7,
            "count": 8,
            "boundary_link": boundary(&export).to_hex(),
        })
    );
    // The queryable columns and the prune point agree.
    let (actor, action): (String, String) =
        sqlx::query_as("SELECT actor, action FROM hisn_audit_log WHERE seq = 12")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (actor.as_str(), action.as_str()),
        ("ops-alice", PRUNE_ACTION)
    );
    let (first, prev, prune_seq, db_user): (i64, Vec<u8>, i64, String) = sqlx::query_as(
        "SELECT first_seq, start_prev, prune_seq, db_user FROM hisn_audit_prune_point",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        (first, prev, prune_seq, db_user.as_str()),
        (8, boundary(&export).0.to_vec(), 12, "postgres")
    );
    // The prune point is append-only too.
    for stmt in [
        "UPDATE hisn_audit_prune_point SET first_seq = 1",
        "DELETE FROM hisn_audit_prune_point",
        "TRUNCATE hisn_audit_prune_point",
    ] {
        let err = sqlx::query(stmt).execute(&pool).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{stmt}: {err}");
    }
}

#[tokio::test]
async fn pg_app_role_cannot_delete_or_prune() {
    let Some((db, pool, store)) = setup("audit_pg_prune_privileges").await else {
        return;
    };
    let t = tenant("acme");
    let role = hisn_test_support::unique_name("hisn_audit_app_");
    sqlx::query(AssertSqlSafe(format!("CREATE ROLE \"{role}\" LOGIN")))
        .execute(&pool)
        .await
        .unwrap();
    grant_app_role(&pool, &role).await.unwrap();
    let app_pool = sqlx::PgPool::connect_with(db.connect_options().username(&role))
        .await
        .unwrap();
    let app = PgStore::new(app_pool.clone());
    append_n(&app, &t, 0..10).await;
    let export = app.export(&t, 4).await.unwrap();
    // Through the API: refused by the database, and rolled back entirely.
    let err = app
        .prune(&export.receipt, "ops", &prune_clock())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Database(e) if e.to_string().contains("permission denied for function hisn_audit_prune_rows")),
        "{err}"
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM hisn_audit_log").await,
        10
    );
    assert_eq!(app.append(&event(&t, 10)).await.unwrap(), 10);
    // Directly: no DELETE, no EXECUTE, no write to the prune point.
    let boundary_hex = boundary(&export).to_hex();
    for stmt in [
        "DELETE FROM hisn_audit_log WHERE seq < 5".to_owned(),
        "DELETE FROM hisn_audit_subject".to_owned(),
        "TRUNCATE hisn_audit_log".to_owned(),
        format!("SELECT hisn_audit_prune_rows('acme', 4, decode('{boundary_hex}', 'hex'), 10)"),
        format!(
            "INSERT INTO hisn_audit_prune_point (tenant, first_seq, start_prev, prune_seq) \
             VALUES ('acme', 5, decode('{boundary_hex}', 'hex'), 10)"
        ),
    ] {
        let err = sqlx::query(AssertSqlSafe(stmt.clone()))
            .execute(&app_pool)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{stmt}: {err}"
        );
    }
    // What the grant gives, and what the function is.
    let privileges: (bool, bool, bool, bool, bool) = sqlx::query_as(
        "SELECT has_table_privilege($1, 'hisn_audit_prune_point', 'SELECT'), \
                has_table_privilege($1, 'hisn_audit_prune_point', 'INSERT'), \
                has_table_privilege($1, 'hisn_audit_log', 'DELETE'), \
                has_table_privilege($1, 'hisn_audit_subject', 'UPDATE'), \
                has_function_privilege($1, 'hisn_audit_prune_rows(text, bigint, bytea, bigint)', 'EXECUTE')",
    )
    .bind(&role)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(privileges, (true, false, false, false, false));
    let (definer, config): (bool, Vec<String>) = sqlx::query_as(
        "SELECT prosecdef, proconfig FROM pg_proc WHERE proname = 'hisn_audit_prune_rows'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(definer);
    assert_eq!(
        config,
        vec!["search_path=pg_catalog, public, pg_temp".to_owned()]
    );
    // The owner prunes; the app role then verifies from the prune point.
    let export = store.export(&t, 4).await.unwrap();
    assert_eq!(
        store
            .prune(&export.receipt, "ops", &prune_clock())
            .await
            .unwrap(),
        11
    );
    let r = app.verify(&t, None, &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::UnanchoredTail, 5, 12)
    );
    assert_eq!(app.append(&event(&t, 12)).await.unwrap(), 12);
    app_pool.close().await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
    )))
    .execute(&pool)
    .await
    .unwrap();
}

#[tokio::test]
async fn pg_rows_deleted_without_prune_record_fail_verify() {
    let Some((_db, pool, store)) = setup("audit_pg_prune_forged").await else {
        return;
    };
    let t = tenant("acme");
    append_n(&store, &t, 0..10).await;
    let link_2 = store.read_range(&t, 2, 3).await.unwrap()[0].link;
    // A superuser deletes the first rows: no prune point, so the chain must start at 0.
    bypass_triggers(
        &pool,
        "DELETE FROM hisn_audit_log WHERE tenant = 'acme' AND seq < 3",
    )
    .await;
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(0)));
    // ... and adds a prune point: no prune record names it.
    sqlx::query(
        "INSERT INTO hisn_audit_prune_point (tenant, first_seq, start_prev, prune_seq) \
         VALUES ('acme', 3, $1, 9)",
    )
    .bind(&link_2.0[..])
    .execute(&pool)
    .await
    .unwrap();
    assert_eq!(store.bounds(&t).await.unwrap().first_seq, 3);
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.seq, r.verified_from),
        (Verdict::Tampered, Some(3), 3)
    );
    // After a real prune, deleting the first remaining rows is caught too.
    let b = tenant("beta");
    append_n(&store, &b, 0..10).await;
    let export = store.export(&b, 4).await.unwrap();
    store
        .prune(&export.receipt, "ops", &prune_clock())
        .await
        .unwrap();
    assert!(store.verify(&b, None, &[]).await.unwrap().is_ok());
    bypass_triggers(
        &pool,
        "DELETE FROM hisn_audit_log WHERE tenant = 'beta' AND seq < 7",
    )
    .await;
    let r = store.verify(&b, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(5)));
    // The prune function itself refuses to delete without a prune record.
    let link_6 = store.read_range(&t, 6, 7).await.unwrap()[0].link;
    let err = sqlx::query("SELECT hisn_audit_prune_rows('acme', 6, $1, 9)")
        .bind(&link_6.0[..])
        .execute(&pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no prune record"), "{err}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM hisn_audit_log WHERE tenant = 'acme'"
        )
        .await,
        7
    );
}

#[tokio::test]
async fn pg_dsar_after_prune_links_the_first_remaining_record() {
    let Some((_db, _pool, store)) = setup("audit_pg_prune_dsar").await else {
        return;
    };
    let (t, _, keys) = thirty_checkpointed(&store).await;
    let export = store.export(&t, 9).await.unwrap();
    store
        .prune(&export.receipt, "ops", &prune_clock())
        .await
        .unwrap();
    // A checkpoint after the prune record covers it (a prune needs a signature).
    store
        .checkpoint(&t, &key("audit", 1), Timestamp::from_unix_micros(2))
        .await
        .unwrap();
    // emp-0 is named by records 0, 5, ..., 25; the first remaining one is 10.
    let rep = store
        .subject_report(&t, "emp-0", Some(&keys))
        .await
        .unwrap();
    assert_eq!(
        rep.entries.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![10, 15, 20, 25]
    );
    assert!(rep.entries.iter().all(|e| e.is_proven()), "{rep:?}");
    // The memory store's report of the same chain is the same.
    let m = MemoryStore::new();
    for i in 0..30 {
        m.append(&event(&t, i)).unwrap();
    }
    let me = m.export(&t, 9).unwrap();
    m.prune(&me.receipt, "ops", &prune_clock()).unwrap();
    let mr = m.subject_report(&t, "emp-0", None).unwrap();
    let links = |r: &hisn_audit_log::SubjectReport| {
        r.entries
            .iter()
            .map(|e| (e.seq, e.link))
            .collect::<Vec<_>>()
    };
    assert_eq!(links(&rep), links(&mr));
}

#[tokio::test]
async fn pg_second_prune_continues_from_the_first() {
    let Some((_db, pool, store)) = setup("audit_pg_prune_twice").await else {
        return;
    };
    let t = tenant("acme");
    let k = key("audit", 1);
    let keys = trusted(&[&k]);
    append_n(&store, &t, 0..30).await;
    let first = store.export(&t, 9).await.unwrap();
    assert_eq!(
        store
            .prune(&first.receipt, "ops", &prune_clock())
            .await
            .unwrap(),
        30
    );
    append_n(&store, &t, 31..36).await;
    // The second export starts where the first prune left off and takes the
    // first prune record with it.
    let second = store.export(&t, 30).await.unwrap();
    assert_eq!(second.records.first().unwrap().seq, 10);
    assert_eq!(second.records.len(), 21);
    assert_eq!(
        store
            .prune(&second.receipt, "ops", &prune_clock())
            .await
            .unwrap(),
        36
    );
    assert!(is_refused(
        &store.prune(&first.receipt, "ops", &prune_clock()).await
    ));
    let b = store.bounds(&t).await.unwrap();
    assert_eq!(
        (b.first_seq, b.start_prev, b.size),
        (31, boundary(&second), 37)
    );
    assert_eq!(
        count(&pool, "SELECT count(*) FROM hisn_audit_prune_point").await,
        2
    );
    assert_eq!(count(&pool, "SELECT count(*) FROM hisn_audit_log").await, 6);
    store
        .checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .await
        .unwrap();
    let r = store.verify(&t, Some(&keys), &[]).await.unwrap();
    assert_eq!(
        (r.verdict, r.verified_from, r.size),
        (Verdict::Intact, 31, 37)
    );
    // The second prune record names the range 10..=30.
    let rec = store.read_range(&t, 36, 37).await.unwrap().remove(0);
    let (_, e) = decode_record(&rec.bytes).unwrap();
    let diff: serde_json::Value = serde_json::from_str(e.diff().unwrap()).unwrap();
    assert_eq!(
        (
            diff["from"].as_u64(),
            diff["through"].as_u64(),
            diff["count"].as_u64()
        ),
        (Some(10), Some(30), Some(21))
    );
}
