//! The Credentials area: one set of handlers for all five tabs, driven by the provider
//! registry. Plain form posts answer 303 with a flash message; htmx requests get the fragment
//! that changed (a row, the table, a verification result).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::accounts::model::{Organization, OrganizationId};
use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Role};
use crate::credentials::model::{
    Credential, CredentialChanges, CredentialId, ListQuery, Listed, NewCredential, Total,
    sort_expression,
};
use crate::credentials::provider::{
    self, Column, Field, Input, Kind, Provider, Value, Values, check_field, check_name,
};
use crate::credentials::search_index::{AnsweredBy, Indexed};
use crate::credentials::verify::{self, Outcome};
use crate::db;
use crate::error::AppError;
use crate::page_cache::Tables;
use crate::startup::AppState;
use crate::web::form::{FieldErrors, Pagination};
use crate::web::{
    Flash, Page, client_ip, flash, html, html_with_status, is_htmx, see_other, utc_minute,
};

const PER_PAGE: i64 = 50;

/// Opens a tab for `user`: Users never, Billing only for Partners.
fn authorize(user: &CurrentUser, kind: &str) -> Result<Kind, AppError> {
    user.require(&[Role::Partner, Role::Manager])?;
    let kind = Kind::parse(kind).ok_or(AppError::NotFound)?;
    if kind.partner_only() && user.role() != Role::Partner {
        return Err(AppError::Forbidden);
    }
    Ok(kind)
}

/// The tabs this person sees.
fn tabs(user: &CurrentUser) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|kind| !kind.partner_only() || user.role() == Role::Partner)
        .collect()
}

/// GET /credentials
pub async fn index(user: CurrentUser) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner, Role::Manager])?;
    Ok(see_other("/credentials/cloud"))
}

/// The list's query string: search, filters, sort, page.
#[derive(Deserialize, Serialize, Default, Clone, Debug)]
pub struct ListParams {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    q: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    org: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sort: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<String>,
}

impl ListParams {
    fn parse(query: &str) -> ListParams {
        serde_urlencoded::from_str(query).unwrap_or_default()
    }

    fn to_query(&self) -> String {
        serde_urlencoded::to_string(self).unwrap_or_default()
    }

    fn text(value: &Option<String>) -> Option<&str> {
        value.as_deref().map(str::trim).filter(|v| !v.is_empty())
    }

    fn provider(&self, kind: Kind) -> Option<&'static Provider> {
        let key = ListParams::text(&self.provider)?;
        (kind == Kind::Cloud)
            .then(|| provider::find(kind, Some(key)))
            .flatten()
    }

    fn query(&self, kind: Kind, user: &CurrentUser) -> ListQuery {
        let organization = ListParams::text(&self.org)
            .filter(|_| user.role() == Role::Partner)
            .and_then(|org| org.parse().ok())
            .map(OrganizationId);
        let page = ListParams::text(&self.page).and_then(|page| page.parse::<i64>().ok());
        ListQuery {
            kind,
            organization,
            provider: self.provider(kind).map(|p| p.key),
            search: ListParams::text(&self.q)
                .map(|q| {
                    q.chars()
                        .filter(|c| !c.is_control())
                        .take(100)
                        .collect::<String>()
                })
                .filter(|q| !q.is_empty()),
            sort: ListParams::text(&self.sort).unwrap_or("name").to_string(),
            descending: ListParams::text(&self.dir) == Some("desc"),
            pagination: Pagination::new(page, PER_PAGE),
        }
    }

    /// This query with one parameter changed (for sort and page links).
    fn with(&self, key: &str, value: &str) -> String {
        let mut next = self.clone();
        let value = Some(value.to_string());
        match key {
            "sort" => next.sort = value,
            "dir" => next.dir = value,
            "page" => next.page = value,
            _ => {}
        }
        next.to_query()
    }
}

/// A column heading with its sort link.
pub struct ColumnView {
    pub label: &'static str,
    pub sort_url: Option<String>,
    /// `ascending`/`descending` when the table is sorted by this column.
    pub sorted: &'static str,
}

/// One cell: what it shows and how.
pub struct Cell<'a> {
    pub kind: &'static str,
    pub text: Cow<'a, str>,
}

/// A credential as a table row, borrowing what it shows from the listed row (a page builds
/// fifty of these: no copy of every name and value).
pub struct RowView<'a> {
    pub id: CredentialId,
    /// `/credentials/{kind}/{id}`, which its actions extend.
    pub path: String,
    pub name: &'a str,
    pub is_default: bool,
    pub is_locked: bool,
    pub has_default: bool,
    pub editable: bool,
    pub verify_state: &'static str,
    pub verify_message: &'a str,
    pub cells: Vec<Cell<'a>>,
    pub expires_soon: bool,
    /// Projects using it: while any do, it cannot be deleted.
    pub projects: Vec<&'a str>,
}

/// A multi-line value on one line.
fn one_line(text: &str) -> Cow<'_, str> {
    if text.contains('\n') {
        Cow::Owned(text.replace('\n', ", "))
    } else {
        Cow::Borrowed(text)
    }
}

impl<'a> RowView<'a> {
    pub fn in_use(&self) -> bool {
        !self.projects.is_empty()
    }

    pub fn projects_text(&self) -> String {
        self.projects.join(", ")
    }

