//! Set-up shared by the `load` and `inproc` examples.

use hisn_example_server::config::Rate;
use hisn_example_server::{App, Config};
use serde_json::json;

/// A configuration in `dir` whose rate-limit tiers never bind a benchmark.
pub(crate) fn unlimited_config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::for_data_dir(dir);
    let high = Rate::new(1_000_000, 1).unwrap();
    (cfg.session_rate, cfg.tenant_rate, cfg.ip_rate) = (high, high, high);
    cfg
}

/// The first demo tenant of an app on SQLite and one of its assets.
pub(crate) async fn sqlite_tenant_asset(app: &App) -> (sqlx::SqlitePool, String, String) {
    let pool = app.state.platform.as_sqlite().unwrap().clone();
    let tenant: String = sqlx::query_scalar("SELECT id FROM tenants ORDER BY created_at LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let asset: String = sqlx::query_scalar("SELECT id FROM assets WHERE tenant_id = ?")
        .bind(&tenant)
        .fetch_one(&pool)
        .await
        .unwrap();
    (pool, tenant, asset)
}

/// A session token of the demo owner of `tenant`.
pub(crate) async fn owner_token(app: &App, tenant: &str) -> String {
    let (_, v) = hisn_example_server::demo::call(
        app,
        "POST",
        "/auth/login",
        None,
        Some(json!({ "tenant": tenant, "email": "owner@acme.example", "password": "correct horse battery staple" })),
    )
    .await
    .unwrap();
    v["token"].as_str().unwrap().to_owned()
}
