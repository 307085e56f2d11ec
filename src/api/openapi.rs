//! The OpenAPI 3.1 document of `/api/v1`, generated from the handlers' `#[utoipa::path]`
//! annotations, served at `GET /api/v1/openapi.json` (no token needed). A test compares its
//! paths with the route table, so neither can drift from the other.

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{PROBLEM_JSON, audit, credentials, projects};

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
        projects::update,
        projects::delete,
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

/// Declares the `bearer` security scheme the operations name, and the refusals every operation
/// that needs a token may answer (problem+json).
struct BearerToken;

/// What any operation with a token may answer besides its own statuses.
const REFUSALS: [(&str, &str); 5] = [
    (
        "401",
        "No token, or one unknown, expired, revoked, or of a disabled person",
    ),
    (
        "403",
        "The token lacks the scope (named), the person's role may not, or the address is not allowed",
    ),
    ("404", "Nothing by this id in the person's organizations"),
    ("429", "Over the token's rate: see Retry-After"),
    ("503", "The database is unreachable: see Retry-After"),
];

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        if let Some(components) = openapi.components.as_mut() {
            components.add_security_scheme(
                "bearer",
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        }
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                if operation.security.is_none() {
                    continue;
                }
                for (status, description) in REFUSALS {
                    let problem = ResponseBuilder::new().description(description).content(
                        PROBLEM_JSON,
                        ContentBuilder::new()
                            .schema(Some(Ref::from_schema_name("Problem")))
                            .build(),
                    );
                    operation
                        .responses
                        .responses
                        .entry(status.to_string())
                        .or_insert_with(|| problem.build().into());
                }
            }
        }
    }
}

/// The document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "This OpenAPI 3.1 document")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok().json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_and_names_the_bodies_it_answers() {
        let document = serde_json::to_value(ApiDoc::openapi()).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        let list = &document["paths"]["/api/v1/credentials/{kind}"]["get"]["responses"]["200"];
        assert_eq!(
            list["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/ListAnswer_CredentialView"
        );
        let page = &document["components"]["schemas"]["ListAnswer_CredentialView"];
        let credential = &page["properties"]["items"]["items"]["properties"];
        assert!(credential["fields"].is_object() && credential["secrets"].is_null());
        let refused = &document["paths"]["/api/v1/projects"]["post"]["responses"]["429"];
        assert_eq!(
            refused["content"]["application/problem+json"]["schema"]["$ref"],
            "#/components/schemas/Problem"
        );
    }
}
