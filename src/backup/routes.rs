//! Backup actions of a project: enable and disable, add and delete policies, preview a cron
//! period, back up now, restore, delete a backup. Managers and Partners only; another
//! organization's project, policy or backup is "not found".

use std::collections::HashMap;

use actix_session::Session;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use diesel::prelude::*;
use serde::Deserialize;

use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::backup::database::DataSource;
use crate::backup::model::{Backup, BackupId, BackupPolicy, NewPolicy, PolicyId, Restore};
use crate::backup::policy::{self, NO_NAMESPACE, Schedule};
use crate::backup::runner::{check_bucket_name, default_bucket};
use crate::credentials::model::Credential;
use crate::credentials::provider::Kind;
use crate::db;
use crate::error::AppError;
use crate::projects::model::{Project, ProjectId, SourceUse};
use crate::projects::routes::{
    Draft, MANAGERS, PolicyForm, Preview, parse_project_id, ready_bucket, render_project,
};
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html, is_htmx, see_other};

/// The project of a backup action, checked for role and scope.
async fn project_for(state: &AppState, user: &CurrentUser, id: &str) -> Result<Project, AppError> {
    user.require(&MANAGERS)?;
    let id = parse_project_id(id)?;
    let scope = user.scope();
    Ok(db::run(&state.pool, move |conn| Project::find(conn, &scope, id)).await?)
}

/// The project of an action on one of its policies or backups (checked for role and scope)
/// and that policy or backup (`find` by the project and the id in the path), in one trip.
async fn project_and<I, T>(
    state: &AppState,
    user: &CurrentUser,
    id: &str,
    child: &str,
    make_id: fn(i64) -> I,
    find: fn(&mut PgConnection, ProjectId, I) -> QueryResult<T>,
) -> Result<(Project, T), AppError>
where
    I: Send + 'static,
    T: Send + 'static,
{
    user.require(&MANAGERS)?;
    let id = parse_project_id(id)?;
    let child = child.parse().map(make_id).map_err(|_| AppError::NotFound)?;
    let scope = user.scope();
    Ok(db::run(&state.pool, move |conn| {
        let project = Project::find(conn, &scope, id)?;
        let found = find(conn, project.id, child)?;
        Ok::<_, AppError>((project, found))
    })
    .await?)
}

fn event(
    state: &AppState,
    req: &HttpRequest,
    user: &CurrentUser,
    action: &str,
    project: &Project,
) -> NewEvent {
    NewEvent::by(
        user,
        action,
        &client_ip(req, &state.settings.trusted_proxies),
    )
    .in_organization(Some(project.organization_id))
    .object("project", project.id.0, &project.name)
}

fn back_to(project: ProjectId, tab: &str) -> HttpResponse {
    see_other(&format!("/projects/{project}?tab={tab}"))
}

