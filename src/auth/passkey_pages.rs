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
use crate::auth::account::{event, own_password, render_mfa_refusing};
use crate::auth::mfa::Passed;
use crate::auth::passkey::{self, PasskeyError};
use crate::auth::second_step::{Gate, pending, second_step};
use crate::crypto::Secret;
use crate::db;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::problem::problem;
use crate::web::{flash, see_other};

/// A refusal as problem+json (the script shows `detail`).
fn refused_with(status: StatusCode, message: &str) -> HttpResponse {
    problem(status, message, &FieldErrors::default())
}

/// A passkey step's refusal: as problem+json with the status `error.rs` gives it (the script
/// shows `detail`); a database failure stays an error of the app.
fn refusal(error: PasskeyError) -> Result<HttpResponse, AppError> {
    match AppError::from(error) {
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
    let (id, email) = (user.id(), user.identity.email.clone());
    let started = db::run(&state.pool, move |conn| {
        passkey::start_registration(conn, &webauthn, id, &email)
    })
    .await;
    let (options, registration) = match started {
        Ok(started) => started,
        Err(db::RunError::Failed(error)) => return refusal(error),
        Err(error) => return Err(error.into()),
    };
    let confirmation: Confirmation = serde_json::from_slice(&body).unwrap_or_default();
    if !own_password(&state, &req, &user, &confirmation.password).await? {
        let mut errors = FieldErrors::default();
        errors.add("password", "This is not your password.");
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
    let id = user.id();
    let added_event = event(&state, &req, &user, "mfa.passkey_add");
    let label = name.trim().to_string();
    let added = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let passkey_id = passkey::finish_registration(
                conn,
                &webauthn,
                id,
                &name,
                &credential,
                &registration,
            )?;
            added_event
                .object("passkey", passkey_id, &label)
                .record(conn)?;
            Ok::<_, PasskeyError>(())
        })
    })
    .await;
    match added {
        Ok(()) => {
            flash::success(
                &session,
                "The passkey was added: sign in with it next time.",
            );
            Ok(go_to("/account/mfa"))
        }
        Err(db::RunError::Failed(error)) => refusal(error),
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
    let id = user.id();
    let theirs = db::run(&state.pool, move |conn| passkey::list(conn, id))
        .await?
        .into_iter()
        .find(|listed| listed.id == passkey_id)
        .ok_or(AppError::NotFound)?;
    if !own_password(&state, &req, &user, &form.password).await? {
        return render_mfa_refusing(
            &state,
            &session,
            &user,
            FieldErrors::default(),
            Some((passkey_id, "This is not your password.".into())),
        )
        .await;
    }
    let event =
        event(&state, &req, &user, "mfa.passkey_remove").object("passkey", theirs.id, &theirs.name);
    let removed = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let removed = passkey::remove(conn, id, passkey_id)?;
            if removed.is_some() {
                event.record(conn)?;
            }
            Ok::<_, diesel::result::Error>(removed)
        })
    })
    .await?;
    if removed.is_none() {
        return Err(AppError::NotFound);
    }
    flash::success(
        &session,
        format!("The passkey “{}” was removed.", theirs.name),
    );
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
        return Ok(refused_with(
            StatusCode::UNAUTHORIZED,
            "The sign-in expired: enter your password again.",
        ));
    };
    let user = waiting.user_id;
    let started = db::run(&state.pool, move |conn| {
        passkey::start_authentication(conn, &webauthn, user)
    })
    .await;
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
        Err(db::RunError::Failed(error)) => refusal(error),
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
    let step = match second_step(&req, &state, &session).await? {
        Gate::Go(step) => step,
        Gate::Restart => {
            return Ok(refused_with(
                StatusCode::UNAUTHORIZED,
                "The sign-in expired: enter your password again.",
            ));
        }
        Gate::Blocked(seconds) => {
            let mut response = refused_with(
                StatusCode::TOO_MANY_REQUESTS,
                &format!("Too many failed sign-ins. Try again in {seconds} seconds."),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, seconds.into());
            return Ok(response);
        }
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
    let checked = db::run(&state.pool, move |conn| {
        passkey::finish_authentication(conn, &webauthn, user, &answer, &authentication)
    })
    .await;
    match checked {
        Ok(_name) => {
            let next = step
                .passed(&state, &session, "passkey", Passed::Passkey)
                .await?;
            Ok(go_to(&next))
        }
        Err(db::RunError::Failed(PasskeyError::Database(error))) => Err(error.into()),
        Err(db::RunError::Failed(error)) => {
            step.failed(&state, "passkey").await?;
            Ok(refused_with(StatusCode::UNAUTHORIZED, &error.to_string()))
        }
        Err(error) => Err(error.into()),
    }
}
