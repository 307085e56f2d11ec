//! `/api/v1/credentials/…`: the Credentials area's use cases (`credentials::service`) for a
//! token, with the tabs' authorization (`credentials::routes::authorize`). Secrets are taken,
//! never given: an answer holds the public fields only.

use std::collections::{BTreeMap, HashMap};

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiUser, ListAnswer, Problem, form_of, json};
use crate::auth::CurrentUser;
use crate::credentials::error::CredentialError;
use crate::credentials::model::{Listed, Total};
use crate::credentials::routes::{ListParams, authorize, context, provider_for_new};
use crate::credentials::service::{self, Action, Actor, Checking, Created, Submission};
use crate::credentials::verify::Outcome;
use crate::error::AppError;
use crate::ids::CredentialId;
use crate::startup::AppState;
use crate::tokens::ApiScope;

type Body = web::Json<serde_json::Map<String, serde_json::Value>>;

/// A credential as the API shows it: never a secret.
#[derive(Serialize, ToSchema)]
pub struct CredentialView {
    pub id: i64,
    pub kind: &'static str,
    pub provider: String,
    pub name: String,
    pub organization_id: i64,
    pub organization: String,
    /// The public fields (a secret's last characters are shown only for key ids).
    pub fields: BTreeMap<String, String>,
    pub is_default: bool,
    pub is_locked: bool,
    pub expires_on: Option<NaiveDate>,
    pub verification: Option<VerificationView>,
    /// Send it back in an update to refuse a change made meanwhile.
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<String>,
    /// The projects using it (why it cannot be deleted).
    pub projects: Vec<String>,
}

/// What the last check against the credential's API found.
#[derive(Serialize, ToSchema)]
pub struct VerificationView {
    /// `ok`, `warning` or `failed`.
    pub state: &'static str,
    pub message: String,
    pub at: Option<DateTime<Utc>>,
}

impl CredentialView {
    fn of(listed: &Listed) -> CredentialView {
        let credential = &listed.credential;
        CredentialView {
            id: credential.id.0,
            kind: credential.kind.key(),
            provider: credential.provider.clone(),
            name: credential.name.clone(),
            organization_id: credential.organization_id.0,
            organization: listed.organization_name.clone(),
            fields: credential
                .public
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            is_default: credential.is_default,
            is_locked: credential.is_locked,
            expires_on: credential.expires_on,
            verification: credential.verification().map(|state| VerificationView {
                state: state.key(),
                message: credential.verify_message.clone().unwrap_or_default(),
                at: credential.verified_at,
            }),
            version: credential.version,
            created_at: credential.created_at,
            created_by: listed.created_by_label.clone(),
            updated_at: credential.updated_at,
            updated_by: listed.updated_by_label.clone(),
            projects: listed.projects().into_iter().map(String::from).collect(),
        }
    }
}

/// What a check found.
#[derive(Serialize, ToSchema)]
pub struct OutcomeView {
    /// `ok`, `warning` or `failed`.
    pub state: &'static str,
    pub message: String,
}

impl OutcomeView {
    fn of(outcome: &Outcome) -> OutcomeView {
        OutcomeView {
            state: outcome.state().key(),
            message: outcome.message().to_string(),
        }
    }
}

/// What an action answers: its message and the credential as it is now.
#[derive(Serialize, ToSchema)]
pub struct ActionAnswer {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credential: Option<CredentialView>,
}

/// What a save answers: the credential and what its check found.
#[derive(Serialize, ToSchema)]
pub struct Saved {
    pub credential: CredentialView,
    pub verification: OutcomeView,
}

fn actor<'a>(api: &ApiUser, user: &'a CurrentUser) -> Actor<'a> {
    Actor {
        user,
        ip: api.ip.clone(),
    }
}

/// An edit as the pages send it: the fields sent, over the stored credential's public fields,
/// name, expiry and version (secrets not sent are blank, which keeps them).
fn sent_over_stored(listed: &Listed, sent: HashMap<String, String>) -> HashMap<String, String> {
    let stored = &listed.credential;
    let mut form: HashMap<String, String> = stored
        .public
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    form.insert("name".into(), stored.name.clone());
    form.insert("version".into(), stored.version.to_string());
    if let Some(date) = stored.expires_on {
        form.insert("expires_on".into(), date.to_string());
    }
    form.extend(sent);
    form
}

