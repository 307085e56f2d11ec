ALTER TABLE backups DROP COLUMN upload_key, DROP COLUMN upload_id;
DROP INDEX backups_credential_id;
ALTER TABLE backups DROP CONSTRAINT backups_credential_id_fkey;
