ALTER TABLE backup_policies DROP COLUMN drill;
