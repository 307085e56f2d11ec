//! The use cases of signing in and of a person's own security settings: the password (counted
//! against the sign-in limits), the second step (a code or a passkey), the second factor and
//! passkeys, and the Partner's requirement of a second factor. Each owns its queries and its
//! audit rows; the pages (`routes`, `second_step`, `account`, `passkey_pages`) keep the session.

use std::sync::Arc;

use diesel::result::Error as DieselError;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{
    CreationChallengeResponse, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse,
};

use crate::accounts::model::User;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::auth::mfa::{self, Enrolment, MfaError, Passed, Requirement};
use crate::auth::passkey::{self, Listed, PasskeyError};
use crate::auth::throttle::Attempt;
use crate::config::LoginLimits;
use crate::crypto::password::{self, HashError, PasswordHasher};
use crate::crypto::{Keyring, Secret};
use crate::db::{self, DbPool, RunError};
use crate::ids::{OrganizationId, UserId};
use crate::session_store;
use crate::web::form::FieldErrors;

/// Why a sign-in step or a change to a person's own security was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Not there, or not the person's (404).
    #[error("This page does not exist, or you do not have access to it.")]
    NotFound,
    /// The form's fields, with a message beside each wrong one (422).
    #[error("Correct the highlighted fields.")]
    Invalid(FieldErrors),
    /// Too many failed sign-ins: the seconds to wait (429).
    #[error("Too many attempts. Try again in {0} seconds.")]
    Throttled(u64),
    /// The partner account requires a second factor, so it stays on (409).
    #[error("Your partner account requires two-step sign-in: it cannot be turned off.")]
    FactorRequired,
    /// The requirement form named none of its choices (422).
    #[error("Choose partner, organization (with an organization) or off.")]
    NoSuchRequirement,
    #[error(transparent)]
    Mfa(#[from] MfaError),
    #[error(transparent)]
    Passkey(#[from] PasskeyError),
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] DieselError),
}

impl<E: Into<AuthError>> From<RunError<E>> for AuthError {
    fn from(error: RunError<E>) -> AuthError {
        match error {
            RunError::Unavailable(reason) => AuthError::Unavailable(reason),
            RunError::Failed(error) => error.into(),
        }
    }
}

/// What checks a password: the pool (which holds the sign-in counts), the hasher and the
/// sign-in limits.
#[derive(Clone, Copy)]
pub struct Guard<'a> {
    pub pool: &'a DbPool,
    pub hasher: &'a PasswordHasher,
    pub limits: LoginLimits,
}

/// Whether anyone signs in yet (before that, only the set-up page opens).
pub async fn anyone_signs_in(pool: &DbPool) -> Result<bool, AuthError> {
    Ok(db::run(pool, User::any_exists).await?)
}

/// What a password sign-in came to.
pub enum SignIn {
    /// Too many failures: the seconds to wait.
    Throttled(u64),
    /// A wrong email or password, or a disabled account (recorded).
    Refused,
    /// The password is right and the person has a second factor: its answer is owed.
    SecondStepOwed(User),
    /// Signed in (recorded); `setup_owed` when the partner account requires a factor the
    /// person lacks.
    SignedIn { user: User, setup_owed: bool },
}

/// A sign-in with `email` and `password` from `ip`. The attempt is counted before the password
/// is checked, so concurrent attempts cannot all pass.
pub async fn sign_in(
    guard: Guard<'_>,
    ip: &str,
    email: &str,
    password: &Secret,
) -> Result<SignIn, AuthError> {
    let limits = guard.limits;
    let attempt = Attempt::new(ip, email, &limits);
    let found = email.to_string();
    let (blocked, user) = db::run(guard.pool, move |conn| {
        Ok::<_, DieselError>((
            attempt.count(conn, &limits)?,
            User::find_by_email(conn, &found)?,
        ))
    })
    .await?;
    if let Some(seconds) = blocked {
        return Ok(SignIn::Throttled(seconds));
    }
    let matches = guard
        .hasher
        .verify(password, user.as_ref().map(|u| u.password_hash.clone()))
        .await?;
    match user {
        Some(user) if matches && !user.disabled => {
            let (id, partner, organization) = (user.id, user.partner_id, user.organization_id);
            let (has_factor, required) = db::run(guard.pool, move |conn| {
                Ok::<_, DieselError>((
                    mfa::enabled(conn, id)?,
                    mfa::required(conn, partner, organization)?,
                ))
            })
            .await?;
            // A person with a second factor owes its answer first (the sign-in count is
            // cleared only once it passes).
            if has_factor {
                return Ok(SignIn::SecondStepOwed(user));
            }
            let attempt = Attempt::new(ip, email, &limits);
            let event = signed_in_event(&user, ip, "session.sign_in");
            db::run(guard.pool, move |conn| {
                attempt.succeeded(conn)?;
                event.record(conn)
            })
            .await?;
            Ok(SignIn::SignedIn {
                user,
                setup_owed: required,
            })
        }
        user => {
            // A disabled account's right password is answered like a wrong one: the answer
            // must not tell whoever holds a password that it is right.
            let mut event = NewEvent {
                client_ip: Some(ip.to_string()),
                actor_label: email.trim().chars().take(254).collect(),
                ..NewEvent::system("session.sign_in_failed")
            };
            if let Some(user) = &user {
                event.partner_id = Some(user.partner_id);
                event.organization_id = user.organization_id;
                event = event.object("user", user.id.0, &user.email);
            }
            db::run(guard.pool, move |conn| event.record(conn)).await?;
            Ok(SignIn::Refused)
        }
    }
}

