-- What a look-up's listing pages after the first reserved against the limits, per meter, as
-- JSON ({"calls": 3}); NULL for every other attempt. The platform counted those pages, so
-- the limiter an engine rebuilds at start-up (sent_since) counts them too.
ALTER TABLE attempts ADD COLUMN page_usage TEXT;
