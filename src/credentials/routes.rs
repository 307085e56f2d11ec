//! The Credentials area: one set of handlers for all five tabs, driven by the provider
//! registry. Plain form posts answer 303 with a flash message; htmx requests get the fragment
//! that changed (a row, the table, a verification result).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use crate::accounts::model::{Organization, OrganizationId};
use crate::auth::{CurrentUser, Role};
use crate::credentials::error::CredentialError;
use crate::credentials::field::{Field, Values};
use crate::credentials::model::{CredentialId, ListQuery, Listed, Total};
use crate::credentials::provider::{self, Column, Kind, Provider, Value};
use crate::credentials::service::{self, Action, Checked, Checking, Created, Editing, Submission};
use crate::credentials::verify::Outcome;
use crate::error::AppError;
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
    if kind.spec().partner_only && user.role() != Role::Partner {
        return Err(AppError::Forbidden);
    }
    Ok(kind)
}

/// The tabs this person sees.
fn tabs(user: &CurrentUser) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|kind| !kind.spec().partner_only || user.role() == Role::Partner)
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
        kind.spec()
            .by_provider
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
    /// `ok`, `warning`, `failed`, or `never` before the first verification.
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
        if self.is_locked {
            Action::Unlock.key()
        } else {
            Action::Lock.key()
        }
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
        // An expired credential reads Expired, whatever its last check found.
        let (verify_state, verify_message) = match credential.verification() {
            _ if credential.expired() => ("expired", "The credential's expiry date has passed"),
            None => ("never", "Not verified yet"),
            Some(state) => (state.key(), message),
        };
        RowView {
            id: credential.id,
            path: format!("/credentials/{}/{}", credential.kind.key(), credential.id),
            name: &credential.name,
            is_default: credential.is_default,
            is_locked: credential.is_locked,
            has_default: credential.kind.spec().has_default,
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
        if credential.kind.spec().by_provider {
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
        // `KindSpec::columns` puts the provider's own columns or the summary in its place.
        Value::Summary | Value::ProviderColumns => owned(
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
    let columns = kind.spec().columns(params.provider(kind));
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
    // The organization filter (Partners only) is part of the page around the table, not of
    // the htmx fragment.
    let whole_page = !is_htmx(&req);
    let organization_filter = whole_page && user.role() == Role::Partner;
    let searched = query.search.is_some();
    let listing = service::list(
        &context(&state),
        user.scope(),
        query.clone(),
        organization_filter,
    )
    .await?;
    if searched {
        state.metrics.count_search(listing.answered_by.label());
    }
    let table = table(
        kind,
        &params,
        &query,
        &listing.page.rows,
        listing.page.total,
    );
    let page = Page::new(
        &user,
        &session,
        "credentials",
        &format!("{} credentials", kind.spec().label),
    );
    if !whole_page {
        return html(&ResultsFragment {
            table,
            csrf: page.csrf,
            flashes: page.flashes,
        });
    }
    html(&ListPage::new(
        &user,
        page,
        &params,
        table,
        &listing.organizations,
    ))
}

impl<'a> ListPage<'a> {
    fn new(
        user: &CurrentUser,
        page: Page,
        params: &ListParams,
        table: Table<'a>,
        organizations: &'a [Organization],
    ) -> ListPage<'a> {
        ListPage {
            tabs: tabs(user),
            csrf: page.csrf.clone(),
            q: params.q.clone().unwrap_or_default(),
            org: params.org.clone().unwrap_or_default(),
            provider: params.provider.clone().unwrap_or_default(),
            organizations,
            providers: table.kind.spec().providers().collect(),
            is_partner: user.role() == Role::Partner,
            page,
            table,
        }
    }
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
                &format!("Add {}", kind.spec().noun),
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
            kind: credential.kind,
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
        self.outcome
            .as_ref()
            .map_or("", |outcome| outcome.state().key())
    }
}

