-- The declared schema of the SQLite store: what applying every migration in
-- migrations/sqlite/ must yield (tests/unit/test_migrations.py compares the two catalogues:
-- columns, types, defaults, keys, foreign keys, CHECK constraints, indexes). Change a table
-- here and in a new migration, together. Data the migrations seed is not here.
-- Instants are integer microseconds since the Unix epoch, UTC.

CREATE TABLE channels (
    id              TEXT PRIMARY KEY,
    platform        TEXT NOT NULL CHECK (platform IN ('facebook', 'instagram', 'linkedin', 'youtube')),
    external_id     TEXT NOT NULL,
    name            TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    credentials_ref TEXT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    created_at      INTEGER NOT NULL,
    -- No REFERENCES: migration 0002 could not add one with a default to the existing table,
    -- and 0003 rebuilt the table as it was; the application keeps it consistent.
    workspace_id    TEXT NOT NULL DEFAULT 'ws_default',
    secret          BLOB,  -- encrypted credentials (vault: references)
    deleted_at      INTEGER,
    region          TEXT  -- NULL: the deployment's region
);
CREATE INDEX channels_workspace ON channels (workspace_id, id);
-- Per workspace and among live channels: two workspaces may connect the same account, and a
-- deleted channel's account may be connected again (migration 0003).
CREATE UNIQUE INDEX channels_account ON channels (workspace_id, platform, external_id)
    WHERE deleted_at IS NULL;

CREATE TABLE posts (
    id           TEXT PRIMARY KEY,
    content      TEXT NOT NULL,  -- JSON: text, link, media, title
    overrides    TEXT NOT NULL,  -- JSON: platform -> partial content
    created_at   INTEGER NOT NULL,
    workspace_id TEXT NOT NULL DEFAULT 'ws_default'
);
CREATE INDEX posts_workspace ON posts (workspace_id, created_at, id);

CREATE TABLE deliveries (
    id              TEXT PRIMARY KEY,
    post_id         TEXT NOT NULL REFERENCES posts (id),
    channel_id      TEXT NOT NULL REFERENCES channels (id),
    platform        TEXT NOT NULL,
    due_at          INTEGER NOT NULL,
    state           TEXT NOT NULL DEFAULT 'scheduled' CHECK (state IN (
                        'scheduled', 'claimed', 'publishing', 'published', 'retry_wait',
                        'failed', 'expired', 'unconfirmed', 'cancelled')),
    next_attempt_at INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    retries         INTEGER NOT NULL DEFAULT 0,
    checks          INTEGER NOT NULL DEFAULT 0,
    check_first     INTEGER NOT NULL DEFAULT 0,
    check_since     INTEGER,
    claim_token     TEXT,
    lease_until     INTEGER,
    external_id     TEXT,
    reconciled      INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    published_at    INTEGER,
    updated_at      INTEGER NOT NULL,
    engine_id       TEXT  -- the engine that last claimed it (migration 0006)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_stale ON deliveries (due_at)
    WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL
      AND check_first = 0;
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE state IN ('claimed', 'publishing');
CREATE INDEX deliveries_claim_token ON deliveries (claim_token) WHERE claim_token IS NOT NULL;
CREATE INDEX deliveries_post ON deliveries (post_id);
CREATE INDEX deliveries_state ON deliveries (state, id);
CREATE INDEX deliveries_channel_due ON deliveries (channel_id, due_at);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id),
    number       INTEGER NOT NULL,  -- publish requests sent so far, this one included
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT,
    page_usage   TEXT  -- a look-up's further listing pages, per meter, JSON (migration 0007)
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
-- What was sent within the limits' reach, read at engine start-up (migration 0005).
CREATE INDEX attempts_started ON attempts (started_at);

CREATE TABLE workspaces (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

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
    deleted_at   INTEGER,
    -- How its attempts went (migration 0010): failed ones in a row since failing_since; no
    -- event is claimed before held_until; disabled after failing too long, until enabled.
    failure_streak  INTEGER NOT NULL DEFAULT 0,
    failing_since   INTEGER,
    held_until      INTEGER,
    disabled_at     INTEGER,
    disabled_reason TEXT
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, id);

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
    created_at      INTEGER NOT NULL,
    last_attempt_at INTEGER,  -- when its last attempt was claimed (migration 0010)
    finished_at     INTEGER   -- when it became sent or failed
);
CREATE INDEX webhook_events_pending ON webhook_events (webhook_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id, id);
CREATE INDEX webhook_events_leased ON webhook_events (lease_until) WHERE state = 'sending';

-- Running engines and their heartbeats (migration 0006); a claim records its engine
-- (deliveries.engine_id), so the claims of one that stopped beating can be given back.
CREATE TABLE engines (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    beat_at     INTEGER NOT NULL
);

-- Idempotency keys of the API's writes (migrations 0009, 0012): claimed in_progress by the
-- first request with the key, committed with the first write of its work (in that write's
-- transaction), done once its answer is kept, until expires_at; purged by expires_at.
CREATE TABLE idempotency_keys (
    workspace_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,  -- SHA-256 of the request: method, path, query, body
    token        TEXT NOT NULL,  -- the claim's: only its holder finishes or releases it
    state        TEXT NOT NULL CHECK (state IN ('in_progress', 'committed', 'done')),
    status       INTEGER,  -- the answer (done): status, headers (JSON pairs), body (encrypted)
    headers      TEXT,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
-- CSV imports run as background jobs (migration 0011): the job, with the lease of the API
-- process working on it, and every post it stored with its file line.
CREATE TABLE imports (
    id             TEXT PRIMARY KEY,
    workspace_id   TEXT NOT NULL REFERENCES workspaces (id),
    state          TEXT NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'validating', 'writing', 'succeeded', 'failed')),
    rows_total     INTEGER,
    rows_validated INTEGER NOT NULL DEFAULT 0,
    posts_written  INTEGER NOT NULL DEFAULT 0,
    deliveries     INTEGER NOT NULL DEFAULT 0,
    committed      INTEGER NOT NULL DEFAULT 0,
    detail         TEXT,
    errors         TEXT NOT NULL DEFAULT '[]',
    runner         TEXT,
    lease_until    INTEGER,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX imports_workspace ON imports (workspace_id, created_at, id);
CREATE INDEX imports_unfinished ON imports (workspace_id)
    WHERE state IN ('queued', 'validating', 'writing');

CREATE TABLE import_posts (
    import_id  TEXT NOT NULL REFERENCES imports (id),
    line       INTEGER NOT NULL,
    post_id    TEXT NOT NULL REFERENCES posts (id),
    PRIMARY KEY (import_id, line)
);
-- Indexes for what removes import rows, and for listings without held posts (migration 0013).
CREATE INDEX import_posts_post ON import_posts (post_id);
CREATE INDEX imports_finished ON imports (finished_at)
    WHERE state NOT IN ('queued', 'validating', 'writing');
CREATE INDEX deliveries_held ON deliveries (post_id)
    WHERE state = 'scheduled' AND next_attempt_at IS NULL AND attempts = 0;
