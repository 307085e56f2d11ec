//! A person's own security settings: their password (checked like a sign-in), the second
//! factor (TOTP and recovery codes), passkeys, and the Partner's requirement of a second factor
//! for an organization or everyone.

use std::sync::Arc;

use diesel::result::Error as DieselError;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PasskeyRegistration, RegisterPublicKeyCredential,
};

use super::{AuthError, Guard};
use crate::accounts::model::User;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::auth::mfa::{self, Enrolment, MfaError, Requirement};
use crate::auth::passkey::{self, Listed, PasskeyError};
use crate::auth::throttle::Attempt;
use crate::crypto::password;
use crate::crypto::{Keyring, Secret};
use crate::db::{self, DbPool, RunError};
use crate::ids::{OrganizationId, UserId};
use crate::session_store;
use crate::web::form::FieldErrors;

/// Whether `password` is `user`'s own, counted like a sign-in from `ip` (a stolen session
/// cannot guess the password at hashing speed): `Throttled` past the limits.
pub async fn own_password(
    guard: Guard<'_>,
    ip: &str,
    user: &CurrentUser,
    password: &Secret,
) -> Result<bool, AuthError> {
    let limits = guard.limits;
    let (id, email) = (user.id(), user.identity.email.clone());
    let attempt = Attempt::new(ip, &email, &limits);
    let (blocked, found) = db::run(guard.pool, move |conn| {
        Ok::<_, DieselError>((attempt.count(conn, &limits)?, User::find_any(conn, id)?))
    })
    .await?;
    if let Some(seconds) = blocked {
        return Err(AuthError::Throttled(seconds));
    }
    let matches = guard
        .hasher
        .verify(password, Some(found.password_hash))
        .await?;
    if matches {
        let attempt = Attempt::new(ip, &email, &limits);
        db::run(guard.pool, move |conn| attempt.succeeded(conn)).await?;
    }
    Ok(matches)
}

/// A person's own audit event (its object the person).
fn own_event(user: &CurrentUser, ip: &str, action: &str) -> NewEvent {
    NewEvent::by(user, action, ip).object("user", user.id().0, &user.label())
}

/// The account page's second factor: whether it is on, and the recovery codes left.
pub struct AccountFactor {
    pub mfa_on: bool,
    pub codes_left: i64,
}

pub async fn account_factor(pool: &DbPool, user: UserId) -> Result<AccountFactor, AuthError> {
    Ok(db::run(pool, move |conn| {
        Ok::<_, DieselError>(AccountFactor {
            mfa_on: mfa::enabled(conn, user)?,
            codes_left: mfa::recovery_codes_left(conn, user)?,
        })
    })
    .await?)
}

/// Changes the person's own password (the current one confirms it, counted like a sign-in);
/// every session of theirs ends (the caller renews its own).
pub async fn change_password(
    guard: Guard<'_>,
    ip: &str,
    user: &CurrentUser,
    current: &Secret,
    new_password: &Secret,
) -> Result<(), AuthError> {
    let mut errors = FieldErrors::default();
    if !own_password(guard, ip, user, current).await? {
        errors.add("current_password", "This is not your current password.");
    }
    errors.check("new_password", password::check_new(new_password));
    if !errors.is_empty() {
        return Err(AuthError::Invalid(errors));
    }
    let hash = guard.hasher.hash(new_password).await?;
    let (id, event) = (user.id(), own_event(user, ip, "user.password_change"));
    db::run(guard.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            User::set_password_hash(conn, id, &hash)?;
            // Every other session of the person ends; this one goes on under a new key.
            session_store::revoke_all_for(conn, id)?;
            event.record(conn)
        })
    })
    .await?;
    Ok(())
}

/// What the two-step sign-in page shows of a person.
pub struct FactorSettings {
    /// The secret being set up (when two-step sign-in is off).
    pub enrolment: Option<Enrolment>,
    pub codes_left: i64,
    pub required: bool,
    pub passkeys: Vec<Listed>,
}

