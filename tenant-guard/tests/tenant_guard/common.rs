//! Helpers shared by the test modules: keys, token minting, a fixed clock.

use std::sync::Arc;

use hisn_tenant_guard::jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use hisn_tenant_guard::{Issuer, ManualClock, TenantContext, TokenVerifier};
use serde_json::{Value, json};

/// Test-only RSA keys (generated for this test suite, never used elsewhere).
pub const ISSUER_PRIVATE: &[u8] = include_bytes!("../data/jwt_issuer_rsa_private.pem");
pub const ISSUER_PUBLIC: &[u8] = include_bytes!("../data/jwt_issuer_rsa_public.pem");
pub const ATTACKER_PRIVATE: &[u8] = include_bytes!("../data/jwt_attacker_rsa_private.pem");

pub const ISS: &str = "https://idp.example.test";
pub const AUD: &str = "hisn-api";
pub const KID: &str = "issuer-2026";
pub const HMAC_ISS: &str = "https://internal.example.test";
pub const HMAC_KID: &str = "internal-1";
pub const HMAC_SECRET: &[u8] = b"integration-test-hmac-secret-0123456789";
pub const NOW: u64 = 1_800_000_000;

pub const TENANT_A: &str = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa";
pub const TENANT_B: &str = "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb";
pub const USER: &str = "cccccccc-cccc-4ccc-8ccc-cccccccccccc";

/// A verifier trusting one RS256 issuer and one HS256 issuer, at `NOW`.
pub fn verifier() -> (TokenVerifier, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::new(NOW));
    let v = TokenVerifier::builder()
        .issuer(
            Issuer::new(ISS, AUD, &[Algorithm::RS256])
                .key(KID, DecodingKey::from_rsa_pem(ISSUER_PUBLIC).unwrap()),
        )
        .issuer(
            Issuer::new(HMAC_ISS, AUD, &[Algorithm::HS256])
                .key(HMAC_KID, DecodingKey::from_secret(HMAC_SECRET)),
        )
        .clock(clock.clone())
        .build()
        .unwrap();
    (v, clock)
}

/// Valid claims for `tenant`, expiring an hour after `NOW`.
pub fn claims(tenant: &str) -> Value {
    json!({
        "iss": ISS, "aud": AUD, "sub": USER, "exp": NOW + 3600, "iat": NOW,
        "tenant_id": tenant, "roles": ["member"], "clients": [],
    })
}

/// Sign `claims` with RS256 and the issuer's key under `KID`.
pub fn rs256(claims: &Value) -> String {
    sign(
        Algorithm::RS256,
        Some(KID),
        claims,
        &EncodingKey::from_rsa_pem(ISSUER_PRIVATE).unwrap(),
    )
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut h = Header::new(alg);
    h.kid = kid.map(str::to_owned);
    hisn_tenant_guard::jsonwebtoken::encode(&h, claims, key).unwrap()
}

/// A verified context for `tenant` (through a real token, no test constructor).
/// Cached per tenant: RS256 verification is slow in unoptimised test builds.
pub fn context(tenant: &str) -> TenantContext {
    static CACHE: std::sync::Mutex<Vec<(String, TenantContext)>> =
        std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap();
    if let Some((_, ctx)) = cache.iter().find(|(t, _)| t == tenant) {
        return ctx.clone();
    }
    let (v, _) = verifier();
    let ctx = v.verify(&rs256(&claims(tenant))).unwrap();
    cache.push((tenant.to_owned(), ctx.clone()));
    ctx
}

/// Schema shared by the database tests: two tenant tables with composite
/// keys (so unique and foreign-key checks never cross tenants) and one shared table.
pub const PG_SCHEMA: &[&str] = &[
    "create table assets (id uuid not null default gen_random_uuid(), tenant_id uuid not null, name text not null, \
     serial_no text, primary key (tenant_id, id), unique (tenant_id, serial_no))",
    "create table work_orders (id uuid not null default gen_random_uuid(), tenant_id uuid not null, asset_id uuid not null, \
     title text not null, status text not null default 'open', primary key (tenant_id, id), \
     foreign key (tenant_id, asset_id) references assets (tenant_id, id))",
    "create table countries (code text primary key, name text not null)",
];

pub const TABLES: &str = "assets:tenant_id,work_orders:tenant_id";

