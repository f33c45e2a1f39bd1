-- Named queries both stores run as written (SQLite and PostgreSQL), each starting with
-- "-- name: <name>"; a dialect's own are in sqlite.sql and postgres.sql. Parameters are :name.
-- {INDEXED BY <index>} pins a SQLite query to its index and is nothing on PostgreSQL.

-- name: list_channels
SELECT {channel_columns} FROM channels WHERE deleted_at IS NULL ORDER BY id;

-- name: list_workspace_channels
SELECT {channel_columns} FROM channels
WHERE workspace_id = :workspace_id AND deleted_at IS NULL ORDER BY id;

-- name: get_channel
SELECT {channel_columns} FROM channels WHERE id = :id;

-- name: update_channel
UPDATE channels SET name = :name, timezone = :timezone, credentials_ref = :credentials_ref
WHERE id = :id;

-- name: get_channel_secret
SELECT secret FROM channels WHERE id = :id;

-- name: set_channel_secret
UPDATE channels SET secret = :secret WHERE id = :id;

-- name: get_post
SELECT {post_columns} FROM posts WHERE id = :id;

-- name: get_delivery
SELECT {delivery_columns} FROM deliveries WHERE id = :id;

-- name: list_deliveries
SELECT {delivery_columns} FROM deliveries WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: list_deliveries_in_state
SELECT {delivery_columns} FROM deliveries WHERE state = :state AND id > :after_id ORDER BY id LIMIT :limit;

-- name: list_attempts
SELECT delivery_id, number, started_at, finished_at, outcome, error, page_usage
FROM attempts WHERE delivery_id = :id ORDER BY id;

-- name: count_by_state
SELECT state, count(*) AS deliveries FROM deliveries GROUP BY state;

-- name: count_webhook_backlog
-- Read at scrape time (cached a few seconds): the partial indexes on pending and on sending
-- events hold only the backlog, however long the outbox's history.
SELECT count(*) AS events FROM webhook_events WHERE state = 'pending'
UNION ALL
SELECT count(*) FROM webhook_events WHERE state = 'sending';

-- name: count_channels_needing_reauth
SELECT platform, count(*) AS channels FROM channels
WHERE status = 'needs_reauth' AND deleted_at IS NULL GROUP BY platform;

-- name: sent_since
-- What was sent since :since, for the rate limiter an engine rebuilds at start-up: every
-- attempt (publish or look-up, with a look-up's further pages) that started then or later,
-- and every send with no outcome recorded (outcome NULL: the delivery is publishing, or owes
-- a look-up, since check_since), each with its account and its post's content, oldest first.
-- attempts_started finds the window's attempts without reading the whole history (named on
-- SQLite, as for the claim); deliveries_state the few deliveries in those states.
SELECT a.delivery_id, a.number, d.platform, c.external_id AS "channel.external_id",
       a.started_at, a.outcome, a.page_usage, d.post_id, p.content AS "post.content",
       p.overrides AS "post.overrides", a.id AS attempt_id
FROM attempts a {INDEXED BY attempts_started}
JOIN deliveries d ON d.id = a.delivery_id
JOIN channels c ON c.id = d.channel_id
JOIN posts p ON p.id = d.post_id
WHERE a.started_at >= :since
UNION ALL
SELECT d.id, d.attempts, d.platform, c.external_id, d.check_since, NULL, NULL,
       d.post_id, p.content, p.overrides, 0
FROM deliveries d {INDEXED BY deliveries_state}
JOIN channels c ON c.id = d.channel_id
JOIN posts p ON p.id = d.post_id
WHERE d.state IN ({UNRESOLVED}) AND d.check_since >= :since
ORDER BY started_at, attempt_id;

-- name: busy_times
SELECT due_at FROM deliveries
WHERE channel_id = :id AND due_at >= :start AND due_at < :end
  AND state NOT IN ({DROPPED});

-- name: get_schedule
SELECT weekday, minute FROM posting_slots WHERE channel_id = :id ORDER BY weekday, minute;

-- name: insert_workspace
INSERT INTO workspaces (id, name, created_at) VALUES (:id, :name, :created_at);

-- name: get_workspace
SELECT id, name, created_at FROM workspaces WHERE id = :id;

-- name: list_workspaces
SELECT id, name, created_at FROM workspaces ORDER BY id;

-- name: insert_api_key
INSERT INTO api_keys (id, workspace_id, prefix, secret_hash, name, created_at)
VALUES (:id, :workspace_id, :prefix, :secret_hash, :name, :created_at);

