//! The project use cases: the choices a project form offers, creating a project (its data
//! source checked, its bucket proved when backup is on; the pages and the API share it),
//! editing its name, credentials and data source, and deleting it once nothing keeps it.

use std::collections::HashMap;

use diesel::{PgConnection, QueryResult};
use serde::Deserialize;

use crate::access::{Role, Scope};
use crate::accounts::model::Organization;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::credentials::model::{Credential, CredentialOption};
use crate::credentials::provider::Kind;
use crate::crypto::{Keyring, Secret};
use crate::db::{self, DbPool};
use crate::db_errors::unique_violation;
use crate::ids::{CredentialId, OrganizationId, ProjectId};
use crate::projects::data_source::{Checked, DataSource};
use crate::projects::model::{
    NewProject, Project, ProjectChanges, ProjectFilter, ProjectListing, SourceUse, WriteError,
};
use crate::projects::source_url;
use crate::storage::bucket_name::{check_bucket_name, default_bucket};
use crate::web::form::FieldErrors;

/// What a project use case did, in the words the page's message and the API's `message` both
/// say.
#[derive(Clone, Copy, Debug)]
pub enum Success<'a> {
    Created { name: &'a str },
    Saved { name: &'a str },
    Deleted { name: &'a str },
}

impl std::fmt::Display for Success<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Success::Created { name } => write!(f, "Project {name} created."),
            Success::Saved { name } => write!(f, "Project {name} saved."),
            Success::Deleted { name } => write!(f, "Project {name} deleted."),
        }
    }
}

/// Why creating, editing or deleting a project was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The form's fields, with a message next to each wrong one (422).
    #[error("Correct the highlighted fields.")]
    Invalid(FieldErrors),
    /// Someone else saved the project since the edit form was opened (409).
    #[error(
        "Someone else changed {name} since you opened this form: check its settings before saving again."
    )]
    ChangedMeanwhile { name: String },
    /// Something keeps the project from being deleted; the words say what (409).
    #[error("{0}")]
    Kept(String),
    /// Another organization's project took the database while this one was being created;
    /// the words say so (422).
    #[error("{0}")]
    SourceTaken(String),
    /// The data source could not be sealed or opened with the configured keys.
    #[error("sealing failed: {0:#}")]
    Sealing(anyhow::Error),
    /// The database failed or could not be reached, as `db::run` answers it (a project that
    /// is not there, or not in the person's scope, is `Failed(NotFound)`).
    #[error("{0}")]
    Store(db::RunError<diesel::result::Error>),
}

impl From<diesel::result::Error> for ProjectError {
    fn from(error: diesel::result::Error) -> ProjectError {
        ProjectError::Store(db::RunError::Failed(error))
    }
}

impl From<WriteError> for ProjectError {
    fn from(error: WriteError) -> ProjectError {
        match error {
            WriteError::Query(error) => error.into(),
            WriteError::Sealing(cause) => ProjectError::Sealing(cause),
        }
    }
}

impl<E: Into<ProjectError>> From<db::RunError<E>> for ProjectError {
    fn from(error: db::RunError<E>) -> ProjectError {
        match error {
            db::RunError::Failed(error) => error.into(),
            db::RunError::Unavailable(reason) => {
                ProjectError::Store(db::RunError::Unavailable(reason))
            }
        }
    }
}

/// The projects list: the projects a filter keeps, and the organizations it may filter by.
pub struct ProjectList {
    pub projects: Vec<ProjectListing>,
    /// Empty unless asked for (a Partner's whole page).
    pub organizations: Vec<Organization>,
}

/// The projects of `scope` that `filter` keeps, and (`organizations`) the organizations of
/// `scope`.
pub async fn list(
    pool: &DbPool,
    scope: Scope,
    filter: ProjectFilter,
    organizations: bool,
) -> Result<ProjectList, ProjectError> {
    Ok(db::run(pool, move |conn| {
        let projects = Project::list_filtered(conn, &scope, &filter)?;
        let organizations = if organizations {
            Organization::list(conn, &scope)?
        } else {
            Vec::new()
        };
        Ok::<_, diesel::result::Error>(ProjectList {
            projects,
            organizations,
        })
    })
    .await?)
}

/// A project in `scope`, with its organization's and credentials' names and its last run.
pub async fn listing(
    pool: &DbPool,
    scope: Scope,
    id: ProjectId,
) -> Result<ProjectListing, ProjectError> {
    Ok(db::run(pool, move |conn| Project::find_listing(conn, &scope, id)).await?)
}