    /// The action its lock button takes.
    pub fn lock_action(&self) -> &'static str {
        if self.is_locked { "unlock" } else { "lock" }
    }

    fn new(listed: &'a Listed, columns: &[Column]) -> RowView<'a> {
        let credential = &listed.credential;
        let provider = credential.provider();
        let cells = columns
            .iter()
            .map(|column| cell(listed, provider, column.value))
            .collect();
        let projects = listed.projects();
        let message = credential.verify_message.as_deref().unwrap_or_default();
        let (verify_state, verify_message) = match credential.verify_ok {
            None => ("never", "Not verified yet"),
            Some(false) => ("failed", message),
            Some(true) if message.contains("denied") || message.contains("only") => {
                ("warning", message)
            }
            Some(true) => ("ok", message),
        };
        RowView {
            id: credential.id,
            path: format!("/credentials/{}/{}", credential.kind, credential.id),
            name: &credential.name,
            is_default: credential.is_default,
            is_locked: credential.is_locked,
            has_default: credential.kind().has_default(),
            editable: provider.is_some_and(Provider::editable),
            verify_state,
            verify_message,
            cells,
            expires_soon: credential.expires_soon(),
            projects,
        }
    }
}

/// What an expanded row shows (`GET /credentials/{kind}/{id}`, loaded when a row is opened):
/// the provider's fields (secrets only as set, or by their last characters), associated
/// projects, who created and changed it, and the last verification.
fn details<'a>(listed: &'a Listed, row: &RowView<'a>) -> Vec<(&'static str, Cow<'a, str>)> {
    let credential = &listed.credential;
    let provider = credential.provider();
    let mut details: Vec<(&'static str, Cow<'a, str>)> = Vec::with_capacity(16);
    if let Some(provider) = provider {
        if credential.kind() == Kind::Cloud {
            details.push(("Provider", Cow::Borrowed(provider.label)));
        }
        for field in provider.fields {
            let value = if field.secret {
                match credential.public_value(&format!("{}_hint", field.key)) {
                    "" => Cow::Borrowed("set (hidden)"),
                    hint => Cow::Owned(format!("ends in {hint}")),
                }
            } else {
                one_line(credential.public_value(field.key))
            };
            if !value.is_empty() {
                details.push((field.label, value));
            }
        }
        for (label, key) in provider.columns {
            if provider.field(key).is_none() && !credential.public_value(key).is_empty() {
                details.push((label, Cow::Borrowed(credential.public_value(key))));
            }
        }
    }
    if let Some(date) = credential.expires_on {
        details.push(("Expires on", Cow::Owned(date.to_string())));
    }
    let projects = &row.projects;
    details.push((
        "Associated projects",
        if projects.is_empty() {
            Cow::Borrowed("none")
        } else {
            Cow::Owned(projects.join(", "))
        },
    ));
    details.push(("Created", Cow::Owned(utc_minute(credential.created_at))));
    details.push((
        "Created by",
        Cow::Borrowed(listed.created_by_label.as_deref().unwrap_or("—")),
    ));
    details.push((
        "Last modified",
        Cow::Owned(utc_minute(credential.updated_at)),
    ));
    details.push((
        "Last modified by",
        Cow::Borrowed(listed.updated_by_label.as_deref().unwrap_or("—")),
    ));
    if let Some(at) = credential.verified_at {
        details.push((
            "Last verified",
            Cow::Owned(format!("{} — {}", utc_minute(at), row.verify_message)),
        ));
    }
    details
}

fn cell<'a>(listed: &'a Listed, provider: Option<&'static Provider>, value: Value) -> Cell<'a> {
    let credential = &listed.credential;
    let borrowed = |kind: &'static str, text: &'a str| Cell {
        kind,
        text: Cow::Borrowed(text),
    };
    let owned = |kind: &'static str, text: String| Cell {
        kind,
        text: Cow::Owned(text),
    };
    match value {
        Value::Id => owned("text", credential.id.to_string()),
        Value::Name => borrowed("name", &credential.name),
        Value::Organization => borrowed("text", &listed.organization_name),
        Value::ProviderName => borrowed(
            "text",
            provider.map_or(credential.provider.as_str(), |p| p.label),
        ),
        Value::Public(key) => Cell {
            kind: "text",
            text: one_line(credential.public_value(key)),
        },
        Value::Summary => owned(
            "text",
            provider
                .map(|p| {
                    p.columns
                        .iter()
                        .map(|(label, key)| (label, credential.public_value(key)))
                        .filter(|(_, value)| !value.is_empty())
                        .map(|(label, value)| format!("{label}: {}", one_line(value)))
                        .collect::<Vec<_>>()
                        .join(" · ")
                })
                .unwrap_or_default(),
        ),
        Value::Created => owned("text", credential.created_at.date_naive().to_string()),
        Value::Expires => owned(
            "expires",
            credential
                .expires_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
        ),
        Value::Default => borrowed("default", ""),
        Value::Lock => borrowed("lock", ""),
        Value::Verified => borrowed("verified", ""),
        Value::Associated => owned(
            "text",
            listed
                .associated_projects
                .as_deref()
                .map_or(0, |names| names.lines().count())
                .to_string(),
        ),
    }
}

