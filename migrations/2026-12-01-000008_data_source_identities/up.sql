-- Which database each project's data source is (the server's system_identifier and the
-- database's oid, "<system>/<oid>"), recorded when keyhold last connected to it, so a database
-- another organization's project uses is refused however its URL is spelled (SPEC §13); and
-- the schemas it had then, which the Schedules tab offers without connecting.
CREATE TABLE project_data_sources (
    project_id bigint PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    identity text NOT NULL,
    schemas text[] NOT NULL DEFAULT '{}',
    -- When this project was first seen on this database: the earlier claim keeps it.
    first_seen_at timestamptz NOT NULL DEFAULT now(),
    checked_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX project_data_sources_identity ON project_data_sources (identity);
