//! Second factors (SPEC §12): TOTP (RFC 6238: SHA-1, 6 digits, 30 s, ±1 step, `totp-rs`) with
//! ten one-time recovery codes, and the enforcement a Partner sets for the partner account or
//! an organization. The secret is sealed with the keyring; a code is accepted once (the last
//! accepted time step is kept and only a later one passes, in one UPDATE); recovery codes are
//! kept as SHA-256 digests (50 random bits each) and used once.

use chrono::Utc;
use diesel::prelude::*;
use totp_rs::{Secret as TotpSecret, Totp};

use crate::crypto::{Keyring, random_bytes, sha256_hex};
use crate::ids::{OrganizationId, PartnerId, UserId};
use crate::schema::{organizations, partners, recovery_codes, users};

/// Recovery codes made at once.
pub const RECOVERY_CODES: usize = 10;

/// The session key of a person who gave the right password and still owes a code.
pub const PENDING_KEY: &str = "mfa_pending";
/// The session key of a person who must set up a second factor before anything else.
pub const SETUP_KEY: &str = "mfa_setup_required";

/// A sign-in waiting for its code: who, where to go next, and since when (Unix seconds).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Pending {
    pub user_id: UserId,
    pub next: String,
    pub since: i64,
}

/// How long a right password waits for its code.
pub const PENDING_SECONDS: i64 = 300;

/// Why a second-factor step was refused.
#[derive(Debug, thiserror::Error)]
pub enum MfaError {
    #[error("That code is not right, or was used already. Enter the current code.")]
    WrongCode,
    #[error("Two-step sign-in is already on.")]
    AlreadyOn,
    #[error("Two-step sign-in is not on.")]
    NotOn,
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
    #[error("the second factor cannot be opened with the configured keys")]
    Sealing(#[source] anyhow::Error),
}

/// The sealing context of a person's TOTP secret.
fn context(user: UserId) -> String {
    format!("user/{user}/totp")
}

/// The TOTP of `secret` for `email`, as authenticator apps take it.
pub fn totp(secret: &[u8], email: &str) -> Result<Totp, MfaError> {
    totp_rs::Builder::new()
        .with_secret(TotpSecret::from(secret.to_vec()))
        .with_account_name(email)
        .with_issuer(Some("keyhold"))
        .build()
        .map_err(|error| MfaError::Sealing(anyhow::anyhow!("{error}")))
}

/// What the setup page shows: the secret as text, the `otpauth://` URL, and its QR code as an
/// SVG data URL (no JavaScript, allowed by the CSP's `img-src data:`).
pub struct Enrolment {
    pub secret_base32: String,
    pub url: String,
    pub qr_data_url: String,
}

/// A person's second factor, as stored.
#[derive(Queryable, Debug, Clone)]
struct Stored {
    email: String,
    secret: Option<String>,
    pending: Option<String>,
}

fn stored(conn: &mut PgConnection, user: UserId) -> QueryResult<Stored> {
    users::table
        .find(user)
        .select((users::email, users::totp_secret, users::totp_pending))
        .first(conn)
}

/// Whether `user` has a second factor.
pub fn enabled(conn: &mut PgConnection, user: UserId) -> QueryResult<bool> {
    Ok(stored(conn, user)?.secret.is_some())
}

/// The secret being set up (made and kept sealed on the first visit, the same on reloads).
pub fn enrolment(
    conn: &mut PgConnection,
    keyring: &Keyring,
    user: UserId,
) -> Result<Enrolment, MfaError> {
    let found = stored(conn, user)?;
    if found.secret.is_some() {
        return Err(MfaError::AlreadyOn);
    }
    let secret = match &found.pending {
        Some(sealed) => {
            let text = keyring
                .open_text(sealed, &context(user))
                .map_err(MfaError::Sealing)?;
            hex::decode(text).map_err(|error| MfaError::Sealing(error.into()))?
        }
        None => {
            let secret = random_bytes(20);
            let sealed = keyring
                .seal_text(&hex::encode(&secret), &context(user))
                .map_err(MfaError::Sealing)?;
            diesel::update(users::table.find(user))
                .set(users::totp_pending.eq(Some(sealed)))
                .execute(conn)?;
            secret
        }
    };
    let totp = totp(&secret, &found.email)?;
    let url = totp
        .to_url()
        .map_err(|error| MfaError::Sealing(anyhow::anyhow!("{error}")))?;
    let svg = qrcode::QrCode::new(url.as_bytes())
        .map_err(|error| MfaError::Sealing(anyhow::anyhow!("{error}")))?
        .render::<qrcode::render::svg::Color>()
        .min_dimensions(200, 200)
        .build();
    use base64::Engine;
    Ok(Enrolment {
        secret_base32: totp.secret().to_base32(),
        url,
        qr_data_url: format!(
            "data:image/svg+xml;base64,{}",
            base64::engine::general_purpose::STANDARD.encode(svg)
        ),
    })
}

/// The time step `code` matches for `secret` now, if any.
fn matching_step(secret: &[u8], email: &str, code: &str) -> Result<Option<i64>, MfaError> {
    let now = Utc::now().timestamp().max(0) as u64;
    Ok(totp(secret, email)?
        .check(code.trim(), now)
        .map(|step| step as i64))
}

/// Confirms the secret being set up with a current code: it becomes the person's second
/// factor, and ten recovery codes are made and answered (shown once).
pub fn confirm(
    conn: &mut PgConnection,
    keyring: &Keyring,
    user: UserId,
    code: &str,
) -> Result<Vec<String>, MfaError> {
    conn.transaction(|conn| {
        let found = stored(conn, user)?;
        if found.secret.is_some() {
            return Err(MfaError::AlreadyOn);
        }
        let Some(sealed) = found.pending else {
            return Err(MfaError::WrongCode);
        };
        let secret = keyring
            .open_text(&sealed, &context(user))
            .and_then(|text| Ok(hex::decode(text)?))
            .map_err(MfaError::Sealing)?;
        let Some(step) = matching_step(&secret, &found.email, code)? else {
            return Err(MfaError::WrongCode);
        };
        diesel::update(users::table.find(user))
            .set((
                users::totp_secret.eq(Some(sealed)),
                users::totp_pending.eq(None::<String>),
                users::totp_enabled_at.eq(Some(Utc::now())),
                users::totp_last_step.eq(Some(step)),
            ))
            .execute(conn)?;
        Ok(new_recovery_codes(conn, user)?)
    })
}

/// Replaces a person's recovery codes with ten new ones; answers them.
fn new_recovery_codes(conn: &mut PgConnection, user: UserId) -> QueryResult<Vec<String>> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user))).execute(conn)?;
    let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| recovery_code()).collect();
    for code in &codes {
        diesel::insert_into(recovery_codes::table)
            .values((
                recovery_codes::user_id.eq(user),
                recovery_codes::code_hash.eq(sha256_hex(&normalized(code))),
            ))
            .execute(conn)?;
    }
    Ok(codes)
}

