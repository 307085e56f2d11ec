ALTER TABLE backup_policies DROP COLUMN heartbeat_url;
DROP TABLE credential_uses;
DROP TABLE notification_deliveries;
DROP TABLE notification_events;
DROP TABLE notification_channels;
