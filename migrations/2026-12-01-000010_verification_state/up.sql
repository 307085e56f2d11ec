-- What the last verification found, as a state: a pass with a warning (a narrowly scoped key)
-- was stored as verify_ok = true and told apart by the words of its message, so a message that
-- merely held "only" (a GCP project id) read as a warning. verify_ok stays, kept in step, for the
-- sort and for a version still running without this column. Old rows get the state their check
-- found: the only warnings keyhold gives are the two messages below (S3, Zadara).
ALTER TABLE credentials ADD COLUMN verify_state text
    CONSTRAINT credentials_verify_state CHECK (verify_state IN ('ok', 'warning', 'failed'));
UPDATE credentials SET verify_state = CASE
    WHEN NOT verify_ok THEN 'failed'
    WHEN verify_message LIKE 'the signature is valid, but listing buckets is denied%'
        OR verify_message LIKE 'checked the form of the keys only:%' THEN 'warning'
    ELSE 'ok'
END
WHERE verify_ok IS NOT NULL;
