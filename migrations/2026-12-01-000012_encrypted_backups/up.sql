-- Encrypted backups (SPEC §10): a project's age recipients (public keys) and, optionally, its
-- identity sealed with the keyring; each backup records the recipients it was sealed to
-- (NULL: not encrypted).
CREATE TABLE project_encryption (
    project_id bigint PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    enabled boolean NOT NULL DEFAULT false,
    recipients text[] NOT NULL DEFAULT '{}',
    identity text,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT project_encryption_recipients CHECK (NOT enabled OR cardinality(recipients) > 0)
);
ALTER TABLE backups ADD COLUMN encrypted_to text[];
