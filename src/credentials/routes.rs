//! The Credentials area: one set of handlers for all five tabs, driven by the registry
//! (`provider`). Plain form posts answer 303 with a flash message; htmx requests get the
//! fragment that changed (a row, the table, a verification result). The tab, a row's details
//! and the actions are here; the add and edit forms are `forms`, the table `table`.

mod forms;
mod table;

use std::borrow::Cow;

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

pub use forms::{create, edit, new, provider_for_new, update, verify_form};
pub use table::ListParams;
use table::{Badge, CellKind, RowView, Table, details, table};

use crate::access::Role;
use crate::accounts::model::Organization;
use crate::auth::CurrentUser;
use crate::credentials::error::CredentialError;
use crate::credentials::model::Listed;
use crate::credentials::provider::{Kind, Provider};
use crate::credentials::service::{self, Action};
use crate::error::AppError;
use crate::ids::CredentialId;
use crate::startup::AppState;
use crate::web::{Flash, Page, client_ip, flash, html, html_with_status, is_htmx, see_other};

/// Opens a tab for `user`: Users never, Billing only for Partners.
pub fn authorize(user: &CurrentUser, kind: &str) -> Result<Kind, AppError> {
    user.require(&[Role::Partner, Role::Manager])?;
    let kind = Kind::parse(kind).ok_or(AppError::NotFound)?;
    if kind.spec().partner_only && user.role() != Role::Partner {
        return Err(AppError::Forbidden);
    }
    Ok(kind)
}

/// The tab and the credential id a path names, the tab checked for `user` first (403).
pub(super) fn tab_and_id(
    user: &CurrentUser,
    kind: &str,
    id: &str,
) -> Result<(Kind, CredentialId), AppError> {
    Ok((authorize(user, kind)?, CredentialId::from_path(id)?))
}

/// The tabs this person sees.
fn tabs(user: &CurrentUser) -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|kind| !kind.spec().partner_only || user.role() == Role::Partner)
        .collect()
}

/// GET /credentials
pub async fn index(user: CurrentUser) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner, Role::Manager])?;
    let first = tabs(&user).first().copied().unwrap_or(Kind::ALL[0]);
    Ok(see_other(&format!("/credentials/{}", first.key())))
}

#[derive(Template)]
#[template(path = "credentials/list.html")]
struct TabPage<'a> {
    page: Page,
    tabs: Vec<Kind>,
    table: Table<'a>,
    csrf: String,
    q: String,
    org: String,
    provider: String,
    organizations: &'a [Organization],
    providers: Vec<&'static Provider>,
    is_partner: bool,
}

#[derive(Template)]
#[template(path = "credentials/_results_response.html")]
struct ResultsFragment<'a> {
    table: Table<'a>,
    csrf: String,
    flashes: Vec<Flash>,
}

#[derive(Template)]
#[template(path = "credentials/_removed.html")]
struct RemovedFragment {
    flashes: Vec<Flash>,
    /// How many the list holds now, swapped into its count.
    total: crate::credentials::model::Total,
}

#[derive(Template)]
#[template(path = "credentials/_row_response.html")]
struct RowFragment<'a> {
    row: RowView<'a>,
    flashes: Vec<Flash>,
}

/// GET /credentials/{kind}
pub async fn list(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    kind: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let kind = authorize(&user, &kind)?;
    let params = ListParams::parse(req.query_string());
    let query = params.query(kind, &user);
    // The organization filter (Partners only) is part of the page around the table, not of
    // the htmx fragment.
    let whole_page = !is_htmx(&req);
    let organization_filter = whole_page && user.role() == Role::Partner;
    let listing = service::list(
        &context(&state),
        user.scope(),
        query.clone(),
        organization_filter,
    )
    .await?;
    if query.search.is_some() {
        state.metrics.count_search(listing.answered_by.label());
    }
    let table = table(kind, &params, &query, &listing.page);
    let title = format!("{} credentials", kind.spec().label);
    let page = Page::new(&user, &session, "credentials", &title);
    if !whole_page {
        return html(&ResultsFragment::new(table, page.csrf, page.flashes));
    }
    html(&TabPage::new(
        &user,
        page,
        &params,
        table,
        &listing.organizations,
    ))
}

