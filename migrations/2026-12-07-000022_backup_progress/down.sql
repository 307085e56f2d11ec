ALTER TABLE backups DROP COLUMN progress_bytes;
