//! CSRF protection for every mutating request, in one middleware so no route can forget it:
//! a per-session token (form field `csrf_token` or header `X-CSRF-Token`, compared in constant
//! time) plus an `Origin` / `Sec-Fetch-Site` check.

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::Bytes;
use subtle::ConstantTimeEq;

use crate::crypto::random_token;
use crate::error::AppError;

const SESSION_KEY: &str = "csrf";
/// The form field that carries the token.
pub const FIELD: &str = "csrf_token";
/// The header htmx sends (set once on `<body hx-headers=…>`).
pub const HEADER: &str = "x-csrf-token";

/// The session's token, created on first use.
pub fn token(session: &Session) -> String {
    if let Ok(Some(token)) = session.get::<String>(SESSION_KEY) {
        return token;
    }
    let token = random_token();
    // Inserting a string cannot fail to serialize.
    let _ = session.insert(SESSION_KEY, &token);
    token
}

/// Gives the session a new token (at sign-in, with the renewed session).
pub fn rotate(session: &Session) {
    let _ = session.insert(SESSION_KEY, random_token());
}

/// Middleware: refuses unsafe requests without a valid token or from another site.
pub async fn protect<B: MessageBody>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if !same_origin(&req) {
        tracing::warn!("refused cross-site {} {}", req.method(), req.path());
        return Ok(req.error_response(AppError::Csrf).map_into_right_body());
    }
    let submitted = match header_token(&req) {
        Some(token) => Some(token),
        None if is_urlencoded_form(&req) => {
            let body = req.extract::<Bytes>().await?;
            let token = form_token(&body);
            req.set_payload(Payload::from(body));
            token
        }
        None => None,
    };
    let expected = req.get_session().get::<String>(SESSION_KEY).ok().flatten();
    match (submitted, expected) {
        (Some(submitted), Some(expected))
            if bool::from(submitted.as_bytes().ct_eq(expected.as_bytes())) =>
        {
            Ok(next.call(req).await?.map_into_left_body())
        }
        _ => {
            tracing::warn!(
                "refused {} {} without a valid CSRF token",
                req.method(),
                req.path()
            );
            Ok(req.error_response(AppError::Csrf).map_into_right_body())
        }
    }
}

fn header_token(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(HEADER)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

fn is_urlencoded_form(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/x-www-form-urlencoded"))
}

fn form_token(body: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == FIELD)
        .map(|(_, value)| value.into_owned())
}

/// Browsers say where a request comes from; anything but this site is refused.
fn same_origin(req: &ServiceRequest) -> bool {
    let headers = req.headers();
    if let Some(site) = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok())
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok())
        .and_then(|url| {
            let host = url.host_str()?.to_string();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        });
    matches!((origin_host, host), (Some(a), Some(b)) if a.eq_ignore_ascii_case(&b))
}

#[cfg(test)]
mod tests {
    use super::form_token;

    #[test]
    fn token_is_found_among_other_fields() {
        assert_eq!(
            form_token(b"name=a%20b&csrf_token=abc-123&x=1").as_deref(),
            Some("abc-123")
        );
        assert_eq!(form_token(b"name=a"), None);
    }
}