/// What creating, editing and deleting a project ask of backup, which sits above projects
/// (`backup::runner::Runner` answers): whether a data source may be used, whether a bucket
/// works with a credential, and what of a project's backup keeps it from being deleted.
pub trait Checks {
    fn pool(&self) -> &DbPool;

    /// Checks a data source or restore target (SPEC §13) and its other uses (`usage`).
    fn check_source(
        &self,
        source: &DataSource,
        usage: SourceUse,
    ) -> impl Future<Output = Result<Checked, String>>;

    /// Creates or checks `bucket` with the credential's keys, and proves write, read and
    /// delete; answers what it found.
    fn ready_bucket(
        &self,
        credential: CredentialId,
        bucket: &str,
    ) -> impl Future<Output = Result<String, String>>;

    /// What keeps a project from being deleted, in words (`None`: nothing), read in the
    /// caller's transaction.
    fn keeping(&self) -> fn(&mut PgConnection, &Project) -> QueryResult<Option<String>>;
}

/// What the create form holds.
#[derive(Default, Clone)]
pub struct ProjectForm {
    pub name: String,
    pub organization_id: String,
    pub cloud_credential_id: String,
    pub ai_credential_id: String,
    pub database_url: String,
    pub backup_enabled: bool,
    pub backup_credential_id: String,
    pub bucket: String,
}

impl ProjectForm {
    pub fn parse(fields: Vec<(String, String)>) -> ProjectForm {
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
            // The form's password field (optional: a URL with its password works as before).
            database_url: crate::projects::source_url::with_password(
                &get("database_url"),
                map.get("database_password").map_or("", String::as_str),
            ),
            backup_enabled: matches!(get("backup_enabled").as_str(), "on" | "true" | "1"),
            backup_credential_id: get("backup_credential_id"),
            bucket: get("bucket"),
        }
    }
}

/// Everything a project form chooses from, inside the person's scope.
pub struct Options {
    pub organizations: Vec<Organization>,
    pub cloud: Vec<CredentialOption>,
    pub ai: Vec<CredentialOption>,
    pub backup: Vec<CredentialOption>,
}

pub async fn options(pool: &DbPool, scope: Scope) -> Result<Options, ProjectError> {
    Ok(db::run(pool, move |conn| {
        Ok::<_, diesel::result::Error>(Options {
            organizations: Organization::list(conn, &scope)?,
            cloud: Credential::options(conn, &scope, Kind::Cloud)?,
            ai: Credential::options(conn, &scope, Kind::Ai)?,
            backup: Credential::options(conn, &scope, Kind::Backup)?,
        })
    })
    .await?)
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

/// Creates a project in the organization the form names (a Manager's own): its name unique in
/// the organization, its credentials unlocked ones of that organization, its database checked
/// and recorded (refused when another organization's project uses it), its bucket proved when
/// backup is on; audited.
pub async fn create(
    runner: &impl Checks,
    keyring: &Keyring,
    user: &CurrentUser,
    client_ip: &str,
    form: &ProjectForm,
) -> Result<Project, ProjectError> {
    let options = options(runner.pool(), user.scope()).await?;
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
        return Err(ProjectError::Invalid(errors));
    };
    if errors.get("name").is_none() {
        let (id, name) = (organization.id, form.name.clone());
        if db::run(runner.pool(), move |conn| {
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
        Ok(source) => match runner
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
        && let Err(message) = runner.ready_bucket(credential, &bucket).await
    {
        errors.add("bucket", message);
    }
    if !errors.is_empty() {
        return Err(ProjectError::Invalid(errors));
    }

    let keyring = keyring.clone();
    let event =
        NewEvent::by(user, "project.create", client_ip).in_organization(Some(organization.id));
    let actor = user.id();
    let (name, url) = (form.name.clone(), form.database_url.clone());
    let backup = backup_credential.map(|credential| (credential, bucket));
    let project = db::run(runner.pool(), move |conn| {
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
                    return Err(ProjectError::SourceTaken(usage.message("This database")));
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
            Ok::<_, ProjectError>(project)
        })
    })
    .await?;
    Ok(project)
}

/// What the edit form holds. The data source's password is its own field, never shown:
/// blank keeps the stored one (`source_url`).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct EditForm {
    pub name: String,
    pub cloud_credential_id: String,
    pub ai_credential_id: String,
    pub database_url: String,
    pub database_password: Secret,
    /// The version the form was opened at.
    pub version: Option<i32>,
}

