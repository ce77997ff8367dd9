//! What each role of PostgreSQL mode may touch, installed by the owner's
//! migration and checked at every start.
//!
//! Two groups of tables have no row-level security and hold every tenant's
//! rows: audit-log's tables (one chain per tenant, read whole by
//! verification) and the platform tables (tenants, accounts with their
//! password hashes, API keys, second factors, support grants, notifications,
//! crypto-vault's wrapped keys and shred markers, the migrations table; the
//! identity provider reads them before any tenant context exists). Each
//! group has a role of its own (the audit role, the platform role) and the
//! application role, under which every tenant transaction runs, holds no
//! privilege on either: with the query guard switched off, SQL in tenant A's
//! transaction is refused on them instead of reading B's rows. The trap is
//! regaining access another way: a grant to `PUBLIC`, a column privilege,
//! ownership, or membership in the role that holds them; the checks here
//! look at all four through `has_table_privilege`,
//! `has_any_column_privilege` and `pg_has_role`, which include `PUBLIC` and
//! inherited roles.

use sqlx::postgres::PgPool;

use super::{PgStartError, db, is_plain_identifier};

/// audit-log's prune point (SELECT only for the audit role).
const PRUNE_POINT: &str = "hisn_audit_prune_point";
/// audit-log's retention function (granted to no one).
const PRUNE_FUNCTION: &str = "hisn_audit_prune_rows(text, bigint, bytea, bigint)";

/// audit-log's tables the audit role writes.
const AUDIT_TABLES: [&str; 3] = [
    "hisn_audit_log",
    "hisn_audit_subject",
    "hisn_audit_checkpoint",
];

/// The platform tables and what the platform role needs on each (the
/// owner's migration grants exactly this; start-up checks it holds it).
/// Nothing else of the server reads or writes them.
pub(super) const PLATFORM_GRANTS: [(&str, &[&str]); 10] = [
    ("hisn_example_migrations", &["SELECT"]),
    ("tenants", &["SELECT", "INSERT", "UPDATE"]),
    ("accounts", &["SELECT", "INSERT", "UPDATE"]),
    ("api_keys", &["SELECT", "INSERT", "UPDATE"]),
    ("account_totp", &["SELECT", "INSERT", "UPDATE"]),
    ("support_grants", &["SELECT", "INSERT", "UPDATE"]),
    ("admin_notifications", &["SELECT", "INSERT"]),
    // crypto-vault's key store: a crypto-shred deletes the keys and writes
    // the marker; `FOR UPDATE` / `FOR SHARE` need UPDATE.
    ("hisn_vault_keys", &["SELECT", "INSERT", "UPDATE", "DELETE"]),
    ("hisn_vault_shredded", &["SELECT", "INSERT", "UPDATE"]),
    // Payment webhook deliveries applied (at most once, `db::platform`).
    ("webhook_events", &["SELECT", "INSERT"]),
];

fn plain(role: &str, what: &str) -> Result<(), String> {
    if is_plain_identifier(role) {
        Ok(())
    } else {
        Err(format!("{what} name {role:?} is not a plain identifier"))
    }
}

/// The owner's grants on the platform tables: every privilege of `PUBLIC`
/// and of `app_role` revoked (earlier versions granted the application role
/// what the platform role now holds; revoking a table privilege also revokes
/// the column privileges), [`PLATFORM_GRANTS`] to `platform_role`.
pub(super) fn platform_grants_sql(app_role: &str, platform_role: &str) -> Result<String, String> {
    plain(app_role, "application role")?;
    plain(platform_role, "platform role")?;
    let mut sql = String::new();
    for (table, privileges) in PLATFORM_GRANTS {
        // Both roles are plain identifiers (checked above): quoting is exact.
        sql.push_str(&format!(
            "REVOKE ALL ON {table} FROM PUBLIC;\n\
             REVOKE ALL ON {table} FROM \"{app_role}\";\n\
             GRANT {} ON {table} TO \"{platform_role}\";\n",
            privileges.join(", ")
        ));
    }
    Ok(sql)
}

