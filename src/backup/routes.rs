//! Backup actions of a project: enable and disable, add and delete policies, preview a cron
//! period, back up now, restore, delete a backup. Managers and Partners only; another
//! organization's project, policy or backup is "not found". Each handler authorizes, calls one
//! use case of `backup::service` and renders.
//!
//! Over 600 lines because each of its actions answers three ways (an htmx fragment, a
//! redirect without JavaScript, a refusal re-rendered in place), written beside its handler.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::backup::drill::{BackupTable, Drill};
use crate::backup::model::{Backup, BackupPolicy, Restore};
use crate::backup::policy;
use crate::backup::reads::{self, BackupRecord};
use crate::backup::service::{
    self, BackupError, EnableRequest, EncryptionRequest, PolicyRequest, RestoreRequest, Success,
};
use crate::backup::views::{Draft, PolicyForm, Preview, ProjectReply};
use crate::error::AppError;
use crate::ids::{BackupId, PolicyId, ProjectId};
use crate::projects::MANAGERS;
use crate::projects::model::Project;
use crate::startup::AppState;
use crate::web::confirm::{AskAgain, Confirm, ConfirmDelete};
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html, html_with_status, is_htmx, see_other};

/// The project of a backup action, checked for role and scope.
pub async fn project_for(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
) -> Result<Project, AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(id)?;
    Ok(reads::project(&state.pool, user.scope(), id).await?)
}

/// The project of an action on one of its policies (checked for role and scope) and that
/// policy, in one trip; another project's policy is "not found".
pub async fn policy_for(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    policy: &str,
) -> Result<(Project, BackupPolicy), AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(id)?;
    let policy = PolicyId(child_id(policy)?);
    Ok(reads::project_policy(&state.pool, user.scope(), id, policy).await?)
}

/// The project of an action on one of its backups (checked for role and scope) and that
/// backup, in one trip; another project's backup is "not found".
pub async fn backup_for(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    backup: &str,
) -> Result<(Project, Backup), AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(id)?;
    let backup = BackupId(child_id(backup)?);
    Ok(reads::project_backup(&state.pool, user.scope(), id, backup).await?)
}

/// A policy's or backup's id in a path.
fn child_id(text: &str) -> Result<i64, AppError> {
    text.parse().map_err(|_| AppError::NotFound)
}

/// The audit event of a request on `project` (the use case adds its action and fields).
fn event(state: &AppState, req: &HttpRequest, user: &CurrentUser, project: &Project) -> NewEvent {
    project_event(
        user,
        &client_ip(req, &state.settings.trusted_proxies),
        project,
    )
}

/// The audit event of a request on `project` from `client_ip`.
pub fn project_event(user: &CurrentUser, client_ip: &str, project: &Project) -> NewEvent {
    NewEvent::by(user, "", client_ip)
        .in_organization(Some(project.organization_id))
        .object("project", project.id.0, &project.name)
}

fn back_to(project: ProjectId, tab: &str) -> HttpResponse {
    see_other(&format!("/projects/{project}?tab={tab}"))
}

/// After an action: htmx gets the tab, a plain form a redirect with the flash message.
async fn answer(
    reply: &ProjectReply<'_>,
    project: ProjectId,
    tab: &str,
    message: String,
) -> Result<HttpResponse, AppError> {
    flash::success(reply.session, message);
    if is_htmx(reply.req) {
        return reply.render(project, tab, Draft::default()).await;
    }
    Ok(back_to(project, tab))
}

/// A refusal's message beside its field.
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EnableForm {
    #[serde(default)]
    backup_credential_id: String,
    #[serde(default)]
    bucket: String,
}

