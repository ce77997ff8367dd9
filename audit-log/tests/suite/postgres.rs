//! PostgreSQL store on a real server (skipped unless HISN_TEST_DATABASE_URL is set).
#![cfg(feature = "postgres")]

use hisn_audit_log::store::postgres::{PgStore, grant_app_role};
use hisn_audit_log::{Timestamp, Verdict};
use sqlx::AssertSqlSafe;

use crate::common::*;

/// The full shape (64 tasks x 10,000 appends; `HISN_AUDIT_PG_PER_TASK`
/// overrides the count). Every append is its own committed transaction, so this
/// takes many minutes: opt-in with `--ignored`. The same shape through the
/// group writer runs on every test run (`pg_group::group_appends_full_shape`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "long: 640,000 committed transactions"]
async fn concurrent_appends_full_shape() {
    let Some((_db, _pool, store)) = setup("audit_pg_full_shape").await else {
        return;
    };
    let per = pg_per_task();
    let t = tenant("acme");
    let mut tasks = Vec::new();
    for p in 0..64u64 {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                store.append(&event(&t, p * per + i)).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 64 * per));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_make_one_linear_chain() {
    let Some((_db, _pool, store)) = setup("audit_pg_concurrency").await else {
        return;
    };
    let t = tenant("acme");
    let mut tasks = Vec::new();
    for p in 0..64u64 {
        let (store, t) = (store.clone(), t.clone());
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..10 {
                seqs.push(store.append(&event(&t, p * 100 + i)).await.unwrap());
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all.sort_unstable();
    assert_eq!(all, (0..640).collect::<Vec<_>>());
    let k = key("audit", 1);
    store
        .checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .await
        .unwrap();
    let r = store.verify(&t, Some(&trusted(&[&k])), &[]).await.unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::Intact, 640));
    let rep = store
        .subject_report(&t, "emp-3", Some(&trusted(&[&k])))
        .await
        .unwrap();
    assert_eq!(rep.entries.len(), 128);
    assert!(rep.entries.iter().all(|e| e.is_proven()));
}

#[tokio::test]
async fn append_joins_the_callers_transaction() {
    let Some((_db, pool, store)) = setup("audit_pg_tx").await else {
        return;
    };
    let t = tenant("acme");
    sqlx::query("CREATE TABLE work_order (id text PRIMARY KEY, state text)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO work_order VALUES ('wo-1', 'closed')")
        .execute(&mut *tx)
        .await
        .unwrap();
    PgStore::append_in(&mut tx, &event(&t, 1)).await.unwrap();
    tx.rollback().await.unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM hisn_audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 0, "the record rolled back with the change");
    let mut tx = pool.begin().await.unwrap();
    sqlx::query("INSERT INTO work_order VALUES ('wo-1', 'closed')")
        .execute(&mut *tx)
        .await
        .unwrap();
    assert_eq!(PgStore::append_in(&mut tx, &event(&t, 1)).await.unwrap(), 0);
    tx.commit().await.unwrap();
    assert_eq!(store.verify(&t, None, &[]).await.unwrap().size, 1);
}

