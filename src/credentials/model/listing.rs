//! A tab's listing: what a page asks for (`ListQuery`), the rows it shows (`Listed`, with the
//! names beside each) and its total, read in as few planned statements as a page allows.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text};

use super::page_sql::{
    CREDENTIAL_COLUMNS, CountRow, Filter, LISTED_COLUMNS, PageSql, UNNAMED_EDITORS, associated,
};
use super::{Credential, CredentialId, CredentialSql};
use crate::access::Scope;
use crate::credentials::provider::Kind;
use crate::db::{Bind, Tables, like_pattern};
use crate::ids::OrganizationId;
use crate::web::form::Pagination;

/// A row of a credentials table, with the names shown beside it: the columns of
/// `LISTED_COLUMNS` or `CREDENTIAL_COLUMNS`, then those below, in this order (decoded by
/// position).
#[derive(Queryable, Debug, Clone)]
pub struct Listed {
    pub credential: Credential,
    pub organization_name: String,
    pub created_by_label: Option<String>,
    pub updated_by_label: Option<String>,
    /// Names of the projects using it, one per line (they are why it cannot be deleted).
    pub associated_projects: Option<String>,
}

/// The SQL types of a `Listed` row.
pub(super) type ListedSql = (
    CredentialSql,
    Text,
    Nullable<Text>,
    Nullable<Text>,
    Nullable<Text>,
);

impl Listed {
    /// The projects using this credential.
    pub fn projects(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .associated_projects
            .as_deref()
            .map_or_else(Vec::new, |names| names.lines().collect());
        // Alphabetical, as a person reads it ("alpha" before "Beta"), then by bytes.
        fn folded(name: &str) -> impl Iterator<Item = char> + '_ {
            name.chars().flat_map(char::to_lowercase)
        }
        names.sort_unstable_by(|a, b| folded(a).cmp(folded(b)).then_with(|| a.cmp(b)));
        names
    }
}

/// Search totals are counted up to this many rows; past it a tab says "more than 1,000".
pub const SEARCH_COUNT_CAP: i64 = 1000;

/// How many credentials a tab holds: exact, or (for a broad search) more than a bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Total {
    Exact(i64),
    MoreThan(i64),
}

impl Total {
    /// Whether rows exist past the first `shown`.
    pub fn exceeds(self, shown: i64) -> bool {
        match self {
            Total::Exact(total) => total > shown,
            Total::MoreThan(bound) => bound >= shown,
        }
    }
}

impl std::fmt::Display for Total {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (prefix, n) = match self {
            Total::Exact(n) => ("", *n),
            Total::MoreThan(n) => ("more than ", *n),
        };
        let noun = if n == 1 && prefix.is_empty() {
            "credential"
        } else {
            "credentials"
        };
        write!(f, "{prefix}{} {noun}", thousands(n))
    }
}

/// 12345 as "12,345".
fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// One page of a tab and how many rows the whole tab holds. Rows are shared: a search keeps
/// the rows it showed for the next one (`search_index::ShownRows`).
#[derive(Clone)]
pub struct CredentialPage {
    pub rows: Vec<Arc<Listed>>,
    pub total: Total,
}

/// What a list page asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ListQuery {
    pub kind: Kind,
    pub organization: Option<OrganizationId>,
    pub provider: Option<&'static str>,
    pub search: Option<String>,
    /// A key of `sort_expression`; unknown keys sort by name.
    pub sort: String,
    pub descending: bool,
    pub pagination: Pagination,
}

impl ListQuery {
    /// Whether a credential of `kind`, in `organization`, from `provider` is of what this query
    /// lists, scope and term aside (what `Filter::listing` asks of PostgreSQL, for rows held in
    /// memory).
    pub fn lists(&self, kind: Kind, organization: i64, provider: &str) -> bool {
        kind == self.kind
            && self
                .organization
                .is_none_or(|wanted| wanted.0 == organization)
            && self.provider.is_none_or(|wanted| wanted == provider)
    }
}

