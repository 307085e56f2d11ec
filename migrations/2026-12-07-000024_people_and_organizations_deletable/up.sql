-- Issue 19: people, empty organizations and projects can be deleted. What a person made stays
-- and forgets who made it (SET NULL); their API tokens go with them. Audit rows stay with
-- their words (actor_label, object_label): only their link to a deleted person or
-- organization is cleared, by the foreign key's own action and by nothing else.

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    -- pg_trigger_depth() > 1: the update comes from a foreign key's ON DELETE SET NULL, not
    -- from a statement of anyone's.
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
       AND (NEW.actor_id IS NULL OR NEW.actor_id = OLD.actor_id)
       AND (NEW.organization_id IS NULL OR NEW.organization_id = OLD.organization_id)
       AND (NEW.id, NEW.at, NEW.actor_label, NEW.partner_id, NEW.action, NEW.object_kind,
            NEW.object_id, NEW.object_label, NEW.fields, NEW.client_ip)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.at, OLD.actor_label, OLD.partner_id, OLD.action, OLD.object_kind,
            OLD.object_id, OLD.object_label, OLD.fields, OLD.client_ip)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;

ALTER TABLE audit_events
    DROP CONSTRAINT audit_events_actor_id_fkey,
    ADD CONSTRAINT audit_events_actor_id_fkey
        FOREIGN KEY (actor_id) REFERENCES users (id) ON DELETE SET NULL,
    DROP CONSTRAINT audit_events_organization_id_fkey,
    ADD CONSTRAINT audit_events_organization_id_fkey
        FOREIGN KEY (organization_id) REFERENCES organizations (id) ON DELETE SET NULL;

ALTER TABLE credentials
    DROP CONSTRAINT credentials_created_by_fkey,
    ADD CONSTRAINT credentials_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    DROP CONSTRAINT credentials_updated_by_fkey,
    ADD CONSTRAINT credentials_updated_by_fkey
        FOREIGN KEY (updated_by) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE projects
    DROP CONSTRAINT projects_created_by_fkey,
    ADD CONSTRAINT projects_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL,
    DROP CONSTRAINT projects_updated_by_fkey,
    ADD CONSTRAINT projects_updated_by_fkey
        FOREIGN KEY (updated_by) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE backup_policies
    DROP CONSTRAINT backup_policies_created_by_fkey,
    ADD CONSTRAINT backup_policies_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE restores
    DROP CONSTRAINT restores_created_by_fkey,
    ADD CONSTRAINT restores_created_by_fkey
        FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL;

ALTER TABLE api_tokens
    DROP CONSTRAINT api_tokens_user_id_fkey,
    ADD CONSTRAINT api_tokens_user_id_fkey
        FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
