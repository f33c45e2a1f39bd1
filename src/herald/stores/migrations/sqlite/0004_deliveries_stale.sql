-- The claim's expiry check (expire_due in sql/sqlite.sql): due deliveries too late to send,
-- found by due_at among the claimable ones that owe no check, without walking every due
-- delivery. PostgreSQL has had the same index (deliveries_stale) from its first migration.
-- The queries name it (INDEXED BY): without statistics SQLite's planner prefers
-- deliveries_state, which walks every claimable delivery, future ones included.
CREATE INDEX deliveries_stale ON deliveries (due_at)
    WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL
      AND check_first = 0;
