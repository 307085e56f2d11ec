//! Who is asking and what they may reach: roles, the `Scope` every query takes, and the
//! `CurrentUser` extractor built from the server-side session (no extra query per request).

pub mod account;
pub mod csrf;
pub mod mfa;
pub mod passkey;
pub mod passkey_pages;
pub mod routes;
pub mod second_step;
pub mod service;
pub mod throttle;

use std::future::{Ready, ready};
use std::time::Duration;

use actix_session::{Session, SessionExt};
use actix_web::{FromRequest, HttpRequest, dev::Payload};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::accounts::model::User;
use crate::error::AppError;
use crate::ids::{OrganizationId, PartnerId, UserId};

/// Session keys.
const IDENTITY_KEY: &str = "identity";
/// Unix seconds of the last request that extended the session.
const SEEN_KEY: &str = "seen";

/// How often an active session is extended (its row written), instead of on every request: a
/// tenth of the idle timeout, at most a minute. The row lives this much longer than the idle
/// timeout (`session_ttl`), so a person active at any moment since the last write keeps at
/// least the whole idle timeout from then; idle sessions end at most this late.
pub fn extend_every(idle: Duration) -> Duration {
    (idle / 10).clamp(Duration::from_secs(1), Duration::from_secs(60))
}

/// How long a session row lives after its last write: the idle timeout plus `extend_every`.
pub fn session_ttl(idle: Duration) -> Duration {
    idle + extend_every(idle)
}

pub use crate::access::{Role, Scope};

/// Who is signed in, as kept in the session at sign-in. Disabling a person deletes their
/// sessions, so this never outlives a revocation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Identity {
    pub user_id: UserId,
    pub partner_id: PartnerId,
    pub organization_id: Option<OrganizationId>,
    pub role: Role,
    pub email: String,
    pub display_name: String,
    /// Unix seconds of sign-in, for the absolute session timeout.
    pub signed_in_at: i64,
}

impl Identity {
    /// The identity recorded when `user` signs in now.
    pub fn of(user: &User) -> Identity {
        Identity {
            user_id: user.id,
            partner_id: user.partner_id,
            organization_id: user.organization_id,
            role: user.role,
            email: user.email.clone(),
            display_name: user.display_name.clone(),
            signed_in_at: Utc::now().timestamp(),
        }
    }

    /// Stores the identity in a freshly renewed session.
    pub fn store(&self, session: &Session) -> Result<(), AppError> {
        session
            .insert(IDENTITY_KEY, self)
            .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))?;
        session
            .insert(crate::session_store::USER_ID_KEY, self.user_id.0)
            .map_err(|error| AppError::internal(anyhow::anyhow!("{error}")))
    }
}

/// The signed-in person, extracted from the session; signed-out requests get `SignInRequired`.
#[derive(Clone, Debug)]
pub struct CurrentUser {
    pub identity: Identity,
    /// The name of the API token acting for the person (`None` for a signed-in session).
    pub token: Option<String>,
}

impl CurrentUser {
    /// The person as an API token named `token` acts for them.
    pub fn with_token(identity: Identity, token: String) -> CurrentUser {
        CurrentUser {
            identity,
            token: Some(token),
        }
    }

    pub fn id(&self) -> UserId {
        self.identity.user_id
    }

    pub fn role(&self) -> Role {
        self.identity.role
    }

    /// The organizations this person may reach.
    pub fn scope(&self) -> Scope {
        match (self.identity.role, self.identity.organization_id) {
            (Role::Partner, _) | (_, None) => Scope::Partner(self.identity.partner_id),
            (_, Some(organization)) => Scope::Organization(organization),
        }
    }

    /// Refuses anyone whose role is not in `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), AppError> {
        if roles.contains(&self.identity.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden)
        }
    }

    /// The label audit rows use for this person (and the token acting for them).
    pub fn label(&self) -> String {
        match &self.token {
            Some(token) => format!("{} (token {token})", self.identity.email),
            None => self.identity.email.clone(),
        }
    }
}

impl crate::audit::Actor for CurrentUser {
    fn actor_id(&self) -> UserId {
        self.id()
    }

    fn actor_label(&self) -> String {
        self.label()
    }

    fn partner_id(&self) -> PartnerId {
        self.identity.partner_id
    }

    fn organization_id(&self) -> Option<OrganizationId> {
        self.identity.organization_id
    }
}

impl FromRequest for CurrentUser {
    type Error = AppError;
    type Future = Ready<Result<CurrentUser, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(current_user(req, false))
    }
}

/// A signed-in person who may still owe the second-factor setup their partner account
/// requires: only the setup page and signing out take it.
#[derive(Clone, Debug)]
pub struct SettingUp(pub CurrentUser);

impl FromRequest for SettingUp {
    type Error = AppError;
    type Future = Ready<Result<SettingUp, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(current_user(req, true).map(SettingUp))
    }
}

/// How long sessions live (`KEYHOLD_SESSION_ABSOLUTE_HOURS`, `KEYHOLD_SESSION_IDLE_MINUTES`),
/// given to the app as data by `startup`.
#[derive(Clone, Copy, Debug)]
pub struct SessionTimeouts {
    pub absolute: Duration,
    pub idle: Duration,
}

fn current_user(req: &HttpRequest, setting_up: bool) -> Result<CurrentUser, AppError> {
    let session = req.get_session();
    let identity = match session.get::<Identity>(IDENTITY_KEY) {
        Ok(Some(identity)) => identity,
        // Half signed in: the password was right, the code is owed. Nothing else opens.
        _ if matches!(session.get::<mfa::Pending>(mfa::PENDING_KEY), Ok(Some(_))) => {
            return Err(AppError::SecondFactorRequired);
        }
        _ => return Err(AppError::SignInRequired),
    };
    if !setting_up && matches!(session.get::<bool>(mfa::SETUP_KEY), Ok(Some(true))) {
        return Err(AppError::SecondFactorSetup);
    }
    let Some(timeouts) = req.app_data::<actix_web::web::Data<SessionTimeouts>>() else {
        return Err(AppError::internal(anyhow::anyhow!(
            "the app was built without its session timeouts"
        )));
    };
    let (absolute, idle) = (timeouts.absolute, timeouts.idle);
    let absolute = absolute.as_secs() as i64;
    let now = Utc::now().timestamp();
    if now - identity.signed_in_at > absolute {
        session.purge();
        return Err(AppError::SignInRequired);
    }
    // The idle timeout counts from the last write of the session: rewrite it every
    // `extend_every` while the person is active, instead of on every request.
    let seen = session.get::<i64>(SEEN_KEY).ok().flatten().unwrap_or(0);
    if now - seen >= extend_every(idle).as_secs() as i64 {
        let _ = session.insert(SEEN_KEY, now);
    }
    Ok(CurrentUser {
        identity,
        token: None,
    })
}
