//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! annotations, served at `GET /api/v1/openapi.json` (no token needed). A test compares its
//! paths with the route table, so neither can drift from the other.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{audit, credentials, projects};

#[derive(OpenApi)]
#[openapi(
    info(title = "keyhold API", version = "1",
        description = "Every page action of keyhold as JSON, for bearer tokens made at /tokens. \
            Errors are application/problem+json (RFC 9457)."),
    paths(
        document,
        audit::list,
        credentials::list,
        credentials::create,
        credentials::verify_values,
        credentials::show,
        credentials::update,
        credentials::delete,
        credentials::action,
        projects::list,
        projects::create,
        projects::show,
        projects::enable,
        projects::disable,
        projects::policies,
        projects::create_policy,
        projects::delete_policy,
        projects::run_policy,
        projects::backups,
        projects::backup,
        projects::delete_backup,
        projects::restore,
        projects::verify_backup,
        projects::restores,
    ),
    components(schemas(super::Problem)),
    modifiers(&BearerToken)
)]
pub struct ApiDoc;

/// Declares the `bearer` security scheme the operations name.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
    }
}

/// The document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}