fn parse_id(id: &str) -> Result<CredentialId, ApiError> {
    Ok(CredentialId::from_path(id)?)
}

/// The list of a kind, paged like the tab.
#[utoipa::path(get, path = "/api/v1/credentials/{kind}", tag = "credentials",
    params(("kind" = String, Path, description = "cloud, backup, billing, showback or ai"),
        ("q" = Option<String>, Query), ("org" = Option<i64>, Query),
        ("provider" = Option<String>, Query), ("sort" = Option<String>, Query),
        ("dir" = Option<String>, Query, description = "asc or desc"), ("page" = Option<i64>, Query)),
    responses((status = 200, description = "A page of the list", body = ListAnswer<CredentialView>),
        (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = ["credentials:read"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
    kind: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsRead)?;
    let kind = authorize(user, &kind)?;
    let params = ListParams::parse(req.query_string());
    let query = params.query(kind, user);
    let pagination = query.pagination;
    let listing = service::list(&context(&state), user.scope(), query, false).await?;
    let total = listing.page.total;
    let shown = pagination.page * pagination.per_page;
    let next = total.exceeds(shown).then(|| {
        let page = (pagination.page + 1).to_string();
        format!("{}?{}", req.path(), params.with("page", &page))
    });
    Ok(json(
        StatusCode::OK,
        &ListAnswer {
            items: listing
                .page
                .rows
                .iter()
                .map(|row| CredentialView::of(row))
                .collect(),
            total: match total {
                Total::Exact(n) | Total::MoreThan(n) => n,
            },
            page: pagination.page,
            next,
        },
    ))
}

/// Creates a credential after checking it against its API (422 when the check fails).
#[utoipa::path(post, path = "/api/v1/credentials/{kind}", tag = "credentials",
    params(("kind" = String, Path)),
    request_body(description = "The add form's fields: `provider` (cloud), `name`, `organization_id` (Partners), the provider's fields, `expires_on`", content_type = "application/json"),
    responses((status = 201, body = Saved), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["credentials:write"])))]
pub async fn create(
    state: web::Data<AppState>,
    api: ApiUser,
    kind: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsWrite)?;
    let kind = authorize(user, &kind)?;
    let form = form_of(body.into_inner())?;
    let provider = provider_for_new(kind, form.get("provider").map(String::as_str), user)?
        .ok_or(CredentialError::NoProvider)?;
    let context = context(&state);
    let Created {
        credential,
        outcome,
    } = service::create(
        &context,
        &actor(&api, user),
        provider,
        &Submission::parse(form),
    )
    .await?;
    let listed = service::find(&context, user.scope(), kind, credential.id).await?;
    Ok(json(
        StatusCode::CREATED,
        &Saved {
            credential: CredentialView::of(&listed),
            verification: OutcomeView::of(&outcome),
        },
    ))
}

/// Checks values without saving: a new credential's (with `provider`), or a stored one's
/// edit (with `credential_id`; secrets left out are the stored ones).
#[utoipa::path(post, path = "/api/v1/credentials/{kind}/verify", tag = "credentials",
    params(("kind" = String, Path)),
    request_body(description = "The form's fields, as for create or update", content_type = "application/json"),
    responses((status = 200, body = OutcomeView), (status = 422, body = Problem)),
    security(("bearer" = ["credentials:write"])))]
pub async fn verify_values(
    state: web::Data<AppState>,
    api: ApiUser,
    kind: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsWrite)?;
    let kind = authorize(user, &kind)?;
    let mut form = form_of(body.into_inner())?;
    let checking = match form.get("credential_id") {
        Some(id) => {
            let id = parse_id(id)?;
            let listed = service::find(&context(&state), user.scope(), kind, id).await?;
            form = sent_over_stored(&listed, form);
            Checking::Stored(id)
        }
        None => Checking::New(
            provider_for_new(kind, form.get("provider").map(String::as_str), user)?
                .ok_or(CredentialError::NoProvider)?,
        ),
    };
    let checked = service::check(
        &context(&state),
        user.scope(),
        kind,
        checking,
        Submission::parse(form),
    )
    .await?;
    if !checked.errors.is_empty() {
        return Err(ApiError::invalid(
            checked.outcome.message().to_string(),
            checked.errors,
        ));
    }
    Ok(json(StatusCode::OK, &OutcomeView::of(&checked.outcome)))
}

