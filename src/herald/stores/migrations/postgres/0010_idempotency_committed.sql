-- Idempotency keys tied to the write's own transaction (docs/api.md, "Retrying writes"): every
-- write made under a key's claim marks it 'committed' in the same transaction, so a key whose
-- work committed without its answer being kept is known, and never done again. Same change as
-- SQLite's migration 0012.
ALTER TABLE idempotency_keys
    DROP CONSTRAINT idempotency_keys_state_check,
    ADD CONSTRAINT idempotency_keys_state_check
        CHECK (state IN ('in_progress', 'committed', 'done'));
