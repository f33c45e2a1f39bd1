-- The region a channel publishes from (NULL: the deployment's own): only that region's
-- workers take its deliveries. Same column as SQLite's migration 0008; a nullable column
-- without a default rewrites nothing.
ALTER TABLE channels ADD COLUMN region text COLLATE "C";