/// One credential.
#[utoipa::path(get, path = "/api/v1/credentials/{kind}/{id}", tag = "credentials",
    params(("kind" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = CredentialView), (status = 404, body = Problem)),
    security(("bearer" = ["credentials:read"])))]
pub async fn show(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsRead)?;
    let (kind, id) = path.into_inner();
    let (kind, id) = (authorize(user, &kind)?, parse_id(&id)?);
    let listed = service::find(&context(&state), user.scope(), kind, id).await?;
    Ok(json(StatusCode::OK, &CredentialView::of(&listed)))
}

/// Changes the fields sent (others stay; secrets left out stay), after checking the result
/// against its API. With `version`, a change made meanwhile is refused (409).
#[utoipa::path(patch, path = "/api/v1/credentials/{kind}/{id}", tag = "credentials",
    params(("kind" = String, Path), ("id" = i64, Path)),
    request_body(description = "Any of the edit form's fields, and `version`", content_type = "application/json"),
    responses((status = 200, body = Saved), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["credentials:write"])))]
pub async fn update(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsWrite)?;
    let (kind, id) = path.into_inner();
    let (kind, id) = (authorize(user, &kind)?, parse_id(&id)?);
    let context = context(&state);
    let editing = service::editing(&context, user.scope(), kind, id).await?;
    let form = sent_over_stored(&editing.listed, form_of(body.into_inner())?);
    let submission = editing.submission(form);
    let outcome = service::update(&context, &actor(&api, user), &editing, &submission).await?;
    let listed = service::find(&context, user.scope(), kind, id).await?;
    Ok(json(
        StatusCode::OK,
        &Saved {
            credential: CredentialView::of(&listed),
            verification: OutcomeView::of(&outcome),
        },
    ))
}

/// Deletes an unlocked credential no project uses (409 otherwise, naming what uses it).
#[utoipa::path(delete, path = "/api/v1/credentials/{kind}/{id}", tag = "credentials",
    params(("kind" = String, Path), ("id" = i64, Path)),
    responses((status = 200, body = ActionAnswer), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["credentials:write"])))]
pub async fn delete(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsWrite)?;
    let (kind, id) = path.into_inner();
    let (kind, id) = (authorize(user, &kind)?, parse_id(&id)?);
    let message = service::act(
        &context(&state),
        &actor(&api, user),
        kind,
        id,
        Action::Delete,
    )
    .await?;
    Ok(json(
        StatusCode::OK,
        &ActionAnswer {
            message,
            credential: None,
        },
    ))
}

/// `lock`, `unlock`, `default` or `verify` (a stored credential against its API).
#[utoipa::path(post, path = "/api/v1/credentials/{kind}/{id}/{action}", tag = "credentials",
    params(("kind" = String, Path), ("id" = i64, Path), ("action" = String, Path, description = "lock, unlock, default or verify")),
    responses((status = 200, body = ActionAnswer), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["credentials:write"])))]
pub async fn action(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::CredentialsWrite)?;
    let (kind, id, action) = path.into_inner();
    let (kind, id) = (authorize(user, &kind)?, parse_id(&id)?);
    let action = Action::parse(&action)
        .filter(|action| *action != Action::Delete)
        .ok_or(AppError::NotFound)?;
    let context = context(&state);
    let message = service::act(&context, &actor(&api, user), kind, id, action).await?;
    let listed = service::find(&context, user.scope(), kind, id).await?;
    Ok(json(
        StatusCode::OK,
        &ActionAnswer {
            message,
            credential: Some(CredentialView::of(&listed)),
        },
    ))
}
