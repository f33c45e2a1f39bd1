-- The declared schema of the PostgreSQL store: what applying every migration in
-- migrations/postgres/ must yield (tests/integration/test_postgres_migrations.py compares the
-- two catalogues: columns, types, defaults, constraints, indexes). Change a table here and in
-- a new migration, together. Data the migrations seed (the default workspace) is not here.
-- Identifiers compare byte by byte (COLLATE "C"), as in SQLite, whatever the locale.

CREATE TABLE workspaces (
    id          text COLLATE "C" PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL REFERENCES workspaces (id),
    prefix       text NOT NULL UNIQUE,
    secret_hash  text NOT NULL,  -- SHA-256 of the secret part: keys are random, 160 bits
    name         text NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_workspace ON api_keys (workspace_id, id);

CREATE TABLE channels (
    id              text COLLATE "C" PRIMARY KEY,
    workspace_id    text COLLATE "C" NOT NULL DEFAULT 'ws_default' REFERENCES workspaces (id),
    platform        text NOT NULL
                    CHECK (platform IN ('facebook', 'instagram', 'linkedin', 'youtube')),
    external_id     text NOT NULL,
    name            text NOT NULL,
    timezone        text NOT NULL,
    credentials_ref text NOT NULL,
    status          text NOT NULL DEFAULT 'active'
                    CHECK (status IN ('active', 'needs_reauth', 'disabled')),
    secret          bytea,  -- encrypted credentials (vault: references)
    created_at      timestamptz NOT NULL,
    deleted_at      timestamptz,
    region          text COLLATE "C"  -- NULL: the deployment's region
);
CREATE INDEX channels_workspace ON channels (workspace_id, id);
-- Per workspace and among live channels: two workspaces may connect the same account, and a
-- deleted channel's account may be connected again (migration 0002).
CREATE UNIQUE INDEX channels_account ON channels (workspace_id, platform, external_id)
    WHERE deleted_at IS NULL;

CREATE TABLE posts (
    id           text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL DEFAULT 'ws_default' REFERENCES workspaces (id),
    content      jsonb NOT NULL,  -- text, link, media, title
    overrides    jsonb NOT NULL,  -- platform -> partial content
    created_at   timestamptz NOT NULL
);
CREATE INDEX posts_workspace ON posts (workspace_id, created_at, id);

CREATE TABLE deliveries (
    id              text COLLATE "C" PRIMARY KEY,
    post_id         text COLLATE "C" NOT NULL REFERENCES posts (id),
    channel_id      text COLLATE "C" NOT NULL REFERENCES channels (id),
    platform        text NOT NULL,
    due_at          timestamptz NOT NULL,
    state           text NOT NULL DEFAULT 'scheduled' CHECK (state IN (
                        'scheduled', 'claimed', 'publishing', 'published', 'retry_wait',
                        'failed', 'expired', 'unconfirmed', 'cancelled')),
    next_attempt_at timestamptz,
    attempts        integer NOT NULL DEFAULT 0,
    retries         integer NOT NULL DEFAULT 0,
    checks          integer NOT NULL DEFAULT 0,
    check_first     boolean NOT NULL DEFAULT false,
    check_since     timestamptz,
    claim_token     text,
    lease_until     timestamptz,
    external_id     text,
    reconciled      boolean NOT NULL DEFAULT false,
    last_error      text,
    published_at    timestamptz,
    updated_at      timestamptz NOT NULL,
    engine_id       text COLLATE "C"  -- the engine that last claimed it (migration 0004)
);
-- The dispatchers' claim: due deliveries in due order. Partial, so finished deliveries (the
-- vast majority over time) cost nothing to skip.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL;
-- The claim's expiry check: due deliveries too late to send, found without walking the
-- whole backlog of due ones (which the index above would do on every claim).
CREATE INDEX deliveries_stale ON deliveries (due_at)
    WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL
      AND NOT check_first;
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE state IN ('claimed', 'publishing');
CREATE INDEX deliveries_claim_token ON deliveries (claim_token) WHERE claim_token IS NOT NULL;
CREATE INDEX deliveries_post ON deliveries (post_id);
CREATE INDEX deliveries_state ON deliveries (state, id);
CREATE INDEX deliveries_channel_due ON deliveries (channel_id, due_at);

CREATE TABLE attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id  text COLLATE "C" NOT NULL REFERENCES deliveries (id),
    number       integer NOT NULL,  -- publish requests sent so far, this one included
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    outcome      text NOT NULL,
    error        text,
    page_usage   jsonb  -- a look-up's further listing pages, per meter (migration 0005)
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
-- What was sent within the limits' reach, read at engine start-up (migration 0003).
CREATE INDEX attempts_started ON attempts (started_at);

CREATE TABLE posting_slots (
    channel_id  text COLLATE "C" NOT NULL REFERENCES channels (id),
    weekday     integer NOT NULL CHECK (weekday BETWEEN 0 AND 6),  -- 0 = Monday
    minute      integer NOT NULL CHECK (minute BETWEEN 0 AND 1439),  -- local wall time
    PRIMARY KEY (channel_id, weekday, minute)
);

