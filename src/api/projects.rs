//! `/api/v1/projects/…`: projects, their backup switch, policies, backups and restores, through
//! the use cases the pages call (`projects::service`, `backup::service`) and the pages'
//! authorization (`backup::routes::{project_for, policy_for, backup_for}`: Managers and Partners change,
//! another organization's id is 404). A project's database address is never answered.
//!
//! Over 600 lines because it is the twin of fifteen page actions and lists, each with the OpenAPI
//! annotation that documents it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, ApiUser, ListAnswer, Problem, fields_of, json};
use crate::auth::CurrentUser;
use crate::backup::model::{Backup, BackupPolicy, Restore};
use crate::backup::reads;
use crate::backup::routes::{
    backup_for, policy_for, policy_request, project_event, project_for, restore_request,
};
use crate::backup::service::{self, EnableRequest, Success};
use crate::error::AppError;
use crate::ids::{BackupId, ProjectId};
use crate::projects::MANAGERS;
use crate::projects::model::ProjectListing;
use crate::projects::routes::ProjectsQuery;
use crate::projects::service::{self as projects, EditForm, ProjectError, ProjectForm};
use crate::startup::AppState;
use crate::tokens::ApiScope;
use crate::web::form::Pagination;

type Body = web::Json<serde_json::Map<String, serde_json::Value>>;

/// A project (its database address is never shown).
#[derive(Serialize, ToSchema)]
pub struct ProjectView {
    pub id: i64,
    pub name: String,
    pub organization_id: i64,
    pub organization: String,
    pub cloud_credential_id: Option<i64>,
    pub cloud_credential: Option<String>,
    pub ai_credential_id: Option<i64>,
    pub ai_credential: Option<String>,
    pub backup_enabled: bool,
    pub backup_credential_id: Option<i64>,
    pub backup_credential: Option<String>,
    pub bucket: Option<String>,
    /// The phase of the latest backup, and why it failed or was skipped.
    pub last_phase: Option<String>,
    pub last_reason: Option<String>,
    /// What the projects page flags: failing backups, missed slots, failed restore checks.
    pub alerts: Vec<String>,
    pub created_at: DateTime<Utc>,
}

impl ProjectView {
    fn of(listing: &ProjectListing) -> ProjectView {
        let project = &listing.project;
        ProjectView {
            id: project.id.0,
            name: project.name.clone(),
            organization_id: project.organization_id.0,
            organization: listing.organization_name.clone(),
            cloud_credential_id: project.cloud_credential_id.map(|id| id.0),
            cloud_credential: listing.cloud_credential_name.clone(),
            ai_credential_id: project.ai_credential_id.map(|id| id.0),
            ai_credential: listing.ai_credential_name.clone(),
            backup_enabled: project.backup_enabled,
            backup_credential_id: project.backup_credential_id.map(|id| id.0),
            backup_credential: listing.backup_credential_name.clone(),
            bucket: project.bucket.clone(),
            last_phase: listing.last_phase.map(|phase| phase.key().to_string()),
            last_reason: listing.last_reason.clone(),
            alerts: listing.alerts(),
            created_at: project.created_at,
        }
    }
}

/// A backup policy.
#[derive(Serialize, ToSchema)]
pub struct PolicyView {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub retention_secs: i64,
    pub namespaces: Vec<String>,
    pub next_run_at: DateTime<Utc>,
    /// `off`, `each`, `daily` or `weekly`.
    pub drill: &'static str,
    /// Where the policy's heartbeat goes: the URL's origin only (the URL may carry a token).
    pub heartbeat_origin: Option<String>,
}

impl PolicyView {
    fn of(policy: &BackupPolicy) -> PolicyView {
        PolicyView {
            id: policy.id.0,
            name: policy.name.clone(),
            cron: policy.cron.clone(),
            timezone: policy.timezone.clone(),
            retention_secs: policy.retention_secs,
            namespaces: policy.namespaces(),
            next_run_at: policy.next_run_at,
            drill: policy.drill.key(),
            heartbeat_origin: policy.heartbeat_origin(),
        }
    }
}

