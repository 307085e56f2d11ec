-- Passkeys (SPEC §12): WebAuthn credentials a person signs in with instead of typing the TOTP
-- code. `credential` is webauthn-rs's `Passkey` as JSON (the public key, its id and the
-- signature counter: nothing secret); `credential_id` (base64url) is unique across everyone,
-- as WebAuthn asks (one authenticator's key cannot be registered to two people).
CREATE TABLE passkeys (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text NOT NULL,
    credential_id text NOT NULL,
    credential text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    CONSTRAINT passkeys_credential_once UNIQUE (credential_id)
);
CREATE INDEX passkeys_user ON passkeys (user_id);
