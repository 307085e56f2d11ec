-- Restore drills (SPEC §8): what each backup holds, counted in the snapshot it was dumped from,
-- and the drills that restore a backup into a scratch database and compare.
CREATE TABLE backup_tables (
    backup_id bigint NOT NULL REFERENCES backups (id) ON DELETE CASCADE,
    schema_name text NOT NULL,
    table_name text NOT NULL,
    row_count bigint NOT NULL,
    PRIMARY KEY (backup_id, schema_name, table_name)
);
CREATE TABLE drills (
    id bigserial PRIMARY KEY,
    project_id bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    backup_id bigint REFERENCES backups (id) ON DELETE SET NULL,
    backup_name text NOT NULL,
    phase text NOT NULL CONSTRAINT drills_phase CHECK (phase IN ('New', 'InProgress', 'Passed', 'Failed')),
    reason text,
    -- The scratch database, and when it was dropped (it never outlives its drill).
    scratch_database text,
    scratch_dropped_at timestamptz,
    tables_compared integer NOT NULL DEFAULT 0,
    rows_compared bigint NOT NULL DEFAULT 0,
    mismatches text[] NOT NULL DEFAULT '{}',
    started_at timestamptz,
    finished_at timestamptz,
    heartbeat_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by bigint REFERENCES users (id) ON DELETE SET NULL
);
CREATE INDEX drills_backup ON drills (backup_id, id DESC);
CREATE INDEX drills_project ON drills (project_id, id DESC);
CREATE INDEX drills_scratch ON drills (id)
    WHERE scratch_database IS NOT NULL AND scratch_dropped_at IS NULL;
-- The Backups tab (kept in memory per instance) shows each backup's latest drill.
CREATE TRIGGER drills_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON drills
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
