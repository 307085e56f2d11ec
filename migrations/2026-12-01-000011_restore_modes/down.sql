ALTER TABLE restores DROP COLUMN parallel;
ALTER TABLE backups DROP COLUMN preflight;
