-- Engines register themselves and beat (sql/postgres.sql, beat); a claim records the engine
-- that made it, so that any engine gives back the claims of one whose heartbeat stopped
-- within seconds rather than after the whole lease (recover_claims). Same tables as SQLite's
-- migration 0006. deliveries.engine_id: the engine that last claimed the delivery; only read
-- while it is claimed or publishing. Adding a column without a default rewrites nothing.
CREATE TABLE engines (
    id          text COLLATE "C" PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    started_at  timestamptz NOT NULL,
    beat_at     timestamptz NOT NULL
);
ALTER TABLE deliveries ADD COLUMN engine_id text COLLATE "C";
