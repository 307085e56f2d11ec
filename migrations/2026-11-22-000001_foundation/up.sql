-- Partners own organizations; every person belongs to one partner account.
CREATE TABLE partners (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE organizations (
    id          BIGSERIAL PRIMARY KEY,
    partner_id  BIGINT NOT NULL REFERENCES partners (id) ON DELETE RESTRICT,
    name        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by  BIGINT,
    CONSTRAINT organizations_name_length CHECK (char_length(name) BETWEEN 3 AND 60),
    CONSTRAINT organizations_partner_name_unique UNIQUE (partner_id, name)
);

-- Partners have no organization; Managers and Users have exactly one.
CREATE TABLE users (
    id              BIGSERIAL PRIMARY KEY,
    partner_id      BIGINT NOT NULL REFERENCES partners (id) ON DELETE RESTRICT,
    organization_id BIGINT REFERENCES organizations (id) ON DELETE RESTRICT,
    email           TEXT NOT NULL,
    display_name    TEXT NOT NULL,
    role            TEXT NOT NULL,
    password_hash   TEXT NOT NULL,
    disabled        BOOLEAN NOT NULL DEFAULT false,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT users_role_known CHECK (role IN ('partner', 'manager', 'user')),
    CONSTRAINT users_role_organization CHECK ((role = 'partner') = (organization_id IS NULL))
);
CREATE UNIQUE INDEX users_email_unique ON users (lower(email));
CREATE INDEX users_organization ON users (organization_id);
CREATE INDEX users_partner ON users (partner_id);

ALTER TABLE organizations
    ADD CONSTRAINT organizations_created_by_fkey FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;

-- Server-side session state for actix-session; the id is the SHA-256 of the cookie's key.
CREATE TABLE sessions (
    id          TEXT PRIMARY KEY,
    user_id     BIGINT REFERENCES users (id) ON DELETE CASCADE,
    state       JSONB NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- Failed sign-in counters, keyed by client address ("client:…") or account ("account:…").
CREATE TABLE login_throttles (
    key                 TEXT PRIMARY KEY,
    failures            INTEGER NOT NULL,
    window_started_at   TIMESTAMPTZ NOT NULL,
    blocked_until       TIMESTAMPTZ
);

-- Append-only record of who changed what; never holds secret values.
CREATE TABLE audit_events (
    id              BIGSERIAL PRIMARY KEY,
    at              TIMESTAMPTZ NOT NULL DEFAULT now(),
    actor_id        BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    actor_label     TEXT NOT NULL,
    partner_id      BIGINT REFERENCES partners (id) ON DELETE RESTRICT,
    organization_id BIGINT REFERENCES organizations (id) ON DELETE RESTRICT,
    action          TEXT NOT NULL,
    object_kind     TEXT NOT NULL,
    object_id       BIGINT,
    object_label    TEXT NOT NULL DEFAULT '',
    fields          TEXT[] NOT NULL DEFAULT '{}',
    client_ip       TEXT
);
CREATE INDEX audit_events_partner_at ON audit_events (partner_id, at DESC);
CREATE INDEX audit_events_organization_at ON audit_events (organization_id, at DESC);

CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER audit_events_no_update
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