/// What the table fragment and the page around it show.
struct Table<'a> {
    kind: Kind,
    columns: Vec<ColumnView>,
    rows: Vec<RowView<'a>>,
    total: Total,
    page: i64,
    previous_url: Option<String>,
    next_url: Option<String>,
    /// The list query, carried by every action form so the answer can show the same page.
    back: String,
}

fn table<'a>(
    kind: Kind,
    params: &ListParams,
    query: &ListQuery,
    listed: &'a [Arc<Listed>],
    total: Total,
) -> Table<'a> {
    let columns = kind.columns(params.provider(kind));
    let base = format!("/credentials/{}", kind.key());
    let column_views = columns
        .iter()
        .map(|column| {
            let key = column.value.sort_key();
            let sorted = match &key {
                Some(key) if *key == query.sort => {
                    if query.descending {
                        "descending"
                    } else {
                        "ascending"
                    }
                }
                _ => "",
            };
            ColumnView {
                label: column.label,
                sort_url: key.map(|key| {
                    let dir = if sorted == "ascending" { "desc" } else { "asc" };
                    let mut next = params.clone();
                    next.sort = Some(key);
                    next.dir = Some(dir.into());
                    next.page = None;
                    format!("{base}?{}", next.to_query())
                }),
                sorted,
            }
        })
        .collect();
    let page = query.pagination.page;
    Table {
        kind,
        columns: column_views,
        rows: listed
            .iter()
            .map(|row| RowView::new(row, &columns))
            .collect(),
        total,
        page,
        previous_url: (page > 1)
            .then(|| format!("{base}?{}", params.with("page", &(page - 1).to_string()))),
        next_url: total
            .exceeds(page * PER_PAGE)
            .then(|| format!("{base}?{}", params.with("page", &(page + 1).to_string()))),
        back: params.to_query(),
    }
}

#[derive(Template)]
#[template(path = "credentials/list.html")]
struct ListPage<'a> {
    page: Page,
    tabs: Vec<Kind>,
    table: Table<'a>,
    csrf: String,
    q: String,
    org: String,
    provider: String,
    organizations: &'a [Organization],
    providers: Vec<&'static Provider>,
    is_partner: bool,
}

#[derive(Template)]
#[template(path = "credentials/_results_response.html")]
struct ResultsFragment<'a> {
    table: Table<'a>,
    csrf: String,
    flashes: Vec<Flash>,
}

#[derive(Template)]
#[template(path = "credentials/_removed.html")]
struct RemovedFragment {
    flashes: Vec<Flash>,
}

#[derive(Template)]
#[template(path = "credentials/_row_response.html")]
struct RowFragment<'a> {
    row: RowView<'a>,
    flashes: Vec<Flash>,
}

/// GET /credentials/{kind}
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let params = ListParams::parse(req.query_string());
    let query = params.query(kind, &user);
    let scope = user.scope();
    let db_query = query.clone();
    // The organization filter (Partners only) is part of the page around the table, not of
    // the htmx fragment.
    let whole_page = !is_htmx(&req);
    let organization_filter = whole_page && user.role() == Role::Partner;
    // Unsearched pages are the same for everyone in a scope until a credential, organization
    // or project changes: kept in memory whole (a search's rows are kept one by one instead,
    // `ShownRows`: its page and total are found for each term).
    let key = (query.search.is_none() && sort_expression(kind, &query.sort).is_some())
        .then(|| format!("{:?}", ("credentials", scope, organization_filter, &query)));
    // A search in name order is found in memory (`search_index`).
    let indexed = query
        .search
        .as_deref()
        .and_then(|term| Indexed::find(&state.pages, &state.pool, &scope, &query, term));
    let searched = query.search.is_some();
    let pool = state.pool.clone();
    let load = async move {
        // A search answered from memory needs no connection, unless the page around it does.
        let indexed = match indexed.map(Indexed::answered) {
            Some(Ok((page, by))) if !organization_filter => return Ok((page, Vec::new(), by)),
            Some(Ok(answer)) => Some(Indexed::Answered(answer)),
            Some(Err(indexed)) => Some(indexed),
            None => None,
        };
        db::run(&pool, move |conn| {
            let organizations = if organization_filter {
                Organization::list(conn, &scope)?
            } else {
                Vec::new()
            };
            let answer = match indexed {
                Some(indexed) => indexed.read(conn, &scope, &db_query)?,
                None => None,
            };
            let (page, by) = match answer {
                Some(answer) => answer,
                None => (
                    Credential::list(conn, &scope, &db_query)?,
                    AnsweredBy::Database,
                ),
            };
            Ok::<_, AppError>((page, organizations, by))
        })
        .await
    };
    let loaded = match key {
        Some(key) => {
            let read_from = Tables::CREDENTIALS | Tables::ORGANIZATIONS | Tables::PROJECTS;
            state.pages.load(key, read_from, load, |_| true).await?
        }
        None => Arc::new(load.await?),
    };
    let (listed, organizations, answered_by) = &*loaded;
    if searched {
        state.metrics.count_search(answered_by.label());
    }
    let table = table(kind, &params, &query, &listed.rows, listed.total);
    let page = Page::new(
        &user,
        &session,
        "credentials",
        &format!("{} credentials", kind.label()),
    );
    if !whole_page {
        return html(&ResultsFragment {
            table,
            csrf: page.csrf,
            flashes: page.flashes,
        });
    }
    html(&ListPage {
        tabs: tabs(&user),
        csrf: page.csrf.clone(),
        q: params.q.clone().unwrap_or_default(),
        org: params.org.clone().unwrap_or_default(),
        provider: params.provider.clone().unwrap_or_default(),
        organizations,
        providers: kind.providers().collect(),
        is_partner: user.role() == Role::Partner,
        page,
        table,
    })
}

