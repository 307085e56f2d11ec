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
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use serde::Deserialize;

use crate::access::Role;
use crate::accounts::model::{Organization, User, UserListing};
use crate::accounts::service::{self, AccountError, NewPerson, Placement};
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::crypto::Secret;
use crate::db;
use crate::error::AppError;
use crate::ids::{OrganizationId, UserId};
use crate::startup::AppState;
use crate::web::form::{FieldErrors, check_length};
use crate::web::{Page, client_ip, flash, html_with_status, see_other};

fn is_unique_violation(error: &AppError) -> bool {
    matches!(
        error,
        AppError::Internal(cause)
            if matches!(
                cause.downcast_ref::<DieselError>(),
                Some(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _))
            )
    )
}

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
    let (scope, partner) = (user.scope(), user.identity.partner_id);
    let (organizations, (mfa_everyone, mfa_organizations)) = db::run(&state.pool, move |conn| {
        Ok::<_, diesel::result::Error>((
            Organization::list(conn, &scope)?,
            crate::auth::mfa::requirements(conn, partner)?,
        ))
    })
    .await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html_with_status(
        status,
        &OrganizationsPage {
            page: Page::new(user, session, "organizations", "Organizations"),
            organizations,
            name,
            errors,
            mfa_everyone,
            mfa_organizations,
        },
    )
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
    let name = form.into_inner().name.trim().to_string();
    let mut errors = FieldErrors::default();
    errors.check("name", check_length(&name, 3, 60));
    if !errors.is_empty() {
        return render_organizations(&state, &session, &user, name, errors).await;
    }
    let partner = user.identity.partner_id;
    let event = NewEvent::by(
        &user,
        "organization.create",
        &client_ip(&req, &state.settings.trusted_proxies),
    );
    let (actor, new_name) = (user.id(), name.clone());
    let created = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let organization = Organization::create(conn, partner, &new_name, Some(actor))?;
            event
                .object("organization", organization.id.0, &organization.name)
                .in_organization(Some(organization.id))
                .fields(&["name"])
                .record(conn)?;
            Ok::<_, DieselError>(organization)
        })
    })
    .await
    .map_err(AppError::from);
    match created {
        Ok(organization) => {
            flash::success(
                &session,
                format!("Organization {} created.", organization.name),
            );
            Ok(see_other("/organizations"))
        }
        Err(error) if is_unique_violation(&error) => {
            errors.add("name", format!("{name} already exists"));
            render_organizations(&state, &session, &user, name, errors).await
        }
        Err(error) => Err(error),
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
    render_users(&state, &session, &user, blank, FieldErrors::default()).await
}

async fn render_users(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    form: UserValues,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let scope = user.scope();
    let (people, organizations) = db::run(&state.pool, move |conn| {
        Ok::<_, AppError>((User::list(conn, &scope)?, Organization::list(conn, &scope)?))
    })
    .await?;
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html_with_status(
        status,
        &UsersPage {
            page: Page::new(user, session, "users", "Users"),
            people,
            organizations,
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
    let person = NewPerson {
        email: &form.email,
        display_name: &form.display_name,
        password: &form.password,
    };
    let mut errors = person.check();
    let scope = user.scope();
    let organizations = db::run(&state.pool, move |conn| Organization::list(conn, &scope)).await?;
    let (role, organization_id) = service::role_and_organization(
        &form.role,
        form.organization_id.as_deref(),
        &organizations,
        &mut errors,
    );
    let values = UserValues {
        email: form.email.trim().to_string(),
        display_name: form.display_name.clone(),
        role: form.role.clone(),
        organization_id: organization_id.map(|id| id.0),
    };
    if errors.get("email").is_none() {
        let email = values.email.clone();
        if db::run(&state.pool, move |conn| User::email_taken(conn, &email)).await? {
            errors.add("email", service::EMAIL_IN_USE);
        }
    }
    let Some(role) = role.filter(|_| errors.is_empty()) else {
        return render_users(&state, &session, &user, values, errors).await;
    };

    let hash = state.hasher.hash(&form.password).await?;
    let placement = Placement {
        partner: user.identity.partner_id,
        organization: organization_id,
        role,
        created_by: Some(user.id()),
    };
    let event = NewEvent::by(
        &user,
        "user.create",
        &client_ip(&req, &state.settings.trusted_proxies),
    )
    .in_organization(organization_id);
    let (email, display_name, password) = (
        form.email.clone(),
        form.display_name.clone(),
        form.password.clone(),
    );
    let created = db::run(&state.pool, move |conn| {
        let person = NewPerson {
            email: &email,
            display_name: &display_name,
            password: &password,
        };
        conn.build_transaction()
            .run(|conn| service::add_person(conn, &person, &hash, &placement, event))
    })
    .await
    .map_err(AccountError::from);
    match created {
        Ok(created) => {
            flash::success(
                &session,
                format!("{} can now sign in as {}.", created.email, role.label()),
            );
            Ok(see_other("/users"))
        }
        Err(AccountError::Invalid(refused)) => {
            render_users(&state, &session, &user, values, refused).await
        }
        Err(error) => Err(error.into()),
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
    if id == user.id() && disable {
        return Err(AppError::Conflict(
            "You cannot disable your own account.".to_string(),
        ));
    }
    let scope = user.scope();
    let event = NewEvent::by(
        &user,
        if disable {
            "user.disable"
        } else {
            "user.enable"
        },
        &client_ip(&req, &state.settings.trusted_proxies),
    );
    let target = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let target = User::find(conn, &scope, id)?;
            if target.disabled == disable {
                return Err(AppError::Conflict(format!(
                    "{} is already {}.",
                    target.email,
                    if disable { "disabled" } else { "enabled" }
                )));
            }
            // Disabling the last enabled Partner would leave the account without one (the
            // Partners' rows are locked while counted, as for a role change).
            if disable {
                crate::accounts::service::keep_a_partner(conn, &target)?;
            }
            User::set_disabled(conn, id, disable)?;
            event
                .object("user", target.id.0, &target.email)
                .in_organization(target.organization_id)
                .fields(&["disabled"])
                .record(conn)?;
            Ok(target)
        })
    })
    .await?;
    if disable {
        state.forget_person(id);
    }
    flash::success(
        &session,
        format!(
            "{} {}.",
            target.email,
            if disable {
                "is disabled and signed out everywhere"
            } else {
                "can sign in again"
            }
        ),
    );
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
        user,
        ip: client_ip(req, &state.settings.trusted_proxies),
    }
}
