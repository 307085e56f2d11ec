//! Liveness and readiness for orchestrators.

use actix_web::{HttpResponse, web};

use crate::db;
use crate::startup::AppState;

/// GET /healthz: the process answers.
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
            .content_type("text/plain; charset=utf-8")
            .body("database unreachable")
    }
}
