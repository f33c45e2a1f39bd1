"""What the API and the command line do, as services over the store.

- :mod:`.posts`, :mod:`.deliveries`, :mod:`.post_csv`: create, list, cancel, reschedule, retry,
  import and export posts;
- :mod:`.imports`, :mod:`.import_runner`, :mod:`.import_work`: CSV imports as background
  jobs (the job a tenant follows, the tasks that run them, one job's steps);
- :mod:`.scheduling`: the time forms of a post (instant, wall time, posting slot);
- :mod:`.channels`, :mod:`.credentials`, :mod:`.vault`: channels and their secrets;
- :mod:`.tenancy`, :mod:`.ownership`: workspaces, API keys, and who may see what;
- :mod:`.subscriptions`, :mod:`.webhook_sender`: webhooks, registered and sent;
- :mod:`.base`: what the services that make deliveries due share (store, clock, the engine's
  wake-up).

Nothing here imports the engine, a connector or HTTP framework code (the webhook sender alone
uses an HTTP client, aiohttp): an engine's ``notify`` and the platforms' content rules are
passed in (:data:`herald.types.Notify`, :data:`herald.types.Validator`).
"""
