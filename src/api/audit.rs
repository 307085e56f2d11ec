//! `GET /api/v1/audit`: the audit log, as the page shows it (Partners and Managers).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{ApiError, ApiUser, ListAnswer, Problem, json};
use crate::audit::Event;
use crate::auth::Role;
use crate::db;
use crate::startup::AppState;
use crate::tokens::ApiScope;
use crate::web::form::Pagination;

const PER_PAGE: i64 = 50;

/// A recorded event.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who did it (with the token's name for API changes).
    pub actor: String,
    pub organization: Option<String>,
    pub action: String,
    pub object_kind: String,
    pub object: String,
    /// Names of the fields that changed (never their values).
    pub fields: Vec<String>,
    pub client_ip: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct AuditQuery {
    page: Option<i64>,
}

/// Events newest first, 50 a page.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(("page" = Option<i64>, Query)),
    responses((status = 200, description = "A page of the list", body = ListAnswer<EventView>),
        (status = 403, body = Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::AuditRead)?;
    user.require(&[Role::Partner, Role::Manager])?;
    let pagination = Pagination::new(query.page, PER_PAGE);
    let scope = user.scope();
    let (mut events, total) = db::run(&state.pool, move |conn| {
        let events = Event::list(conn, &scope, pagination.offset(), pagination.fetch())?;
        Ok::<_, diesel::result::Error>((events, Event::count(conn, &scope)?))
    })
    .await?;
    let has_next = events.len() as i64 > PER_PAGE;
    events.truncate(PER_PAGE as usize);
    let next = has_next.then(|| format!("{}?page={}", req.path(), pagination.page + 1));
    Ok(json(
        StatusCode::OK,
        &ListAnswer {
            total,
            items: events
                .into_iter()
                .map(|event| EventView {
                    fields: event.fields.iter().flatten().cloned().collect(),
                    id: event.id,
                    at: event.at,
                    actor: event.actor_label,
                    organization: event.organization_name,
                    action: event.action,
                    object_kind: event.object_kind,
                    object: event.object_label,
                    client_ip: event.client_ip,
                })
                .collect(),
            page: pagination.page,
            next,
        },
    ))
}