pub const COUNTRIES: &str =
    "insert into countries values ('SA', 'Saudi Arabia'), ('AE', 'United Arab Emirates');";

/// Both tenants' rows (the same text works for PostgreSQL uuid and SQLite text
/// columns). Tenant B holds the same serial number `S-1` as tenant A: unique
/// keys are per tenant.
pub fn data() -> String {
    format!(
        "insert into assets (id, tenant_id, name, serial_no) values
           ('a0000000-0000-4000-8000-000000000001', '{TENANT_A}', 'pump A1', 'S-1'),
           ('a0000000-0000-4000-8000-000000000002', '{TENANT_A}', 'valve A2', 'S-2'),
           ('b0000000-0000-4000-8000-000000000001', '{TENANT_B}', 'pump B1', 'S-1'),
           ('b0000000-0000-4000-8000-000000000002', '{TENANT_B}', 'secret B2', 'S-3');
         insert into work_orders (id, tenant_id, asset_id, title) values
           ('a1000000-0000-4000-8000-000000000001', '{TENANT_A}', 'a0000000-0000-4000-8000-000000000001', 'fix A1'),
           ('b1000000-0000-4000-8000-000000000001', '{TENANT_B}', 'b0000000-0000-4000-8000-000000000001', 'fix B1'),
           ('b1000000-0000-4000-8000-000000000002', '{TENANT_B}', 'b0000000-0000-4000-8000-000000000002', 'fix B2');"
    )
}

