-- CSV imports run as background jobs: the job (its state, progress, problems and the lease
-- of the API process working on it), and every post it stored with its file line. An
-- import's posts are stored held (deliveries 'scheduled' with no next_attempt_at, which no
-- claim picks) until the whole file is stored, so an interrupted import can be removed.
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
