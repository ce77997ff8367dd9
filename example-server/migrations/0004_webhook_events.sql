-- Payment webhook deliveries already applied, by replay key
-- (`payments:<provider>:<replay id>`): written in the same transaction as the
-- subscription change, so a delivery is applied at most once even when the
-- replay store no longer holds its done marker (a completion that never
-- landed, a lease taken over, a store flushed or restarted).
CREATE TABLE webhook_events (
    event_key TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
