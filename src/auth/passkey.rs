//! Passkeys (SPEC §12; WebAuthn with `webauthn-rs`): a person with two-step sign-in on may
//! register passkeys and then finish a sign-in with one instead of typing the code. TOTP stays
//! the factor everyone has: it is the way in without JavaScript and what the recovery codes
//! stand for, so passkeys are added only while it is on and go with it when it is turned off
//! or reset.
//!
//! The relying party is `KEYHOLD_PUBLIC_URL` (its host is the RP id: a domain name or
//! `localhost`, never an IP address, which WebAuthn refuses). A ceremony's state (the
//! challenge) is kept in the server-side session between its two requests and taken out by
//! the second, so a challenge answers once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use webauthn_rs::prelude::{
    CreationChallengeResponse, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid,
    Webauthn, WebauthnBuilder,
};

use crate::auth::mfa;
use crate::ids::UserId;
use crate::schema::passkeys;

/// The session key of a registration waiting for the authenticator's answer.
pub const REGISTRATION_KEY: &str = "passkey_registration";
/// The session key of a sign-in waiting for the authenticator's answer.
pub const AUTHENTICATION_KEY: &str = "passkey_authentication";
/// Passkeys a person may keep.
pub const MAX_PER_PERSON: i64 = 10;

/// Why a passkey step was refused.
#[derive(Debug, thiserror::Error)]
pub enum PasskeyError {
    #[error(
        "Passkeys need keyhold to be reached at a domain name: set KEYHOLD_PUBLIC_URL \
         (e.g. https://keyhold.example.com)."
    )]
    Unavailable,
    #[error(
        "Turn on two-step sign-in with an authenticator app first: it stays your way in \
         without JavaScript, and your recovery codes stand for it."
    )]
    NeedsTotp,
    #[error("You have {MAX_PER_PERSON} passkeys: remove one first.")]
    TooMany,
    #[error("Give the passkey a name (at most 60 characters).")]
    BadName,
    #[error("This passkey is registered already.")]
    Duplicate,
    #[error("The request expired or was answered already: start again.")]
    NoCeremony,
    #[error("The passkey was not accepted ({0}).")]
    Refused(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error("a stored passkey cannot be read: {0}")]
    Stored(#[from] serde_json::Error),
}

/// The relying party of `public_url`, or `None` when its host cannot be one (an IP address).
pub fn relying_party(public_url: &Url) -> Option<Webauthn> {
    let host = public_url.host_str()?;
    if host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[') {
        return None;
    }
    WebauthnBuilder::new(host, public_url)
        .ok()?
        .rp_name("keyhold")
        .build()
        .ok()
}

/// The WebAuthn user handle of a person: stable, and naming nothing but keyhold's own id.
fn user_handle(user: UserId) -> Uuid {
    Uuid::from_u64_pair(0x6b65_7968_6f6c_6400, user.0 as u64)
}

/// A passkey as the account page lists it.
#[derive(Queryable, Debug, Clone)]
pub struct Listed {
    pub id: i64,
    pub name: String,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
}

/// A person's passkeys, oldest first.
pub fn list(conn: &mut PgConnection, user: UserId) -> QueryResult<Vec<Listed>> {
    passkeys::table
        .filter(passkeys::user_id.eq(user))
        .order(passkeys::id)
        .select((
            passkeys::id,
            passkeys::name,
            passkeys::created_at,
            passkeys::last_used_at,
        ))
        .load(conn)
}

/// Whether a person has a passkey.
pub fn any(conn: &mut PgConnection, user: UserId) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        passkeys::table.filter(passkeys::user_id.eq(user)),
    ))
    .get_result(conn)
}

/// A person's passkeys as webauthn-rs takes them, with their row ids.
fn stored(conn: &mut PgConnection, user: UserId) -> Result<Vec<(i64, Passkey)>, PasskeyError> {
    let rows: Vec<(i64, String)> = passkeys::table
        .filter(passkeys::user_id.eq(user))
        .select((passkeys::id, passkeys::credential))
        .load(conn)?;
    rows.into_iter()
        .map(|(id, json)| Ok((id, serde_json::from_str(&json)?)))
        .collect()
}

/// Starts registering a passkey for `user` (two-step sign-in must be on): what the browser
/// passes to `navigator.credentials.create`, and the state to keep until the answer.
pub fn start_registration(
    conn: &mut PgConnection,
    webauthn: &Webauthn,
    user: UserId,
    email: &str,
) -> Result<(CreationChallengeResponse, PasskeyRegistration), PasskeyError> {
    if !mfa::enabled(conn, user)? {
        return Err(PasskeyError::NeedsTotp);
    }
    let existing = stored(conn, user)?;
    if existing.len() as i64 >= MAX_PER_PERSON {
        return Err(PasskeyError::TooMany);
    }
    let exclude = existing
        .iter()
        .map(|(_, passkey)| passkey.cred_id().clone())
        .collect();
    webauthn
        .start_passkey_registration(user_handle(user), email, email, Some(exclude))
        .map_err(|error| PasskeyError::Refused(error.to_string()))
}