/// `xxxxx-xxxxx` in a lower-case alphabet without look-alikes (50 random bits).
fn recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghjkmnpqrstuvwxyz23456789";
    let bytes = random_bytes(10);
    let letters: String = bytes
        .iter()
        .map(|byte| ALPHABET[*byte as usize % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &letters[..5], &letters[5..])
}

/// A code as typed, compared without case, spaces or dashes.
fn normalized(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// How a sign-in's second step was passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Passed {
    Code,
    /// One of the person's passkeys (`passkey.rs`).
    Passkey,
    /// A recovery code, now used; how many are left.
    RecoveryCode {
        left: i64,
    },
}

/// Checks a code at sign-in (or to turn the factor off): a current TOTP code not accepted
/// before, or an unused recovery code (then used up).
pub fn check(
    conn: &mut PgConnection,
    keyring: &Keyring,
    user: UserId,
    code: &str,
) -> Result<Passed, MfaError> {
    conn.transaction(|conn| {
        let found = stored(conn, user)?;
        let Some(sealed) = found.secret else {
            return Err(MfaError::NotOn);
        };
        let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
            let secret = keyring
                .open_text(&sealed, &context(user))
                .and_then(|text| Ok(hex::decode(text)?))
                .map_err(MfaError::Sealing)?;
            let Some(step) = matching_step(&secret, &found.email, &digits)? else {
                return Err(MfaError::WrongCode);
            };
            // Only a step later than the last one accepted: a code works once.
            let accepted = diesel::update(
                users::table.find(user).filter(
                    users::totp_last_step
                        .is_null()
                        .or(users::totp_last_step.lt(step)),
                ),
            )
            .set(users::totp_last_step.eq(Some(step)))
            .execute(conn)?;
            return if accepted == 1 {
                Ok(Passed::Code)
            } else {
                Err(MfaError::WrongCode)
            };
        }
        let used = diesel::update(
            recovery_codes::table
                .filter(recovery_codes::user_id.eq(user))
                .filter(recovery_codes::code_hash.eq(sha256_hex(&normalized(code))))
                .filter(recovery_codes::used_at.is_null()),
        )
        .set(recovery_codes::used_at.eq(Some(Utc::now())))
        .execute(conn)?;
        if used == 0 {
            return Err(MfaError::WrongCode);
        }
        let left: i64 = recovery_codes::table
            .filter(recovery_codes::user_id.eq(user))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(conn)?;
        Ok(Passed::RecoveryCode { left })
    })
}

