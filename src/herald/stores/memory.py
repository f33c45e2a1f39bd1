"""The in-memory store: the reference implementation of the Store contract, for unit tests.

It keeps nothing across restarts, so it is never the engine's store in production.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Unpack

from herald.domain import (
    Attempt,
    Channel,
    ChannelStatus,
    ClaimBatch,
    Delivery,
    Job,
    NewPost,
    Post,
    SentRecord,
    Transition,
    utcnow,
)
from herald.errors import InvalidInput, NotFound
from herald.states import CLAIMABLE, IN_FLIGHT, UNRESOLVED, DeliveryState, allowed_sources
from herald.stores.contract import (
    ClaimRequest,
    StatusChange,
    abandoned_send,
    applied,
    new_claim_token,
)
from herald.stores.memory_catalog import Claim, MemoryCatalog, lookup
from herald.stores.memory_imports import MemoryImports
from herald.types import Adopted, EngineInfo, Recovered

__all__ = ["MemoryStore"]

S = DeliveryState


class MemoryStore(MemoryCatalog, MemoryImports):
    """Implements :class:`herald.types.Store` in process memory."""

    def __init__(self) -> None:
        self._channels: dict[str, Channel] = {}
        self._posts: dict[str, Post] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._attempts: dict[str, list[Attempt]] = {}
        self._claims: dict[str, Claim] = {}  # delivery id -> (token, lease, engine)
        self._engines: dict[str, EngineInfo] = {}
        self._init_catalog()
        self._init_imports()

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def add_channels(
        self, channels: Sequence[Channel], *, secrets: Mapping[str, bytes] | None = None
    ) -> None:
        ids = [c.id for c in channels]
        if len(set(ids)) != len(ids) or any(i in self._channels for i in ids):
            raise InvalidInput("channel id already exists", field="id")
        # An account is unique among a workspace's live channels: another workspace may hold
        # the same one, and a deleted channel's account may be connected again.
        taken = {
            (c.workspace_id, c.platform, c.external_id)
            for c in self._channels.values()
            if c.deleted_at is None
        }
        for channel in channels:
            account = (channel.workspace_id, channel.platform, channel.external_id)
            if account in taken:
                raise InvalidInput(
                    "this account is already a channel of the workspace", field="external_id"
                )
            taken.add(account)
        self._mark_claim()
        for channel in channels:
            self._channels[channel.id] = channel
            if secrets and channel.id in secrets:
                self._secrets[channel.id] = secrets[channel.id]

    async def get_channel(self, channel_id: str) -> Channel:
        return lookup(self._channels, channel_id, "channel")

    async def set_channel_status(
        self, channel_id: str, status: ChannelStatus, **change: Unpack[StatusChange]
    ) -> None:
        channel = await self.get_channel(channel_id)
        ref = change.get("credentials_ref") or channel.credentials_ref
        self._mark_claim()
        self._channels[channel_id] = changed = replace(channel, status=status, credentials_ref=ref)
        if (event := change.get("event")) is not None:
            self._emit_channel(changed, event, utcnow())

    async def add_posts(self, posts: Sequence[NewPost]) -> list[Delivery]:
        created: list[Delivery] = []
        for new in posts:
            if new.post.id in self._posts:
                raise InvalidInput("post id already exists", field="id")
            for target in new.deliveries:
                channel = await self.get_channel(target.channel_id)
                created.append(
                    Delivery(
                        id=target.id,
                        post_id=new.post.id,
                        channel_id=target.channel_id,
                        platform=channel.platform,
                        due_at=target.due_at,
                        next_attempt_at=target.due_at,
                        updated_at=utcnow(),
                    )
                )
        self._mark_claim()
        for new in posts:
            self._posts[new.post.id] = new.post
        for delivery in created:
            self._deliveries[delivery.id] = delivery
        return created

    async def erase_workspace(self, workspace_id: str) -> dict[str, int]:
        if workspace_id not in self._workspaces:
            raise NotFound("workspace", workspace_id)
        channels = {i for i, c in self._channels.items() if c.workspace_id == workspace_id}
        posts = {i for i, p in self._posts.items() if p.workspace_id == workspace_id}
        deliveries = {
            i for i, d in self._deliveries.items() if d.post_id in posts or d.channel_id in channels
        }
        webhooks = {i for i, h in self._hooks.items() if h.webhook.workspace_id == workspace_id}
        events = {
            i
            for i, o in self._outbox.items()
            if o.event.workspace_id == workspace_id or o.event.webhook_id in webhooks
        }
        keys = {i for i, (k, _) in self._keys.items() if k.workspace_id == workspace_id}
        imports = {i for i, j in self._imports.items() if j.workspace_id == workspace_id}
        counts = {
            "attempts": sum(len(self._attempts.get(i, ())) for i in deliveries),
            "webhook_events": len(events),
            "import_posts": sum(len(self._import_posts.get(i, {})) for i in imports),
            "deliveries": len(deliveries),
            "posting_slots": sum(len(self._slots.get(i, ())) for i in channels),
            "posts": len(posts),
            "imports": len(imports),
            "webhooks": len(webhooks),
            "channels": len(channels),
            "api_keys": len(keys),
            "idempotency_keys": sum(1 for ws, _ in self._idempotency if ws == workspace_id),
            "workspace": 1,
        }
        self._mark_claim()  # before its key goes with the rest
        for i in deliveries:
            self._attempts.pop(i, None)
            self._claims.pop(i, None)
            del self._deliveries[i]
        for i in channels:
            self._slots.pop(i, None)
            self._secrets.pop(i, None)
            del self._channels[i]
        for i in events:
            del self._outbox[i]
        for i in posts:
            del self._posts[i]
        for i in webhooks:
            del self._hooks[i]
        for i in keys:
            del self._keys[i]
        for held in [k for k in self._idempotency if k[0] == workspace_id]:
            del self._idempotency[held]
        for i in imports:
            self._import_posts.pop(i, None)
            del self._imports[i]
        del self._workspaces[workspace_id]
        return counts

    async def get_post(self, post_id: str) -> Post:
        return lookup(self._posts, post_id, "post")

    async def get_delivery(self, delivery_id: str) -> Delivery:
        return lookup(self._deliveries, delivery_id, "delivery")

    async def list_deliveries(
        self, *, state: DeliveryState | None = None, limit: int = 1000, after_id: str = ""
    ) -> list[Delivery]:
        rows = sorted(
            (d for d in self._deliveries.values() if state is None or d.state is state),
            key=lambda d: d.id,
        )
        return [d for d in rows if d.id > after_id][:limit]

    async def list_attempts(self, delivery_id: str) -> list[Attempt]:
        return list(self._attempts.get(delivery_id, ()))

    async def count_by_state(self) -> dict[DeliveryState, int]:
        counts: dict[DeliveryState, int] = {}
        for delivery in self._deliveries.values():
            counts[delivery.state] = counts.get(delivery.state, 0) + 1
        return counts

    def _due(self, now: datetime) -> list[Delivery]:
        return sorted(
            (
                d
                for d in self._deliveries.values()
                if d.state in CLAIMABLE
                and d.next_attempt_at is not None
                and d.next_attempt_at <= now
            ),
            key=lambda d: (d.next_attempt_at or now, d.id),
        )

    async def claim_due(self, **asked: Unpack[ClaimRequest]) -> ClaimBatch:
        now, engine_id = asked["now"], asked.get("engine_id")
        limit, lease_until = asked["limit"], asked["lease_until"]
        token = new_claim_token()
        jobs: list[Job] = []
        expired: list[Delivery] = []
        for delivery in self._due(now):
            if delivery.due_at < asked["expire_before"] and not delivery.check_first:
                gone = replace(delivery, state=S.EXPIRED, next_attempt_at=None, updated_at=now)
                self._deliveries[delivery.id] = gone
                expired.append(gone)
                continue
            channel = self._channels[delivery.channel_id]
            if len(jobs) >= limit or channel.status is not ChannelStatus.ACTIVE:
                continue
            claimed = replace(delivery, state=S.CLAIMED, updated_at=now)
            self._deliveries[delivery.id] = claimed
            self._claims[delivery.id] = (token, lease_until, engine_id)
            post = self._posts[delivery.post_id]
            jobs.append(Job(claimed, channel, post.content_for(channel.platform), token))
        return ClaimBatch(jobs=jobs, expired=expired)

    async def next_due_at(self) -> datetime | None:
        times = [
            d.next_attempt_at
            for d in self._deliveries.values()
            if d.state in CLAIMABLE
            and d.next_attempt_at is not None
            and self._channels[d.channel_id].status is ChannelStatus.ACTIVE
        ]
        return min(times, default=None)

    def _apply_one(self, t: Transition, now: datetime) -> bool:
        delivery = self._deliveries.get(t.delivery_id)
        if delivery is None or delivery.state not in allowed_sources(t.target):
            return False
        claim = self._claims.get(t.delivery_id)
        if t.claim_token is not None and (claim is None or claim[0] != t.claim_token):
            return False
        if t.unclaimed and claim is not None:
            return False
        if t.unheld and delivery.held:
            return False
        self._deliveries[t.delivery_id] = changed = applied(delivery, t, now)
        if t.target in IN_FLIGHT and claim is not None:
            self._claims[t.delivery_id] = (claim[0], t.lease_until or claim[1], claim[2])
        else:
            self._claims.pop(t.delivery_id, None)
        if t.attempt is not None:
            self._attempts.setdefault(t.delivery_id, []).append(t.attempt)
        if t.event is not None:
            self._emit_delivery(changed, t.event, now)
        return True

    async def apply(self, transitions: Sequence[Transition]) -> list[bool]:
        self._held_claim()  # a claim lost refuses the batch before it changes anything
        now = utcnow()
        done = [self._apply_one(t, now) for t in transitions]
        if any(done):
            self._mark_claim()
        return done

    async def sent_since(self, since: datetime) -> list[SentRecord]:
        def record(
            d: Delivery, number: int, at: datetime, outcome: str | None, pages: Mapping[str, int]
        ) -> SentRecord:
            channel = self._channels[d.channel_id]
            content = self._posts[d.post_id].content_for(d.platform)
            account = channel.external_id
            return SentRecord(d.id, number, d.platform, account, at, outcome, content, pages)

        found = [
            record(self._deliveries[a.delivery_id], a.number, a.started_at, a.outcome, a.page_usage)
            for attempts in self._attempts.values()
            for a in attempts
            if a.started_at >= since
        ]
        found += [
            record(d, d.attempts, d.check_since, None, {})
            for d in self._deliveries.values()
            if d.state in UNRESOLVED and d.check_since is not None and d.check_since >= since
        ]
        return sorted(found, key=lambda r: r.started_at)

    async def extend_leases(self, claim_tokens: Sequence[str], lease_until: datetime) -> int:
        wanted = set(claim_tokens)
        held = [i for i, (token, _, _) in self._claims.items() if token in wanted]
        for delivery_id in held:
            token, _, engine_id = self._claims[delivery_id]
            self._claims[delivery_id] = (token, lease_until, engine_id)
        return len(held)

    async def adopt(
        self, claims: Sequence[tuple[str, str]], *, engine_id: str, lease_until: datetime
    ) -> Adopted:
        token = new_claim_token()
        taken: set[str] = set()
        for delivery_id, old in claims:
            claim = self._claims.get(delivery_id)
            delivery = self._deliveries.get(delivery_id)
            if claim is None or claim[0] != old or delivery is None:
                continue
            if delivery.state is not DeliveryState.CLAIMED:
                continue
            self._claims[delivery_id] = (token, lease_until, engine_id)
            taken.add(delivery_id)
        return Adopted(token, frozenset(taken))

    async def recover_expired_leases(self, now: datetime, *, every: bool = False) -> int:
        return self._release(now, lambda _engine, lease: every or lease < now)

    async def beat(self, engine: EngineInfo, now: datetime) -> bool:
        known = engine.id in self._engines
        self._engines[engine.id] = replace(engine, beat_at=now)
        return known

    async def recover_dead_engines(self, now: datetime, *, dead_before: datetime) -> Recovered:
        dead = [e.id for e in self._engines.values() if e.beat_at and e.beat_at < dead_before]
        return self._remove_engines(dead, now)

    async def deregister_engine(self, engine_id: str, now: datetime) -> Recovered:
        return self._remove_engines([engine_id] if engine_id in self._engines else [], now)

    async def list_engines(self) -> list[EngineInfo]:
        return sorted(self._engines.values(), key=lambda e: (e.started_at, e.id))

    def _remove_engines(self, engine_ids: list[str], now: datetime) -> Recovered:
        gone = set(engine_ids)
        for engine_id in gone:
            del self._engines[engine_id]
        # Leases that ran out go too, as in the SQL stores' one statement.
        released = self._release(now, lambda engine, lease: engine in gone or lease < now)
        return Recovered(tuple(sorted(gone)), released)

    def _release(self, now: datetime, stale: Callable[[str | None, datetime], bool]) -> int:
        """Release the claims ``stale(engine, lease)`` picks: unsent deliveries become
        claimable again; ones that may have been sent owe a look-up before any resend."""
        picked = [i for i, (_, lease, engine) in self._claims.items() if stale(engine, lease)]
        for delivery_id in picked:
            del self._claims[delivery_id]
            delivery = self._deliveries[delivery_id]
            if delivery.state is S.PUBLISHING:
                target, check = S.UNCONFIRMED, True
                self._attempts.setdefault(delivery_id, []).append(abandoned_send(delivery, now))
            elif delivery.check_first:
                target, check = S.UNCONFIRMED, True
            else:
                target, check = (S.RETRY_WAIT if delivery.attempts else S.SCHEDULED), False
            self._deliveries[delivery_id] = replace(
                delivery,
                state=target,
                check_first=check,
                next_attempt_at=now,
                updated_at=now,
            )
        return len(picked)
