"""The state every simulated platform shares: clock, ids, accounts, audit, dice and the
engagement ground truth."""

from __future__ import annotations

import asyncio
import contextlib

from herald.domain import Platform
from herald.simulator.accounts import Accounts
from herald.simulator.audit import Audit, PostRecord
from herald.simulator.clock import SimClock
from herald.simulator.config import ContentKind, SimulatorConfig
from herald.simulator.engagement import Engagement
from herald.simulator.faults import Dice
from herald.simulator.ids import IdFactory

__all__ = ["SimContext"]


class SimContext:
    def __init__(self, config: SimulatorConfig, clock: SimClock | None = None) -> None:
        self.config = config
        self.clock = clock or SimClock()
        self.ids = IdFactory(config.seed)
        self.accounts = Accounts(
            self.ids, self.clock, youtube_token_ttl_s=config.youtube.access_token_ttl_s
        )
        self.audit = Audit(config.request_log_limit)
        self.dice = Dice(config)
        self.engagement = Engagement(config, self._name_of)
        self._closing = asyncio.Event()

    def published(self, record: PostRecord, kind: ContentKind) -> None:
        """A post was committed: the audit records it, the ground truth fixes its worth."""
        self.audit.post(record)
        self.engagement.record(record, kind)

    def _name_of(self, platform: Platform, external_id: str) -> str:
        account = self.accounts.get(platform, external_id)
        return "" if account is None else account.name

    async def hang(self, seconds: float) -> None:
        """Hold a request for ``seconds``, or less if the simulator is shutting down."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), timeout=seconds)

    def close(self) -> None:
        self._closing.set()
