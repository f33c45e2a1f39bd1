-- Read-your-writes with a read replica (herald.stores.postgres_replica): after an API key's
-- write commits, the primary's WAL position at that moment is kept here, where every API
-- node reads it, so that the key's next lag-tolerant read goes to the replica only once the
-- replica has replayed that far. One row per key that ever wrote; positions are bytes of WAL
-- (pg_lsn - '0/0').
CREATE TABLE read_positions (
    key_id     text COLLATE "C" PRIMARY KEY,
    wal_bytes  bigint NOT NULL,
    written_at timestamptz NOT NULL
);
