-- A platform account is unique within a workspace, not across workspaces: an agency and its
-- client may both connect the same Page, and a workspace connecting an account must never learn
-- from a conflict that another workspace holds it. SQLite cannot drop a table constraint, so
-- the table is rebuilt without it, everything else as it was (columns, defaults, checks,
-- index), and a unique index on (workspace_id, platform, external_id) of live channels takes
-- its place: a deleted channel's account can be connected again.
--
-- This runs in the migration runner's transaction, on a connection with foreign_keys=ON, and
-- deliveries and posting_slots reference channels. Dropping channels orphans their rows: with
-- defer_foreign_keys that is counted and checked at COMMIT instead of failing at once, and
-- inserting the rows back into a table named channels settles the count again. A row lost on
-- the way would leave the count above zero and fail the COMMIT, so the migration cannot
-- succeed with a dangling reference. The rows go through a temporary copy rather than
-- channels_new and RENAME: a rename does not settle the count, and the COMMIT would fail.
-- defer_foreign_keys turns itself off at COMMIT or ROLLBACK.
PRAGMA defer_foreign_keys = ON;

CREATE TEMP TABLE channels_copy AS SELECT * FROM main.channels;

DROP TABLE main.channels;

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
    workspace_id    TEXT NOT NULL DEFAULT 'ws_default',
    secret          BLOB,  -- encrypted credentials (vault: references)
    deleted_at      INTEGER
);

INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, status,
                      created_at, workspace_id, secret, deleted_at)
SELECT id, platform, external_id, name, timezone, credentials_ref, status,
       created_at, workspace_id, secret, deleted_at
FROM temp.channels_copy;

DROP TABLE temp.channels_copy;

CREATE INDEX channels_workspace ON channels (workspace_id, id);
CREATE UNIQUE INDEX channels_account ON channels (workspace_id, platform, external_id)
    WHERE deleted_at IS NULL;
