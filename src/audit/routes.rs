//! GET /audit: the audit log of the organizations the person may reach, filtered (a plain GET
//! form; with htmx only the results are swapped), and its exports, GET /audit.csv and
//! GET /audit.ndjson, of exactly the events the same filter finds.

use actix_session::Session;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::export::{self, Format};
use super::filter::{Filter, FilterParams};
use super::service::{self, FilterChoices};
use super::{ACTIONS, Event, NewEvent, OBJECT_KINDS};
use crate::access::Role;
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::{Choice, FieldErrors, Pagination};
use crate::web::{Page, client_ip, html_with_status, is_htmx};

const PER_PAGE: i64 = 50;

/// Who may read the log: Partners (their partner account) and Managers (their organization).
const READERS: [Role; 2] = [Role::Partner, Role::Manager];

/// What a filter that cannot be read at all (a field given twice) says.
const UNREADABLE: &str = "This filter cannot be read; choose it again.";

/// The events shown and the links around them.
pub struct Results {
    events: Vec<Event>,
    total: i64,
    page: i64,
    pages: i64,
    previous_url: Option<String>,
    next_url: Option<String>,
    csv_url: String,
    ndjson_url: String,
}

/// The filter form's selects.
pub struct Selects {
    people: Vec<Choice>,
    actions: Vec<Choice>,
    kinds: Vec<Choice>,
    /// Partners only.
    organizations: Option<Vec<Choice>>,
}

#[derive(Template)]
#[template(path = "audit/list.html")]
struct AuditPage {
    page: Page,
    params: FilterParams,
    errors: FieldErrors,
    selects: Selects,
    results: Option<Results>,
}

#[derive(Template)]
#[template(path = "audit/_results.html")]
struct ResultsFragment {
    errors: FieldErrors,
    results: Option<Results>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PageParam {
    page: String,
}

/// The filter of a request: as sent, and checked (or what is wrong with it).
fn read_filter(query: &str) -> (FilterParams, Result<Filter, FieldErrors>) {
    match FilterParams::parse(query) {
        Some(params) => {
            let checked = params.check(false);
            (params, checked)
        }
        None => (
            FilterParams::default(),
            Err(FieldErrors::one("filter", UNREADABLE)),
        ),
    }
}

/// GET /audit
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    user.require(&READERS)?;
    let (params, checked) = read_filter(req.query_string());
    let pagination = Pagination::new(page_number(req.query_string()), PER_PAGE);
    let whole_page = !is_htmx(&req);
    let (filter, errors) = match checked {
        Ok(filter) => (Some(filter), FieldErrors::default()),
        Err(errors) => (None, errors),
    };
    let status = errors.status();
    let listing = service::list(&state.pool, user.scope(), filter, pagination, whole_page).await?;
    let results = listing
        .page
        .map(|found| results(&params, pagination, found));
    if !whole_page {
        return html_with_status(status, &ResultsFragment { errors, results });
    }
    let selects = selects(&params, &user, listing.choices);
    html_with_status(
        status,
        &AuditPage {
            page: Page::new(&user, &session, "audit", "Audit log"),
            params,
            errors,
            selects,
            results,
        },
    )
}

/// The page a query string asks for (`page=`), if it names one.
fn page_number(query: &str) -> Option<i64> {
    serde_urlencoded::from_str::<PageParam>(query)
        .ok()
        .and_then(|param| param.page.trim().parse::<i64>().ok())
}

/// `path` with the filter's query and `extra`.
fn link(path: &str, query: &str, extra: &str) -> String {
    let joined = [query, extra]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("&");
    if joined.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{joined}")
    }
}

fn results(params: &FilterParams, pagination: Pagination, found: super::EventPage) -> Results {
    let query = params.to_query();
    let at = |page: i64| link("/audit", &query, &format!("page={page}"));
    Results {
        total: found.total,
        page: pagination.page,
        pages: ((found.total + PER_PAGE - 1) / PER_PAGE).max(1),
        previous_url: (pagination.page > 1).then(|| at(pagination.page - 1)),
        next_url: found.has_next.then(|| at(pagination.page + 1)),
        csv_url: link("/audit.csv", &query, ""),
        ndjson_url: link("/audit.ndjson", &query, ""),
        events: found.events,
    }
}

fn selects(params: &FilterParams, user: &CurrentUser, choices: FilterChoices) -> Selects {
    let choose = |value: String, label: String, current: &str| Choice {
        selected: value == current.trim(),
        value,
        label,
    };
    let table = |table: &[(&str, &str)], current: &str| -> Vec<Choice> {
        table
            .iter()
            .map(|(code, words)| choose(code.to_string(), words.to_string(), current))
            .collect()
    };
    Selects {
        people: choices
            .people
            .into_iter()
            .map(|(id, email)| choose(id.to_string(), email, &params.person))
            .collect(),
        actions: table(ACTIONS, &params.action),
        kinds: table(OBJECT_KINDS, &params.kind),
        organizations: (user.role() == Role::Partner).then(|| {
            choices
                .organizations
                .into_iter()
                .map(|(id, name)| choose(id.to_string(), name, &params.org))
                .collect()
        }),
    }
}

/// GET /audit.csv
pub async fn export_csv(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    export(req, state, user, Format::Csv).await
}

/// GET /audit.ndjson
pub async fn export_ndjson(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    export(req, state, user, Format::Ndjson).await
}

/// The events the page's filter finds, streamed as a file, the export recorded first.
async fn export(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: CurrentUser,
    format: Format,
) -> Result<HttpResponse, AppError> {
    user.require(&READERS)?;
    let (params, checked) = read_filter(req.query_string());
    let filter = checked.map_err(|errors| {
        let said: Vec<String> = errors
            .iter()
            .map(|(field, message)| format!("{field}: {message}"))
            .collect();
        AppError::Invalid(said.join(" "))
    })?;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let event = export_event(&user, &ip, &params, format);
    let export = export::start(&state.pool, user.scope(), filter, format, event).await?;
    let file = format!(
        "attachment; filename=\"keyhold-audit-{}.{}\"",
        chrono::Utc::now().format("%Y-%m-%d"),
        format.extension()
    );
    let mut response = HttpResponse::Ok();
    response.content_type(format.content_type());
    if let Ok(value) = HeaderValue::from_str(&file) {
        response.insert_header((header::CONTENT_DISPOSITION, value));
    }
    Ok(response.streaming(export.into_stream()))
}

/// The `audit.export` event of an export: its format and the filter it was asked with.
fn export_event(user: &CurrentUser, ip: &str, params: &FilterParams, format: Format) -> NewEvent {
    let shown = params.to_query();
    NewEvent {
        object_kind: "audit_log".to_string(),
        object_label: format!(
            "{} of {}",
            format.extension().to_uppercase(),
            if shown.is_empty() {
                "everything but sign-ins"
            } else {
                shown.as_str()
            }
        ),
        ..NewEvent::by(user, "audit.export", ip)
    }
    .fields(&params.names())
}
