-- Second factor, password state and break-glass grants (issue #15). Platform
-- tables like accounts: the identity provider needs them before any tenant
-- context exists; every query names the tenant (src/db/mfa.rs).
ALTER TABLE accounts ADD COLUMN must_change_password INTEGER NOT NULL DEFAULT 0;
ALTER TABLE accounts ADD COLUMN first_sign_in_at INTEGER;

-- One TOTP credential per account. `pending` and `secret` are crypto-vault
-- field ciphertexts (AAD = tenant | account_totp | column | account id);
-- `last_step` is advanced only by a compare-and-set UPDATE, so no code is
-- accepted twice; `failures` counts consecutive failures (the lock ceiling);
-- `recovery` is the salted, peppered hash set of the unused recovery codes.
CREATE TABLE account_totp (
    tenant_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    pending TEXT,
    secret TEXT,
    last_step INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    recovery TEXT,
    enrolled_at INTEGER,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, account_id),
    FOREIGN KEY (tenant_id, account_id) REFERENCES accounts (tenant_id, id)
);

-- Break-glass grants issued by the operator console: the record of the
-- written authorization (reason, ticket) and the revocation list.
CREATE TABLE support_grants (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    support_user TEXT NOT NULL,
    access TEXT NOT NULL,
    reason TEXT NOT NULL,
    ticket TEXT NOT NULL,
    issued_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER
);

-- Notifications for a tenant's admins (each use of a support grant).
CREATE TABLE admin_notifications (
    tenant_id TEXT NOT NULL REFERENCES tenants (id),
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
