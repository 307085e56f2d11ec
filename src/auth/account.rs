//! The signed-in person's own pages (SPEC §12): `/account` (their details, their password),
//! `/account/mfa` (set up or turn off two-step sign-in, their passkeys), and the Partner's
//! requirement (`POST /organizations/mfa`). The second step of signing in is `second_step.rs`.

use actix_session::Session;
use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::access::Role;
use crate::accounts::model::User;
use crate::audit::NewEvent;
use crate::auth::mfa::{self, Enrolment, MfaError, Requirement};
use crate::auth::passkey::{self, PasskeyError};
use crate::auth::throttle::Attempt;
use crate::auth::{CurrentUser, SettingUp, password};
use crate::crypto::Secret;
use crate::db;
use crate::error::AppError;
use crate::ids::OrganizationId;
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

pub(super) fn event(
    state: &AppState,
    req: &HttpRequest,
    user: &CurrentUser,
    action: &str,
) -> NewEvent {
    NewEvent::by(
        user,
        action,
        &client_ip(req, &state.settings.trusted_proxies),
    )
    .object("user", user.id().0, &user.label())
}

/// Whether `password` is the signed-in person's own, counted like a sign-in (a stolen session
/// cannot guess the password at hashing speed): refused with 429 past the limits.
pub(super) async fn own_password(
    state: &AppState,
    req: &HttpRequest,
    user: &CurrentUser,
    password: &Secret,
) -> Result<bool, AppError> {
    let ip = client_ip(req, &state.settings.trusted_proxies);
    let limits = state.settings.login;
    let (id, email) = (user.id(), user.identity.email.clone());
    let attempt = Attempt::new(&ip, &email, &limits);
    let (blocked, found) = db::run(&state.pool, move |conn| {
        Ok::<_, diesel::result::Error>((attempt.count(conn, &limits)?, User::find_any(conn, id)?))
    })
    .await?;
    if let Some(seconds) = blocked {
        return Err(AppError::TooManyRequests {
            retry_after_secs: seconds,
        });
    }
    let matches = state
        .hasher
        .verify(password, Some(found.password_hash))
        .await?;
    if matches {
        let attempt = Attempt::new(&ip, &email, &limits);
        db::run(&state.pool, move |conn| attempt.succeeded(conn)).await?;
    }
    Ok(matches)
}

