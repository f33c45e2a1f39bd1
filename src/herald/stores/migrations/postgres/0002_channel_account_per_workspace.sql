-- A platform account is unique within a workspace, not across workspaces: an agency and its
-- client may both connect the same Page, and a workspace connecting an account must never learn
-- from a conflict that another workspace holds it. Only live channels count: a deleted
-- channel's account can be connected again. Same change as SQLite's migration 0003.
-- Building the new unique index locks channels against writes for the length of the
-- transaction; the table holds one row per connected account, so that is brief.
ALTER TABLE channels DROP CONSTRAINT channels_platform_external_id_key;
CREATE UNIQUE INDEX channels_account ON channels (workspace_id, platform, external_id)
    WHERE deleted_at IS NULL;