/// One backup run.
#[derive(Serialize, ToSchema)]
pub struct BackupView {
    pub id: i64,
    pub name: String,
    pub policy_id: Option<i64>,
    pub policy: String,
    /// `New`, `InProgress`, `Completed`, `Failed` or `Skipped`.
    pub phase: String,
    pub reason: Option<String>,
    /// Bytes stored.
    pub size: Option<i64>,
    pub sha256: Option<String>,
    pub namespaces: Vec<String>,
    pub encrypted: bool,
    pub scheduled_for: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Its object was deleted (retention or by hand).
    pub deleted: bool,
}

impl BackupView {
    fn of(backup: &Backup) -> BackupView {
        BackupView {
            id: backup.id.0,
            name: backup.name.clone(),
            policy_id: backup.policy_id.map(|id| id.0),
            policy: backup.policy_name.clone(),
            phase: backup.phase.key().to_string(),
            reason: backup.reason.clone(),
            size: backup.size_bytes,
            sha256: backup.sha256.clone(),
            namespaces: backup.namespaces(),
            encrypted: backup.encrypted_to.is_some(),
            scheduled_for: backup.scheduled_for,
            started_at: backup.started_at,
            finished_at: backup.finished_at,
            expires_at: backup.expires_at,
            deleted: backup.deleted_at.is_some(),
        }
    }
}

/// One restore.
#[derive(Serialize, ToSchema)]
pub struct RestoreView {
    pub id: i64,
    pub name: String,
    pub backup_id: Option<i64>,
    pub backup: String,
    pub namespaces: Vec<String>,
    pub phase: String,
    pub warnings: Option<String>,
    /// Into another database than the project's own.
    pub elsewhere: bool,
    pub parallel: bool,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl RestoreView {
    fn of(restore: &Restore) -> RestoreView {
        RestoreView {
            id: restore.id.0,
            name: restore.name.clone(),
            backup_id: restore.backup_id.map(|id| id.0),
            backup: restore.backup_name.clone(),
            namespaces: restore.namespaces(),
            phase: restore.phase.key().to_string(),
            warnings: restore.warnings.clone(),
            elsewhere: restore.target_url.is_some(),
            parallel: restore.parallel,
            started_at: restore.started_at,
            finished_at: restore.finished_at,
        }
    }
}

/// What an action answers: its message, and what it made or changed.
#[derive(Serialize, ToSchema)]
pub struct Done<T: Serialize> {
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item: Option<T>,
}

fn done<T: Serialize>(status: StatusCode, message: String, item: Option<T>) -> HttpResponse {
    json(status, &Done { message, item })
}

impl From<ProjectError> for ApiError {
    fn from(error: ProjectError) -> ApiError {
        match error {
            ProjectError::Invalid(errors) => ApiError::invalid(
                ProjectError::Invalid(Default::default()).to_string(),
                errors,
            ),
            other => AppError::from(other).into(),
        }
    }
}

/// A project any persona may look at (Users included), inside the person's scope.
async fn listing(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<ProjectListing, ApiError> {
    let id = ProjectId::from_path(id)?;
    Ok(projects::listing(&state.pool, user.scope(), id).await?)
}

/// Projects of the person's organizations, searched (`q`: the names the list shows) and, for
/// Partners, of one organization (`org`).
#[utoipa::path(get, path = "/api/v1/projects", tag = "projects",
    params(("q" = Option<String>, Query), ("org" = Option<i64>, Query), ("page" = Option<i64>, Query)),
    responses((status = 200, description = "A page of the list", body = ListAnswer<ProjectView>)),
    security(("bearer" = ["projects:read"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
    query: web::Query<ProjectsQuery>,
    paging: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsRead)?;
    let (scope, filter) = (user.scope(), query.filter(user));
    let list = projects::list(&state.pool, scope, filter, false).await?;
    Ok(in_pages(
        &req,
        list.projects.iter().map(ProjectView::of).collect(),
        paging.page,
    ))
}

/// Creates a project (its database checked, its bucket proved when backup is on).
#[utoipa::path(post, path = "/api/v1/projects", tag = "projects",
    request_body(description = "`name`, `organization_id` (Partners), `cloud_credential_id`, `ai_credential_id`, `database_url`, `backup_enabled`, `backup_credential_id`, `bucket`", content_type = "application/json"),
    responses((status = 201, body = ProjectView), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["projects:write"])))]
