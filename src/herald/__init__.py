"""Herald: schedules and publishes social-media posts, never lost, never twice."""

__version__ = "0.1.0"