pub async fn factor_settings(
    pool: &DbPool,
    keyring: &Keyring,
    user: &CurrentUser,
) -> Result<FactorSettings, AuthError> {
    let (id, partner, organization) = (
        user.id(),
        user.identity.partner_id,
        user.identity.organization_id,
    );
    let keyring = keyring.clone();
    Ok(db::run(pool, move |conn| {
        let enrolment = if mfa::enabled(conn, id)? {
            None
        } else {
            Some(mfa::enrolment(conn, &keyring, id)?)
        };
        Ok::<_, MfaError>(FactorSettings {
            enrolment,
            codes_left: mfa::recovery_codes_left(conn, id)?,
            required: mfa::required(conn, partner, organization)?,
            passkeys: passkey::list(conn, id)?,
        })
    })
    .await?)
}

/// Turns the second factor on once `code` confirms the secret being set up; answers the
/// recovery codes. Sessions a password alone opened end (the caller renews its own).
pub async fn enable_factor(
    pool: &DbPool,
    keyring: &Keyring,
    ip: &str,
    user: &CurrentUser,
    code: &Secret,
) -> Result<Vec<String>, AuthError> {
    let (id, keyring) = (user.id(), keyring.clone());
    let code = code.expose().to_string();
    let event = own_event(user, ip, "mfa.enable");
    Ok(db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let codes = mfa::confirm(conn, &keyring, id, &code)?;
            session_store::revoke_all_for(conn, id)?;
            event.record(conn)?;
            Ok::<_, MfaError>(codes)
        })
    })
    .await?)
}

/// Turns the second factor off: refused while the partner account requires it; the password
/// (counted like a sign-in) and a current or recovery code confirm it. A wrong one is
/// `Invalid` beside `password` or `code`.
pub async fn disable_factor(
    guard: Guard<'_>,
    keyring: &Keyring,
    ip: &str,
    user: &CurrentUser,
    password: &Secret,
    code: &Secret,
) -> Result<(), AuthError> {
    let (id, partner, organization) = (
        user.id(),
        user.identity.partner_id,
        user.identity.organization_id,
    );
    let required = db::run(guard.pool, move |conn| {
        mfa::required(conn, partner, organization)
    })
    .await?;
    if required {
        return Err(AuthError::FactorRequired);
    }
    let mut errors = FieldErrors::default();
    if !own_password(guard, ip, user, password).await? {
        errors.add("password", "This is not your password.");
        return Err(AuthError::Invalid(errors));
    }
    let (keyring, code) = (keyring.clone(), code.expose().to_string());
    let event = own_event(user, ip, "mfa.disable");
    let removed = db::run(guard.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            mfa::check(conn, &keyring, id, &code)?;
            mfa::remove(conn, id)?;
            event.record(conn)?;
            Ok::<_, MfaError>(())
        })
    })
    .await;
    match removed {
        Err(RunError::Failed(MfaError::WrongCode)) => {
            errors.add("code", MfaError::WrongCode.to_string());
            Err(AuthError::Invalid(errors))
        }
        other => Ok(other?),
    }
}

/// A Partner's requirement of a second factor, as the form asks for it.
pub struct RequirementChange {
    pub requirement: Requirement,
    /// The organization the form names (checked to be the Partner's, and the audit row's).
    pub organization: Option<OrganizationId>,
}

impl RequirementChange {
    /// `required` is `partner`, `organization` (with `organization_id`) or `off`. An
    /// organization id that is no number is not found.
    pub fn parse(required: &str, organization_id: &str) -> Result<RequirementChange, AuthError> {
        let organization = match organization_id.trim() {
            "" => None,
            id => Some(
                id.parse::<i64>()
                    .map(OrganizationId)
                    .map_err(|_| AuthError::NotFound)?,
            ),
        };
        let requirement = match (required, organization) {
            ("partner", _) => Requirement::Partner,
            ("organization", Some(organization)) => Requirement::Organization(organization),
            ("off", organization) => Requirement::Off(organization),
            _ => return Err(AuthError::NoSuchRequirement),
        };
        Ok(RequirementChange {
            requirement,
            organization,
        })
    }
}