impl EditForm {
    /// An edit of only the fields given (the API's PATCH): the others keep the project's
    /// values; `""` clears a credential.
    pub fn changing(editing: &Editing, fields: Vec<(String, String)>) -> EditForm {
        let project = &editing.project.project;
        let id_text = |id: Option<CredentialId>| id.map(|id| id.to_string()).unwrap_or_default();
        let mut form = EditForm {
            name: project.name.clone(),
            cloud_credential_id: id_text(project.cloud_credential_id),
            ai_credential_id: id_text(project.ai_credential_id),
            database_url: editing.database_url.clone(),
            database_password: Secret::default(),
            version: None,
        };
        for (key, value) in fields {
            match key.as_str() {
                "name" => form.name = value,
                "cloud_credential_id" => form.cloud_credential_id = value,
                "ai_credential_id" => form.ai_credential_id = value,
                "database_url" => form.database_url = value,
                "database_password" => form.database_password = Secret::new(value),
                "version" => form.version = value.parse().ok(),
                _ => {}
            }
        }
        form
    }
}

/// A project as its edit form starts: the project, the choices, and its data source without
/// the password.
pub struct Editing {
    pub project: ProjectListing,
    pub options: Options,
    pub database_url: String,
    pub has_password: bool,
}

/// The project `id` for its edit form.
pub async fn editing(
    pool: &DbPool,
    keyring: &Keyring,
    user: &CurrentUser,
    id: ProjectId,
) -> Result<Editing, ProjectError> {
    let scope = user.scope();
    let project = db::run(pool, move |conn| Project::find_listing(conn, &scope, id)).await?;
    let options = options(pool, user.scope()).await?;
    let (database_url, has_password) = match project.project.open_database_url(keyring) {
        Ok(url) => source_url::shown(&url),
        Err(_) => (String::new(), true),
    };
    Ok(Editing {
        project,
        options,
        database_url,
        has_password,
    })
}

/// Like `chosen_credential`, but the credential the project already uses is kept even when it
/// is locked since (keeping it is not choosing it anew).
fn kept_or_chosen(
    text: &str,
    current: Option<CredentialId>,
    options: &[CredentialOption],
    organization: OrganizationId,
    field: &'static str,
    errors: &mut FieldErrors,
) -> Option<CredentialId> {
    match current {
        Some(current) if current.to_string() == text => Some(current),
        _ => chosen_credential(text, options, organization, field, errors),
    }
}

