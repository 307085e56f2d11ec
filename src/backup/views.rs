//! A project's page (`GET /projects/{id}`) and its Backup tabs (Schedules, Backups, Restores):
//! what each tab shows, the add-policy form and its cron preview, and the project page or (for
//! htmx) the tab alone. What they read is `backup::reads`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::backup::drill::{Drill, DrillSchedule};
use crate::backup::encryption::{self, Encryption};
use crate::backup::model::{Backup, BackupId, BackupPolicy, Restore};
use crate::backup::policy::{self, Schedule};
use crate::backup::reads::{self, ProjectPageRead, ProjectSettings, TabName, TabRows};
use crate::backup::service::PolicyRequest;
use crate::credentials::model::CredentialOption;
use crate::error::AppError;
use crate::projects::MANAGERS;
use crate::projects::model::{ProjectId, ProjectListing};
use crate::projects::phase::{DrillPhase, Phase};
use crate::startup::AppState;
use crate::storage::bucket_name::default_bucket;
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

impl PolicyView {
    /// A policy of `rows`, with its last backup and the last drill that passed.
    fn of(policy: &BackupPolicy, rows: &TabRows) -> PolicyView {
        let last = rows.backups.iter().find(|b| b.policy_id == Some(policy.id));
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
            missed: rows.project.project.backup_enabled
                && policy.next_run_at < Utc::now() - crate::projects::model::missed_grace(),
            drill: match policy.drill {
                DrillSchedule::Off => "",
                other => other.label(),
            },
            heartbeat: policy.heartbeat_origin().unwrap_or_default(),
            last_verified: last_verified(policy, rows),
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
    }
}

/// When a drill of one of `policy`'s listed backups last passed (empty: never).
fn last_verified(policy: &BackupPolicy, rows: &TabRows) -> String {
    rows.drills
        .iter()
        .filter(|d| d.phase == DrillPhase::Passed)
        .filter(|d| {
            rows.backups
                .iter()
                .any(|b| Some(b.id) == d.backup_id && b.policy_id == Some(policy.id))
        })
        .filter_map(|d| d.finished_at)
        .max()
        .map(|at| when(Some(at)))
        .unwrap_or_default()
}

impl BackupView {
    /// A backup with its latest drill (`drill`), as of `now`.
    fn of(backup: &Backup, drill: Option<&Drill>, now: DateTime<Utc>) -> BackupView {
        BackupView {
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
            check: match drill.map(|d| d.phase) {
                Some(DrillPhase::Passed) => "verified",
                Some(DrillPhase::Failed) => "failed",
                _ => "",
            },
            check_detail: drill.map(check_detail).unwrap_or_default(),
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
        }
    }
}

/// What a drill found, in words.
fn check_detail(drill: &Drill) -> String {
    match drill.phase {
        DrillPhase::Passed => format!(
            "restored and compared {} ({} tables, {} rows) in {}",
            when(drill.finished_at),
            drill.tables_compared,
            drill.rows_compared,
            drill.duration().map(seconds).unwrap_or_default()
        ),
        _ => drill.reason.clone().unwrap_or_default(),
    }
}

impl RestoreView {
    fn of(restore: &Restore) -> RestoreView {
        RestoreView {
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
        }
    }
}

impl Tab {
    /// The tab `name` of `rows` as `user` sees it. Only the shown tab's rows are built (the
    /// Schedules tab reads backups for its policies' last runs, not to list them).
    fn of(rows: &TabRows, name: TabName, user: &CurrentUser, preview: Option<Preview>) -> Tab {
        let schemas = if rows.schemas.is_empty()
            && name == TabName::Schedules
            && rows.project.project.backup_enabled
            && MANAGERS.contains(&user.role())
        {
            Err("keyhold has not connected to the project database yet".to_string())
        } else {
            Ok(rows.schemas.clone())
        };
        let now = Utc::now();
        let drill_of = |backup: BackupId| rows.drills.iter().find(|d| d.backup_id == Some(backup));
        Tab {
            name: name.key(),
            policies: rows
                .policies
                .iter()
                .map(|p| PolicyView::of(p, rows))
                .collect(),
            backups: rows
                .backups
                .iter()
                .filter(|_| name == TabName::Backups)
                .map(|backup| BackupView::of(backup, drill_of(backup.id), now))
                .collect(),
            restores: rows.restores.iter().map(RestoreView::of).collect(),
            polling: rows.polling,
            schemas,
            presets: policy::PRESETS,
            preview,
        }
    }
}

