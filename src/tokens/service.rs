//! The token use cases: create (shown once), list, revoke, and `authenticate`, which turns a
//! presented bearer token into the person it acts as, counting the request for the rate limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{Months, NaiveDate, Utc};

use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Identity, Role};
use crate::crypto::{Secret, sha256_hex};
use crate::db::{self, DbPool};
use crate::error::AppError;
use crate::tokens::model::{ApiToken, NewApiToken, Owners, TokenId, TokenListing};
use crate::tokens::{ApiScope, generate, parse_network, prefix_of};
use crate::web::form::{FieldErrors, check_length};

/// Why a token use case refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("Correct the highlighted fields.")]
    Invalid(FieldErrors),
    #[error("This page does not exist, or you do not have access to it.")]
    NotFound,
    #[error("{name} is already revoked.")]
    AlreadyRevoked { name: String },
    #[error(transparent)]
    Store(AppError),
}

impl<E: Into<AppError>> From<db::RunError<E>> for TokenError {
    fn from(error: db::RunError<E>) -> TokenError {
        TokenError::Store(error.into())
    }
}

/// A submitted token form (`scopes` is one field per scope).
#[derive(Debug, Default, Clone)]
pub struct TokenForm {
    pub name: String,
    pub scopes: Vec<String>,
    pub expires_on: String,
    pub allowed_ips: String,
}

impl TokenForm {
    pub fn parse(pairs: Vec<(String, String)>) -> TokenForm {
        let mut form = TokenForm::default();
        for (key, value) in pairs {
            match key.as_str() {
                "name" => form.name = value.trim().to_string(),
                "scopes" => form.scopes.push(value.trim().to_string()),
                "expires_on" => form.expires_on = value.trim().to_string(),
                "allowed_ips" => form.allowed_ips = value.trim().to_string(),
                _ => {}
            }
        }
        form
    }

    /// Whether the form asks for `scope` (to keep the boxes ticked on a form with errors).
    pub fn has(&self, scope: &ApiScope) -> bool {
        self.scopes.iter().any(|s| s == scope.key())
    }
}

/// A checked token form.
struct Checked {
    scopes: Vec<ApiScope>,
    expires_on: NaiveDate,
    allowed: Vec<String>,
}

/// Checks a form for a token of a person of `role`: a name, at least one scope (only reading
/// ones for Users), an expiry after today and at most a year away, addresses or CIDRs.
fn check(form: &TokenForm, role: Role) -> Result<Checked, FieldErrors> {
    let mut errors = FieldErrors::default();
    errors.check("name", check_length(&form.name, 3, 60));
    let mut scopes = Vec::new();
    for key in &form.scopes {
        match ApiScope::parse(key) {
            Some(scope) if role == Role::User && !scope.reads_only() => errors.add(
                "scopes",
                format!("Your tokens may only read: {key} is not allowed."),
            ),
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => {}
            None => errors.add("scopes", format!("{key} is not a scope.")),
        }
    }
    if scopes.is_empty() {
        errors.add("scopes", "Choose at least one scope.");
    }
    let today = Utc::now().date_naive();
    let latest = today.checked_add_months(Months::new(12)).unwrap_or(today);
    let expires_on = NaiveDate::parse_from_str(&form.expires_on, "%Y-%m-%d").ok();
    match expires_on {
        None => errors.add("expires_on", "Enter a date as YYYY-MM-DD."),
        Some(date) if date <= today => errors.add("expires_on", "Choose a date after today."),
        Some(date) if date > latest => errors.add(
            "expires_on",
            format!("Choose a date on or before {latest}."),
        ),
        Some(_) => {}
    }
    let mut allowed = Vec::new();
    for entry in form.allowed_ips.split(',').map(str::trim) {
        if entry.is_empty() {
            continue;
        }
        match parse_network(entry) {
            Some(net) if net.prefix_len() == net.max_prefix_len() => {
                allowed.push(net.addr().to_string())
            }
            Some(net) => allowed.push(net.to_string()),
            None => errors.add(
                "allowed_ips",
                format!("{entry} is not an address or a network such as 10.0.0.0/8."),
            ),
        }
    }
    match (expires_on, errors.is_empty()) {
        (Some(expires_on), true) => Ok(Checked {
            scopes,
            expires_on,
            allowed,
        }),
        _ => Err(errors),
    }
}

