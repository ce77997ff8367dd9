//! Proves the helpers against the real services: each test gets its own
//! database or key prefix, and cleans it up.

use sqlx::Row;

#[tokio::test]
async fn postgres_databases_are_fresh_and_isolated() {
    let Some(a) = hisn_test_support::postgres("postgres_databases_are_fresh_and_isolated").await
    else {
        return;
    };
    let Some(b) = hisn_test_support::postgres("postgres_databases_are_fresh_and_isolated").await
    else {
        return;
    };
    assert_ne!(a.name(), b.name());

    let pa = a.pool().await;
    let pb = b.pool().await;
    sqlx::query("create table t (v int)")
        .execute(&pa)
        .await
        .unwrap();
    sqlx::query("insert into t values (41), (1)")
        .execute(&pa)
        .await
        .unwrap();
    let sum: i64 = sqlx::query("select sum(v) from t")
        .fetch_one(&pa)
        .await
        .unwrap()
        .get(0);
    assert_eq!(sum, 42);
    let current: String = sqlx::query("select current_database()")
        .fetch_one(&pa)
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, a.name());

    // The other test database does not see the table.
    let err = sqlx::query("select * from t")
        .fetch_all(&pb)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");

    // Dropping the handle removes the database.
    let name = a.name().to_owned();
    pa.close().await;
    drop(a);
    let n: i64 = sqlx::query("select count(*) from pg_database where datname = $1")
        .bind(&name)
        .fetch_one(&pb)
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 0, "test database {name} was not dropped");
}

#[tokio::test]
async fn redis_prefixes_are_unique_and_cleaned_up() {
    let Some(a) = hisn_test_support::redis("redis_prefixes_are_unique_and_cleaned_up").await else {
        return;
    };
    let Some(b) = hisn_test_support::redis("redis_prefixes_are_unique_and_cleaned_up").await else {
        return;
    };
    assert_ne!(a.prefix(), b.prefix());

    let mut conn = a.connection().await;
    let key = a.key("k");
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let got: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(got.as_deref(), Some("v"));
    let other: Option<String> = redis::cmd("GET")
        .arg(b.key("k"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(other, None);

    drop(a);
    let after: Option<String> = redis::cmd("GET")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(after, None, "keys under the prefix survive the handle");
}
