"""Herald's platform simulator: fake Facebook, Instagram, LinkedIn and YouTube on local ports.

It speaks the wire contract of docs/platforms.md, enforces the same limits as Herald with its
own naive counters, injects latency and faults, and keeps an audit of what it received: the
judge of tests and benchmarks.

    from herald.simulator import Simulator, SimulatorConfig

    async with Simulator(SimulatorConfig.from_settings(settings)) as sim:
        account = sim.add_account(Platform.FACEBOOK)
        ...
        sim.audit.summary()

Modules: :mod:`.server` (lifecycle, in-process API, :func:`serve`), :mod:`.config`,
:mod:`.accounts`, :mod:`.audit`, :mod:`.quotas`, :mod:`.faults`, :mod:`.pipeline` (latency,
gauges, fault story), :mod:`.audience` and :mod:`.engagement` (the engagement ground truth
and what the insights endpoints show of it), one module per platform (:mod:`.facebook`,
:mod:`.instagram`, :mod:`.linkedin`, :mod:`.youtube`), :mod:`.admin` and :mod:`.client` for a
simulator in its own process (``python -m herald.simulator``), :mod:`.lifecycle` (``async
with`` for all of them).
"""

from herald.simulator.accounts import SimAccount, UnknownAccount
from herald.simulator.audience import Audience
from herald.simulator.audit import Audit, PostRecord, Refusal, RequestRecord, Violation
from herald.simulator.client import RemoteAudit, SimulatorClient, SimulatorClientError
from herald.simulator.clock import SimClock
from herald.simulator.config import (
    NO_LISTING_LAG,
    AudienceSpec,
    CallFaults,
    CallKind,
    ContentKind,
    DuplicateCheck,
    EngagementSim,
    FacebookSim,
    FaultConfig,
    InstagramSim,
    LatencyModel,
    LinkedInSim,
    ListingLag,
    Peak,
    SimulatorConfig,
    YouTubeSim,
    ZoneShare,
)
from herald.simulator.engagement import Observed, PostTruth
from herald.simulator.faults import Fault
from herald.simulator.media import media_bytes, media_sha256
from herald.simulator.server import PORT_NAMES, Simulator, SimulatorUrls, serve

__all__ = [
    "NO_LISTING_LAG",
    "PORT_NAMES",
    "Audience",
    "AudienceSpec",
    "Audit",
    "CallFaults",
    "CallKind",
    "ContentKind",
    "DuplicateCheck",
    "EngagementSim",
    "FacebookSim",
    "Fault",
    "FaultConfig",
    "InstagramSim",
    "LatencyModel",
    "LinkedInSim",
    "ListingLag",
    "Observed",
    "Peak",
    "PostRecord",
    "PostTruth",
    "Refusal",
    "RemoteAudit",
    "RequestRecord",
    "SimAccount",
    "SimClock",
    "Simulator",
    "SimulatorClient",
    "SimulatorClientError",
    "SimulatorConfig",
    "SimulatorUrls",
    "UnknownAccount",
    "Violation",
    "YouTubeSim",
    "ZoneShare",
    "media_bytes",
    "media_sha256",
    "serve",
]
