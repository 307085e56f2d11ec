-- What a running backup has stored so far (bytes), written with its heartbeat, so the Backups
-- tab can say how far it is (issue 19: "backup progress that says something").
ALTER TABLE backups ADD COLUMN progress_bytes bigint;
