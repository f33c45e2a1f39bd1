-- Engines register themselves and beat (sql/sqlite.sql, beat); a claim records the engine that
-- made it, so that another engine can give back the claims of one whose heartbeat stopped
-- within seconds rather than after the whole lease. Same tables as PostgreSQL's migration 0004.
-- deliveries.engine_id: the engine that last claimed the delivery; only read while it is
-- claimed or publishing.
CREATE TABLE engines (
    id          TEXT PRIMARY KEY,
    host        TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    beat_at     INTEGER NOT NULL
);
ALTER TABLE deliveries ADD COLUMN engine_id TEXT;
