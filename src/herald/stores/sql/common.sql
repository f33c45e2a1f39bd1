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
SELECT id, workspace_id, url, events, created_at FROM webhooks
WHERE workspace_id = :workspace_id AND deleted_at IS NULL ORDER BY created_at, id;

-- name: get_webhook_secret
SELECT secret FROM webhooks WHERE id = :id AND deleted_at IS NULL;

-- name: set_webhook_secret
UPDATE webhooks SET secret = :secret WHERE id = :id AND deleted_at IS NULL;

-- name: delete_webhook
UPDATE webhooks SET deleted_at = :at WHERE id = :id AND deleted_at IS NULL;

-- name: next_webhook_event_at
SELECT min(next_attempt_at) AS next_attempt_at FROM webhook_events WHERE state = 'pending';

-- name: list_engines
SELECT id, host, pid, started_at, beat_at FROM engines ORDER BY started_at, id;

-- name: dead_engines
-- Engines that have not beaten since :dead_before (a handful of rows: no index needed).
SELECT id FROM engines WHERE beat_at < :dead_before ORDER BY id;

-- CSV import jobs (herald.types.ImportJobs). A job is unfinished while queued, validating or
-- writing: imports_unfinished indexes just those rows, and the queries repeat its condition
-- as written (SQLite uses a partial index only then). Every write for a job names its runner
-- and changes nothing once another runner holds the job.

-- name: get_import
SELECT {import_columns} FROM imports WHERE id = :id;

-- name: list_imports
SELECT {import_columns} FROM imports
WHERE workspace_id = :workspace_id AND (created_at, id) > (:after_at, :after_id)
ORDER BY created_at, id LIMIT :limit;

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
