-- What was sent recently (sent_since in sql/sqlite.sql), read by every engine at start-up to
-- rebuild its rate limiter: the attempts of the last day or two, found by start time without
-- reading the whole history. The query names it (INDEXED BY), like the claim's indexes.
CREATE INDEX attempts_started ON attempts (started_at);
