-- hisn-crypto-vault: wrapped tenant keys (PgKeyStore).
-- Holds no plaintext key material: `wrapped` is AES-256-GCM ciphertext of a
-- tenant key under the master key, bound to (purpose, tenant, key_id).
create table if not exists hisn_vault_keys (
    tenant             text        not null,
    purpose            text        not null check (purpose in ('data', 'index')),
    key_id             bigint      not null check (key_id between 0 and 4294967295),
    is_primary         boolean     not null default false,
    master_fingerprint bytea       not null check (length(master_fingerprint) = 8),
    wrapped            bytea       not null,
    usage              bigint      not null default 0 check (usage >= 0),
    created_at         timestamptz not null default now(),
    primary key (tenant, purpose, key_id)
);

-- At most one primary key per tenant and purpose.
create unique index if not exists hisn_vault_keys_one_primary
    on hisn_vault_keys (tenant, purpose) where is_primary;

-- Tenants whose keys were destroyed (crypto-shredding): no key is ever issued
-- for them again.
create table if not exists hisn_vault_shredded (
    tenant      text        primary key,
    shredded_at timestamptz not null default now()
);
