//! TOTP enrolment, step-up, replay, the try limit, recovery codes, the
//! enrolment grace period and must-change-password, through the router.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use hisn_example_server::auth::{SessionAuth, issue_with};
use hisn_example_server::db::Stmt;
use serde_json::{Value, json};

use crate::common::{PASSWORD, Resp, Server, Tenant, server, server_with, test_config, totp_code};

async fn actions(srv: &Server, tenant: &str) -> Vec<String> {
    srv.app
        .state
        .audit
        .records(tenant.parse().unwrap(), 0, 10_000)
        .await
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn step_up(srv: &Server, t: &Tenant, token: &str, body: Value) -> Resp {
    srv.call("POST", &t.path("/mfa/step-up"), Some(token), Some(body))
        .await
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn now() -> u64 {
    hisn_example_server::state::now_unix()
}

/// A sensitive admin action (a new member) with `token`.
async fn add_member(srv: &Server, t: &Tenant, token: &str) -> Resp {
    let email = format!("m{}@x.example", uuid::Uuid::new_v4().simple());
    srv.call(
        "POST",
        &t.path("/members"),
        Some(token),
        Some(json!({ "email": email, "password": PASSWORD, "role": "viewer" })),
    )
    .await
}

fn assert_step_up_challenge(r: &Resp, max_age: u64) {
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    assert_eq!(r.body, json!({ "error": "step_up_required" }));
    let challenge = r.headers["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with("Bearer error=\"insufficient_user_authentication\""),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(&format!("max_age={max_age}")),
        "{challenge}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totp_enrolment_stores_the_secret_encrypted_and_completes_with_one_valid_code() {
    totp_enrolment_stores_the_secret_encrypted_and_completes_with_one_valid_code_on(Arc::new(
        server().await,
    ))
    .await;
}

pub(crate) async fn totp_enrolment_stores_the_secret_encrypted_and_completes_with_one_valid_code_on(
    srv: Arc<Server>,
) {
    let t = srv.tenant_without_totp("Alpha").await;
    let r = srv
        .call("POST", &t.path("/mfa/totp"), Some(&t.token), None)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    let uri = r.body["otpauth_uri"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32, "at least 160 bits in base32");
    assert!(uri.starts_with("otpauth://totp/Hisn%20Example:owner%40alpha.example?secret="));
    // Stored encrypted, as pending: the secret is nowhere in the row.
    let row = srv
        .app
        .state
        .platform
        .fetch_one(
            Stmt::new("SELECT pending, secret FROM account_totp WHERE account_id = ?")
                .bind(&t.owner),
        )
        .await
        .unwrap();
    let pending: String = row.try_get("pending").unwrap();
    assert!(!pending.contains(&secret) && !pending.is_empty());
    assert!(row.try_get::<Option<String>>("secret").unwrap().is_none());
    // Not enrolled yet: a wrong code does not complete it.
    let wrong = if totp_code(&uri, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let r = srv
        .call(
            "POST",
            &t.path("/mfa/totp/confirm"),
            Some(&t.token),
            Some(json!({ "code": wrong })),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::FORBIDDEN, json!({ "error": "invalid_code" }))
    );
    let r = srv
        .call(
            "POST",
            &t.path("/mfa/totp/confirm"),
            Some(&t.token),
            Some(json!({ "code": totp_code(&uri, 0) })),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let codes = r.body["recovery_codes"].as_array().unwrap();
    assert_eq!(codes.len(), 10);
    let token = r.body["session"]["token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["amr"], json!(["pwd", "otp"]));
    assert!(c["mfa_time"].as_u64().unwrap().abs_diff(now()) < 5);
    assert_eq!(c["hisn_mfa_enrolled"], json!(true));
    let row = srv
        .app
        .state
        .platform
        .fetch_one(
            Stmt::new("SELECT pending, secret, recovery FROM account_totp WHERE account_id = ?")
                .bind(&t.owner),
        )
        .await
        .unwrap();
    assert!(row.try_get::<Option<String>>("pending").unwrap().is_none());
    let stored: String = row.try_get("secret").unwrap();
    assert!(!stored.contains(&secret));
    let recovery: String = row.try_get("recovery").unwrap();
    for code in codes {
        assert!(
            !recovery.contains(code.as_str().unwrap()),
            "recovery codes stored hashed"
        );
    }
    // The enrolled secret cannot be replaced with a password-only session.
    let r = srv
        .call("POST", &t.path("/mfa/totp"), Some(&t.token), None)
        .await;
    assert_step_up_challenge(&r, 600);
    let a = actions(&srv, &t.id).await;
    for action in [
        "mfa.totp.enrol_start",
        "mfa.totp.enrol_failed",
        "mfa.totp.enrolled",
    ] {
        assert!(a.iter().any(|x| x == action), "{action} not audited: {a:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_accepted_once_and_a_replay_is_refused() {
    a_code_is_accepted_once_and_a_replay_is_refused_on(Arc::new(server().await)).await;
}

pub(crate) async fn a_code_is_accepted_once_and_a_replay_is_refused_on(srv: Arc<Server>) {
    let t = srv.tenant("Alpha").await;
    // The confirming code's step is spent; the next step's code is in the window.
    let code = totp_code(&t.totp, 30);
    let r = step_up(&srv, &t, &t.token, json!({ "code": code })).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        claims(r.body["token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
    let r = step_up(&srv, &t, &t.token, json!({ "code": code })).await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::FORBIDDEN, json!({ "error": "invalid_code" }))
    );
    // The confirmation code (an earlier step) is refused too.
    let r = step_up(&srv, &t, &t.token, json!({ "code": totp_code(&t.totp, 0) })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let a = actions(&srv, &t.id).await;
    assert_eq!(a.iter().filter(|x| *x == "mfa.step_up").count(), 1);
    assert_eq!(a.iter().filter(|x| *x == "mfa.step_up_failed").count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submissions_of_one_code_succeed_exactly_once() {
    concurrent_submissions_of_one_code_succeed_exactly_once_on(Arc::new(server().await)).await;
}

pub(crate) async fn concurrent_submissions_of_one_code_succeed_exactly_once_on(srv: Arc<Server>) {
    let t = srv.tenant("Alpha").await;
    let code = totp_code(&t.totp, 30);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (srv, t, code) = (srv.clone(), t.clone(), code.clone());
        tasks.push(tokio::spawn(async move {
            step_up(&srv, &t, &t.token, json!({ "code": code }))
                .await
                .status
        }));
    }
    let mut ok = 0;
    for task in tasks {
        let status = task.await.unwrap();
        assert!(
            status == StatusCode::OK || status == StatusCode::FORBIDDEN,
            "{status}"
        );
        ok += usize::from(status == StatusCode::OK);
    }
    assert_eq!(ok, 1, "one code, one success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_try_limit_answers_429_and_an_account_without_totp_answers_alike() {
    the_try_limit_answers_429_and_an_account_without_totp_answers_alike_on(Arc::new(
        server().await,
    ))
    .await;
}

pub(crate) async fn the_try_limit_answers_429_and_an_account_without_totp_answers_alike_on(
    srv: Arc<Server>,
) {
    let t = srv.tenant("Alpha").await;
    let plain = srv.tenant_without_totp("Beta").await;
    let wrong = |uri: &str| {
        let c = totp_code(uri, 0);
        if c == "000000" { "111111" } else { "000000" }.to_owned()
    };
    let w = wrong(&t.totp);
    // The enrolled account spent one try of this step on its confirmation.
    for i in 0..4 {
        let a = step_up(&srv, &t, &t.token, json!({ "code": w })).await;
        let b = step_up(&srv, &plain, &plain.token, json!({ "code": w })).await;
        assert_eq!(
            (a.status, &a.body),
            (StatusCode::FORBIDDEN, &json!({ "error": "invalid_code" })),
            "try {i}"
        );
        assert_eq!(
            (a.status, &a.body),
            (b.status, &b.body),
            "enrolled and unenrolled differ"
        );
    }
    let r = step_up(&srv, &plain, &plain.token, json!({ "code": w })).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "the unenrolled account's fifth try"
    );
    // The sixth try within the step: 429, even with the right code.
    let r = step_up(
        &srv,
        &t,
        &t.token,
        json!({ "code": totp_code(&t.totp, 30) }),
    )
    .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    let r = step_up(&srv, &plain, &plain.token, json!({ "code": w })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // Failures are counted for the lock ceiling.
    let failures: i64 = srv
        .app
        .state
        .platform
        .fetch_one(
            Stmt::new("SELECT failures FROM account_totp WHERE account_id = ?").bind(&t.owner),
        )
        .await
        .unwrap()
        .try_get_at(0)
        .unwrap();
    assert_eq!(failures, 4);
    assert!(hisn_example_server::metrics::global().denials("totp") >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_failure_ceiling_locks_the_factor_until_a_single_use_recovery_code() {
    the_failure_ceiling_locks_the_factor_until_a_single_use_recovery_code_on(Arc::new(
        server().await,
    ))
    .await;
}

pub(crate) async fn the_failure_ceiling_locks_the_factor_until_a_single_use_recovery_code_on(
    srv: Arc<Server>,
) {
    let t = srv.tenant("Alpha").await;
    // 100 consecutive failures (RECOMMENDED_MAX_FAILURES) were counted.
    srv.app
        .state
        .platform
        .execute(
            Stmt::new("UPDATE account_totp SET failures = 100 WHERE account_id = ?").bind(&t.owner),
        )
        .await
        .unwrap();
    let r = step_up(
        &srv,
        &t,
        &t.token,
        json!({ "code": totp_code(&t.totp, 30) }),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::FORBIDDEN, json!({ "error": "totp_locked" }))
    );
    // A recovery code (any case, hyphens optional) steps up and unlocks.
    let code = t.recovery[3].to_lowercase().replace('-', "");
    let r = step_up(&srv, &t, &t.token, json!({ "recovery_code": code })).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(
        claims(r.body["token"].as_str().unwrap())["amr"],
        json!(["pwd", "otp"])
    );
    let r = step_up(
        &srv,
        &t,
        &t.token,
        json!({ "recovery_code": t.recovery[3] }),
    )
    .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (StatusCode::FORBIDDEN, json!({ "error": "invalid_code" }))
    );
    let r = step_up(
        &srv,
        &t,
        &t.token,
        json!({ "code": totp_code(&t.totp, 30) }),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "unlocked: {r:?}");
    let a = actions(&srv, &t.id).await;
    assert!(a.iter().any(|x| x == "mfa.recovery_code_used"));
    assert!(a.iter().any(|x| x == "mfa.recovery_code_failed"));
    let recovery: String = srv
        .app
        .state
        .platform
        .fetch_one(
            Stmt::new("SELECT recovery FROM account_totp WHERE account_id = ?").bind(&t.owner),
        )
        .await
        .unwrap()
        .try_get_at(0)
        .unwrap();
    let left = hisn_crypto_vault::StoredRecoveryCodes::from_text(&recovery).unwrap();
    assert_eq!(left.len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensitive_admin_actions_need_a_recent_second_factor() {
    sensitive_admin_actions_need_a_recent_second_factor_on(Arc::new(server().await)).await;
}

pub(crate) async fn sensitive_admin_actions_need_a_recent_second_factor_on(srv: Arc<Server>) {
    let plain = srv.tenant_without_totp("Alpha").await;
    // Password only: refused with the RFC 9470 challenge; reads still work.
    let r = add_member(&srv, &plain, &plain.token).await;
    assert_step_up_challenge(&r, 600);
    let r = srv
        .call(
            "POST",
            &plain.path("/erase"),
            Some(&plain.token),
            Some(json!({ "confirm": plain.id })),
        )
        .await;
    assert_step_up_challenge(&r, 600);
    let r = srv
        .call("GET", &plain.path("/assets"), Some(&plain.token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // After a step-up: allowed.
    let t = srv.tenant("Beta").await;
    let r = add_member(&srv, &t, &t.token).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    let r = step_up(
        &srv,
        &t,
        &t.token,
        json!({ "code": totp_code(&t.totp, 30) }),
    )
    .await;
    let fresh = r.body["token"].as_str().unwrap().to_owned();
    let r = add_member(&srv, &t, &fresh).await;
    assert_eq!(r.status, StatusCode::CREATED, "{r:?}");
    // A second factor older than HISN_STEP_UP_MAX_AGE_SECS: refused.
    let st = &srv.app.state;
    let stale = issue_with(
        &st.jwt_key,
        Duration::from_secs(900),
        t.id.parse().unwrap(),
        &t.owner,
        "owner",
        &SessionAuth {
            amr: &["pwd", "otp"],
            mfa_time: Some(now() - 601),
            facts: None,
        },
    )
    .unwrap()
    .token;
    let r = add_member(&srv, &t, &stale).await;
    assert_step_up_challenge(&r, 600);
    let r = srv
        .call(
            "PATCH",
            &t.path(&format!("/members/{}/role", t.owner)),
            Some(&stale),
            Some(json!({ "role": "admin" })),
        )
        .await;
    assert_step_up_challenge(&r, 600);
    assert!(hisn_example_server::metrics::global().denials("step_up") >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_permissions_are_refused_after_the_enrolment_grace_period() {
    admin_permissions_are_refused_after_the_enrolment_grace_period_on(Arc::new(server().await))
        .await;
}

pub(crate) async fn admin_permissions_are_refused_after_the_enrolment_grace_period_on(
    srv: Arc<Server>,
) {
    let t = srv.tenant_without_totp("Alpha").await;
    // Within the grace period: the admin reads the member list without TOTP.
    let r = srv
        .call("GET", &t.path("/members"), Some(&t.token), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let c = claims(&t.token);
    assert!(c["hisn_first_sign_in"].as_u64().unwrap().abs_diff(now()) < 5);
    assert_eq!(c["hisn_mfa_enrolled"], json!(false));
    // 15 days later (the first sign-in moved back), the next session is refused.
    srv.app
        .state
        .platform
        .execute(
            Stmt::new(
                "UPDATE accounts SET first_sign_in_at = first_sign_in_at - 15 * 86400 WHERE id = ?",
            )
            .bind(&t.owner),
        )
        .await
        .unwrap();
    let late = srv.login(&t.id, &t.email, PASSWORD).await;
    let r = srv
        .call("GET", &t.path("/members"), Some(&late), None)
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            StatusCode::FORBIDDEN,
            json!({ "error": "mfa_enrolment_required" })
        )
    );
    // Reading tenant data and enrolling still work; after enrolment, allowed.
    let r = srv.call("GET", &t.path("/assets"), Some(&late), None).await;
    assert_eq!(r.status, StatusCode::OK);
    let late_t = Tenant {
        token: late,
        ..t.clone()
    };
    let (_, _, enrolled) = srv.enrol_totp(&late_t).await;
    let r = srv
        .call("GET", &t.path("/members"), Some(&enrolled), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // The grace period is configurable: 0 days refuses from the first sign-in.
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = test_config(dir.path());
    cfg.mfa_grace_days = 0;
    let strict = server_with(cfg, dir).await;
    let u = strict.tenant_without_totp("Gamma").await;
    let r = strict
        .call("GET", &u.path("/members"), Some(&u.token), None)
        .await;
    assert_eq!(r.body, json!({ "error": "mfa_enrolment_required" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn must_change_password_restricts_the_session_to_the_password_change() {
    must_change_password_restricts_the_session_to_the_password_change_on(Arc::new(server().await))
        .await;
}

pub(crate) async fn must_change_password_restricts_the_session_to_the_password_change_on(
    srv: Arc<Server>,
) {
    let t = srv.tenant("Alpha").await;
    let r = add_member(&srv, &t, &t.token).await;
    assert_eq!(r.status, StatusCode::CREATED);
    let email: String = srv
        .app
        .state
        .platform
        .fetch_one(
            Stmt::new("SELECT email FROM accounts WHERE id = ?")
                .bind(r.body["id"].as_str().unwrap()),
        )
        .await
        .unwrap()
        .try_get_at(0)
        .unwrap();
    let token = srv.login(&t.id, &email, PASSWORD).await;
    assert_eq!(claims(&token)["must_change_password"], json!(true));
    for (method, path) in [
        ("GET", "/assets"),
        ("GET", "/work-orders"),
        ("POST", "/mfa/totp"),
    ] {
        let r = srv.call(method, &t.path(path), Some(&token), None).await;
        assert_eq!(
            (r.status, r.body.clone()),
            (
                StatusCode::FORBIDDEN,
                json!({ "error": "password_change_required" })
            ),
            "{method} {path}"
        );
    }
    let change = |current: &str| json!({ "current_password": current, "new_password": "my own long passphrase" });
    let r = srv
        .call(
            "POST",
            &t.path("/me/password"),
            Some(&token),
            Some(change("not the password")),
        )
        .await;
    assert_eq!(
        (r.status, r.body.clone()),
        (
            StatusCode::FORBIDDEN,
            json!({ "error": "invalid_password" })
        )
    );
    let r = srv
        .call(
            "POST",
            &t.path("/me/password"),
            Some(&token),
            Some(change(PASSWORD)),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let fresh = r.body["token"].as_str().unwrap();
    assert!(claims(fresh).get("must_change_password").is_none());
    let r = srv.call("GET", &t.path("/assets"), Some(fresh), None).await;
    assert_eq!(r.status, StatusCode::OK);
    // The old password is gone; the new one signs in without the restriction.
    let r = srv
        .call(
            "POST",
            "/auth/login",
            None,
            Some(json!({ "tenant": t.id, "email": email, "password": PASSWORD })),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let again = srv.login(&t.id, &email, "my own long passphrase").await;
    let r = srv
        .call("GET", &t.path("/assets"), Some(&again), None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let a = actions(&srv, &t.id).await;
    assert!(a.iter().any(|x| x == "auth.password_change"));
    assert!(a.iter().any(|x| x == "auth.password_change_failed"));
}

/// The second-factor and grant queries in the PostgreSQL dialect (migration
/// 2 applied after 1, every compare-and-set), on a database of their own
/// (`HISN_TEST_DATABASE_URL`, a superuser; skipped when unset unless
/// `HISN_REQUIRE_SERVICES=1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_queries_run_on_postgres() {
    use hisn_example_server::db::{MIGRATIONS, Platform, mfa, platform};
    let Ok(base) = std::env::var("HISN_TEST_DATABASE_URL") else {
        assert!(
            std::env::var("HISN_REQUIRE_SERVICES").map_or(true, |v| v != "1"),
            "HISN_TEST_DATABASE_URL is unset and HISN_REQUIRE_SERVICES=1"
        );
        println!("skipping: HISN_TEST_DATABASE_URL is unset");
        return;
    };
    let name = format!(
        "hisn_mfa_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let root = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&base)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&root)
        .await
        .unwrap();
    let url = match base.rsplit_once('/') {
        Some((head, _)) => format!("{head}/{name}"),
        None => panic!("database URL without a database name"),
    };
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .unwrap();
    for m in MIGRATIONS {
        sqlx::raw_sql(sqlx::AssertSqlSafe(m.postgres))
            .execute(&pool)
            .await
            .unwrap();
    }
    let db = Platform::Pg(pool.clone());
    let tenant: hisn_tenant_guard::TenantId = uuid::Uuid::new_v4().to_string().parse().unwrap();
    let user = uuid::Uuid::new_v4();
    let uid = user.to_string();
    let mut tx = db.begin().await.unwrap();
    platform::create_tenant(&mut tx, tenant, "Alpha")
        .await
        .unwrap();
    platform::insert_account(&mut tx, tenant, user, "a@x.example", "hash-1", "admin")
        .await
        .unwrap();
    mfa::require_password_change(&mut tx, tenant, user)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let f = mfa::sign_in(&db, tenant, user).await.unwrap();
    assert!(f.must_change_password && !f.enrolled);
    let first = f.first_sign_in;
    assert_eq!(
        mfa::sign_in(&db, tenant, user).await.unwrap().first_sign_in,
        first
    );
    assert!(
        mfa::change_password(&db, tenant, user, "hash-1", "hash-2")
            .await
            .unwrap()
    );
    assert!(
        !mfa::change_password(&db, tenant, user, "hash-1", "hash-3")
            .await
            .unwrap()
    );
    assert!(
        !mfa::facts(&db, tenant, user)
            .await
            .unwrap()
            .must_change_password
    );
    // Enrolment: pending, then activated once (compare-and-set on the pending secret).
    mfa::set_pending(&db, tenant, &uid, "sealed-1")
        .await
        .unwrap();
    mfa::set_pending(&db, tenant, &uid, "sealed-2")
        .await
        .unwrap();
    assert!(
        !mfa::activate(&db, tenant, &uid, "sealed-1", "secret", 10, "codes-1")
            .await
            .unwrap()
    );
    assert!(
        mfa::activate(&db, tenant, &uid, "sealed-2", "secret", 10, "codes-1")
            .await
            .unwrap()
    );
    assert!(mfa::facts(&db, tenant, user).await.unwrap().enrolled);
    // Steps only move forward; two racing updates to one step: one wins.
    assert!(!mfa::advance_step(&db, tenant, &uid, 10).await.unwrap());
    let (a, b) = tokio::join!(
        mfa::advance_step(&db, tenant, &uid, 11),
        mfa::advance_step(&db, tenant, &uid, 11)
    );
    assert!(
        a.unwrap() ^ b.unwrap(),
        "exactly one of two concurrent accepts"
    );
    mfa::record_failure(&db, tenant, &uid).await.unwrap();
    let row = mfa::totp(&db, tenant, &uid).await.unwrap().unwrap();
    assert_eq!((row.last_step, row.failures), (Some(11), 1));
    assert!(
        mfa::spend_recovery(&db, tenant, &uid, "codes-1", "codes-2")
            .await
            .unwrap()
    );
    assert!(
        !mfa::spend_recovery(&db, tenant, &uid, "codes-1", "codes-3")
            .await
            .unwrap()
    );
    assert_eq!(
        mfa::totp(&db, tenant, &uid)
            .await
            .unwrap()
            .unwrap()
            .failures,
        0
    );
    // Grants: unknown is not live; issued is; revoked once.
    let g = mfa::GrantRow {
        id: uuid::Uuid::new_v4().to_string(),
        support_user: "support:alice".into(),
        access: "read_only".into(),
        reason: "customer asked".into(),
        ticket: "SUP-1".into(),
        issued_at: 1,
        expires_at: 2,
        revoked_at: None,
    };
    assert!(!mfa::grant_live(&db, tenant, &g.id).await.unwrap());
    mfa::insert_grant(&db, tenant, &g).await.unwrap();
    assert!(mfa::grant_live(&db, tenant, &g.id).await.unwrap());
    assert!(mfa::revoke_grant(&db, tenant, &g.id).await.unwrap());
    assert!(!mfa::revoke_grant(&db, tenant, &g.id).await.unwrap());
    assert!(!mfa::grant_live(&db, tenant, &g.id).await.unwrap());
    mfa::notify_admins(&db, tenant, "support_grant.used", &json!({ "n": 1 }))
        .await
        .unwrap();
    let n = mfa::notifications(&db, tenant, 10, 0).await.unwrap();
    assert_eq!(n[0]["body"], json!({ "n": 1 }));
    pool.close().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&root)
    .await
    .unwrap();
}

/// The second-factor and support-grant flows again on PostgreSQL with the
/// query guard and RLS (the same functions as the SQLite tests above).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn second_factor_and_grant_flows_on_postgres() {
    use crate::grants::*;
    let test = "second_factor_and_grant_flows_on_postgres";
    let Some(db) = crate::services::TestDb::create(test).await else {
        return;
    };
    let srv = Arc::new(db.server(hisn_example_server::danger::Layers::ALL).await);
    totp_enrolment_stores_the_secret_encrypted_and_completes_with_one_valid_code_on(srv.clone())
        .await;
    a_code_is_accepted_once_and_a_replay_is_refused_on(srv.clone()).await;
    concurrent_submissions_of_one_code_succeed_exactly_once_on(srv.clone()).await;
    the_failure_ceiling_locks_the_factor_until_a_single_use_recovery_code_on(srv.clone()).await;
    sensitive_admin_actions_need_a_recent_second_factor_on(srv.clone()).await;
    admin_permissions_are_refused_after_the_enrolment_grace_period_on(srv.clone()).await;
    must_change_password_restricts_the_session_to_the_password_change_on(srv.clone()).await;
    a_read_only_grant_reads_one_tenant_and_every_use_is_audited_and_notified_on(srv.clone()).await;
    writes_are_refused_unless_the_grant_lists_the_permission_on(srv.clone()).await;
    a_grant_opens_no_other_tenant_on(srv.clone()).await;
    expired_and_revoked_grants_are_refused_on(srv.clone()).await;
    no_grant_becomes_the_customer_s_session_on(srv.clone()).await;
}

/// Two instances on one PostgreSQL and Redis: a code accepted on one is a
/// replay on the other, the try limit counts both, and a grant issued on one
/// is honoured, audited and revoked on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_factor_and_grants_hold_across_two_instances() {
    use crate::multi_instance::instance;
    use crate::services::{TestDb, redis_prefix, redis_url};
    let test = "second_factor_and_grants_hold_across_two_instances";
    let Some(redis) = redis_url(test) else { return };
    let Some(db) = TestDb::create(test).await else {
        return;
    };
    let prefix = redis_prefix();
    let one = instance(&db, &redis, &prefix, None, true).await;
    let two = instance(&db, &redis, &prefix, Some(one.dir.path()), false).await;
    let t = one.tenant("Alpha").await;
    let code = totp_code(&t.totp, 30);
    let r = step_up(&one, &t, &t.token, json!({ "code": code })).await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let r = step_up(&two, &t, &t.token, json!({ "code": code })).await;
    assert_eq!(
        r.body,
        json!({ "error": "invalid_code" }),
        "replayed on the other instance"
    );
    // 1 confirm + 2 above; 2 more tries (one per instance), then 429 on either.
    let wrong = if totp_code(&t.totp, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    for srv in [&one, &two] {
        let r = step_up(srv, &t, &t.token, json!({ "code": wrong })).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    }
    let r = step_up(&one, &t, &t.token, json!({ "code": wrong })).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{r:?}");
    // A grant signed on one is honoured on the other, and revoked everywhere
    // (another tenant: this one used its quota of 7 above).
    let t = one.tenant_without_totp("Beta").await;
    let grant = one.grant(&t, None).await;
    let r = two
        .call("GET", &t.path("/assets"), Some(&grant), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    let id = one.last_audit(&t.id).await["entity_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut req = crate::common::request(
        "DELETE",
        &format!("/operator/tenants/{}/grants/{id}", t.id),
        Some(&two.operator_token()),
        None,
    );
    req.headers_mut()
        .insert("x-reason", "ticket closed early".parse().unwrap());
    assert_eq!(two.send(req).await.status, StatusCode::NO_CONTENT);
    let r = one
        .call("GET", &t.path("/assets"), Some(&grant), None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}