/// The add and edit form.
#[derive(Template)]
#[template(path = "credentials/form.html")]
struct FormPage {
    page: Page,
    kind: Kind,
    provider: &'static Provider,
    /// `None` when adding.
    editing: Option<EditTarget>,
    values: Values,
    name: String,
    expires_on: String,
    organization_id: String,
    organizations: Vec<Organization>,
    is_partner: bool,
    errors: FieldErrors,
    outcome: Option<Outcome>,
}

struct EditTarget {
    id: CredentialId,
    version: i32,
    organization: String,
}

impl FormPage {
    /// The edit form of a stored credential as it is stored; callers replace what a
    /// submission changed.
    /// The blank add form of `provider`; callers replace what a submission changed.
    fn add(
        user: &CurrentUser,
        session: &Session,
        kind: Kind,
        provider: &'static Provider,
        organizations: Vec<Organization>,
        organization_id: String,
    ) -> FormPage {
        FormPage {
            page: Page::new(
                user,
                session,
                "credentials",
                &format!("Add {}", kind.noun()),
            ),
            kind,
            provider,
            editing: None,
            values: Values::default(),
            name: String::new(),
            expires_on: String::new(),
            organization_id,
            organizations,
            is_partner: user.role() == Role::Partner,
            errors: FieldErrors::default(),
            outcome: None,
        }
    }

    fn edit(
        user: &CurrentUser,
        session: &Session,
        provider: &'static Provider,
        listed: &Listed,
        version: i32,
    ) -> FormPage {
        let credential = &listed.credential;
        FormPage {
            page: Page::new(
                user,
                session,
                "credentials",
                &format!("Edit {}", credential.name),
            ),
            kind: credential.kind(),
            provider,
            editing: Some(EditTarget {
                id: credential.id,
                version,
                organization: listed.organization_name.clone(),
            }),
            values: credential.public_values(),
            name: credential.name.clone(),
            expires_on: credential
                .expires_on
                .map(|d| d.to_string())
                .unwrap_or_default(),
            organization_id: credential.organization_id.to_string(),
            organizations: Vec::new(),
            is_partner: user.role() == Role::Partner,
            errors: FieldErrors::default(),
            outcome: None,
        }
    }

    fn action(&self) -> String {
        match &self.editing {
            Some(target) => format!("/credentials/{}/{}", self.kind.key(), target.id),
            None => format!("/credentials/{}", self.kind.key()),
        }
    }

    /// Whether this field can be changed on this form.
    fn can_change(&self, field: &Field) -> bool {
        self.editing.is_none() || field.editable
    }

    fn can_change_name(&self) -> bool {
        self.editing.is_none() || self.provider.name_editable
    }

    fn outcome_state(&self) -> &'static str {
        match &self.outcome {
            Some(Outcome::Ok(_)) => "ok",
            Some(Outcome::Warning(_)) => "warning",
            Some(Outcome::Failed(_)) => "failed",
            None => "",
        }
    }
}

#[derive(Template)]
#[template(path = "credentials/providers.html")]
struct ProvidersPage {
    page: Page,
    providers: Vec<&'static Provider>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    provider: Option<String>,
}

/// The provider of a new credential, refusing Partner-only providers to Managers.
fn provider_for_new(
    kind: Kind,
    key: Option<&str>,
    user: &CurrentUser,
) -> Result<Option<&'static Provider>, AppError> {
    let Some(provider) = provider::find(kind, key) else {
        return Ok(None);
    };
    if provider.partner_only_add && user.role() != Role::Partner {
        return Err(AppError::Forbidden);
    }
    Ok(Some(provider))
}

/// GET /credentials/{kind}/new
pub async fn new(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
    query: web::Query<NewQuery>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let Some(provider) = provider_for_new(kind, query.provider.as_deref(), &user)? else {
        let providers = kind
            .providers()
            .filter(|p| !p.partner_only_add || user.role() == Role::Partner)
            .collect();
        return html(&ProvidersPage {
            page: Page::new(&user, &session, "credentials", "Add a cloud credential"),
            providers,
        });
    };
    let scope = user.scope();
    let organizations = db::run(&state.pool, move |conn| Organization::list(conn, &scope)).await?;
    let mut values = Values::default();
    for field in provider.fields {
        values.set(field.key, field.default);
    }
    let first = organizations
        .first()
        .map(|o| o.id.to_string())
        .unwrap_or_default();
    html(&FormPage {
        values,
        ..FormPage::add(&user, &session, kind, provider, organizations, first)
    })
}

/// A submitted add or edit form.
struct Submission {
    values: Values,
    name: String,
    expires_on: Option<NaiveDate>,
    expires_text: String,
    organization_id: String,
    version: Option<i32>,
}

