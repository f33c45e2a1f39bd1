-- Named queries of the PostgreSQL store. Each starts with "-- name: <name>"; those both dialects
-- write alike are in common.sql. Parameters are written :name and bound by name
-- (herald.stores.postgres_conn.Query); "::type" is a cast, never a parameter. Rows are read by
-- column name; the {..._columns} and state set placeholders ({CLAIMABLE}...) are filled in by
-- herald.stores.queries.
--
-- Locking, for any number of engines on any number of machines:
-- - claims and recoveries pick their rows with FOR UPDATE SKIP LOCKED: they never wait, never
--   take a row another transaction holds, and a row they skip is still there for the next one;
-- - every statement that may wait on several delivery rows (guarded writes, lease renewals,
--   cancellations) locks them in id order first, so two of them can never deadlock.

-- name: insert_channels
INSERT INTO channels (id, platform, external_id, name, timezone, credentials_ref, status,
                      created_at, workspace_id, region, secret)
SELECT * FROM unnest(:ids::text[], :platforms::text[], :external_ids::text[], :names::text[],
                     :timezones::text[], :credentials_refs::text[], :statuses::text[],
                     :created_at::timestamptz[], :workspace_ids::text[], :regions::text[],
                     :secrets::bytea[]);

-- name: set_channel_status
-- Change the status and record ``event`` for every webhook of the channel's workspace
-- subscribed to it, in one statement; the count says whether the channel exists.
WITH changed AS (
    UPDATE channels
    SET status = :status, credentials_ref = coalesce(:credentials_ref, credentials_ref)
    WHERE id = :id
    RETURNING id, workspace_id, platform, status
), recorded AS (
    INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                                created_at)
    SELECT 'evt_' || lpad(to_hex((extract(epoch FROM :now::timestamptz) * 1000)::bigint), 12, '0')
           || substr(md5(gen_random_uuid()::text), 1, 20), w.id, w.workspace_id,
           :event::text,
           jsonb_build_object('event', :event::text, 'channel_id', c.id,
                              'platform', c.platform, 'status', c.status,
                              'occurred_at', :now_iso::text),
           :now, :now
    FROM changed c JOIN webhooks w ON w.workspace_id = c.workspace_id
    WHERE :event::text IS NOT NULL AND w.deleted_at IS NULL AND w.events ? :event::text
)
SELECT count(*) FROM changed;

-- name: notify_due
-- Wake the dispatchers listening on this schema's channel (sent at commit; see postgres.py).
SELECT pg_notify(:channel, :payload);

-- name: delete_channel
-- Mark the channel deleted and cancel its pending deliveries; return how many, or no row if
-- there is no such (live) channel.
WITH deleted AS (
    UPDATE channels SET deleted_at = :at, status = 'disabled'
    WHERE id = :id AND deleted_at IS NULL
    RETURNING id
), pending AS MATERIALIZED (
    SELECT d.id FROM deliveries d JOIN deleted ON deleted.id = d.channel_id
    WHERE d.state IN ({CANCELLABLE})
    ORDER BY d.id
    FOR UPDATE OF d
), cancelled AS (
    UPDATE deliveries d SET state = 'cancelled', next_attempt_at = NULL, claim_token = NULL,
        lease_until = NULL, last_error = 'the channel was deleted', updated_at = :at
    FROM pending WHERE d.id = pending.id
      AND d.state IN ({CANCELLABLE})
    RETURNING 1
)
SELECT (SELECT count(*) FROM cancelled) AS cancelled FROM deleted;

-- name: insert_posts
INSERT INTO posts (id, content, overrides, created_at, workspace_id)
SELECT * FROM unnest(:ids::text[], :contents::jsonb[], :overrides::jsonb[],
                     :created_at::timestamptz[], :workspace_ids::text[]);

-- name: insert_deliveries
-- One delivery per (id, post, channel, due); a target whose channel does not exist inserts
-- nothing, which the caller detects by counting.
INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state, next_attempt_at,
                        updated_at)
SELECT t.id, t.post_id, c.id, c.platform, t.due_at, 'scheduled', t.due_at, :now
FROM unnest(:ids::text[], :post_ids::text[], :channel_ids::text[], :due_at::timestamptz[])
     AS t (id, post_id, channel_id, due_at)