/// POST /projects/{id}/backup/enable
pub async fn enable(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<EnableForm>,
) -> Result<HttpResponse, AppError> {
    let project = project_for(&state, &user, &id).await?;
    let (by, form) = (event(&state, &req, &user, &project), form.into_inner());
    let request = EnableRequest {
        credential: form.backup_credential_id,
        bucket: form.bucket,
    };
    let reply = ProjectReply::new(&req, &state, &session, &user);
    let (runner, scope, actor) = (&state.runner, user.scope(), user.id());
    let error = match service::enable(runner, scope, actor, &project, &request, by).await {
        // (The empty Schedules tab says a policy is needed next: said once.)
        Ok(ready) => {
            let message = Success::Enabled { ready: &ready }.to_string();
            return answer(&reply, project.id, "schedules", message).await;
        }
        Err(error) => error,
    };
    // A refusal shows the page again, the reason beside the field, the choices kept.
    let field = match &error {
        BackupError::NoSuchCredential => "backup_credential_id",
        BackupError::Refused(_) => "bucket",
        _ => return Err(error.into()),
    };
    let draft = Draft {
        errors: FieldErrors::one(field, error),
        enable: Some((request.credential, request.bucket)),
        ..Draft::default()
    };
    reply.render(project.id, "schedules", draft).await
}