-- name: api_key_by_prefix
SELECT id, workspace_id, prefix, name, created_at, revoked_at, secret_hash
FROM api_keys WHERE prefix = :prefix;

-- name: list_api_keys
SELECT id, workspace_id, prefix, name, created_at, revoked_at
FROM api_keys WHERE workspace_id = :workspace_id ORDER BY created_at, id;

-- name: revoke_api_key
UPDATE api_keys SET revoked_at = coalesce(revoked_at, :at) WHERE id = :id;

-- name: insert_webhook
INSERT INTO webhooks (id, workspace_id, url, events, secret, created_at)
VALUES (:id, :workspace_id, :url, :events, :secret, :created_at);

-- name: list_webhooks
SELECT id, workspace_id, url, events, created_at, disabled_at, disabled_reason, failing_since
FROM webhooks
WHERE workspace_id = :workspace_id AND deleted_at IS NULL ORDER BY created_at, id;

-- name: get_webhook_secret
SELECT secret FROM webhooks WHERE id = :id AND deleted_at IS NULL;

-- name: set_webhook_secret
UPDATE webhooks SET secret = :secret WHERE id = :id AND deleted_at IS NULL;

-- name: delete_webhook
UPDATE webhooks SET deleted_at = :at WHERE id = :id AND deleted_at IS NULL;