/// Whose tokens `user` sees and revokes.
pub fn owners(user: &CurrentUser) -> Owners {
    match user.role() {
        Role::Partner => Owners::Partner(user.identity.partner_id),
        _ => Owners::Person(user.id()),
    }
}

/// The tokens `user` sees.
pub async fn list(pool: &DbPool, user: &CurrentUser) -> Result<Vec<TokenListing>, AppError> {
    let owners = owners(user);
    Ok(db::run(pool, move |conn| ApiToken::list(conn, owners)).await?)
}

/// A created token and its value, which is shown this once and never stored.
pub struct Issued {
    pub token: ApiToken,
    pub secret: Secret,
}

/// Creates a token of `user`, audited.
pub async fn create(
    pool: &DbPool,
    user: &CurrentUser,
    client_ip: &str,
    form: &TokenForm,
) -> Result<Issued, TokenError> {
    let checked = check(form, user.role()).map_err(TokenError::Invalid)?;
    let secret = generate();
    let (user_id, partner_id, name) = (user.id(), user.identity.partner_id, form.name.clone());
    let (prefix, hash) = (prefix_of(&secret), sha256_hex(&secret));
    let event = NewEvent::by(user, "token.create", client_ip).fields(&[
        "name",
        "scopes",
        "expires_on",
        "allowed_ips",
    ]);
    let token = db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let token = ApiToken::create(
                conn,
                &NewApiToken {
                    user_id,
                    partner_id,
                    name: &name,
                    prefix: &prefix,
                    token_hash: &hash,
                    scopes: checked
                        .scopes
                        .iter()
                        .map(|s| Some(s.key().into()))
                        .collect(),
                    allowed_ips: checked.allowed.into_iter().map(Some).collect(),
                    expires_on: checked.expires_on,
                },
            )?;
            event
                .object("token", token.id.0, &token.name)
                .record(conn)?;
            diesel::QueryResult::Ok(token)
        })
    })
    .await?;
    Ok(Issued {
        token,
        secret: Secret::new(secret),
    })
}

/// Revokes the token `id` among those `user` sees, audited.
pub async fn revoke(
    pool: &DbPool,
    user: &CurrentUser,
    client_ip: &str,
    id: TokenId,
) -> Result<ApiToken, TokenError> {
    let owners = owners(user);
    let event = NewEvent::by(user, "token.revoke", client_ip);
    db::run(pool, move |conn| {
        conn.build_transaction().run(|conn| {
            let token = ApiToken::find_for_update(conn, owners, id)?.ok_or(TokenError::NotFound)?;
            if token.revoked_at.is_some() {
                return Err(TokenError::AlreadyRevoked { name: token.name });
            }
            token.revoke(conn)?;
            event
                .object("token", token.id.0, &token.name)
                .record(conn)?;
            Ok(token)
        })
    })
    .await
    .map_err(|error| match error {
        db::RunError::Failed(refused) => refused,
        db::RunError::Unavailable(reason) => {
            TokenError::Store(db::RunError::<AppError>::Unavailable(reason).into())
        }
    })
}

impl From<diesel::result::Error> for TokenError {
    fn from(error: diesel::result::Error) -> TokenError {
        TokenError::Store(error.into())
    }
}

/// Who a request's bearer token acts as, and what it may do.
pub struct Bearer {
    pub user: CurrentUser,
    pub scopes: Vec<ApiScope>,
}