/// POST /projects/{id}/backup/disable
pub async fn disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let project = project_for(&state, &user, &id).await?;
    let by = event(&state, &req, &user, &project);
    let reply = ProjectReply::new(&req, &state, &session, &user);
    match service::disable(&state.runner, user.scope(), user.id(), &project, by).await {
        Ok(()) => {
            let message = Success::Disabled.to_string();
            answer(&reply, project.id, "schedules", message).await
        }
        // Refused (policies exist, already off): the page again, the reason beside the button.
        Err(refused @ (BackupError::AlreadyDisabled | BackupError::PoliciesExist)) => {
            let draft = Draft {
                errors: FieldErrors::one("disable", refused),
                status: Some(StatusCode::CONFLICT),
                ..Draft::default()
            };
            reply.render(project.id, "schedules", draft).await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct EncryptionForm {
    encrypt: String,
    age_recipients: String,
    age_identity: String,
    confirm_off: String,
}

/// POST /projects/{id}/backup/encryption: age recipients, the kept identity, on or off.
pub async fn encryption(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<EncryptionForm>,
) -> Result<HttpResponse, AppError> {
    let project = project_for(&state, &user, &id).await?;
    let form = form.into_inner();
    let request = EncryptionRequest {
        encrypt: form.encrypt == "on",
        recipients: form.age_recipients.clone(),
        identity: form.age_identity,
        confirm_off: form.confirm_off == "on",
    };
    let by = event(&state, &req, &user, &project);
    let reply = ProjectReply::new(&req, &state, &session, &user);
    match service::set_encryption(&state.runner, user.id(), &project, request, by).await {
        Ok(message) => answer(&reply, project.id, "backups", message).await,
        Err(BackupError::Form(errors)) => {
            let draft = Draft {
                errors,
                recipients: Some(form.age_recipients),
                ..Draft::default()
            };
            reply.render(project.id, "backups", draft).await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "backup/encryption_key.html")]
struct KeyPage {
    page: Page,
    project_id: ProjectId,
    project_name: String,
    identity: String,
    recipient: String,
    kept: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct GenerateForm {
    keep_identity: String,
}

/// POST /projects/{id}/backup/encryption/generate: a new key pair, its identity shown once.
pub async fn generate_key(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<GenerateForm>,
) -> Result<HttpResponse, AppError> {
    let project = project_for(&state, &user, &id).await?;
    let keep = form.keep_identity == "on";
    let by = event(&state, &req, &user, &project);
    let (identity, recipient) =
        service::generate_key(&state.runner, user.id(), &project, keep, by).await?;
    let mut response = html(&KeyPage {
        page: Page::new(&user, &session, "projects", "Your age key"),
        project_id: project.id,
        project_name: project.name.clone(),
        identity,
        recipient,
        kept: keep,
    })?;
    // The identity is shown once: never kept by a browser or a proxy.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// POST /projects/{id}/policies
pub async fn create_policy(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let project = project_for(&state, &user, &id).await?;
    let request = policy_request(form.into_inner());
    let by = event(&state, &req, &user, &project);
    let reply = ProjectReply::new(&req, &state, &session, &user);
    match service::create_policy(&state.runner, user.id(), &project, &request, by).await {
        Ok(added) => {
            let (name, words) = (&request.name, &added.words);
            let message = Success::PolicyAdded { name, words }.to_string();
            answer(&reply, project.id, "schedules", message).await
        }
        Err(BackupError::Form(errors)) => {
            // A period that cannot be read is said once, beside its field, not again below.
            let preview = Some(Preview::of(&request.cron, &request.timezone))
                .filter(|preview| preview.error.is_none());
            let draft = Draft {
                preview,
                form: PolicyForm::from(request),
                errors,
                ..Draft::default()
            };
            reply.render(project.id, "schedules", draft).await
        }
        Err(error) => Err(error.into()),
    }
}

/// The policy form's fields (namespaces repeat; time zone and retention have defaults; a
/// schedule preset stands for its cron period).
pub fn policy_request(fields: Vec<(String, String)>) -> PolicyRequest {
    let namespaces: Vec<String> = fields
        .iter()
        .filter(|(key, value)| key == "namespaces" && !value.trim().is_empty())
        .map(|(_, value)| value.trim().to_string())
        .collect();
    let map: HashMap<String, String> = fields.into_iter().collect();
    let get = |key: &str, default: &str| match map.get(key).map(|v| v.trim()) {
        Some(value) if !value.is_empty() => value.to_string(),
        _ => default.to_string(),
    };
    // The schedule select (`cron_preset`) wins unless it says Custom: without JavaScript it
    // cannot fill the cron field itself. A request with only `cron` is read as before.
    let cron = map
        .get("cron_preset")
        .and_then(|preset| policy::preset_pattern(preset))
        .map_or_else(|| get("cron", ""), str::to_string);
    PolicyRequest {
        name: get("name", ""),
        cron,
        cron_preset: get("cron_preset", policy::CUSTOM).to_lowercase(),
        timezone: get("timezone", "UTC"),
        retention: get("retention", "720h"),
        namespaces,
        drill: get("drill", "off"),
        heartbeat_url: get("heartbeat_url", ""),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PreviewQuery {
    #[serde(default)]
    cron: String,
    #[serde(default)]
    timezone: String,
}

#[derive(Template)]
#[template(path = "backup/_cron_preview.html")]
struct PreviewFragment {
    preview: Preview,
}

/// GET /projects/{id}/policies/preview: the cron period in words and its next three runs.
pub async fn preview(
    state: web::Data<AppState>,
    user: CurrentUser,
    id: web::Path<String>,
    query: web::Query<PreviewQuery>,
) -> Result<HttpResponse, AppError> {
    project_for(&state, &user, &id).await?;
    html(&PreviewFragment {
        preview: Preview::of(&query.cron, &query.timezone),
    })
}

/// POST /projects/{id}/policies/preview: the add-policy form again as typed, with its
/// cron period in words and next runs (browsers without JavaScript; nothing is saved).
pub async fn preview_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let project = project_for(&state, &user, &id).await?;
    let request = policy_request(form.into_inner());
    let draft = Draft {
        preview: Some(Preview::of(&request.cron, &request.timezone)),
        form: PolicyForm::from(request),
        ..Draft::default()
    };
    let reply = ProjectReply::new(&req, &state, &session, &user);
    reply.render(project.id, "schedules", draft).await
}

/// POST /projects/{id}/policies/{policy_id}/{action}: delete, run (backup now).
pub async fn policy_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, policy_id, action) = path.into_inner();
    let (project, policy) = policy_for(&state, &user, &id, &policy_id).await?;
    let (by, name) = (event(&state, &req, &user, &project), policy.name.clone());
    let (tab, message) = match action.as_str() {
        "delete" => {
            service::delete_policy(&state.runner, policy, by).await?;
            let message = Success::PolicyDeleted { name: &name };
            ("schedules", message.to_string())
        }
        "run" => {
            service::backup_now(&state.runner, policy, by).await?;
            (
                "backups",
                Success::BackupStarted { policy: &name }.to_string(),
            )
        }
        _ => return Err(AppError::NotFound),
    };
    let reply = ProjectReply::new(&req, &state, &session, &user);
    answer(&reply, project.id, tab, message).await
}

/// Only completed backups whose object still exists can be restored.
fn restorable(backup: &Backup) -> Result<(), AppError> {
    if backup.restorable() {
        Ok(())
    } else {
        Err(BackupError::NotRestorable(backup.name.clone()).into())
    }
}

/// What a restore form shows: blank, or again after a refusal with the values typed (never the
/// secrets: a target URL holds a password, an identity is a key) and each field's message.
#[derive(Default)]
struct RestoreDraft {
    name: String,
    namespaces: Vec<String>,
    parallel: bool,
    /// A target database URL was given: asked for again.
    had_target: bool,
    /// An age identity was given: asked for again.
    had_identity: bool,
    errors: FieldErrors,
}

impl RestoreDraft {
    fn of(request: &RestoreRequest, errors: FieldErrors) -> RestoreDraft {
        RestoreDraft {
            name: request.name.clone(),
            namespaces: request.namespaces.clone(),
            parallel: request.parallel,
            had_target: !request.target_database_url.trim().is_empty(),
            had_identity: !request.age_identity.trim().is_empty(),
            errors,
        }
    }

    fn checked(&self, namespace: &str) -> bool {
        self.namespaces.iter().any(|n| n == namespace)
    }

    /// 422 with a refusal, else 200.
    fn status(&self) -> StatusCode {
        self.errors.status()
    }
}

#[derive(Template)]
#[template(path = "backup/_restore.html")]
struct RestoreFormFragment {
    project_id: ProjectId,
    backup: Backup,
    namespaces: Vec<String>,
    csrf: String,
    inline: bool,
    /// The recipients an encrypted backup was sealed to, shortened (empty: not encrypted).
    encrypted_to: String,
    identity_kept: bool,
    draft: RestoreDraft,
}

#[derive(Template)]
#[template(path = "backup/restore.html")]
struct RestorePage {
    page: Page,
    project_name: String,
    project_id: ProjectId,
    backup: Backup,
    namespaces: Vec<String>,
    csrf: String,
    inline: bool,
    encrypted_to: String,
    identity_kept: bool,
    draft: RestoreDraft,
}

/// GET /projects/{id}/backups/{backup_id}/restore: a backup's restore form, loaded into its
/// row when it is opened (a hundred rows do not each carry a form), or a page of its own
/// without JavaScript. GET …/delete: the question before a delete (browsers without
/// JavaScript; with it, htmx asks with a dialog and posts). Other actions have no page.
pub async fn backup_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, backup_id, action) = path.into_inner();
    user.require(&MANAGERS)?;
    if action != "restore" && action != "delete" {
        return Err(AppError::NotFound);
    }
    let (project, backup) = backup_for(&state, &user, &id, &backup_id).await?;
    if action == "delete" {
        return delete_question(&project, &backup).render(&user, &session, false);
    }
    restorable(&backup)?;
    let reply = ProjectReply::new(&req, &state, &session, &user);
    restore_form(&reply, &project, backup, RestoreDraft::default()).await
}

/// The question before a backup is deleted.
fn delete_question(project: &Project, backup: &Backup) -> ConfirmDelete {
    ConfirmDelete {
        section: "projects",
        name: backup.name.clone(),
        consequence: "The backup and its stored object are deleted: it can no longer be \
                      restored. This cannot be undone."
            .into(),
        action: format!("/projects/{}/backups/{}/delete", project.id, backup.id.0),
        back: format!("/projects/{}?tab=backups", project.id),
        back_label: project.name.clone(),
        refusal: None,
    }
}

/// The restore form of `backup`: in its row's dialog for htmx, else on its page; with a
/// refusal, 422 and (for htmx) in place of the form that was sent.
async fn restore_form(
    reply: &ProjectReply<'_>,
    project: &Project,
    backup: Backup,
    draft: RestoreDraft,
) -> Result<HttpResponse, AppError> {
    let csrf = crate::auth::csrf::token(reply.session);
    let encrypted_to = sealed_to(&backup);
    let identity_kept =
        !encrypted_to.is_empty() && reads::identity_kept(&reply.state.pool, project.id).await?;
    let status = draft.status();
    let form = RestoreFormFragment {
        project_id: project.id,
        namespaces: backup.namespaces(),
        backup,
        csrf,
        inline: true,
        encrypted_to,
        identity_kept,
        draft,
    };
    if !is_htmx(reply.req) {
        return html_with_status(status, &RestorePage::of(reply, project, form));
    }
    let selector = format!("#restore-form-{}", form.backup.id.0);
    let mut response = html_with_status(status, &form)?;
    if status != StatusCode::OK {
        // The refused form is replaced where it is, not the tab its success would swap.
        in_place_of(&mut response, &selector);
    }
    Ok(response)
}

/// The recipients an encrypted backup was sealed to, shortened (empty: not encrypted).
fn sealed_to(backup: &Backup) -> String {
    backup
        .encrypted_to()
        .map(|recipients| {
            recipients
                .iter()
                .map(|r| crate::backup::encryption::short(r))
                .collect::<Vec<_>>()
                .join(" or ")
        })
        .unwrap_or_default()
}

impl RestorePage {
    /// The restore `form` on a page of its own (browsers without JavaScript).
    fn of(reply: &ProjectReply<'_>, project: &Project, form: RestoreFormFragment) -> RestorePage {
        let title = format!("Restore {}", form.backup.name);
        RestorePage {
            page: Page::new(reply.user, reply.session, "projects", &title),
            project_name: project.name.clone(),
            project_id: form.project_id,
            backup: form.backup,
            namespaces: form.namespaces,
            csrf: form.csrf,
            inline: false,
            encrypted_to: form.encrypted_to,
            identity_kept: form.identity_kept,
            draft: form.draft,
        }
    }
}

/// A drill as the backup page lists it.
struct DrillRow {
    phase: String,
    started: String,
    duration: String,
    compared: String,
    reason: String,
    mismatches: Vec<String>,
}

impl DrillRow {
    fn of(drill: &Drill) -> DrillRow {
        DrillRow {
            phase: drill.phase.to_string(),
            started: drill
                .started_at
                .map(crate::web::words::utc_second)
                .unwrap_or_default(),
            duration: drill
                .duration()
                .map(|d| format!("{:.1} s", d.num_milliseconds() as f64 / 1000.0))
                .unwrap_or_default(),
            compared: format!(
                "{} tables, {} rows",
                drill.tables_compared, drill.rows_compared
            ),
            reason: drill.reason.clone().unwrap_or_default(),
            mismatches: drill.mismatches.iter().flatten().cloned().collect(),
        }
    }
}

#[derive(Template)]
#[template(path = "backup/detail.html")]
struct BackupDetail {
    page: Page,
    project_id: ProjectId,
    project_name: String,
    backup: Backup,
    can_manage: bool,
    csrf: String,
    size: String,
    encrypted_to: Vec<String>,
    tables: Vec<BackupTable>,
    drills: Vec<DrillRow>,
    restores: Vec<Restore>,
}

impl BackupDetail {
    fn of(record: BackupRecord, user: &CurrentUser, session: &Session) -> BackupDetail {
        let BackupRecord {
            project,
            backup,
            tables,
            drills,
            restores,
        } = record;
        BackupDetail {
            page: Page::new(user, session, "projects", &backup.name),
            project_id: project.id,
            project_name: project.name,
            can_manage: MANAGERS.contains(&user.role()),
            csrf: crate::auth::csrf::token(session),
            size: backup
                .size_bytes
                .map(|bytes| format!("{bytes} bytes"))
                .unwrap_or_default(),
            encrypted_to: backup.encrypted_to().unwrap_or_default(),
            tables,
            drills: drills.iter().map(DrillRow::of).collect(),
            restores,
            backup,
        }
    }
}

/// GET /projects/{id}/backups/{backup_id}: a backup, what it holds (tables and rows at dump
/// time), its drills and restores. Anyone who may see the project.
pub async fn backup_detail(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, backup_id) = path.into_inner();
    let id = ProjectId::from_path(&id)?;
    let backup_id = BackupId(child_id(&backup_id)?);
    let record = reads::backup_record(&state.pool, user.scope(), id, backup_id).await?;
    html(&BackupDetail::of(record, &user, &session))
}

/// POST /projects/{id}/backups/{backup_id}/{action}: restore, verify (a drill), delete.
pub async fn backup_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let (id, backup_id, action) = path.into_inner();
    let (project, backup) = backup_for(&state, &user, &id, &backup_id).await?;
    let (by, project_id, name) = (
        event(&state, &req, &user, &project),
        project.id,
        backup.name.clone(),
    );
    let reply = ProjectReply::new(&req, &state, &session, &user);
    let message = match action.as_str() {
        "delete" => {
            service::delete_backup(&state.runner, backup, by).await?;
            Success::BackupDeleted { name: &name }.to_string()
        }
        "restore" => return restore(&reply, project, backup, form.into_inner(), by).await,
        "verify" => {
            service::verify_backup(&state.runner, Some(user.id()), project, backup, Some(by))
                .await?;
            Success::CheckStarted { backup: &name }.to_string()
        }
        _ => return Err(AppError::NotFound),
    };
    answer(&reply, project_id, "backups", message).await
}

