CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Every credential of every kind; the provider registry (src/credentials/provider.rs) says
-- which public and secret fields each provider has.
CREATE TABLE credentials (
    id              BIGSERIAL PRIMARY KEY,
    organization_id BIGINT NOT NULL REFERENCES organizations (id) ON DELETE RESTRICT,
    kind            TEXT NOT NULL,
    provider        TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- Non-secret fields by key.
    public          JSONB NOT NULL DEFAULT '{}',
    -- Secret fields by key: base64 of nonce || AES-256-GCM ciphertext, sealed under key_id with
    -- "org/<organization>/credential/<id>/<field>" as associated data. Never plaintext.
    secrets         JSONB NOT NULL DEFAULT '{}',
    key_id          TEXT NOT NULL,
    -- Lower-cased name, organization and public text values: what the search box matches.
    search_text     TEXT NOT NULL DEFAULT '',
    is_default      BOOLEAN NOT NULL DEFAULT false,
    is_locked       BOOLEAN NOT NULL DEFAULT false,
    expires_on      DATE,
    verified_at     TIMESTAMPTZ,
    verify_ok       BOOLEAN,
    verify_message  TEXT,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    created_by      BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_by      BIGINT REFERENCES users (id) ON DELETE RESTRICT,
    CONSTRAINT credentials_kind_known
        CHECK (kind IN ('cloud', 'backup', 'billing', 'showback', 'ai')),
    CONSTRAINT credentials_name_length CHECK (char_length(name) BETWEEN 3 AND 30),
    CONSTRAINT credentials_name_unique UNIQUE (organization_id, kind, name)
);

-- At most one default per organization and kind (and provider, for cloud).
CREATE UNIQUE INDEX credentials_one_default
    ON credentials (organization_id, kind, (CASE WHEN kind = 'cloud' THEN provider ELSE '' END))
    WHERE is_default;
CREATE INDEX credentials_kind_org_name ON credentials (kind, organization_id, name);
CREATE INDEX credentials_search ON credentials USING gin (search_text gin_trgm_ops);