CREATE TABLE webhooks (
    id           text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL REFERENCES workspaces (id),
    url          text NOT NULL,
    events       jsonb NOT NULL,  -- array of event names
    secret       bytea NOT NULL,  -- encrypted signing secret
    created_at   timestamptz NOT NULL,
    deleted_at   timestamptz,
    -- How its attempts went (migration 0008): failed ones in a row since failing_since; no
    -- event is claimed before held_until; disabled after failing too long, until enabled.
    failure_streak  integer NOT NULL DEFAULT 0,
    failing_since   timestamptz,
    held_until      timestamptz,
    disabled_at     timestamptz,
    disabled_reason text
);
CREATE INDEX webhooks_workspace ON webhooks (workspace_id, id);

-- The outbox: one row per event and webhook, written in the transaction that made the change.
CREATE TABLE webhook_events (
    id              text COLLATE "C" PRIMARY KEY,
    webhook_id      text COLLATE "C" NOT NULL REFERENCES webhooks (id),
    workspace_id    text COLLATE "C" NOT NULL,
    event           text NOT NULL,
    payload         jsonb NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'sending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    lease_until     timestamptz,
    last_error      text,
    created_at      timestamptz NOT NULL,
    last_attempt_at timestamptz,  -- when its last attempt was claimed (migration 0008)
    finished_at     timestamptz   -- when it became sent or failed
);
CREATE INDEX webhook_events_pending ON webhook_events (webhook_id, next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id, id);
CREATE INDEX webhook_events_leased ON webhook_events (lease_until) WHERE state = 'sending';

-- Running engines and their heartbeats (migration 0004); a claim records its engine
-- (deliveries.engine_id), so the claims of one that stopped beating can be given back.
CREATE TABLE engines (
    id          text COLLATE "C" PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL
);

-- Idempotency keys of the API's writes (migrations 0007, 0010): claimed in_progress by the
-- first request with the key, committed with the first write of its work (in that write's
-- transaction), done once its answer is kept, until expires_at; purged by expires_at.
CREATE TABLE idempotency_keys (
    workspace_id text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    fingerprint  text NOT NULL,  -- SHA-256 of the request: method, path, query, body
    token        text NOT NULL,  -- the claim's: only its holder finishes or releases it
    state        text NOT NULL CHECK (state IN ('in_progress', 'committed', 'done')),
    status       integer,  -- the answer (done): status, headers (JSON pairs), body (encrypted)
    headers      text,
    body         bytea,
    created_at   timestamptz NOT NULL,
    locked_until timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
-- CSV imports run as background jobs (migration 0009): the job, with the lease of the API
-- process working on it, and every post it stored with its file line.
CREATE TABLE imports (
    id             text COLLATE "C" PRIMARY KEY,
    workspace_id   text COLLATE "C" NOT NULL REFERENCES workspaces (id),
    state          text NOT NULL DEFAULT 'queued'
                   CHECK (state IN ('queued', 'validating', 'writing', 'succeeded', 'failed')),
    rows_total     integer,
    rows_validated integer NOT NULL DEFAULT 0,
    posts_written  integer NOT NULL DEFAULT 0,
    deliveries     integer NOT NULL DEFAULT 0,
    committed      boolean NOT NULL DEFAULT false,
    detail         text,
    errors         jsonb NOT NULL DEFAULT '[]',
    runner         text COLLATE "C",
    lease_until    timestamptz,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    finished_at    timestamptz
);
CREATE INDEX imports_workspace ON imports (workspace_id, created_at, id);
CREATE INDEX imports_unfinished ON imports (workspace_id)
    WHERE state IN ('queued', 'validating', 'writing');

CREATE TABLE import_posts (
    import_id  text COLLATE "C" NOT NULL REFERENCES imports (id),
    line       integer NOT NULL,
    post_id    text COLLATE "C" NOT NULL REFERENCES posts (id),
    PRIMARY KEY (import_id, line)
);
-- Indexes for what removes import rows, and for listings without held posts (migration 0011).
CREATE INDEX import_posts_post ON import_posts (post_id);
CREATE INDEX imports_finished ON imports (finished_at)
    WHERE state NOT IN ('queued', 'validating', 'writing');
CREATE INDEX deliveries_held ON deliveries (post_id)
    WHERE state = 'scheduled' AND next_attempt_at IS NULL AND attempts = 0;

-- An API key's last write's WAL position, for read-your-writes on a replica (migration 0012).
CREATE TABLE read_positions (
    key_id     text COLLATE "C" PRIMARY KEY,
    wal_bytes  bigint NOT NULL,
    written_at timestamptz NOT NULL
);

-- Deliveries and webhook events of a workspace moved in, held until the region it left
-- deleted its copy, with their own next_attempt_at (migration 0013).
CREATE TABLE move_holds (
    kind            text NOT NULL CHECK (kind IN ('delivery', 'event')),
    id              text COLLATE "C" NOT NULL,
    workspace_id    text COLLATE "C" NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX move_holds_workspace ON move_holds (workspace_id);