async fn render_account(
    state: &AppState,
    session: &Session,
    user: &CurrentUser,
    errors: FieldErrors,
) -> Result<HttpResponse, AppError> {
    let id = user.id();
    let (mfa_on, codes_left) = db::run(&state.pool, move |conn| {
        Ok::<_, diesel::result::Error>((
            mfa::enabled(conn, id)?,
            mfa::recovery_codes_left(conn, id)?,
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
        &AccountPage {
            page: Page::new(user, session, "account", "Your account"),
            email: user.identity.email.clone(),
            role: user.role(),
            mfa_on,
            codes_left,
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
    let id = user.id();
    let mut errors = FieldErrors::default();
    if !own_password(&state, &req, &user, &form.current_password).await? {
        errors.add("current_password", "This is not your current password.");
    }
    errors.check("new_password", password::check_new(&form.new_password));
    if !errors.is_empty() {
        return render_account(&state, &session, &user, errors).await;
    }
    let hash = state.hasher.hash(&form.new_password).await?;
    let event = event(&state, &req, &user, "user.password_change");
    db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            User::set_password_hash(conn, id, &hash)?;
            // Every other session of the person ends; this one goes on under a new key.
            crate::auth::session_store::revoke_all_for(conn, id)?;
            event.record(conn)
        })
    })
    .await?;
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
    let (id, partner, organization) = (
        user.id(),
        user.identity.partner_id,
        user.identity.organization_id,
    );
    let keyring = state.settings.keyring.clone();
    let (enrolment, codes_left, required, passkeys) = db::run(&state.pool, move |conn| {
        let enrolment = if mfa::enabled(conn, id)? {
            None
        } else {
            Some(mfa::enrolment(conn, &keyring, id)?)
        };
        Ok::<_, MfaError>((
            enrolment,
            mfa::recovery_codes_left(conn, id)?,
            mfa::required(conn, partner, organization)?,
            passkey::list(conn, id)?,
        ))
    })
    .await?;
    let status = if errors.is_empty() && refused.is_none() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let passkeys = passkeys
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
        .collect();
    let passkey_origin = match state.passkeys {
        Some(_) => Ok(state.settings.public_url.origin().ascii_serialization()),
        None => Err(PasskeyError::Unavailable.to_string()),
    };
    let mut response = html_with_status(
        status,
        &MfaPage {
            page: Page::new(user, session, "account", "Two-step sign-in"),
            enrolment,
            codes_left,
            required,
            errors,
            passkeys,
            passkey_origin,
        },
    )?;
    // The page shows a secret while it is being set up.
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
    let (id, keyring) = (user.id(), state.settings.keyring.clone());
    let code = form.code.expose().to_string();
    let event = event(&state, &req, &user, "mfa.enable");
    let confirmed = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let codes = mfa::confirm(conn, &keyring, id, &code)?;
            // Sessions a password alone opened end; this one goes on under a new key.
            crate::auth::session_store::revoke_all_for(conn, id)?;
            event.record(conn)?;
            Ok::<_, MfaError>(codes)
        })
    })
    .await;
    let codes = match confirmed {
        Ok(codes) => codes,
        Err(db::RunError::Failed(MfaError::WrongCode)) => {
            let mut errors = FieldErrors::default();
            errors.add("code", MfaError::WrongCode.to_string());
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
    let mut response = html(&RecoveryCodesPage {
        page: Page::new(&user, &session, "account", "Your recovery codes"),
        codes,
    })?;
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// POST /account/mfa/disable: needs the password and a current code (or a recovery code).
pub async fn mfa_disable(
    req: HttpRequest,
    state: web::Data<AppState>,
    session: Session,
    user: CurrentUser,
    form: web::Form<DisableForm>,
) -> Result<HttpResponse, AppError> {
    let (id, partner, organization) = (
        user.id(),
        user.identity.partner_id,
        user.identity.organization_id,
    );
    let required = db::run(&state.pool, move |conn| {
        mfa::required(conn, partner, organization)
    })
    .await?;
    if required {
        return Err(AppError::Conflict(
            "Your partner account requires two-step sign-in: it cannot be turned off.".into(),
        ));
    }
    let mut errors = FieldErrors::default();
    if !own_password(&state, &req, &user, &form.password).await? {
        errors.add("password", "This is not your password.");
        return render_mfa(&state, &session, &user, errors).await;
    }
    let (keyring, code) = (
        state.settings.keyring.clone(),
        form.code.expose().to_string(),
    );
    let event = event(&state, &req, &user, "mfa.disable");
    let removed = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            mfa::check(conn, &keyring, id, &code)?;
            mfa::remove(conn, id)?;
            event.record(conn)?;
            Ok::<_, MfaError>(())
        })
    })
    .await;
    match removed {
        Ok(()) => {
            flash::success(&session, "Two-step sign-in is off.");
            Ok(see_other("/account"))
        }
        Err(db::RunError::Failed(MfaError::WrongCode)) => {
            errors.add("code", MfaError::WrongCode.to_string());
            render_mfa(&state, &session, &user, errors).await
        }
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
    let organization = match form.organization_id.trim() {
        "" => None,
        id => Some(
            id.parse::<i64>()
                .map(OrganizationId)
                .map_err(|_| AppError::NotFound)?,
        ),
    };
    let requirement = match (form.required.as_str(), organization) {
        ("partner", _) => Requirement::Partner,
        ("organization", Some(organization)) => Requirement::Organization(organization),
        ("off", organization) => Requirement::Off(organization),
        _ => {
            return Err(AppError::Invalid(
                "Choose partner, organization (with an organization) or off.".into(),
            ));
        }
    };
    let (partner, actor) = (user.identity.partner_id, user.id());
    let scope = user.scope();
    let event = NewEvent::by(
        &user,
        "mfa.enforcement",
        &client_ip(&req, &state.settings.trusted_proxies),
    )
    .in_organization(organization)
    .fields(&["required"]);
    let actor_protected = db::run(&state.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            if let Some(organization) = organization {
                // Another partner account's organization is not found.
                crate::accounts::model::Organization::find(conn, &scope, organization)?;
            }
            mfa::set_required(conn, partner, requirement)?;
            mfa::end_unprotected_access(conn, partner, requirement, actor)?;
            event.record(conn)?;
            Ok::<_, AppError>(mfa::enabled(conn, actor)?)
        })
    })
    .await?;
    // Tokens revoked by the requirement stop answering here at once.
    state.token_uses.forget();
    flash::success(
        &session,
        match requirement {
            Requirement::Partner => {
                "Everyone in your partner account now needs two-step sign-in.".to_string()
            }
            Requirement::Organization(_) => {
                "Everyone in that organization now needs two-step sign-in.".to_string()
            }
            Requirement::Off(_) => "Two-step sign-in is no longer required there.".to_string(),
        },
    );
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
