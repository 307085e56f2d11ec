//! The pages of a project's Backup tabs (Schedules, Backups, Restores): what each tab shows,
//! the add-policy form and its cron preview, and the project page or (for htmx) the tab alone.
//! The Backups tab is kept in `page_cache` while nothing runs.

use std::sync::Arc;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;
use chrono::{DateTime, Utc};

use crate::auth::CurrentUser;
use crate::backup::database::DataSource;
use crate::backup::drill::{Drill, DrillSchedule};
use crate::backup::encryption::{self, Encryption};
use crate::backup::model::{Backup, BackupId, BackupPolicy, Restore};
use crate::backup::phase::{DrillPhase, Phase};
use crate::backup::policy::{self, Schedule};
use crate::backup::runner::default_bucket;
use crate::backup::service::PolicyRequest;
use crate::credentials::model::{Credential, CredentialOption};
use crate::credentials::provider::Kind;
use crate::db;
use crate::error::AppError;
use crate::page_cache::PageKey;
use crate::projects::MANAGERS;
use crate::projects::model::{Project, ProjectId, ProjectListing};
use crate::startup::AppState;
use crate::web::form::{Choice, FieldErrors};
use crate::web::words::human_size;
use crate::web::{Page, html_with_status, is_htmx};

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
    /// When a restore of one of its backups last passed a drill (empty: never).
    pub last_verified: String,
    /// Its drill schedule, in words (`off` shows nothing).
    pub drill: &'static str,
    /// Its slot passed more than the grace period ago without a run.
    pub missed: bool,
    /// The origin its heartbeat goes to (empty: none).
    pub heartbeat: String,
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
    /// What the check before `pg_dump` found.
    pub preflight: String,
    /// The recipients it was encrypted to, shortened; empty when stored unencrypted.
    pub encrypted_to: String,
    /// Its latest drill: `verified`, `failed` or empty, and its time, duration or reason.
    pub check: &'static str,
    pub check_detail: String,
    pub restorable: bool,
    pub running: bool,
    /// How long a running backup has been going ("running for 2 min 5 s"); empty otherwise.
    pub elapsed: String,
    pub deleted: bool,
}

/// How long a run started at `started` has been going, in words.
fn running_for(started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(started) = started else {
        return "waiting for a slot".into();
    };
    let seconds = (now - started).num_seconds().max(0);
    match seconds {
        0..60 => format!("running for {seconds} s"),
        60..3600 => format!("running for {} min {} s", seconds / 60, seconds % 60),
        _ => format!(
            "running for {} h {} min",
            seconds / 3600,
            seconds % 3600 / 60
        ),
    }
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
    pub parallel: bool,
}

/// A duration in seconds, to a tenth.
fn seconds(duration: chrono::Duration) -> String {
    format!("{:.1} s", duration.num_milliseconds() as f64 / 1000.0)
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(crate::web::words::utc_second).unwrap_or_default()
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
    pub encryption: EncryptionView,
}

/// A project's encryption settings as its page shows them.
#[derive(Default)]
pub struct EncryptionView {
    pub enabled: bool,
    /// The recipients, shortened.
    pub recipients: Vec<String>,
    /// What the recipients field holds: the saved keys, or what was typed.
    pub recipients_text: String,
    /// Whether keyhold keeps an identity (restores need none pasted).
    pub identity_kept: bool,
}

/// A tab alone, for htmx (polling while something runs).
#[derive(Template)]
#[template(path = "backup/_tab_response.html")]
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
    /// The schedule chosen; anything but a preset's name (a blank form's) is Custom.
    pub cron_preset: String,
    pub timezone: String,
    pub retention: String,
    pub namespaces: Vec<String>,
    pub drill: String,
    pub heartbeat_url: String,
}

impl From<PolicyRequest> for PolicyForm {
    fn from(request: PolicyRequest) -> PolicyForm {
        PolicyForm {
            name: request.name,
            cron: request.cron,
            cron_preset: request.cron_preset,
            timezone: request.timezone,
            retention: request.retention,
            namespaces: request.namespaces,
            drill: request.drill,
            heartbeat_url: request.heartbeat_url,
        }
    }
}

impl PolicyForm {
    pub fn checked(&self, schema: &str) -> bool {
        self.namespaces.iter().any(|n| n == schema)
    }

    /// The schedule select: the presets (each with its pattern) and Custom, the one sent
    /// chosen. A blank form says Custom, so a period typed without JavaScript counts (with
    /// JavaScript the select follows the cron field).
    pub fn schedule_choices(&self) -> Vec<(Choice, &'static str)> {
        let chosen = match policy::preset_pattern(&self.cron_preset) {
            Some(_) => self.cron_preset.to_lowercase(),
            None => policy::CUSTOM.to_string(),
        };
        policy::PRESETS
            .iter()
            .map(|(label, pattern)| (label.to_lowercase(), label.to_string(), *pattern))
            .chain([(policy::CUSTOM.to_string(), "Custom".to_string(), "")])
            .map(|(value, label, pattern)| {
                let selected = value == chosen;
                (
                    Choice {
                        value,
                        label,
                        selected,
                    },
                    pattern,
                )
            })
            .collect()
    }
}

