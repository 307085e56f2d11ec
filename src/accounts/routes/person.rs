//! One person (Partners only): their role and organization, a new password, deleting them.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::Role;
use crate::accounts::model::{Organization, User};
use crate::accounts::service::{self, AccountError, PersonChoices};
use crate::auth::CurrentUser;
use crate::crypto::Secret;
use crate::error::AppError;
use crate::ids::{OrganizationId, UserId};
use crate::startup::AppState;
use crate::web::confirm::ConfirmDelete;
use crate::web::form::FieldErrors;
use crate::web::{Page, flash, html_with_status, see_other};

#[derive(Template)]
#[template(path = "accounts/person.html")]
struct PersonPage {
    page: Page,
    person: User,
    organizations: Vec<Organization>,
    roles: [Role; 3],
    /// The role and organization in the form (what was typed, after a refusal).
    role: String,
    organization_id: Option<i64>,
    errors: FieldErrors,
    /// The Partner's own page: their password is changed on their account page.
    is_self: bool,
}

impl PersonPage {
    fn selects(&self, id: &OrganizationId) -> bool {
        self.organization_id == Some(id.0)
    }
}

struct Typed {
    role: String,
    organization_id: Option<i64>,
}

fn render(
    session: &Session,
    user: &CurrentUser,
    loaded: PersonChoices,
    typed: Option<Typed>,
    errors: FieldErrors,
    status: StatusCode,
) -> Result<HttpResponse, AppError> {
    let PersonChoices {
        person,
        organizations,
    } = loaded;
    let typed = typed.unwrap_or(Typed {
        role: person.role.key().to_string(),
        organization_id: person.organization_id.map(|id| id.0),
    });
    html_with_status(
        status,
        &PersonPage {
            page: Page::new(user, session, "users", &person.email),
            is_self: person.id == user.id(),
            person,
            organizations,
            roles: Role::ALL,
            role: typed.role,
            organization_id: typed.organization_id,
            errors,
        },
    )
}

/// GET /users/{id}/edit
pub async fn edit_person(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let loaded =
        service::person_choices(&state.pool, user.scope(), UserId::from_path(&id)?).await?;
    render(
        &session,
        &user,
        loaded,
        None,
        FieldErrors::default(),
        StatusCode::OK,
    )
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RoleForm {
    role: String,
    organization_id: Option<String>,
}

/// Where a change that ended the acting Partner's own session goes: signing in again.
fn after_change(user: &CurrentUser, person: UserId) -> HttpResponse {
    see_other(if person == user.id() {
        "/login"
    } else {
        "/users"
    })
}

/// POST /users/{id}: changes their role and organization (their sessions end).
pub async fn update_person(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<RoleForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = UserId::from_path(&id)?;
    let form = form.into_inner();
    let actor = super::actor(&req, &state, &user);
    let changed = service::change_role(
        &state.pool,
        &actor,
        id,
        &form.role,
        form.organization_id.as_deref(),
    )
    .await;
    let (errors, status) = match changed {
        Ok(changed) => {
            flash::success(&session, role_changed(&state, changed));
            return Ok(after_change(&user, id));
        }
        Err(AccountError::Invalid(errors)) => (errors, StatusCode::UNPROCESSABLE_ENTITY),
        Err(refused @ AccountError::LastPartner { .. }) => {
            (FieldErrors::one("role", refused), StatusCode::CONFLICT)
        }
        Err(error) => return Err(error.into()),
    };
    let loaded = service::person_choices(&state.pool, user.scope(), id).await?;
    render(
        &session,
        &user,
        loaded,
        Some(Typed::of(form)),
        errors,
        status,
    )
}

impl Typed {
    /// What the role form held, shown again with its errors.
    fn of(form: RoleForm) -> Typed {
        Typed {
            role: form.role,
            organization_id: form
                .organization_id
                .as_deref()
                .and_then(|id| id.parse().ok()),
        }
    }
}

/// What a role change says; a person signed out is forgotten in this process's session cache.
fn role_changed(state: &AppState, changed: service::Changed) -> String {
    let person = changed.person;
    if changed.signed_out {
        state.forget_person(person.id);
        format!(
            "{} is now {}: their sessions ended, they sign in again.",
            person.email,
            person.role.label()
        )
    } else {
        format!("Nothing changed for {}.", person.email)
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    password: Secret,
}

/// POST /users/{id}/password: sets a new password the Partner gives them; their sessions end.
pub async fn reset_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = UserId::from_path(&id)?;
    let actor = super::actor(&req, &state, &user);
    match service::set_password(&state.pool, &state.hasher, &actor, id, &form.password).await {
        Ok(changed) => {
            state.forget_person(id);
            flash::success(
                &session,
                format!(
                    "{} has a new password and is signed out everywhere. Tell it to them safely.",
                    changed.person.email
                ),
            );
            Ok(see_other("/users"))
        }
        Err(AccountError::Invalid(errors)) => {
            let loaded = service::person_choices(&state.pool, user.scope(), id).await?;
            let status = StatusCode::UNPROCESSABLE_ENTITY;
            render(&session, &user, loaded, None, errors, status)
        }
        Err(error) => Err(error.into()),
    }
}

fn question(person: &User, refusal: Option<String>) -> ConfirmDelete {
    ConfirmDelete {
        section: "users",
        name: person.email.clone(),
        consequence: "They can no longer sign in: their sessions, second factors and API tokens \
                      go with them. What they made stays, and the audit log keeps their name."
            .into(),
        action: format!("/users/{}/delete", person.id),
        back: format!("/users/{}/edit", person.id),
        back_label: person.email.clone(),
        refusal,
    }
}

/// GET /users/{id}/delete: asks first.
pub async fn confirm_delete_person(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let person = service::person(&state.pool, user.scope(), UserId::from_path(&id)?).await?;
    question(&person, None).render(&user, &session, false)
}

/// POST /users/{id}/delete: refused (409, on the same page) for the last Partner.
pub async fn delete_person(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let id = UserId::from_path(&id)?;
    let actor = super::actor(&req, &state, &user);
    match service::delete_person(&state.pool, &actor, id).await {
        Ok(person) => {
            state.forget_person(id);
            flash::success(&session, format!("{} deleted.", person.email));
            Ok(after_change(&user, id))
        }
        Err(refused @ AccountError::LastPartner { .. }) => {
            let person = service::person(&state.pool, user.scope(), id).await?;
            question(&person, Some(refused.to_string())).render(&user, &session, true)
        }
        Err(error) => Err(error.into()),
    }
}
