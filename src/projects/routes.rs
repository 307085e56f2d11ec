//! Project pages: the list (searched and filtered), the create and edit forms, the delete
//! page. A project's own page, its Backup tabs, is `backup::views::show`. Users may look;
//! Managers and Partners change things.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::Role;
use crate::accounts::model::Organization;
use crate::auth::CurrentUser;
use crate::credentials::model::CredentialOption;
use crate::error::AppError;
use crate::ids::{CredentialId, OrganizationId, ProjectId};
use crate::projects::MANAGERS;
use crate::projects::model::{ProjectFilter, ProjectListing};
use crate::projects::service::{
    self, EditForm, Editing, Options, ProjectError, ProjectForm, ProjectList, Success,
};
use crate::startup::AppState;
use crate::web::confirm::ConfirmDelete;
use crate::web::form::{Choice, FieldErrors};
use crate::web::{Page, client_ip, flash, html, html_with_status, is_htmx, see_other};

#[derive(Template)]
#[template(path = "projects/list.html")]
struct ProjectsPage {
    page: Page,
    projects: Vec<ProjectListing>,
    can_manage: bool,
    /// Whether a search or filter narrowed the list.
    filtered: bool,
    q: String,
    org: String,
    is_partner: bool,
    organizations: Vec<Organization>,
}

#[derive(Template)]
#[template(path = "projects/_results.html")]
struct ProjectResults {
    projects: Vec<ProjectListing>,
    can_manage: bool,
    filtered: bool,
}

/// The list's query: `q` searches the names it shows, `org` keeps one organization (Partners).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ProjectsQuery {
    q: String,
    org: String,
}

impl ProjectsQuery {
    /// The filter this query asks for (`org` only for Partners).
    pub fn filter(&self, user: &CurrentUser) -> ProjectFilter {
        let search: String = self
            .q
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(100)
            .collect();
        ProjectFilter {
            search: Some(search).filter(|q| !q.is_empty()),
            organization: self
                .org
                .trim()
                .parse()
                .ok()
                .filter(|_| user.role() == Role::Partner)
                .map(OrganizationId),
        }
    }
}

