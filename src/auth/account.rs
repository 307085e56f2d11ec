//! The signed-in person's own pages (SPEC §12): `/account` (their details, their password),
//! `/account/mfa` (set up or turn off two-step sign-in, their passkeys), and the Partner's
//! requirement (`POST /organizations/mfa`). The second step of signing in is `second_step.rs`.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::Role;
use crate::auth::mfa::{self, Enrolment, MfaError, Requirement};
use crate::auth::passkey::{Listed, PasskeyError};
use crate::auth::routes::guard;
use crate::auth::service::{self, AuthError, RequirementChange};
use crate::auth::{CurrentUser, SettingUp};
use crate::crypto::Secret;
use crate::error::AppError;
use crate::startup::AppState;
use crate::web::form::FieldErrors;
use crate::web::{Page, client_ip, flash, html, html_with_status, see_other};

#[derive(Template)]
#[template(path = "account/show.html")]
struct AccountPage {
    page: Page,
    email: String,
    role: Role,
    mfa_on: bool,
    codes_left: i64,
    errors: FieldErrors,
}

#[derive(Template)]
#[template(path = "account/mfa.html")]
struct MfaPage {
    page: Page,
    /// The secret being set up (when two-step sign-in is off).
    enrolment: Option<Enrolment>,
    codes_left: i64,
    required: bool,
    errors: FieldErrors,
    /// The person's passkeys (only while two-step sign-in is on).
    passkeys: Vec<PasskeyRow>,
    /// Where passkeys work (`KEYHOLD_PUBLIC_URL`'s origin), or why they do not.
    passkey_origin: Result<String, String>,
}

/// A passkey on the two-step sign-in page, with the refusal of its removal form.
pub(super) struct PasskeyRow {
    id: i64,
    name: String,
    created: String,
    last_used: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "account/recovery_codes.html")]