/// Saves an edit of a project: its name (unique in its organization), cloud and AI credentials
/// (unlocked ones of its organization, or the ones it has), and its data source (checked and
/// recorded when it changed, as at creation). Refused when someone else saved it since the form
/// was opened; audited with the names of the fields that changed.
pub async fn update(
    runner: &impl Checks,
    keyring: &Keyring,
    user: &CurrentUser,
    client_ip: &str,
    id: ProjectId,
    form: &EditForm,
) -> Result<Project, ProjectError> {
    let scope = user.scope();
    let project = db::run(runner.pool(), move |conn| Project::find(conn, &scope, id)).await?;
    if form
        .version
        .is_some_and(|version| version != project.version)
    {
        return Err(ProjectError::ChangedMeanwhile { name: project.name });
    }
    let options = options(runner.pool(), user.scope()).await?;
    let organization = project.organization_id;
    let mut errors = FieldErrors::default();
    let name = form.name.trim().to_string();
    errors.check("name", check_project_name(&name));
    if errors.get("name").is_none() && name != project.name {
        let taken = name.clone();
        if db::run(runner.pool(), move |conn| {
            Project::name_taken(conn, organization, &taken)
        })
        .await?
        {
            errors.add("name", format!("{name} already exists"));
        }
    }
    let cloud = kept_or_chosen(
        &form.cloud_credential_id,
        project.cloud_credential_id,
        &options.cloud,
        organization,
        "cloud_credential_id",
        &mut errors,
    );
    let ai = kept_or_chosen(
        &form.ai_credential_id,
        project.ai_credential_id,
        &options.ai,
        organization,
        "ai_credential_id",
        &mut errors,
    );
    let stored = project
        .open_database_url(keyring)
        .map_err(ProjectError::Sealing)?;
    let new_url =
        match source_url::edited(&stored, &form.database_url, form.database_password.expose()) {
            Ok(url) => url,
            Err(message) => {
                errors.add("database_password", message);
                None
            }
        };
    let identity = match new_url.as_deref().map(DataSource::parse) {
        None => None,
        Some(Err(message)) => {
            errors.add("database_url", message);
            None
        }
        Some(Ok(source)) => match runner
            .check_source(
                &source,
                SourceUse::DataSource {
                    organization,
                    project: Some(id),
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
    if !errors.is_empty() {
        return Err(ProjectError::Invalid(errors));
    }
    let mut changed = Vec::new();
    if name != project.name {
        changed.push("name");
    }
    if cloud != project.cloud_credential_id {
        changed.push("cloud_credential_id");
    }
    if ai != project.ai_credential_id {
        changed.push("ai_credential_id");
    }
    if new_url.is_some() {
        changed.push("database_url");
    }
    if changed.is_empty() {
        return Ok(project);
    }

    let (keyring, scope, actor) = (keyring.clone(), user.scope(), user.id());
    let event = NewEvent::by(user, "project.update", client_ip).in_organization(Some(organization));
    let version = form.version;
    db::run(runner.pool(), move |conn| {
        conn.build_transaction()
            .run(|conn| -> Result<Project, ProjectError> {
                let project = Project::find_for_update(conn, &scope, id)?;
                let stale = || ProjectError::ChangedMeanwhile {
                    name: project.name.clone(),
                };
                if version.is_some_and(|version| version != project.version) {
                    return Err(stale());
                }
                if let Some((identity, _)) = &identity {
                    let usage = SourceUse::DataSource {
                        organization,
                        project: Some(id),
                    };
                    SourceUse::lock(conn, identity)?;
                    if usage.refused(conn, identity)? {
                        let mut errors = FieldErrors::default();
                        errors.add("database_url", usage.message("This database"));
                        return Err(ProjectError::Invalid(errors));
                    }
                }
                let changes = ProjectChanges {
                    name: &name,
                    cloud_credential_id: cloud,
                    ai_credential_id: ai,
                    database_url: new_url.as_deref(),
                };
                match project.update(conn, &keyring, &changes, actor) {
                    Ok(true) => {}
                    Ok(false) => return Err(stale()),
                    // Another project of the organization took the name meanwhile.
                    Err(WriteError::Query(error))
                        if unique_violation(&error, "projects_name_unique") =>
                    {
                        let mut errors = FieldErrors::default();
                        errors.add("name", format!("{name} already exists"));
                        return Err(ProjectError::Invalid(errors));
                    }
                    Err(error) => return Err(error.into()),
                }
                if let Some((identity, schemas)) = &identity {
                    Project::record_source(conn, id, identity, schemas)?;
                }
                event
                    .object("project", id.0, &name)
                    .fields(&changed)
                    .record(conn)?;
                Ok(Project {
                    name: name.clone(),
                    version: project.version + 1,
                    ..project
                })
            })
    })
    .await
    .map_err(ProjectError::from)
}

/// The reason the project cannot be deleted now, if any (the delete page says it up front).
pub async fn deletion(
    checks: &impl Checks,
    user: &CurrentUser,
    id: ProjectId,
) -> Result<(ProjectListing, Option<String>), ProjectError> {
    let (scope, keeping) = (user.scope(), checks.keeping());
    Ok(db::run(checks.pool(), move |conn| {
        let listed = Project::find_listing(conn, &scope, id)?;
        let reason = keeping(conn, &listed.project)?;
        Ok::<_, diesel::result::Error>((listed, reason))
    })
    .await?)
}

/// Deletes a project once nothing keeps it: backup off, no backups holding an object, nothing
/// running (checked under the project's lock). Audited.
pub async fn delete(
    checks: &impl Checks,
    user: &CurrentUser,
    client_ip: &str,
    id: ProjectId,
) -> Result<Project, ProjectError> {
    let (scope, keeping) = (user.scope(), checks.keeping());
    let event = NewEvent::by(user, "project.delete", client_ip);
    db::run(checks.pool(), move |conn| {
        conn.build_transaction()
            .run(|conn| -> Result<Project, ProjectError> {
                let project = Project::find_for_update(conn, &scope, id)?;
                if let Some(reason) = keeping(conn, &project)? {
                    return Err(ProjectError::Kept(reason));
                }
                event
                    .object("project", id.0, &project.name)
                    .in_organization(Some(project.organization_id))
                    .record(conn)?;
                Project::delete(conn, id)?;
                Ok(project)
            })
    })
    .await
    .map_err(ProjectError::from)
}