#[derive(Template)]
#[template(path = "credentials/providers.html")]
struct ProvidersPage {
    page: Page,
    kind: Kind,
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
            .spec()
            .providers()
            .filter(|p| !p.partner_only_add || user.role() == Role::Partner)
            .collect();
        let title = format!("Add a {}", kind.spec().noun);
        return html(&ProvidersPage {
            page: Page::new(&user, &session, "credentials", &title),
            kind,
            providers,
        });
    };
    let organizations = service::organizations(&context(&state), user.scope()).await?;
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
        .ok_or(CredentialError::NoProvider)?;
    let submission = Submission::parse(form);
    let context = context(&state);
    let actor = actor(&req, &state, &user);
    let (errors, outcome) = match service::create(&context, &actor, provider, &submission).await {
        Ok(Created {
            credential,
            outcome,
        }) => {
            let saved = capitalize(outcome.message());
            flash::success(&session, format!("{} saved. {saved}.", credential.name));
            if let Outcome::Warning(message) = &outcome {
                flash::info(&session, format!("Warning: {message}"));
            }
            return Ok(see_other(&format!("/credentials/{}", kind.key())));
        }
        Err(error) => shown_on_form(error)?,
    };
    let organizations = service::organizations(&context, user.scope()).await?;
    let chosen = submission.organization_id.clone();
    html_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage {
            values: submission.values.clone(),
            name: submission.name.clone(),
            expires_on: submission.expires_text.clone(),
            errors,
            outcome,
            ..FormPage::add(&user, &session, kind, provider, organizations, chosen)
        },
    )
}

