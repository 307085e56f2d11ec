//! A project's page (`GET /projects/{id}`) and its Backup tabs (Schedules, Backups, Restores):
//! what each tab shows, the add-policy form and its cron preview, and the project page or (for
//! htmx) the tab alone. What they read is `backup::reads`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use chrono::Utc;
use serde::Deserialize;

use crate::auth::CurrentUser;
use crate::backup::model::BackupId;
use crate::backup::policy::{self, Schedule};
use crate::backup::reads::{self, ProjectPageRead, ProjectSettings, TabName, TabRows};
use crate::backup::service::PolicyRequest;
use crate::credentials::model::CredentialOption;
use crate::error::AppError;
use crate::projects::MANAGERS;
use crate::projects::model::{ProjectId, ProjectListing};
use crate::startup::AppState;
use crate::storage::bucket_name::default_bucket;
use crate::web::form::{Choice, FieldErrors};
use crate::web::{Page, html_with_status, is_htmx};

mod rows;

pub use rows::{BackupView, EncryptionView, PolicyView, RestoreView};

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