impl<'a> ResultsFragment<'a> {
    fn new(table: Table<'a>, csrf: String, flashes: Vec<Flash>) -> ResultsFragment<'a> {
        ResultsFragment {
            table,
            csrf,
            flashes,
        }
    }
}

impl<'a> TabPage<'a> {
    fn new(
        user: &CurrentUser,
        page: Page,
        params: &ListParams,
        table: Table<'a>,
        organizations: &'a [Organization],
    ) -> TabPage<'a> {
        TabPage {
            tabs: tabs(user),
            csrf: page.csrf.clone(),
            q: params.q.clone().unwrap_or_default(),
            org: params.org.clone().unwrap_or_default(),
            provider: params.provider.clone().unwrap_or_default(),
            organizations,
            providers: table.kind.spec().providers().collect(),
            is_partner: user.role() == Role::Partner,
            page,
            table,
        }
    }
}

#[derive(Template)]
#[template(path = "credentials/detail.html")]
struct DetailPage<'a> {
    page: Page,
    kind: Kind,
    row: RowView<'a>,
    details: Vec<(&'static str, Cow<'a, str>)>,
    organization: String,
    /// Why the page asked for was refused (its edit form, while locked).
    refusal: Option<String>,
}

#[derive(Template)]
#[template(path = "credentials/_detail.html")]
struct DetailFragment<'a> {
    details: Vec<(&'static str, Cow<'a, str>)>,
}

/// The credential a path names: the tab checked for `user` first (403), then the scope (404).
async fn named_credential(
    state: &AppState,
    user: &CurrentUser,
    kind: &str,
    id: &str,
) -> Result<(Kind, Listed), AppError> {
    let kind = authorize(user, kind)?;
    let id = CredentialId::from_path(id)?;
    Ok((
        kind,
        service::find(&context(state), user.scope(), kind, id).await?,
    ))
}