#[tokio::test]
async fn app_role_owner_and_superuser() {
    let Some((_db, pool, store)) = setup("audit_pg_privileges").await else {
        return;
    };
    let t = tenant("acme");
    let k = key("audit", 1);
    for i in 0..10 {
        store.append(&event(&t, i)).await.unwrap();
    }
    store
        .checkpoint(&t, &k, Timestamp::from_unix_micros(1))
        .await
        .unwrap();
    let role = hisn_test_support::unique_name("hisn_audit_app_");
    sqlx::query(AssertSqlSafe(format!("CREATE ROLE \"{role}\" NOLOGIN")))
        .execute(&pool)
        .await
        .unwrap();
    grant_app_role(&pool, &role).await.unwrap();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query(AssertSqlSafe(format!("SET ROLE \"{role}\"")))
        .execute(&mut *conn)
        .await
        .unwrap();
    // The app role can read and insert, but not change or remove.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM hisn_audit_log")
        .fetch_one(&mut *conn)
        .await
        .unwrap();
    assert_eq!(n, 10);
    for stmt in [
        "UPDATE hisn_audit_log SET actor = 'x' WHERE seq = 3",
        "DELETE FROM hisn_audit_log WHERE seq = 3",
        "TRUNCATE hisn_audit_log",
        "DELETE FROM hisn_audit_subject",
    ] {
        let err = sqlx::query(stmt).execute(&mut *conn).await.unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{stmt}: {err}"
        );
    }
    sqlx::query("RESET ROLE").execute(&mut *conn).await.unwrap();
    // The owner (here a superuser) is stopped by the ENABLE ALWAYS trigger, even as a replica.
    for stmt in [
        "UPDATE hisn_audit_log SET actor = 'x' WHERE seq = 3",
        "DELETE FROM hisn_audit_log WHERE seq = 3",
        "TRUNCATE hisn_audit_log",
    ] {
        let err = sqlx::query(stmt).execute(&mut *conn).await.unwrap_err();
        assert!(err.to_string().contains("append-only"), "{stmt}: {err}");
    }
    sqlx::query("SET session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap();
    assert!(
        sqlx::query("DELETE FROM hisn_audit_log WHERE seq = 3")
            .execute(&mut *conn)
            .await
            .is_err()
    );
    sqlx::query("RESET session_replication_role")
        .execute(&mut *conn)
        .await
        .unwrap();
    // A superuser disables the trigger and deletes a row: verify names it.
    sqlx::query("ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query("DELETE FROM hisn_audit_log WHERE seq = 4")
        .execute(&mut *conn)
        .await
        .unwrap();
    let r = store.verify(&t, Some(&trusted(&[&k])), &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(4)));
    // ... or flips a bit in a record.
    sqlx::query("UPDATE hisn_audit_log SET record = set_byte(record, 20, get_byte(record, 20) # 1) WHERE seq = 2").execute(&mut *conn).await.unwrap();
    let r = store.verify(&t, Some(&trusted(&[&k])), &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(2)));
    // ... or deletes the newest rows: the checkpoint catches the cut.
    sqlx::query("DELETE FROM hisn_audit_log WHERE seq >= 2")
        .execute(&mut *conn)
        .await
        .unwrap();
    let r = store.verify(&t, Some(&trusted(&[&k])), &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Truncated, Some(2)));
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP OWNED BY \"{role}\"; DROP ROLE \"{role}\""
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
}

/// Two stores (each with its own remembered heads, like two processes) append
/// to one tenant in turn: every stale guess is refused by the database and
/// re-chained, so the chain stays linear and verifies.
#[tokio::test]
async fn stale_remembered_heads_are_rechained() {
    let Some((db, pool, a)) = setup("audit_pg_stale_heads").await else {
        return;
    };
    let b = PgStore::new(pool.clone());
    let t = tenant("acme");
    let mut seqs = Vec::new();
    for i in 0..20u32 {
        let store = if i % 3 == 0 { &b } else { &a };
        seqs.push(store.append(&event(&t, u64::from(i))).await.unwrap());
        if i % 7 == 0 {
            let mut tx = pool.begin().await.unwrap();
            seqs.push(
                PgStore::append_in(&mut tx, &event(&t, 100 + u64::from(i)))
                    .await
                    .unwrap(),
            );
            tx.commit().await.unwrap();
        }
    }
    let n = u64::try_from(seqs.len()).unwrap();
    assert_eq!(seqs, (0..n).collect::<Vec<_>>());
    let report = a.verify(&t, None, &[]).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.size, n);
    drop(db);
}

/// The one-statement append refuses a record chained to a head that is not the
/// current one, and writes nothing.
#[tokio::test]
async fn append_function_refuses_a_wrong_head() {
    let Some((db, pool, store)) = setup("audit_pg_wrong_head").await else {
        return;
    };
    let t = tenant("acme");
    store.append(&event(&t, 0)).await.unwrap();
    let row: (bool, Option<i64>) = sqlx::query_as(
        "SELECT appended, seq FROM hisn_audit_append('acme', 1, decode(repeat('00', 32), 'hex'), \
         '\\x01'::bytea, decode(repeat('00', 32), 'hex'), 0, 'a', 'b', 'c', 'd', ARRAY[]::text[])",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(row, (false, Some(0)));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM hisn_audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1);
    assert!(store.verify(&t, None, &[]).await.unwrap().is_ok());
    drop(db);
}