struct RecoveryCodesPage {
    page: Page,
    codes: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct CodeForm {
    pub(super) code: Secret,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DisableForm {
    password: Secret,
    code: Secret,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct PasswordForm {
    current_password: Secret,
    new_password: Secret,
}

async fn render_account(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let factor = service::account_factor(&state.pool, user.id()).await?;
    html_with_status(
        errors.status(),
        &AccountPage {
            page: Page::new(user, session, "account", "Your account"),
            email: user.identity.email.clone(),
            role: user.role(),
            mfa_on: factor.mfa_on,
            codes_left: factor.codes_left,
            errors,
        },
    )
}

/// GET /account
pub async fn show(
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
) -> Result<HttpResponse, AppError> {
    render_account(&state, &session, &user, FieldErrors::default()).await
}

/// POST /account/password
pub async fn change_password(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, AppError> {
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let (current, new) = (&form.current_password, &form.new_password);
    match service::change_password(guard(&state), &ip, &user, current, new).await {
        Ok(()) => {}
        Err(AuthError::Invalid(errors)) => {
            return render_account(&state, &session, &user, errors).await;
        }
        Err(error) => return Err(error.into()),
    }
    session.renew();
    flash::success(
        &session,
        "Your password was changed; you were signed out everywhere else.",
    );
    Ok(see_other("/account"))
}

pub(super) async fn render_mfa(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    render_mfa_refusing(state, session, user, errors, None).await
}

/// The two-step sign-in page, with `refused` (a passkey's id and why its removal was refused)
/// shown beside that passkey's form.
pub(super) async fn render_mfa_refusing(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    errors: FieldErrors,
    refused: Option<(i64, String)>,
) -> Result<HttpResponse, AppError> {
    let settings = service::factor_settings(&state.pool, &state.settings.keyring, user).await?;
    let status = if errors.is_empty() && refused.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let passkey_origin = match state.passkeys {
        Some(_) => Ok(state.settings.public_url.origin().ascii_serialization()),
        None => Err(PasskeyError::Unavailable.to_string()),
    };
    let page = MfaPage {
        page: Page::new(user, session, "account", "Two-step sign-in"),
        enrolment: settings.enrolment,
        codes_left: settings.codes_left,
        required: settings.required,
        errors,
        passkeys: passkey_rows(settings.passkeys, refused),
        passkey_origin,
    };
    // The page shows a secret while it is being set up.
    no_store(html_with_status(status, &page)?)
}

/// The passkeys as the page lists them, `refused` beside the one it names.
fn passkey_rows(passkeys: Vec<Listed>, refused: Option<(i64, String)>) -> Vec<PasskeyRow> {
    passkeys
        .into_iter()
        .map(|listed| PasskeyRow {
            error: refused
                .as_ref()
                .filter(|(passkey, _)| *passkey == listed.id)
                .map(|(_, message)| message.clone()),
            id: listed.id,
            name: listed.name,
            created: crate::web::words::ago(listed.created_at),
            last_used: listed
                .last_used_at
                .map_or_else(|| "never".to_string(), crate::web::words::ago),
        })
        .collect()
}

/// A page that shows a secret is not kept by the browser.
fn no_store(mut response: HttpResponse) -> Result<HttpResponse, AppError> {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// GET /account/mfa
pub async fn mfa_page(
    state: web::Data<AppState>,
    session: Session,
    user: SettingUp,
) -> Result<HttpResponse, AppError> {
    render_mfa(&state, &session, &user.0, FieldErrors::default()).await
}

/// POST /account/mfa: confirms the secret with a code; answers the recovery codes once.
pub async fn mfa_enable(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: SettingUp,
    form: web::Form<CodeForm>,
) -> Result<HttpResponse, AppError> {
    let user = user.0;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let keyring = &state.settings.keyring;
    let codes = match service::enable_factor(&state.pool, keyring, &ip, &user, &form.code).await {
        Ok(codes) => codes,
        Err(AuthError::Mfa(MfaError::WrongCode)) => {
            let errors = FieldErrors::one("code", MfaError::WrongCode);
            return render_mfa(&state, &session, &user, errors).await;
        }
        Err(error) => return Err(error.into()),
    };
    session.remove(mfa::SETUP_KEY);
    session.renew();
    flash::success(
        &session,
        "Two-step sign-in is on; you were signed out everywhere else.",
    );
    no_store(html(&RecoveryCodesPage {
        page: Page::new(&user, &session, "account", "Your recovery codes"),
        codes,
    })?)
}

/// POST /account/mfa/disable: needs the password and a current code (or a recovery code).
pub async fn mfa_disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<DisableForm>,
) -> Result<HttpResponse, AppError> {
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let (keyring, password, code) = (&state.settings.keyring, &form.password, &form.code);
    match service::disable_factor(guard(&state), keyring, &ip, &user, password, code).await {
        Ok(()) => {
            flash::success(&session, "Two-step sign-in is off.");
            Ok(see_other("/account"))
        }
        Err(AuthError::Invalid(errors)) => render_mfa(&state, &session, &user, errors).await,
        Err(error) => Err(error.into()),
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct RequirementForm {
    required: String,
    organization_id: String,
}

/// POST /organizations/mfa: a Partner requires a second factor of everyone in the partner
/// account (`partner`), of one organization (`organization`), or stops requiring it (`off`).
pub async fn enforce(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<RequirementForm>,
) -> Result<HttpResponse, AppError> {
    user.require(&[Role::Partner])?;
    let change = RequirementChange::parse(&form.required, &form.organization_id)?;
    let requirement = change.requirement;
    let ip = client_ip(&req, &state.settings.trusted_proxies);
    let actor_protected = service::require_factor(&state.pool, &ip, &user, change).await?;
    // Tokens revoked by the requirement stop answering here at once.
    state.token_uses.forget();
    flash::success(&session, required_words(requirement));
    // People it now covers who have no factor were signed out; the Partner who set it is
    // taken to the setup instead.
    if requirement == Requirement::Partner && !actor_protected {
        session
            .insert(mfa::SETUP_KEY, true)
            .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))?;
        return Ok(see_other("/account/mfa"));
    }
    Ok(see_other("/organizations"))
}

/// What the flash says of a new requirement.
fn required_words(requirement: Requirement) -> &'static str {
    match requirement {
        Requirement::Partner => "Everyone in your partner account now needs two-step sign-in.",
        Requirement::Organization(_) => "Everyone in that organization now needs two-step sign-in.",
        Requirement::Off(_) => "Two-step sign-in is no longer required there.",
    }
}