pub async fn create(
    state: web::Data<AppState>,
    api: ApiUser,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsWrite)?;
    user.require(&MANAGERS)?;
    let form = ProjectForm::parse(fields_of(body.into_inner())?);
    let project =
        projects::create(&state.runner, &state.settings.keyring, user, &api.ip, &form).await?;
    let listing = listing(&state, user, &project.id.to_string()).await?;
    Ok(json(StatusCode::CREATED, &ProjectView::of(&listing)))
}

/// Edits a project as its page does: the fields given change (`""` clears a credential), the
/// others stay; `database_url` is given without its password, `database_password` replaces it
/// (left out, it is kept for the same host, port and user); with `version`, refused (409) when
/// someone saved the project since.
#[utoipa::path(patch, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)),
    request_body(description = "any of `name`, `cloud_credential_id`, `ai_credential_id`, `database_url`, `database_password`, `version`", content_type = "application/json"),
    responses((status = 200, body = ProjectView), (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["projects:write"])))]
pub async fn update(
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsWrite)?;
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(&id)?;
    let keyring = &state.settings.keyring;
    let editing = projects::editing(&state.pool, keyring, user, id).await?;
    let form = EditForm::changing(&editing, fields_of(body.into_inner())?);
    projects::update(&state.runner, keyring, user, &api.ip, id, &form).await?;
    let listing = listing(&state, user, &id.to_string()).await?;
    Ok(json(StatusCode::OK, &ProjectView::of(&listing)))
}

/// Deletes a project once its backup is off, its backups are deleted and nothing of it runs
/// (409 saying which otherwise).
#[utoipa::path(delete, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, description = "`{message}`"), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = ["projects:write"])))]
pub async fn delete(
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsWrite)?;
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(&id)?;
    let project = projects::delete(&state.runner, user, &api.ip, id).await?;
    let message = projects::Success::Deleted {
        name: &project.name,
    }
    .to_string();
    Ok(done::<()>(StatusCode::OK, message, None))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{id}", tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = ProjectView), (status = 404, body = Problem)),
    security(("bearer" = ["projects:read"])))]
pub async fn show(
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsRead)?;
    let listing = listing(&state, user, &id).await?;
    Ok(json(StatusCode::OK, &ProjectView::of(&listing)))
}

/// Turns backup on with a backup credential and a bucket (the default bucket when empty),
/// after proving the bucket works.
#[utoipa::path(post, path = "/api/v1/projects/{id}/backup/enable", tag = "projects",
    params(("id" = i64, Path)),
    request_body(description = "`backup_credential_id`, `bucket`", content_type = "application/json"),
    responses((status = 200, body = Done<ProjectView>), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["projects:write"])))]
pub async fn enable(
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsWrite)?;
    let project = project_for(&state, user, &id).await?;
    let form: std::collections::HashMap<String, String> =
        fields_of(body.into_inner())?.into_iter().collect();
    let field = |key: &str| form.get(key).cloned().unwrap_or_default();
    let by = project_event(user, &api.ip, &project);
    let request = EnableRequest {
        credential: field("backup_credential_id"),
        bucket: field("bucket"),
    };
    let (runner, scope, actor) = (&state.runner, user.scope(), user.id());
    let ready = service::enable(runner, scope, actor, &project, &request, by).await?;
    let listing = listing(&state, user, &id).await?;
    let message = Success::Enabled { ready: &ready }.to_string();
    Ok(done(
        StatusCode::OK,
        message,
        Some(ProjectView::of(&listing)),
    ))
}

