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
gauges, fault story), one module per platform (:mod:`.facebook`, :mod:`.instagram`,
:mod:`.linkedin`, :mod:`.youtube`), :mod:`.admin` and :mod:`.client` for a simulator in its
own process (``python -m herald.simulator``), :mod:`.lifecycle` (``async with`` for all of
them).
"""

from herald.simulator.accounts import SimAccount, UnknownAccount
from herald.simulator.audit import Audit, PostRecord, Refusal, RequestRecord, Violation
from herald.simulator.client import RemoteAudit, SimulatorClient, SimulatorClientError
from herald.simulator.clock import SimClock
from herald.simulator.config import (
    NO_LISTING_LAG,
    CallFaults,
    CallKind,
    DuplicateCheck,
    FacebookSim,
    FaultConfig,
    InstagramSim,
    LatencyModel,
    LinkedInSim,
    ListingLag,
    SimulatorConfig,
    YouTubeSim,
)
from herald.simulator.faults import Fault
from herald.simulator.media import media_bytes, media_sha256
from herald.simulator.server import PORT_NAMES, Simulator, SimulatorUrls, serve

__all__ = [
    "NO_LISTING_LAG",
    "PORT_NAMES",
    "Audit",
    "CallFaults",
    "CallKind",
    "DuplicateCheck",
    "FacebookSim",
    "Fault",
    "FaultConfig",
    "InstagramSim",
    "LatencyModel",
    "LinkedInSim",
    "ListingLag",
    "PostRecord",
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
    "media_bytes",
    "media_sha256",
    "serve",
]
