//! The JSON API under `/api/v1` (SPEC §11): the pages' use cases, called by the same service
//! functions, for a bearer token instead of a session. A request is authorized three times:
//! the token (live, its person enabled, from an allowed address, within its rate; `ApiUser`),
//! the token's scope for the area (`ApiUser::require`), then the person's role and
//! organizations exactly as on the pages. Bodies are JSON objects with the forms' field names.
//! Reads `KEYHOLD_API_REQUESTS_PER_MINUTE` (as `ApiSettings`).

pub mod audit;
pub mod credentials;
pub mod openapi;
mod problem;
pub mod projects;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, dev::Payload, web};
use serde::Serialize;

pub use crate::web::problem::{PROBLEM_JSON, Problem};
pub use problem::ApiError;

use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::startup::AppState;
use crate::tokens::{ApiScope, service as tokens};
use crate::web::client_ip;
use crate::web::form::FieldErrors;

/// Where the API lives.
pub const PREFIX: &str = "/api/v1";

/// The person a request's bearer token acts as, and the token's scopes.
pub struct ApiUser {
    user: CurrentUser,
    scopes: Vec<ApiScope>,
    /// The client's address, for audit rows.
    pub ip: String,
}

impl ApiUser {
    /// The person, when the token carries `scope`; else 403 naming the scope.
    pub fn require(&self, scope: ApiScope) -> Result<&CurrentUser, ApiError> {
        if self.scopes.contains(&scope) {
            Ok(&self.user)
        } else {
            Err(AppError::Denied(format!(
                "This token does not carry the scope {}.",
                scope.key()
            ))
            .into())
        }
    }
}

impl FromRequest for ApiUser {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<ApiUser, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let presented = bearer(&req).ok_or_else(|| {
                AppError::TokenRefused("Send a token: Authorization: Bearer <token>.".into())
            })?;
            let state = req
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| AppError::internal(anyhow::anyhow!("no app state")))?;
            let ip = client_ip(&req, &state.settings.trusted_proxies);
            let per_minute = state.settings.api_requests_per_minute;
            let bearer =
                tokens::authenticate(&state.pool, &state.token_uses, &presented, &ip, per_minute)
                    .await?;
            Ok(ApiUser {
                user: bearer.user,
                scopes: bearer.scopes,
                ip,
            })
        })
    }
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A JSON answer.
pub fn json(status: actix_web::http::StatusCode, body: &impl Serialize) -> HttpResponse {
    HttpResponse::build(status).json(body)
}

/// A JSON object's members as the fields of a form post: strings as they are, booleans as a
/// checkbox (`on` or absent), numbers as their digits, arrays as the field repeated (the
/// forms' namespaces). NUL characters and nested objects are refused (422).
pub fn fields_of(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, ApiError> {
    use serde_json::Value;
    fn text(value: Value) -> Option<String> {
        match value {
            Value::String(text) => Some(text),
            Value::Bool(true) => Some("on".to_string()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        }
    }
    let mut fields = Vec::new();
    let mut errors = FieldErrors::default();
    for (key, value) in body {
        let values = match value {
            Value::Array(items) => items.into_iter().filter_map(text).collect(),
            Value::Object(_) => {
                errors.add(field_name(&key), "Send a value, not an object.");
                Vec::new()
            }
            value => text(value).into_iter().collect(),
        };
        for value in values {
            if value.contains('\0') {
                errors.add(field_name(&key), "Remove the NUL character.");
            }
            fields.push((key.clone(), value));
        }
    }
    if errors.is_empty() {
        Ok(fields)
    } else {
        Err(ApiError::invalid(
            "Some of what was sent is not valid.",
            errors,
        ))
    }
}

/// The same as one value per field, a repeated field's values one per line (the credential
/// forms' list fields).
pub fn form_of(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<HashMap<String, String>, ApiError> {
    let mut form: HashMap<String, String> = HashMap::new();
    for (key, value) in fields_of(body)? {
        form.entry(key)
            .and_modify(|joined| {
                joined.push('\n');
                joined.push_str(&value);
            })
            .or_insert(value);
    }
    Ok(form)
}

/// A field name as the `'static` key `FieldErrors` takes (only names the forms know are kept
/// as themselves; anything else is reported as `body`).
fn field_name(key: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "name",
        "organization_id",
        "provider",
        "expires_on",
        "bucket",
        "cron",
        "timezone",
        "retention",
        "namespaces",
        "restore_name",
        "target_database_url",
        "database_url",
    ];
    KNOWN
        .iter()
        .find(|known| **known == key)
        .copied()
        .unwrap_or("body")
}

/// A page of a list: its items, how many there are, and the address of the next page.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ListAnswer<T: Serialize> {
    pub items: Vec<T>,
    pub total: i64,
    pub page: i64,
    pub next: Option<String>,
}

/// 404 for any address under `/api/v1` the table does not hold.
pub async fn not_found() -> Result<HttpResponse, ApiError> {
    Err(AppError::NotFound.into())
}
