//! One organization (Partners only): rename it, and delete it once it is empty.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::Role;
use crate::accounts::model::{Contents, Organization};
use crate::accounts::service::{self, AccountError};
use crate::auth::CurrentUser;
use crate::error::AppError;
use crate::ids::OrganizationId;
use crate::startup::AppState;
use crate::web::confirm::ConfirmDelete;
use crate::web::form::FieldErrors;
use crate::web::{Page, flash, html_with_status, see_other};

fn organization_id(path: &str) -> Result<OrganizationId, AppError> {
    path.parse()
        .map(OrganizationId)
        .map_err(|_| AppError::NotFound)
}

#[derive(Template)]
#[template(path = "accounts/organization.html")]
struct OrganizationPage {
    page: Page,
    organization: Organization,
    contents: Contents,
    /// The name in the field (what was typed, after a refusal).
    name: String,
    errors: FieldErrors,
}

async fn render(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    id: OrganizationId,
    name: Option<String>,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let (organization, contents) =
        service::organization_contents(&state.pool, user.scope(), id).await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html_with_status(
        status,
        &OrganizationPage {
            page: Page::new(user, session, "organizations", &organization.name),
            name: name.unwrap_or_else(|| organization.name.clone()),
            organization,
            contents,
            errors,
        },
    )
}

/// GET /organizations/{id}/edit
pub async fn edit_organization(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = organization_id(&id)?;
    render(&state, &session, &user, id, None, FieldErrors::default()).await
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RenameForm {
    name: String,
}

/// POST /organizations/{id}: renames it.
pub async fn rename_organization(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<RenameForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = organization_id(&id)?;
    let actor = super::actor(&req, &state, &user);
    match service::rename_organization(&state.pool, &actor, id, &form.name).await {
        Ok(organization) => {
            flash::success(
                &session,
                format!("Organization {} saved.", organization.name),
            );
            Ok(see_other("/organizations"))
        }
        Err(AccountError::Invalid(errors)) => {
            let typed = form.into_inner().name;
            render(&state, &session, &user, id, Some(typed), errors).await
        }
        Err(error) => Err(error.into()),
    }
}

fn question(organization: &Organization, refusal: Option<String>) -> ConfirmDelete {
    ConfirmDelete {
        section: "organizations",
        name: organization.name.clone(),
        consequence: "An empty organization is removed; the audit log keeps what happened in it."
            .into(),
        action: format!("/organizations/{}/delete", organization.id),
        back: format!("/organizations/{}/edit", organization.id),
        back_label: organization.name.clone(),
        refusal,
    }
}

/// GET /organizations/{id}/delete: asks first, and says what it still holds.
pub async fn confirm_delete_organization(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = organization_id(&id)?;
    let (organization, contents) =
        service::organization_contents(&state.pool, user.scope(), id).await?;
    let standing = (!contents.is_empty()).then(|| {
        AccountError::NotEmpty {
            name: organization.name.clone(),
            contents: contents.words(),
        }
        .to_string()
    });
    question(&organization, standing).render(&user, &session, false)
}

/// POST /organizations/{id}/delete: refused (409, on the same page) while it holds anything.
pub async fn delete_organization(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = organization_id(&id)?;
    let actor = super::actor(&req, &state, &user);
    match service::delete_organization(&state.pool, &actor, id).await {
        Ok(organization) => {
            flash::success(
                &session,
                format!("Organization {} deleted.", organization.name),
            );
            Ok(see_other("/organizations"))
        }
        Err(refused @ AccountError::NotEmpty { .. }) => {
            let (organization, _) =
                service::organization_contents(&state.pool, user.scope(), id).await?;
            question(&organization, Some(refused.to_string())).render(&user, &session, true)
        }
        Err(error) => Err(error.into()),
    }
}
