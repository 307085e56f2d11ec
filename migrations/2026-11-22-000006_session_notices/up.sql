-- Every instance keeps the sessions it serves in memory (src/auth/session_cache.rs) and forgets
-- one as soon as its row changes or goes: this announces each such row, by id, to listeners.
CREATE FUNCTION sessions_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhold_sessions', OLD.id);
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify
    AFTER UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_notify();

-- TRUNCATE names no rows: listeners are told with an empty payload to forget everything.
CREATE FUNCTION sessions_notify_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('keyhold_sessions', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER sessions_notify_truncate
    AFTER TRUNCATE ON sessions
    FOR EACH STATEMENT EXECUTE FUNCTION sessions_notify_truncate();
