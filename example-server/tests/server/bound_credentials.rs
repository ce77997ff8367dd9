//! Recovery codes and API keys are bound to their owner (crypto-vault's
//! `generate_for`/`verify_for`, `mint_for`/`verify_for`): a recovery code
//! set copied into another account's row, or an API key record moved to
//! another tenant or with its role or expiry edited in the database, no
//! longer verifies through the server.

use axum::http::StatusCode;
use hisn_example_server::db::Stmt;
use serde_json::json;

use crate::common::{Server, server};

async fn sql(srv: &Server, s: Stmt) {
    srv.app.state.platform.execute(s).await.unwrap();
}

async fn exchange(srv: &Server, key: &str) -> StatusCode {
    srv.call("POST", "/auth/token", None, Some(json!({ "api_key": key })))
        .await
        .status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_code_set_copied_into_another_accounts_row_does_not_verify() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let a_set: String = srv
        .app
        .state
        .platform
        .fetch_one(
            Stmt::new("SELECT recovery FROM account_totp WHERE account_id = ?").bind(&a.owner),
        )
        .await
        .unwrap()
        .try_get_at(0)
        .unwrap();
    // B's row now holds A's set: A's codes must not pass B's second factor.
    sql(
        &srv,
        Stmt::new("UPDATE account_totp SET recovery = ? WHERE account_id = ?")
            .bind(&a_set)
            .bind(&b.owner),
    )
    .await;
    let r = srv
        .call(
            "POST",
            &b.path("/mfa/step-up"),
            Some(&b.token),
            Some(json!({ "recovery_code": a.recovery[0] })),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::FORBIDDEN, json!({ "error": "invalid_code" })),
        "A's recovery code passed B's step-up"
    );
    // In its own row the same code verifies (the set itself is intact).
    let r = srv
        .call(
            "POST",
            &a.path("/mfa/step-up"),
            Some(&a.token),
            Some(json!({ "recovery_code": a.recovery[0] })),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_record_moved_or_edited_in_the_database_does_not_verify() {
    let srv = server().await;
    let a = srv.tenant("Alpha").await;
    let b = srv.tenant("Beta").await;
    let seed = srv.seed(&a).await;
    assert_eq!(exchange(&srv, &seed.api_key).await, StatusCode::OK);
    for (edit, undo) in [
        // Its role raised from viewer to admin.
        (
            "UPDATE api_keys SET role = 'admin' WHERE id = ?",
            "UPDATE api_keys SET role = 'viewer' WHERE id = ?",
        ),
        // Its expiry pushed out.
        (
            "UPDATE api_keys SET expires_at = expires_at + 86400 WHERE id = ?",
            "UPDATE api_keys SET expires_at = expires_at - 86400 WHERE id = ?",
        ),
        // Its expiry removed.
        ("UPDATE api_keys SET expires_at = NULL WHERE id = ?", ""),
    ] {
        let before: Option<i64> = srv
            .app
            .state
            .platform
            .fetch_one(
                Stmt::new("SELECT expires_at FROM api_keys WHERE id = ?").bind(&seed.api_key_id),
            )
            .await
            .unwrap()
            .try_get_at(0)
            .unwrap();
        sql(&srv, Stmt::new(edit).bind(&seed.api_key_id)).await;
        assert_eq!(
            exchange(&srv, &seed.api_key).await,
            StatusCode::UNAUTHORIZED,
            "{edit}"
        );
        if undo.is_empty() {
            sql(
                &srv,
                Stmt::new("UPDATE api_keys SET expires_at = ? WHERE id = ?")
                    .bind(before.unwrap())
                    .bind(&seed.api_key_id),
            )
            .await;
        } else {
            sql(&srv, Stmt::new(undo).bind(&seed.api_key_id)).await;
        }
        assert_eq!(
            exchange(&srv, &seed.api_key).await,
            StatusCode::OK,
            "{undo}"
        );
    }
    // Moved to another tenant.
    sql(
        &srv,
        Stmt::new("UPDATE api_keys SET tenant_id = ? WHERE id = ?")
            .bind(&b.id)
            .bind(&seed.api_key_id),
    )
    .await;
    assert_eq!(
        exchange(&srv, &seed.api_key).await,
        StatusCode::UNAUTHORIZED
    );
}
