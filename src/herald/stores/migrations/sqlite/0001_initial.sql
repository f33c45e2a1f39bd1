-- Channels, posts, deliveries and attempts. Instants are integer microseconds since the Unix
-- epoch, UTC: compact, and compared without parsing.

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
    UNIQUE (platform, external_id)
);

CREATE TABLE posts (
    id          TEXT PRIMARY KEY,
    content     TEXT NOT NULL,  -- JSON: text, link, media, title
    overrides   TEXT NOT NULL,  -- JSON: platform -> partial content
    created_at  INTEGER NOT NULL
);

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
    updated_at      INTEGER NOT NULL
);

-- The dispatcher's claim: due deliveries in due order. Partial, so finished deliveries
-- (the vast majority over time) cost nothing.
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE state IN ('claimed', 'publishing');
CREATE INDEX deliveries_claim_token ON deliveries (claim_token) WHERE claim_token IS NOT NULL;
CREATE INDEX deliveries_post ON deliveries (post_id);
CREATE INDEX deliveries_state ON deliveries (state, id);

CREATE TABLE attempts (
    id           INTEGER PRIMARY KEY,
    delivery_id  TEXT NOT NULL REFERENCES deliveries (id),
    number       INTEGER NOT NULL,  -- publish requests sent so far, this one included
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER NOT NULL,
    outcome      TEXT NOT NULL,
    error        TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id, id);
