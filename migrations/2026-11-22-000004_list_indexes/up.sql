-- Credentials tabs are sorted by name within an organization (Managers) or a partner's
-- organizations (Partners): these indexes give the first page without sorting every row.
CREATE INDEX credentials_org_kind_lower_name ON credentials (organization_id, kind, lower(name), id);
CREATE INDEX credentials_kind_lower_name ON credentials (kind, lower(name), id);