fn submission(form: HashMap<String, String>) -> Submission {
    let get = |key: &str| {
        form.get(key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let expires_text = get("expires_on");
    Submission {
        name: get("name"),
        expires_on: NaiveDate::parse_from_str(&expires_text, "%Y-%m-%d").ok(),
        organization_id: get("organization_id"),
        version: get("version").parse().ok(),
        expires_text,
        values: Values::new(form.into_iter().collect::<BTreeMap<_, _>>()),
    }
}

/// Checks every field; `editing` leaves blank secrets and fixed fields alone.
fn validate(
    kind: Kind,
    provider: &Provider,
    submission: &Submission,
    editing: bool,
) -> FieldErrors {
    let mut errors = FieldErrors::default();
    if !editing || provider.name_editable {
        errors.check("name", check_name(kind, &submission.name));
    }
    for field in provider.fields.iter().filter(|f| !editing || f.editable) {
        errors.check(field.key, check_field(field, &submission.values, editing));
    }
    if !submission.expires_text.is_empty() && submission.expires_on.is_none() {
        errors.add("expires_on", "Enter a date as YYYY-MM-DD.");
    }
    if !editing {
        (provider.rules)(&submission.values, &mut errors);
    }
    errors
}

/// Splits form values into stored public fields (with derived values and secret hints) and
/// secrets; only `fields` are taken.
fn split_values<'a>(
    provider: &Provider,
    values: &Values,
    fields: impl Iterator<Item = &'a Field>,
) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let (mut public, mut secrets) = (BTreeMap::new(), BTreeMap::new());
    for field in fields {
        let value = match field.input {
            Input::Checkbox => values.flag(field.key).to_string(),
            Input::List => values.list(field.key).join("\n"),
            _ => values.get(field.key).to_string(),
        };
        if field.secret {
            if value.is_empty() {
                continue;
            }
            if field.key.ends_with("_id") && value.chars().count() > 8 {
                let hint: String = value
                    .chars()
                    .rev()
                    .take(4)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                public.insert(format!("{}_hint", field.key), hint);
            }
            secrets.insert(field.key.to_string(), value);
        } else {
            public.insert(field.key.to_string(), value);
        }
    }
    if provider.key == "gcp"
        && let Ok(project) = verify::gcp_project_id(values.get("config_json"))
    {
        public.insert("project_id".into(), project);
    }
    if provider.key == "openshift"
        && let Ok(server) = verify::kubeconfig_server(values.get("kubeconfig"))
    {
        public.insert("api_server".into(), server);
    }
    (public, secrets)
}

