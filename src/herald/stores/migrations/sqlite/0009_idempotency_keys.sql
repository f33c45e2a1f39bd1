-- Idempotency keys of the API's writes (docs/api.md, "Retrying writes"): one row per workspace
-- and key, claimed "in progress" by the first request with it (until locked_until), then
-- holding that request's answer until expires_at. Same table as PostgreSQL's migration 0007.
-- No foreign key to workspaces: rows only live a day, and are purged by expires_at.
CREATE TABLE idempotency_keys (
    workspace_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,  -- SHA-256 of the request: method, path, query, body
    token        TEXT NOT NULL,  -- the claim's: only its holder finishes or releases it
    state        TEXT NOT NULL CHECK (state IN ('in_progress', 'done')),
    status       INTEGER,  -- the answer (done): status, headers (JSON pairs), body (encrypted)
    headers      TEXT,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
