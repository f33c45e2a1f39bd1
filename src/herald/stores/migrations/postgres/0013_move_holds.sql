-- A workspace moved in from another region (herald.stores.postgres_move): until the region it
-- leaves has deleted its own copy, every delivery and webhook event of it that a claim could
-- pick is stored held (next_attempt_at NULL, which no claim picks), its own next_attempt_at
-- kept here, given back once the other copy is gone.
CREATE TABLE move_holds (
    kind            text NOT NULL CHECK (kind IN ('delivery', 'event')),
    id              text COLLATE "C" NOT NULL,
    workspace_id    text COLLATE "C" NOT NULL,
    next_attempt_at timestamptz NOT NULL,
    PRIMARY KEY (kind, id)
);
CREATE INDEX move_holds_workspace ON move_holds (workspace_id);
