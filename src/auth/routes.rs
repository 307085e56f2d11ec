//! First-run setup, sign-in and sign-out.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use diesel::prelude::*;
use serde::Deserialize;

use crate::accounts::model::User;
use crate::accounts::service::{AccountError, NewPerson, open_keyhold};
use crate::audit::NewEvent;
use crate::auth::throttle::Attempt;
use crate::auth::{CurrentUser, Identity, csrf};
use crate::crypto::Secret;
use crate::db;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::{FieldErrors, check_length, safe_next};
use crate::web::{Page, client_ip, flash, html, html_with_status, see_other};

const BAD_CREDENTIALS: &str = "Incorrect email or password.";

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    page: Page,
    email: String,
    next: String,
    error: Option<String>,
    /// The person was sent here because their session ended while a form was open.
    expired: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct NextQuery {
    next: Option<String>,
    expired: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct LoginForm {
    email: String,
    password: Secret,
    next: Option<String>,
}

/// GET /login
pub async fn login_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: Option<CurrentUser>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    if user.is_some() {
        return Ok(see_other("/"));
    }
    if !db::run(&state.pool, User::any_exists).await? {
        return Ok(see_other("/setup"));
    }
    html(&LoginPage {
        page: Page::anonymous(&req, &session, "Sign in"),
        email: String::new(),
        next: safe_next(query.next.as_deref()),
        error: None,
        expired: query.expired.is_some(),
    })
}

/// POST /login
pub async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, AppError> {
    let form = form.into_inner();
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let limits = state.settings.login;
    let attempt = Attempt::new(&ip, &form.email, &limits);
    let refuse = |status: StatusCode, message: &str| {
        html_with_status(
            status,
            &LoginPage {
                page: Page::anonymous(&req, &session, "Sign in"),
                email: form.email.clone(),
                next: safe_next(form.next.as_deref()),
                error: Some(message.to_string()),
                expired: false,
            },
        )
    };

    // Counted before the password is checked, so concurrent attempts cannot all pass.
    let (blocked, user) = {
        let email = form.email.clone();
        db::run(&state.pool, move |conn| {
            Ok::<_, AppError>((
                attempt.count(conn, &limits)?,
                User::find_by_email(conn, &email)?,
            ))
        })
        .await?
    };
    if let Some(seconds) = blocked {
        state.metrics.count_login("throttled");
        let mut response = refuse(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many failed sign-ins. Try again in {seconds} seconds."),
        )?;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, seconds.into());
        return Ok(response);
    }

    let matches = state
        .hasher
        .verify(
            &form.password,
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    let attempt = Attempt::new(&ip, &form.email, &limits);
    match user {
        Some(user) if matches && !user.disabled => {
            let next = safe_next(form.next.as_deref());
            // A person with a second factor owes its code first (the throttle's count is
            // cleared only once the code passes).
            if let Some(code_page) =
                crate::auth::second_step::after_password(&state, &session, &user, next.clone())
                    .await?
            {
                return Ok(code_page);
            }
            let event = NewEvent {
                actor_id: Some(user.id),
                actor_label: user.email.clone(),
                partner_id: Some(user.partner_id),
                organization_id: user.organization_id,
                client_ip: Some(ip.clone()),
                ..NewEvent::system("session.sign_in")
            }
            .object("user", user.id.0, &user.email);
            db::run(&state.pool, move |conn| {
                attempt.succeeded(conn)?;
                event.record(conn)
            })
            .await?;
            session.renew();
            Identity::of(&user).store(&session)?;
            csrf::rotate(&session);
            state.metrics.count_login("success");
            if matches!(
                session.get::<bool>(crate::auth::mfa::SETUP_KEY),
                Ok(Some(true))
            ) {
                return Ok(see_other("/account/mfa"));
            }
            Ok(see_other(&next))
        }
        user => {
            // A disabled account's right password is answered like a wrong one: the answer
            // must not tell whoever holds a password that it is right.
            let mut event = NewEvent {
                client_ip: Some(ip.clone()),
                actor_label: form.email.trim().chars().take(254).collect(),
                ..NewEvent::system("session.sign_in_failed")
            };
            if let Some(user) = &user {
                event.partner_id = Some(user.partner_id);
                event.organization_id = user.organization_id;
                event = event.object("user", user.id.0, &user.email);
            }
            db::run(&state.pool, move |conn| event.record(conn)).await?;
            state.metrics.count_login("failure");
            refuse(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS)
        }
    }
}

/// POST /logout (also half signed in, or while a required second factor is being set up)
pub async fn logout(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: Result<crate::auth::SettingUp, AppError>,
) -> Result<HttpResponse, AppError> {
    let user = match user {
        Ok(crate::auth::SettingUp(user)) => user,
        Err(AppError::SecondFactorRequired) => {
            session.purge();
            return Ok(see_other("/login?signed_out=1"));
        }
        Err(error) => return Err(error),
    };
    let event = NewEvent::by(
        &user,
        "session.sign_out",
        &client_ip(&req, &state.settings.trusted_proxies),
    )
    .object("user", user.id().0, &user.label());
    db::run(&state.pool, move |conn| event.record(conn)).await?;
    session.purge();
    Ok(see_other("/login?signed_out=1"))
}

#[derive(Template)]
#[template(path = "auth/setup.html")]
struct SetupPage {
    page: Page,
    form: SetupValues,
    errors: FieldErrors,
}

#[derive(Default)]
struct SetupValues {
    partner_name: String,
    display_name: String,
    email: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct SetupForm {
    partner_name: String,
    display_name: String,
    email: String,
    password: Secret,
}

/// GET /setup: only while nobody has an account.
pub async fn setup_form(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, AppError> {
    if db::run(&state.pool, User::any_exists).await? {
        return Err(AppError::NotFound);
    }
    html(&SetupPage {
        page: Page::anonymous(&req, &session, "Set up keyhold"),
        form: SetupValues::default(),
        errors: FieldErrors::default(),
    })
}

/// POST /setup: creates the partner account and its first Partner, then signs in.
pub async fn setup(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    form: web::Form<SetupForm>,
) -> Result<HttpResponse, AppError> {
    if db::run(&state.pool, User::any_exists).await? {
        return Err(AppError::NotFound);
    }
    let form = form.into_inner();
    let mut errors = NewPerson {
        email: &form.email,
        display_name: &form.display_name,
        password: &form.password,
    }
    .check();
    errors.check("partner_name", check_length(&form.partner_name, 3, 60));
    if !errors.is_empty() {
        return html_with_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            &SetupPage {
                page: Page::anonymous(&req, &session, "Set up keyhold"),
                form: SetupValues {
                    partner_name: form.partner_name,
                    display_name: form.display_name,
                    email: form.email,
                },
                errors,
            },
        );
    }
    let hash = state.hasher.hash(&form.password).await?;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let user = db::run(&state.pool, move |conn| {
        let person = NewPerson {
            email: &form.email,
            display_name: &form.display_name,
            password: &form.password,
        };
        conn.transaction(|conn| open_keyhold(conn, &form.partner_name, &person, &hash, ip))
    })
    .await
    .map_err(AccountError::from)?;
    session.renew();
    Identity::of(&user).store(&session)?;
    csrf::rotate(&session);
    flash::success(
        &session,
        "keyhold is set up. Next: create an organization and its Managers.",
    );
    Ok(see_other("/"))
}