/// After an action: htmx gets the tab, a plain form a redirect with the flash message.
async fn answer(
    req: &HttpRequest,
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    project: ProjectId,
    tab: &str,
    message: String,
) -> Result<HttpResponse, AppError> {
    flash::success(session, message);
    if is_htmx(req) {
        return render_project(req, state, session, user, project, tab, Draft::default()).await;
    }
    Ok(back_to(project, tab))
}

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
    if project.backup_enabled {
        return Err(AppError::Conflict(
            "project backup already enabled: disable it first to switch credentials".into(),
        ));
    }
    let scope = user.scope();
    let options = db::run(&state.pool, move |conn| {
        Credential::options(conn, &scope, Kind::Backup)
    })
    .await?;
    let credential = options
        .iter()
        .find(|o| {
            o.id.to_string() == form.backup_credential_id.trim()
                && o.organization_id == project.organization_id
        })
        .map(|o| o.id)
        .ok_or_else(|| {
            AppError::Invalid(
                "Choose an unlocked backup credential of the project's organization.".into(),
            )
        })?;
    let organization = project.organization_id;
    let organization_name = db::run(&state.pool, move |conn| {
        crate::accounts::model::Organization::find(
            conn,
            &crate::auth::Scope::Organization(organization),
            organization,
        )
    })
    .await?
    .name;
    let bucket = match form.bucket.trim() {
        "" => default_bucket(&organization_name, &project.name),
        given => given.to_string(),
    };
    check_bucket_name(&bucket).map_err(AppError::Invalid)?;
    let ready = ready_bucket(&state, credential, &bucket)
        .await
        .map_err(AppError::Invalid)?;
    let event = event(&state, &req, &user, "project.backup_enable", &project)
        .fields(&["backup_credential_id", "bucket"]);
    let (actor, scope, id, enabled_bucket) = (user.id(), user.scope(), project.id, bucket.clone());
    db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let project = Project::find_for_update(conn, &scope, id)?;
            project.enable_backup(conn, credential, &enabled_bucket, actor)?;
            event.record(conn)?;
            Ok::<_, AppError>(())
        })
    })
    .await?;
    flash::info(
        &session,
        "After enabling backup, you must set up a backup policy.",
    );
    answer(
        &req,
        &state,
        &session,
        &user,
        project.id,
        "schedules",
        format!("Backup enabled: {ready}."),
    )
    .await
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
    let event =
        event(&state, &req, &user, "project.backup_disable", &project).fields(&["backup_enabled"]);
    let (actor, scope, id) = (user.id(), user.scope(), project.id);
    db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let project = Project::find_for_update(conn, &scope, id)?;
            let policies = BackupPolicy::count_for_project(conn, id)?;
            project.disable_backup(conn, policies, actor)?;
            event.record(conn)?;
            Ok::<_, AppError>(())
        })
    })
    .await?;
    answer(
        &req,
        &state,
        &session,
        &user,
        project.id,
        "schedules",
        "Backup disabled. To use it again, enable it with a credential.".into(),
    )
    .await
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
    if !project.backup_enabled {
        return Err(AppError::Conflict(
            "Enable backup before adding a policy.".into(),
        ));
    }
    let fields = form.into_inner();
    let namespaces: Vec<String> = fields
        .iter()
        .filter(|(key, value)| key == "namespaces" && !value.trim().is_empty())
        .map(|(_, value)| value.trim().to_string())
        .collect();
    let map: HashMap<String, String> = fields.into_iter().collect();
    let get = |key: &str| {
        map.get(key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let values = PolicyForm {
        name: get("name"),
        cron: get("cron"),
        timezone: match get("timezone") {
            zone if zone.is_empty() => "UTC".into(),
            zone => zone,
        },
        retention: match get("retention") {
            retention if retention.is_empty() => "720h".into(),
            retention => retention,
        },
        namespaces,
    };
    let mut errors = FieldErrors::default();
    errors.check("name", crate::web::form::check_length(&values.name, 3, 30));
    let schedule = match Schedule::parse(&values.cron, &values.timezone) {
        Ok(schedule) => Some(schedule),
        Err(message) => {
            let field = if message == policy::BAD_CRON {
                "cron"
            } else {
                "timezone"
            };
            errors.add(field, message);
            None
        }
    };
    let retention = policy::parse_retention(&values.retention);
    if let Err(message) = retention {
        errors.add("retention", message);
    }
    if values.namespaces.is_empty() {
        errors.add("namespaces", NO_NAMESPACE);
    } else if values
        .namespaces
        .iter()
        .any(|n| n.len() > 63 || n.contains(['\0', '\n']))
    {
        errors.add("namespaces", "Choose schemas of the project database.");
    } else {
        // Only schemas the database has (checked over a live connection, like every run).
        match state.runner.check_project_source(&project).await {
            Ok(checked) => {
                if let Some(unknown) = values
                    .namespaces
                    .iter()
                    .find(|n| !checked.schemas.contains(n))
                {
                    errors.add(
                        "namespaces",
                        format!("{unknown} is not a schema of the project database."),
                    );
                }
            }
            Err(message) => errors.add(
                "namespaces",
                format!("The project database's schemas could not be read: {message}"),
            ),
        }
    }
    if errors.get("name").is_none() {
        let (id, name) = (project.id, values.name.clone());
        if db::run(&state.pool, move |conn| {
            BackupPolicy::name_taken(conn, id, &name)
        })
        .await?
        {
            errors.add("name", format!("{} already exists", values.name));
        }
    }
    let (Some(schedule), Ok(retention_secs), true) = (schedule, retention, errors.is_empty())
    else {
        let draft = Draft {
            preview: Some(Preview::of(&values.cron, &values.timezone)),
            form: values,
            errors,
        };
        return render_project(
            &req,
            &state,
            &session,
            &user,
            project.id,
            "schedules",
            draft,
        )
        .await;
    };
    let event = event(&state, &req, &user, "policy.create", &project).fields(&[
        "name",
        "cron",
        "timezone",
        "retention",
        "namespaces",
    ]);
    let (actor, project_id, name, namespaces) = (
        user.id(),
        project.id,
        values.name.clone(),
        values.namespaces.clone(),
    );
    let words = schedule.describe();
    db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            BackupPolicy::create(
                conn,
                &NewPolicy {
                    project_id,
                    name: &name,
                    schedule: &schedule,
                    retention_secs,
                    namespaces: &namespaces,
                    created_by: actor,
                },
                Utc::now(),
            )?;
            event.record(conn)?;
            Ok::<_, AppError>(())
        })
    })
    .await?;
    answer(
        &req,
        &state,
        &session,
        &user,
        project.id,
        "schedules",
        format!("Policy {} added: {words}.", values.name),
    )
    .await
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
#[template(path = "projects/_cron_preview.html")]
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