JOIN channels c ON c.id = t.channel_id
RETURNING {delivery_columns};

-- name: existing_channels
SELECT id FROM channels WHERE id = ANY(:ids::text[]);

-- name: deliveries_of
SELECT {delivery_columns} FROM deliveries WHERE post_id = ANY(:post_ids::text[]) ORDER BY due_at, id;

-- name: claim_due
-- One statement, so one round trip and atomic without BEGIN/COMMIT:
-- 1. ``stale``: too late to publish and nothing owed to the platform: expired, not claimed.
--    A delivery that owes a check is claimed instead, so the check can still record a post
--    that exists.
-- 2. ``picked``: up to :limit due deliveries of active channels, in due order, skipping the
--    rows other claimers hold. Its predicate excludes the stale rows, so no row is written
--    twice by this statement. The channel is tested by a scalar subquery, which PostgreSQL
--    never turns into a join: whatever the statistics (none right after a bulk import), the
--    plan reads deliveries_due up to :now and never the future backlog (see next_due_at and
--    tests/integration/test_postgres_plans.py).
-- Rows come back with their channel and post, claimed ones with ``claimed`` true.
WITH stale AS MATERIALIZED (
    SELECT id FROM deliveries
    WHERE state IN ({CLAIMABLE}) AND next_attempt_at IS NOT NULL
      AND next_attempt_at <= :now AND due_at < :expire_before AND NOT check_first
    FOR UPDATE SKIP LOCKED
), expired AS (
    UPDATE deliveries d SET state = 'expired', next_attempt_at = NULL, updated_at = :now
    FROM stale WHERE d.id = stale.id
    RETURNING {d.delivery_columns}
), picked AS MATERIALIZED (
    SELECT d.id FROM deliveries d
    WHERE d.state IN ({CLAIMABLE}) AND d.next_attempt_at IS NOT NULL
      AND d.next_attempt_at <= :now
      AND (d.due_at >= :expire_before OR d.check_first)
      AND (SELECT c.status = 'active' FROM channels c WHERE c.id = d.channel_id) IS TRUE
    ORDER BY d.next_attempt_at
    LIMIT :limit
    FOR UPDATE OF d SKIP LOCKED
), claimed AS (
    UPDATE deliveries d
    SET state = 'claimed', claim_token = :token, lease_until = :lease_until, updated_at = :now,
        engine_id = :engine_id
    FROM picked WHERE d.id = picked.id
    RETURNING {d.delivery_columns}
), done AS (
    SELECT true AS claimed, * FROM claimed
    UNION ALL
    SELECT false, * FROM expired
)
SELECT done.claimed, {done.delivery_columns}, {c.channel_columns AS channel.},
       p.content AS "post.content", p.overrides AS "post.overrides"
FROM done JOIN channels c ON c.id = done.channel_id JOIN posts p ON p.id = done.post_id;

-- name: next_due_at
-- In due order, stopping at the first of an active channel, as on SQLite. Written as min()
-- over a join, the planner chose by the statistics: a nested loop reading the whole due index
-- once per channel right after a bulk import (32-40 s a call with 1M future deliveries), a
-- hash join over every delivery once analysed (0.24 s every idle recheck). A scalar
-- subquery is never turned into a join, and its "IS TRUE" is estimated true for half the rows
-- whatever the statistics ("= 'active'" would be estimated at 0.5%, for which the planner
-- preferred to read and sort every due row): the one plan left walks deliveries_due from the
-- front and stops at the first row. What it steps over are due deliveries of channels that
-- are not active, which expire past their lateness budget.
SELECT d.next_attempt_at FROM deliveries d
WHERE d.state IN ({CLAIMABLE}) AND d.next_attempt_at IS NOT NULL
  AND (SELECT c.status = 'active' FROM channels c WHERE c.id = d.channel_id) IS TRUE
ORDER BY d.next_attempt_at
LIMIT 1;