/// Turns backup off (refused while policies exist).
#[utoipa::path(post, path = "/api/v1/projects/{id}/backup/disable", tag = "projects",
    params(("id" = i64, Path)),
    responses((status = 200, body = Done<ProjectView>), (status = 409, body = Problem)),
    security(("bearer" = ["projects:write"])))]
pub async fn disable(
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::ProjectsWrite)?;
    let project = project_for(&state, user, &id).await?;
    let by = project_event(user, &api.ip, &project);
    service::disable(&state.runner, user.scope(), user.id(), &project, by).await?;
    let listing = listing(&state, user, &id).await?;
    let message = Success::Disabled.to_string();
    Ok(done(
        StatusCode::OK,
        message,
        Some(ProjectView::of(&listing)),
    ))
}

/// The project's policies.
#[utoipa::path(get, path = "/api/v1/projects/{id}/policies", tag = "backups",
    params(("id" = i64, Path), ("page" = Option<i64>, Query)),
    responses((status = 200, description = "A page of the list", body = ListAnswer<PolicyView>), (status = 404, body = Problem)),
    security(("bearer" = ["backups:read"])))]
pub async fn policies(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
    paging: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsRead)?;
    let id = ProjectId::from_path(&id)?;
    let policies = reads::policies(&state.pool, user.scope(), id).await?;
    Ok(in_pages(
        &req,
        policies.iter().map(PolicyView::of).collect(),
        paging.page,
    ))
}

const PER_PAGE: i64 = 50;

#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PageQuery {
    page: Option<i64>,
}

/// One page of a list, with the address of the next page when there is one.
fn paged<T: Serialize>(
    req: &HttpRequest,
    items: Vec<T>,
    total: i64,
    pagination: Pagination,
) -> HttpResponse {
    let next = (pagination.offset() + (items.len() as i64) < total)
        .then(|| format!("{}?page={}", req.path(), pagination.page + 1));
    json(
        StatusCode::OK,
        &super::ListAnswer {
            items,
            total,
            page: pagination.page,
            next,
        },
    )
}

/// A list read whole (a scope's projects, a project's policies: tens, not thousands) answered
/// a page of `PER_PAGE` at a time, with the total and the next page's address (the request's
/// other query parameters kept).
fn in_pages<T: Serialize>(req: &HttpRequest, items: Vec<T>, page: Option<i64>) -> HttpResponse {
    let page = page.unwrap_or(1).max(1);
    let total = items.len() as i64;
    let start = (page - 1).saturating_mul(PER_PAGE).min(total);
    let shown: Vec<T> = items
        .into_iter()
        .skip(start as usize)
        .take(PER_PAGE as usize)
        .collect();
    let next = (start + (shown.len() as i64) < total).then(|| {
        let mut query: Vec<(String, String)> =
            serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
        query.retain(|(key, _)| key != "page");
        query.push(("page".into(), (page + 1).to_string()));
        format!(
            "{}?{}",
            req.path(),
            serde_urlencoded::to_string(&query).unwrap_or_default()
        )
    });
    json(
        StatusCode::OK,
        &super::ListAnswer {
            items: shown,
            total,
            page,
            next,
        },
    )
}

/// Adds a policy (namespaces are checked against the database's schemas).
#[utoipa::path(post, path = "/api/v1/projects/{id}/policies", tag = "backups",
    params(("id" = i64, Path)),
    request_body(description = "`name`, `cron` (or `cron_preset`: hourly, daily, weekly, monthly; custom reads `cron`), `timezone` (UTC), `retention` (720h), `namespaces` (array), `drill` (off), `heartbeat_url` (optional)", content_type = "application/json"),
    responses((status = 201, body = Done<PolicyView>), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["backups:write"])))]
