-- Back to migration 24's function.
CREATE OR REPLACE FUNCTION audit_events_append_only() RETURNS trigger AS $$
BEGIN
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

ALTER FUNCTION audit_events_append_only() RESET search_path;
