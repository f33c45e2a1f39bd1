-- The region a channel publishes from (NULL: the deployment's own): only that region's
-- workers take its deliveries.
ALTER TABLE channels ADD COLUMN region TEXT;
