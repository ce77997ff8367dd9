-- PostgreSQL dialect of 0001_init.sql (same tables, same columns). Run as the
-- tables' owner (HISN_MIGRATE_DATABASE_URL), never as the application role.
-- Column types decode to the same Rust types as on SQLite (ids TEXT, times
-- BIGINT); the tenant column of the tenant tables is a uuid, the type the RLS
-- context function returns. Row-level security, the grants to the
-- application role and the tenant column defaults are installed after the
-- migrations by src/db/pg.rs (tenant-guard's rls::generate_sql).

-- Platform tables (no tenant guard: the identity provider and billing own them;
-- every query names the tenant explicitly, see src/db/platform.rs).
CREATE TABLE tenants (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    plan TEXT NOT NULL DEFAULT 'free',
    subscription_status TEXT NOT NULL DEFAULT 'none',
    erased_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE TABLE accounts (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    email TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, email)
);
CREATE TABLE api_keys (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    hash BYTEA NOT NULL,
    role TEXT NOT NULL,
    created_by TEXT NOT NULL,
    expires_at BIGINT,
    revoked BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (id)
);

-- Tenant tables: the query guard adds the tenant predicate and forces
-- tenant_id on INSERT; row-level security filters on the signed tenant
-- context. Composite keys, so a unique or foreign-key error can never be
-- about another tenant's row.
CREATE TABLE assets (
    tenant_id UUID NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    serial TEXT NOT NULL,
    location TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, serial)
);
CREATE TABLE work_orders (
    tenant_id UUID NOT NULL,
    id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    title TEXT NOT NULL,
    status TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, asset_id) REFERENCES assets (tenant_id, id)
);
CREATE TABLE integrations (
    tenant_id UUID NOT NULL,
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    base_url TEXT NOT NULL,
    username TEXT NOT NULL,
    oauth_token TEXT NOT NULL,
    password TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE TABLE attachments (
    tenant_id UUID NOT NULL,
    id TEXT NOT NULL,
    asset_id TEXT NOT NULL,
    file_name TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, asset_id) REFERENCES assets (tenant_id, id)
);
