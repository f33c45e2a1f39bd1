-- A webhook keeps how its attempts went: a failing one is held back (held_until), then
-- disabled (disabled_at, disabled_reason) once every attempt failed long enough; events keep
-- when they were last tried and when they finished, for their owner to list and replay.
-- Same columns and indexes as PostgreSQL's migration 0008.
ALTER TABLE webhooks ADD COLUMN failure_streak INTEGER NOT NULL DEFAULT 0;
ALTER TABLE webhooks ADD COLUMN failing_since INTEGER;
ALTER TABLE webhooks ADD COLUMN held_until INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_at INTEGER;
ALTER TABLE webhooks ADD COLUMN disabled_reason TEXT;
ALTER TABLE webhook_events ADD COLUMN last_attempt_at INTEGER;
ALTER TABLE webhook_events ADD COLUMN finished_at INTEGER;
-- Claims walk the webhooks that have pending events, then each one's due events in due
-- order: one webhook's flood is never read whole to find another's next event.
DROP INDEX webhook_events_due;
CREATE INDEX webhook_events_pending ON webhook_events (webhook_id, next_attempt_at)
    WHERE state = 'pending';
-- A webhook's events by id: by the millisecond they were recorded in (ids start with it).
CREATE INDEX webhook_events_webhook ON webhook_events (webhook_id, id);