/// A refusal a form shows next to its fields or in its verification box (422); any other
/// refusal answers as itself.
fn shown_on_form(error: CredentialError) -> Result<(FieldErrors, Option<Outcome>), AppError> {
    match error {
        CredentialError::Invalid(errors) => Ok((errors, None)),
        CredentialError::NameTaken { name } => {
            let mut errors = FieldErrors::default();
            errors.add("name", format!("{name} already exists"));
            Ok((errors, None))
        }
        CredentialError::Unverified(outcome) => Ok((FieldErrors::default(), Some(outcome))),
        other => Err(other.into()),
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
        self.outcome.state().key()
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
    let checking = match form.get("credential_id").and_then(|id| id.parse().ok()) {
        Some(id) => Checking::Stored(CredentialId(id)),
        None => Checking::New(
            provider_for_new(kind, form.get("provider").map(String::as_str), &user)?
                .ok_or(CredentialError::NoProvider)?,
        ),
    };
    let context = context(&state);
    let submission = Submission::parse(form);
    let checked = service::check(&context, user.scope(), kind, checking, submission).await?;
    if is_htmx(&req) {
        return html(&VerifyFragment {
            outcome: checked.outcome,
        });
    }
    checked_form(&context, &user, &session, kind, checked).await
}

/// The form again, with what its check found (browsers without JavaScript); secrets are
/// never shown again.
async fn checked_form(
    context: &service::Context<'_>,
    user: &CurrentUser,
    session: &Session,
    kind: Kind,
    checked: Checked,
) -> Result<HttpResponse, AppError> {
    let Checked {
        provider,
        stored,
        submission,
        errors,
        outcome,
    } = checked;
    let mut values = submission.values.clone();
    for field in provider.secret_fields() {
        values.remove(field.key);
    }
    let form = match &stored {
        Some(listed) => {
            let version = submission.version.unwrap_or(listed.credential.version);
            FormPage::edit(user, session, provider, listed, version)
        }
        None => {
            let organizations = service::organizations(context, user.scope()).await?;
            let chosen = submission.organization_id.clone();
            FormPage::add(user, session, kind, provider, organizations, chosen)
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
    Ok((
        kind,
        service::find(&context(state), user.scope(), kind, id).await?,
    ))
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
    let row = RowView::new(&listed, &kind.spec().columns(None));
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
    let (kind, id) = (authorize(&user, &kind)?, parse_id(&id)?);
    let Editing { listed, provider } =
        service::editing(&context(&state), user.scope(), kind, id).await?;
    let version = listed.credential.version;
    html(&FormPage::edit(&user, &session, provider, &listed, version))
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
    let (kind, id) = (authorize(&user, &kind)?, parse_id(&id)?);
    let context = context(&state);
    let editing = service::editing(&context, user.scope(), kind, id).await?;
    let submission = editing.submission(form.into_inner());
    let actor = actor(&req, &state, &user);
    let (errors, outcome) = match service::update(&context, &actor, &editing, &submission).await {
        Ok(outcome) => {
            let saved = capitalize(outcome.message());
            flash::success(&session, format!("{} saved. {saved}.", submission.name));
            return Ok(see_other(&format!("/credentials/{}", kind.key())));
        }
        Err(error) => shown_on_form(error)?,
    };
    let Editing { listed, provider } = &editing;
    let mut values = listed.credential.public_values();
    for field in provider.public_fields().filter(|f| f.editable) {
        values.set(field.key, submission.values.get(field.key).to_string());
    }
    let version = submission.version.unwrap_or(listed.credential.version);
    html_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        &FormPage {
            values,
            name: submission.name.clone(),
            expires_on: submission.expires_text.clone(),
            errors,
            outcome,
            ..FormPage::edit(&user, &session, provider, listed, version)
        },
    )
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
    let (kind, id) = (authorize(&user, &kind)?, parse_id(&id)?);
    if Action::parse(&action) != Some(Action::Delete) {
        return Err(AppError::NotFound);
    }
    let listed = service::deletable(&context(&state), user.scope(), kind, id).await?;
    let name = &listed.credential.name;
    html(&ConfirmDeletePage {
        page: Page::new(&user, &session, "credentials", &format!("Delete {name}")),
        kind,
        id,
        name: name.clone(),
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
    let (kind, id) = (authorize(&user, &kind)?, parse_id(&id)?);
    let action = Action::parse(&action).ok_or(AppError::NotFound)?;
    let context = context(&state);
    let message = service::act(&context, &actor(&req, &state, &user), kind, id, action).await?;
    let params = ListParams::parse(&form.back);
    if !is_htmx(&req) {
        flash::success(&session, message);
        let query = params.to_query();
        let separator = if query.is_empty() { "" } else { "?" };
        let tab = kind.key();
        return Ok(see_other(&format!("/credentials/{tab}{separator}{query}")));
    }
    let flashes = vec![Flash {
        kind: "success".into(),
        message,
    }];
    changed(
        &context,
        &user,
        &session,
        (kind, id, action),
        &params,
        flashes,
    )
    .await
}

/// What htmx swaps after an action: nothing for a deleted row, the table after a new default
/// (the previous default's row changed too), else the row.
async fn changed(
    context: &service::Context<'_>,
    user: &CurrentUser,
    session: &Session,
    (kind, id, action): (Kind, CredentialId, Action),
    params: &ListParams,
    flashes: Vec<Flash>,
) -> Result<HttpResponse, AppError> {
    let csrf = crate::auth::csrf::token(session);
    match action {
        // The row's target is swapped with nothing; only the message remains.
        Action::Delete => html(&RemovedFragment { flashes }),
        Action::Default => {
            let query = params.query(kind, user);
            let page = service::page(context, user.scope(), query.clone()).await?;
            html(&ResultsFragment {
                table: table(kind, params, &query, &page.rows, page.total),
                csrf,
                flashes,
            })
        }
        Action::Lock | Action::Unlock | Action::Verify => {
            let listed = service::find(context, user.scope(), kind, id).await?;
            let columns = kind.spec().columns(params.provider(kind));
            html(&RowFragment {
                row: RowView::new(&listed, &columns),
                flashes,
            })
        }
    }
}

/// What the credential use cases reach, from the app's state.
fn context(state: &AppState) -> service::Context<'_> {
    service::Context {
        pool: &state.pool,
        keyring: &state.settings.keyring,
        outbound: &state.outbound,
        endpoints: &state.endpoints,
        pages: &state.pages,
    }
}

/// The person acting, and the address the audit row records.
fn actor<'a>(req: &HttpRequest, state: &AppState, user: &'a CurrentUser) -> service::Actor<'a> {
    service::Actor {
        user,
        ip: client_ip(req, &state.settings.trusted_proxies),
    }
}