/// Checks the authenticator's answer to `state` and keeps the passkey under `name`; answers
/// its row id.
pub fn finish_registration(
    conn: &mut PgConnection,
    webauthn: &Webauthn,
    user: UserId,
    name: &str,
    answer: &RegisterPublicKeyCredential,
    state: &PasskeyRegistration,
) -> Result<i64, PasskeyError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 60 || name.chars().any(char::is_control) {
        return Err(PasskeyError::BadName);
    }
    let passkey = webauthn
        .finish_passkey_registration(answer, state)
        .map_err(|error| PasskeyError::Refused(error.to_string()))?;
    conn.transaction(|conn| {
        // Two-step sign-in may have been turned off between the two requests.
        if !mfa::enabled(conn, user)? {
            return Err(PasskeyError::NeedsTotp);
        }
        let count: i64 = passkeys::table
            .filter(passkeys::user_id.eq(user))
            .count()
            .get_result(conn)?;
        if count >= MAX_PER_PERSON {
            return Err(PasskeyError::TooMany);
        }
        diesel::insert_into(passkeys::table)
            .values((
                passkeys::user_id.eq(user),
                passkeys::name.eq(name),
                passkeys::credential_id.eq(URL_SAFE_NO_PAD.encode(&passkey.cred_id()[..])),
                passkeys::credential.eq(serde_json::to_string(&passkey)?),
            ))
            .returning(passkeys::id)
            .get_result(conn)
            .map_err(|error| {
                if crate::db_errors::unique_violation(&error, "passkeys_credential_once") {
                    PasskeyError::Duplicate
                } else {
                    error.into()
                }
            })
    })
}

/// Starts a sign-in with one of `user`'s passkeys; `None` when they have none.
pub fn start_authentication(
    conn: &mut PgConnection,
    webauthn: &Webauthn,
    user: UserId,
) -> Result<Option<(RequestChallengeResponse, PasskeyAuthentication)>, PasskeyError> {
    let passkeys: Vec<Passkey> = stored(conn, user)?
        .into_iter()
        .map(|(_, passkey)| passkey)
        .collect();
    if passkeys.is_empty() {
        return Ok(None);
    }
    webauthn
        .start_passkey_authentication(&passkeys)
        .map(Some)
        .map_err(|error| PasskeyError::Refused(error.to_string()))
}

/// Checks the authenticator's signature over the challenge of `state` with `user`'s passkey
/// (user verification required; a signature counter that went back is refused), then keeps
/// the new counter and the time of use. Answers the passkey's name.
pub fn finish_authentication(
    conn: &mut PgConnection,
    webauthn: &Webauthn,
    user: UserId,
    answer: &PublicKeyCredential,
    state: &PasskeyAuthentication,
) -> Result<String, PasskeyError> {
    let result = webauthn
        .finish_passkey_authentication(answer, state)
        .map_err(|error| PasskeyError::Refused(error.to_string()))?;
    conn.transaction(|conn| {
        // The passkey must still be the person's (it may have been removed meanwhile).
        let Some((id, mut passkey)) = stored(conn, user)?
            .into_iter()
            .find(|(_, passkey)| passkey.cred_id() == result.cred_id())
        else {
            return Err(PasskeyError::Refused("unknown passkey".into()));
        };
        passkey.update_credential(&result);
        diesel::update(passkeys::table.find(id))
            .set((
                passkeys::credential.eq(serde_json::to_string(&passkey)?),
                passkeys::last_used_at.eq(Some(Utc::now())),
            ))
            .returning(passkeys::name)
            .get_result(conn)
            .map_err(PasskeyError::from)
    })
}

/// Removes one of `user`'s passkeys; answers its name, `None` when it is not theirs.
pub fn remove(conn: &mut PgConnection, user: UserId, id: i64) -> QueryResult<Option<String>> {
    diesel::delete(passkeys::table.find(id).filter(passkeys::user_id.eq(user)))
        .returning(passkeys::name)
        .get_result(conn)
        .optional()
}

/// Removes every passkey of `user` (two-step sign-in turned off or reset).
pub fn remove_all(conn: &mut PgConnection, user: UserId) -> QueryResult<usize> {
    diesel::delete(passkeys::table.filter(passkeys::user_id.eq(user))).execute(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relying_party_needs_a_domain_name() {
        let url = |text: &str| Url::parse(text).unwrap();
        assert!(relying_party(&url("http://localhost:8080")).is_some());
        assert!(relying_party(&url("https://keyhold.example.com")).is_some());
        assert!(relying_party(&url("http://127.0.0.1:8080")).is_none());
        assert!(relying_party(&url("http://[::1]:8080")).is_none());
    }

    #[test]
    fn user_handles_differ_by_person_and_stay_the_same() {
        assert_eq!(user_handle(UserId(7)), user_handle(UserId(7)));
        assert_ne!(user_handle(UserId(7)), user_handle(UserId(8)));
    }
}
