//! First-run setup, sign-in and sign-out.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::accounts;
use crate::accounts::model::User;
use crate::accounts::service::{AccountError, NewPerson};
use crate::auth::second_step::{retry_after, too_many_failures};
use crate::auth::service::{self, Guard, SignIn};
use crate::auth::{CurrentUser, Identity, csrf, mfa, second_step};
use crate::crypto::Secret;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::{FieldErrors, safe_next};
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

/// What checks a password in this app: its pool, its hasher and its sign-in limits.
pub(crate) fn guard(state: &AppState) -> Guard<'_> {
    Guard {
        pool: &state.pool,
        hasher: &state.hasher,
        limits: state.settings.login,
    }
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
    if !service::anyone_signs_in(&state.pool).await? {
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
    let next = safe_next(form.next.as_deref());
    let refuse = |status, message| login_refused(&req, &session, &form, &next, status, message);
    match service::sign_in(guard(&state), &ip, &form.email, &form.password).await? {
        SignIn::Throttled(seconds) => {
            state.metrics.count_login("throttled");
            let response = refuse(StatusCode::TOO_MANY_REQUESTS, too_many_failures(seconds))?;
            Ok(retry_after(response, seconds))
        }
        SignIn::Refused => {
            state.metrics.count_login("failure");
            refuse(StatusCode::UNAUTHORIZED, BAD_CREDENTIALS.to_string())
        }
        SignIn::SecondStepOwed(user) => {
            second_step::wait_for_answer(&session, user.id, next.clone())?;
            Ok(see_other("/login/mfa"))
        }
        SignIn::SignedIn { user, setup_owed } => {
            signed_in(&state, &session, &user, setup_owed)?;
            if matches!(session.get::<bool>(mfa::SETUP_KEY), Ok(Some(true))) {
                return Ok(see_other("/account/mfa"));
            }
            Ok(see_other(&next))
        }
    }
}

/// The sign-in page again, with what was typed (the password aside) and why it was refused.
fn login_refused(
    req: &HttpRequest,
    session: &Session,
    form: &LoginForm,
    next: &str,
    status: StatusCode,
    message: String,
) -> Result<HttpResponse, AppError> {
    let page = LoginPage {
        page: Page::anonymous(req, session, "Sign in"),
        email: form.email.clone(),
        next: next.to_string(),
        error: Some(message),
        expired: false,
    };
    html_with_status(status, &page)
}

/// Makes the session of a person who signed in with a password alone (`setup_owed`: who must
/// set up the second factor their partner account requires before anything else).
fn signed_in(
    state: &AppState,
    session: &Session,
    user: &User,
    setup_owed: bool,
) -> Result<(), AppError> {
    if setup_owed {
        session
            .insert(mfa::SETUP_KEY, true)
            .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))?;
    }
    session.renew();
    Identity::of(user).store(session)?;
    csrf::rotate(session);
    state.metrics.count_login("success");
    Ok(())
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
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    service::sign_out(&state.pool, &user, &ip).await?;
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
    if service::anyone_signs_in(&state.pool).await? {
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
    let form = form.into_inner();
    let person = NewPerson {
        email: &form.email,
        display_name: &form.display_name,
        password: &form.password,
    };
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let opened =
        accounts::service::set_up(&state.pool, &state.hasher, &form.partner_name, &person, ip)
            .await;
    let user = match opened {
        Ok(user) => user,
        Err(AccountError::Invalid(errors)) => {
            let form = SetupValues {
                partner_name: form.partner_name,
                display_name: form.display_name,
                email: form.email,
            };
            let page = Page::anonymous(&req, &session, "Set up keyhold");
            let page = SetupPage { page, form, errors };
            return html_with_status(StatusCode::UNPROCESSABLE_ENTITY, &page);
        }
        Err(error) => return Err(error.into()),
    };
    session.renew();
    Identity::of(&user).store(&session)?;
    csrf::rotate(&session);
    flash::success(
        &session,
        "keyhold is set up. Next: create an organization and its Managers.",
    );
    Ok(see_other("/"))
}
