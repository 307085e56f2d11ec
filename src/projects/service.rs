//! The project use cases shared by the pages and the API: the choices a project form offers,
//! and creating a project (its data source checked, its bucket proved when backup is on).

use std::collections::HashMap;

use crate::accounts::model::{Organization, OrganizationId};
use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Role, Scope};
use crate::backup::database::DataSource;
use crate::backup::runner::{Runner, check_bucket_name, default_bucket};
use crate::backup::service::ready_bucket;
use crate::credentials::model::{Credential, CredentialId, CredentialOption};
use crate::credentials::provider::Kind;
use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::error::AppError;
use crate::projects::model::{NewProject, Project, SourceUse};
use crate::web::form::FieldErrors;

/// Why creating a project was refused.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The form's fields, with a message next to each wrong one (422).
    #[error("Correct the highlighted fields.")]
    Invalid(FieldErrors),
    #[error(transparent)]
    Store(#[from] AppError),
}

impl<E: Into<AppError>> From<db::RunError<E>> for ProjectError {
    fn from(error: db::RunError<E>) -> ProjectError {
        ProjectError::Store(error.into())
    }
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
            database_url: get("database_url"),
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

pub async fn options(pool: &DbPool, scope: Scope) -> Result<Options, AppError> {
    Ok(db::run(pool, move |conn| {
        Ok::<_, AppError>(Options {
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
    runner: &Runner,
    keyring: &Keyring,
    user: &CurrentUser,
    client_ip: &str,
    form: &ProjectForm,
) -> Result<Project, ProjectError> {
    let options = options(&runner.pool, user.scope()).await?;
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
        if db::run(&runner.pool, move |conn| {
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
        && let Err(message) = ready_bucket(runner, credential, &bucket).await
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
    let project = db::run(&runner.pool, move |conn| {
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
    Ok(project)
}
