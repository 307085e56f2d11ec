//! Field errors of a submitted form, shown next to their fields, the checks forms share, and
//! the middleware that refuses NUL characters in any submitted text (PostgreSQL cannot store
//! them in text: every form would answer 500).

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::web::Bytes;

use crate::error::AppError;

/// A choice of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

/// Messages by field name, in the order found.
#[derive(Debug, Default, Clone)]
pub struct FieldErrors(Vec<(&'static str, String)>);

impl FieldErrors {
    /// Records `message` for `field` (the first message per field wins).
    pub fn add(&mut self, field: &'static str, message: impl Into<String>) {
        if self.get(field).is_none() {
            self.0.push((field, message.into()));
        }
    }

    /// Records the error of a check, if it failed.
    pub fn check(&mut self, field: &'static str, result: Result<(), String>) {
        if let Err(message) = result {
            self.add(field, message);
        }
    }

    /// The message for `field`, if any.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| *name == field)
            .map(|(_, message)| message.as_str())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One field's message.
    pub fn one(field: &'static str, message: impl ToString) -> FieldErrors {
        let mut errors = FieldErrors::default();
        errors.add(field, message.to_string());
        errors
    }

    /// The status a form answers with: 200 without errors, 422 with.
    pub fn status(&self) -> actix_web::http::StatusCode {
        if self.is_empty() {
            actix_web::http::StatusCode::OK
        } else {
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY
        }
    }

    /// Every (field, message), in the order found.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0
            .iter()
            .map(|(field, message)| (*field, message.as_str()))
    }
}

/// A name of `min`–`max` characters (after trimming).
pub fn check_length(value: &str, min: usize, max: usize) -> Result<(), String> {
    let length = value.trim().chars().count();
    if length < min || length > max {
        Err(format!("Use {min} to {max} characters."))
    } else {
        Ok(())
    }
}

/// A plausible email address: one `@`, something on both sides, no spaces.
pub fn check_email(value: &str) -> Result<(), String> {
    let value = value.trim();
    let plausible = value.len() <= 254
        && !value.chars().any(char::is_whitespace)
        && value.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if plausible {
        Ok(())
    } else {
        Err("Enter an email address like name@example.com.".to_string())
    }
}

/// Where to go after signing in: only paths on this site.
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.contains('\\')
                && !path.chars().any(char::is_control) =>
        {
            path.to_string()
        }
        _ => "/".to_string(),
    }
}

/// The page of this site a request was sent from (its `Referer`, when on the same host), as a
/// path with its query; never the sign-in or setup page.
pub fn referring_page(headers: &header::HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok())?;
    let referer = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|referer| url::Url::parse(referer).ok())?;
    let authority = match referer.port() {
        Some(port) => format!("{}:{port}", referer.host_str()?),
        None => referer.host_str()?.to_string(),
    };
    if !authority.eq_ignore_ascii_case(host) {
        return None;
    }
    let page = match referer.query() {
        Some(query) => format!("{}?{query}", referer.path()),
        None => referer.path().to_string(),
    };
    Some(safe_next(Some(&page))).filter(|page| page != "/login" && page != "/setup")
}

/// Where a form sent while signed out (its session expired or ended elsewhere) sends the
/// person: to sign in, then back to `page` (htmx: told with `HX-Redirect`).
pub fn sign_in_again(page: Option<String>, htmx: bool) -> actix_web::HttpResponse {
    let location = match page {
        Some(page) => {
            let next: String = url::form_urlencoded::byte_serialize(page.as_bytes()).collect();
            format!("/login?next={next}&expired=1")
        }
        None => "/login".to_string(),
    };
    if htmx {
        return actix_web::HttpResponse::Unauthorized()
            .insert_header(("HX-Redirect", location))
            .content_type("text/plain; charset=utf-8")
            .body("Please sign in to continue.");
    }
    actix_web::HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// The first field of a form body or query string whose name or value holds a NUL character.
pub fn field_with_nul(encoded: &[u8]) -> Option<String> {
    url::form_urlencoded::parse(encoded)
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| name.replace('\0', "").chars().take(60).collect())
}

/// Middleware: a form (or the query string of a request that may write) with a NUL character
/// in any field answers 422, naming the field, before any handler sees it. A search (GET) with
/// one is answered like any other search: nothing is stored, and it finds nothing.
pub async fn refuse_nul<B: MessageBody>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let mut field = if req.method() == actix_web::http::Method::GET {
        None
    } else {
        field_with_nul(req.query_string().as_bytes())
    };
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| {
            value
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if field.is_none() && form {
        let body = req.extract::<Bytes>().await?;
        field = field_with_nul(&body);
        req.set_payload(Payload::from(body));
    }
    match field {
        None => Ok(next.call(req).await?.map_into_left_body()),
        Some(field) => {
            let error = AppError::Invalid(format!(
                "The field {field:?} contains a NUL character, which text cannot hold. \
                 Remove it and send the form again."
            ));
            Ok(req.error_response(error).map_into_right_body())
        }
    }
}

/// One page of a list: `page` counts from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pagination {
    pub page: i64,
    pub per_page: i64,
}

impl Pagination {
    /// Page numbers past this are treated as this (no absurd offsets reach the database).
    const MAX_PAGE: i64 = 100_000;

    pub fn new(page: Option<i64>, per_page: i64) -> Pagination {
        Pagination {
            page: page.unwrap_or(1).clamp(1, Pagination::MAX_PAGE),
            per_page,
        }
    }

    pub fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// Rows to ask for: one more than a page, to know whether a next page exists.
    pub fn fetch(&self) -> i64 {
        self.per_page + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next(Some("/audit?page=2")), "/audit?page=2");
        assert_eq!(safe_next(Some("//evil.example")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn nul_characters_are_found_in_any_field() {
        assert_eq!(field_with_nul(b"a=1&email=x%00y").as_deref(), Some("email"));
        assert_eq!(field_with_nul(b"na%00me=1").as_deref(), Some("name"));
        assert_eq!(field_with_nul(b"a=1&b=%01"), None);
    }

    #[test]
    fn emails_are_checked_loosely() {
        assert!(check_email("a@b.example").is_ok());
        assert!(check_email("a b@c").is_err());
        assert!(check_email("nobody").is_err());
        assert!(check_email("a@b@c").is_err());
    }
}
