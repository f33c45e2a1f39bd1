-- Named queries of the SQLite store. Each starts with "-- name: <name>"; those both dialects
-- write alike are in common.sql. Rows are read by column name; the {..._columns} and state
-- set placeholders ({CLAIMABLE}...) are filled in by herald.stores.queries.

-- name: insert_channel
INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, status,
                      created_at, workspace_id, region, secret)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?);

-- name: set_channel_status
UPDATE channels SET status = ?, credentials_ref = COALESCE(?, credentials_ref) WHERE id = ?;

-- name: delete_channel
UPDATE channels SET deleted_at = ?, status = 'disabled' WHERE id = ? AND deleted_at IS NULL;

-- name: cancel_channel_deliveries
UPDATE deliveries SET state = 'cancelled', next_attempt_at = NULL, claim_token = NULL,
    lease_until = NULL, last_error = 'the channel was deleted', updated_at = ?
WHERE channel_id = ? AND state IN ({CANCELLABLE});

-- name: channel_event
-- Record ``event`` about a channel for every webhook of its workspace subscribed to it. Event
-- ids are shaped as herald.domain.new_id makes ids: the millisecond (of :now, microseconds),
-- then 80 random bits, so that new events go to the last pages of the primary key.
INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                            created_at)
SELECT printf('evt_%012x', :now / 1000) || lower(hex(randomblob(10))), w.id, w.workspace_id, :event,
       json_object('event', :event, 'channel_id', c.id, 'platform', c.platform,
                   'status', c.status, 'occurred_at', :now_iso),
       :now, :now
FROM channels c JOIN webhooks w ON w.workspace_id = c.workspace_id
WHERE c.id = :id AND w.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = :event);

-- name: delivery_event
INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                            created_at)
SELECT printf('evt_%012x', :now / 1000) || lower(hex(randomblob(10))), w.id, w.workspace_id, :event,
       json_object('event', :event, 'delivery_id', d.id, 'post_id', d.post_id,
                   'channel_id', d.channel_id, 'platform', d.platform, 'state', d.state,
                   'external_id', d.external_id, 'error', d.last_error,
                   'occurred_at', :now_iso),
       :now, :now
FROM deliveries d JOIN posts p ON p.id = d.post_id
     JOIN webhooks w ON w.workspace_id = p.workspace_id
WHERE d.id = :id AND w.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = :event);

-- name: insert_post
INSERT INTO posts (id, content, overrides, created_at, workspace_id) VALUES (?, ?, ?, ?, ?);

-- name: insert_delivery
INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state, next_attempt_at, updated_at)
SELECT ?, ?, c.id, c.platform, ?, 'scheduled', ?, ? FROM channels c WHERE c.id = ?;

-- name: expire_due
-- Too late to publish and nothing owed to the platform: expire without claiming. A delivery
-- that owes a check is claimed instead, so the check can still record a post that exists.
-- INDEXED BY, here and in claim_due: without statistics SQLite's planner prefers
-- deliveries_state (equality on state) to the partial indexes made for these queries, and then
-- walks every claimable delivery, future ones included, on every claim (and sorts them for
-- claim_due). The named index finds only the stale ones (deliveries_stale) or the due ones in
-- due order (deliveries_due); a query edited so that its index no longer applies fails at once.
UPDATE deliveries INDEXED BY deliveries_stale
SET state = 'expired', next_attempt_at = NULL, updated_at = :now
WHERE state IN ({CLAIMABLE}) AND next_attempt_at IS NOT NULL
  AND next_attempt_at <= :now AND due_at < :expire_before AND check_first = 0
RETURNING {delivery_columns};

-- name: claim_due
UPDATE deliveries
SET state = 'claimed', claim_token = :token, lease_until = :lease_until, updated_at = :now,
    engine_id = :engine_id
WHERE id IN (
    SELECT d.id FROM deliveries d INDEXED BY deliveries_due JOIN channels c ON c.id = d.channel_id
    WHERE d.state IN ({CLAIMABLE}) AND d.next_attempt_at IS NOT NULL
      AND d.next_attempt_at <= :now AND c.status = 'active'
    ORDER BY d.next_attempt_at
    LIMIT :limit
)
RETURNING {delivery_columns};