-- name: apply_transitions
-- Guarded state changes, their attempts and their webhook events in one statement. Each row
-- of ``t`` is a Transition (no delivery twice: the caller splits such batches). A change takes
-- effect only if the delivery may enter the target from its current state ({TRANSITIONS}
-- lists the (target, source) pairs of herald.states) and, with a token, still holds that
-- claim; with unclaimed, no claim at all; with unheld, the delivery is not held by an import
-- (herald.domain.Delivery.held).
-- ``changed`` returns the ordinal of every transition that took effect.
WITH t AS (
    SELECT * FROM unnest(
        :ids::text[], :targets::text[], :tokens::text[], :due_at::timestamptz[],
        :next_attempt_at::timestamptz[], :lease_until::timestamptz[], :external_ids::text[],
        :errors::text[], :sent::boolean[], :retry_spent::boolean[], :check_failed::boolean[],
        :reset_retries::boolean[], :check_first::boolean[], :check_since::timestamptz[],
        :reconciled::boolean[], :published_at::timestamptz[], :attempt_numbers::integer[],
        :attempt_started::timestamptz[], :attempt_finished::timestamptz[],
        :attempt_outcomes::text[], :attempt_errors::text[], :attempt_page_usage::jsonb[],
        :events::text[], :unclaimed::boolean[], :unheld::boolean[]
    ) WITH ORDINALITY AS t (id, target, token, due_at, next_attempt_at, lease_until,
                            external_id, error, sent, retry_spent, check_failed, reset_retries,
                            check_first, check_since, reconciled, published_at, attempt_number,
                            attempt_started, attempt_finished, attempt_outcome, attempt_error,
                            attempt_page_usage, event, unclaimed, unheld, ord)
), locked AS MATERIALIZED (
    SELECT d.id FROM deliveries d JOIN t ON t.id = d.id
    WHERE (t.target, d.state) IN ({TRANSITIONS})
      AND (t.token IS NULL OR d.claim_token = t.token)
      AND (NOT t.unclaimed OR d.claim_token IS NULL)
      AND (NOT t.unheld OR d.state <> 'scheduled' OR d.next_attempt_at IS NOT NULL
           OR d.attempts > 0)
    ORDER BY d.id
    FOR UPDATE OF d
), changed AS (
    UPDATE deliveries d SET
        state = t.target,
        due_at = coalesce(t.due_at, d.due_at),
        next_attempt_at = t.next_attempt_at,
        lease_until = CASE WHEN t.target IN ({IN_FLIGHT})
                           THEN coalesce(t.lease_until, d.lease_until) END,
        claim_token = CASE WHEN t.target IN ({IN_FLIGHT}) THEN d.claim_token END,
        external_id = coalesce(t.external_id, d.external_id),
        last_error = t.error,
        attempts = d.attempts + t.sent::integer,
        retries = CASE WHEN t.reset_retries THEN 0 ELSE d.retries + t.retry_spent::integer END,
        checks = CASE WHEN t.reset_retries OR t.check_first = false THEN 0
                      ELSE d.checks + t.check_failed::integer END,
        check_since = CASE WHEN coalesce(t.check_first, d.check_first) OR t.target = 'publishing'
                           THEN coalesce(t.check_since, d.check_since) END,
        check_first = coalesce(t.check_first, d.check_first),
        reconciled = CASE WHEN t.target = 'published' THEN t.reconciled ELSE d.reconciled END,
        published_at = coalesce(t.published_at, d.published_at),
        updated_at = :now
    FROM t, locked
    WHERE d.id = t.id AND d.id = locked.id
      AND (t.target, d.state) IN ({TRANSITIONS})
      AND (t.token IS NULL OR d.claim_token = t.token)
      AND (NOT t.unclaimed OR d.claim_token IS NULL)
      AND (NOT t.unheld OR d.state <> 'scheduled' OR d.next_attempt_at IS NOT NULL
           OR d.attempts > 0)
    RETURNING t.ord, t.event, t.attempt_number, t.attempt_started, t.attempt_finished,
              t.attempt_outcome, t.attempt_error, t.attempt_page_usage, d.id, d.post_id,
              d.channel_id, d.platform, d.state, d.external_id, d.last_error
), recorded_attempts AS (
    INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome, error,
                          page_usage)
    SELECT id, attempt_number, attempt_started, attempt_finished, attempt_outcome, attempt_error,
           attempt_page_usage
    FROM changed WHERE attempt_number IS NOT NULL
    ORDER BY ord
), recorded_events AS (
    INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                                created_at)
    SELECT 'evt_' || lpad(to_hex((extract(epoch FROM :now::timestamptz) * 1000)::bigint), 12, '0')
           || substr(md5(gen_random_uuid()::text), 1, 20), w.id, w.workspace_id,
           c.event,
           jsonb_build_object('event', c.event, 'delivery_id', c.id, 'post_id', c.post_id,
                              'channel_id', c.channel_id, 'platform', c.platform,
                              'state', c.state, 'external_id', c.external_id,
                              'error', c.last_error, 'occurred_at', :now_iso::text),
           :now, :now
    FROM changed c JOIN posts p ON p.id = c.post_id
         JOIN webhooks w ON w.workspace_id = p.workspace_id
    WHERE c.event IS NOT NULL AND w.deleted_at IS NULL AND w.events ? c.event
)
SELECT ord FROM changed;