/// POST /credentials/{kind}
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let form = form.into_inner();
    let provider = provider_for_new(kind, form.get("provider").map(String::as_str), &user)?
        .ok_or_else(|| AppError::Invalid("Choose a provider.".into()))?;
    let submission = submission(form);
    let scope = user.scope();
    let organizations = db::run(&state.pool, move |conn| Organization::list(conn, &scope)).await?;
    let organization = match user.identity.organization_id {
        Some(own) if user.role() != Role::Partner => organizations.iter().find(|o| o.id == own),
        _ => organizations
            .iter()
            .find(|o| o.id.to_string() == submission.organization_id),
    }
    .cloned();

    let mut errors = validate(kind, provider, &submission, false);
    if organization.is_none() {
        errors.add("organization_id", "Choose one of your organizations.");
    }
    if let Some(organization) = &organization
        && errors.get("name").is_none()
    {
        let (id, name) = (organization.id, submission.name.clone());
        if db::run(&state.pool, move |conn| {
            Credential::name_taken(conn, id, kind, &name, None)
        })
        .await?
        {
            errors.add("name", format!("{} already exists", submission.name));
        }
    }
    let render = |errors: FieldErrors, outcome: Option<Outcome>, status: StatusCode| {
        html_with_status(
            status,
            &FormPage {
                values: submission.values.clone(),
                name: submission.name.clone(),
                expires_on: submission.expires_text.clone(),
                errors,
                outcome,
                ..FormPage::add(
                    &user,
                    &session,
                    kind,
                    provider,
                    organizations.clone(),
                    submission.organization_id.clone(),
                )
            },
        )
    };
    let Some(organization) = organization.filter(|_| errors.is_empty()) else {
        return render(errors, None, StatusCode::UNPROCESSABLE_ENTITY);
    };

    let outcome = verify::run(
        &state.outbound,
        &state.endpoints,
        provider,
        &submission.values,
        submission.expires_on,
    )
    .await;
    if !outcome.passed() {
        return render(
            FieldErrors::default(),
            Some(outcome),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let (public, secrets) = split_values(provider, &submission.values, provider.fields.iter());
    let field_names: Vec<&str> = std::iter::once("name")
        .chain(provider.fields.iter().map(|f| f.key))
        .collect();
    let event = NewEvent::by(
        &user,
        "credential.create",
        &client_ip(&req, &state.settings.trusted_proxies),
    )
    .in_organization(Some(organization.id))
    .fields(&field_names);
    let keyring = state.settings.keyring.clone();
    let (actor, name, expires_on) = (user.id(), submission.name.clone(), submission.expires_on);
    let verification = (true, outcome.message().to_string());
    let created = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let credential = Credential::create(
                conn,
                &keyring,
                &NewCredential {
                    organization_id: organization.id,
                    organization_name: &organization.name,
                    provider,
                    name: &name,
                    public,
                    secrets,
                    expires_on,
                    verification,
                    created_by: actor,
                },
            )?;
            event
                .object("credential", credential.id.0, &credential.name)
                .record(conn)?;
            Ok::<_, AppError>(credential)
        })
    })
    .await
    .map_err(AppError::from);
    match created {
        Ok(credential) => {
            flash::success(
                &session,
                format!(
                    "{} saved. {}.",
                    credential.name,
                    capitalize(outcome.message())
                ),
            );
            if let Outcome::Warning(message) = &outcome {
                flash::info(&session, format!("Warning: {message}"));
            }
            Ok(see_other(&format!("/credentials/{}", kind.key())))
        }
        Err(AppError::Internal(cause)) if cause.to_string().contains("credentials_name_unique") => {
            let mut errors = FieldErrors::default();
            errors.add("name", format!("{} already exists", submission.name));
            render(errors, None, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(error) => Err(error),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[derive(Template)]
#[template(path = "credentials/_verify.html")]
struct VerifyFragment {
    outcome: Outcome,
}

impl VerifyFragment {
    fn state(&self) -> &'static str {
        match self.outcome {
            Outcome::Ok(_) => "ok",
            Outcome::Warning(_) => "warning",
            Outcome::Failed(_) => "failed",
        }
    }
}

/// POST /credentials/{kind}/verify: checks the form's values without saving. On an edit form
/// (`credential_id`), blank secrets are taken from the stored credential.
pub async fn verify_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let form = form.into_inner();
    let editing = form
        .get("credential_id")
        .and_then(|id| id.parse().ok())
        .map(CredentialId);
    let provider_key = form.get("provider").cloned();
    let mut submission = submission(form);
    let (provider, stored) = match editing {
        Some(id) => {
            let scope = user.scope();
            let listed = db::run(&state.pool, move |conn| {
                Credential::find_listed(conn, &scope, kind, id)
            })
            .await?;
            let provider = listed.credential.provider().ok_or(AppError::NotFound)?;
            (provider, Some(listed))
        }
        None => (
            provider_for_new(kind, provider_key.as_deref(), &user)?
                .ok_or_else(|| AppError::Invalid("Choose a provider.".into()))?,
            None,
        ),
    };
    if let Some(listed) = &stored {
        let mut merged = listed
            .credential
            .all_values(&state.settings.keyring)
            .map_err(AppError::Internal)?;
        for field in provider.fields.iter().filter(|f| f.editable) {
            let value = submission.values.get(field.key);
            if !(field.secret && value.is_empty()) {
                merged.set(field.key, value.to_string());
            }
        }
        submission.values = merged;
    }
    let errors = validate(kind, provider, &submission, stored.is_some());
    let outcome = if errors.is_empty() {
        verify::run(
            &state.outbound,
            &state.endpoints,
            provider,
            &submission.values,
            submission.expires_on,
        )
        .await
    } else {
        Outcome::Failed("Correct the highlighted fields first.".into())
    };
    if is_htmx(&req) {
        return html(&VerifyFragment { outcome });
    }
    let mut values = submission.values.clone();
    for field in provider.secret_fields() {
        values.remove(field.key);
    }
    let form = match &stored {
        Some(listed) => FormPage::edit(
            &user,
            &session,
            provider,
            listed,
            submission.version.unwrap_or(listed.credential.version),
        ),
        None => {
            let scope = user.scope();
            let organizations =
                db::run(&state.pool, move |conn| Organization::list(conn, &scope)).await?;
            let chosen = submission.organization_id.clone();
            FormPage::add(&user, &session, kind, provider, organizations, chosen)
        }
    };
    html(&FormPage {
        values,
        name: submission.name.clone(),
        expires_on: submission.expires_text.clone(),
        errors,
        outcome: Some(outcome),
        ..form
    })
}

#[derive(Template)]
#[template(path = "credentials/detail.html")]
struct DetailPage<'a> {
    page: Page,
    kind: Kind,
    row: RowView<'a>,
    details: Vec<(&'static str, Cow<'a, str>)>,
    organization: String,
}

#[derive(Template)]
#[template(path = "credentials/_detail.html")]
struct DetailFragment<'a> {
    details: Vec<(&'static str, Cow<'a, str>)>,
}

fn parse_id(id: &str) -> Result<CredentialId, AppError> {
    id.parse().map(CredentialId).map_err(|_| AppError::NotFound)
}

/// The credential a path names: the tab checked for `user` first (403), then the scope (404).
async fn named_credential(
    state: &AppState,
    user: &CurrentUser,
    kind: &str,
    id: &str,
) -> Result<(Kind, Listed), AppError> {
    let kind = authorize(user, kind)?;
    let id = parse_id(id)?;
    let scope = user.scope();
    let listed = db::run(&state.pool, move |conn| {
        Credential::find_listed(conn, &scope, kind, id)
    })
    .await?;
    Ok((kind, listed))
}

/// GET /credentials/{kind}/{id}
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (kind, id) = path.into_inner();
    let (kind, listed) = named_credential(&state, &user, &kind, &id).await?;
    let row = RowView::new(&listed, &kind.columns(None));
    if is_htmx(&req) {
        return html(&DetailFragment {
            details: details(&listed, &row),
        });
    }
    html(&DetailPage {
        page: Page::new(&user, &session, "credentials", &listed.credential.name),
        kind,
        organization: listed.organization_name.clone(),
        details: details(&listed, &row),
        row,
    })
}