/// The SQL a sort key orders by; only known keys (never request text) reach the query.
pub fn sort_expression(kind: Kind, key: &str) -> Option<String> {
    Some(match key {
        "id" => "c.id".into(),
        "name" => "lower(c.name)".into(),
        "organization" => "lower(o.name)".into(),
        "provider" => "c.provider".into(),
        "created" => "c.created_at".into(),
        "expires" => "c.expires_on".into(),
        "default" => "c.is_default".into(),
        "lock" => "c.is_locked".into(),
        "verified" => "c.verify_ok".into(),
        public => {
            let known = kind.spec().column_keys().find(|known| *known == public)?;
            format!("lower(c.public->>'{known}')")
        }
    })
}

impl Credential {
    /// The tables `list` reads: credentials (and `credential_counts`, kept by their triggers),
    /// organizations, and projects (the associated projects).
    pub const LIST_READS: Tables = Tables::CREDENTIALS
        .with(Tables::ORGANIZATIONS)
        .with(Tables::PROJECTS);

    /// One page of a tab, filtered, searched and sorted, inside `scope`, with the tab's total.
    ///
    /// Every statement here is prepared once per connection and written so that PostgreSQL
    /// keeps one plan for it: the page size (a constant) is part of the text and the first page
    /// has no offset (a `LIMIT $n` makes it guess a tenth of the table), and filter values are
    /// behind `(SELECT ?)`, so a plan for one organization is no cheaper than the plan for any
    /// (otherwise it plans again on every execution, which costs more than running the page).
    pub fn list(
        conn: &mut PgConnection,
        scope: &Scope,
        query: &ListQuery,
    ) -> QueryResult<CredentialPage> {
        // The same filter over credentials (c) for the page and over the kept totals (t).
        let mut rows = Filter::listing("c", scope, query);
        let totals = Filter::listing("t", scope, query);
        let page = PageSql::new(query);
        let Some(search) = &query.search else {
            // Unsearched: the page by index, with the tab's total from the kept counts.
            let total = format!(
                "(SELECT coalesce(sum(t.n), 0)::bigint FROM credential_counts t
                  JOIN organizations o ON o.id = t.organization_id WHERE {})",
                totals.sql()
            );
            let mut binds = totals.binds.clone();
            binds.extend(rows.binds.iter().cloned());
            let (rows, total) = page.load(conn, &page.walk(&rows.sql(), &total), binds)?;
            let total = match total {
                Some(total) => total,
                // A page past the end has no row to carry the total.
                None => {
                    totals
                        .query(
                            "SELECT coalesce(sum(t.n), 0)::bigint AS n FROM credential_counts t
                             JOIN organizations o ON o.id = t.organization_id
                             WHERE {filter}",
                            &[],
                        )
                        .get_result::<CountRow>(conn)?
                        .n
                }
            };
            return Ok(CredentialPage {
                rows,
                total: Total::Exact(total),
            });
        };
        // Searched: the matches are gathered through the trigram index, up to a bound past
        // this page, then counted and sorted, in one statement. A term matching more than the
        // bound (a broad one) finds its page faster by walking the sort order instead.
        let pattern = Bind::Text(like_pattern(search));
        let cap = SEARCH_COUNT_CAP.max(page.offset + page.limit);
        let mut matching = rows.clone();
        matching.and("c.search_text LIKE (SELECT ?)", pattern.clone());
        // The usual bound is written into the statement (a bound parameter, like a page
        // size, would have it planned again on every execution); deep pages bind theirs.
        let mut binds = matching.binds.clone();
        let bound = if cap == SEARCH_COUNT_CAP {
            (SEARCH_COUNT_CAP + 1).to_string()
        } else {
            binds.push(Bind::Int(cap + 1));
            "?".to_string()
        };
        let gather = format!(
            "WITH matches AS MATERIALIZED (
                 SELECT c.id, o.name AS organization_name, {order} AS sort_value
                 FROM credentials c
                 JOIN organizations o ON o.id = c.organization_id
                 WHERE {filter} LIMIT {bound}
             )",
            order = page.order,
            filter = matching.sql(),
        );
        let (found, counted) = page.load(
            conn,
            &page.sorted(&gather, "(SELECT count(*) FROM matches)"),
            binds,
        )?;
        let counted = match counted {
            Some(counted) => counted,
            None => {
                matching
                    .query(
                        "SELECT count(*) AS n FROM (
                         SELECT 1 FROM credentials c
                         JOIN organizations o ON o.id = c.organization_id
                         WHERE {filter} LIMIT ?
                     ) matches",
                        &[cap + 1],
                    )
                    .get_result::<CountRow>(conn)?
                    .n
            }
        };
        if counted <= cap {
            return Ok(CredentialPage {
                rows: found,
                total: Total::Exact(counted),
            });
        }
        // Its plan depends on the term, so the term is left visible to the planner here.
        rows.and("c.search_text LIKE ?", pattern);
        let (rows_found, _) = page.load(conn, &page.walk(&rows.sql(), "NULL"), rows.binds)?;
        Ok(CredentialPage {
            rows: rows_found,
            total: Total::MoreThan(cap),
        })
    }

    /// The tables `listed_by_ids` reads: those of `list`.
    pub const LISTED_BY_IDS_READS: Tables = Credential::LIST_READS;

    /// The rows of `ids` (a page found by the search index) that `query` lists of `scope` and
    /// that hold `search`, in the tab's order: scope, filters, term and order are checked again
    /// here, so a row the index holds wrongly is left out, never shown, and the caller can tell
    /// (fewer rows, or another order than `ids`).
    pub fn listed_by_ids(
        conn: &mut PgConnection,
        scope: &Scope,
        query: &ListQuery,
        search: &str,
        ids: &[i64],
    ) -> QueryResult<Vec<Arc<Listed>>> {
        let mut filter = Filter::listing("c", scope, query);
        filter.and(
            "c.search_text LIKE (SELECT ?)",
            Bind::Text(like_pattern(search)),
        );
        filter.and("c.id = ANY(?)", Bind::Ints(ids.to_vec()));
        let rows = filter
            .query(
                &format!(
                    "SELECT {LISTED_COLUMNS}, o.name AS organization_name, {UNNAMED_EDITORS},
                            {associated}
                     FROM credentials c
                     JOIN organizations o ON o.id = c.organization_id
                     WHERE {{filter}}
                     ORDER BY lower(c.name) {direction}, c.id {direction}",
                    associated = associated(query.kind),
                    direction = if query.descending { "DESC" } else { "ASC" },
                ),
                &[],
            )
            .typed::<ListedSql>()
            .load::<Listed>(conn)?;
        Ok(rows.into_iter().map(Arc::new).collect())
    }

    /// One credential of `kind` inside `scope`, with its names; `NotFound` otherwise.
    pub fn find_listed(
        conn: &mut PgConnection,
        scope: &Scope,
        kind: Kind,
        id: CredentialId,
    ) -> QueryResult<Listed> {
        let mut filter = Filter::scoped("c", kind, scope);
        filter.and("c.id = ?", Bind::Int(id.0));
        filter
            .query(
                &format!(
                    "SELECT {CREDENTIAL_COLUMNS}, o.name AS organization_name,
                            cu.email AS created_by_label,
                            uu.email AS updated_by_label, {associated}
                     FROM credentials c
                     JOIN organizations o ON o.id = c.organization_id
                     LEFT JOIN users cu ON cu.id = c.created_by
                     LEFT JOIN users uu ON uu.id = c.updated_by
                     WHERE {{filter}}",
                    associated = associated(kind),
                ),
                &[],
            )
            .typed::<ListedSql>()
            .get_result(conn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_sort_keys_have_no_expression() {
        assert!(sort_expression(Kind::Backup, "name; DROP TABLE users").is_none());
        assert_eq!(
            sort_expression(Kind::Backup, "endpoint").unwrap(),
            "lower(c.public->>'endpoint')"
        );
        assert!(sort_expression(Kind::Ai, "endpoint").is_none());
    }
}
