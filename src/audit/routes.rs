//! GET /audit: the audit log of the organizations the person may reach.

use actix_session::Session;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::audit::Event;
use crate::auth::{CurrentUser, Role};
use crate::db;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::Pagination;
use crate::web::{Page, html};

const PER_PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "audit/list.html")]
struct AuditPage {
    page: Page,
    events: Vec<Event>,
    pagination: Pagination,
    has_next: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AuditQuery {
    page: Option<i64>,
}

/// GET /audit
pub async fn list(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner, Role::Manager])?;
    let pagination = Pagination::new(query.page, PER_PAGE);
    let scope = user.scope();
    let mut events = db::run(&state.pool, move |conn| {
        Event::list(conn, &scope, pagination.offset(), pagination.fetch())
    })
    .await?;
    let has_next = events.len() as i64 > PER_PAGE;
    events.truncate(PER_PAGE as usize);
    html(&AuditPage {
        page: Page::new(&user, &session, "audit", "Audit log"),
        events,
        pagination,
        has_next,
    })
}