/// Removes a person's second factor, recovery codes and passkeys (turned off, or reset by the
/// CLI).
pub fn remove(conn: &mut PgConnection, user: UserId) -> QueryResult<()> {
    crate::auth::passkey::remove_all(conn, user)?;
    diesel::update(users::table.find(user))
        .set((
            users::totp_secret.eq(None::<String>),
            users::totp_pending.eq(None::<String>),
            users::totp_enabled_at.eq(None::<chrono::DateTime<Utc>>),
            users::totp_last_step.eq(None::<i64>),
        ))
        .execute(conn)?;
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user))).execute(conn)?;
    Ok(())
}

/// Unused recovery codes of a person.
pub fn recovery_codes_left(conn: &mut PgConnection, user: UserId) -> QueryResult<i64> {
    recovery_codes::table
        .filter(recovery_codes::user_id.eq(user))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(conn)
}

/// Whether a second factor is required of a person of `partner` (and `organization`).
pub fn required(
    conn: &mut PgConnection,
    partner: PartnerId,
    organization: Option<OrganizationId>,
) -> QueryResult<bool> {
    let by_partner: bool = partners::table
        .find(partner)
        .select(partners::mfa_required)
        .first(conn)?;
    let by_organization = match organization {
        Some(organization) => organizations::table
            .find(organization)
            .select(organizations::mfa_required)
            .first(conn)?,
        None => false,
    };
    Ok(by_partner || by_organization)
}

/// Once a requirement is set, the people it covers who have no second factor lose what a
/// password alone gave them: their sessions end (they set the factor up at their next sign-in)
/// and their API tokens are revoked. `keep` (the Partner setting it) keeps the session.
/// Returns the people signed out.
pub fn end_unprotected_access(
    conn: &mut PgConnection,
    partner: PartnerId,
    requirement: Requirement,
    keep: UserId,
) -> QueryResult<Vec<UserId>> {
    use crate::schema::api_tokens;
    let covered = users::table
        .filter(users::totp_secret.is_null())
        .filter(users::id.ne(keep))
        .select(users::id)
        .into_boxed();
    let people: Vec<UserId> = match requirement {
        Requirement::Partner => covered.filter(users::partner_id.eq(partner)).load(conn)?,
        Requirement::Organization(organization) => covered
            .filter(users::partner_id.eq(partner))
            .filter(users::organization_id.eq(organization))
            .load(conn)?,
        Requirement::Off(_) => Vec::new(),
    };
    for person in &people {
        crate::session_store::revoke_all_for(conn, *person)?;
    }
    diesel::update(
        api_tokens::table
            .filter(api_tokens::user_id.eq_any(&people))
            .filter(api_tokens::revoked_at.is_null()),
    )
    .set(api_tokens::revoked_at.eq(Some(Utc::now())))
    .execute(conn)?;
    Ok(people)
}

/// What a Partner requires (`POST /organizations/mfa`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Everyone of the partner account.
    Partner,
    /// Everyone of one organization.
    Organization(OrganizationId),
    /// Nobody by the partner account (or, with an organization, by that organization).
    Off(Option<OrganizationId>),
}

/// Sets a requirement in `partner`'s account; the organization must be the partner's.
pub fn set_required(
    conn: &mut PgConnection,
    partner: PartnerId,
    requirement: Requirement,
) -> QueryResult<usize> {
    match requirement {
        Requirement::Partner => diesel::update(partners::table.find(partner))
            .set(partners::mfa_required.eq(true))
            .execute(conn),
        Requirement::Off(None) => diesel::update(partners::table.find(partner))
            .set(partners::mfa_required.eq(false))
            .execute(conn),
        Requirement::Organization(organization) | Requirement::Off(Some(organization)) => {
            diesel::update(
                organizations::table
                    .find(organization)
                    .filter(organizations::partner_id.eq(partner)),
            )
            .set(
                organizations::mfa_required.eq(matches!(requirement, Requirement::Organization(_))),
            )
            .execute(conn)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_read_without_case_spaces_or_dashes() {
        let code = recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(
            normalized(&code.to_uppercase().replace('-', " ")),
            normalized(&code)
        );
    }

    #[test]
    fn codes_of_rfc_6238_match_their_step() {
        // RFC 6238 appendix B, SHA-1: the secret "12345678901234567890", 59 s -> 287082 (8
        // digits: 94287082; the last six are the 6-digit code).
        let totp = totp(b"12345678901234567890", "a@example.com").unwrap();
        assert_eq!(totp.check("287082", 59), Some(1));
        assert_eq!(
            totp.check("287082", 59 + 30),
            Some(1),
            "one step late still passes"
        );
        assert_eq!(
            totp.check("287082", 59 + 90),
            None,
            "two steps late does not"
        );
    }
}