/// GET /projects (`?q=&org=`); htmx gets only the results.
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    query: web::Query<ProjectsQuery>,
) -> Result<HttpResponse, AppError> {
    let (scope, filter) = (user.scope(), query.filter(&user));
    let filtered = filter != ProjectFilter::default();
    let is_partner = user.role() == Role::Partner;
    // The organization filter is part of the page around the results, not of the fragment.
    let whole_page = !is_htmx(&req);
    let ProjectList {
        projects,
        organizations,
    } = service::list(&state.pool, scope, filter, is_partner && whole_page).await?;
    let can_manage = MANAGERS.contains(&user.role());
    if !whole_page {
        return html(&ProjectResults {
            projects,
            can_manage,
            filtered,
        });
    }
    let query = query.into_inner();
    html(&ProjectsPage {
        page: Page::new(&user, &session, "projects", "Projects"),
        projects,
        can_manage,
        filtered,
        q: query.q,
        org: query.org,
        is_partner,
        organizations,
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
    /// The typed data source without its password (which is never sent back).
    database_url: String,
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
        database_url: if form.database_url.is_empty() {
            String::new()
        } else {
            crate::projects::source_url::shown(&form.database_url).0
        },
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
            Err(error) => return Err(error.into()),
        };
    flash::success(
        &session,
        Success::Created {
            name: &project.name,
        }
        .to_string(),
    );
    Ok(see_other(&format!("/projects/{}", project.id)))
}

#[derive(Template)]
#[template(path = "projects/edit.html")]
struct EditPage {
    page: Page,
    project: ProjectListing,
    cloud: Vec<Choice>,
    ai: Vec<Choice>,
    name: String,
    database_url: String,
    /// Whether the stored data source has a password (kept when the field is left blank).
    has_password: bool,
    version: i32,
    errors: FieldErrors,
    /// Why saving was refused as a whole (someone else saved it meanwhile).
    refusal: Option<String>,
}

/// A credential select of the edit form: the organization's unlocked credentials, and the one
/// the project has if it is locked since; `chosen` is selected (none when empty: an edit does
/// not pre-select the default).
fn edit_choices(
    options: &[CredentialOption],
    organization: OrganizationId,
    current: Option<(CredentialId, Option<String>)>,
    chosen: &str,
) -> Vec<Choice> {
    let own: Vec<CredentialOption> = options
        .iter()
        .filter(|option| option.organization_id == organization)
        .cloned()
        .collect();
    let mut choices =
        CredentialOption::choices(&own, &[], Some(organization), chosen, false, "— none —");
    for choice in &mut choices {
        choice.selected = choice.value == chosen;
    }
    if let Some((id, name)) = current
        && !own.iter().any(|option| option.id == id)
    {
        choices.push(Choice {
            value: id.to_string(),
            label: format!("{} (locked)", name.unwrap_or_default()),
            selected: id.to_string() == chosen,
        });
    }
    choices
}

/// What the edit form shows: the stored values, or those typed (`form`) after a refusal.
fn edit_page(
    user: &CurrentUser,
    session: &Session,
    editing: Editing,
    form: Option<&EditForm>,
    errors: FieldErrors,
    refusal: Option<String>,
) -> EditPage {
    let Editing {
        project,
        options,
        database_url,
        has_password,
    } = editing;
    let stored = &project.project;
    let id_text = |id: Option<CredentialId>| id.map(|id| id.to_string()).unwrap_or_default();
    let (name, cloud, ai, database_url) = match form {
        Some(form) => (
            form.name.clone(),
            form.cloud_credential_id.clone(),
            form.ai_credential_id.clone(),
            form.database_url.clone(),
        ),
        None => (
            stored.name.clone(),
            id_text(stored.cloud_credential_id),
            id_text(stored.ai_credential_id),
            database_url,
        ),
    };
    let organization = stored.organization_id;
    EditPage {
        page: Page::new(user, session, "projects", &format!("Edit {}", stored.name)),
        cloud: edit_choices(
            &options.cloud,
            organization,
            stored
                .cloud_credential_id
                .map(|id| (id, project.cloud_credential_name.clone())),
            &cloud,
        ),
        ai: edit_choices(
            &options.ai,
            organization,
            stored
                .ai_credential_id
                .map(|id| (id, project.ai_credential_name.clone())),
            &ai,
        ),
        name,
        database_url,
        has_password,
        version: stored.version,
        errors,
        refusal,
        project,
    }
}

/// GET /projects/{id}/edit
pub async fn edit(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(&id)?;
    let editing = service::editing(&state.pool, &state.settings.keyring, &user, id).await?;
    html(&edit_page(
        &user,
        &session,
        editing,
        None,
        FieldErrors::default(),
        None,
    ))
}

/// POST /projects/{id}: saves an edit; a refusal shows the form again with what was typed
/// (never the password).
pub async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<EditForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(&id)?;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let keyring = &state.settings.keyring;
    let (status, errors, refusal) =
        match service::update(&state.runner, keyring, &user, &ip, id, &form).await {
            Ok(project) => {
                flash::success(
                    &session,
                    Success::Saved {
                        name: &project.name,
                    }
                    .to_string(),
                );
                return Ok(see_other(&format!("/projects/{id}")));
            }
            Err(ProjectError::Invalid(errors)) => (StatusCode::UNPROCESSABLE_ENTITY, errors, None),
            // The form again with what was typed, the reason, and the stored version: saving
            // again is then a choice made knowingly.
            Err(refused @ ProjectError::ChangedMeanwhile { .. }) => (
                StatusCode::CONFLICT,
                FieldErrors::default(),
                Some(refused.to_string()),
            ),
            Err(error) => return Err(error.into()),
        };
    let editing = service::editing(&state.pool, keyring, &user, id).await?;
    html_with_status(
        status,
        &edit_page(&user, &session, editing, Some(&form), errors, refusal),
    )
}

fn delete_question(project: &ProjectListing, refusal: Option<String>) -> ConfirmDelete {
    let id = project.project.id;
    ConfirmDelete {
        section: "projects",
        name: project.project.name.clone(),
        consequence: format!(
            "The project of {} is removed with the records of its past runs and restores; its \
             data source database and its bucket are not touched. This cannot be undone.",
            project.organization_name
        ),
        action: format!("/projects/{id}/delete"),
        back: format!("/projects/{id}/edit"),
        back_label: format!("Edit {}", project.project.name),
        refusal,
    }
}

/// GET /projects/{id}/delete: asks first, saying up front what keeps it (if anything does).
pub async fn confirm_delete(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(&id)?;
    let (project, kept) = service::deletion(&state.runner, &user, id).await?;
    delete_question(&project, kept).render(&user, &session, false)
}

/// POST /projects/{id}/delete: refused (409, on the same page) while backup is on, while it
/// has backups, or while a restore runs.
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let id = ProjectId::from_path(&id)?;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    match service::delete(&state.runner, &user, &ip, id).await {
        Ok(project) => {
            flash::success(
                &session,
                Success::Deleted {
                    name: &project.name,
                }
                .to_string(),
            );
            Ok(see_other("/projects"))
        }
        Err(ProjectError::Kept(reason)) => {
            let (project, _) = service::deletion(&state.runner, &user, id).await?;
            delete_question(&project, Some(reason)).render(&user, &session, true)
        }
        Err(error) => Err(error.into()),
    }
}
