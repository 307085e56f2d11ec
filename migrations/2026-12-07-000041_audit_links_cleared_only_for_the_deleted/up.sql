-- The audit rows' links to a person or an organization may be cleared only once that person or
-- organization is gone (a foreign key's ON DELETE SET NULL). Migration 24 let any update made
-- inside another trigger clear them: a trigger of anyone's could have hidden who did what.

CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
    -- pg_trigger_depth() > 1 and the row it named deleted: the update comes from the foreign
    -- key's ON DELETE SET NULL, not from a statement of anyone's.
    IF TG_OP = 'UPDATE' AND pg_trigger_depth() > 1
       AND (NEW.actor_id IS NOT DISTINCT FROM OLD.actor_id
            OR (NEW.actor_id IS NULL
                AND NOT EXISTS (SELECT 1 FROM users WHERE id = OLD.actor_id)))
       AND (NEW.organization_id IS NOT DISTINCT FROM OLD.organization_id
            OR (NEW.organization_id IS NULL
                AND NOT EXISTS (SELECT 1 FROM organizations WHERE id = OLD.organization_id)))
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

-- `users` and `organizations` above are keyhold's own: the function looks only in the schema
-- keyhold's tables are in, then in pg_temp (listed last, so a temporary table of the same name
-- cannot stand in for them; unlisted, pg_temp would be searched first).
DO $$
BEGIN
    EXECUTE format('ALTER FUNCTION audit_events_append_only() SET search_path = pg_catalog, %I, pg_temp',
                   current_schema());
END;
$$;