-- name: extend_leases
WITH held AS MATERIALIZED (
    SELECT id FROM deliveries
    WHERE claim_token = ANY(:tokens::text[]) AND state IN ({IN_FLIGHT})
    ORDER BY id
    FOR UPDATE
)
UPDATE deliveries d SET lease_until = :lease_until
FROM held WHERE d.id = held.id AND d.state IN ({IN_FLIGHT});

-- name: adopt_claims
-- Claims handed over to the engine that took them off a broker: those still claimed under the
-- token the message carried. Rows are locked in id order (as extend_leases does), and only
-- those that pass the test: a row another worker adopted first fails the token test once its
-- lock is released (the test is made again on the row as locked), and is neither taken nor
-- kept locked. The rows are found by id alone: the state and token tests are written so that
-- no index serves them ("IS TRUE", coalesce). Given an index, the planner took it, estimated
-- from statistics in which hardly any row is claimed, and read every claimed row for each
-- adoption (6,200 buffers and 30 ms for 14 rows with 3,000 claimed, where this reads 400 in
-- 1 ms).
WITH wanted AS (
    SELECT * FROM unnest(:ids::text[], :tokens::text[]) AS w(id, token)
), held AS MATERIALIZED (
    SELECT d.id FROM deliveries d
    WHERE d.id = ANY(:ids::text[]) AND (d.state = 'claimed') IS TRUE
      AND EXISTS (SELECT FROM wanted w WHERE w.id = d.id AND w.token = coalesce(d.claim_token, ''))
    ORDER BY d.id
    FOR UPDATE OF d
)
-- The rows are locked by this statement from the CTE on: state and token hold still.
UPDATE deliveries d
SET claim_token = :token, engine_id = :engine_id, lease_until = :lease_until
FROM held WHERE d.id = held.id
RETURNING d.id;

-- name: recover_claims
-- Claims whose holder is gone: its lease ran out (it died or hung), or its engine is one of
-- :engines that has not beaten since :dead_before (NULL: whenever; an engine that leaves),
-- removed from the registry here. Unsent deliveries go back to the queue; one that may have
-- been sent (publishing) or still owes a check is looked up before any resend. Rows another
-- transaction holds are skipped: an engine row, because another engine is recovering it; a
-- delivery, because its holder is alive and writing (the lease stays the backstop).
-- ``abandoned``: the send of a delivery still publishing may have been counted by the
-- platform; it is recorded (its number, from when it left: check_since, as the rows were
-- locked) so that the limiter's replay still counts it once a look-up has settled the
-- delivery (herald.stores.contract.abandoned_send).
WITH gone AS MATERIALIZED (
    SELECT id FROM engines
    WHERE id = ANY(:engines::text[])
      AND (:dead_before::timestamptz IS NULL OR beat_at < :dead_before)
    ORDER BY id
    FOR UPDATE SKIP LOCKED
), removed AS (
    DELETE FROM engines e USING gone WHERE e.id = gone.id
    RETURNING e.id
), stale AS MATERIALIZED (
    SELECT id, state, attempts, check_since, updated_at FROM deliveries
    WHERE state IN ({IN_FLIGHT})
      AND (:every::boolean OR lease_until < :now OR engine_id IN (SELECT id FROM removed))
    FOR UPDATE SKIP LOCKED
), abandoned AS (
    INSERT INTO attempts (delivery_id, number, started_at, finished_at, outcome, error)
    SELECT id, attempts, coalesce(check_since, updated_at), :now, 'abandoned', :error::text
    FROM stale WHERE state = 'publishing'
), released AS (
    UPDATE deliveries d SET
        state = CASE WHEN d.state = 'publishing' OR d.check_first THEN 'unconfirmed'
                     WHEN d.attempts > 0 THEN 'retry_wait'
                     ELSE 'scheduled' END,
        check_first = d.check_first OR d.state = 'publishing',
        next_attempt_at = :now,
        claim_token = NULL,
        lease_until = NULL,
        updated_at = :now
    FROM stale WHERE d.id = stale.id
    RETURNING 1
)
SELECT ARRAY(SELECT id FROM removed ORDER BY id) AS engines,
       (SELECT count(*) FROM released) AS deliveries;

