//! Partner-only pages: organizations and the people who sign in. The lists and the create
//! forms are here; one organization's pages are `organization`, one person's `person`.

mod organization;
mod person;

pub use organization::{
    confirm_delete_organization, delete_organization, edit_organization, rename_organization,
};
pub use person::{
    confirm_delete_person, delete_person, edit_person, reset_password, update_person,
};

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::Role;
use crate::accounts::model::{Organization, UserListing};
use crate::accounts::service::{self, AccountError, NewPerson, PeopleList, PersonForm};
use crate::auth::CurrentUser;
use crate::crypto::Secret;
use crate::error::AppError;
use crate::ids::{OrganizationId, UserId};
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html_with_status, see_other};

#[derive(Template)]
#[template(path = "accounts/organizations.html")]
struct OrganizationsPage {
    page: Page,
    organizations: Vec<Organization>,
    name: String,
    errors: FieldErrors,
    /// Two-step sign-in required of everyone, and of these organizations.
    mfa_everyone: bool,
    mfa_organizations: Vec<OrganizationId>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct OrganizationForm {
    name: String,
}

/// GET /organizations
pub async fn organizations(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    render_organizations(
        &state,
        &session,
        &user,
        String::new(),
        FieldErrors::default(),
    )
    .await
}

async fn render_organizations(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    name: String,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let listed =
        service::organization_list(&state.pool, user.scope(), user.identity.partner_id).await?;
    html_with_status(
        status_of(&errors),
        &OrganizationsPage {
            page: Page::new(user, session, "organizations", "Organizations"),
            organizations: listed.organizations,
            name,
            errors,
            mfa_everyone: listed.mfa_everyone,
            mfa_organizations: listed.mfa_organizations,
        },
    )
}

/// 200, or 422 for a form with errors.
fn status_of(errors: &FieldErrors) -> StatusCode {
    if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    }
}

/// POST /organizations
pub async fn create_organization(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<OrganizationForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let actor = actor(&req, &state, &user);
    match service::create_organization(&state.pool, &actor, &form.name).await {
        Ok(organization) => {
            flash::success(
                &session,
                format!("Organization {} created.", organization.name),
            );
            Ok(see_other("/organizations"))
        }
        Err(AccountError::Invalid(errors)) => {
            let name = form.into_inner().name.trim().to_string();
            render_organizations(&state, &session, &user, name, errors).await
        }
        Err(error) => Err(error.into()),
    }
}

#[derive(Template)]
#[template(path = "accounts/users.html")]
struct UsersPage {
    page: Page,
    people: Vec<UserListing>,
    organizations: Vec<Organization>,
    form: UserValues,
    errors: FieldErrors,
    roles: [Role; 3],
}

#[derive(Default)]
struct UserValues {
    email: String,
    display_name: String,
    role: String,
    organization_id: Option<i64>,
}

impl UserValues {
    /// Whether the organization select should show `id` as chosen.
    fn selects(&self, id: &OrganizationId) -> bool {
        self.organization_id == Some(id.0)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct UserForm {
    email: String,
    display_name: String,
    role: String,
    organization_id: Option<String>,
    password: Secret,
}

/// GET /users
pub async fn users(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    // Most people added are an organization's Managers: the form starts there, not at Partner.
    let blank = UserValues {
        role: Role::Manager.key().to_string(),
        ..UserValues::default()
    };
    let listed = service::people_list(&state.pool, user.scope()).await?;
    render_users(&session, &user, listed, blank, FieldErrors::default())
}

fn render_users(
    session: &Session,
    user: &CurrentUser,
    listed: PeopleList,
    form: UserValues,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    html_with_status(
        status_of(&errors),
        &UsersPage {
            page: Page::new(user, session, "users", "Users"),
            people: listed.people,
            organizations: listed.organizations,
            form,
            errors,
            roles: Role::ALL,
        },
    )
}

/// POST /users
pub async fn create_user(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<UserForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let form = form.into_inner();
    let person = PersonForm {
        person: NewPerson {
            email: &form.email,
            display_name: &form.display_name,
            password: &form.password,
        },
        role: &form.role,
        organization: form.organization_id.as_deref(),
    };
    let actor = actor(&req, &state, &user);
    match service::create_person(&state.pool, &state.hasher, &actor, &person).await {
        Ok(created) => {
            let message = format!(
                "{} can now sign in as {}.",
                created.email,
                created.role.label()
            );
            flash::success(&session, message);
            Ok(see_other("/users"))
        }
        Err(AccountError::Invalid(refused)) => {
            let listed = service::people_list(&state.pool, user.scope()).await?;
            let values = UserValues::typed(&form, &listed.organizations);
            render_users(&session, &user, listed, values, refused)
        }
        Err(error) => Err(error.into()),
    }
}

impl UserValues {
    /// The form as typed, its organization shown chosen only where the role takes it.
    fn typed(form: &UserForm, organizations: &[Organization]) -> UserValues {
        let (_, organization_id) = service::role_and_organization(
            &form.role,
            form.organization_id.as_deref(),
            organizations,
            &mut FieldErrors::default(),
        );
        UserValues {
            email: form.email.trim().to_string(),
            display_name: form.display_name.clone(),
            role: form.role.clone(),
            organization_id: organization_id.map(|id| id.0),
        }
    }
}

/// POST /users/{id}/disable and /users/{id}/enable
pub async fn set_disabled(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<(i64, String)>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let (id, action) = path.into_inner();
    let disable = match action.as_str() {
        "disable" => true,
        "enable" => false,
        _ => return Err(AppError::NotFound),
    };
    let id = UserId(id);
    let actor = actor(&req, &state, &user);
    let target = service::set_disabled(&state.pool, &actor, id, disable).await?;
    if disable {
        state.forget_person(id);
    }
    let now = if disable {
        "is disabled and signed out everywhere"
    } else {
        "can sign in again"
    };
    flash::success(&session, format!("{} {now}.", target.email));
    Ok(see_other("/users"))
}

/// Who changes people and organizations, for the account use cases: the signed-in Partner and
/// the address the request came from.
fn actor<'a>(
    req: &HttpRequest,
    state: &AppState,
    user: &'a CurrentUser,
) -> crate::accounts::service::Actor<'a> {
    crate::accounts::service::Actor {
        who: user,
        scope: user.scope(),
        ip: client_ip(req, &state.settings.trusted_proxies),
    }
}