/// Sets the Partner's requirement of a second factor; the people it now covers without one
/// are signed out and their tokens revoked. Answers whether the Partner has a factor.
pub async fn require_factor(
    pool: &DbPool,
    ip: &str,
    user: &CurrentUser,
    change: RequirementChange,
) -> Result<bool, AuthError> {
    let RequirementChange {
        requirement,
        organization,
    } = change;
    let (partner, actor, scope) = (user.identity.partner_id, user.id(), user.scope());
    let event = NewEvent::by(user, "mfa.enforcement", ip)
        .in_organization(organization)
        .fields(&["required"]);
    Ok(db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            if let Some(organization) = organization {
                // Another partner account's organization is not found.
                crate::accounts::model::Organization::find(conn, &scope, organization)?;
            }
            mfa::set_required(conn, partner, requirement)?;
            mfa::end_unprotected_access(conn, partner, requirement, actor)?;
            event.record(conn)?;
            Ok::<_, AuthError>(mfa::enabled(conn, actor)?)
        })
    })
    .await?)
}

/// Starts registering a passkey of `user`: the browser's options and the state to keep.
pub async fn start_passkey_registration(
    pool: &DbPool,
    webauthn: Arc<Webauthn>,
    user: &CurrentUser,
) -> Result<(CreationChallengeResponse, PasskeyRegistration), AuthError> {
    let (id, email) = (user.id(), user.identity.email.clone());
    Ok(db::run(pool, move |conn| {
        passkey::start_registration(conn, &webauthn, id, &email)
    })
    .await?)
}

/// Keeps a new passkey of `user` named `name` once the authenticator's answer checks.
pub async fn add_passkey(
    pool: &DbPool,
    webauthn: Arc<Webauthn>,
    ip: &str,
    user: &CurrentUser,
    name: String,
    credential: RegisterPublicKeyCredential,
    registration: PasskeyRegistration,
) -> Result<(), AuthError> {
    let id = user.id();
    let added = own_event(user, ip, "mfa.passkey_add");
    let label = name.trim().to_string();
    Ok(db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let passkey_id = passkey::finish_registration(
                conn,
                &webauthn,
                id,
                &name,
                &credential,
                &registration,
            )?;
            added.object("passkey", passkey_id, &label).record(conn)?;
            Ok::<_, PasskeyError>(())
        })
    })
    .await?)
}

/// Why a passkey's removal was refused beside it.
pub enum Removal {
    /// Removed: its name.
    Removed(String),
    /// The password was wrong.
    WrongPassword,
}

/// Removes one of `user`'s passkeys; the password confirms it (counted like a sign-in).
/// Another person's passkey is not found.
pub async fn remove_passkey(
    guard: Guard<'_>,
    ip: &str,
    user: &CurrentUser,
    passkey_id: i64,
    password: &Secret,
) -> Result<Removal, AuthError> {
    let id = user.id();
    let theirs = db::run(guard.pool, move |conn| passkey::list(conn, id))
        .await?
        .into_iter()
        .find(|listed| listed.id == passkey_id)
        .ok_or(AuthError::NotFound)?;
    if !own_password(guard, ip, user, password).await? {
        return Ok(Removal::WrongPassword);
    }
    let event =
        own_event(user, ip, "mfa.passkey_remove").object("passkey", theirs.id, &theirs.name);
    let removed = db::run(guard.pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let removed = passkey::remove(conn, id, passkey_id)?;
            if removed.is_some() {
                event.record(conn)?;
            }
            Ok::<_, DieselError>(removed)
        })
    })
    .await?;
    match removed {
        Some(_) => Ok(Removal::Removed(theirs.name)),
        None => Err(AuthError::NotFound),
    }
}