pub async fn create_policy(
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsWrite)?;
    let project = project_for(&state, user, &id).await?;
    let request = policy_request(fields_of(body.into_inner())?);
    let by = project_event(user, &api.ip, &project);
    let added = service::create_policy(&state.runner, user.id(), &project, &request, by).await?;
    let message = Success::PolicyAdded {
        name: &request.name,
        words: &added.words,
    }
    .to_string();
    Ok(done(
        StatusCode::CREATED,
        message,
        Some(PolicyView::of(&added.policy)),
    ))
}

/// Deletes a policy: its schedule stops; its backups stay until they expire.
#[utoipa::path(delete, path = "/api/v1/projects/{id}/policies/{policy_id}", tag = "backups",
    params(("id" = i64, Path), ("policy_id" = i64, Path)),
    responses((status = 200, description = "`{message}`"), (status = 404, body = Problem)),
    security(("bearer" = ["backups:write"])))]
pub async fn delete_policy(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsWrite)?;
    let (id, policy_id) = path.into_inner();
    let (project, policy) = policy_for(&state, user, &id, &policy_id).await?;
    let (by, name) = (project_event(user, &api.ip, &project), policy.name.clone());
    service::delete_policy(&state.runner, policy, by).await?;
    let message = Success::PolicyDeleted { name: &name }.to_string();
    Ok(done::<()>(StatusCode::OK, message, None))
}

/// Backup now: answers the new run (poll `GET …/backups/{backup_id}` for its phase).
#[utoipa::path(post, path = "/api/v1/projects/{id}/policies/{policy_id}/run", tag = "backups",
    params(("id" = i64, Path), ("policy_id" = i64, Path)),
    responses((status = 202, body = Done<BackupView>), (status = 409, body = Problem)),
    security(("bearer" = ["backups:write"])))]
pub async fn run_policy(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsWrite)?;
    let (id, policy_id) = path.into_inner();
    let (project, policy) = policy_for(&state, user, &id, &policy_id).await?;
    let (by, name) = (project_event(user, &api.ip, &project), policy.name.clone());
    let backup = service::backup_now(&state.runner, policy, by).await?;
    let backup = reads::backup(&state.pool, project.id, backup).await?;
    let message = Success::BackupStarted { policy: &name }.to_string();
    Ok(done(
        StatusCode::ACCEPTED,
        message,
        Some(BackupView::of(&backup)),
    ))
}

/// The project's backups, newest first, 50 a page.
#[utoipa::path(get, path = "/api/v1/projects/{id}/backups", tag = "backups",
    params(("id" = i64, Path), ("page" = Option<i64>, Query)),
    responses((status = 200, description = "A page of the list", body = ListAnswer<BackupView>), (status = 404, body = Problem)),
    security(("bearer" = ["backups:read"])))]
pub async fn backups(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsRead)?;
    let id = ProjectId::from_path(&id)?;
    let pagination = Pagination::new(query.page, PER_PAGE);
    let (backups, total) = reads::backups_page(&state.pool, user.scope(), id, pagination).await?;
    let items = backups.iter().map(BackupView::of).collect();
    Ok(paged(&req, items, total, pagination))
}

/// A backup any persona who sees the project may look at.
async fn visible_backup(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    backup_id: &str,
) -> Result<Backup, ApiError> {
    let id = ProjectId::from_path(id)?;
    let backup_id = backup_id
        .parse()
        .map(BackupId)
        .map_err(|_| AppError::NotFound)?;
    Ok(reads::visible_backup(&state.pool, user.scope(), id, backup_id).await?)
}

/// One backup, with its phase.
#[utoipa::path(get, path = "/api/v1/projects/{id}/backups/{backup_id}", tag = "backups",
    params(("id" = i64, Path), ("backup_id" = i64, Path)),
    responses((status = 200, body = BackupView), (status = 404, body = Problem)),
    security(("bearer" = ["backups:read"])))]
pub async fn backup(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsRead)?;
    let (id, backup_id) = path.into_inner();
    let backup = visible_backup(&state, user, &id, &backup_id).await?;
    Ok(json(StatusCode::OK, &BackupView::of(&backup)))
}

