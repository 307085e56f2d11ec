//! The passkey routes (SPEC §12). Registering and signing in with a passkey are two JSON
//! requests each, sent by `static/passkey.js` (same origin, CSRF header): the first answers
//! the options for `navigator.credentials.create`/`get` and keeps the challenge in the
//! session, the second checks the authenticator's answer. Refusals are problem+json with the
//! page's words. Removing a passkey is a plain form (the password confirms it).

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use serde::Deserialize;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential, RegisterPublicKeyCredential,
};

use crate::auth::CurrentUser;
use crate::auth::account::render_mfa_refusing;
use crate::auth::mfa::Passed;
use crate::auth::passkey::{self, PasskeyError};
use crate::auth::routes::guard;
use crate::auth::second_step::{
    Gate, SecondStep, pending, retry_after, second_step, too_many_failures,
};
use crate::auth::service::{self, AuthError, Removal};
use crate::crypto::Secret;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::problem::problem;
use crate::web::{client_ip, flash, see_other};

/// The refusal of a passkey sign-in whose password step is gone (or too old).
const SIGN_IN_EXPIRED: &str = "The sign-in expired: enter your password again.";

/// A refusal as problem+json (the script shows `detail`).
fn refused_with(status: StatusCode, message: &str) -> HttpResponse {
    problem(status, message, &FieldErrors::default())
}

/// A passkey step's refusal: as problem+json with the status `error.rs` gives it (the script
/// shows `detail`); a database failure stays an error of the app.
fn refusal(error: impl Into<AppError>) -> Result<HttpResponse, AppError> {
    match error.into() {
        refused @ (AppError::Invalid(_) | AppError::Conflict(_)) => {
            Ok(refused_with(refused.status_code(), &refused.to_string()))
        }
        other => Err(other),
    }
}

fn relying_party(state: &AppState) -> Result<std::sync::Arc<Webauthn>, PasskeyError> {
    state.passkeys.clone().ok_or(PasskeyError::Unavailable)
}

/// Where the script goes once a step is done.
fn go_to(path: &str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({ "redirect": path }))
}

fn keep<T: serde::Serialize>(session: &Session, key: &str, value: &T) -> Result<(), AppError> {
    session
        .insert(key, value)
        .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))
}

/// What the script sends to start a registration: the person's password, which confirms it
/// (a session left open, or taken, must not add a lasting factor of its own).
#[derive(Deserialize, Default)]
#[serde(default)]
pub struct Confirmation {
    password: Secret,
}

/// POST /account/passkeys/options: the options of a new passkey (two-step sign-in on, the
/// password right; counted like a sign-in).
pub async fn registration_options(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let webauthn = match relying_party(&state) {
        Ok(webauthn) => webauthn,
        Err(error) => return refusal(error),
    };
    // The options first (they refuse a person without two-step sign-in), then the password;
    // the challenge is kept only once both passed.
    let started = service::start_passkey_registration(&state.pool, webauthn, &user).await;
    let (options, registration) = match started {
        Ok(started) => started,
        Err(error @ AuthError::Passkey(_)) => return refusal(error),
        Err(error) => return Err(error.into()),
    };
    let confirmation: Confirmation = serde_json::from_slice(&body).unwrap_or_default();
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    if !service::own_password(guard(&state), &ip, &user, &confirmation.password).await? {
        let errors = FieldErrors::one("password", "This is not your password.");
        return Ok(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "This is not your password.",
            &errors,
        ));
    }
    keep(&session, passkey::REGISTRATION_KEY, &registration)?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(options))
}

/// What the script sends to finish a registration.
#[derive(Deserialize)]
pub struct NewPasskey {
    name: String,
    credential: RegisterPublicKeyCredential,
}

