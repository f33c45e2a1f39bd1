"""Concurrency caps: how many requests may be in flight at once on a channel, an app or a
whole platform, across every engine process sharing them (see :mod:`.claims`)."""