-- name: beat
-- The engine's heartbeat, registering it when it is not (first beat, or taken for dead by
-- another engine meanwhile); ``known`` says which.
WITH beaten AS (
    UPDATE engines SET beat_at = :now WHERE id = :id::text
    RETURNING id
), registered AS (
    INSERT INTO engines (id, host, pid, started_at, beat_at)
    SELECT :id::text, :host::text, :pid::integer, :started_at::timestamptz, :now::timestamptz
    WHERE NOT EXISTS (SELECT 1 FROM beaten)
)
SELECT EXISTS (SELECT 1 FROM beaten) AS known;

-- name: lock_channel
SELECT 1 FROM channels WHERE id = :id FOR UPDATE;

-- name: delete_schedule
DELETE FROM posting_slots WHERE channel_id = :id;

-- name: insert_slots
INSERT INTO posting_slots (channel_id, weekday, minute)
SELECT :id, * FROM unnest(:weekdays::integer[], :minutes::integer[]);

-- name: list_posts
-- Posts of a workspace after the cursor; with :filtered, only those with at least one
-- delivery matching every filter given (a NULL filter matches anything).
SELECT {p.post_columns} FROM posts p
WHERE p.workspace_id = :workspace_id
  AND (:after_at::timestamptz IS NULL OR (p.created_at, p.id) > (:after_at, :after_id::text))
  AND (NOT :filtered::boolean OR EXISTS (
      SELECT 1 FROM deliveries d
      WHERE d.post_id = p.id
        AND (:state::text IS NULL OR d.state = :state)
        AND (:channel_id::text IS NULL OR d.channel_id = :channel_id)
        AND (:due_from::timestamptz IS NULL OR d.due_at >= :due_from)
        AND (:due_to::timestamptz IS NULL OR d.due_at < :due_to)))
  -- Without :with_held, no post an import holds: a look-up in deliveries_held, which only
  -- imports in progress fill. A scalar subquery with LIMIT, probed once per post: as NOT
  -- EXISTS the generic plan hashed every held delivery at each listing, so another tenant's
  -- listings slowed as an import grew (p50 3x during a 4,000-row import).
  AND (:with_held::boolean OR (
      SELECT h.post_id FROM deliveries h
      WHERE h.post_id = p.id
        AND h.state = 'scheduled' AND h.next_attempt_at IS NULL AND h.attempts = 0
      LIMIT 1) IS NULL)
ORDER BY p.created_at, p.id
LIMIT :limit;

-- name: recover_webhook_events
UPDATE webhook_events e SET state = 'pending', lease_until = NULL, next_attempt_at = :now
FROM (
    SELECT id FROM webhook_events WHERE state = 'sending' AND lease_until < :now
    FOR UPDATE SKIP LOCKED
) AS stale
WHERE e.id = stale.id;

-- name: lock_outbox_claims
-- Claims of every sender take turns (until the transaction ends): each counts the events in
-- flight to stay under the caps, and two at once would both see the same room.
SELECT pg_advisory_xact_lock(hashtext(:key));

