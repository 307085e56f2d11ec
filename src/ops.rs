//! Liveness, readiness and metrics for orchestrators. All are probes (`routes`): no session is
//! read, so a cookie sent with them changes nothing, also during a database outage.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

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

/// GET /metrics
pub async fn metrics(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let settings = &state.settings;
    match &settings.metrics_token {
        Some(token) if !bearer_matches(&req, token.expose()) => {
            return HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Bearer"))
                .content_type("text/plain; charset=utf-8")
                .body("/metrics needs the bearer token of KEYHOLD_METRICS_TOKEN");
        }
        None if settings.production => {
            return HttpResponse::NotFound()
                .content_type("text/plain; charset=utf-8")
                .body("/metrics is off: set KEYHOLD_METRICS_TOKEN to serve it");
        }
        _ => {}
    }
    let mut body = state.metrics.render(&state.pool, &state.pages);
    state.deliverer.looks.render(&mut body);
    // The backup series need the database; during an outage the process series still answer.
    match crate::backup::metrics::series(&state.pool).await {
        Ok(backups) => body.push_str(&backups),
        Err(error) => tracing::warn!("backup metrics unavailable: {error}"),
    }
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(body)
}

/// Whether the request carries `Authorization: Bearer <token>`. The SHA-256 digests are
/// compared, in constant time, so neither the token's bytes nor its length show in timing.
fn bearer_matches(req: &HttpRequest, token: &str) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let Some(given) = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
    else {
        return false;
    };
    let (given, token) = (Sha256::digest(given.trim()), Sha256::digest(token));
    bool::from(given.as_slice().ct_eq(token.as_slice()))
}