-- name: next_due_at
-- In due order, stopping at the first of an active channel: not min() over every row.
-- CROSS JOIN keeps deliveries as the outer loop (SQLite never reorders it).
SELECT d.next_attempt_at FROM deliveries d INDEXED BY deliveries_due
CROSS JOIN channels c ON c.id = d.channel_id
WHERE d.state IN ({CLAIMABLE}) AND d.next_attempt_at IS NOT NULL
  AND c.status = 'active'
ORDER BY d.next_attempt_at
LIMIT 1;

-- name: apply_transition
-- One statement per target: {SOURCES} are the states it may be entered from (herald.states).
-- With :unheld, never a delivery an import holds (herald.domain.Delivery.held).
UPDATE deliveries SET
    state = :target,
    due_at = coalesce(:due_at, due_at),
    next_attempt_at = :next_attempt_at,
    lease_until = CASE WHEN :target IN ({IN_FLIGHT})
                       THEN coalesce(:lease_until, lease_until) END,
    claim_token = CASE WHEN :target IN ({IN_FLIGHT}) THEN claim_token END,
    external_id = coalesce(:external_id, external_id),
    last_error = :error,
    attempts = attempts + :sent,
    retries = CASE WHEN :reset_retries THEN 0 ELSE retries + :retry_spent END,
    checks = CASE WHEN :reset_retries OR coalesce(:check_first, 1) = 0 THEN 0
                  ELSE checks + :check_failed END,
    check_since = CASE WHEN coalesce(:check_first, check_first) = 1 OR :target = 'publishing'
                       THEN coalesce(:check_since, check_since) END,
    check_first = coalesce(:check_first, check_first),
    reconciled = CASE WHEN :target = 'published' THEN :reconciled ELSE reconciled END,
    published_at = coalesce(:published_at, published_at),
    updated_at = :now
WHERE id = :id AND state IN ({SOURCES})
  AND (:token IS NULL OR claim_token = :token)
  AND (:unclaimed = 0 OR claim_token IS NULL)
  AND (:unheld = 0 OR state <> 'scheduled' OR next_attempt_at IS NOT NULL OR attempts > 0);

-- name: insert_attempt
INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome, error, page_usage)
VALUES (?, ?, ?, ?, ?, ?, ?);

-- name: extend_leases
UPDATE deliveries SET lease_until = ?
WHERE claim_token = ? AND state IN ({IN_FLIGHT});

-- name: adopt_claim
-- A claim handed over to the engine that took it off a broker, if still claimed under the
-- token the message carried.
UPDATE deliveries SET claim_token = :token, engine_id = :engine_id, lease_until = :lease_until
WHERE id = :id AND claim_token = :old AND state = 'claimed';

-- name: record_abandoned_sends
-- Run just before recover_claims, in its transaction, on the same rows: a delivery still
-- publishing may have had its request counted by the platform. Its send is recorded (its
-- number, from when it left: check_since) so that the limiter's replay still counts it once a
-- look-up has settled the delivery (herald.stores.contract.abandoned_send).
INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome, error)
SELECT id, attempts, coalesce(check_since, updated_at), :now, 'abandoned', :error
FROM deliveries INDEXED BY deliveries_leased
WHERE state IN ({IN_FLIGHT}) AND state = 'publishing'
  AND (:every OR lease_until < :now OR engine_id IN (SELECT value FROM json_each(:engines)));

-- name: recover_claims
-- Claims whose holder is gone: its lease ran out (it died or hung), or its engine was removed
-- from the registry in this transaction (:engines, a JSON array: it stopped beating, or left).
-- Unsent deliveries go back to the queue; one that may have been sent (publishing) or still
-- owes a check is looked up before any resend. Pinned to deliveries_leased, which holds only
-- the claimed and publishing rows, however many the table holds.
UPDATE deliveries INDEXED BY deliveries_leased SET
    state = CASE WHEN state = 'publishing' OR check_first = 1 THEN 'unconfirmed'
                 WHEN attempts > 0 THEN 'retry_wait'
                 ELSE 'scheduled' END,
    check_first = CASE WHEN state = 'publishing' THEN 1 ELSE check_first END,
    next_attempt_at = :now,
    claim_token = NULL,
    lease_until = NULL,
    updated_at = :now
WHERE state IN ({IN_FLIGHT})
  AND (:every OR lease_until < :now OR engine_id IN (SELECT value FROM json_each(:engines)));

-- name: beat
UPDATE engines SET beat_at = :now WHERE id = :id;

