//! Group commit over the PostgreSQL store on a real server (skipped unless
//! HISN_TEST_DATABASE_URL is set).
#![cfg(feature = "postgres")]

use std::sync::Arc;

use hisn_audit_log::store::pg_group::{GroupOptions, PgGroupWriter};
use hisn_audit_log::store::postgres::PgStore;
use hisn_audit_log::{Error, Verdict};

use crate::common::*;

/// `tasks` producers appending `per` events each through `writer`, spread over
/// `tenants`; returns every producer's (tenant index, sequence numbers).
async fn produce(
    writer: &Arc<PgGroupWriter>,
    tasks: u64,
    per: u64,
    tenants: u64,
) -> Vec<(u64, Vec<u64>)> {
    let mut handles = Vec::new();
    for p in 0..tasks {
        let writer = Arc::clone(writer);
        handles.push(tokio::spawn(async move {
            let t = tenant(&format!("t{}", p % tenants));
            let mut seqs = Vec::new();
            for i in 0..per {
                seqs.push(writer.append(event(&t, p * per + i)).await.unwrap());
            }
            (p % tenants, seqs)
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_group_appends_make_one_dense_linear_chain_in_submission_order() {
    let Some((_db, _pool, store)) = setup("audit_pg_group_one").await else {
        return;
    };
    let writer = Arc::new(PgGroupWriter::new(store.clone(), GroupOptions::default()));
    let results = produce(&writer, 64, 20, 1).await;
    let mut all: Vec<u64> = Vec::new();
    for (_, seqs) in &results {
        // One producer's appends land in the order it made them.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (0..1280).collect::<Vec<_>>());
    let r = store.verify(&tenant("t0"), None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 1280));
    Arc::into_inner(writer).unwrap().close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_writers_across_tenants_and_plain_appends_never_fork() {
    let Some((_db, _pool, store)) = setup("audit_pg_group_many").await else {
        return;
    };
    let writer = Arc::new(PgGroupWriter::new(
        store.clone(),
        GroupOptions::default().writers(4).max_batch(16),
    ));
    // Plain appends to the same tenants at the same time, from the same store.
    let plain = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..40u64 {
                store
                    .append(&event(&tenant(&format!("t{}", i % 8)), 10_000 + i))
                    .await
                    .unwrap();
            }
        })
    };
    let results = produce(&writer, 32, 10, 8).await;
    plain.await.unwrap();
    for t in 0..8u64 {
        let mut seqs: Vec<u64> = results
            .iter()
            .filter(|(ti, _)| *ti == t)
            .flat_map(|(_, s)| s.iter().copied())
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        // 4 producers x 10 through the writer; 5 plain appends fill the gaps.
        assert_eq!(seqs.len(), 40, "tenant {t}");
        assert!(seqs.iter().all(|s| *s < 45));
        let r = store
            .verify(&tenant(&format!("t{t}")), None, &[])
            .await
            .unwrap();
        assert_eq!(
            (r.verdict, r.size),
            (Verdict::UnanchoredTail, 45),
            "tenant {t}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_fails_every_caller_in_it_and_a_later_writer_commits_everything() {
    let Some(db) = hisn_test_support::postgres("audit_pg_group_fail").await else {
        return;
    };
    // No migration: the batch's first statement fails.
    let broken = PgGroupWriter::new(PgStore::new(db.pool().await), GroupOptions::default());
    let broken = Arc::new(broken);
    let mut handles = Vec::new();
    for i in 0..8u64 {
        let w = Arc::clone(&broken);
        handles.push(tokio::spawn(async move {
            w.append(event(&tenant("acme"), i)).await
        }));
    }
    for h in handles {
        assert!(matches!(h.await.unwrap(), Err(Error::GroupCommit(_))));
    }

    // With the schema in place, every append commits.
    let pool = db.pool().await;
    PgStore::migrate(&pool).await.unwrap();
    let store = PgStore::new(pool);
    let writer = Arc::new(PgGroupWriter::new(store.clone(), GroupOptions::default()));
    let mut handles = Vec::new();
    for i in 0..50u64 {
        let w = Arc::clone(&writer);
        handles.push(tokio::spawn(async move {
            w.append(event(&tenant("acme"), i)).await
        }));
    }
    let mut got = Vec::new();
    for h in handles {
        got.push(h.await.unwrap().unwrap());
    }
    Arc::into_inner(writer).unwrap().close().await;
    got.sort_unstable();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
    let r = store.verify(&tenant("acme"), None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 50));
}

/// The concurrency shape through the group writer: 64 tasks x 10,000
/// appends on one tenant give one dense linear chain (about 45 s in a debug
/// build on a 2-core machine). `HISN_AUDIT_PG_PER_TASK` overrides the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_appends_full_shape() {
    let Some((_db, _pool, store)) = setup("audit_pg_group_full").await else {
        return;
    };
    let per = pg_per_task();
    let writer = Arc::new(PgGroupWriter::new(store.clone(), GroupOptions::default()));
    let results = produce(&writer, 64, per, 1).await;
    let mut all: Vec<u64> = results.into_iter().flat_map(|(_, s)| s).collect();
    all.sort_unstable();
    assert_eq!(all.len() as u64, 64 * per);
    assert!(all.iter().enumerate().all(|(i, s)| *s == i as u64));
    let r = store.verify(&tenant("t0"), None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 64 * per));
}

/// 40 concurrent appends through one group writer where `bad` is the index
/// of an event built by `make_bad`; returns (successes, the bad one's result).
async fn forty_with_one_bad(
    writer: &Arc<PgGroupWriter>,
    make_bad: impl Fn() -> hisn_audit_log::Event,
) -> (usize, Result<u64, Error>) {
    let bad = make_bad();
    let mut handles = Vec::new();
    for i in 0..40u64 {
        let w = Arc::clone(writer);
        let e = if i == 17 {
            bad.clone()
        } else {
            event(&tenant("acme"), i)
        };
        handles.push(tokio::spawn(async move { w.append(e).await }));
    }
    let mut ok = 0;
    let mut bad_result = Ok(0);
    for (i, h) in handles.into_iter().enumerate() {
        let r = h.await.unwrap();
        if i == 17 {
            bad_result = r;
        } else {
            r.unwrap();
            ok += 1;
        }
    }
    (ok, bad_result)
}

/// Class: one event the database would refuse never fails the other callers
/// of its batch: what can be checked is refused before batching (a time
/// outside `timestamptz`), and anything else the database refuses is
/// isolated by re-appending the batch's events one by one.
///
/// Root cause: the writer sent the whole batch in one transaction and failed
/// every caller in it when any statement failed (39 of 40 appends failed
/// for one event with an out-of-range time).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_refused_event_never_fails_its_batch() {
    let Some((_db, pool, store)) = setup("audit_pg_group_isolate").await else {
        return;
    };
    let writer = Arc::new(PgGroupWriter::new(store.clone(), GroupOptions::default()));
    let t = tenant("acme");
    for micros in [i64::MAX, i64::MIN, 253_402_300_800_000_000] {
        let (ok, bad) = forty_with_one_bad(&writer, || {
            hisn_audit_log::Event::builder(&t, "u-1", "x.y")
                .at(hisn_audit_log::Timestamp::from_unix_micros(micros))
                .build(&clock())
                .unwrap()
        })
        .await;
        assert_eq!(ok, 39);
        assert!(
            matches!(bad, Err(Error::InvalidField { field: "time" })),
            "{bad:?}"
        );
    }
    // Something only the database knows about: an operator's CHECK constraint.
    sqlx::raw_sql(
        "ALTER TABLE hisn_audit_log ADD CONSTRAINT test_no_mallory CHECK (actor <> 'mallory')",
    )
    .execute(&pool)
    .await
    .unwrap();
    let (ok, bad) = forty_with_one_bad(&writer, || {
        hisn_audit_log::Event::builder(&t, "mallory", "x.y")
            .build(&clock())
            .unwrap()
    })
    .await;
    assert_eq!(ok, 39);
    assert!(matches!(bad, Err(Error::GroupCommit(_))), "{bad:?}");
    let r = store.verify(&t, None, &[]).await.unwrap();
    assert_eq!((r.verdict, r.size), (Verdict::UnanchoredTail, 4 * 39));
    Arc::into_inner(writer).unwrap().close().await;
}