-- name: claim_webhook_events
-- Due events shared fairly (herald.types.Outbox.claim_webhook_events): the webhooks with
-- pending events (a skip scan of webhook_events_pending, as in next_webhook_event_at), those
-- neither disabled nor held, each with room under its cap (one while it is failing) less its
-- events in flight; each one's first due events up to that room; of failing webhooks' events
-- (probes), the most overdue up to :probes less the probes in flight; then the workspaces in
-- turn, each under its own cap less its events in flight. Run under lock_outbox_claims.
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
                ELSE :per_webhook::integer END
           - (SELECT count(*) FROM busy b WHERE b.webhook_id = h.id) AS room
    FROM waiting w JOIN webhooks h ON h.id = w.webhook_id
    WHERE h.deleted_at IS NOT NULL
       OR (h.disabled_at IS NULL AND (h.held_until IS NULL OR h.held_until <= :now))
), due AS (
    SELECT e.id, e.workspace_id, e.next_attempt_at, h.failing,
           row_number() OVER (PARTITION BY h.failing
                              ORDER BY e.next_attempt_at, e.id) AS probe
    FROM open_hooks h CROSS JOIN LATERAL (
        SELECT x.id, x.workspace_id, x.next_attempt_at FROM webhook_events x
        WHERE x.webhook_id = h.id AND x.state = 'pending' AND x.next_attempt_at <= :now
        ORDER BY x.next_attempt_at, x.id LIMIT greatest(h.room, 0)
    ) e
), turns AS (
    SELECT d.id, d.next_attempt_at,
           row_number() OVER (PARTITION BY d.workspace_id
                              ORDER BY d.next_attempt_at, d.id) AS turn,
           :per_workspace::integer
           - (SELECT count(*) FROM busy b WHERE b.workspace_id = d.workspace_id) AS room
    FROM due d
    WHERE NOT d.failing
       OR d.probe <= :probes::integer - (SELECT count(*) FROM busy b WHERE b.failing)
), picked AS (
    SELECT id FROM turns WHERE turn <= room ORDER BY turn, next_attempt_at, id LIMIT :limit
)
UPDATE webhook_events e
SET state = 'sending', lease_until = :lease_until, attempts = e.attempts + 1,
    last_attempt_at = :now
FROM picked WHERE e.id = picked.id AND e.state = 'pending'
RETURNING e.id, e.webhook_id, e.workspace_id, e.event, e.payload, e.attempts, e.created_at,
          e.next_attempt_at;

-- name: settle_webhook_event
-- The event, then its webhook's failure record: a sent event clears it and the hold, a
-- failed one adds to it. No row: the event was not sending any more.
WITH settled AS (
    UPDATE webhook_events SET
        state = CASE WHEN :sent::boolean THEN 'sent'
                     WHEN :next_attempt_at::timestamptz IS NULL THEN 'failed'
                     ELSE 'pending' END,
        next_attempt_at = :next_attempt_at, lease_until = NULL, last_error = :error,
        finished_at = CASE WHEN :sent::boolean OR :next_attempt_at::timestamptz IS NULL
                           THEN :at::timestamptz END
    WHERE id = :id AND state = 'sending'
    RETURNING webhook_id
)
UPDATE webhooks w SET
    failure_streak = CASE WHEN :sent::boolean THEN 0 ELSE w.failure_streak + 1 END,
    failing_since = CASE WHEN :sent::boolean THEN NULL
                         ELSE coalesce(w.failing_since, :at::timestamptz) END,
    held_until = CASE WHEN :sent::boolean THEN NULL ELSE w.held_until END
FROM settled WHERE w.id = settled.webhook_id
RETURNING w.failure_streak, w.failing_since;

-- name: disable_webhook
-- Disable a webhook still failing, and tell the workspace's other webhooks, in one statement.
WITH disabled AS (
    UPDATE webhooks SET disabled_at = :at, disabled_reason = :reason
    WHERE id = :id AND disabled_at IS NULL AND deleted_at IS NULL AND failure_streak > 0
    RETURNING id, workspace_id, url
), recorded AS (
    INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                                created_at)
    SELECT 'evt_' || lpad(to_hex((extract(epoch FROM :at::timestamptz) * 1000)::bigint), 12, '0')
           || substr(md5(gen_random_uuid()::text), 1, 20), w.id, w.workspace_id,
           'webhook.disabled',
           jsonb_build_object('event', 'webhook.disabled', 'webhook_id', d.id, 'url', d.url,
                              'reason', :reason::text, 'occurred_at', :now_iso::text),
           :at, :at
    FROM disabled d JOIN webhooks w ON w.workspace_id = d.workspace_id
    WHERE w.id <> d.id AND w.deleted_at IS NULL AND w.events ? 'webhook.disabled'
)
SELECT count(*) AS disabled FROM disabled;

