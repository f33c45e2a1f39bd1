-- What was sent recently (sent_since in sql/postgres.sql), read by every engine at start-up to
-- rebuild its rate limiter: the attempts of the last day or two, found by start time without
-- reading the whole history. Same index as SQLite's migration 0005. Building it locks
-- attempts against writes for the length of the transaction: on a long history, apply it
-- while no engine runs.
CREATE INDEX attempts_started ON attempts (started_at);
