-- Notifications (SPEC §9): an organization's channels, the events keyhold records (the outbox:
-- every event is kept, whether a channel wants it or not), and one delivery per (event,
-- channel) that the delivery loops claim with SKIP LOCKED so each is sent by one instance.
CREATE TABLE notification_channels (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name text NOT NULL,
    kind text NOT NULL CONSTRAINT notification_channels_kind CHECK (kind IN ('webhook', 'slack', 'email')),
    -- Sealed: webhook and Slack URLs carry their own tokens. Only the origin is shown.
    url text,
    url_origin text,
    -- Sealed: the webhook's HMAC key.
    secret text,
    smtp_host text,
    smtp_port integer,
    smtp_tls text CONSTRAINT notification_channels_tls CHECK (smtp_tls IN ('starttls', 'tls', 'none')),
    smtp_username text,
    -- Sealed.
    smtp_password text,
    email_from text,
    email_to text,
    events text[] NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by bigint REFERENCES users (id) ON DELETE SET NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    updated_by bigint REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT notification_channels_name_unique UNIQUE (organization_id, name)
);
CREATE TABLE notification_events (
    id bigserial PRIMARY KEY,
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind text NOT NULL,
    -- Events found by a periodic look (a missed slot, an expiry coming) carry a key, so every
    -- instance that finds the same one records it once.
    dedup_key text CONSTRAINT notification_events_once UNIQUE,
    message text NOT NULL,
    -- The webhook body (SPEC §9).
    body jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_events_kind ON notification_events (kind, created_at);
CREATE TABLE notification_deliveries (
    id bigserial PRIMARY KEY,
    -- X-Keyhold-Delivery: the same on every attempt.
    delivery_key text NOT NULL CONSTRAINT notification_deliveries_key UNIQUE,
    event_id bigint NOT NULL REFERENCES notification_events (id) ON DELETE CASCADE,
    channel_id bigint NOT NULL REFERENCES notification_channels (id) ON DELETE CASCADE,
    state text NOT NULL DEFAULT 'pending'
        CONSTRAINT notification_deliveries_state CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    -- When the next attempt is due; while an attempt runs, when its claim lapses.
    next_attempt_at timestamptz NOT NULL DEFAULT now(),
    last_status integer,
    last_error text,
    delivered_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at)
    WHERE state = 'pending';
CREATE INDEX notification_deliveries_channel ON notification_deliveries (channel_id, id DESC);

-- What last used each credential (SPEC §2 "Last used", issue 16): a table of its own, so a
-- backup's use does not rewrite the credentials row the tabs read and cache.
CREATE TABLE credential_uses (
    credential_id bigint PRIMARY KEY REFERENCES credentials (id) ON DELETE CASCADE,
    used_at timestamptz NOT NULL,
    used_for text NOT NULL
);

-- A policy's heartbeat (SPEC §8): GET after a completed backup, GET <url>/fail after a failed one.
ALTER TABLE backup_policies ADD COLUMN heartbeat_url text;
