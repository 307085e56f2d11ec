//! The project use cases: the choices a project form offers, creating a project (its data
//! source checked, its bucket proved when backup is on; the pages and the API share it),
//! editing its name, credentials and data source, and deleting it once nothing keeps it.

use std::collections::HashMap;

use diesel::{PgConnection, QueryResult};

use crate::access::{Role, Scope};
use crate::accounts::model::Organization;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::credentials::model::{Credential, CredentialOption};
use crate::credentials::provider::Kind;
use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::ids::{CredentialId, OrganizationId, ProjectId};
use crate::projects::data_source::{Checked, DataSource};
use crate::projects::model::{
    NewProject, Project, ProjectFilter, ProjectListing, SourceUse, WriteError,
};
use crate::storage::bucket_name::{check_bucket_name, default_bucket};
use crate::web::form::FieldErrors;

mod edit;

pub use edit::{EditForm, Editing, editing, update};

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
