-- Named queries of the SQLite store. Each starts with "-- name: <name>".
-- Delivery columns are always selected in the order of DELIVERY_COLUMNS in sqlite.py.

-- name: insert_channel
INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, status, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?);

-- name: get_channel
SELECT id, platform, external_id, name, timezone, credentials_ref, status
FROM channels WHERE id = ?;

-- name: list_channels
SELECT id, platform, external_id, name, timezone, credentials_ref, status
FROM channels ORDER BY id;

-- name: set_channel_status
UPDATE channels SET status = ?, credentials_ref = COALESCE(?, credentials_ref) WHERE id = ?;

-- name: insert_post
INSERT INTO posts (id, content, overrides, created_at) VALUES (?, ?, ?, ?);

-- name: insert_delivery
INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state, next_attempt_at, updated_at)
SELECT ?, ?, c.id, c.platform, ?, 'scheduled', ?, ? FROM channels c WHERE c.id = ?;

-- name: get_post
SELECT id, content, overrides, created_at FROM posts WHERE id = ?;

-- name: get_delivery
SELECT {columns} FROM deliveries WHERE id = ?;

-- name: list_deliveries
SELECT {columns} FROM deliveries WHERE id > ? ORDER BY id LIMIT ?;

-- name: list_deliveries_in_state
SELECT {columns} FROM deliveries WHERE state = ? AND id > ? ORDER BY id LIMIT ?;

-- name: list_attempts
SELECT delivery_id, number, started_at, finished_at, outcome, error
FROM attempts WHERE delivery_id = ? ORDER BY id;

-- name: count_by_state
SELECT state, count(*) FROM deliveries GROUP BY state;

-- name: expire_due
-- Too late to publish and nothing owed to the platform: expire without claiming. A delivery
-- that owes a check is claimed instead, so the check can still record a post that exists.
UPDATE deliveries
SET state = 'expired', next_attempt_at = NULL, updated_at = :now
WHERE state IN ('scheduled', 'retry_wait', 'unconfirmed') AND next_attempt_at IS NOT NULL
  AND next_attempt_at <= :now AND due_at < :expire_before AND check_first = 0
RETURNING {columns};

-- name: claim_due
UPDATE deliveries
SET state = 'claimed', claim_token = :token, lease_until = :lease_until, updated_at = :now
WHERE id IN (
    SELECT d.id FROM deliveries d JOIN channels c ON c.id = d.channel_id
    WHERE d.state IN ('scheduled', 'retry_wait', 'unconfirmed') AND d.next_attempt_at IS NOT NULL
      AND d.next_attempt_at <= :now AND c.status = 'active'
    ORDER BY d.next_attempt_at
    LIMIT :limit
)
RETURNING {columns};

-- name: next_due_at
SELECT min(d.next_attempt_at) FROM deliveries d JOIN channels c ON c.id = d.channel_id
WHERE d.state IN ('scheduled', 'retry_wait', 'unconfirmed') AND d.next_attempt_at IS NOT NULL
  AND c.status = 'active';

-- name: apply_transition
-- {sources} is the list of states the target may be entered from (herald.states).
UPDATE deliveries SET
    state = :target,
    due_at = coalesce(:due_at, due_at),
    next_attempt_at = :next_attempt_at,
    lease_until = CASE WHEN :target IN ('claimed', 'publishing')
                       THEN coalesce(:lease_until, lease_until) END,
    claim_token = CASE WHEN :target IN ('claimed', 'publishing') THEN claim_token END,
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
WHERE id = :id AND state IN ({sources})
  AND (:token IS NULL OR claim_token = :token);

-- name: insert_attempt
INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome, error)
VALUES (?, ?, ?, ?, ?, ?);

-- name: extend_leases
UPDATE deliveries SET lease_until = ?
WHERE claim_token = ? AND state IN ('claimed', 'publishing');

-- name: recover_expired_leases
-- A lease that ran out means its engine died or hung. Unsent deliveries go back to the queue;
-- one that may have been sent (publishing) or still owes a check is looked up before any resend.
UPDATE deliveries SET
    state = CASE WHEN state = 'publishing' OR check_first = 1 THEN 'unconfirmed'
                 WHEN attempts > 0 THEN 'retry_wait'
                 ELSE 'scheduled' END,
    check_first = CASE WHEN state = 'publishing' THEN 1 ELSE check_first END,
    next_attempt_at = :now,
    claim_token = NULL,
    lease_until = NULL,
    updated_at = :now
WHERE state IN ('claimed', 'publishing') AND (:every OR lease_until < :now);