/// GET /credentials/{kind}/{id}
pub async fn show(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, AppError> {
    let (kind, id) = path.into_inner();
    let (kind, listed) = named_credential(&state, &user, &kind, &id).await?;
    let last_used = service::last_use(&context(&state), listed.credential.id).await?;
    if is_htmx(&req) {
        let row = RowView::new(&listed, &kind.spec().columns(None));
        let mut details = details(&listed, &row);
        details.push(("Last used", Cow::Owned(last_used)));
        return html(&DetailFragment { details });
    }
    detail_page(&user, &session, kind, &listed, None, Some(last_used))
}

/// A credential's page; with a refusal (its edit form asked for while it cannot be edited),
/// 409 and the reason above its details and the way out.
pub(super) fn detail_page(
    user: &CurrentUser,
    session: &Session,
    kind: Kind,
    listed: &Listed,
    refusal: Option<String>,
    last_used: Option<String>,
) -> Result<HttpResponse, AppError> {
    let row = RowView::new(listed, &kind.spec().columns(None));
    let mut details = details(listed, &row);
    if let Some(last_used) = last_used {
        details.push(("Last used", Cow::Owned(last_used)));
    }
    let status = if refusal.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    html_with_status(
        status,
        &DetailPage {
            page: Page::new(user, session, "credentials", &listed.credential.name),
            kind,
            organization: listed.organization_name.clone(),
            details,
            row,
            refusal,
        },
    )
}

#[derive(Template)]
#[template(path = "credentials/confirm_delete.html")]
struct ConfirmDeletePage {
    page: Page,
    kind: Kind,
    id: CredentialId,
    name: String,
    organization: String,
}

/// GET /credentials/{kind}/{id}/delete: asks before deleting (the page browsers without
/// JavaScript get; with it, htmx asks with a dialog and posts).
pub async fn confirm(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, AppError> {
    let (kind, id, action) = path.into_inner();
    let (kind, id) = tab_and_id(&user, &kind, &id)?;
    if Action::parse(&action) != Some(Action::Delete) {
        return Err(AppError::NotFound);
    }
    let listed = service::deletable(&context(&state), user.scope(), kind, id).await?;
    let name = &listed.credential.name;
    html(&ConfirmDeletePage {
        page: Page::new(&user, &session, "credentials", &format!("Delete {name}")),
        kind,
        id,
        name: name.clone(),
        organization: listed.organization_name.clone(),
    })
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct ActionForm {
    #[serde(default)]
    back: String,
}

/// POST /credentials/{kind}/{id}/{action}: lock, unlock, default, verify, delete.
pub async fn action(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(String, String, String)>,
    form: web::Form<ActionForm>,
) -> Result<HttpResponse, AppError> {
    let (kind, id, action) = path.into_inner();
    let (kind, id) = tab_and_id(&user, &kind, &id)?;
    let action = Action::parse(&action).ok_or(AppError::NotFound)?;
    let context = context(&state);
    let acted = service::act(&context, &actor(&req, &state, &user), kind, id, action).await;
    let params = ListParams::parse(&form.back);
    let message = match acted {
        Ok(message) => message,
        Err(error) if is_htmx(&req) && !matches!(error, CredentialError::NotFound) => {
            return refused_in_row(&context, &user, kind, id, &params, error).await;
        }
        Err(error) => return Err(error.into()),
    };
    if !is_htmx(&req) {
        flash::success(&session, message);
        let query = params.to_query();
        let separator = if query.is_empty() { "" } else { "?" };
        let tab = kind.key();
        return Ok(see_other(&format!("/credentials/{tab}{separator}{query}")));
    }
    let flashes = vec![Flash::success(message)];
    changed(
        &context,
        &user,
        &session,
        (kind, id, action),
        &params,
        flashes,
    )
    .await
}

/// An htmx row action refused: its row as it now stands (someone else may have changed it),
/// its menu open and the reason in it, in place of the row whatever the action's target.
async fn refused_in_row(
    context: &service::Context<'_>,
    user: &CurrentUser,
    kind: Kind,
    id: CredentialId,
    params: &ListParams,
    error: CredentialError,
) -> Result<HttpResponse, AppError> {
    let reason = error.to_string();
    let status = actix_web::ResponseError::status_code(&AppError::from(error));
    let listed = service::find(context, user.scope(), kind, id).await?;
    let columns = kind.spec().columns(params.provider(kind));
    let mut response = html_with_status(
        status,
        &RowFragment {
            row: RowView {
                menu_open: true,
                refusal: Some(reason),
                ..RowView::new(&listed, &columns)
            },
            flashes: Vec::new(),
        },
    )?;
    retarget(&mut response, &format!("#credential-{id}"), "outerHTML");
    Ok(response)
}

/// Tells htmx to swap `response` into `target` (a CSS selector) the way `swap` says, whatever
/// the request's own target was.
fn retarget(response: &mut HttpResponse, target: &str, swap: &'static str) {
    let headers = response.headers_mut();
    if let Ok(target) = HeaderValue::from_str(target) {
        headers.insert(HeaderName::from_static("hx-retarget"), target);
    }
    headers.insert(
        HeaderName::from_static("hx-reswap"),
        HeaderValue::from_static(swap),
    );
}

/// What htmx swaps after an action: nothing for a deleted row, the table after a new default
/// (the previous default's row changed too), else the row.
async fn changed(
    context: &service::Context<'_>,
    user: &CurrentUser,
    session: &Session,
    (kind, id, action): (Kind, CredentialId, Action),
    params: &ListParams,
    flashes: Vec<Flash>,
) -> Result<HttpResponse, AppError> {
    let csrf = crate::auth::csrf::token(session);
    match action {
        Action::Delete | Action::Default => {
            let query = params.query(kind, user);
            let page = service::page(context, user.scope(), query.clone()).await?;
            if action == Action::Delete && !page.rows.is_empty() {
                // The row's target is swapped with nothing; the message and the new count
                // remain.
                return html(&RemovedFragment {
                    flashes,
                    total: page.total,
                });
            }
            // The table: after a new default, or after a delete that emptied the page.
            let table = table(kind, params, &query, &page);
            let mut response = html(&ResultsFragment::new(table, csrf, flashes))?;
            if action == Action::Delete {
                retarget(&mut response, "#results", "innerHTML");
            }
            Ok(response)
        }
        Action::Lock | Action::Unlock | Action::Verify => {
            let listed = service::find(context, user.scope(), kind, id).await?;
            let columns = kind.spec().columns(params.provider(kind));
            html(&RowFragment {
                row: RowView {
                    menu_open: true,
                    ..RowView::new(&listed, &columns)
                },
                flashes,
            })
        }
    }
}

/// What the credential use cases reach, from the app's state.
pub fn context(state: &AppState) -> service::Context<'_> {
    service::Context {
        pool: &state.pool,
        keyring: &state.settings.keyring,
        outbound: &state.outbound,
        endpoints: &state.endpoints,
        pages: &state.pages,
        backups_held: crate::backup::model::Backup::names_held_by,
    }
}

/// The person acting, and the address the audit row records.
fn actor<'a>(req: &HttpRequest, state: &AppState, user: &'a CurrentUser) -> service::Actor<'a> {
    service::Actor {
        user,
        ip: client_ip(req, &state.settings.trusted_proxies),
    }
}