-- name: next_webhook_event_at
-- The webhooks with pending events, found by walking webhook_events_pending from one webhook
-- id to the next (a skip scan: a webhook's flood is stepped over, not read), each one's
-- earliest due event, pushed back to its hold; disabled webhooks' events wait for their
-- owner, a deleted one's are handed out to be settled.
WITH RECURSIVE waiting (webhook_id) AS (
    SELECT min(webhook_id) FROM webhook_events WHERE state = 'pending'
    UNION ALL
    SELECT (SELECT min(e.webhook_id) FROM webhook_events e
            WHERE e.state = 'pending' AND e.webhook_id > w.webhook_id)
    FROM waiting w WHERE w.webhook_id IS NOT NULL
), due AS (
    SELECT h.deleted_at, h.held_until,
           (SELECT min(x.next_attempt_at) FROM webhook_events x
            WHERE x.webhook_id = h.id AND x.state = 'pending') AS first_due
    FROM waiting w JOIN webhooks h ON h.id = w.webhook_id
    WHERE h.deleted_at IS NOT NULL OR h.disabled_at IS NULL
)
SELECT min(CASE WHEN deleted_at IS NULL AND held_until > first_due THEN held_until
                ELSE first_due END) AS next_attempt_at
FROM due;

-- name: hold_webhook
-- Only while it is failing (an event sent since cleared the record), and never shortened.
UPDATE webhooks
SET held_until = CASE WHEN held_until IS NULL OR held_until < :until THEN :until
                      ELSE held_until END
WHERE id = :id AND failure_streak > 0;

-- name: enable_webhook
UPDATE webhooks
SET disabled_at = NULL, disabled_reason = NULL, failure_streak = 0, failing_since = NULL,
    held_until = NULL
WHERE id = :id AND deleted_at IS NULL;

-- name: list_webhook_events
SELECT id, webhook_id, workspace_id, event, payload, attempts, created_at, state, last_error,
       next_attempt_at, last_attempt_at, finished_at
FROM webhook_events
WHERE webhook_id = :webhook_id AND id > :after_id
  AND (CAST(:state AS TEXT) IS NULL OR state = CAST(:state AS TEXT))
ORDER BY id LIMIT :limit;

-- name: get_webhook_event
SELECT id, webhook_id, workspace_id, event, payload, attempts, created_at, state, last_error,
       next_attempt_at, last_attempt_at, finished_at
FROM webhook_events WHERE id = :id;

-- name: replay_webhook_event
-- Finished events only: one pending or sending is on its way already.
UPDATE webhook_events
SET state = 'pending', attempts = 0, next_attempt_at = :at, lease_until = NULL,
    finished_at = NULL
WHERE id = :id AND state IN ({REPLAYABLE_EVENTS});

-- name: list_engines
SELECT id, host, pid, started_at, beat_at FROM engines ORDER BY started_at, id;

-- name: dead_engines
-- Engines that have not beaten since :dead_before (a handful of rows: no index needed).
SELECT id FROM engines WHERE beat_at < :dead_before ORDER BY id;

-- Erasing a workspace (Catalog.erase_workspace): one statement per table, children first,
-- run in this order in one transaction. A delivery belongs to the workspace of its post and
-- of its channel (the service never mixes them); both are matched, so no row can outlive it.
-- Each side is its own indexed look-up (deliveries_post, deliveries_channel_due): an OR of
-- the two would scan every workspace's deliveries.
-- name: erase_attempts
DELETE FROM attempts WHERE delivery_id IN (
    SELECT d.id FROM deliveries d JOIN posts p ON p.id = d.post_id WHERE p.workspace_id = :id
    UNION
    SELECT d.id FROM deliveries d JOIN channels c ON c.id = d.channel_id
    WHERE c.workspace_id = :id);

-- name: erase_webhook_events
DELETE FROM webhook_events
WHERE workspace_id = :id OR webhook_id IN (SELECT id FROM webhooks WHERE workspace_id = :id);

-- name: erase_import_posts
DELETE FROM import_posts WHERE import_id IN (SELECT id FROM imports WHERE workspace_id = :id);

-- name: erase_deliveries
DELETE FROM deliveries WHERE id IN (
    SELECT d.id FROM deliveries d JOIN posts p ON p.id = d.post_id WHERE p.workspace_id = :id
    UNION
    SELECT d.id FROM deliveries d JOIN channels c ON c.id = d.channel_id
    WHERE c.workspace_id = :id);

-- name: erase_posting_slots
DELETE FROM posting_slots WHERE channel_id IN (SELECT id FROM channels WHERE workspace_id = :id);

-- name: erase_posts
DELETE FROM posts WHERE workspace_id = :id;

-- name: erase_imports
DELETE FROM imports WHERE workspace_id = :id;

-- name: erase_webhooks
DELETE FROM webhooks WHERE workspace_id = :id;

-- name: erase_channels
DELETE FROM channels WHERE workspace_id = :id;

-- name: erase_api_keys
DELETE FROM api_keys WHERE workspace_id = :id;

-- name: erase_idempotency_keys
DELETE FROM idempotency_keys WHERE workspace_id = :id;

-- name: erase_workspace
DELETE FROM workspaces WHERE id = :id;
-- name: begin_idempotent
-- Claim an idempotency key: a new row, or over a row that may be claimed (contract.py,
-- key_claimable): an expired one, or one left in progress past its lock by the same request
-- (never a committed one: its work was done). Returns no row when the key is someone else's;
-- on PostgreSQL the row is then locked for the rest of the transaction, in which
-- get_idempotency_key reads it (sql_common.py).
INSERT INTO idempotency_keys AS k
    (workspace_id, key, fingerprint, token, state, created_at, locked_until, expires_at)
VALUES (:workspace_id, :key, :fingerprint, :token, 'in_progress', :now, :locked_until,
        :expires_at)
ON CONFLICT (workspace_id, key) DO UPDATE SET
    fingerprint = excluded.fingerprint, token = excluded.token, state = 'in_progress',
    status = NULL, headers = NULL, body = NULL, created_at = excluded.created_at,
    locked_until = excluded.locked_until, expires_at = excluded.expires_at
WHERE k.expires_at <= excluded.created_at
   OR (k.state = 'in_progress' AND k.locked_until <= excluded.created_at
       AND k.fingerprint = excluded.fingerprint)
RETURNING token;

-- name: get_idempotency_key
SELECT fingerprint, token, state, status, headers, body, created_at, locked_until, expires_at
FROM idempotency_keys WHERE workspace_id = :workspace_id AND key = :key;

-- name: mark_idempotent
-- First statement of every write transaction made under a key claim (herald.keyclaim): the
-- key's work is committed with this transaction, or not at all. No row: the claim was lost
-- (taken over), and the transaction is rolled back. On PostgreSQL the row stays locked until
-- the transaction ends: a takeover waits for it, then finds the key committed.
UPDATE idempotency_keys SET state = 'committed'
WHERE workspace_id = :workspace_id AND key = :key AND token = :token
  AND state IN ('in_progress', 'committed');

-- name: finish_idempotent
UPDATE idempotency_keys SET state = 'done', status = :status, headers = :headers, body = :body
WHERE workspace_id = :workspace_id AND key = :key AND token = :token
  AND state IN ('in_progress', 'committed');

-- name: release_idempotent
-- A request that ended without an answer to keep: its key is free again if none of its work
-- committed (then unlock_idempotent finds nothing to do)...
DELETE FROM idempotency_keys
WHERE workspace_id = :workspace_id AND key = :key AND token = :token AND state = 'in_progress';

-- name: unlock_idempotent
-- ...else it stays committed, its lock ended: a retry is told at once the work was done.
UPDATE idempotency_keys SET locked_until = created_at
WHERE workspace_id = :workspace_id AND key = :key AND token = :token AND state = 'committed';

-- name: purge_idempotency
-- A batch of expired rows at a time (idempotency_keys_expiry): a purge never holds many locks.
-- The outer statement repeats the expiry: on PostgreSQL a row the subquery picked may have been
-- claimed anew meanwhile (a takeover committed while the purge waited for its lock), and only
-- the outer condition is checked again on the row as it is then.
DELETE FROM idempotency_keys WHERE expires_at <= :before AND (workspace_id, key) IN (
    SELECT workspace_id, key FROM idempotency_keys WHERE expires_at <= :before
    ORDER BY expires_at LIMIT :limit);
-- name: get_import
SELECT {import_columns} FROM imports WHERE id = :id;

-- name: list_imports
-- Without the problems (errors): up to 1,000 a job, they are read one job at a time.
SELECT id, workspace_id, state, rows_total, rows_validated, posts_written, deliveries,
       committed, detail, '[]' AS errors, runner, lease_until, created_at, updated_at,
       finished_at
FROM imports
WHERE workspace_id = :workspace_id AND (created_at, id) > (:after_at, :after_id)
ORDER BY created_at, id LIMIT :limit;

-- name: purge_import_lines
-- A batch of the lines of jobs finished before :before (imports_finished, then each job's
-- lines by its primary key).
DELETE FROM import_posts WHERE (import_id, line) IN (
    SELECT ip.import_id, ip.line FROM imports i JOIN import_posts ip ON ip.import_id = i.id
    WHERE i.state NOT IN ('queued', 'validating', 'writing') AND i.finished_at < :before
    LIMIT :limit);

-- name: purge_imports
DELETE FROM imports WHERE id IN (
    SELECT i.id FROM imports i
    WHERE i.state NOT IN ('queued', 'validating', 'writing') AND i.finished_at < :before
      AND NOT EXISTS (SELECT 1 FROM import_posts ip WHERE ip.import_id = i.id)
    ORDER BY i.finished_at LIMIT :limit);

-- name: running_imports
SELECT count(*) AS running FROM imports
WHERE workspace_id = :workspace_id AND state IN ('queued', 'validating', 'writing');

-- name: insert_import
INSERT INTO imports (id, workspace_id, state, rows_total, rows_validated, posts_written,
                     deliveries, committed, detail, errors, runner, lease_until, created_at,
                     updated_at, finished_at)
VALUES (:id, :workspace_id, :state, :rows_total, :rows_validated, :posts_written, :deliveries,
        :committed, :detail, :errors, :runner, :lease_until, :created_at, :updated_at,
        :finished_at);

-- name: save_import
-- Never the lease: the runner's keeper renews it (extend_import_leases) while a job is saved.
UPDATE imports SET state = :state, rows_total = :rows_total, rows_validated = :rows_validated,
    posts_written = :posts_written, deliveries = :deliveries, committed = :committed,
    detail = :detail, errors = :errors, updated_at = :updated_at, finished_at = :finished_at
WHERE id = :id AND runner = :runner AND state IN ('queued', 'validating', 'writing');

-- name: touch_import
-- The guard of a write for a job: on PostgreSQL it also locks the job's row until the write
-- commits, so a take-over waits for it (and the write waits for a take-over).
UPDATE imports SET updated_at = :now
WHERE id = :id AND runner = :runner AND state IN ('queued', 'validating', 'writing');


-- name: take_over_imports
UPDATE imports SET runner = :runner, lease_until = :lease_until, updated_at = :now
WHERE state IN ('queued', 'validating', 'writing')
  AND (lease_until IS NULL OR lease_until < :now)
RETURNING {import_columns};

-- name: import_lines
SELECT line, post_id FROM import_posts
WHERE import_id = :id AND line > :after_line ORDER BY line LIMIT :limit;

-- name: list_import_posts
SELECT ip.line, {p.post_columns} FROM import_posts ip JOIN posts p ON p.id = ip.post_id
WHERE ip.import_id = :id AND ip.line > :after_line ORDER BY ip.line LIMIT :limit;
