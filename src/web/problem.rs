//! Errors as `application/problem+json` (RFC 9457): `title`, `status`, `detail` and, for
//! invalid input (422), `errors` by field. The API's answers use it, and `error_pages` for any
//! error under `/api/` that no handler shaped (unknown route, wrong method, unreadable JSON).

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use serde::Serialize;

use crate::web::form::FieldErrors;

/// The media type of every API error.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The body of an error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// The status's reason phrase, e.g. `Conflict`.
    pub title: String,
    pub status: u16,
    /// What went wrong, in the words the pages use.
    pub detail: String,
    /// For invalid input (422): a message by field name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, String>>,
}

/// A problem+json answer.
pub fn problem(status: StatusCode, detail: &str, errors: &FieldErrors) -> HttpResponse {
    let body = Problem {
        title: status.canonical_reason().unwrap_or("Error").to_string(),
        status: status.as_u16(),
        detail: detail.to_string(),
        errors: (status == StatusCode::UNPROCESSABLE_ENTITY).then(|| {
            errors
                .iter()
                .map(|(field, message)| (field.to_string(), message.to_string()))
                .collect()
        }),
    };
    HttpResponse::build(status)
        .content_type(PROBLEM_JSON)
        .body(serde_json::to_string(&body).unwrap_or_default())
}
