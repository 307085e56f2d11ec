//! What every page shares: the layout context, flash messages, htmx detection, redirects,
//! error pages, embedded static files, security headers and the client's address.
//! The layout (`Page`), `confirm` and `error_pages` read the signed-in person and the session,
//! so they are of the app layer; `form`, `flash`, `problem`, `assets` and `words` are
//! infrastructure that areas may use.

pub mod assets;
pub mod confirm;
pub mod error_pages;
pub mod flash;
pub mod form;
pub mod problem;
pub mod words;

use std::net::IpAddr;

use actix_session::Session;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse};
use askama::Template;

use crate::access::Role;
use crate::auth::{CurrentUser, Identity, csrf};
use crate::error::AppError;
pub use flash::Flash;

/// The layout context every full page template carries as `page`.
pub struct Page {
    pub title: String,
    /// Which navigation entry is current (`dashboard`, `audit`, …).
    pub section: &'static str,
    pub user: Option<Identity>,
    pub csrf: String,
    pub flashes: Vec<Flash>,
}

impl Page {
    /// The context for a signed-in page; takes the pending flash messages.
    pub fn new(user: &CurrentUser, session: &Session, section: &'static str, title: &str) -> Page {
        Page {
            title: title.to_string(),
            section,
            user: Some(user.identity.clone()),
            csrf: csrf::token(session),
            flashes: flash::take(session),
        }
    }

    /// The context for a page seen signed out (sign-in, first run): its CSRF token is the
    /// browser's cookie token, so showing it writes no session.
    pub fn anonymous(req: &HttpRequest, session: &Session, title: &str) -> Page {
        Page {
            title: title.to_string(),
            section: "",
            user: None,
            csrf: csrf::anonymous_token(req),
            flashes: flash::take(session),
        }
    }

    /// The versioned URL of a static file (cached for a year).
    pub fn asset(&self, name: &str) -> String {
        assets::url(name)
    }

    /// The navigation entries this person sees: (section, path, label).
    pub fn nav(&self) -> Vec<(&'static str, &'static str, &'static str)> {
        let Some(user) = &self.user else {
            return Vec::new();
        };
        let mut entries = vec![("dashboard", "/", "Dashboard")];
        if user.role != Role::User {
            entries.push(("credentials", "/credentials", "Credentials"));
        }
        entries.push(("projects", "/projects", "Projects"));
        if user.role != Role::User {
            entries.push(("notifications", "/notifications", "Notifications"));
            entries.push(("audit", "/audit", "Audit"));
        }
        if user.role == Role::Partner {
            entries.push(("organizations", "/organizations", "Organizations"));
            entries.push(("users", "/users", "Users"));
        }
        entries.push(("tokens", "/tokens", "API tokens"));
        entries
    }
}

/// Whether htmx asked for a fragment (boosted and history-restore requests want whole pages).
pub fn is_htmx(req: &HttpRequest) -> bool {
    let has = |name: &str| {
        req.headers()
            .get(name)
            .is_some_and(|value| value.as_bytes() == b"true")
    };
    has("hx-request") && !has("hx-boosted") && !has("hx-history-restore-request")
}

/// Renders a template as a 200 HTML response.
pub fn html(template: &impl Template) -> Result<HttpResponse, AppError> {
    html_with_status(actix_web::http::StatusCode::OK, template)
}

thread_local! {
    /// The size each template last rendered to on this thread, keyed by its type name.
    static RENDERED_SIZES: std::cell::RefCell<std::collections::HashMap<usize, usize>> =
        std::cell::RefCell::default();
}

/// Renders `template` into a buffer sized by its last rendering on this thread: a page of 50
/// rows otherwise grows its buffer a dozen times, copying what it has each time.
pub fn render<T: Template>(template: &T) -> Result<String, askama::Error> {
    let key = std::any::type_name::<T>().as_ptr() as usize;
    let last = RENDERED_SIZES.with(|sizes| sizes.borrow().get(&key).copied());
    let mut out = String::with_capacity(last.map_or(T::SIZE_HINT, |last| last + last / 8));
    template.render_into(&mut out)?;
    RENDERED_SIZES.with(|sizes| sizes.borrow_mut().insert(key, out.len()));
    Ok(out)
}

/// Renders a template with another status (422 for a form with errors, …).
pub fn html_with_status<T: Template>(
    status: actix_web::http::StatusCode,
    template: &T,
) -> Result<HttpResponse, AppError> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::VARY, "HX-Request"))
        .body(render(template)?))
}

/// The answer to a successful plain form post: 303 to `location`.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The client's address: the peer, or the first untrusted hop of `X-Forwarded-For` when the
/// peer is a trusted proxy. Forged headers from anyone else are ignored.
pub fn client_ip(req: &HttpRequest, trusted_proxies: &[IpAddr]) -> String {
    let Some(peer) = req.peer_addr().map(|addr| addr.ip()) else {
        return "unknown".to_string();
    };
    if !trusted_proxies.contains(&peer) {
        return peer.to_string();
    }
    let forwarded = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .collect::<Vec<_>>();
    forwarded
        .into_iter()
        .rev()
        .find(|hop| !trusted_proxies.contains(hop))
        .unwrap_or(peer)
        .to_string()
}

/// Headers sent with every response; the CSP allows no inline script or style at all.
pub const SECURITY_HEADERS: [(&str, &str); 7] = [
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "same-origin"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    (
        "permissions-policy",
        "camera=(), microphone=(), geolocation=()",
    ),
    ("cache-control", "no-store"),
];

/// Middleware adding `SECURITY_HEADERS` (and HSTS behind TLS) where a response lacks them.
pub fn security_headers(hsts: bool) -> actix_web::middleware::DefaultHeaders {
    let headers = SECURITY_HEADERS.iter().fold(
        actix_web::middleware::DefaultHeaders::new(),
        |headers, header| headers.add(*header),
    );
    if hsts {
        headers.add((header::STRICT_TRANSPORT_SECURITY, "max-age=31536000"))
    } else {
        headers
    }
}