/// A restore as its form sent it. The whole form is checked before anything asks or starts
/// (a refusal is shown beside its field in the form that was sent); one into the project
/// database asks first when the form says so.
async fn restore(
    reply: &ProjectReply<'_>,
    project: Project,
    backup: Backup,
    fields: Vec<(String, String)>,
    by: NewEvent,
) -> Result<HttpResponse, AppError> {
    let asks_first = fields
        .iter()
        .any(|(key, value)| key == CONFIRM_IN_PLACE && value == "ask");
    let request = restore_request(fields);
    let runner = &reply.state.runner;
    let checked = match service::check_restore(runner, &project, &backup, &request).await {
        Ok(checked) => checked,
        Err(BackupError::Form(errors)) => {
            let draft = RestoreDraft::of(&request, errors);
            return restore_form(reply, &project, backup, draft).await;
        }
        Err(error) => return Err(error.into()),
    };
    if asks_first && checked.in_place() {
        let (req, session, user) = (reply.req, reply.session, reply.user);
        return confirm_restore(req, session, user, &project, &backup, &checked);
    }
    let (project_id, actor) = (project.id, reply.user.id());
    let name = service::start_restore(runner, actor, project, backup, checked, by).await?;
    let message = Success::RestoreStarted { name: &name }.to_string();
    answer(reply, project_id, "restores", message).await
}

