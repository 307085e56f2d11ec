ALTER TABLE backups DROP COLUMN encrypted_to;
DROP TABLE project_encryption;
