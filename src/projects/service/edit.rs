//! Editing a project: the edit form (its data source's password never shown, a blank one
//! keeping the stored password for the same server), and the update, refused when someone
//! else saved the project since the form was opened.

use serde::Deserialize;

use super::{Checks, Options, ProjectError, check_project_name, chosen_credential, options};
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::credentials::model::CredentialOption;
use crate::crypto::{Keyring, Secret};
use crate::db::{self, DbPool};
use crate::db_errors::unique_violation;
use crate::ids::{CredentialId, OrganizationId, ProjectId};
use crate::projects::data_source::DataSource;
use crate::projects::model::{Project, ProjectChanges, ProjectListing, SourceUse, WriteError};
use crate::projects::source_url;
use crate::web::form::FieldErrors;

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
                        let message = usage.message("This database");
                        return Err(ProjectError::Invalid(FieldErrors::one(
                            "database_url",
                            message,
                        )));
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
                        let message = format!("{name} already exists");
                        return Err(ProjectError::Invalid(FieldErrors::one("name", message)));
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