/// A batch over two tenants commits as one transaction, chains each tenant's
/// records in order after earlier single appends, and later single appends
/// continue from it.
#[tokio::test]
async fn batch_append_chains_each_tenant_in_order() {
    let Some((db, pool, store)) = setup("audit_pg_batch").await else {
        return;
    };
    let (a, b) = (tenant("acme"), tenant("beta"));
    assert_eq!(store.append(&event(&a, 0)).await.unwrap(), 0);
    let batch = vec![event(&b, 1), event(&a, 2), event(&a, 3), event(&b, 4)];
    assert_eq!(store.append_batch(&batch).await.unwrap(), vec![0, 1, 2, 1]);
    assert_eq!(store.append_batch(&[]).await.unwrap(), Vec::<u64>::new());
    assert_eq!(store.append(&event(&a, 5)).await.unwrap(), 3);
    // Inside the caller's transaction: rolled back with it.
    let mut tx = pool.begin().await.unwrap();
    assert_eq!(
        PgStore::append_batch_in(&mut tx, &[event(&b, 6)])
            .await
            .unwrap(),
        vec![2]
    );
    tx.rollback().await.unwrap();
    assert_eq!(store.append(&event(&b, 7)).await.unwrap(), 2);
    for (t, n) in [(&a, 4), (&b, 3)] {
        let report = store.verify(t, None, &[]).await.unwrap();
        assert!(report.is_ok(), "{report:?}");
        assert_eq!(report.size, n);
    }
    // The subject index holds the batch's rows.
    let r = store.subject_report(&b, "emp-4", None).await.unwrap();
    assert_eq!(r.entries.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1]);
    assert!(r.entries[0].event.subjects().contains(&"emp-4".to_owned()));
    drop(db);
}

/// Class: appends inside callers' transactions under contention. Every
/// caller's transaction commits its record within a bounded number of
/// attempts, in READ COMMITTED (`append_in` and `append_in_tx`: the chain
/// lock orders them, the head is read after the lock) and in REPEATABLE READ
/// / SERIALIZABLE (`append_in_tx`, whose head read does not depend on a
/// snapshot that predates the lock).
///
/// Root cause: the head was read from the transaction's snapshot. In
/// REPEATABLE READ that snapshot is taken when the transaction's first
/// statement starts, before the chain lock is granted, so after every wait
/// the head was stale and the insert hit the primary key again: callers
/// retried in lock-step and some never committed.
#[tokio::test]
async fn append_in_under_contention_never_starves() {
    let Some((db, pool, store)) = setup("audit_pg_append_in_contention").await else {
        return;
    };
    let t = tenant("acme");
    for iso in ["READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"] {
        let before = store.bounds(&t).await.map_or(0, |b| b.size);
        let mut tasks = Vec::new();
        for w in 0..20u64 {
            let (pool, t, store) = (pool.clone(), t.clone(), store.clone());
            tasks.push(tokio::spawn(async move {
                let mut worst = 0;
                for i in 0..10u64 {
                    let mut attempt = 0;
                    loop {
                        attempt += 1;
                        assert!(attempt <= 3, "{iso}: event {w}/{i} starved");
                        let mut tx = pool
                            .begin_with(AssertSqlSafe(format!("BEGIN ISOLATION LEVEL {iso}")))
                            .await
                            .unwrap();
                        let e = event(&t, w * 100 + i);
                        let r = if iso == "READ COMMITTED" && w % 2 == 0 {
                            PgStore::append_in(&mut tx, &e).await
                        } else {
                            store.append_in_tx(&mut tx, &e).await
                        };
                        if r.is_ok() && tx.commit().await.is_ok() {
                            break;
                        }
                    }
                    worst = worst.max(attempt);
                }
                worst
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        let report = store.verify(&t, None, &[]).await.unwrap();
        assert!(report.is_ok(), "{iso}: {report:?}");
        assert_eq!(report.size, before + 200, "{iso}");
    }
    drop(db);
}

/// Class: the queryable columns and the subject index are covered by
/// verification. The chain hashes only the record bytes, so a changed
/// `actor` column (via an owner session with the triggers off) or a forged
/// subject-index row (INSERT is all the application role needs) went
/// unnoticed while queries and DSAR lookups trusted them.
#[tokio::test]
async fn queryable_columns_and_subject_index_must_match_the_records() {
    let Some((db, pool, store)) = setup("audit_pg_columns").await else {
        return;
    };
    let t = tenant("acme");
    for i in 0..6 {
        store.append(&event(&t, i)).await.unwrap();
    }
    assert!(store.verify(&t, None, &[]).await.unwrap().is_ok());
    // A forged index row naming emp-1 for record 2 (which names emp-2).
    sqlx::query(
        "INSERT INTO hisn_audit_subject (tenant, subject, seq) VALUES ('acme', 'emp-1', 2)",
    )
    .execute(&pool)
    .await
    .unwrap();
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(2)), "{r:?}");
    // An index row for a record that does not exist.
    let db2 = setup("audit_pg_columns_stray").await.unwrap();
    let (pool2, store2) = (db2.1, db2.2);
    for i in 0..3 {
        store2.append(&event(&t, i)).await.unwrap();
    }
    sqlx::query(
        "INSERT INTO hisn_audit_subject (tenant, subject, seq) VALUES ('acme', 'emp-1', 99)",
    )
    .execute(&pool2)
    .await
    .unwrap();
    let r = store2.verify(&t, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(99)), "{r:?}");
    // A changed actor column.
    let db3 = setup("audit_pg_columns_actor").await.unwrap();
    let (pool3, store3) = (db3.1, db3.2);
    for i in 0..4 {
        store3.append(&event(&t, i)).await.unwrap();
    }
    sqlx::raw_sql(
        "BEGIN; ALTER TABLE hisn_audit_log DISABLE TRIGGER hisn_audit_log_no_change; \
         UPDATE hisn_audit_log SET actor = 'someone-else' WHERE tenant = 'acme' AND seq = 1; \
         ALTER TABLE hisn_audit_log ENABLE ALWAYS TRIGGER hisn_audit_log_no_change; COMMIT;",
    )
    .execute(&pool3)
    .await
    .unwrap();
    let r = store3.verify(&t, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.seq), (Verdict::Tampered, Some(1)), "{r:?}");
    drop((db, db2.0, db3.0));
}

