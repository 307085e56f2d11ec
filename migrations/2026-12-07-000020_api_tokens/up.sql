-- API tokens (SPEC §11): a person's scoped, expiring bearer tokens. Only a SHA-256 of the token
-- is kept (tokens carry 256 random bits, so a fast hash is enough); `prefix` is the part shown
-- in lists. `window_*` count the requests of the current minute for the rate limit.
CREATE TABLE api_tokens (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
    partner_id bigint NOT NULL REFERENCES partners (id) ON DELETE RESTRICT,
    name text NOT NULL,
    prefix text NOT NULL,
    token_hash text NOT NULL CONSTRAINT api_tokens_hash_unique UNIQUE,
    scopes text[] NOT NULL,
    allowed_ips text[] NOT NULL DEFAULT '{}',
    expires_on date NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    last_used_ip text,
    revoked_at timestamptz,
    window_started_at timestamptz NOT NULL DEFAULT now(),
    window_requests integer NOT NULL DEFAULT 0
);
CREATE INDEX api_tokens_partner ON api_tokens (partner_id, id);
CREATE INDEX api_tokens_user ON api_tokens (user_id, id);
