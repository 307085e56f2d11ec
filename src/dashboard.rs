//! GET /: what needs attention, scoped to the person's organizations.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::access::{Role, Scope};
use crate::accounts::model::{Organization, User};
use crate::audit::Event;
use crate::auth::CurrentUser;
use crate::backup::health::ProjectHealth;
use crate::db::{self, DbPool};
use crate::error::AppError;
use crate::projects::model::{Project, ProjectListing};
use crate::startup::AppState;
use crate::web::{Page, html};

#[derive(Template)]
#[template(path = "dashboard.html")]
struct DashboardPage {
    page: Page,
    organizations: Vec<Organization>,
    people: i64,
    recent: Vec<Event>,
    projects: usize,
    failing: Vec<ProjectListing>,
    /// Each project with backup on, and what is wrong with its backups (empty: nothing).
    health: Vec<(ProjectHealth, Vec<String>)>,
}

/// What the dashboard reads, in one trip: the person's organizations and people, the latest
/// changes (for those who read the audit log), the projects and their backup health.
struct Overview {
    organizations: Vec<Organization>,
    people: i64,
    recent: Vec<Event>,
    projects: Vec<ProjectListing>,
    health: Vec<ProjectHealth>,
}

impl Overview {
    async fn load(pool: &DbPool, scope: Scope, sees_audit: bool) -> Result<Overview, AppError> {
        Ok(db::run(pool, move |conn| {
            Ok::<_, AppError>(Overview {
                organizations: Organization::list(conn, &scope)?,
                people: User::count(conn, &scope)?,
                recent: if sees_audit {
                    Event::recent_changes(conn, &scope, 10)?
                } else {
                    Vec::new()
                },
                projects: Project::list(conn, &scope)?,
                health: ProjectHealth::list(conn, &scope)?,
            })
        })
        .await?)
    }

    /// Each project with backup on, and what is wrong with its backups.
    fn alerts(&self) -> Vec<(ProjectHealth, Vec<String>)> {
        self.health
            .iter()
            .cloned()
            .map(|project| {
                let alerts = self
                    .projects
                    .iter()
                    .find(|listed| listed.project.id.0 == project.id)
                    .map(ProjectListing::alerts)
                    .unwrap_or_default();
                (project, alerts)
            })
            .collect()
    }
}

/// GET /
pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    let sees_audit = user.role() != Role::User;
    let overview = Overview::load(&state.pool, user.scope(), sees_audit).await?;
    let health = overview.alerts();
    html(&DashboardPage {
        page: Page::new(&user, &session, "dashboard", "Dashboard"),
        projects: overview.projects.len(),
        failing: overview
            .projects
            .into_iter()
            .filter(ProjectListing::failing)
            .collect(),
        organizations: overview.organizations,
        people: overview.people,
        recent: overview.recent,
        health,
    })
}
