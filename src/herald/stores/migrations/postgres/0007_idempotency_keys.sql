-- Idempotency keys of the API's writes (docs/api.md, "Retrying writes"): one row per workspace
-- and key, claimed "in progress" by the first request with it (until locked_until), then
-- holding that request's answer until expires_at. Same table as SQLite's migration 0009.
-- No foreign key to workspaces: rows only live a day, and are purged by expires_at.
CREATE TABLE idempotency_keys (
    workspace_id text COLLATE "C" NOT NULL,
    key          text COLLATE "C" NOT NULL,
    fingerprint  text NOT NULL,  -- SHA-256 of the request: method, path, query, body
    token        text NOT NULL,  -- the claim's: only its holder finishes or releases it
    state        text NOT NULL CHECK (state IN ('in_progress', 'done')),
    status       integer,  -- the answer (done): status, headers (JSON pairs), body (encrypted)
    headers      text,
    body         bytea,
    created_at   timestamptz NOT NULL,
    locked_until timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
