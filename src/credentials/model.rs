//! Credential rows and the queries over them. Every read takes the caller's `Scope`; secrets
//! are sealed field by field before they reach the database and opened only for verification
//! and use.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, Utc};
use diesel::deserialize::{self, FromSql, FromSqlRow};
use diesel::pg::{Pg, PgValue};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Jsonb, Nullable, Text};
use diesel_derive_newtype::DieselNewType;
use serde::{Deserialize, Serialize};

use crate::accounts::model::{Organization, OrganizationId, UserId};
use crate::auth::Scope;
use crate::credentials::field::Values;
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::verify::{Outcome, VerifyState};
use crate::crypto::{Keyring, Sealed};
use crate::db::{Bind, Prepared, Tables};
use crate::error::AppError;
use crate::schema::{credentials, organizations};
use crate::web::form::{Choice, Pagination};

/// Id of a credential.
#[derive(DieselNewType, Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CredentialId(pub i64);

impl std::fmt::Display for CredentialId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A stored credential (its secrets still sealed).
#[derive(Queryable, Selectable, QueryableByName, Debug, Clone)]
#[diesel(table_name = credentials)]
pub struct Credential {
    pub id: CredentialId,
    pub organization_id: OrganizationId,
    pub kind: Kind,
    pub provider: String,
    pub name: String,
    pub public: Fields,
    pub secrets: serde_json::Value,
    pub key_id: String,
    pub is_default: bool,
    pub is_locked: bool,
    pub expires_on: Option<NaiveDate>,
    pub verified_at: Option<DateTime<Utc>>,
    pub verify_ok: Option<bool>,
    pub verify_message: Option<String>,
    pub verify_state: Option<VerifyState>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<UserId>,
}

/// A credential's public fields (its `public` object) as text by key, decoded from the row
/// without a `serde_json::Value` tree for each (a page decodes fifty). A value that is not
/// text reads as empty, as it always did.
#[derive(FromSqlRow, Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The value of `key`, if the object has it.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(field, _)| field == key)
            .map(|(_, value)| value.as_str())
    }

    /// Every field and its value, in the order stored.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl FromSql<Jsonb, Pg> for Fields {
    fn from_sql(value: PgValue<'_>) -> deserialize::Result<Self> {
        // jsonb's binary form: a version byte (1), then the JSON text.
        // A value that is not an object has no fields (nothing stores one; a page must not
        // fail on it).
        match value.as_bytes().split_first() {
            Some((1, json)) => Ok(serde_json::from_slice(json).unwrap_or_default()),
            _ => Err("unsupported jsonb format".into()),
        }
    }
}

impl<'de> Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Object;
        impl<'de> serde::de::Visitor<'de> for Object {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of public fields")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Fields, M::Error> {
                let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((key, JsonText(value))) = map.next_entry::<String, JsonText>()? {
                    fields.push((key, value));
                }
                Ok(Fields(fields))
            }
        }
        deserializer.deserialize_map(Object)
    }
}

/// A JSON value as text: a string's own text, anything else empty.
struct JsonText(String);

impl<'de> Deserialize<'de> for JsonText {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => Ok(JsonText(text)),
            _ => Ok(JsonText(String::new())),
        }
    }
}

