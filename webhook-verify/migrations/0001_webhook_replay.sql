-- hisn-webhook-verify: replay store (PgReplayStore).
-- One row per claimed (scope, provider, event id): state 'p' (in progress,
-- lease until expires_at) or 'd' (done, kept until expires_at = TTL).
create table if not exists hisn_webhook_replay (
    scope      text        not null,
    provider   text        not null,
    event_id   text        not null,
    state      char(1)     not null check (state in ('p', 'd')),
    token      text        not null,
    expires_at timestamptz not null,
    primary key (scope, provider, event_id)
);
create index if not exists hisn_webhook_replay_expires_at on hisn_webhook_replay (expires_at);
