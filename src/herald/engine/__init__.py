"""The engine: turns claimed deliveries into platform requests, once each, within every limit.

- :mod:`.dispatcher`: claims due deliveries in batches, with a lease, and queues them;
- :mod:`.lane`: one platform's concurrency slots and timers;
- :mod:`.worker`: carries each delivery through admission, request and outcome;
- :mod:`.policy`: what each platform answer means for the delivery (pure decisions);
- :mod:`.writer`: group commit of every state change;
- :mod:`.metrics`: the engine's Prometheus metrics;
- :mod:`.engine`: starts and stops the pieces above as one.

The engine talks to the plug-in points of :mod:`herald.types` only (the store's engine face,
the queue, the limiter, the connectors, the credential resolver, the clock), never to a driver.
"""

from herald.engine.engine import Engine

__all__ = ["Engine"]
