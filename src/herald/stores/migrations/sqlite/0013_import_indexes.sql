-- CSV imports, indexed for what removes their rows (same indexes as PostgreSQL's migration 0011):
-- deleting a post checks import_posts by post_id (discarding an import, erasing a workspace:
-- without this index, a scan of every import's lines per post deleted); finished jobs are
-- found by when they finished, for the purge of those past api.import_retention_s; and the
-- deliveries an import holds (herald.domain.Delivery.held), which listings leave out, are
-- found by post in an index only imports in progress fill.
CREATE INDEX import_posts_post ON import_posts (post_id);
CREATE INDEX imports_finished ON imports (finished_at)
    WHERE state NOT IN ('queued', 'validating', 'writing');
CREATE INDEX deliveries_held ON deliveries (post_id)
    WHERE state = 'scheduled' AND next_attempt_at IS NULL AND attempts = 0;