-- name: lock_platform_events
-- Engines recording the same platform event take turns (until the transaction ends): each
-- statement reads the day's events as they were when it began, so two at once would both find
-- none and both record it. Taken in a statement of its own, before platform_event, so that
-- its snapshot (READ COMMITTED) shows what the engine before it committed.
SELECT pg_advisory_xact_lock(hashtext(:key));

-- name: platform_event
-- Record an event about a platform (its API version) for every webhook subscribed to it whose
-- workspace has a channel on that platform, unless it got the same one that day; run after
-- lock_platform_events, in its transaction.
INSERT INTO webhook_events (id, webhook_id, workspace_id, event, payload, next_attempt_at,
                            created_at)
SELECT 'evt_' || lpad(to_hex((extract(epoch FROM :now::timestamptz) * 1000)::bigint), 12, '0')
       || substr(md5(gen_random_uuid()::text), 1, 20), w.id, w.workspace_id,
       :event::text, :payload::jsonb, :now, :now
FROM webhooks w
WHERE w.deleted_at IS NULL AND w.events ? :event::text
  AND EXISTS (SELECT 1 FROM channels c
              WHERE c.workspace_id = w.workspace_id AND c.platform = :platform::text
                AND c.deleted_at IS NULL)
  -- Event ids begin with their creation time: today's events of a webhook, on its index.
  AND NOT EXISTS (SELECT 1 FROM webhook_events e
                  WHERE e.webhook_id = w.id AND e.id >= :day_id::text AND e.created_at >= :day
                    AND e.event = :event::text
                    AND e.payload ->> 'platform' = :platform::text
                    AND e.payload ->> 'version' = :version::text);

