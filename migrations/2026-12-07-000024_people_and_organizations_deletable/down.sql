ALTER TABLE api_tokens
    DROP CONSTRAINT api_tokens_user_id_fkey,
    ADD CONSTRAINT api_tokens_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE restores
    DROP CONSTRAINT restores_created_by_fkey,
    ADD CONSTRAINT restores_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE backup_policies
    DROP CONSTRAINT backup_policies_created_by_fkey,
    ADD CONSTRAINT backup_policies_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE projects
    DROP CONSTRAINT projects_created_by_fkey,
    ADD CONSTRAINT projects_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE RESTRICT,
    DROP CONSTRAINT projects_updated_by_fkey,
    ADD CONSTRAINT projects_updated_by_fkey
        FOREIGN KEY (updated_by) REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE credentials
    DROP CONSTRAINT credentials_created_by_fkey,
    ADD CONSTRAINT credentials_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE RESTRICT,
    DROP CONSTRAINT credentials_updated_by_fkey,
    ADD CONSTRAINT credentials_updated_by_fkey
        FOREIGN KEY (updated_by) REFERENCES users (id) ON DELETE RESTRICT;
ALTER TABLE audit_events
    DROP CONSTRAINT audit_events_actor_id_fkey,
    ADD CONSTRAINT audit_events_actor_id_fkey
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE RESTRICT,
    DROP CONSTRAINT audit_events_organization_id_fkey,
    ADD CONSTRAINT audit_events_organization_id_fkey
        FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE RESTRICT;
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
