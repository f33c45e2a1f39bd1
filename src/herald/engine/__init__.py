"""The engine: turns claimed deliveries into platform requests, once each, within every limit.

- :mod:`.dispatcher`: claims due deliveries in batches, with a lease, and queues them;
- :mod:`.intake`: feeds the workers from the queue (a worker process adopts the claims it
  takes off a broker);
- :mod:`.lane`: one platform's concurrency slots and timers;
- :mod:`.worker`: the pool that carries each delivery through admission, request and outcome,
  orchestrating :mod:`.admission` (send now, hold, hand back or settle?), :mod:`.grants` (the
  limiter's grants, kept per delivery), :mod:`.outcomes` (a decision made so) and
  :mod:`.parking` (channels waiting for the user);
- :mod:`.policy`: what each platform answer means for the delivery (pure decisions);
- :mod:`.writer`: group commit of every state change;
- :mod:`.metrics`: the engine's Prometheus metrics;
- :mod:`.engine`: starts and stops the pieces above as one.

The engine talks to the plug-in points of :mod:`herald.types` only (the store's engine face,
the queue, the limiter, the connectors, the credential resolver, the clock), never to a driver.
"""

from herald.engine.engine import Engine, Role

__all__ = ["Engine", "Role"]
