//! Project pages: the list, the create form, and a project's settings with its Backup tabs
//! (Schedules, Backups, Restores). Users may look; Managers and Partners change things.

use std::collections::HashMap;
use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::accounts::model::{Organization, OrganizationId};
use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Role, Scope};
use crate::backup::database::DataSource;
use crate::backup::model::{Backup, BackupPolicy, Phase, Restore};
use crate::backup::policy::{self, Schedule};
use crate::backup::runner::{check_bucket_name, default_bucket};
use crate::backup::service::ready_bucket;
use crate::credentials::model::{Credential, CredentialId, CredentialOption};
use crate::credentials::provider::Kind;
use crate::db;
use crate::error::AppError;
use crate::page_cache::Tables;
use crate::projects::model::{NewProject, Project, ProjectId, ProjectListing, SourceUse};
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html, html_with_status, is_htmx, see_other};

/// Who may change projects and their backups.
pub const MANAGERS: [Role; 2] = [Role::Partner, Role::Manager];

/// A choice of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

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

/// The choices of a credential select: none, then each option; `chosen` or else the default of
/// `organization` is selected (the default is pre-selected, SPEC §2).
fn credential_choices(
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
    let choices = |list: &[CredentialOption], chosen: &str, none: &str| {
        credential_choices(
            list,
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

/// GET /projects/new
pub async fn new(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    user.require(&MANAGERS)?;
    let options = options(&state, user.scope()).await?;
    html(&new_page(
        &user,
        &session,
        &options,
        &ProjectForm::default(),
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
            .check_source(&source, SourceUse::DataSource(organization.id))
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
    flash::success(&session, format!("Project {} created.", project.name));
    if project.backup_enabled {
        flash::info(
            &session,
            "After enabling backup, you must set up a backup policy.",
        );
    }
    Ok(see_other(&format!("/projects/{}", project.id)))
}

/// A policy as the Schedules tab shows it.
pub struct PolicyView {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub words: String,
    pub timezone: String,
    pub retention: String,
    pub namespaces: String,
    pub last_backup: String,
    pub last_phase: String,
    pub next_run: String,
}

/// A backup as the Backups tab shows it.
pub struct BackupView {
    pub id: i64,
    pub name: String,
    pub policy: String,
    pub scheduled_for: String,
    pub finished: String,
    pub expires: String,
    pub size: String,
    pub checksum: String,
    pub phase: Phase,
    pub reason: String,
    pub restorable: bool,
    pub running: bool,
    pub deleted: bool,
}

/// A restore as the Restores tab shows it.
pub struct RestoreView {
    pub name: String,
    pub backup: String,
    pub target: String,
    pub started: String,
    pub finished: String,
    pub phase: Phase,
    pub warnings: String,
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(crate::web::utc_second).unwrap_or_default()
}

/// Bytes in words.
pub fn human_size(bytes: Option<i64>) -> String {
    let Some(bytes) = bytes else {
        return String::new();
    };
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// The project page's content and the tab shown.
#[derive(Template)]
#[template(path = "projects/show.html")]
pub struct ProjectPage {
    pub page: Page,
    pub csrf: String,
    pub tab: Tab,
    pub project: ProjectListing,
    pub data_source: String,
    pub can_manage: bool,
    pub backup_choices: Vec<Choice>,
    pub default_bucket: String,
    pub form: PolicyForm,
    pub errors: FieldErrors,
}

/// A tab alone, for htmx (polling while something runs).
#[derive(Template)]
#[template(path = "projects/_tab_response.html")]
pub struct TabFragment {
    pub flashes: Vec<crate::web::Flash>,
    pub tab: Tab,
    pub project: ProjectListing,
    pub can_manage: bool,
    pub csrf: String,
    pub form: PolicyForm,
    pub errors: FieldErrors,
}

/// What a Backup tab shows.
pub struct Tab {
    pub name: &'static str,
    pub policies: Vec<PolicyView>,
    pub backups: Vec<BackupView>,
    pub restores: Vec<RestoreView>,
    pub polling: bool,
    /// Schemas of the project database offered for new policies (or why they are not).
    pub schemas: Result<Vec<String>, String>,
    pub presets: [(&'static str, &'static str); 4],
    pub preview: Option<Preview>,
}

impl Tab {
    pub fn schema_list(&self) -> &[String] {
        self.schemas.as_deref().unwrap_or(&[])
    }

    pub fn schema_error(&self) -> &str {
        self.schemas.as_ref().err().map_or("", String::as_str)
    }
}

/// The words and next runs of a cron period, before saving.
pub struct Preview {
    pub words: String,
    pub next: Vec<String>,
    pub error: Option<String>,
}

impl Preview {
    pub fn of(cron: &str, zone: &str) -> Preview {
        match Schedule::parse(cron, if zone.trim().is_empty() { "UTC" } else { zone }) {
            Ok(schedule) => Preview {
                words: schedule.describe(),
                next: schedule
                    .upcoming(Utc::now(), 3)
                    .into_iter()
                    .map(|at| at.format("%a %Y-%m-%d %H:%M %Z").to_string())
                    .collect(),
                error: None,
            },
            Err(message) => Preview {
                words: String::new(),
                next: Vec::new(),
                error: Some(message.to_string()),
            },
        }
    }
}

/// The add-policy form's values.
#[derive(Default, Clone)]
pub struct PolicyForm {
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub retention: String,
    pub namespaces: Vec<String>,
}

impl From<crate::backup::service::PolicyRequest> for PolicyForm {
    fn from(request: crate::backup::service::PolicyRequest) -> PolicyForm {
        PolicyForm {
            name: request.name,
            cron: request.cron,
            timezone: request.timezone,
            retention: request.retention,
            namespaces: request.namespaces,
        }
    }
}

impl PolicyForm {
    pub fn checked(&self, schema: &str) -> bool {
        self.namespaces.iter().any(|n| n == schema)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ShowQuery {
    tab: Option<String>,
    cron: Option<String>,
    timezone: Option<String>,
}

/// Loads everything a project page shows; the Backups tab's rows from memory if `from_memory`
/// and they are kept there (`page_cache`).
pub async fn project_view(
    state: &AppState,
    user: &CurrentUser,
    id: ProjectId,
    tab: &str,
    preview: Option<Preview>,
    from_memory: bool,
) -> Result<(ProjectListing, Tab), AppError> {
    let scope = user.scope();
    let name = match tab {
        "backups" => "backups",
        "restores" => "restores",
        _ => "schedules",
    };
    // What the shown tab lists (the schedules show each policy's last backup), and whether
    // anything runs (the tab then refreshes itself).
    let load = db::run(&state.pool, move |conn| {
        let project = Project::find_listing(conn, &scope, id)?;
        let policies = if name == "schedules" {
            BackupPolicy::for_project(conn, id)?
        } else {
            Vec::new()
        };
        let backups = if name == "restores" {
            Vec::new()
        } else {
            Backup::for_project(conn, id, 100)?
        };
        let restores = if name == "restores" {
            Restore::for_project(conn, id, 50)?
        } else {
            Vec::new()
        };
        let polling = if name == "restores" {
            restores.iter().any(Restore::running) || Backup::any_running(conn, id)?
        } else {
            backups.iter().any(Backup::running) || Restore::any_running(conn, id)?
        };
        // The schemas keyhold saw when it last connected (no connection while rendering).
        let schemas = if name == "schedules" {
            Project::known_schemas(conn, id)?
        } else {
            Vec::new()
        };
        Ok::<_, AppError>((project, policies, backups, restores, polling, schemas))
    });
    // The backups tab, while nothing runs, is kept in memory until a table changes (the most
    // visited tab; the others check the data source or follow a restore).
    let loaded = match name {
        "backups" if from_memory => {
            let key = format!("{:?}", ("project", scope, id, name));
            let nothing_runs = |loaded: &(_, _, _, _, bool, _)| !loaded.4;
            state
                .pages
                .load(key, Tables::ALL, load, nothing_runs)
                .await?
        }
        _ => Arc::new(load.await?),
    };
    let (project, policies, backups, restores, polling, known) = &*loaded;
    let (project, polling) = (project.clone(), *polling);
    let schemas = if known.is_empty()
        && name == "schedules"
        && project.project.backup_enabled
        && MANAGERS.contains(&user.role())
    {
        Err("keyhold has not connected to the project database yet".to_string())
    } else {
        Ok(known.clone())
    };
    let policy_views = policies
        .iter()
        .map(|policy| {
            let last = backups.iter().find(|b| b.policy_id == Some(policy.id));
            PolicyView {
                id: policy.id.0,
                name: policy.name.clone(),
                cron: policy.cron.clone(),
                words: policy.schedule().map(|s| s.describe()).unwrap_or_default(),
                timezone: policy.timezone.clone(),
                retention: policy::format_retention(policy.retention_secs),
                namespaces: policy.namespaces().join(", "),
                last_backup: last
                    .map(|b| when(b.finished_at.or(b.started_at)))
                    .unwrap_or_default(),
                last_phase: last.map(|b| b.phase.to_string()).unwrap_or_default(),
                next_run: policy
                    .schedule()
                    .map(|s| {
                        policy
                            .next_run_at
                            .with_timezone(&s.zone)
                            .format("%Y-%m-%d %H:%M %Z")
                            .to_string()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    // Only the shown tab's rows are built (the schedules tab loads backups for its policies'
    // last runs, not to list them).
    let backup_views = backups
        .iter()
        .filter(|_| name == "backups")
        .map(|backup| BackupView {
            id: backup.id.0,
            name: backup.name.clone(),
            policy: backup.policy_name.clone(),
            scheduled_for: when(Some(backup.scheduled_for)),
            finished: when(backup.finished_at),
            expires: when(backup.expires_at),
            size: human_size(backup.size_bytes),
            checksum: backup.sha256.clone().unwrap_or_default(),
            phase: backup.phase,
            reason: backup.reason.clone().unwrap_or_default(),
            restorable: backup.restorable(),
            running: backup.running(),
            deleted: backup.deleted_at.is_some(),
        })
        .collect();
    let restore_views = restores
        .iter()
        .map(|restore| RestoreView {
            name: restore.name.clone(),
            backup: restore.backup_name.clone(),
            target: restore
                .target_url
                .clone()
                .unwrap_or_else(|| "the project database".into()),
            started: when(restore.started_at),
            finished: when(restore.finished_at),
            phase: restore.phase,
            warnings: restore.warnings.clone().unwrap_or_default(),
        })
        .collect();
    Ok((
        project,
        Tab {
            name,
            policies: policy_views,
            backups: backup_views,
            restores: restore_views,
            polling,
            schemas,
            presets: policy::PRESETS,
            preview,
        },
    ))
}

/// The add-policy form as it was submitted (or blank), its errors and its preview.
#[derive(Default)]
pub struct Draft {
    pub form: PolicyForm,
    pub errors: FieldErrors,
    pub preview: Option<Preview>,
}

/// Renders the project page (or, for htmx, its tab) with the policy form's draft.
pub async fn render_project(
    req: &HttpRequest,
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    id: ProjectId,
    tab: &str,
    draft: Draft,
) -> Result<HttpResponse, AppError> {
    let Draft {
        form,
        errors,
        preview,
    } = draft;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    // A tab rendered as the answer to a change must not come from memory: this process forgets
    // its pages only once the request that made the change has ended.
    let (project, tab) =
        project_view(state, user, id, tab, preview, req.method().is_safe()).await?;
    let can_manage = MANAGERS.contains(&user.role());
    let page = Page::new(user, session, "projects", &project.project.name);
    if is_htmx(req) {
        return html_with_status(
            status,
            &TabFragment {
                flashes: page.flashes,
                tab,
                project,
                can_manage,
                csrf: page.csrf,
                form,
                errors,
            },
        );
    }
    let backup_choices = if can_manage && !project.project.backup_enabled {
        let scope = user.scope();
        let backup = db::run(&state.pool, move |conn| {
            Credential::options(conn, &scope, Kind::Backup)
        })
        .await?;
        let organization = project.project.organization_id;
        let own: Vec<CredentialOption> = backup
            .into_iter()
            .filter(|o| o.organization_id == organization)
            .collect();
        credential_choices(&own, &[], Some(organization), "", false, "— choose —")
    } else {
        Vec::new()
    };
    let source = project
        .project
        .open_database_url(&state.settings.keyring)
        .ok()
        .and_then(|url| DataSource::parse(&url).ok())
        .map(|source| source.display())
        .unwrap_or_else(|| "(cannot be opened with the configured keys)".into());
    html_with_status(
        status,
        &ProjectPage {
            csrf: page.csrf.clone(),
            default_bucket: default_bucket(&project.organization_name, &project.project.name),
            page,
            tab,
            data_source: source,
            can_manage,
            backup_choices,
            form,
            errors,
            project,
        },
    )
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
    let id = parse_project_id(&id)?;
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
        },
    )
    .await
}

/// A project id from the path; anything else is "not found".
pub fn parse_project_id(text: &str) -> Result<ProjectId, AppError> {
    text.parse().map(ProjectId).map_err(|_| AppError::NotFound)
}
