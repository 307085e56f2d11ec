-- Projects: an organization's workload with its data source (a PostgreSQL database) and the
-- credentials it uses. Credentials in use cannot be deleted (ON DELETE RESTRICT).
CREATE TABLE projects (
    id                   BIGSERIAL PRIMARY KEY,
    organization_id      BIGINT NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    name                 TEXT NOT NULL,
    cloud_credential_id  BIGINT REFERENCES credentials (id) ON DELETE RESTRICT,
    ai_credential_id     BIGINT REFERENCES credentials (id) ON DELETE RESTRICT,
    -- The data source URL, sealed: "<key id>:<base64 nonce || ciphertext>".
    database_url         TEXT NOT NULL,
    backup_enabled       BOOLEAN NOT NULL DEFAULT false,
    backup_credential_id BIGINT REFERENCES credentials (id) ON DELETE RESTRICT,
    bucket               TEXT,
    version              INTEGER NOT NULL DEFAULT 1,
    created_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by           BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    updated_at           TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by           BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT projects_name_length CHECK (char_length(name) BETWEEN 3 AND 30),
    CONSTRAINT projects_name_unique UNIQUE (organization_id, name),
    CONSTRAINT projects_backup_needs_credential
        CHECK (NOT backup_enabled OR (backup_credential_id IS NOT NULL AND bucket IS NOT NULL))
);
CREATE INDEX projects_cloud_credential ON projects (cloud_credential_id);
CREATE INDEX projects_ai_credential ON projects (ai_credential_id);
CREATE INDEX projects_backup_credential ON projects (backup_credential_id);

-- A schedule: cron in a time zone, retention, schemas to dump. next_run_at is the next slot.
CREATE TABLE backup_policies (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    name            TEXT NOT NULL,
    cron            TEXT NOT NULL,
    timezone        TEXT NOT NULL,
    retention_secs  BIGINT NOT NULL,
    namespaces      TEXT[] NOT NULL,
    next_run_at     TIMESTAMPTZ NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT backup_policies_name_length CHECK (char_length(name) BETWEEN 3 AND 30),
    CONSTRAINT backup_policies_name_unique UNIQUE (project_id, name)
);
CREATE INDEX backup_policies_due ON backup_policies (next_run_at);

-- One row per run; (policy, slot) is unique so a slot runs once however many schedulers run.
CREATE TABLE backups (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    policy_id       BIGINT REFERENCES backup_policies (id) ON DELETE SET NULL,
    policy_name     TEXT NOT NULL,
    name            TEXT NOT NULL,
    scheduled_for   TIMESTAMPTZ NOT NULL,
    phase           TEXT NOT NULL DEFAULT 'New',
    reason          TEXT,
    credential_id   BIGINT,
    bucket          TEXT,
    object_key      TEXT,
    namespaces      TEXT[] NOT NULL DEFAULT '{}',
    size_bytes      BIGINT,
    sha256          TEXT,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    expires_at      TIMESTAMPTZ,
    heartbeat_at    TIMESTAMPTZ,
    deleted_at      TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT backups_phase_known
        CHECK (phase IN ('New', 'InProgress', 'Completed', 'Failed', 'Skipped')),
    CONSTRAINT backups_slot_unique UNIQUE (policy_id, scheduled_for)
);
CREATE INDEX backups_project_created ON backups (project_id, created_at DESC);
CREATE INDEX backups_running ON backups (phase, heartbeat_at) WHERE phase IN ('New', 'InProgress');
CREATE INDEX backups_expiring ON backups (expires_at) WHERE phase = 'Completed' AND deleted_at IS NULL;

-- A restore of a completed backup into the project database or another one.
CREATE TABLE restores (
    id              BIGSERIAL PRIMARY KEY,
    project_id      BIGINT NOT NULL REFERENCES projects (id) ON DELETE RESTRICT,
    backup_id       BIGINT REFERENCES backups (id) ON DELETE SET NULL,
    backup_name     TEXT NOT NULL,
    name            TEXT NOT NULL,
    namespaces      TEXT[] NOT NULL DEFAULT '{}',
    -- Sealed like projects.database_url; NULL means the project database.
    target_url      TEXT,
    phase           TEXT NOT NULL DEFAULT 'New',
    warnings        TEXT,
    started_at      TIMESTAMPTZ,
    finished_at     TIMESTAMPTZ,
    heartbeat_at    TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT restores_phase_known
        CHECK (phase IN ('New', 'InProgress', 'Completed', 'Failed'))
);
CREATE INDEX restores_project_created ON restores (project_id, created_at DESC);