/// A test database with the schema, RLS applied for a fresh non-owner login
/// role, two tenants' data, and pools as the superuser and as the app role.
#[cfg(feature = "postgres")]
pub mod pg {
    use hisn_tenant_guard::rls;
    use hisn_tenant_guard::sqlx::postgres::{PgPool, PgPoolOptions};
    use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};
    use hisn_test_support::TestDatabase;

    use super::{PG_SCHEMA, TABLES};

    /// The context key the fixtures install and the pools sign with.
    pub fn key() -> rls::ContextKey {
        rls::ContextKey::from_bytes([0x42; 32])
    }

    pub struct Fixture {
        pub db: TestDatabase,
        pub admin: PgPool,
        pub app: PgPool,
        pub role: String,
        /// The tables' owner (an ordinary role, as `verify` requires).
        pub owner: String,
        /// Roles a test created with [`Fixture::extra_role`], dropped on drop.
        pub extra: std::sync::Mutex<Vec<String>>,
    }

    pub async fn exec(pool: &PgPool, sql: &str) {
        sqlx::raw_sql(AssertSqlSafe(sql.to_owned()))
            .execute(pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Run `sql` as `role` (the superuser pool switches role for the batch).
    pub async fn exec_as(pool: &PgPool, role: &str, sql: &str) {
        exec(pool, &format!("set role \"{role}\";\n{sql};\nreset role;")).await;
    }

    /// `rls::verify_with` the fixture's shared table `countries` declared
    /// global (what an install declares after the fail-closed default
    /// reported it as `Finding::UndeclaredTable`).
    pub async fn verify(
        pool: &PgPool,
        tables: &[rls::TenantTable],
    ) -> Result<rls::RlsReport, hisn_tenant_guard::Error> {
        rls::verify_with(pool, tables, &globals()).await
    }

    /// The fixture's declarations: `countries` is global.
    pub fn globals() -> rls::VerifyOptions {
        rls::VerifyOptions::new()
            .global_tables(["countries"])
            .unwrap()
    }

    /// `None` when PostgreSQL is not configured (the test is skipped).
    pub async fn fixture(test: &str, max_app_connections: u32) -> Option<Fixture> {
        let db = hisn_test_support::postgres(test).await?;
        let admin = db.pool().await;
        let role = hisn_test_support::unique_name("hisn_tg_app_");
        let owner = hisn_test_support::unique_name("hisn_tg_own_");
        exec(&admin, &format!("create role \"{role}\" login; create role \"{owner}\"; grant create on schema public to \"{owner}\"")).await;
        for s in PG_SCHEMA {
            exec_as(&admin, &owner, s).await;
        }
        exec_as(
            &admin,
            &owner,
            &rls::generate_sql(&rls::parse_tables(TABLES).unwrap(), &role, &key()).unwrap(),
        )
        .await;
        exec_as(
            &admin,
            &owner,
            &format!("grant select on countries to \"{role}\""),
        )
        .await;
        // Two tenants' data, loaded as the superuser (who bypasses RLS).
        exec(&admin, super::COUNTRIES).await;
        exec(&admin, &super::data()).await;
        let app = PgPoolOptions::new()
            .max_connections(max_app_connections)
            .connect_with(db.connect_options().username(&role))
            .await
            .unwrap();
        Some(Fixture {
            db,
            admin,
            app,
            role,
            owner,
            extra: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// A fingerprint of every row of tenant B, read as the superuser.
    pub async fn tenant_b_snapshot(admin: &PgPool) -> String {
        sqlx::query_scalar(
            "select coalesce((select string_agg(t::text, '|' order by t::text) from assets t where tenant_id = $1::uuid), '') \
             || '#' || coalesce((select string_agg(t::text, '|' order by t::text) from work_orders t where tenant_id = $1::uuid), '')",
        )
        .bind(super::TENANT_B)
        .fetch_one(admin)
        .await
        .unwrap()
    }

    impl Fixture {
        /// Create a role with `attributes` (e.g. `nologin bypassrls`); dropped with the fixture.
        pub async fn extra_role(&self, attributes: &str) -> String {
            let name = hisn_test_support::unique_name("hisn_tg_x_");
            exec(&self.admin, &format!("create role \"{name}\" {attributes}")).await;
            self.extra.lock().unwrap().push(name.clone());
            name
        }

        /// Close the pools; `Drop` then removes the role and the database.
        pub async fn teardown(self) {
            self.app.close().await;
            self.admin.close().await;
        }
    }

    impl Drop for Fixture {
        /// Drop the cluster-wide role even when the test panicked (before the
        /// database itself is dropped by `TestDatabase`).
        fn drop(&mut self) {
            let options = self.db.connect_options();
            let role = self.role.clone();
            let owner = self.owner.clone();
            let extra = std::mem::take(&mut *self.extra.lock().unwrap_or_else(|e| e.into_inner()));
            let cleanup = std::thread::spawn(move || {
                sqlx::test_block_on(async move {
                    use sqlx::Connection as _;
                    let Ok(mut conn) = sqlx::PgConnection::connect_with(&options).await else {
                        return;
                    };
                    // A test that panicked left its connections open, one
                    // perhaps idle in a transaction holding locks that
                    // `drop owned` would wait on forever: end every other
                    // session of the test database first, and never wait
                    // on a lock for long.
                    let sql = format!(
                        "set lock_timeout = '10s'; \
                         select pg_terminate_backend(pid) from pg_stat_activity \
                          where datname = current_database() and pid <> pg_backend_pid(); \
                         drop owned by \"{role}\"; drop role \"{role}\"; drop owned by \"{owner}\"; drop role \"{owner}\""
                    );
                    if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await {
                        eprintln!("could not drop test role {role}: {e}");
                    }
                    for x in extra {
                        let sql = format!("drop owned by \"{x}\"; drop role \"{x}\"");
                        if let Err(e) = sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut conn).await {
                            eprintln!("could not drop test role {x}: {e}");
                        }
                    }
                    let _ = conn.close().await;
                });
            });
            let _ = cleanup.join();
        }
    }
}

/// An in-memory SQLite database with the same schema (ids as text) and data.
#[cfg(feature = "sqlite")]
pub mod lite {
    use hisn_tenant_guard::sqlx::sqlite::{SqlitePool, SqlitePoolOptions};
    use hisn_tenant_guard::sqlx::{self, AssertSqlSafe};

    pub async fn pool() -> SqlitePool {
        // One connection: every connection to `sqlite::memory:` is its own database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        let sql = format!(
            "create table assets (id text not null, tenant_id text not null, name text not null, serial_no text,
                primary key (tenant_id, id), unique (tenant_id, serial_no));
             create table work_orders (id text not null default (lower(hex(randomblob(16)))), tenant_id text not null,
                asset_id text not null, title text not null, status text not null default 'open',
                primary key (tenant_id, id), foreign key (tenant_id, asset_id) references assets (tenant_id, id));
             create table countries (code text primary key, name text not null);
             {}
             {}",
            super::COUNTRIES,
            super::data()
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&pool)
            .await
            .unwrap();
        pool
    }
}
