-- hisn-webhook-verify: Idempotency-Key layer records (PgIdempotencyStore).
-- response is null while the first request is in flight; then it holds the
-- encoded stored response, replayed until expires_at.
create table if not exists hisn_idempotency (
    scope       text        not null,
    key         text        not null,
    fingerprint bytea       not null,
    token       text        not null,
    response    bytea,
    expires_at  timestamptz not null,
    primary key (scope, key)
);
create index if not exists hisn_idempotency_expires_at on hisn_idempotency (expires_at);
