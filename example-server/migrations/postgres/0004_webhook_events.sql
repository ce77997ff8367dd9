-- PostgreSQL dialect of 0004_webhook_events.sql: a platform table (granted
-- to the platform role only, see PLATFORM_GRANTS in src/db/pg/roles.rs).
CREATE TABLE webhook_events (
    event_key TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