/// The restore form's field that only keyhold's own page sends (SPEC §6's fields stay as they
/// are for other tools): `ask` makes a restore into the project database ask first, `yes` is
/// the answer.
const CONFIRM_IN_PLACE: &str = "confirm_in_place";

/// The question before a restore replaces what the project database holds: the choices made,
/// what is replaced, Confirm (the same fields posted again, answered) and Cancel. With htmx it
/// takes the place of the restore form.
fn confirm_restore(
    req: &HttpRequest,
    session: &Session,
    user: &CurrentUser,
    project: &Project,
    backup: &Backup,
    checked: &service::CheckedRestore,
) -> Result<HttpResponse, AppError> {
    let held = backup.namespaces();
    let namespaces = if checked.namespaces.is_empty() {
        format!("all it holds: {}", held.join(", "))
    } else {
        checked.namespaces.join(", ")
    };
    let replaced = if checked.namespaces.is_empty() {
        &held
    } else {
        &checked.namespaces
    };
    let replaced = match replaced.as_slice() {
        [one] => format!("the namespace {one} is"),
        many => format!("the namespaces {} are", many.join(", ")),
    };
    let failure = if checked.parallel {
        "Parallel restore: if it fails, what was restored so far stays."
    } else {
        "It runs in one transaction: if it fails, nothing changes."
    };
    let mut fields = vec![("restore_name".to_string(), checked.name.clone())];
    fields.extend(
        checked
            .namespaces
            .iter()
            .map(|namespace| ("namespaces".to_string(), namespace.clone())),
    );
    if checked.parallel {
        fields.push(("parallel".into(), "on".into()));
    }
    fields.push((CONFIRM_IN_PLACE.into(), "yes".into()));
    let ask_again = checked
        .has_identity()
        .then(|| AskAgain {
            name: "age_identity",
            label: "age identity for this restore".into(),
            help: "Enter it again: it is never sent back.".into(),
        })
        .into_iter()
        .collect();
    let form_id = format!("restore-form-{}", backup.id.0);
    let question = Confirm {
        section: "projects",
        title: format!("Restore {} into the project database?", backup.name),
        consequence: format!(
            "In {}'s database, {replaced} replaced by what {} holds: \
             the tables, views and other objects there are dropped and created again, and rows written \
             since the backup are lost. {failure}",
            project.name, backup.name
        ),
        choices: vec![
            ("Restore name".into(), checked.name.clone()),
            ("Namespaces".into(), namespaces),
            (
                "Parallel restore".into(),
                if checked.parallel { "yes" } else { "no" }.into(),
            ),
        ],
        action: format!("/projects/{}/backups/{}/restore", project.id, backup.id.0),
        fields,
        ask_again,
        button: format!("Replace with {}", backup.name),
        error_id: format!("{form_id}-error"),
        form_id: form_id.clone(),
        back: format!("/projects/{}?tab=backups", project.id),
        back_label: project.name.clone(),
        cancel: "Cancel".into(),
        refusal: None,
        htmx_target: is_htmx(req).then(|| "#backup-tab".to_string()),
    };
    if is_htmx(req) {
        let mut response = question.fragment(session)?;
        in_place_of(&mut response, &format!("#{form_id}"));
        return Ok(response);
    }
    question.render(user, session, false)
}

/// Makes htmx swap `response` in place of `selector` (the form that was sent) instead of the
/// target its success would swap.
fn in_place_of(response: &mut HttpResponse, selector: &str) {
    let headers = response.headers_mut();
    if let Ok(target) = HeaderValue::from_str(selector) {
        headers.insert(HeaderName::from_static("hx-retarget"), target);
    }
    headers.insert(
        HeaderName::from_static("hx-reswap"),
        HeaderValue::from_static("outerHTML"),
    );
}

/// The restore form's fields (namespaces repeat).
pub fn restore_request(fields: Vec<(String, String)>) -> RestoreRequest {
    let namespaces = fields
        .iter()
        .filter(|(key, value)| key == "namespaces" && !value.is_empty())
        .map(|(_, value)| value.clone())
        .collect();
    let map: HashMap<String, String> = fields.into_iter().collect();
    RestoreRequest {
        name: map.get("restore_name").cloned().unwrap_or_default(),
        namespaces,
        target_database_url: map.get("target_database_url").cloned().unwrap_or_default(),
        parallel: map.get("parallel").is_some_and(|value| value == "on"),
        age_identity: map.get("age_identity").cloned().unwrap_or_default(),
    }
}
