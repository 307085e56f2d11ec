DROP TABLE audit_events;
DROP FUNCTION audit_events_append_only();
DROP TABLE login_throttles;
DROP TABLE sessions;
ALTER TABLE organizations DROP CONSTRAINT organizations_created_by_fkey;
DROP TABLE users;
DROP TABLE organizations;
DROP TABLE partners;
