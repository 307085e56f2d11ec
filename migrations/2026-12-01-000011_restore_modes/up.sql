-- What each backup's pre-flight check found (the bucket reached with its credential before
-- pg_dump started), and whether a restore was asked to run in parallel (pg_restore --jobs,
-- not one transaction: a failure leaves what was restored so far).
ALTER TABLE backups ADD COLUMN preflight text;
ALTER TABLE restores ADD COLUMN parallel boolean NOT NULL DEFAULT false;
