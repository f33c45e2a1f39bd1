"""What the API and the command line do, as services over the store.

- :mod:`.posts`, :mod:`.deliveries`, :mod:`.post_csv`: create, list, cancel, reschedule, retry,
  import and export posts;
- :mod:`.scheduling`: the time forms of a post (instant, wall time, posting slot);
- :mod:`.channels`, :mod:`.credentials`, :mod:`.vault`: channels and their secrets;
- :mod:`.tenancy`, :mod:`.ownership`: workspaces, API keys, and who may see what;
- :mod:`.subscriptions`, :mod:`.webhook_sender`: webhooks, registered and sent.

Nothing here imports the engine or HTTP framework code; the API injects what it needs from an
engine (a ``notify`` callable) when one runs in the same process.
"""
