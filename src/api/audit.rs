//! `GET /api/v1/audit`: the audit log, as the page shows it (Partners and Managers), with the
//! page's filters (`audit::filter`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::{ApiError, ApiUser, ListAnswer, Problem, json};
use crate::access::Role;
use crate::audit::EventView;
use crate::audit::filter::FilterParams;
use crate::startup::AppState;
use crate::tokens::ApiScope;
use crate::web::form::{FieldErrors, Pagination};

const PER_PAGE: i64 = 50;

#[derive(Deserialize, Default)]
#[serde(default)]
struct PageParam {
    page: String,
}

/// Events newest first, 50 a page, filtered as on the page; unlike the page, sign-ins and
/// sign-outs are included unless `sign_ins=false`.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    params(
        ("page" = Option<i64>, Query),
        ("q" = Option<String>, Query, description = "Search in the actor and the object's label"),
        ("person" = Option<i64>, Query, description = "Id of the person who acted"),
        ("action" = Option<String>, Query, description = "Action code, e.g. `credential.lock`"),
        ("kind" = Option<String>, Query, description = "Kind of object, e.g. `credential`"),
        ("org" = Option<i64>, Query, description = "Organization id (inside the token's scope)"),
        ("from" = Option<String>, Query, description = "From this date (YYYY-MM-DD, UTC) or RFC 3339 instant"),
        ("to" = Option<String>, Query, description = "Until this date, included (YYYY-MM-DD, UTC), or before this RFC 3339 instant"),
        ("sign_ins" = Option<bool>, Query, description = "Include sign-ins and sign-outs (default true)"),
    ),
    responses((status = 200, description = "A page of the list", body = ListAnswer<EventView>),
        (status = 403, body = Problem),
        (status = 422, description = "A filter value is wrong", body = Problem)),
    security(("bearer" = ["audit:read"])))]
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    api: ApiUser,
) -> Result<HttpResponse, ApiError> {
    let user = api.require(ApiScope::AuditRead)?;
    user.require(&[Role::Partner, Role::Manager])?;
    let params = FilterParams::parse(req.query_string()).ok_or_else(|| {
        let errors = FieldErrors::one("filter", "A filter is given twice.");
        ApiError::invalid("The filter cannot be read.", errors)
    })?;
    let filter = params
        .check(true)
        .map_err(|errors| ApiError::invalid("Correct the filter.", errors))?;
    let page = serde_urlencoded::from_str::<PageParam>(req.query_string())
        .ok()
        .and_then(|param| param.page.trim().parse::<i64>().ok());
    let pagination = Pagination::new(page, PER_PAGE);
    let found = crate::audit::service::page(&state.pool, user.scope(), filter, pagination).await?;
    let next = found
        .has_next
        .then(|| next_page(req.path(), &params, pagination));
    Ok(json(
        StatusCode::OK,
        &ListAnswer {
            total: found.total,
            items: found.events.into_iter().map(EventView::from).collect(),
            page: pagination.page,
            next,
        },
    ))
}

/// The link of the page after `pagination`'s, with the same filter.
fn next_page(path: &str, params: &FilterParams, pagination: Pagination) -> String {
    let query = params.to_query();
    let separator = if query.is_empty() { "" } else { "&" };
    format!("{path}?{query}{separator}page={}", pagination.page + 1)
}
