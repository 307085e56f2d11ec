DROP TABLE restores;
DROP TABLE backups;
DROP TABLE backup_policies;
DROP TABLE projects;
