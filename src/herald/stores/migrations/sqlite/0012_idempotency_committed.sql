-- Idempotency keys tied to the write's own transaction (docs/api.md, "Retrying writes"): every
-- write made under a key's claim marks it 'committed' in the same transaction, so a key whose
-- work committed without its answer being kept is known, and never done again. SQLite cannot
-- change a CHECK constraint in place: the table is rebuilt. Same change as PostgreSQL's 0010.
CREATE TABLE idempotency_keys_new (
    workspace_id TEXT NOT NULL,
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    token        TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('in_progress', 'committed', 'done')),
    status       INTEGER,
    headers      TEXT,
    body         BLOB,
    created_at   INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
INSERT INTO idempotency_keys_new
    (workspace_id, key, fingerprint, token, state, status, headers, body, created_at,
     locked_until, expires_at)
SELECT workspace_id, key, fingerprint, token, state, status, headers, body, created_at,
       locked_until, expires_at
FROM idempotency_keys;
DROP TABLE idempotency_keys;
ALTER TABLE idempotency_keys_new RENAME TO idempotency_keys;
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
