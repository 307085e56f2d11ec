//! The use cases of signing in: the password (counted against the sign-in limits), the second
//! step (a code or a passkey) and signing out; a person's own security settings (the password,
//! the second factor, passkeys, the Partner's requirement) are `settings`. Each owns its
//! queries and its audit rows; the pages (`routes`, `second_step`, `account`,
//! `passkey_pages`) keep the session.

use std::sync::Arc;

use diesel::result::Error as DieselError;
use webauthn_rs::Webauthn;
use webauthn_rs::prelude::{PasskeyAuthentication, PublicKeyCredential, RequestChallengeResponse};

use crate::accounts::model::User;
use crate::audit::NewEvent;
use crate::auth::CurrentUser;
use crate::auth::mfa::{self, MfaError, Passed};
use crate::auth::passkey::{self, PasskeyError};
use crate::auth::throttle::Attempt;
use crate::config::LoginLimits;
use crate::crypto::password::{HashError, PasswordHasher};
use crate::crypto::{Keyring, Secret};
use crate::db::{self, DbPool, RunError};
use crate::ids::UserId;
use crate::web::form::FieldErrors;

mod settings;

pub use settings::{
    AccountFactor, FactorSettings, Removal, RequirementChange, account_factor, add_passkey,
    change_password, disable_factor, enable_factor, factor_settings, own_password, remove_passkey,
    require_factor, start_passkey_registration,
};

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