/// GET /credentials/{kind}/{id}/edit
pub async fn edit(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (kind, id) = path.into_inner();
    let (_, listed) = named_credential(&state, &user, &kind, &id).await?;
    let credential = &listed.credential;
    let provider = editable_provider(credential)?;
    html(&FormPage::edit(
        &user,
        &session,
        provider,
        &listed,
        credential.version,
    ))
}

/// The provider of a credential that may be edited now (unlocked, with editable fields).
fn editable_provider(credential: &Credential) -> Result<&'static Provider, AppError> {
    let provider = credential.provider().ok_or(AppError::NotFound)?;
    if credential.is_locked {
        return Err(AppError::Conflict(format!(
            "{} is locked: unlock it to edit",
            credential.name
        )));
    }
    if !provider.editable() {
        return Err(AppError::Conflict(format!(
            "{} credentials cannot be edited: delete and add again",
            provider.label
        )));
    }
    Ok(provider)
}

/// POST /credentials/{kind}/{id}: saves an edit after verifying the result.
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
    form: web::Form<HashMap<String, String>>,
) -> Result<HttpResponse, AppError> {
    let (kind, id) = path.into_inner();
    let (kind, listed) = named_credential(&state, &user, &kind, &id).await?;
    let id = listed.credential.id;
    let credential = listed.credential.clone();
    let provider = editable_provider(&credential)?;
    let mut submission = submission(form.into_inner());
    if !provider.name_editable {
        submission.name = credential.name.clone();
    }
    let version = submission
        .version
        .ok_or_else(|| AppError::Invalid("The form is missing its version: reload it.".into()))?;
    let mut errors = validate(kind, provider, &submission, true);
    if errors.get("name").is_none() && submission.name != credential.name {
        let (organization, name) = (credential.organization_id, submission.name.clone());
        if db::run(&state.pool, move |conn| {
            Credential::name_taken(conn, organization, kind, &name, Some(id))
        })
        .await?
        {
            errors.add("name", format!("{} already exists", submission.name));
        }
    }
    let render = |errors: FieldErrors, outcome: Option<Outcome>| {
        let mut values = credential.public_values();
        for field in provider.public_fields().filter(|f| f.editable) {
            values.set(field.key, submission.values.get(field.key).to_string());
        }
        html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &FormPage {
                values,
                name: submission.name.clone(),
                expires_on: submission.expires_text.clone(),
                errors,
                outcome,
                ..FormPage::edit(&user, &session, provider, &listed, version)
            },
        )
    };
    if !errors.is_empty() {
        return render(errors, None);
    }

    // The credential as it would be after the edit, for verification and the change list.
    let mut merged = credential
        .all_values(&state.settings.keyring)
        .map_err(AppError::Internal)?;
    let stored_public = credential.public_values();
    let mut changed: Vec<&str> = Vec::new();
    if submission.name != credential.name {
        changed.push("name");
    }
    for field in provider.fields.iter().filter(|f| f.editable) {
        let value = submission.values.get(field.key).to_string();
        if field.secret && value.is_empty() {
            continue;
        }
        let before = if field.secret {
            merged.get(field.key).to_string()
        } else {
            stored_public.get(field.key).to_string()
        };
        let normalized = match field.input {
            Input::List => submission.values.list(field.key).join("\n"),
            Input::Checkbox => submission.values.flag(field.key).to_string(),
            _ => value.clone(),
        };
        if normalized != before {
            changed.push(field.key);
        }
        merged.set(field.key, normalized);
    }
    if submission.expires_on != credential.expires_on {
        changed.push("expires_on");
    }
    let outcome = verify::run(
        &state.outbound,
        &state.endpoints,
        provider,
        &merged,
        submission.expires_on,
    )
    .await;
    if !outcome.passed() {
        return render(FieldErrors::default(), Some(outcome));
    }
    let (public, secrets) = split_values(provider, &merged, provider.fields.iter());
    let event = NewEvent::by(
        &user,
        "credential.update",
        &client_ip(&req, &state.settings.trusted_proxies),
    )
    .in_organization(Some(credential.organization_id))
    .object("credential", credential.id.0, &submission.name)
    .fields(&changed);
    let keyring = state.settings.keyring.clone();
    let scope = user.scope();
    let (actor, name, expires_on, organization_name) = (
        user.id(),
        submission.name.clone(),
        submission.expires_on,
        listed.organization_name.clone(),
    );
    let verification = Some((true, outcome.message().to_string()));
    db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let current = Credential::find_for_update(conn, &scope, kind, id)?;
            if current.is_locked {
                return Err(AppError::Conflict(format!(
                    "{} was locked meanwhile",
                    current.name
                )));
            }
            current.update(
                conn,
                &keyring,
                &organization_name,
                &CredentialChanges {
                    name: &name,
                    public,
                    secrets,
                    expires_on,
                    verification,
                    updated_by: actor,
                    version,
                },
            )?;
            event.record(conn)?;
            Ok(())
        })
    })
    .await?;
    flash::success(
        &session,
        format!(
            "{} saved. {}.",
            submission.name,
            capitalize(outcome.message())
        ),
    );
    Ok(see_other(&format!("/credentials/{}", kind.key())))
}

#[derive(Template)]
#[template(path = "credentials/confirm_delete.html")]
struct ConfirmDeletePage {
    page: Page,
    kind: Kind,
    id: CredentialId,
    name: String,
    organization: String,
}