/// POST /account/passkeys: checks the authenticator's answer and keeps the passkey.
pub async fn register(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    body: web::Json<NewPasskey>,
) -> Result<HttpResponse, AppError> {
    let webauthn = match relying_party(&state) {
        Ok(webauthn) => webauthn,
        Err(error) => return refusal(error),
    };
    // The challenge answers once, whatever the outcome.
    let registration = session
        .remove_as::<PasskeyRegistration>(passkey::REGISTRATION_KEY)
        .and_then(Result::ok);
    let Some(registration) = registration else {
        return refusal(PasskeyError::NoCeremony);
    };
    let NewPasskey { name, credential } = body.into_inner();
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let added = service::add_passkey(
        &state.pool,
        webauthn,
        &ip,
        &user,
        name,
        credential,
        registration,
    )
    .await;
    match added {
        Ok(()) => {
            flash::success(
                &session,
                "The passkey was added: sign in with it next time.",
            );
            Ok(go_to("/account/mfa"))
        }
        Err(error @ AuthError::Passkey(_)) => refusal(error),
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RemoveForm {
    password: Secret,
}

/// POST /account/passkeys/{id}/delete: removes one of the person's passkeys; the password
/// confirms it (counted like a sign-in).
pub async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    path: web::Path<String>,
    form: web::Form<RemoveForm>,
) -> Result<HttpResponse, AppError> {
    let passkey_id: i64 = path.parse().map_err(|_| AppError::NotFound)?;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let removal =
        service::remove_passkey(guard(&state), &ip, &user, passkey_id, &form.password).await?;
    let name = match removal {
        Removal::Removed(name) => name,
        Removal::WrongPassword => {
            let refused = Some((passkey_id, "This is not your password.".into()));
            let errors = FieldErrors::default();
            return render_mfa_refusing(&state, &session, &user, errors, refused).await;
        }
    };
    flash::success(&session, format!("The passkey “{name}” was removed."));
    Ok(see_other("/account/mfa"))
}

/// POST /login/mfa/passkey/options: the options of a sign-in with one of the waiting
/// person's passkeys.
pub async fn sign_in_options(
    state: web::Data<AppState>,
    session: Session,
) -> Result<HttpResponse, AppError> {
    let webauthn = match relying_party(&state) {
        Ok(webauthn) => webauthn,
        Err(error) => return refusal(error),
    };
    let Some(waiting) = pending(&session) else {
        return Ok(refused_with(StatusCode::UNAUTHORIZED, SIGN_IN_EXPIRED));
    };
    let started = service::start_passkey_sign_in(&state.pool, webauthn, waiting.user_id).await;
    match started {
        Ok(Some((options, authentication))) => {
            keep(&session, passkey::AUTHENTICATION_KEY, &authentication)?;
            Ok(HttpResponse::Ok()
                .insert_header((header::CACHE_CONTROL, "no-store"))
                .json(options))
        }
        Ok(None) => Ok(refused_with(
            StatusCode::CONFLICT,
            "You have no passkey: enter the code from your authenticator app.",
        )),
        Err(error @ AuthError::Passkey(_)) => refusal(error),
        Err(error) => Err(error.into()),
    }
}

/// POST /login/mfa/passkey: the authenticator's answer finishes the sign-in; a refused
/// answer counts toward the sign-in limits like a wrong code.
pub async fn sign_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    body: web::Bytes,
) -> Result<HttpResponse, AppError> {
    let webauthn = match relying_party(&state) {
        Ok(webauthn) => webauthn,
        Err(error) => return refusal(error),
    };
    let step = match passkey_step(&req, &state, &session).await? {
        Ok(step) => step,
        Err(refused) => return Ok(refused),
    };
    // The challenge answers once, whatever the outcome.
    let authentication = session
        .remove_as::<PasskeyAuthentication>(passkey::AUTHENTICATION_KEY)
        .and_then(Result::ok);
    let Some(authentication) = authentication else {
        step.failed(&state, "passkey").await?;
        return refusal(PasskeyError::NoCeremony);
    };
    let user = step.user.id;
    // Read after the pending sign-in is found: signed out, the answer is 401 whatever the body.
    let Ok(answer) = serde_json::from_slice::<PublicKeyCredential>(&body) else {
        step.failed(&state, "passkey").await?;
        return Ok(refused_with(
            StatusCode::BAD_REQUEST,
            "The passkey's answer could not be read.",
        ));
    };
    let checked = service::check_passkey(&state.pool, webauthn, user, answer, authentication).await;
    passkey_answered(&state, &session, step, checked).await
}

/// The second step a passkey answers, counted; or the script's refusal (the sign-in expired,
/// or too many failures).
async fn passkey_step(
    req: &HttpRequest,
    state: &AppState,
    session: &Session,
) -> Result<Result<SecondStep, HttpResponse>, AppError> {
    Ok(match second_step(req, state, session).await? {
        Gate::Go(step) => Ok(step),
        Gate::Restart => Err(refused_with(StatusCode::UNAUTHORIZED, SIGN_IN_EXPIRED)),
        Gate::Blocked(seconds) => {
            let status = StatusCode::TOO_MANY_REQUESTS;
            let refused = refused_with(status, &too_many_failures(seconds));
            Err(retry_after(refused, seconds))
        }
    })
}

/// Finishes the sign-in after the passkey's check: where to go next, or the refusal (counted
/// like a wrong code); a database failure stays an error of the app.
async fn passkey_answered(
    state: &AppState,
    session: &Session,
    step: SecondStep,
    checked: Result<String, AuthError>,
) -> Result<HttpResponse, AppError> {
    match checked {
        Ok(_name) => {
            let next = step
                .passed(state, session, "passkey", Passed::Passkey)
                .await?;
            Ok(go_to(&next))
        }
        Err(AuthError::Passkey(PasskeyError::Database(error))) => Err(error.into()),
        Err(AuthError::Passkey(error)) => {
            step.failed(state, "passkey").await?;
            Ok(refused_with(StatusCode::UNAUTHORIZED, &error.to_string()))
        }
        Err(error) => Err(error.into()),
    }
}
