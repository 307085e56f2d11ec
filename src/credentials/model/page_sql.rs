//! The SQL of a tab's page: the columns it selects, its filter (only the filters that apply,
//! their values bound), and how its rows are walked, sorted and cut from the tab.

use std::sync::Arc;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable};

use super::listing::{ListQuery, Listed, ListedSql, sort_expression};
use crate::access::Scope;
use crate::credentials::provider::Kind;
use crate::db::{Bind, Prepared};

/// The column of listing queries that names the projects using a credential of `kind`: those
/// whose column of the kind (`KindSpec::used_by`, indexed) holds its id. The names are sorted
/// by `Listed::projects`: an ordered aggregate would set up a sort for each row of a page, used
/// by a project or not.
pub(super) fn associated(kind: Kind) -> String {
    match kind.spec().used_by {
        Some(column) => format!(
            "(SELECT string_agg(p.name, E'\\n') FROM projects p WHERE p.{column} = c.id)
             AS associated_projects"
        ),
        None => "NULL::text AS associated_projects".into(),
    }
}

/// A credential's columns, named (a prepared `SELECT c.*` would fail once a later migration adds
/// a column while this version still runs), with `secrets` standing for its sealed secrets.
macro_rules! credential_columns {
    ($secrets:literal) => {
        concat!(
            "c.id, c.organization_id, c.kind, c.provider, c.name, c.public, ",
            $secrets,
            " AS secrets, c.key_id, c.is_default, c.is_locked, c.expires_on, c.verified_at,
             c.verify_ok, c.verify_message, c.verify_state, c.version, c.created_at, c.created_by,
             c.updated_at, c.updated_by"
        )
    };
}

/// The columns of a credential that will be verified or used.
pub(super) const CREDENTIAL_COLUMNS: &str = credential_columns!("c.secrets");

/// The columns of a listed credential: all but its sealed secrets, which a page never needs
/// (they are read only where a credential is verified or used), so its rows carry an empty map.
pub(super) const LISTED_COLUMNS: &str = credential_columns!("'{}'::jsonb");

/// Who created and changed a listed credential: only its details show them (`find_listed`).
pub(super) const UNNAMED_EDITORS: &str =
    "NULL::text AS created_by_label, NULL::text AS updated_by_label";

/// A row of a page and, when the page was not searched, the tab's total.
#[derive(Queryable)]
struct PageRow {
    listed: Listed,
    total: Option<i64>,
}

#[derive(QueryableByName)]
pub(super) struct CountRow {
    #[diesel(sql_type = BigInt)]
    pub(super) n: i64,
}

/// The WHERE clause of a listing, holding only the filters that apply (a query the planner can
/// fit to an index, rather than `$n IS NULL OR …` for every filter), with its values.
#[derive(Clone)]
pub(super) struct Filter {
    pub(super) clauses: Vec<String>,
    pub(super) binds: Vec<Bind>,
}

impl Filter {
    pub(super) fn new() -> Filter {
        Filter {
            clauses: Vec::new(),
            binds: Vec::new(),
        }
    }

    /// Rows of `kind` (in `table`, an alias with `kind` and `organization_id` columns, its
    /// organization joined as `o`) inside `scope`.
    pub(super) fn scoped(table: &str, kind: Kind, scope: &Scope) -> Filter {
        let mut filter = Filter::new();
        filter.and(
            format!("{table}.kind = (SELECT ?)"),
            Bind::Text(kind.key().into()),
        );
        let (condition, value) = scope.condition(&format!("{table}.organization_id"));
        filter.and(condition, value);
        filter
    }

    /// What `query` lists of `scope` (kind, organization and provider), over `table`.
    pub(super) fn listing(table: &str, scope: &Scope, query: &ListQuery) -> Filter {
        let mut filter = Filter::scoped(table, query.kind, scope);
        if let Some(organization) = query.organization {
            filter.and(
                format!("{table}.organization_id = (SELECT ?)"),
                Bind::Int(organization.0),
            );
        }
        if let Some(provider) = query.provider {
            filter.and(
                format!("{table}.provider = (SELECT ?)"),
                Bind::Text(provider.into()),
            );
        }
        filter
    }

    /// Adds `clause`, in which `?` stands for `value`.
    pub(super) fn and(&mut self, clause: impl Into<String>, value: Bind) {
        self.clauses.push(clause.into());
        self.binds.push(value);
    }

