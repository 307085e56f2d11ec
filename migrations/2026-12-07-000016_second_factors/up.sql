-- Second factors (SPEC §12): a person's TOTP secret (sealed with the keyring), the one being
-- set up, the last time step accepted (a code is accepted once), and ten one-time recovery
-- codes (SHA-256 of each: they carry 50 random bits). Partners require a second factor for
-- their whole partner account or per organization.
ALTER TABLE users ADD COLUMN totp_secret text;
ALTER TABLE users ADD COLUMN totp_pending text;
ALTER TABLE users ADD COLUMN totp_enabled_at timestamptz;
ALTER TABLE users ADD COLUMN totp_last_step bigint;
CREATE TABLE recovery_codes (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash text NOT NULL,
    used_at timestamptz,
    CONSTRAINT recovery_codes_once UNIQUE (user_id, code_hash)
);
ALTER TABLE partners ADD COLUMN mfa_required boolean NOT NULL DEFAULT false;
ALTER TABLE organizations ADD COLUMN mfa_required boolean NOT NULL DEFAULT false;