/// Deletes a backup and its object (refused while it runs).
#[utoipa::path(delete, path = "/api/v1/projects/{id}/backups/{backup_id}", tag = "backups",
    params(("id" = i64, Path), ("backup_id" = i64, Path)),
    responses((status = 200, description = "`{message}`"), (status = 409, body = Problem)),
    security(("bearer" = ["backups:write"])))]
pub async fn delete_backup(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsWrite)?;
    let (id, backup_id) = path.into_inner();
    let (project, backup) = backup_for(&state, user, &id, &backup_id).await?;
    let (by, name) = (project_event(user, &api.ip, &project), backup.name.clone());
    service::delete_backup(&state.runner, backup, by).await?;
    let message = Success::BackupDeleted { name: &name }.to_string();
    Ok(done::<()>(StatusCode::OK, message, None))
}

/// Starts a restore of a completed backup (`restore_name`, `namespaces`,
/// `target_database_url`, `parallel`, `age_identity`); poll `GET …/restores`.
#[utoipa::path(post, path = "/api/v1/projects/{id}/backups/{backup_id}/restore", tag = "backups",
    params(("id" = i64, Path), ("backup_id" = i64, Path)),
    request_body(description = "`restore_name`, `namespaces` (array), `target_database_url`, `parallel`, `age_identity`", content_type = "application/json"),
    responses((status = 202, body = Done<RestoreView>), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = ["backups:write"])))]
pub async fn restore(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
    body: Body,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsWrite)?;
    let (id, backup_id) = path.into_inner();
    let (project, backup) = backup_for(&state, user, &id, &backup_id).await?;
    let request = restore_request(fields_of(body.into_inner())?);
    let (by, project_id) = (project_event(user, &api.ip, &project), project.id);
    let name = service::restore(&state.runner, user.id(), project, backup, request, by).await?;
    let restore = reads::started_restore(&state.pool, project_id, name.clone())
        .await?
        .ok_or(AppError::NotFound)?;
    let message = Success::RestoreStarted { name: &name }.to_string();
    Ok(done(
        StatusCode::ACCEPTED,
        message,
        Some(RestoreView::of(&restore)),
    ))
}

/// Starts a restore check (drill): restored into a scratch database, compared, dropped.
#[utoipa::path(post, path = "/api/v1/projects/{id}/backups/{backup_id}/verify", tag = "backups",
    params(("id" = i64, Path), ("backup_id" = i64, Path)),
    responses((status = 202, description = "`{message}`"), (status = 409, body = Problem)),
    security(("bearer" = ["backups:write"])))]
pub async fn verify_backup(
    state: web::Data<AppState>,
    api: ApiUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsWrite)?;
    let (id, backup_id) = path.into_inner();
    let (project, backup) = backup_for(&state, user, &id, &backup_id).await?;
    let (by, name) = (project_event(user, &api.ip, &project), backup.name.clone());
    service::verify_backup(&state.runner, Some(user.id()), project, backup, Some(by)).await?;
    let message = Success::CheckStarted { backup: &name }.to_string();
    Ok(done::<()>(StatusCode::ACCEPTED, message, None))
}

/// The project's restores, newest first, 50 a page, with their phase and warnings.
#[utoipa::path(get, path = "/api/v1/projects/{id}/restores", tag = "backups",
    params(("id" = i64, Path), ("page" = Option<i64>, Query)),
    responses((status = 200, description = "A page of the list", body = ListAnswer<RestoreView>), (status = 404, body = Problem)),
    security(("bearer" = ["backups:read"])))]
pub async fn restores(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
    id: web::Path<String>,
    query: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::BackupsRead)?;
    let id = ProjectId::from_path(&id)?;
    let pagination = Pagination::new(query.page, PER_PAGE);
    let (restores, total) = reads::restores_page(&state.pool, user.scope(), id, pagination).await?;
    let items = restores.iter().map(RestoreView::of).collect();
    Ok(paged(&req, items, total, pagination))
}