/// GET /credentials/{kind}/{id}/delete: asks before deleting (the page browsers without
/// JavaScript get; with it, htmx asks with a dialog and posts).
pub async fn confirm(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (kind, id, action) = path.into_inner();
    let kind = authorize(&user, &kind)?;
    let id = parse_id(&id)?;
    if action != "delete" {
        return Err(AppError::NotFound);
    }
    let scope = user.scope();
    let listed = db::run(&state.pool, move |conn| {
        Credential::find_listed(conn, &scope, kind, id)
    })
    .await?;
    let credential = &listed.credential;
    if credential.is_locked {
        return Err(AppError::Conflict(format!(
            "{} is locked: unlock it before deleting",
            credential.name
        )));
    }
    if !listed.projects().is_empty() {
        return Err(AppError::Conflict(format!(
            "{} is used by {}: change or delete those projects first",
            credential.name,
            listed.projects().join(", ")
        )));
    }
    html(&ConfirmDeletePage {
        page: Page::new(
            &user,
            &session,
            "credentials",
            &format!("Delete {}", credential.name),
        ),
        kind,
        id,
        name: credential.name.clone(),
        organization: listed.organization_name.clone(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ActionForm {
    #[serde(default)]
    back: String,
}

/// POST /credentials/{kind}/{id}/{action}: lock, unlock, default, verify, delete.
pub async fn action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let (kind, id, action) = path.into_inner();
    let kind = authorize(&user, &kind)?;
    let id = parse_id(&id)?;
    let scope = user.scope();
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let event = |action: &str, credential: &Credential| {
        NewEvent::by(&user, action, &ip)
            .in_organization(Some(credential.organization_id))
            .object("credential", credential.id.0, &credential.name)
    };
    let actor = user.id();
    let message = match action.as_str() {
        "lock" | "unlock" | "default" | "delete" => {
            let action = action.clone();
            let listed = db::run(&state.pool, move |conn| {
                Credential::find_listed(conn, &scope, kind, id)
            })
            .await?;
            let event = event(&format!("credential.{action}"), &listed.credential);
            db::run(&state.pool, move |conn| {
                conn.build_transaction().run(|conn| {
                    let credential = Credential::find_for_update(conn, &scope, kind, id)?;
                    let message = match action.as_str() {
                        "lock" => {
                            credential.set_locked(conn, true, actor)?;
                            format!("{} is locked.", credential.name)
                        }
                        "unlock" => {
                            credential.set_locked(conn, false, actor)?;
                            format!("{} is unlocked.", credential.name)
                        }
                        "default" => {
                            credential.make_default(conn, actor)?;
                            format!("{} is now the default.", credential.name)
                        }
                        _ => {
                            credential.delete(conn)?;
                            format!("{} is deleted.", credential.name)
                        }
                    };
                    event.record(conn)?;
                    Ok::<_, AppError>(message)
                })
            })
            .await?
        }
        "verify" => {
            let listed = db::run(&state.pool, move |conn| {
                Credential::find_listed(conn, &scope, kind, id)
            })
            .await?;
            let credential = listed.credential;
            let provider = credential.provider().ok_or(AppError::NotFound)?;
            let values = credential
                .all_values(&state.settings.keyring)
                .map_err(AppError::Internal)?;
            let outcome = verify::run(
                &state.outbound,
                &state.endpoints,
                provider,
                &values,
                credential.expires_on,
            )
            .await;
            let event = event("credential.verify", &credential).fields(&[if outcome.passed() {
                "ok"
            } else {
                "failed"
            }]);
            let (ok, text) = (outcome.passed(), outcome.message().to_string());
            let name = credential.name.clone();
            db::run(&state.pool, move |conn| {
                credential.record_verification(conn, ok, &text)?;
                event.record(conn)
            })
            .await?;
            match outcome {
                Outcome::Failed(message) => format!("{name} failed verification: {message}."),
                Outcome::Warning(message) => format!("{name} verified with a warning: {message}."),
                Outcome::Ok(message) => format!("{name} verified: {message}."),
            }
        }
        _ => return Err(AppError::NotFound),
    };

    let params = ListParams::parse(&form.back);
    if !is_htmx(&req) {
        flash::success(&session, message);
        let query = params.to_query();
        let separator = if query.is_empty() { "" } else { "?" };
        return Ok(see_other(&format!(
            "/credentials/{}{separator}{query}",
            kind.key()
        )));
    }
    let flashes = vec![Flash {
        kind: "success".into(),
        message,
    }];
    let csrf = crate::auth::csrf::token(&session);
    if action == "delete" {
        // The row's target is swapped with nothing; only the message remains.
        return html(&RemovedFragment { flashes });
    }
    let query = params.query(kind, &user);
    if action == "default" {
        let db_query = query.clone();
        let listed = db::run(&state.pool, move |conn| {
            Credential::list(conn, &scope, &db_query)
        })
        .await?;
        return html(&ResultsFragment {
            table: table(kind, &params, &query, &listed.rows, listed.total),
            csrf,
            flashes,
        });
    }
    let listed = db::run(&state.pool, move |conn| {
        Credential::find_listed(conn, &scope, kind, id)
    })
    .await?;
    let columns = kind.columns(params.provider(kind));
    html(&RowFragment {
        row: RowView::new(&listed, &columns),
        flashes,
    })
}
