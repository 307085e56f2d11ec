-- A backup keeps the credential its object was written with: a credential holding stored or
-- running backups cannot be deleted (keyhold refuses it and names them); once a backup's object
-- is gone, deleting the credential clears the reference. Rows already stranded by a deleted
-- credential lose the dangling reference (their objects could not be reached anyway).
UPDATE backups SET credential_id = NULL
WHERE credential_id IS NOT NULL AND credential_id NOT IN (SELECT id FROM credentials);
ALTER TABLE backups ADD CONSTRAINT backups_credential_id_fkey
    FOREIGN KEY (credential_id) REFERENCES credentials (id) ON DELETE SET NULL;
CREATE INDEX backups_credential_id ON backups (credential_id) WHERE credential_id IS NOT NULL;

-- The multipart upload a run started, until it completes or is aborted: a run whose process
-- died, or whose S3 could not take the abort, has its parts aborted by the next scheduler pass.
ALTER TABLE backups ADD COLUMN upload_key text, ADD COLUMN upload_id text;