/// The SQL types of a credential's columns, in `Credential`'s order.
type CredentialSql = diesel::dsl::SqlTypeOf<<Credential as Selectable<Pg>>::SelectExpression>;

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
type ListedSql = (
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

/// The column of listing queries that names the projects using a credential of `kind`: those
/// whose column of the kind (`KindSpec::used_by`, indexed) holds its id. The names are sorted
/// by `Listed::projects`: an ordered aggregate would set up a sort for each row of a page, used
/// by a project or not.
fn associated(kind: Kind) -> String {
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
const CREDENTIAL_COLUMNS: &str = credential_columns!("c.secrets");

/// The columns of a listed credential: all but its sealed secrets, which a page never needs
/// (they are read only where a credential is verified or used), so its rows carry an empty map.
const LISTED_COLUMNS: &str = credential_columns!("'{}'::jsonb");

/// Who created and changed a listed credential: only its details show them (`find_listed`).
const UNNAMED_EDITORS: &str = "NULL::text AS created_by_label, NULL::text AS updated_by_label";

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
pub struct ListPage {
    pub rows: Vec<Arc<Listed>>,
    pub total: Total,
}

/// A row of a page and, when the page was not searched, the tab's total.
#[derive(Queryable)]
struct PageRow {
    listed: Listed,
    total: Option<i64>,
}

#[derive(QueryableByName)]
struct CountRow {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// The WHERE clause of a listing, holding only the filters that apply (a query the planner can
/// fit to an index, rather than `$n IS NULL OR …` for every filter), with its values.
#[derive(Clone)]
struct Filter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

impl Filter {
    fn new() -> Filter {
        Filter {
            clauses: Vec::new(),
            binds: Vec::new(),
        }
    }

    /// Rows of `kind` (in `table`, an alias with `kind` and `organization_id` columns, its
    /// organization joined as `o`) inside `scope`.
    fn scoped(table: &str, kind: Kind, scope: &Scope) -> Filter {
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
    fn listing(table: &str, scope: &Scope, query: &ListQuery) -> Filter {
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
    fn and(&mut self, clause: impl Into<String>, value: Bind) {
        self.clauses.push(clause.into());
        self.binds.push(value);
    }

    fn sql(&self) -> String {
        self.clauses.join(" AND ")
    }

    /// `sql` (with this filter's text where it says `{filter}`, and `?` for each value) bound
    /// to this filter's values, then `extra`.
    fn query(&self, sql: &str, extra: &[i64]) -> Prepared {
        let mut binds = self.binds.clone();
        binds.extend(extra.iter().map(|value| Bind::Int(*value)));
        Prepared::new(&sql.replace("{filter}", &self.sql()), binds)
    }
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

/// `%term%` for LIKE, with the term's own wildcards escaped.
fn like_pattern(term: &str) -> String {
    let escaped = term
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// A credential as a choice in a project form.
#[derive(Queryable, Debug, Clone)]
pub struct CredentialOption {
    pub id: CredentialId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub provider: String,
    pub is_default: bool,
}

impl CredentialOption {
    /// The choices of a credential select: none, then each option; `chosen` or else the
    /// default of `organization` is selected (the default is pre-selected, SPEC §2).
    pub fn choices(
        options: &[CredentialOption],
        organizations: &[Organization],
        organization: Option<OrganizationId>,
        chosen: &str,
        with_organization: bool,
        none: &str,
    ) -> Vec<Choice> {
        let preselect = if chosen.is_empty() {
            options
                .iter()
                .find(|o| o.is_default && Some(o.organization_id) == organization)
                .map(|o| o.id.to_string())
                .unwrap_or_default()
        } else {
            chosen.to_string()
        };
        let mut choices = vec![Choice {
            value: String::new(),
            label: none.to_string(),
            selected: preselect.is_empty(),
        }];
        for option in options {
            let organization_name = organizations
                .iter()
                .find(|o| o.id == option.organization_id)
                .map_or("", |o| o.name.as_str());
            let mut label = option.name.clone();
            if option.is_default {
                label.push_str(" (default)");
            }
            if with_organization {
                label = format!("{label} — {organization_name}");
            }
            choices.push(Choice {
                value: option.id.to_string(),
                label,
                selected: option.id.to_string() == preselect,
            });
        }
        choices
    }
}

/// A credential about to be created.
pub struct NewCredential<'a> {
    pub organization_id: OrganizationId,
    pub organization_name: &'a str,
    pub provider: &'static Provider,
    pub name: &'a str,
    pub public: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub expires_on: Option<NaiveDate>,
    /// What the check before saving found (it passed).
    pub verification: Outcome,
    pub created_by: UserId,
}

/// Changes to a credential; secrets absent from `secrets` stay as they are.
pub struct CredentialChanges<'a> {
    pub name: &'a str,
    pub public: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, String>,
    pub expires_on: Option<NaiveDate>,
    /// What the check before saving found; `None` keeps the last verification.
    pub verification: Option<Outcome>,
    pub updated_by: UserId,
    /// The version the edit form showed: a newer row means someone saved in between.
    pub version: i32,
}

fn search_text(name: &str, organization: &str, public: &BTreeMap<String, String>) -> String {
    let mut text = format!("{name} {organization}");
    for value in public.values() {
        text.push(' ');
        text.push_str(value);
    }
    text.to_lowercase()
}

/// Associated data binding a sealed field to its organization, credential and field.
fn context(organization: OrganizationId, id: CredentialId, field: &str) -> String {
    format!("org/{organization}/credential/{id}/{field}")
}

/// Why a credential could not be stored: a query failed, or its secrets could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("sealing failed: {0:#}")]
    Sealing(anyhow::Error),
}

/// A credential's secrets sealed for it, field by field, and the key that sealed them.
struct SealedSecrets {
    fields: serde_json::Map<String, serde_json::Value>,
    key_id: String,
}

impl SealedSecrets {
    /// Seals `secrets` of credential `id` of `organization` under the active key.
    fn seal(
        keyring: &Keyring,
        organization: OrganizationId,
        id: CredentialId,
        secrets: &BTreeMap<String, String>,
    ) -> anyhow::Result<SealedSecrets> {
        let fields = secrets
            .iter()
            .map(|(field, value)| {
                let sealed = keyring.seal(value.as_bytes(), &context(organization, id, field))?;
                Ok((
                    field.clone(),
                    serde_json::Value::String(BASE64.encode(sealed.bytes)),
                ))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(SealedSecrets {
            fields,
            key_id: keyring.active_id().to_string(),
        })
    }
}

/// Public fields as the `public` object.
fn public_object(public: &BTreeMap<String, String>) -> serde_json::Value {
    serde_json::Value::Object(
        public
            .iter()
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect(),
    )
}

/// How a list page is cut from its tab: order, direction, size and offset.
struct Page {
    order: String,
    direction: &'static str,
    limit: i64,
    offset: i64,
    kind: Kind,
}

impl Page {
    fn new(query: &ListQuery) -> Page {
        Page {
            order: sort_expression(query.kind, &query.sort)
                .unwrap_or_else(|| "lower(c.name)".into()),
            direction: if query.descending { "DESC" } else { "ASC" },
            limit: query.pagination.per_page,
            offset: query.pagination.offset(),
            kind: query.kind,
        }
    }

    /// `LIMIT 50`, and ` OFFSET ?` past the first page (its value bound last).
    fn limit(&self) -> String {
        let offset = if self.offset > 0 { " OFFSET ?" } else { "" };
        format!("LIMIT {}{offset}", self.limit)
    }

    /// The page's rows, walking the tab in its order (by index where one fits), with `total`
    /// computed beside them. On the first page the projects using a row are looked up for its
    /// rows only (PostgreSQL evaluates a subquery of the select list past the sort and the
    /// limit); past it, an offset would have them looked up for every row skipped too, so the
    /// page's ids are walked first and its rows joined to them.
    fn walk(&self, filter: &str, total: &str) -> String {
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
    fn sorted(&self, with: &str, total: &str) -> String {
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
    fn rows_of(&self, with: &str, ids: &str, total: &str) -> String {
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
    fn load(
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

impl Credential {
    pub fn provider(&self) -> Option<&'static Provider> {
        crate::credentials::provider::find(self.kind, Some(&self.provider))
    }

    /// A public field's value.
    pub fn public_value(&self, key: &str) -> &str {
        self.public.get(key).unwrap_or("")
    }

    /// The public fields as form values.
    pub fn public_values(&self) -> Values {
        let mut values = Values::default();
        for (key, value) in self.public.iter() {
            values.set(key, value);
        }
        values
    }

    /// Opens every secret field (for verification and use only; never for display).
    pub fn open_secrets(&self, keyring: &Keyring) -> anyhow::Result<BTreeMap<String, String>> {
        let mut opened = BTreeMap::new();
        for (field, value) in self.secrets.as_object().into_iter().flatten() {
            let bytes = BASE64.decode(value.as_str().unwrap_or_default())?;
            let sealed = Sealed {
                key_id: self.key_id.clone(),
                bytes,
            };
            let plain = keyring.open(&sealed, &context(self.organization_id, self.id, field))?;
            opened.insert(field.clone(), String::from_utf8(plain)?);
        }
        Ok(opened)
    }

    /// Public and secret values together, as the verifiers take them.
    pub fn all_values(&self, keyring: &Keyring) -> anyhow::Result<Values> {
        let mut values = self.public_values();
        for (key, value) in self.open_secrets(keyring)? {
            values.set(&key, value);
        }
        Ok(values)
    }

    /// What its last verification found; `None` before the first. A row whose pass or failure
    /// disagrees with its state was verified by a version that did not write the state: its
    /// pass or failure holds.
    pub fn verification(&self) -> Option<VerifyState> {
        Some(match (self.verify_ok?, self.verify_state) {
            (false, _) => VerifyState::Failed,
            (true, Some(VerifyState::Warning)) => VerifyState::Warning,
            (true, _) => VerifyState::Ok,
        })
    }

    /// Whether the credential's expiry date has passed.
    pub fn expired(&self) -> bool {
        self.expires_on
            .is_some_and(|date| date < Utc::now().date_naive())
    }

    /// Whether the credential expires within 14 days (or has).
    pub fn expires_soon(&self) -> bool {
        self.expires_on
            .is_some_and(|date| date <= Utc::now().date_naive() + chrono::Days::new(14))
    }

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
    ) -> QueryResult<ListPage> {
        // The same filter over credentials (c) for the page and over the kept totals (t).
        let mut rows = Filter::listing("c", scope, query);
        let totals = Filter::listing("t", scope, query);
        let page = Page::new(query);
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
            return Ok(ListPage {
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
            return Ok(ListPage {
                rows: found,
                total: Total::Exact(counted),
            });
        }
        // Its plan depends on the term, so the term is left visible to the planner here.
        rows.and("c.search_text LIKE ?", pattern);
        let (rows_found, _) = page.load(conn, &page.walk(&rows.sql(), "NULL"), rows.binds)?;
        Ok(ListPage {
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

    /// One credential of `kind` inside `scope`, locked for update; `NotFound` otherwise.
    pub fn find_for_update(
        conn: &mut PgConnection,
        scope: &Scope,
        kind: Kind,
        id: CredentialId,
    ) -> QueryResult<Credential> {
        credentials::table
            .filter(credentials::id.eq(id))
            .filter(credentials::kind.eq(kind))
            .filter(credentials::organization_id.eq_any(scope.organization_ids()))
            .select(Credential::as_select())
            .for_update()
            .first(conn)
    }

    /// The unlocked credentials of `kind` inside `scope`, defaults first: what project forms
    /// may choose (locked ones are not selectable).
    pub fn options(
        conn: &mut PgConnection,
        scope: &Scope,
        kind: Kind,
    ) -> QueryResult<Vec<CredentialOption>> {
        credentials::table
            .filter(credentials::kind.eq(kind))
            .filter(credentials::is_locked.eq(false))
            .filter(credentials::organization_id.eq_any(scope.organization_ids()))
            .order((credentials::is_default.desc(), credentials::name))
            .select((
                credentials::id,
                credentials::organization_id,
                credentials::name,
                credentials::provider,
                credentials::is_default,
            ))
            .load(conn)
    }

    /// A credential by id, unscoped (for the backup runner, which acts for everyone).
    pub fn find_any(conn: &mut PgConnection, id: CredentialId) -> QueryResult<Credential> {
        credentials::table
            .find(id)
            .select(Credential::as_select())
            .first(conn)
    }

    /// Creates a credential with its secrets sealed under the active key (for its id, drawn
    /// first).
    pub fn create(
        conn: &mut PgConnection,
        keyring: &Keyring,
        new: &NewCredential<'_>,
    ) -> Result<Credential, StoreError> {
        let id: i64 = diesel::select(diesel::dsl::sql::<BigInt>("nextval('credentials_id_seq')"))
            .get_result(conn)?;
        let id = CredentialId(id);
        let secrets = SealedSecrets::seal(keyring, new.organization_id, id, &new.secrets)
            .map_err(StoreError::Sealing)?;
        Ok(diesel::insert_into(credentials::table)
            .values((
                credentials::id.eq(id),
                credentials::organization_id.eq(new.organization_id),
                credentials::kind.eq(new.provider.kind),
                credentials::provider.eq(new.provider.key),
                credentials::name.eq(new.name),
                credentials::public.eq(public_object(&new.public)),
                credentials::secrets.eq(serde_json::Value::Object(secrets.fields)),
                credentials::key_id.eq(secrets.key_id),
                credentials::search_text.eq(search_text(
                    new.name,
                    new.organization_name,
                    &new.public,
                )),
                credentials::expires_on.eq(new.expires_on),
                credentials::verified_at.eq(Some(Utc::now())),
                credentials::verify_ok.eq(Some(new.verification.passed())),
                credentials::verify_message.eq(Some(new.verification.message())),
                credentials::verify_state.eq(Some(new.verification.state())),
                credentials::created_by.eq(Some(new.created_by)),
                credentials::updated_by.eq(Some(new.created_by)),
            ))
            .returning(Credential::as_returning())
            .get_result(conn)?)
    }

    /// Applies an edit made to `changes.version`, sealing every secret again (so the row is all
    /// under the active key afterwards); `None` if the row has another version now.
    pub fn update(
        &self,
        conn: &mut PgConnection,
        keyring: &Keyring,
        organization_name: &str,
        changes: &CredentialChanges<'_>,
    ) -> Result<Option<Credential>, StoreError> {
        let mut secrets = self.open_secrets(keyring).map_err(StoreError::Sealing)?;
        secrets.extend(changes.secrets.clone());
        let sealed = SealedSecrets::seal(keyring, self.organization_id, self.id, &secrets)
            .map_err(StoreError::Sealing)?;
        let target = credentials::table
            .filter(credentials::id.eq(self.id))
            .filter(credentials::version.eq(changes.version));
        let (verified_at, verify_ok, verify_message, verify_state) = match &changes.verification {
            Some(outcome) => (
                Some(Utc::now()),
                Some(outcome.passed()),
                Some(outcome.message().to_string()),
                Some(outcome.state()),
            ),
            None => (
                self.verified_at,
                self.verify_ok,
                self.verify_message.clone(),
                self.verify_state,
            ),
        };
        Ok(diesel::update(target)
            .set((
                credentials::name.eq(changes.name),
                credentials::public.eq(public_object(&changes.public)),
                credentials::secrets.eq(serde_json::Value::Object(sealed.fields)),
                credentials::key_id.eq(sealed.key_id),
                credentials::search_text.eq(search_text(
                    changes.name,
                    organization_name,
                    &changes.public,
                )),
                credentials::expires_on.eq(changes.expires_on),
                credentials::verified_at.eq(verified_at),
                credentials::verify_ok.eq(verify_ok),
                credentials::verify_message.eq(verify_message),
                credentials::verify_state.eq(verify_state),
                credentials::version.eq(changes.version + 1),
                credentials::updated_at.eq(Utc::now()),
                credentials::updated_by.eq(Some(changes.updated_by)),
            ))
            .returning(Credential::as_returning())
            .get_result(conn)
            .optional()?)
    }

    /// Locks or unlocks.
    pub fn set_locked(&self, conn: &mut PgConnection, locked: bool, by: UserId) -> QueryResult<()> {
        diesel::update(credentials::table.find(self.id))
            .set((
                credentials::is_locked.eq(locked),
                credentials::version.eq(credentials::version + 1),
                credentials::updated_at.eq(Utc::now()),
                credentials::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Makes this the default of its organization and kind (and provider, for cloud), clearing
    /// the previous default in the same transaction.
    pub fn make_default(&self, conn: &mut PgConnection, by: UserId) -> QueryResult<()> {
        // Serializes default changes of one organization (two instances, two clicks).
        organizations::table
            .find(self.organization_id)
            .select(organizations::id)
            .for_update()
            .first::<OrganizationId>(conn)?;
        let siblings = credentials::table
            .filter(credentials::organization_id.eq(self.organization_id))
            .filter(credentials::kind.eq(&self.kind))
            .filter(credentials::is_default.eq(true))
            .into_boxed();
        let siblings = if self.kind.spec().by_provider {
            siblings.filter(credentials::provider.eq(&self.provider))
        } else {
            siblings
        };
        let previous: Vec<CredentialId> = siblings.select(credentials::id).load(conn)?;
        diesel::update(credentials::table.filter(credentials::id.eq_any(&previous)))
            .set((
                credentials::is_default.eq(false),
                credentials::version.eq(credentials::version + 1),
            ))
            .execute(conn)?;
        diesel::update(credentials::table.find(self.id))
            .set((
                credentials::is_default.eq(true),
                credentials::version.eq(credentials::version + 1),
                credentials::updated_at.eq(Utc::now()),
                credentials::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Claims up to `limit` unlocked credentials last checked more than `every` ago (or never),
    /// oldest first, by moving their check time to now; the rows are skipped by a concurrent
    /// claim (`FOR UPDATE SKIP LOCKED`), so each is checked by one instance.
    pub fn claim_reverification(
        conn: &mut PgConnection,
        every: std::time::Duration,
        limit: i64,
    ) -> QueryResult<Vec<Credential>> {
        let cutoff = Utc::now() - chrono::Duration::from_std(every).unwrap_or_default();
        conn.transaction(|conn| {
            let ids: Vec<CredentialId> = credentials::table
                .filter(credentials::is_locked.eq(false))
                .filter(
                    credentials::verified_at
                        .lt(cutoff)
                        .or(credentials::verified_at.is_null()),
                )
                .order(credentials::verified_at.asc().nulls_first())
                .limit(limit)
                .select(credentials::id)
                .for_update()
                .skip_locked()
                .load(conn)?;
            diesel::update(credentials::table.filter(credentials::id.eq_any(&ids)))
                .set(credentials::verified_at.eq(Some(Utc::now())))
                .execute(conn)?;
            credentials::table
                .filter(credentials::id.eq_any(&ids))
                .select(Credential::as_select())
                .load(conn)
        })
    }

    /// Stores the result of a verification.
    pub fn record_verification(
        &self,
        conn: &mut PgConnection,
        outcome: &Outcome,
    ) -> QueryResult<()> {
        diesel::update(credentials::table.find(self.id))
            .set((
                credentials::verified_at.eq(Some(Utc::now())),
                credentials::verify_ok.eq(Some(outcome.passed())),
                credentials::verify_message.eq(Some(outcome.message())),
                credentials::verify_state.eq(Some(outcome.state())),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Names of the projects using this credential (by the column of its kind,
    /// `KindSpec::used_by`), in name order.
    pub fn projects_using(&self, conn: &mut PgConnection) -> QueryResult<Vec<String>> {
        #[derive(QueryableByName)]
        struct ProjectName {
            #[diesel(sql_type = Text)]
            name: String,
        }
        let Some(column) = self.kind.spec().used_by else {
            return Ok(Vec::new());
        };
        let names = diesel::sql_query(format!(
            "SELECT name FROM projects WHERE {column} = $1 ORDER BY name"
        ))
        .bind::<BigInt, _>(self.id.0)
        .load::<ProjectName>(conn)?;
        Ok(names.into_iter().map(|row| row.name).collect())
    }

    /// Deletes the credential (the service checks first that nothing uses it; the foreign
    /// keys refuse a race).
    pub fn delete(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::delete(credentials::table.find(self.id)).execute(conn)?;
        Ok(())
    }

    /// Whether a credential of this kind and name exists in the organization (other than `except`).
    pub fn name_taken(
        conn: &mut PgConnection,
        organization: OrganizationId,
        kind: Kind,
        name: &str,
        except: Option<CredentialId>,
    ) -> QueryResult<bool> {
        let query = credentials::table
            .filter(credentials::organization_id.eq(organization))
            .filter(credentials::kind.eq(kind))
            .filter(credentials::name.eq(name))
            .select(credentials::id)
            .into_boxed();
        let query = match except {
            Some(id) => query.filter(credentials::id.ne(id)),
            None => query,
        };
        Ok(query.first::<CredentialId>(conn).optional()?.is_some())
    }

    /// Re-seals up to `batch` credentials not yet under the active key; returns how many.
    pub fn reseal_batch(
        conn: &mut PgConnection,
        keyring: &Keyring,
        batch: i64,
    ) -> Result<usize, AppError> {
        conn.transaction(|conn| {
            let rows: Vec<Credential> = credentials::table
                .filter(credentials::key_id.ne(keyring.active_id()))
                .select(Credential::as_select())
                .order(credentials::id)
                .limit(batch)
                .for_update()
                .skip_locked()
                .load(conn)?;
            for row in &rows {
                let secrets = row.open_secrets(keyring).map_err(AppError::Internal)?;
                let sealed = SealedSecrets::seal(keyring, row.organization_id, row.id, &secrets)
                    .map_err(AppError::Internal)?;
                diesel::update(credentials::table.find(row.id))
                    .set((
                        credentials::secrets.eq(serde_json::Value::Object(sealed.fields)),
                        credentials::key_id.eq(sealed.key_id),
                    ))
                    .execute(conn)?;
            }
            Ok(rows.len())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_fields_read_as_text() {
        let fields: Fields =
            serde_json::from_str(r#"{"region":"eu-1","port":5,"tags":["a"],"empty":null}"#)
                .unwrap();
        assert_eq!(fields.get("region"), Some("eu-1"));
        assert_eq!(fields.get("port"), Some(""), "not text reads as empty");
        assert_eq!(fields.get("tags"), Some(""));
        assert_eq!(fields.get("empty"), Some(""));
        assert_eq!(fields.get("missing"), None);
        assert_eq!(fields.iter().count(), 4);
        assert!(serde_json::from_str::<Fields>("[]").is_err());
    }

    #[test]
    fn search_wildcards_are_escaped() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

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