    pub(super) fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    /// `sql` (with this filter's text where it says `{filter}`, and `?` for each value) bound
    /// to this filter's values, then `extra`.
    pub(super) fn query(&self, sql: &str, extra: &[i64]) -> Prepared {
        let mut binds = self.binds.clone();
        binds.extend(extra.iter().map(|value| Bind::Int(*value)));
        Prepared::new(&sql.replace("{filter}", &self.sql()), binds)
    }
}

/// How a list page is cut from its tab: order, direction, size and offset.
pub(super) struct PageSql {
    pub(super) order: String,
    pub(super) direction: &'static str,
    pub(super) limit: i64,
    pub(super) offset: i64,
    pub(super) kind: Kind,
}

impl PageSql {
    pub(super) fn new(query: &ListQuery) -> PageSql {
        PageSql {
            order: sort_expression(query.kind, &query.sort)
                .unwrap_or_else(|| "lower(c.name)".into()),
            direction: if query.descending { "DESC" } else { "ASC" },
            limit: query.pagination.per_page,
            offset: query.pagination.offset(),
            kind: query.kind,
        }
    }

    /// `LIMIT 50`, and ` OFFSET ?` past the first page (its value bound last).
    pub(super) fn limit(&self) -> String {
        let offset = if self.offset > 0 { " OFFSET ?" } else { "" };
        format!("LIMIT {}{offset}", self.limit)
    }

    /// The page's rows, walking the tab in its order (by index where one fits), with `total`
    /// computed beside them. On the first page the projects using a row are looked up for its
    /// rows only (PostgreSQL evaluates a subquery of the select list past the sort and the
    /// limit); past it, an offset would have them looked up for every row skipped too, so the
    /// page's ids are walked first and its rows joined to them.
    pub(super) fn walk(&self, filter: &str, total: &str) -> String {
        if self.offset > 0 {
            let ids = format!(
                "SELECT c.id, o.name AS organization_name, {order} AS sort_value
                 FROM credentials c
                 JOIN organizations o ON o.id = c.organization_id
                 WHERE {filter}
                 ORDER BY {order} {direction} NULLS LAST, c.id {direction}
                 {limit}",
                order = self.order,
                direction = self.direction,
                limit = self.limit(),
            );
            return self.rows_of("", &ids, total);
        }
        format!(
            "SELECT {LISTED_COLUMNS}, o.name AS organization_name, {UNNAMED_EDITORS},
                    {associated}, {total}::bigint AS total
             FROM credentials c
             JOIN organizations o ON o.id = c.organization_id
             WHERE {filter}
             ORDER BY {order} {direction} NULLS LAST, c.id {direction}
             {limit}",
            associated = associated(self.kind),
            order = self.order,
            direction = self.direction,
            limit = self.limit(),
        )
    }

    /// The page's rows, sorting the rows `with` gathers as `matches` (id, organization_name,
    /// sort_value), with `total` computed beside them.
    pub(super) fn sorted(&self, with: &str, total: &str) -> String {
        let ids = format!(
            "SELECT * FROM matches
             ORDER BY sort_value {direction} NULLS LAST, id {direction} {limit}",
            direction = self.direction,
            limit = self.limit(),
        );
        self.rows_of(with, &ids, total)
    }

    /// The rows of the page whose ids (with organization_name and sort_value) `ids` selects,
    /// after `with`, in its order, with `total` computed beside them.
    pub(super) fn rows_of(&self, with: &str, ids: &str, total: &str) -> String {
        format!(
            "{with}
             SELECT {LISTED_COLUMNS}, page.organization_name, {UNNAMED_EDITORS},
                    {associated}, {total}::bigint AS total
             FROM ({ids}) page
             JOIN credentials c ON c.id = page.id
             ORDER BY page.sort_value {direction} NULLS LAST, c.id {direction}",
            associated = associated(self.kind),
            direction = self.direction,
        )
    }

    /// Loads a page written by `walk` or `sorted`, and the total its rows carry (`None` when the
    /// page is empty).
    pub(super) fn load(
        &self,
        conn: &mut PgConnection,
        sql: &str,
        mut binds: Vec<Bind>,
    ) -> QueryResult<(Vec<Arc<Listed>>, Option<i64>)> {
        if self.offset > 0 {
            binds.push(Bind::Int(self.offset));
        }
        let rows = Prepared::new(sql, binds)
            .typed::<(ListedSql, Nullable<BigInt>)>()
            .load::<PageRow>(conn)?;
        let total = rows.first().and_then(|row| row.total);
        let listed = rows.into_iter().map(|row| Arc::new(row.listed)).collect();
        Ok((listed, total))
    }
}