/// POST /projects/{id}/policies/{policy_id}/{action}: delete, run (backup now).
pub async fn policy_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, policy_id, action) = path.into_inner();
    let (project, policy) =
        project_and(&state, &user, &id, &policy_id, PolicyId, BackupPolicy::find).await?;
    let project_id = project.id;
    match action.as_str() {
        "delete" => {
            let event = event(&state, &req, &user, "policy.delete", &project).object(
                "policy",
                policy.id.0,
                &policy.name,
            );
            let name = policy.name.clone();
            db::run(&state.pool, move |conn| {
                conn.build_transaction().run(|conn| {
                    policy.delete(conn)?;
                    event.record(conn)
                })
            })
            .await?;
            answer(&req, &state, &session, &user, project_id, "schedules", format!("Policy {name} deleted: its schedule stopped; its backups stay until they expire.")).await
        }
        "run" => {
            let event = event(&state, &req, &user, "backup.run", &project).object(
                "policy",
                policy.id.0,
                &policy.name,
            );
            let name = policy.name.clone();
            let backup = db::run(&state.pool, move |conn| {
                conn.build_transaction().run(|conn| {
                    // One waiting or running "Backup now" per policy: a second press waits
                    // for the first to end (the policy row serializes concurrent presses).
                    if Backup::policy_busy(conn, policy.id)? {
                        return Err(AppError::Conflict(format!(
                            "A backup of {} is already waiting or running: wait for it to end.",
                            policy.name
                        )));
                    }
                    let slot = Utc::now();
                    let id = Backup::insert_slot(conn, &policy, slot)?.ok_or_else(|| {
                        AppError::Conflict("a backup of this policy just started".into())
                    })?;
                    event.record(conn)?;
                    Ok::<_, AppError>(id)
                })
            })
            .await?;
            let runner = state.runner.clone();
            actix_web::rt::spawn(async move { runner.run_backup(backup).await });
            answer(
                &req,
                &state,
                &session,
                &user,
                project_id,
                "backups",
                format!("Backup of {name} started."),
            )
            .await
        }
        _ => Err(AppError::NotFound),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RestoreForm {
    #[serde(default)]
    restore_name: String,
    #[serde(default)]
    target_database_url: String,
}

/// Only completed backups whose object still exists can be restored.
fn restorable(backup: &Backup) -> Result<(), AppError> {
    if backup.restorable() {
        Ok(())
    } else {
        Err(AppError::Conflict(format!(
            "{} cannot be restored: only completed backups whose object still exists can",
            backup.name
        )))
    }
}

#[derive(Template)]
#[template(path = "projects/_restore.html")]
struct RestoreFormFragment {
    project_id: ProjectId,
    backup: Backup,
    namespaces: Vec<String>,
    csrf: String,
    inline: bool,
}

#[derive(Template)]
#[template(path = "projects/restore.html")]
struct RestorePage {
    page: Page,
    project_name: String,
    project_id: ProjectId,
    backup: Backup,
    namespaces: Vec<String>,
    csrf: String,
    inline: bool,
}

/// GET /projects/{id}/backups/{backup_id}/restore: a backup's restore form, loaded into its
/// row when it is opened (a hundred rows do not each carry a form), or a page of its own
/// without JavaScript. Other actions have no page.
pub async fn backup_page(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (id, backup_id, action) = path.into_inner();
    user.require(&MANAGERS)?;
    if action != "restore" {
        return Err(AppError::NotFound);
    }
    let (project, backup) =
        project_and(&state, &user, &id, &backup_id, BackupId, Backup::find).await?;
    let project_id = project.id;
    restorable(&backup)?;
    let csrf = crate::auth::csrf::token(&session);
    let namespaces = backup.namespaces();
    if is_htmx(&req) {
        return html(&RestoreFormFragment {
            project_id,
            backup,
            namespaces,
            csrf,
            inline: true,
        });
    }
    html(&RestorePage {
        page: Page::new(
            &user,
            &session,
            "projects",
            &format!("Restore {}", backup.name),
        ),
        project_name: project.name.clone(),
        project_id,
        backup,
        namespaces,
        csrf,
        inline: false,
    })
}

/// POST /projects/{id}/backups/{backup_id}/{action}: restore, delete.
pub async fn backup_action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<Vec<(String, String)>>,
) -> Result<HttpResponse, AppError> {
    let (id, backup_id, action) = path.into_inner();
    let (project, backup) =
        project_and(&state, &user, &id, &backup_id, BackupId, Backup::find).await?;
    let project_id = project.id;
    match action.as_str() {
        "delete" => {
            if backup.running() {
                return Err(AppError::Conflict(format!(
                    "{} is still running",
                    backup.name
                )));
            }
            state
                .runner
                .delete_object(&backup)
                .await
                .map_err(AppError::Conflict)?;
            let event = event(&state, &req, &user, "backup.delete", &project).object(
                "backup",
                backup.id.0,
                &backup.name,
            );
            let name = backup.name.clone();
            db::run(&state.pool, move |conn| {
                conn.build_transaction().run(|conn| {
                    diesel::delete(crate::schema::backups::table.find(backup.id)).execute(conn)?;
                    event.record(conn)
                })
            })
            .await?;
            answer(
                &req,
                &state,
                &session,
                &user,
                project_id,
                "backups",
                format!("Backup {name} and its object are deleted."),
            )
            .await
        }
        "restore" => {
            restorable(&backup)?;
            let fields = form.into_inner();
            let chosen: Vec<String> = fields
                .iter()
                .filter(|(key, value)| key == "namespaces" && !value.is_empty())
                .map(|(_, value)| value.clone())
                .collect();
            let map: HashMap<String, String> = fields.into_iter().collect();
            let restore_form = RestoreForm {
                restore_name: map.get("restore_name").cloned().unwrap_or_default(),
                target_database_url: map.get("target_database_url").cloned().unwrap_or_default(),
            };
            let available = backup.namespaces();
            if chosen.iter().any(|n| !available.contains(n)) {
                return Err(AppError::Invalid(
                    "Choose namespaces that this backup holds.".into(),
                ));
            }
            let name = match restore_form.restore_name.trim() {
                "" => format!("restore-{}", Utc::now().format("%Y%m%d-%H%M%S")),
                given => given.to_string(),
            };
            crate::web::form::check_length(&name, 3, 40)
                .map_err(|m| AppError::Invalid(format!("Restore name: {m}")))?;
            // Another database than the project's own is a choice of its own: checked like a
            // data source, refused if any other project uses it, and audited as such.
            let target = match restore_form.target_database_url.trim() {
                "" => None,
                url => {
                    let source = DataSource::parse(url).map_err(AppError::Invalid)?;
                    let checked = state
                        .runner
                        .check_source(&source, SourceUse::RestoreTarget(project.id))
                        .await
                        .map_err(AppError::Invalid)?;
                    Some((url.to_string(), checked.display()))
                }
            };
            let mut fields = vec!["restore_name"];
            if !chosen.is_empty() {
                fields.push("namespaces");
            }
            let (action, into) = match &target {
                Some((_, shown)) => {
                    fields.push("target_database_url");
                    ("restore.create_elsewhere", shown.clone())
                }
                None => ("restore.create", "the project database".to_string()),
            };
            let event = event(&state, &req, &user, action, &project)
                .object(
                    "backup",
                    backup.id.0,
                    &format!("{} into {into}", backup.name),
                )
                .fields(&fields);
            let actor = user.id();
            let (restore_backup, target_display) = (
                backup.clone(),
                target.as_ref().map(|(_, shown)| shown.clone()),
            );
            let restore = db::run(&state.pool, move |conn| {
                conn.build_transaction().run(|conn| {
                    let restore = Restore::create(
                        conn,
                        &restore_backup,
                        &name,
                        &chosen,
                        target_display,
                        actor,
                    )?;
                    event.record(conn)?;
                    Ok::<_, AppError>(restore)
                })
            })
            .await?;
            let runner = state.runner.clone();
            let target_url = target.map(|(url, _)| url);
            let restore_name = restore.name.clone();
            actix_web::rt::spawn(async move {
                runner
                    .run_restore(restore, backup, project, target_url)
                    .await
            });
            answer(
                &req,
                &state,
                &session,
                &user,
                project_id,
                "restores",
                format!("Restore {restore_name} started."),
            )
            .await
        }
        _ => Err(AppError::NotFound),
    }
}
