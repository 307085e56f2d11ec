DROP TRIGGER credential_counts_reset ON credentials;
DROP FUNCTION credential_counts_reset();
DROP TRIGGER credential_counts_track ON credentials;
DROP FUNCTION credential_counts_track();
DROP TABLE credential_counts;
