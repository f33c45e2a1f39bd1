"""A RabbitMQ node of a test's own, on ports of its own, that the test may stop and restart
(never the machine's shared one): :class:`herald.demo.servers.OwnRabbit`."""

from __future__ import annotations

from herald.demo.servers import OwnRabbit

__all__ = ["OwnRabbit"]