/// The API requests of each token counted by this process and not yet written. A token's rate
/// is what its row says (every process writes there) plus what this process has not written:
/// each process writes its count at a token's first request, then every tenth or after a
/// second, so a request costs one read, and the limit holds across instances to within ten
/// requests each.
#[derive(Default)]
pub struct TokenUses(Mutex<HashMap<TokenId, Unwritten>>);

#[derive(Default)]
struct Unwritten {
    requests: i32,
    written_at: Option<Instant>,
}

impl TokenUses {
    /// Counts one request of `token` when it is within `per_minute` (with `written` already
    /// counted in its row for this minute); answers whether it was counted and, when it is time
    /// to write, how many requests to write.
    fn count(&self, token: TokenId, written: i32, per_minute: i32) -> (bool, Option<i32>) {
        let mut uses = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let unwritten = uses.entry(token).or_default();
        if written + unwritten.requests >= per_minute {
            return (false, None);
        }
        unwritten.requests += 1;
        let due = unwritten
            .written_at
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
            || unwritten.requests >= 10;
        if !due {
            return (true, None);
        }
        unwritten.written_at = Some(Instant::now());
        (true, Some(std::mem::take(&mut unwritten.requests)))
    }
}

/// The person `presented` acts as when it is a live token of an enabled person, used from an
/// allowed address and within its rate (`per_minute`); counts the use (`TokenUses`).
pub async fn authenticate(
    pool: &DbPool,
    uses: &TokenUses,
    presented: &str,
    client_ip: &str,
    per_minute: i32,
) -> Result<Bearer, AppError> {
    let hash = sha256_hex(presented);
    let (token, user) = db::run(pool, move |conn| ApiToken::find_by_hash(conn, &hash))
        .await?
        .ok_or_else(|| AppError::TokenRefused("This token is not known.".into()))?;
    if token.revoked_at.is_some() {
        return Err(AppError::TokenRefused(
            "This token has been revoked.".into(),
        ));
    }
    if token.is_expired() {
        return Err(AppError::TokenRefused(format!(
            "This token expired on {}.",
            token.expires_on
        )));
    }
    if user.disabled {
        return Err(AppError::TokenRefused(
            "The person this token acts as is disabled.".into(),
        ));
    }
    if !crate::tokens::address_allowed(&token.allowed(), client_ip) {
        return Err(AppError::Denied(format!(
            "This token may not be used from {client_ip}."
        )));
    }
    let window_ends = token.window_started_at + chrono::Duration::minutes(1);
    let written = if window_ends > Utc::now() {
        token.window_requests
    } else {
        0
    };
    let (counted, to_write) = uses.count(token.id, written, per_minute);
    if !counted {
        let retry_after_secs = (window_ends - Utc::now()).num_seconds().max(1) as u64;
        return Err(AppError::TooManyRequests { retry_after_secs });
    }
    if let Some(requests) = to_write {
        let (client, token) = (client_ip.to_string(), token.clone());
        db::run(pool, move |conn| token.record_uses(conn, requests, &client)).await?;
    }
    Ok(Bearer {
        scopes: token.scopes(),
        user: CurrentUser::with_token(Identity::of(&user), token.name),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uses_are_written_at_the_first_request_then_every_tenth_and_held_to_the_limit() {
        let uses = TokenUses::default();
        let token = TokenId(7);
        assert_eq!(uses.count(token, 0, 100), (true, Some(1)));
        let written: Vec<Option<i32>> = (0..10).map(|_| uses.count(token, 1, 100).1).collect();
        assert_eq!(written[..9], [None; 9]);
        assert_eq!(written[9], Some(10));
        // What the row says and what is unwritten count together.
        // The 99th and 100th of the minute pass, the 101st waits.
        assert_eq!(uses.count(token, 98, 100), (true, None));
        assert_eq!(uses.count(token, 98, 100), (true, None));
        assert_eq!(uses.count(token, 98, 100), (false, None));
        assert_eq!(uses.count(TokenId(8), 98, 100), (true, Some(1)));
    }
}
