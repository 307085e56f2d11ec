-- The audit page and its exports read a scope's events newest first by id (keyset chunks for
-- the exports): without these, every chunk would sort the whole scope again.
CREATE INDEX audit_events_partner_id_desc ON audit_events (partner_id, id DESC);
CREATE INDEX audit_events_organization_id_desc ON audit_events (organization_id, id DESC);