-- name: register_engine
INSERT INTO engines (id, host, pid, started_at, beat_at)
VALUES (:id, :host, :pid, :started_at, :now);

-- name: remove_engines
-- The engines named (a JSON array) that have not beaten since :dead_before (NULL: whenever).
DELETE FROM engines
WHERE id IN (SELECT value FROM json_each(:engines))
  AND (:dead_before IS NULL OR beat_at < :dead_before)
RETURNING id;

-- name: delete_schedule
DELETE FROM posting_slots WHERE channel_id = ?;

-- name: insert_slot
INSERT INTO posting_slots (channel_id, weekday, minute) VALUES (?, ?, ?);

-- name: recover_webhook_events
UPDATE webhook_events SET state = 'pending', lease_until = NULL, next_attempt_at = :now
WHERE state = 'sending' AND lease_until < :now;

-- name: claim_webhook_events
-- Due events shared fairly (herald.types.Outbox.claim_webhook_events): the webhooks with
-- pending events (a skip scan of webhook_events_pending, as in next_webhook_event_at), those
-- neither disabled nor held, each with room under its cap (one while it is failing) less its
-- events in flight; each one's first due events up to that room; of failing webhooks' events
-- (probes), the most overdue up to :probes less the probes in flight; then the workspaces in
-- turn, each under its own cap less its events in flight. SQLite's LIMIT cannot read the
-- outer row, so each webhook's events are cut to :per_webhook, then to its room by rank.
WITH RECURSIVE waiting (webhook_id) AS (
    SELECT min(webhook_id) FROM webhook_events WHERE state = 'pending'
    UNION ALL
    SELECT (SELECT min(e.webhook_id) FROM webhook_events e
            WHERE e.state = 'pending' AND e.webhook_id > w.webhook_id)
    FROM waiting w WHERE w.webhook_id IS NOT NULL
), busy AS MATERIALIZED (
    SELECT e.webhook_id, e.workspace_id,
           h.deleted_at IS NULL AND h.failure_streak > 0 AS failing
    FROM webhook_events e JOIN webhooks h ON h.id = e.webhook_id
    WHERE e.state = 'sending'
), open_hooks AS (
    SELECT h.id, h.deleted_at IS NULL AND h.failure_streak > 0 AS failing,
           CASE WHEN h.deleted_at IS NULL AND h.failure_streak > 0 THEN 1
                ELSE :per_webhook END
           - (SELECT count(*) FROM busy b WHERE b.webhook_id = h.id) AS room
    FROM waiting w JOIN webhooks h ON h.id = w.webhook_id
    WHERE h.deleted_at IS NOT NULL
       OR (h.disabled_at IS NULL AND (h.held_until IS NULL OR h.held_until <= :now))
), due AS (
    SELECT e.id, e.workspace_id, e.next_attempt_at, h.failing, h.room,
           row_number() OVER (PARTITION BY e.webhook_id
                              ORDER BY e.next_attempt_at, e.id) AS nth
    FROM open_hooks h JOIN webhook_events e ON e.id IN (
        SELECT x.id FROM webhook_events x
        WHERE x.webhook_id = h.id AND x.state = 'pending' AND x.next_attempt_at <= :now
        ORDER BY x.next_attempt_at, x.id LIMIT :per_webhook)
    WHERE h.room > 0
), roomy AS (
    SELECT d.id, d.workspace_id, d.next_attempt_at, d.failing,
           row_number() OVER (PARTITION BY d.failing
                              ORDER BY d.next_attempt_at, d.id) AS probe
    FROM due d WHERE d.nth <= d.room
), turns AS (
    SELECT r.id, r.next_attempt_at,
           row_number() OVER (PARTITION BY r.workspace_id
                              ORDER BY r.next_attempt_at, r.id) AS turn,
           :per_workspace
           - (SELECT count(*) FROM busy b WHERE b.workspace_id = r.workspace_id) AS room
    FROM roomy r
    WHERE NOT r.failing OR r.probe <= :probes - (SELECT count(*) FROM busy b WHERE b.failing)
)
UPDATE webhook_events
SET state = 'sending', lease_until = :lease_until, attempts = attempts + 1,
    last_attempt_at = :now
WHERE id IN (SELECT id FROM turns WHERE turn <= room
             ORDER BY turn, next_attempt_at, id LIMIT :limit)
RETURNING id, webhook_id, workspace_id, event, payload, attempts, created_at;

