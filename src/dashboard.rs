//! GET /: what needs attention, scoped to the person's organizations.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use askama::Template;

use crate::access::Role;
use crate::accounts::model::{Organization, User};
use crate::audit::Event;
use crate::auth::CurrentUser;
use crate::backup::health::ProjectHealth;
use crate::db;
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

/// GET /
pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    let scope = user.scope();
    let sees_audit = user.role() != Role::User;
    let (organizations, people, recent, projects, health) = db::run(&state.pool, move |conn| {
        let organizations = Organization::list(conn, &scope)?;
        let people = User::count(conn, &scope)?;
        let recent = if sees_audit {
            Event::recent_changes(conn, &scope, 10)?
        } else {
            Vec::new()
        };
        Ok::<_, AppError>((
            organizations,
            people,
            recent,
            Project::list(conn, &scope)?,
            ProjectHealth::list(conn, &scope)?,
        ))
    })
    .await?;
    let health = health
        .into_iter()
        .map(|project| {
            let alerts = projects
                .iter()
                .find(|listed| listed.project.id.0 == project.id)
                .map(ProjectListing::alerts)
                .unwrap_or_default();
            (project, alerts)
        })
        .collect();
    html(&DashboardPage {
        page: Page::new(&user, &session, "dashboard", "Dashboard"),
        organizations,
        people,
        recent,
        projects: projects.len(),
        failing: projects
            .into_iter()
            .filter(ProjectListing::failing)
            .collect(),
        health,
    })
}
