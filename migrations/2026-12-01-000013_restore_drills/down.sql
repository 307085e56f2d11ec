DROP TABLE drills;
DROP TABLE backup_tables;
