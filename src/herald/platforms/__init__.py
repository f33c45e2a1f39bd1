"""Platform connectors: one module per platform, each implementing :class:`herald.types.Connector`.

- :mod:`.rules`: each platform's content rules and the text it sends; no HTTP client, so the
  API checks posts with them without importing aiohttp;
- :mod:`.registry`: :func:`~.registry.build_connectors`, one connector per platform;
- :mod:`.http`: the HTTP boundary (one aiohttp session per connector, errors translated);
- :mod:`.answers`: an error answer and what decides its meaning; what the HTTP status alone
  says, the last row of every platform's table;
- :mod:`.graph`: what Facebook and Instagram share (Graph error envelope, usage headers);
- :mod:`.graph_listing`: looking a post up in a Graph edge listing, page by page;
- :mod:`.lookup`: recognising a delivery's post among a channel's posts over the whole
  look-up window, paging through the platform's listing;
- :mod:`.facebook`, :mod:`.instagram`, :mod:`.linkedin`, :mod:`.youtube` (with
  :mod:`.youtube_upload` and :mod:`.google_auth`): the platforms, wire format in
  docs/platforms.md.

This package imports none of its modules: import the one you need.
"""
