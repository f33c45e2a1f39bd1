-- Workspaces and API keys, channel secrets and posting slots, webhooks with their outbox.
-- Channels and posts created before this migration belong to the default workspace.

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
INSERT INTO workspaces (id, name, created_at)
VALUES ('ws_default', 'Default', CAST(strftime('%s', 'now') AS INTEGER) * 1000000);

CREATE TABLE api_keys (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    prefix       TEXT NOT NULL UNIQUE,
    secret_hash  TEXT NOT NULL,  -- SHA-256 of the secret part: keys are random, 160 bits
    name         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    revoked_at   INTEGER
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id);

-- SQLite cannot add a REFERENCES column with a non-null default: the application keeps it
-- consistent (every workspace id written comes from the workspaces table).
ALTER TABLE channels ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'ws_default';
ALTER TABLE channels ADD COLUMN secret BLOB;  -- encrypted credentials (vault: references)
ALTER TABLE channels ADD COLUMN deleted_at INTEGER;
CREATE INDEX channels_workspace ON channels (workspace_id, id);

ALTER TABLE posts ADD COLUMN workspace_id TEXT NOT NULL DEFAULT 'ws_default';
CREATE INDEX posts_workspace ON posts (workspace_id, created_at, id);

CREATE INDEX deliveries_channel_due ON deliveries (channel_id, due_at);

CREATE TABLE posting_slots (
    channel_id  TEXT NOT NULL REFERENCES channels (id),
    weekday     INTEGER NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- 0 = Monday
    minute      INTEGER NOT NULL CHECK (minute BETWEEN 0 AND 1439),  -- local wall time
    PRIMARY KEY (channel_id, weekday, minute)
);

CREATE TABLE webhooks (
    id           TEXT PRIMARY KEY,
    workspace_id TEXT NOT NULL REFERENCES workspaces (id),
    url          TEXT NOT NULL,
    events       TEXT NOT NULL,  -- JSON array of event names
    secret       BLOB NOT NULL,  -- encrypted signing secret
    created_at   INTEGER NOT NULL,
    deleted_at   INTEGER
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, id);

-- The outbox: one row per event and webhook, written in the transaction that made the change.
CREATE TABLE webhook_events (
    id              TEXT PRIMARY KEY,
    webhook_id      TEXT NOT NULL REFERENCES webhooks (id),
    workspace_id    TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,  -- JSON
    state           TEXT NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    lease_until     INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL
);
CREATE INDEX webhook_events_due ON webhook_events (next_attempt_at) WHERE state = 'pending';
CREATE INDEX webhook_events_leased ON webhook_events (lease_until) WHERE state = 'sending';