impl EncryptionView {
    /// The saved settings, the recipients field holding what was `typed` if anything.
    fn of(saved: Option<&Encryption>, typed: Option<String>) -> EncryptionView {
        let saved = saved
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
        match typed {
            Some(typed) => EncryptionView {
                recipients_text: typed,
                ..saved
            },
            None => saved,
        }
    }
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

impl Draft {
    fn status(&self) -> StatusCode {
        match self.status {
            Some(status) => status,
            None if self.errors.is_empty() => StatusCode::OK,
            None => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }
}

/// The request a project page answers: what rendering it, or redirecting back to it, takes.
pub struct ProjectReply<'a> {
    pub req: &'a HttpRequest,
    pub state: &'a AppState,
    pub session: &'a Session,
    pub user: &'a CurrentUser,
}

impl<'a> ProjectReply<'a> {
    pub fn new(
        req: &'a HttpRequest,
        state: &'a AppState,
        session: &'a Session,
        user: &'a CurrentUser,
    ) -> ProjectReply<'a> {
        ProjectReply {
            req,
            state,
            session,
            user,
        }
    }

    /// Renders the project page (or, for htmx, its tab) with the policy form's draft.
    pub async fn render(
        &self,
        id: ProjectId,
        tab: &str,
        mut draft: Draft,
    ) -> Result<HttpResponse, AppError> {
        let (user, status, name) = (self.user, draft.status(), TabName::parse(tab));
        let can_manage = MANAGERS.contains(&user.role());
        let read = ProjectPageRead {
            scope: user.scope(),
            project: id,
            tab: name,
            from_memory: self.req.method().is_safe(),
            whole_page: !is_htmx(self.req),
            can_manage,
        };
        let state = self.state;
        let keyring = &state.settings.keyring;
        let rows = reads::project_page(&state.pool, &state.pages, keyring, read).await?;
        let project = rows.tab.project.clone();
        let page = Page::new(user, self.session, "projects", &project.project.name);
        let tab = Tab::of(&rows.tab, name, user, draft.preview.take());
        let shown = Shown {
            page,
            tab,
            project,
            can_manage,
        };
        match rows.settings {
            None => html_with_status(status, &TabFragment::of(shown, draft)),
            Some(settings) => html_with_status(status, &ProjectPage::of(shown, settings, draft)),
        }
    }
}

/// What the project page and its tab alone both show.
struct Shown {
    page: Page,
    tab: Tab,
    project: ProjectListing,
    can_manage: bool,
}

impl TabFragment {
    fn of(shown: Shown, draft: Draft) -> TabFragment {
        TabFragment {
            flashes: shown.page.flashes,
            csrf: shown.page.csrf,
            tab: shown.tab,
            project: shown.project,
            can_manage: shown.can_manage,
            form: draft.form,
            errors: draft.errors,
        }
    }
}

impl ProjectPage {
    fn of(shown: Shown, settings: ProjectSettings, draft: Draft) -> ProjectPage {
        let Shown {
            page,
            tab,
            project,
            can_manage,
        } = shown;
        let (chosen_credential, typed_bucket) = draft.enable.unwrap_or_default();
        ProjectPage {
            encryption: EncryptionView::of(settings.encryption.as_ref(), draft.recipients),
            csrf: page.csrf.clone(),
            default_bucket: if typed_bucket.is_empty() {
                default_bucket(&project.organization_name, &project.project.name)
            } else {
                typed_bucket
            },
            backup_choices: backup_choices(&settings, &project, &chosen_credential),
            data_source: settings
                .data_source
                .unwrap_or_else(|| "(cannot be opened with the configured keys)".into()),
            page,
            tab,
            can_manage,
            form: draft.form,
            errors: draft.errors,
            project,
        }
    }
}

/// The enable form's credential select: the organization's backup credentials, `chosen`
/// selected (empty when backup is on or the reader may not enable it).
fn backup_choices(
    settings: &ProjectSettings,
    project: &ProjectListing,
    chosen: &str,
) -> Vec<Choice> {
    let organization = project.project.organization_id;
    settings
        .backup_credentials
        .as_ref()
        .map(|own| {
            CredentialOption::choices(own, &[], Some(organization), chosen, false, "— choose —")
        })
        .unwrap_or_default()
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
    let draft = Draft {
        form,
        errors: FieldErrors::default(),
        preview,
        ..Draft::default()
    };
    let reply = ProjectReply::new(&req, &state, &session, &user);
    reply.render(id, &tab, draft).await
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