/// Every privilege of `app_role` (and of `PUBLIC`) on audit-log's tables and
/// its prune function, revoked by the owner.
pub(super) async fn revoke_audit_tables(
    owner: &PgPool,
    app_role: &str,
) -> Result<(), PgStartError> {
    plain(app_role, "application role").map_err(PgStartError::Audit)?;
    let mut sql = String::new();
    for t in AUDIT_TABLES.iter().chain(std::iter::once(&PRUNE_POINT)) {
        // `app_role` is a plain identifier (checked above): quoting is exact.
        sql.push_str(&format!(
            "REVOKE ALL ON {t} FROM PUBLIC; REVOKE ALL ON {t} FROM \"{app_role}\";\n"
        ));
    }
    sql.push_str(&format!(
        "REVOKE ALL ON FUNCTION {PRUNE_FUNCTION} FROM \"{app_role}\";\n"
    ));
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(owner)
        .await
        .map_err(db("revoke the application role's audit privileges"))?;
    Ok(())
}

/// How the application role could reach a table it must not touch.
enum Reach {
    /// It can act as the role that holds the tables.
    Member,
    /// The table does not exist.
    Missing(&'static str),
    /// It owns the table (or can act as its owner).
    Owns(&'static str),
    /// It holds a privilege on the table (or a column), directly, through
    /// `PUBLIC` or through a role.
    Privilege(&'static str),
}

/// The first way the role of `app` could reach one of `tables`, or of the
/// tables through `holder` (the role that holds them); `None`: it cannot.
async fn reach(
    app: &PgPool,
    holder: &str,
    tables: impl IntoIterator<Item = &'static str>,
) -> Result<Option<Reach>, PgStartError> {
    let member: bool = sqlx::query_scalar("SELECT pg_has_role(current_user, $1, 'MEMBER')")
        .bind(holder)
        .fetch_one(app)
        .await
        .map_err(db("check the application role"))?;
    if member {
        return Ok(Some(Reach::Member));
    }
    for table in tables {
        let row: Option<(bool, bool)> = sqlx::query_as(
            "SELECT pg_has_role(current_user, c.relowner, 'MEMBER'), \
                    has_table_privilege(c.oid, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER') \
                    OR has_any_column_privilege(c.oid, 'SELECT, INSERT, UPDATE, REFERENCES') \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
        )
        .bind(format!("public.{table}"))
        .fetch_optional(app)
        .await
        .map_err(db("check the application role's privileges"))?;
        match row {
            None => return Ok(Some(Reach::Missing(table))),
            Some((true, _)) => return Ok(Some(Reach::Owns(table))),
            Some((_, true)) => return Ok(Some(Reach::Privilege(table))),
            Some(_) => {}
        }
    }
    Ok(None)
}

/// The application role may not touch the audit tables at all: no
/// privilege of any kind (directly, through `PUBLIC` or a role it is a
/// member of), not their owner, and no way to act as the audit role.
pub(super) async fn check_app_role_has_no_audit_access(
    app: &PgPool,
    audit_role: &str,
) -> Result<(), PgStartError> {
    let tables = AUDIT_TABLES.into_iter().chain([PRUNE_POINT]);
    match refusal(app, audit_role, tables, "audit", "audit records").await? {
        None => Ok(()),
        Some(why) => Err(PgStartError::Audit(why)),
    }
}

/// The application role may not touch the platform tables at all, as for
/// the audit tables: tenant transactions run under it, and with the query
/// guard off their SQL would read every tenant's accounts and hashes.
pub(super) async fn check_app_role_has_no_platform_access(
    app: &PgPool,
    platform_role: &str,
) -> Result<(), PgStartError> {
    let tables = PLATFORM_GRANTS.into_iter().map(|(t, _)| t);
    let rows = "platform rows: accounts, password hashes, API keys";
    match refusal(app, platform_role, tables, "platform", rows).await? {
        None => Ok(()),
        Some(why) => Err(PgStartError::Platform(why)),
    }
}

/// What [`reach`] found, as the start-up refusal's text (`None`: nothing):
/// `kind` names the role (`audit`, `platform`), `rows` what tenant
/// transactions could then read.
async fn refusal(
    app: &PgPool,
    role: &str,
    tables: impl IntoIterator<Item = &'static str>,
    kind: &str,
    rows: &str,
) -> Result<Option<String>, PgStartError> {
    Ok(Some(match reach(app, role, tables).await? {
        None => return Ok(None),
        Some(Reach::Member) => format!("the application role can act as the {kind} role {role}"),
        Some(Reach::Missing(table)) => format!("{table} is missing"),
        Some(Reach::Owns(table)) => {
            format!("the application role owns {table} (or can act as its owner)")
        }
        Some(Reach::Privilege(table)) => format!(
            "the application role holds a privilege on {table} (tenant transactions could read every tenant's {rows})"
        ),
    }))
}

/// The platform role (the role of `platform`) holds what [`PLATFORM_GRANTS`]
/// lists and does not own the tables: the pool that serves every request
/// never runs as the owner, who could turn row-level security off.
pub(super) async fn check_platform_role(platform: &PgPool) -> Result<(), PgStartError> {
    for (table, privileges) in PLATFORM_GRANTS {
        let owns: Option<bool> = sqlx::query_scalar(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE') \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
        )
        .bind(format!("public.{table}"))
        .fetch_optional(platform)
        .await
        .map_err(db("check the platform role"))?;
        match owns {
            None => return Err(PgStartError::Platform(format!("{table} is missing"))),
            Some(true) => {
                return Err(PgStartError::Platform(format!(
                    "the platform role owns {table} (or can act as its owner): give HISN_PLATFORM_DATABASE_URL a role of its own"
                )));
            }
            Some(false) => {}
        }
        for privilege in privileges {
            let held: bool = sqlx::query_scalar("SELECT has_table_privilege($1, $2)")
                .bind(format!("public.{table}"))
                .bind(privilege)
                .fetch_one(platform)
                .await
                .map_err(db("check the platform role"))?;
            if !held {
                return Err(PgStartError::Platform(format!(
                    "the platform role may not {privilege} {table}"
                )));
            }
        }
    }
    Ok(())
}

/// The audit tables, which the audit role may only INSERT into and SELECT
/// from (audit-log's append-only triggers also refuse UPDATE and DELETE, but
/// an owner could drop them).
pub(super) async fn check_audit_role(audit: &PgPool) -> Result<(), PgStartError> {
    for table in AUDIT_TABLES {
        let row: Option<(bool, bool, bool, bool, bool)> = sqlx::query_as(
            "SELECT pg_has_role(current_user, c.relowner, 'USAGE'), \
                    has_table_privilege(c.oid, 'UPDATE'), has_table_privilege(c.oid, 'DELETE'), \
                    has_table_privilege(c.oid, 'TRUNCATE'), has_table_privilege(c.oid, 'INSERT') \
             FROM pg_class c WHERE c.oid = to_regclass($1)",
        )
        .bind(format!("public.{table}"))
        .fetch_optional(audit)
        .await
        .map_err(db("check the audit tables"))?;
        match row {
            None => return Err(PgStartError::Audit(format!("{table} is missing"))),
            Some((true, ..)) => {
                return Err(PgStartError::Audit(format!(
                    "the audit role owns {table} (or can act as its owner)"
                )));
            }
            Some((_, true, _, _, _) | (_, _, true, _, _) | (_, _, _, true, _)) => {
                return Err(PgStartError::Audit(format!(
                    "the audit role may UPDATE, DELETE or TRUNCATE {table}"
                )));
            }
            Some((_, _, _, _, false)) => {
                return Err(PgStartError::Audit(format!(
                    "the audit role may not INSERT into {table}"
                )));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn platform_grants_name_the_platform_role_and_revoke_the_application_role() {
        let sql = super::platform_grants_sql("hisn_app", "hisn_platform").unwrap();
        for (table, _) in super::PLATFORM_GRANTS {
            assert!(sql.contains(&format!("REVOKE ALL ON {table} FROM \"hisn_app\";")));
            assert!(sql.contains(&format!("REVOKE ALL ON {table} FROM PUBLIC;")));
        }
        assert!(!sql.contains("TO \"hisn_app\""));
        assert!(sql.contains("GRANT SELECT, INSERT ON admin_notifications TO \"hisn_platform\";"));
        assert!(super::platform_grants_sql("hisn_app", "x\"; drop").is_err());
        assert!(super::platform_grants_sql("Hisn", "hisn_platform").is_err());
    }
}