/// What a project's Backups tab, while nothing runs, is kept under in the page cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct BackupsTabKey {
    scope: crate::access::Scope,
    project: ProjectId,
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
        let ids: Vec<BackupId> = backups.iter().map(|backup| backup.id).collect();
        let drills = if name == "restores" {
            Vec::new()
        } else {
            Drill::latest_of(conn, &ids)?
        };
        let polling = polling || Drill::any_running_in(conn, id)?;
        Ok::<_, AppError>((
            project, policies, backups, restores, polling, schemas, drills,
        ))
    });
    // The backups tab, while nothing runs, is kept in memory until a table changes (the most
    // visited tab; the others check the data source or follow a restore).
    let loaded = match name {
        "backups" if from_memory => {
            let key = PageKey::new(BackupsTabKey { scope, project: id });
            let read_from = Project::LISTING_READS
                | Backup::FOR_PROJECT_READS
                | Restore::ANY_RUNNING_READS
                | Drill::LATEST_READS;
            let nothing_runs = |loaded: &(_, _, _, _, bool, _, _)| !loaded.4;
            state.pages.load(key, read_from, load, nothing_runs).await?
        }
        _ => Arc::new(load.await?),
    };
    let (project, policies, backups, restores, polling, known, drills) = &*loaded;
    let drill_of = |backup: BackupId| drills.iter().find(|d| d.backup_id == Some(backup));
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
                missed: project.project.backup_enabled
                    && policy.next_run_at < Utc::now() - crate::projects::model::missed_grace(),
                drill: match policy.drill {
                    DrillSchedule::Off => "",
                    other => other.label(),
                },
                heartbeat: policy.heartbeat_origin().unwrap_or_default(),
                last_verified: drills
                    .iter()
                    .filter(|d| d.phase == DrillPhase::Passed)
                    .filter(|d| {
                        backups
                            .iter()
                            .any(|b| Some(b.id) == d.backup_id && b.policy_id == Some(policy.id))
                    })
                    .filter_map(|d| d.finished_at)
                    .max()
                    .map(|at| when(Some(at)))
                    .unwrap_or_default(),
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
    let now = Utc::now();
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
            size: match (backup.running(), backup.progress_bytes) {
                (true, Some(stored)) => format!("{} so far", human_size(Some(stored))),
                _ => human_size(backup.size_bytes),
            },
            checksum: backup.sha256.clone().unwrap_or_default(),
            phase: backup.phase,
            reason: backup.reason.clone().unwrap_or_default(),
            preflight: backup.preflight.clone().unwrap_or_default(),
            check: match drill_of(backup.id).map(|d| d.phase) {
                Some(DrillPhase::Passed) => "verified",
                Some(DrillPhase::Failed) => "failed",
                _ => "",
            },
            check_detail: drill_of(backup.id)
                .map(|d| match d.phase {
                    DrillPhase::Passed => format!(
                        "restored and compared {} ({} tables, {} rows) in {}",
                        when(d.finished_at),
                        d.tables_compared,
                        d.rows_compared,
                        d.duration().map(seconds).unwrap_or_default()
                    ),
                    _ => d.reason.clone().unwrap_or_default(),
                })
                .unwrap_or_default(),
            encrypted_to: backup
                .encrypted_to()
                .map(|recipients| {
                    recipients
                        .iter()
                        .map(|r| encryption::short(r))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            restorable: backup.restorable(),
            running: backup.running(),
            elapsed: if backup.running() {
                running_for(backup.started_at, now)
            } else {
                String::new()
            },
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
            parallel: restore.parallel,
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
    /// The encryption form's recipients as typed, when it is shown again with its errors.
    pub recipients: Option<String>,
    /// The enable form's credential and bucket as chosen, when it is shown again.
    pub enable: Option<(String, String)>,
    /// The status of a refusal other than invalid input (409 for a refused change).
    pub status: Option<StatusCode>,
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
        recipients,
        enable,
        status,
    } = draft;
    let status = match status {
        Some(status) => status,
        None if errors.is_empty() => StatusCode::OK,
        None => StatusCode::UNPROCESSABLE_ENTITY,
    };
    let (chosen_credential, typed_bucket) = enable.unwrap_or_default();
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
        CredentialOption::choices(
            &own,
            &[],
            Some(organization),
            &chosen_credential,
            false,
            "— choose —",
        )
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
    let encryption = db::run(&state.pool, move |conn| Encryption::find(conn, id))
        .await?
        .map(|saved| EncryptionView {
            enabled: saved.enabled,
            recipients: saved
                .recipients()
                .iter()
                .map(|r| encryption::short(r))
                .collect(),
            recipients_text: saved.recipients().join("\n"),
            identity_kept: saved.identity.is_some(),
        })
        .unwrap_or_default();
    let encryption = match recipients {
        Some(typed) => EncryptionView {
            recipients_text: typed,
            ..encryption
        },
        None => encryption,
    };
    html_with_status(
        status,
        &ProjectPage {
            encryption,
            csrf: page.csrf.clone(),
            default_bucket: if typed_bucket.is_empty() {
                default_bucket(&project.organization_name, &project.project.name)
            } else {
                typed_bucket
            },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_backup_says_how_long_it_has_run() {
        let now = Utc::now();
        let ago = |seconds| Some(now - chrono::Duration::seconds(seconds));
        assert_eq!(running_for(None, now), "waiting for a slot");
        assert_eq!(running_for(ago(42), now), "running for 42 s");
        assert_eq!(running_for(ago(125), now), "running for 2 min 5 s");
        assert_eq!(running_for(ago(7260), now), "running for 2 h 1 min");
    }
}