-- name: settle_webhook_event
UPDATE webhook_events SET
    state = CASE WHEN :sent THEN 'sent' WHEN :next_attempt_at IS NULL THEN 'failed'
                 ELSE 'pending' END,
    next_attempt_at = :next_attempt_at, lease_until = NULL, last_error = :error,
    finished_at = CASE WHEN :sent OR :next_attempt_at IS NULL THEN :at END
WHERE id = :id AND state = 'sending'
RETURNING webhook_id;

-- name: count_webhook_outcome
-- After settle_webhook_event, in its transaction: a sent event clears the failure record and
-- the hold, a failed one adds to it.
UPDATE webhooks SET
    failure_streak = CASE WHEN :sent THEN 0 ELSE failure_streak + 1 END,
    failing_since = CASE WHEN :sent THEN NULL ELSE coalesce(failing_since, :at) END,
    held_until = CASE WHEN :sent THEN NULL ELSE held_until END
WHERE id = :webhook_id
RETURNING failure_streak, failing_since;

-- name: disable_webhook
UPDATE webhooks SET disabled_at = :at, disabled_reason = :reason
WHERE id = :id AND disabled_at IS NULL AND deleted_at IS NULL AND failure_streak > 0
RETURNING id, workspace_id, url;

-- name: webhook_disabled_event
-- After disable_webhook, in its transaction: tell the workspace's other webhooks.
INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                            created_at)
SELECT printf('evt_%012x', :now / 1000) || lower(hex(randomblob(10))), w.id, w.workspace_id,
       'webhook.disabled',
       json_object('event', 'webhook.disabled', 'webhook_id', :id, 'url', :url,
                   'reason', :reason, 'occurred_at', :now_iso),
       :now, :now
FROM webhooks w
WHERE w.workspace_id = :workspace_id AND w.id <> :id AND w.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = 'webhook.disabled');
-- name: platform_event
-- Record an event about a platform (its API version) for every webhook subscribed to it whose
-- workspace has a channel on that platform.
INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                            created_at)
SELECT printf('evt_%012x', :now / 1000) || lower(hex(randomblob(10))), w.id, w.workspace_id,
       :event, :payload, :now, :now
FROM webhooks w
WHERE w.deleted_at IS NULL
  AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = :event)
  AND EXISTS (SELECT 1 FROM channels c
              WHERE c.workspace_id = w.workspace_id AND c.platform = :platform
                AND c.deleted_at IS NULL)
  -- Event ids begin with their creation time: today's events of a webhook, on its index.
  AND NOT EXISTS (SELECT 1 FROM webhook_events e
                  WHERE e.webhook_id = w.id AND e.id >= :day_id AND e.created_at >= :day
                    AND e.event = :event
                    AND json_extract(e.payload, '$.platform') = :platform
                    AND json_extract(e.payload, '$.version') = :version);

-- CSV import jobs: what SQLite writes its own way (row by row, in one writer transaction).
-- A held delivery (stored by an import, not made due yet) is 'scheduled' with no
-- next_attempt_at and no attempt (herald.domain.Delivery.held).

-- name: insert_import_post
INSERT INTO import_posts (import_id, line, post_id) VALUES (?, ?, ?);

-- name: release_held_deliveries
UPDATE deliveries {INDEXED BY deliveries_post} SET next_attempt_at = due_at, updated_at = :now
WHERE post_id = :post_id AND state = 'scheduled' AND next_attempt_at IS NULL AND attempts = 0;

-- name: delete_import_attempts
-- Discarding an import that was not committed removes every delivery of its posts: none was
-- ever claimable nor changed by a user (apply's unheld), so none has an attempt; should one
-- have, it goes first, as the foreign key requires.
DELETE FROM attempts WHERE delivery_id IN (
    SELECT id FROM deliveries {INDEXED BY deliveries_post} WHERE post_id = :post_id);

-- name: delete_import_deliveries
DELETE FROM deliveries {INDEXED BY deliveries_post} WHERE post_id = :post_id;

-- name: delete_import_line
DELETE FROM import_posts WHERE import_id = :import_id AND line = :line;

-- name: delete_import_post
DELETE FROM posts WHERE id = :post_id;

-- name: extend_import_leases
UPDATE imports SET lease_until = :lease_until
WHERE runner = :runner AND id IN (SELECT value FROM json_each(:ids))
  AND state IN ('queued', 'validating', 'writing');
