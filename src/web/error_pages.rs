//! Renders every error response, from handlers or from actix itself (unknown route, wrong
//! method, oversize body, bad form), as a full page or, for htmx, as a fragment swapped into the
//! page's message area. Handlers that answer with their own HTML (a form with errors, 422) are
//! left alone.

use actix_session::SessionExt;
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::error::InternalError;
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, HttpResponse, ResponseError};
use askama::Template;
use tracing_actix_web::RequestId;

use crate::auth::Identity;
use crate::error::AppError;
use crate::session_store;
use crate::web::problem::{PROBLEM_JSON, problem};
use crate::web::{Page, SECURITY_HEADERS, is_htmx};

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    page: Page,
    status: u16,
    heading: &'a str,
    message: &'a str,
    request_id: String,
}

#[derive(Template)]
#[template(path = "_error.html")]
struct ErrorFragment<'a> {
    status: u16,
    heading: &'a str,
    message: &'a str,
}

/// What the error page needs to know about the request, taken before it is handed on (a
/// clone of the request itself would stop actix from routing it).
struct Facts {
    htmx: bool,
    /// Under `/api/`: errors are problem+json, never pages.
    api: bool,
    get: bool,
    path_and_query: String,
    request_id: String,
    user: Option<Identity>,
    csrf: String,
    /// The page of this site the request was sent from.
    referer: Option<String>,
}

impl Facts {
    /// Facts that need no session (taken before the session middleware has run).
    fn early(request: &HttpRequest) -> Facts {
        Facts {
            htmx: is_htmx(request),
            api: request.path().starts_with("/api/"),
            get: request.method() == Method::GET,
            path_and_query: request
                .uri()
                .path_and_query()
                .map_or("/", |p| p.as_str())
                .to_string(),
            request_id: request
                .extensions()
                .get::<RequestId>()
                .map(ToString::to_string)
                .unwrap_or_default(),
            user: None,
            csrf: String::new(),
            referer: crate::web::form::referring_page(request.headers()),
        }
    }

    /// All facts, including who is signed in (for the page's navigation).
    fn of(request: &HttpRequest) -> Facts {
        let snapshot = request.extensions().get::<SessionSnapshot>().cloned();
        let (user, csrf) = snapshot.map_or((None, String::new()), |s| (s.user, s.csrf));
        Facts {
            user,
            csrf,
            ..Facts::early(request)
        }
    }
}

/// Who is signed in and their CSRF token, noted while the session is readable (by the time an
/// error reaches `render`, the session middleware has taken its state back).
#[derive(Clone)]
struct SessionSnapshot {
    user: Option<Identity>,
    csrf: String,
}

/// Middleware (inside the session middleware): notes the session for error pages.
pub async fn snapshot_session(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let session = req.get_session();
    let snapshot = SessionSnapshot {
        user: session.get::<Identity>("identity").ok().flatten(),
        csrf: session
            .get::<String>("csrf")
            .ok()
            .flatten()
            .unwrap_or_default(),
    };
    req.extensions_mut().insert(snapshot);
    next.call(req).await
}

/// Middleware: replaces the body of every error response with a rendered page or fragment.
pub async fn render(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let early = Facts::early(req.request());
    let (result, outage) = session_store::noting_outage(next.call(req)).await;
    let response = match result {
        Ok(response) if early.api => return Ok(as_problem(response.map_into_boxed_body())),
        Ok(response) => response.map_into_boxed_body(),
        Err(error) => {
            // Failed outside any handler (e.g. the session store): no request to answer with.
            let (status, message) = if outage {
                let unavailable = AppError::Unavailable;
                (unavailable.status_code(), unavailable.to_string())
            } else {
                let status = error.as_response_error().status_code();
                (status, message_of(&error, status))
            };
            let mut rendered = respond(&early, status, &message).map_err(actix_web::Error::from)?;
            if outage {
                rendered
                    .headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
            }
            // This answer bypasses the header middleware, so it carries the headers itself.
            for (name, value) in SECURITY_HEADERS {
                rendered.headers_mut().insert(
                    header::HeaderName::from_static(name),
                    header::HeaderValue::from_static(value),
                );
            }
            return Err(InternalError::from_response(message, rendered).into());
        }
    };
    let status = response.status();
    let Some(error) = response.response().error() else {
        return Ok(response);
    };
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let message = message_of(error, status);
    let facts = Facts::of(response.request());
    let (request, old) = response.into_parts();
    let mut new = respond(&facts, status, &message).map_err(actix_web::Error::from)?;
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = old.headers().get(&name) {
            new.headers_mut().insert(name, value.clone());
        }
    }
    Ok(ServiceResponse::new(request, new))
}

