-- CSV imports run as background jobs: the job (its state, progress, problems and the lease
-- of the API process working on it), and every post it stored with its file line. An
-- import's posts are stored held (deliveries 'scheduled' with no next_attempt_at, which no
-- claim picks) until the whole file is stored, so an interrupted import can be removed.
-- Same tables as SQLite's migration 0011.
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