/// Class: `append_in` (the static variant taking the caller's connection or
/// transaction) starved or failed under contention, while `append_in_tx`
/// had been fixed. Root cause: it took the chain lock and read the head in
/// whatever the caller had. On an autocommit connection the lock ended with
/// its own statement, before the insert, so concurrent callers collided on
/// the primary key; in `REPEATABLE READ` / `SERIALIZABLE` the head came from
/// a snapshot older than the lock, stale after every wait. Now an
/// autocommit caller gets a short `READ COMMITTED` transaction of its own,
/// `READ COMMITTED` callers read the head after the lock, and snapshot
/// isolation is refused up front (`Error::IsolationLevel`: nothing locked or
/// written; `append_in_tx` is the method for it). Every append lands on its
/// first attempt, within a bounded time, and the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn append_in_on_connections_and_transactions_never_starves() {
    let Some((db, pool, store)) = setup("audit_pg_append_in_conn").await else {
        return;
    };
    let t = tenant("acme");
    let run = async {
        let mut tasks = Vec::new();
        for w in 0..24u64 {
            let (pool, t) = (pool.clone(), t.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                for i in 0..10u64 {
                    let e = event(&t, w * 100 + i);
                    match w % 3 {
                        0 => {
                            let mut conn = pool.acquire().await.unwrap();
                            PgStore::append_in(&mut conn, &e).await.unwrap();
                            n += 1;
                        }
                        1 => {
                            let mut tx = pool.begin().await.unwrap();
                            sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
                            PgStore::append_in(&mut tx, &e).await.unwrap();
                            tx.commit().await.unwrap();
                            n += 1;
                        }
                        _ => {
                            let mut conn = pool.acquire().await.unwrap();
                            let e2 = event(&t, w * 100 + 50 + i);
                            PgStore::append_batch_in(&mut conn, &[e, e2]).await.unwrap();
                            n += 2;
                        }
                    }
                }
                n
            }));
        }
        let mut total = 0;
        for task in tasks {
            total += task.await.unwrap();
        }
        total
    };
    let total = tokio::time::timeout(std::time::Duration::from_secs(120), run)
        .await
        .expect("appends did not finish in bounded time");
    let report = store.verify(&t, None, &[]).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.size, total);
    // Snapshot isolation: refused before anything is locked or written, and
    // the caller's transaction carries on.
    for iso in ["REPEATABLE READ", "SERIALIZABLE"] {
        let mut tx = pool
            .begin_with(AssertSqlSafe(format!("BEGIN ISOLATION LEVEL {iso}")))
            .await
            .unwrap();
        let r = PgStore::append_in(&mut tx, &event(&t, 999)).await;
        assert!(
            matches!(r, Err(hisn_audit_log::Error::IsolationLevel)),
            "{iso}: {r:?}"
        );
        let r = PgStore::append_batch_in(&mut tx, &[event(&t, 998)]).await;
        assert!(
            matches!(r, Err(hisn_audit_log::Error::IsolationLevel)),
            "{iso}"
        );
        // The chain lock is free: another caller appends meanwhile.
        store.append(&event(&t, 997)).await.unwrap();
        tx.commit().await.unwrap();
        assert!(
            store
                .append_in_tx(&mut pool.acquire().await.unwrap(), &event(&t, 996))
                .await
                .is_ok()
        );
    }
    let report = store.verify(&t, None, &[]).await.unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(report.size, total + 4);
    drop(db);
}