/// An API answer: an error no handler shaped (unknown route, wrong method, unreadable JSON)
/// becomes problem+json; everything else is left alone.
fn as_problem(response: ServiceResponse<BoxBody>) -> ServiceResponse<BoxBody> {
    let status = response.status();
    let shaped = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if shaped || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let message = match response.response().error() {
        // What a JSON body got wrong helps whoever wrote it (and holds nothing of ours).
        Some(error) if status == StatusCode::BAD_REQUEST => error.to_string(),
        Some(error) => message_of(error, status),
        None => default_message(status).to_string(),
    };
    let (request, old) = response.into_parts();
    let mut new = problem(status, &message, &Default::default());
    for name in [header::RETRY_AFTER, header::ALLOW] {
        if let Some(value) = old.headers().get(&name) {
            new.headers_mut().insert(name, value.clone());
        }
    }
    ServiceResponse::new(request, new)
}

fn message_of(error: &actix_web::Error, status: StatusCode) -> String {
    error
        .as_error::<AppError>()
        .map(ToString::to_string)
        .unwrap_or_else(|| default_message(status).to_string())
}

fn respond(facts: &Facts, status: StatusCode, message: &str) -> Result<HttpResponse, AppError> {
    if facts.api {
        return Ok(problem(status, message, &Default::default()));
    }
    if status == StatusCode::UNAUTHORIZED {
        sign_in_redirect(facts, message)
    } else {
        error_response(facts, status, message)
    }
}

fn sign_in_redirect(facts: &Facts, message: &str) -> Result<HttpResponse, AppError> {
    // A form or an htmx action sent from a page: sign in, then back to that page.
    if (facts.htmx || !facts.get) && facts.referer.is_some() {
        return Ok(crate::web::form::sign_in_again(
            facts.referer.clone(),
            facts.htmx,
        ));
    }
    if facts.htmx {
        return Ok(HttpResponse::Unauthorized()
            .insert_header(("HX-Redirect", "/login"))
            .content_type("text/plain; charset=utf-8")
            .body(message.to_string()));
    }
    let location = if facts.get && facts.path_and_query != "/" {
        let next: String =
            url::form_urlencoded::byte_serialize(facts.path_and_query.as_bytes()).collect();
        format!("/login?next={next}")
    } else {
        "/login".to_string()
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish())
}

fn error_response(
    facts: &Facts,
    status: StatusCode,
    message: &str,
) -> Result<HttpResponse, AppError> {
    let heading = status.canonical_reason().unwrap_or("Error");
    let mut response = HttpResponse::build(status);
    response
        .content_type("text/html; charset=utf-8")
        .insert_header((header::VARY, "HX-Request"));
    if facts.htmx {
        let body = ErrorFragment {
            status: status.as_u16(),
            heading,
            message,
        }
        .render()?;
        return Ok(response
            .insert_header(("HX-Retarget", "#messages"))
            .insert_header(("HX-Reswap", "innerHTML"))
            .body(body));
    }
    let page = Page {
        title: format!("{} {heading}", status.as_u16()),
        section: "",
        user: facts.user.clone(),
        csrf: facts.csrf.clone(),
        flashes: Vec::new(),
    };
    let body = ErrorPage {
        page,
        status: status.as_u16(),
        heading,
        message,
        request_id: facts.request_id.clone(),
    }
    .render()?;
    Ok(response.body(body))
}

fn default_message(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "The request could not be understood. Check the form and try again.",
        403 => "You do not have access to this page.",
        404 => "This page does not exist, or you do not have access to it.",
        405 => "This address does not accept that kind of request.",
        413 => "What was sent is too large.",
        415 => "What was sent is in a format this page does not accept.",
        422 => "Some of what was sent is not valid.",
        _ if status.is_server_error() => "Something went wrong on our side. It has been logged.",
        _ => "The request could not be completed.",
    }
}
