-- Every instance keeps what its busiest pages read in memory (src/page_cache.rs) and forgets it
-- as soon as a table it was read from changes: this announces every statement that changed one
-- of those tables, by the table's name. Notices are sent on commit, and PostgreSQL folds equal
-- ones of a transaction into one, so a statement touching many rows costs one notice.
CREATE FUNCTION keyhold_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhold_changes', TG_TABLE_NAME);
    RETURN NULL;
END
$$;

CREATE TRIGGER credentials_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON credentials
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
CREATE TRIGGER organizations_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON organizations
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
CREATE TRIGGER projects_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
CREATE TRIGGER backups_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON backups
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
CREATE TRIGGER backup_policies_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON backup_policies
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
CREATE TRIGGER restores_notify_change
    AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON restores
    FOR EACH STATEMENT EXECUTE FUNCTION keyhold_notify_change();
