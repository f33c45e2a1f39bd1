"""Egress: the addresses Herald may connect to when a tenant chooses where it goes.

:mod:`.policy` says which addresses those are (no HTTP client in it: the API's registration
checks use it); :mod:`.http` makes an aiohttp session keep to it. See docs/security.md.
"""
