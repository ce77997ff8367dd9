//! `PgKeyStore` against a real PostgreSQL (via `hisn-test-support`).

use hisn_crypto_vault::{
    Error, FieldContext, KeyId, KeyPurpose, KeyStore, MasterKey, PgKeyStore, Vault,
};

async fn store(name: &str) -> Option<(hisn_test_support::TestDatabase, PgKeyStore)> {
    let db = hisn_test_support::postgres(name).await?;
    let s = PgKeyStore::new(db.pool().await);
    s.migrate().await.unwrap();
    s.migrate().await.unwrap(); // idempotent
    Some((db, s))
}

fn ctx(row: &str) -> FieldContext<'_> {
    FieldContext::new("acme", "docs", "body", row).unwrap()
}

#[tokio::test]
async fn pg_store_full_lifecycle() {
    let Some((_db, s)) = store("crypto_vault_pg_lifecycle").await else {
        return;
    };
    let master = MasterKey::generate().unwrap();
    let v = Vault::new(s.clone(), master.clone())
        .with_usage_cap(1000)
        .unwrap();
    let ct1 = v.encrypt(&ctx("1"), b"one").await.unwrap();
    assert_eq!(v.rotate_data_key("acme").await.unwrap(), KeyId(2));
    let ct2 = v.encrypt(&ctx("2"), b"two").await.unwrap();
    v.persist_usage("acme").await.unwrap();

    // A second process over the same database reads both values.
    let v2 = Vault::new(s.clone(), master.clone());
    assert_eq!(
        v2.decrypt(&ctx("1"), &ct1).await.unwrap().as_bytes(),
        b"one"
    );
    assert_eq!(
        v2.decrypt(&ctx("2"), &ct2).await.unwrap().as_bytes(),
        b"two"
    );
    let keys = s.load("acme").await.unwrap();
    assert_eq!(
        keys.iter()
            .filter(|k| k.purpose == KeyPurpose::Data)
            .count(),
        2
    );
    assert_eq!(
        keys.iter().filter(|k| k.primary).count(),
        2,
        "one primary data key, one primary index key"
    );
    assert_eq!(
        keys.iter()
            .find(|k| k.key_id == KeyId(1) && k.purpose == KeyPurpose::Data)
            .unwrap()
            .usage,
        1
    );

    // The partial unique index refuses a second primary.
    let mut dup = keys
        .iter()
        .find(|k| k.primary && k.purpose == KeyPurpose::Data)
        .unwrap()
        .clone();
    dup.key_id = KeyId(99);
    assert!(!s.insert(&dup).await.unwrap());

    // Master rotation over PostgreSQL.
    let new = MasterKey::generate().unwrap();
    let v3 = Vault::new(s.clone(), new.clone()).with_previous_master(master);
    assert_eq!(v3.rewrap_all().await.unwrap().rewrapped, 3);
    let v4 = Vault::new(s.clone(), new);
    assert_eq!(
        v4.decrypt(&ctx("1"), &ct1).await.unwrap().as_bytes(),
        b"one"
    );

    // Retire, then shred.
    assert!(v4.delete_retired_key("acme", KeyId(2)).await.is_err());
    v4.shred_tenant("acme").await.unwrap();
    assert!(matches!(
        v4.decrypt(&ctx("2"), &ct2).await,
        Err(Error::TenantShredded)
    ));
    assert!(s.tenants().await.unwrap().is_empty());
    assert!(matches!(s.insert(&dup).await, Err(Error::TenantShredded)));
}

#[tokio::test]
async fn ciphertext_round_trips_through_bytea_and_text_columns() {
    let Some(db) = hisn_test_support::postgres("crypto_vault_pg_columns").await else {
        return;
    };
    let pool = db.pool().await;
    sqlx::query("create table secrets (id text primary key, b bytea not null, t text not null)")
        .execute(&pool)
        .await
        .unwrap();
    let v = Vault::new(
        hisn_crypto_vault::MemoryKeyStore::new(),
        MasterKey::generate().unwrap(),
    );
    let ct = v.encrypt(&ctx("1"), b"oauth-token").await.unwrap();
    sqlx::query("insert into secrets values ($1, $2, $3)")
        .bind("1")
        .bind(&ct)
        .bind(hisn_crypto_vault::TextCiphertext(ct.clone()))
        .execute(&pool)
        .await
        .unwrap();
    let (b, t): (
        hisn_crypto_vault::Ciphertext,
        hisn_crypto_vault::TextCiphertext,
    ) = sqlx::query_as("select b, t from secrets where id = '1'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(b, ct);
    assert_eq!(t.0, ct);
    let text: String = sqlx::query_scalar("select t from secrets")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(text.starts_with("hv1:"));
    assert_eq!(
        v.decrypt(&ctx("1"), &b).await.unwrap().as_bytes(),
        b"oauth-token"
    );
    // A malformed column value is a decode error, not a panic.
    sqlx::query("update secrets set b = '\\x0102'::bytea")
        .execute(&pool)
        .await
        .unwrap();
    let bad: Result<(hisn_crypto_vault::Ciphertext,), _> = sqlx::query_as("select b from secrets")
        .fetch_one(&pool)
        .await;
    assert!(bad.is_err());
}
