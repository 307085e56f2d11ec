//! Project pages: the list, the create form, and a project's page, whose Backup tabs
//! `backup::views` renders. Users may look; Managers and Partners change things.

use std::collections::HashMap;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::accounts::model::{Organization, OrganizationId};
use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Role, Scope};
use crate::backup::database::DataSource;
use crate::backup::runner::{check_bucket_name, default_bucket};
use crate::backup::service::ready_bucket;
use crate::backup::views::{Draft, PolicyForm, Preview, render_project};
use crate::credentials::model::{Credential, CredentialId, CredentialOption};
use crate::credentials::provider::Kind;
use crate::db;
use crate::error::AppError;
use crate::projects::MANAGERS;
use crate::projects::model::{NewProject, Project, ProjectId, ProjectListing, SourceUse};
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

/// What the create form holds.
#[derive(Default, Clone)]
struct ProjectForm {
    name: String,
    organization_id: String,
    cloud_credential_id: String,
    ai_credential_id: String,
    database_url: String,
    backup_enabled: bool,
    backup_credential_id: String,
    bucket: String,
}

impl ProjectForm {
    fn parse(fields: Vec<(String, String)>) -> ProjectForm {
        let map: HashMap<String, String> = fields.into_iter().collect();
        let get = |key: &str| {
            map.get(key)
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        ProjectForm {
            name: get("name"),
            organization_id: get("organization_id"),
            cloud_credential_id: get("cloud_credential_id"),
            ai_credential_id: get("ai_credential_id"),
            database_url: get("database_url"),
            backup_enabled: matches!(get("backup_enabled").as_str(), "on" | "true" | "1"),
            backup_credential_id: get("backup_credential_id"),
            bucket: get("bucket"),
        }
    }
}

/// Everything a project form chooses from, inside the person's scope.
struct Options {
    organizations: Vec<Organization>,
    cloud: Vec<CredentialOption>,
    ai: Vec<CredentialOption>,
    backup: Vec<CredentialOption>,
}

async fn options(state: &AppState, scope: Scope) -> Result<Options, AppError> {
    Ok(db::run(&state.pool, move |conn| {
        Ok::<_, AppError>(Options {
            organizations: Organization::list(conn, &scope)?,
            cloud: Credential::options(conn, &scope, Kind::Cloud)?,
            ai: Credential::options(conn, &scope, Kind::Ai)?,
            backup: Credential::options(conn, &scope, Kind::Backup)?,
        })
    })
    .await?)
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
    let options = options(&state, user.scope()).await?;
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

/// Resolves an optional credential id of the form: it must be one of `options` (unlocked, in
/// scope) and belong to `organization`.
fn chosen_credential(
    text: &str,
    options: &[CredentialOption],
    organization: OrganizationId,
    field: &'static str,
    errors: &mut FieldErrors,
) -> Option<CredentialId> {
    if text.is_empty() {
        return None;
    }
    let found = options
        .iter()
        .find(|o| o.id.to_string() == text && o.organization_id == organization)
        .map(|o| o.id);
    if found.is_none() {
        errors.add(
            field,
            "Choose an unlocked credential of the project's organization.",
        );
    }
    found
}

/// Checks a project name: 3–30 letters, digits and -.
pub fn check_project_name(name: &str) -> Result<(), String> {
    crate::credentials::provider::check_name(Kind::Cloud, name)
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
    let options = options(&state, user.scope()).await?;
    let mut errors = FieldErrors::default();
    let organization = match user.identity.organization_id {
        Some(own) if user.role() != Role::Partner => {
            options.organizations.iter().find(|o| o.id == own)
        }
        _ => options
            .organizations
            .iter()
            .find(|o| o.id.to_string() == form.organization_id),
    }
    .cloned();
    errors.check("name", check_project_name(&form.name));
    let Some(organization) = organization else {
        errors.add("organization_id", "Choose one of your organizations.");
        return html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &new_page(&user, &session, &options, &form, errors),
        );
    };
    if errors.get("name").is_none() {
        let (id, name) = (organization.id, form.name.clone());
        if db::run(&state.pool, move |conn| {
            Project::name_taken(conn, id, &name)
        })
        .await?
        {
            errors.add("name", format!("{} already exists", form.name));
        }
    }
    let cloud = chosen_credential(
        &form.cloud_credential_id,
        &options.cloud,
        organization.id,
        "cloud_credential_id",
        &mut errors,
    );
    let ai = chosen_credential(
        &form.ai_credential_id,
        &options.ai,
        organization.id,
        "ai_credential_id",
        &mut errors,
    );
    let backup_credential = if form.backup_enabled {
        let chosen = chosen_credential(
            &form.backup_credential_id,
            &options.backup,
            organization.id,
            "backup_credential_id",
            &mut errors,
        );
        if chosen.is_none() && errors.get("backup_credential_id").is_none() {
            errors.add("backup_credential_id", "Choose the backup credential.");
        }
        chosen
    } else {
        None
    };
    let bucket = if form.bucket.is_empty() {
        default_bucket(&organization.name, &form.name)
    } else {
        form.bucket.clone()
    };
    if form.backup_enabled {
        errors.check("bucket", check_bucket_name(&bucket));
    }
    let identity = match DataSource::parse(&form.database_url) {
        Err(message) => {
            errors.add("database_url", message);
            None
        }
        Ok(source) => match state
            .runner
            .check_source(
                &source,
                SourceUse::DataSource {
                    organization: organization.id,
                    project: None,
                },
            )
            .await
        {
            Ok(checked) => Some((checked.identity.identity, checked.schemas)),
            Err(message) => {
                errors.add("database_url", message);
                None
            }
        },
    };
    if let (Some(credential), true) = (backup_credential, errors.is_empty())
        && let Err(message) = ready_bucket(&state.runner, credential, &bucket).await
    {
        errors.add("bucket", message);
    }
    if !errors.is_empty() {
        return html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &new_page(&user, &session, &options, &form, errors),
        );
    }

    let keyring = state.settings.keyring.clone();
    let event = NewEvent::by(
        &user,
        "project.create",
        &client_ip(&req, &state.settings.trusted_proxies),
    )
    .in_organization(Some(organization.id));
    let actor = user.id();
    let (name, url) = (form.name.clone(), form.database_url.clone());
    let backup = backup_credential.map(|credential| (credential, bucket));
    let project = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            // Checked again under a lock on the database's identity: another organization's
            // project made meanwhile on the same database wins, this one is refused.
            if let Some((identity, _)) = &identity {
                let usage = SourceUse::DataSource {
                    organization: organization.id,
                    project: None,
                };
                SourceUse::lock(conn, identity)?;
                if usage.refused(conn, identity)? {
                    return Err(AppError::Invalid(usage.message("This database")));
                }
            }
            let project = Project::create(
                conn,
                &keyring,
                &NewProject {
                    organization_id: organization.id,
                    name: &name,
                    cloud_credential_id: cloud,
                    ai_credential_id: ai,
                    database_url: &url,
                    backup,
                    created_by: actor,
                },
            )?;
            if let Some((identity, schemas)) = &identity {
                Project::record_source(conn, project.id, identity, schemas)?;
            }
            event
                .object("project", project.id.0, &project.name)
                .fields(&[
                    "name",
                    "cloud_credential_id",
                    "ai_credential_id",
                    "database_url",
                    "backup_enabled",
                    "backup_credential_id",
                    "bucket",
                ])
                .record(conn)?;
            Ok::<_, AppError>(project)
        })
    })
    .await?;
    // (With backup on, the empty Schedules tab says a policy is needed next: said once.)
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
