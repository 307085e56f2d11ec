-- The total above a credentials tab, kept as it changes: one row per organization, kind and
-- provider, so a tab of 10,000 credentials shows its total by reading a few rows instead of
-- counting 10,000 index entries on every page view. Searches still count (bounded), since
-- their totals depend on the term.

-- No credential may be added or removed by another instance between the first count and the
-- triggers below (the migration's transaction holds this until it commits).
LOCK TABLE credentials IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE credential_counts (
    organization_id bigint NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    kind text NOT NULL,
    provider text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (organization_id, kind, provider)
);

INSERT INTO credential_counts (organization_id, kind, provider, n)
SELECT organization_id, kind, provider, count(*) FROM credentials
GROUP BY organization_id, kind, provider;

CREATE FUNCTION credential_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        -- Never below zero: a count that drifted shows a wrong total, it never fails a delete.
        UPDATE credential_counts SET n = greatest(n - 1, 0)
        WHERE organization_id = OLD.organization_id AND kind = OLD.kind
          AND provider = OLD.provider;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO credential_counts (organization_id, kind, provider, n)
        VALUES (NEW.organization_id, NEW.kind, NEW.provider, 1)
        ON CONFLICT (organization_id, kind, provider)
        DO UPDATE SET n = credential_counts.n + 1;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER credential_counts_track
AFTER INSERT OR DELETE OR UPDATE OF organization_id, kind, provider ON credentials
FOR EACH ROW EXECUTE FUNCTION credential_counts_track();

-- A statement that empties the table (tests, a reset) empties the totals with it.
CREATE FUNCTION credential_counts_reset() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM credential_counts;
    RETURN NULL;
END
$$;

CREATE TRIGGER credential_counts_reset AFTER TRUNCATE ON credentials
FOR EACH STATEMENT EXECUTE FUNCTION credential_counts_reset();
