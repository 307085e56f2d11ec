//! CSRF protection for every mutating request, in one middleware so no route can forget it:
//! a per-session token (form field `csrf_token` or header `X-CSRF-Token`, compared in constant
//! time) plus an `Origin` / `Sec-Fetch-Site` check (scheme, host and port).
//!
//! A browser that is not signed in has no session row (an anonymous `GET /login` must not
//! write one): its token lives in a cookie of its own (`keyhold_csrf`, `HttpOnly`, `SameSite`),
//! and its forms carry the same value (a double-submit token). Signing in starts a session
//! with a token of its own. Reads `KEYHOLD_COOKIE_SECURE` (as `SiteSecurity`).

use std::cell::Cell;
use std::rc::Rc;

use actix_session::{Session, SessionExt};
use actix_web::body::{EitherBody, MessageBody};
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web::{self, Bytes};
use actix_web::{HttpMessage, HttpRequest};
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

/// The token of a browser that is not signed in: its cookie's, or a new one that the response
/// sets as the cookie. Nothing is written anywhere.
pub fn anonymous_token(req: &HttpRequest) -> String {
    match req.extensions().get::<AnonymousToken>() {
        Some(token) => {
            token.used.set(true);
            token.value.clone()
        }
        // Outside `protect` (never for a routed request): a token no request can match.
        None => random_token(),
    }
}

/// The cookie token a request brought, or the one its response will set if a page uses it.
#[derive(Clone)]
struct AnonymousToken {
    value: String,
    /// Whether it is new, i.e. the response must set the cookie when `used`.
    new: bool,
    used: Rc<Cell<bool>>,
}

fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-keyhold_csrf"
    } else {
        "keyhold_csrf"
    }
}

/// `KEYHOLD_COOKIE_SECURE`, given to the app as data by `startup`.
#[derive(Clone, Copy, Debug)]
pub struct SiteSecurity {
    pub cookie_secure: bool,
}

/// Whether the site is served over https: `KEYHOLD_COOKIE_SECURE` (TLS ends at a proxy in
/// front of keyhold), or a TLS listener.
fn secure(req: &ServiceRequest) -> bool {
    req.app_data::<web::Data<SiteSecurity>>()
        .is_some_and(|site| site.cookie_secure)
        || req.app_config().secure()
}

/// Middleware: refuses unsafe requests without a valid token or from another site, and sets
/// the anonymous token's cookie when a page handed that token out.
pub async fn protect<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let secure = secure(&req);
    let name = cookie_name(secure);
    let token = match req.cookie(name) {
        Some(cookie) if !cookie.value().is_empty() => AnonymousToken {
            value: cookie.value().to_string(),
            new: false,
            used: Rc::default(),
        },
        _ => AnonymousToken {
            value: random_token(),
            new: true,
            used: Rc::default(),
        },
    };
    req.extensions_mut().insert(token.clone());
    let mut response = check(req, next, token.value.clone(), secure).await?;
    if token.new && token.used.get() {
        let mut cookie = Cookie::new(name, token.value);
        cookie.set_http_only(true);
        cookie.set_secure(secure);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_path("/");
        if let Ok(value) = header::HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

async fn check<B: MessageBody>(
    mut req: ServiceRequest,
    next: Next<B>,
    anonymous: String,
    secure: bool,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    if !same_origin(&req, secure) {
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
    // A session's own token, or (signed out, no session token) the cookie's.
    let session_token = req.get_session().get::<String>(SESSION_KEY).ok().flatten();
    let signed_out = session_token.is_none();
    let expected = session_token.or(Some(anonymous));
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
            if signed_out && had_session(&req, secure) {
                let response = sign_in_again(&req);
                return Ok(req.into_response(response).map_into_right_body());
            }
            Ok(req.error_response(AppError::Csrf).map_into_right_body())
        }
    }
}

/// The browser brought a session cookie, but its session is gone (it expired, or ended
/// elsewhere): the form it sent was opened while signed in.
fn had_session(req: &ServiceRequest, secure: bool) -> bool {
    let name = if secure {
        "__Host-keyhold_session"
    } else {
        "keyhold_session"
    };
    req.cookie(name)
        .is_some_and(|cookie| !cookie.value().is_empty())
}

/// A form sent after its session ended changes nothing and sends the person to sign in, then
/// back to the page the form was on, not to a 403.
fn sign_in_again(req: &ServiceRequest) -> actix_web::HttpResponse {
    crate::web::form::sign_in_again(
        crate::web::form::referring_page(req.headers()),
        req.headers().contains_key("hx-request"),
    )
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

/// Browsers say where a request comes from; anything but this site (scheme, host and port)
/// is refused.
fn same_origin(req: &ServiceRequest, secure: bool) -> bool {
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
    let scheme = if secure { "https" } else { "http" };
    let this_site = host.and_then(|host| url::Url::parse(&format!("{scheme}://{host}")).ok());
    let origin = origin
        .to_str()
        .ok()
        .and_then(|origin| url::Url::parse(origin).ok());
    // `Origin` compares scheme, host (case-insensitively) and port (the scheme's default
    // when absent).
    matches!((origin, this_site), (Some(a), Some(b)) if a.origin() == b.origin())
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
