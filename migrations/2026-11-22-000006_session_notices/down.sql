DROP TRIGGER sessions_notify_truncate ON sessions;
DROP FUNCTION sessions_notify_truncate();
DROP TRIGGER sessions_notify ON sessions;
DROP FUNCTION sessions_notify();
