//! Liveness and readiness for orchestrators. Both are probes (`routes`): no session is read,
//! so a cookie sent with them changes nothing, also during a database outage.

use actix_web::{HttpResponse, web};

use crate::db;
use crate::startup::AppState;

/// GET /healthz: the process answers (it never touches the database).
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; charset=utf-8")
        .body("ok")
}

/// GET /readyz: the database answers too (checked anew on every call, so it recovers by itself).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    if db::is_ready(&state.pool).await {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ready")
    } else {
        HttpResponse::ServiceUnavailable()
            .insert_header((actix_web::http::header::RETRY_AFTER, "5"))
            .content_type("text/plain; charset=utf-8")
            .body("database unreachable")
    }
}