/// A sign-in's audit event, by the person signing in.
fn signed_in_event(user: &User, ip: &str, action: &str) -> NewEvent {
    NewEvent {
        actor_id: Some(user.id),
        actor_label: user.email.clone(),
        partner_id: Some(user.partner_id),
        organization_id: user.organization_id,
        client_ip: Some(ip.to_string()),
        ..NewEvent::system(action)
    }
    .object("user", user.id.0, &user.email)
}

/// Records `session.sign_out` of `user` from `ip`.
pub async fn sign_out(pool: &DbPool, user: &CurrentUser, ip: &str) -> Result<(), AuthError> {
    let event =
        NewEvent::by(user, "session.sign_out", ip).object("user", user.id().0, &user.label());
    Ok(db::run(pool, move |conn| event.record(conn)).await?)
}

/// What the second step of a waiting sign-in found.
pub enum Waiting {
    /// The attempt may go on: the person waiting.
    Go(User),
    /// The person was disabled meanwhile: sign in again.
    Disabled,
    /// Too many failures: the seconds to wait.
    Blocked(u64),
}

/// Counts an attempt at the second step of `user`'s sign-in from `ip` against the sign-in
/// limits (wrong codes and refused passkeys count like wrong passwords).
pub async fn second_step(guard: Guard<'_>, ip: &str, user: UserId) -> Result<Waiting, AuthError> {
    let limits = guard.limits;
    let user = db::run(guard.pool, move |conn| User::find_any(conn, user)).await?;
    let attempt = Attempt::new(ip, &user.email, &limits);
    let blocked = db::run(guard.pool, move |conn| attempt.count(conn, &limits)).await?;
    if let Some(seconds) = blocked {
        return Ok(Waiting::Blocked(seconds));
    }
    if user.disabled {
        return Ok(Waiting::Disabled);
    }
    Ok(Waiting::Go(user))
}

/// Whether `user` may answer the second step with a passkey.
pub async fn has_passkey(pool: &DbPool, user: UserId) -> Result<bool, AuthError> {
    Ok(db::run(pool, move |conn| passkey::any(conn, user)).await?)
}

/// Records a refused answer at the second step (`how`: `mfa` or `passkey`).
pub async fn second_step_failed(
    pool: &DbPool,
    user: &User,
    ip: &str,
    how: &str,
) -> Result<(), AuthError> {
    let failed = signed_in_event(user, ip, "session.sign_in_failed").fields(&[how]);
    Ok(db::run(pool, move |conn| failed.record(conn)).await?)
}

/// Finishes a sign-in whose second step passed (`how`: `mfa` or `passkey`): the attempts
/// forgiven and the sign-in recorded (and a recovery code's use).
pub async fn second_step_passed(
    guard: Guard<'_>,
    user: &User,
    ip: &str,
    how: &str,
    passed: Passed,
) -> Result<(), AuthError> {
    let attempt = Attempt::new(ip, &user.email, &guard.limits);
    let signed_in = signed_in_event(user, ip, "session.sign_in").fields(&[how]);
    let recovery = signed_in_event(user, ip, "mfa.recovery_code_used");
    db::run(guard.pool, move |conn| {
        attempt.succeeded(conn)?;
        signed_in.record(conn)?;
        if matches!(passed, Passed::RecoveryCode { .. }) {
            recovery.record(conn)?;
        }
        Ok::<_, DieselError>(())
    })
    .await?;
    Ok(())
}

/// Checks a code of `user`'s second factor (a current code, once, or a recovery code).
pub async fn check_code(
    pool: &DbPool,
    keyring: &Keyring,
    user: UserId,
    code: &Secret,
) -> Result<Passed, AuthError> {
    let (keyring, code) = (keyring.clone(), code.expose().to_string());
    Ok(db::run(pool, move |conn| mfa::check(conn, &keyring, user, &code)).await?)
}

/// Starts a sign-in with one of `user`'s passkeys; `None` when they have none.
pub async fn start_passkey_sign_in(
    pool: &DbPool,
    webauthn: Arc<Webauthn>,
    user: UserId,
) -> Result<Option<(RequestChallengeResponse, PasskeyAuthentication)>, AuthError> {
    Ok(db::run(pool, move |conn| {
        passkey::start_authentication(conn, &webauthn, user)
    })
    .await?)
}

/// Checks the authenticator's answer of `user`'s passkey sign-in.
pub async fn check_passkey(
    pool: &DbPool,
    webauthn: Arc<Webauthn>,
    user: UserId,
    answer: PublicKeyCredential,
    authentication: PasskeyAuthentication,
) -> Result<String, AuthError> {
    Ok(db::run(pool, move |conn| {
        passkey::finish_authentication(conn, &webauthn, user, &answer, &authentication)
    })
    .await?)
}

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
