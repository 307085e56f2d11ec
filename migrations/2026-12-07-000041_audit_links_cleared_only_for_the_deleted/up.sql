-- The audit rows' links to a person or an organization may be cleared only once that person or
-- organization is gone (a foreign key's ON DELETE SET NULL). Migration 24 let any update made
-- inside another trigger clear them: a trigger of anyone's could have hidden who did what. The
-- tables looked into are named with the audit table's own schema, so a temporary table of the
-- same name cannot stand in for them.

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
DECLARE
    actor_kept boolean := NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id;
    organization_kept boolean := NEW.organization_id IS NOT DISTINCT FROM OLD.organization_id;
    gone boolean;
BEGIN
    -- pg_trigger_depth() > 1 and the row it named deleted: the update comes from the foreign
    -- key's ON DELETE SET NULL, not from a statement of anyone's.
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
       AND (NEW.id, NEW.at, NEW.actor_label, NEW.partner_id, NEW.action, NEW.object_kind,
            NEW.object_id, NEW.object_label, NEW.fields, NEW.client_ip)
           IS NOT DISTINCT FROM
           (OLD.id, OLD.at, OLD.actor_label, OLD.partner_id, OLD.action, OLD.object_kind,
            OLD.object_id, OLD.object_label, OLD.fields, OLD.client_ip)
    THEN
        IF NOT actor_kept AND NEW.actor_id IS NULL THEN
            EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %I.users WHERE id = $1)',
                           TG_TABLE_SCHEMA)
                INTO gone USING OLD.actor_id;
            actor_kept := gone;
        END IF;
        IF NOT organization_kept AND NEW.organization_id IS NULL THEN
            EXECUTE format('SELECT NOT EXISTS (SELECT 1 FROM %I.organizations WHERE id = $1)',
                           TG_TABLE_SCHEMA)
                INTO gone USING OLD.organization_id;
            organization_kept := gone;
        END IF;
        IF actor_kept AND organization_kept THEN
            RETURN NEW;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql;
