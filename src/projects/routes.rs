//! Project pages: the list, the create form, and a project's page, whose Backup tabs
//! `backup::views` renders. Users may look; Managers and Partners change things.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::auth::{CurrentUser, Role};
use crate::backup::views::{Draft, PolicyForm, Preview, render_project};
use crate::credentials::model::CredentialOption;
use crate::db;
use crate::error::AppError;
use crate::projects::MANAGERS;
use crate::projects::model::{Project, ProjectId, ProjectListing};
use crate::projects::service::{self, Options, ProjectError, ProjectForm};
use crate::startup::AppState;
use crate::web::form::{Choice, FieldErrors};
use crate::web::{Page, client_ip, flash, html, html_with_status, see_other};

#[derive(Template)]
#[template(path = "projects/list.html")]
struct ProjectsPage {
    page: Page,
    projects: Vec<ProjectListing>,
    can_manage: bool,
}

/// GET /projects
pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    let scope = user.scope();
    let projects = db::run(&state.pool, move |conn| Project::list(conn, &scope)).await?;
    html(&ProjectsPage {
        page: Page::new(&user, &session, "projects", "Projects"),
        projects,
        can_manage: MANAGERS.contains(&user.role()),
    })
}

#[derive(Template)]
#[template(path = "projects/new.html")]
struct NewProjectPage {
    page: Page,
    is_partner: bool,
    organizations: Vec<Choice>,
    cloud: Vec<Choice>,
    ai: Vec<Choice>,
    backup: Vec<Choice>,
    name: String,
    bucket: String,
    backup_enabled: bool,
    errors: FieldErrors,
}

fn new_page(
    user: &CurrentUser,
    session: &Session,
    options: &Options,
    form: &ProjectForm,
    errors: FieldErrors,
) -> NewProjectPage {
    let is_partner = user.role() == Role::Partner;
    let organization = match user.identity.organization_id {
        Some(own) if !is_partner => Some(own),
        _ => options
            .organizations
            .iter()
            .find(|o| o.id.to_string() == form.organization_id)
            .or(options.organizations.first())
            .map(|o| o.id),
    };
    // The lists follow the organization: only its credentials, its default pre-selected.
    let choices = |list: &[CredentialOption], chosen: &str, none: &str| {
        let own: Vec<CredentialOption> = list
            .iter()
            .filter(|option| Some(option.organization_id) == organization)
            .cloned()
            .collect();
        CredentialOption::choices(
            &own,
            &options.organizations,
            organization,
            chosen,
            is_partner,
            none,
        )
    };
    NewProjectPage {
        page: Page::new(user, session, "projects", "New project"),
        is_partner,
        organizations: options
            .organizations
            .iter()
            .map(|o| Choice {
                value: o.id.to_string(),
                label: o.name.clone(),
                selected: Some(o.id) == organization,
            })
            .collect(),
        cloud: choices(&options.cloud, &form.cloud_credential_id, "— none —"),
        ai: choices(&options.ai, &form.ai_credential_id, "— none —"),
        backup: choices(&options.backup, &form.backup_credential_id, "— choose —"),
        name: form.name.clone(),
        bucket: form.bucket.clone(),
        backup_enabled: form.backup_enabled,
        errors,
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NewQuery {
    organization_id: String,
}

/// GET /projects/new (`?organization_id=`: the lists of that organization, which htmx takes
/// from the page when a Partner changes the Organization).
pub async fn new(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    query: web::Query<NewQuery>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let options = service::options(&state.pool, user.scope()).await?;
    let form = ProjectForm {
        organization_id: query.into_inner().organization_id,
        ..ProjectForm::default()
    };
    html(&new_page(
        &user,
        &session,
        &options,
        &form,
        FieldErrors::default(),
    ))
}

/// POST /projects
pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let form = ProjectForm::parse(form.into_inner());
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let project =
        match service::create(&state.runner, &state.settings.keyring, &user, &ip, &form).await {
            Ok(project) => project,
            Err(ProjectError::Invalid(errors)) => {
                let options = service::options(&state.pool, user.scope()).await?;
                return html_with_status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &new_page(&user, &session, &options, &form, errors),
                );
            }
            Err(ProjectError::Store(error)) => return Err(error),
        };
    flash::success(&session, format!("Project {} created.", project.name));
    Ok(see_other(&format!("/projects/{}", project.id)))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ShowQuery {
    tab: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
}

/// GET /projects/{id}
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    query: web::Query<ShowQuery>,
) -> Result<HttpResponse, AppError> {
    let id = ProjectId::from_path(&id)?;
    let preview = query
        .cron
        .as_deref()
        .filter(|cron| !cron.trim().is_empty())
        .map(|cron| Preview::of(cron, query.timezone.as_deref().unwrap_or("UTC")));
    let form = PolicyForm {
        cron: query.cron.clone().unwrap_or_else(|| "0 0 * * *".into()),
        timezone: query.timezone.clone().unwrap_or_else(|| "UTC".into()),
        retention: "720h".into(),
        ..PolicyForm::default()
    };
    let tab = query.tab.clone().unwrap_or_default();
    render_project(
        &req,
        &state,
        &session,
        &user,
        id,
        &tab,
        Draft {
            form,
            errors: FieldErrors::default(),
            preview,
            ..Draft::default()
        },
    )
    .await
}