-- name: lock_erased_imports
-- Before an erasure, run in this order: every row of the workspace that another transaction
-- could add children to, locked: its imports (their posts; first, as an import's write locks
-- its job's row before it adds posts under the workspace), the workspace (channels, posts,
-- webhooks, keys, imports), its channels (slots, deliveries), its deliveries (attempts, by
-- the engine's guarded writes), its webhooks' events and its webhooks (events). An insert
-- that references one takes a share lock on it, so it waits, then fails on its own side; it
-- cannot slip a child in between two of the erasure's statements. Deliveries before
-- webhooks: a guarded write locks a delivery, then references a webhook; events before
-- webhooks: the sender settles an event, then updates its webhook.
SELECT id FROM imports WHERE workspace_id = :id ORDER BY id FOR UPDATE;

-- name: lock_erased_workspace
SELECT id FROM workspaces WHERE id = :id FOR UPDATE;

-- name: lock_workspace_channels
SELECT id FROM channels WHERE workspace_id = :id ORDER BY id FOR UPDATE;

-- name: lock_workspace_deliveries
SELECT id FROM deliveries WHERE id IN (
    SELECT d.id FROM deliveries d JOIN posts p ON p.id = d.post_id WHERE p.workspace_id = :id
    UNION
    SELECT d.id FROM deliveries d JOIN channels c ON c.id = d.channel_id
    WHERE c.workspace_id = :id)
ORDER BY id FOR UPDATE;

-- name: lock_workspace_events
-- Its webhooks' events before its webhooks: the sender settles an event, then updates its
-- webhook's failure record, in that order.
SELECT e.id FROM webhook_events e
WHERE e.webhook_id IN (SELECT id FROM webhooks WHERE workspace_id = :id)
ORDER BY e.id FOR UPDATE OF e;

-- name: lock_workspace_webhooks
SELECT id FROM webhooks WHERE workspace_id = :id ORDER BY id FOR UPDATE;

-- name: insert_held_deliveries
-- As insert_deliveries, with no next_attempt_at: nothing claims them until released.
INSERT INTO deliveries (id, post_id, channel_id, platform, due_at, state, next_attempt_at,
                        updated_at)
SELECT t.id, t.post_id, c.id, c.platform, t.due_at, 'scheduled', NULL, :now
FROM unnest(:ids::text[], :post_ids::text[], :channel_ids::text[], :due_at::timestamptz[])
     AS t (id, post_id, channel_id, due_at)
JOIN channels c ON c.id = t.channel_id;

-- name: insert_import_posts
INSERT INTO import_posts (import_id, line, post_id)
SELECT :import_id, t.line, t.post_id
FROM unnest(:lines::integer[], :post_ids::text[]) AS t (line, post_id);

-- name: release_held_deliveries
-- The earliest due time released, for the dispatchers' wake-up (NULL: none).
WITH released AS (
    UPDATE deliveries SET next_attempt_at = due_at, updated_at = :now
    WHERE post_id = ANY(:post_ids::text[])
      AND state = 'scheduled' AND next_attempt_at IS NULL AND attempts = 0
    RETURNING due_at
)
SELECT min(due_at) AS first_due FROM released;

-- name: delete_import_attempts
-- Discarding an import that was not committed removes every delivery of its posts: none was
-- ever claimable nor changed by a user (apply's unheld), so none has an attempt; should one
-- have, it goes first, as the foreign key requires.
DELETE FROM attempts
WHERE delivery_id IN (SELECT id FROM deliveries WHERE post_id = ANY(:post_ids::text[]));

-- name: delete_import_deliveries
DELETE FROM deliveries WHERE post_id = ANY(:post_ids::text[]);

-- name: delete_import_lines
DELETE FROM import_posts WHERE import_id = :import_id AND line = ANY(:lines::integer[]);

-- name: delete_import_posts
DELETE FROM posts WHERE id = ANY(:post_ids::text[]);

-- name: extend_import_leases
UPDATE imports SET lease_until = :lease_until
WHERE runner = :runner AND id = ANY(:ids::text[])
  AND state IN ('queued', 'validating', 'writing');

-- CSV import jobs: what PostgreSQL writes its own way (arrays, one statement per step).
-- A held delivery (stored by an import, not made due yet) is 'scheduled' with no
-- next_attempt_at and no attempt (herald.domain.Delivery.held).

-- name: lock_workspace
-- Serialises the jobs added for one workspace, so two at once cannot both pass the check of
-- running imports; FOR NO KEY UPDATE leaves the rows that refer to the workspace alone.
SELECT id FROM workspaces WHERE id = :workspace_id FOR NO KEY UPDATE;


-- name: record_read_position
-- After an API key's write committed: the primary's WAL insert position now covers it (its
-- commit record included, flushed or not). Never moves back (two nodes' writes race).
INSERT INTO read_positions (key_id, wal_bytes, written_at)
VALUES (:key_id, (pg_current_wal_insert_lsn() - '0/0'::pg_lsn)::bigint, now())
ON CONFLICT (key_id) DO UPDATE
SET wal_bytes = greatest(read_positions.wal_bytes, excluded.wal_bytes),
    written_at = excluded.written_at;

-- name: read_position
SELECT wal_bytes FROM read_positions WHERE key_id = :key_id;

-- name: replica_status
-- On the replica: how far it has replayed, and how far behind it is in seconds (0 when it
-- has replayed all it received: an idle primary sends nothing, and then nothing is missing).
-- A server that is not in recovery (a replica promoted) is as fresh as any primary: NULLs.
SELECT pg_is_in_recovery() AS standby,
       (pg_last_wal_replay_lsn() - '0/0'::pg_lsn)::bigint AS replayed,
       CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() THEN 0.0
            ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8
       END AS lag_s;

-- name: system_identifier
-- The cluster's identity, the same on a primary and on every standby made from it (and kept
-- by a standby once promoted): what tells a replica of this database from another server.
SELECT system_identifier FROM pg_control_system();

-- name: erase_move_holds
-- A workspace's held deliveries and events, left by a move interrupted in this database.
DELETE FROM move_holds WHERE workspace_id = :id;

-- name: erase_read_positions
-- Before its keys go: the read positions of an erased workspace's API keys.
DELETE FROM read_positions WHERE key_id IN (SELECT id FROM api_keys WHERE workspace_id = :id);
