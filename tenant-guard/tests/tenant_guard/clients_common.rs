//! Two-level tenancy and role gates (issue 17): the shared fixture. Tenant A
//! (a firm) keeps books for clients X and Y; tenant B for client Z. Every
//! ledger row carries both `tenant_id` and `client_id`; `hr.salaries` is
//! gated to `hr_admin` / `hr_viewer`; `firm_admin` is organisation-wide.
//!
//! Contexts come from real (HS256) tokens, so roles and client grants are
//! exactly what a verified token carries.

use hisn_tenant_guard::TenantContext;
use hisn_tenant_guard::guard::{Dialect, QueryGuard, TableRegistry};
use hisn_tenant_guard::jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::json;

use crate::common::{AUD, HMAC_ISS, HMAC_KID, HMAC_SECRET, NOW, TENANT_A, TENANT_B, USER, sign};

pub const CLIENT_X: &str = "11111111-0000-4000-8000-00000000000a";
pub const CLIENT_Y: &str = "22222222-0000-4000-8000-00000000000b";
pub const CLIENT_Z: &str = "33333333-0000-4000-8000-00000000000c";

/// The guard's registry (PostgreSQL and SQLite alike).
pub const SPEC: &str =
    "ledger:tenant_id:client_id(id,memo,amount),hr.salaries:tenant_id(id,employee,amount)";
pub const GATES: &str = "hr.salaries=hr_viewer/hr_admin";
pub const ORG_WIDE: &str = "firm_admin";

/// Values only client Y (tenant A) holds, and only tenant B holds.
pub const Y_MARKERS: &[&str] = &["y-secret", "y-other"];
pub const B_MARKERS: &[&str] = &["z-secret"];
pub const SALARY: &str = "alice 9000";

pub fn registry() -> TableRegistry {
    TableRegistry::parse_spec(SPEC)
        .unwrap()
        .parse_role_gates(GATES)
        .unwrap()
        .org_wide_roles([ORG_WIDE])
        .unwrap()
}

pub fn guard(dialect: Dialect) -> QueryGuard {
    QueryGuard::new(registry(), dialect)
}

/// The rows of both tenants; ids as text (PostgreSQL casts them to uuid).
pub fn data() -> String {
    format!(
        "insert into ledger (id, tenant_id, client_id, memo, amount) values
           ('a0000000-0000-4000-8000-000000000001', '{TENANT_A}', '{CLIENT_X}', 'x-one', 10),
           ('a0000000-0000-4000-8000-000000000002', '{TENANT_A}', '{CLIENT_X}', 'x-two', 20),
           ('a0000000-0000-4000-8000-000000000003', '{TENANT_A}', '{CLIENT_Y}', 'y-secret', 30),
           ('a0000000-0000-4000-8000-000000000004', '{TENANT_A}', '{CLIENT_Y}', 'y-other', 40),
           ('b0000000-0000-4000-8000-000000000001', '{TENANT_B}', '{CLIENT_Z}', 'z-secret', 50);
         insert into hr.salaries (id, tenant_id, employee, amount) values
           ('c0000000-0000-4000-8000-000000000001', '{TENANT_A}', 'alice 9000', 9000);"
    )
}

/// A verified context for tenant A (or `tenant`) with `roles` and `clients`.
pub fn ctx_for(tenant: &str, roles: &[&str], clients: &[&str]) -> TenantContext {
    let (v, _) = crate::common::verifier();
    let claims = json!({
        "iss": HMAC_ISS, "aud": AUD, "sub": USER, "exp": NOW + 3600, "iat": NOW,
        "tenant_id": tenant, "roles": roles, "clients": clients,
    });
    let token = sign(
        Algorithm::HS256,
        Some(HMAC_KID),
        &claims,
        &EncodingKey::from_secret(HMAC_SECRET),
    );
    v.verify(&token).unwrap()
}

pub fn ctx(roles: &[&str], clients: &[&str]) -> TenantContext {
    ctx_for(TENANT_A, roles, clients)
}

/// Every row of client Y, as text, read by an organisation-wide session
/// (the same SQL on both databases; only the SQLite suite reads it today).
#[cfg(feature = "sqlite")]
pub const Y_FINGERPRINT: &str = "SELECT memo || ':' || amount || ':' || id || ':' || client_id FROM ledger \
     WHERE memo LIKE 'y%' OR client_id = '22222222-0000-4000-8000-00000000000b' ORDER BY 1";

/// Whether any of `rows` holds one of `markers`.
pub fn leaks(rows: &[String], markers: &[&str]) -> bool {
    rows.iter().any(|r| markers.iter().any(|m| r.contains(m)))
}

/// Client-smuggling attempts, as tenant A with a grant for client X only
/// (`$CLIENT_Y` is replaced by Y's id). Each must be refused, fail, or
/// return and change nothing of Y.
pub const SMUGGLING: &[(&str, &str)] = &[
    (
        "insert_select_client_id",
        "INSERT INTO ledger (id, memo, client_id) SELECT id, 'planted', '$CLIENT_Y' FROM ledger",
    ),
    (
        "insert_values_client_id",
        "INSERT INTO ledger (memo, client_id) VALUES ('planted', '$CLIENT_Y')",
    ),
    (
        "update_set_client_id",
        "UPDATE ledger SET client_id = '$CLIENT_Y' WHERE memo = 'x-one'",
    ),
    (
        "update_other_client",
        "UPDATE ledger SET amount = 0, memo = 'pwned' WHERE client_id = '$CLIENT_Y'",
    ),
    ("delete_everything", "DELETE FROM ledger"),
    (
        "on_conflict_do_update_other_client_row",
        "INSERT INTO ledger (id, memo) VALUES ('a0000000-0000-4000-8000-000000000003', 'pwned') \
         ON CONFLICT (tenant_id, id) DO UPDATE SET memo = 'pwned', amount = 0",
    ),
    (
        "on_conflict_moves_client",
        "INSERT INTO ledger (id, memo) VALUES ('a0000000-0000-4000-8000-000000000001', 'x') \
         ON CONFLICT (tenant_id, id) DO UPDATE SET client_id = '$CLIENT_Y'",
    ),
    (
        "cte_update",
        "WITH y AS (SELECT id FROM ledger WHERE client_id = '$CLIENT_Y') \
         UPDATE ledger SET amount = 0 WHERE id IN (SELECT id FROM y)",
    ),
    (
        "cte_read",
        "WITH y AS (SELECT memo, client_id FROM ledger) SELECT memo FROM y WHERE client_id = '$CLIENT_Y'",
    ),
    (
        "union_read",
        "SELECT memo FROM ledger UNION SELECT memo FROM ledger WHERE client_id = '$CLIENT_Y'",
    ),
    (
        "or_true",
        "SELECT memo FROM ledger WHERE client_id = '$CLIENT_Y' OR 1 = 1",
    ),
    (
        "count_other_client",
        "SELECT 'y-secret' || count(*) FROM ledger WHERE client_id = '$CLIENT_Y' HAVING count(*) > 0",
    ),
    (
        "set_config_scope",
        "SELECT set_config('hisn.tenant_scope', 's1.x', true)",
    ),
];
