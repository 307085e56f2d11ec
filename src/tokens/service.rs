//! The token use cases: create (shown once), list, revoke, and `authenticate`, which turns a
//! presented bearer token into the person it acts as, counting the request for the rate limit.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{Months, NaiveDate, Utc};

use crate::access::Role;
use crate::accounts::model::User;
use crate::audit::NewEvent;
use crate::auth::{CurrentUser, Identity};
use crate::crypto::{Secret, sha256_hex};
use crate::db::{self, DbPool};
use crate::ids::TokenId;
use crate::tokens::model::{ApiToken, NewApiToken, Owners, TokenListing};
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
    /// The token presented is not one keyhold takes (unknown, revoked, expired, its person
    /// disabled): why, in the words the API answers (401).
    #[error("{0}")]
    Refused(String),
    /// A live token used from an address its allowlist does not hold (403).
    #[error("This token may not be used from {0}.")]
    NotFromHere(String),
    /// The token's requests this minute are spent.
    #[error("This token has made too many requests; try again in {retry_after_secs} s.")]
    Throttled { retry_after_secs: u64 },
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] diesel::result::Error),
}

impl<E: Into<TokenError>> From<db::RunError<E>> for TokenError {
    fn from(error: db::RunError<E>) -> TokenError {
        match error {
            db::RunError::Failed(error) => error.into(),
            db::RunError::Unavailable(reason) => TokenError::Unavailable(reason),
        }
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
pub async fn list(pool: &DbPool, user: &CurrentUser) -> Result<Vec<TokenListing>, TokenError> {
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
    .map_err(TokenError::from)
}

/// Who a request's bearer token acts as, and what it may do.
pub struct Bearer {
    pub user: CurrentUser,
    pub scopes: Vec<ApiScope>,
}

/// What this process keeps of tokens between requests: the requests of each token counted and
/// not yet written, and the tokens read lately.
///
/// A token's rate is what its row says (every process writes there) plus what this process has
/// not written: each process writes its count at a token's first request, then once a second
/// or once a tenth of the limit is unwritten, and whenever it refuses one, so the limit holds
/// across instances to within a tenth of it (or a second's requests, if fewer) each.
///
/// A token's row (with its person) is read at most once a second (`READ_AGE`): a token revoked
/// or a person disabled through another instance stops answering within that second; through
/// this one at once (`forget`, called by those actions' handlers). A read that began before a
/// `forget` is not kept.
#[derive(Default)]
pub struct TokenUses {
    uses: Mutex<HashMap<TokenId, Unwritten>>,
    read: Mutex<Read>,
}

/// How long a token's row read by this process answers for it.
const READ_AGE: Duration = Duration::from_secs(1);
/// At most this many tokens are kept; a full map is emptied and fills again.
const READ_CAPACITY: usize = 10_000;

#[derive(Default)]
struct Unwritten {
    requests: i32,
    written_at: Option<Instant>,
}

/// Tokens read lately, by the SHA-256 of the token; `epoch` counts the `forget`s.
#[derive(Default)]
struct Read {
    tokens: HashMap<String, ReadToken>,
    epoch: u64,
}

/// A token's row as read, when, and the requests this process wrote to it since.
struct ReadToken {
    at: Instant,
    token: ApiToken,
    user: User,
    written_since: i32,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl TokenUses {
    /// Counts one request of `token` when it is within `per_minute` (with `written` already
    /// counted in its row for this minute); answers whether it was counted and, when it is time
    /// to write, how many requests to write.
    fn count(&self, token: TokenId, written: i32, per_minute: i32) -> (bool, Option<i32>) {
        let mut uses = lock(&self.uses);
        let unwritten = uses.entry(token).or_default();
        let counted = written + unwritten.requests < per_minute;
        if counted {
            unwritten.requests += 1;
        }
        // Written at a token's first request, then once a second or once a tenth of the limit
        // is unwritten, and also when a request is refused: other instances read the row, so
        // what this one counted must reach it before they could let a second limit through.
        let due = unwritten.requests > 0
            && (unwritten
                .written_at
                .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
                || unwritten.requests >= (per_minute / 10).max(1)
                || !counted);
        if !due {
            return (counted, None);
        }
        unwritten.written_at = Some(Instant::now());
        (counted, Some(std::mem::take(&mut unwritten.requests)))
    }

    /// The token of `hash` and its person, when read less than `READ_AGE` ago, with the
    /// requests this process wrote to its row since.
    fn recently_read(&self, hash: &str) -> Option<(ApiToken, User, i32)> {
        let read = lock(&self.read);
        read.tokens
            .get(hash)
            .filter(|kept| kept.at.elapsed() < READ_AGE)
            .map(|kept| (kept.token.clone(), kept.user.clone(), kept.written_since))
    }

    /// Notes that `requests` were written to the row of `hash` after it was read.
    fn wrote(&self, hash: &str, requests: i32) {
        if let Some(kept) = lock(&self.read).tokens.get_mut(hash) {
            kept.written_since += requests;
        }
    }

    /// Where a read of a token begins: the `forget`s so far, and the time.
    fn ticket(&self) -> (u64, Instant) {
        (lock(&self.read).epoch, Instant::now())
    }

    /// Keeps what a read that began at `ticket` found, unless a `forget` came since.
    fn keep(&self, hash: String, found: &(ApiToken, User), ticket: (u64, Instant)) {
        let mut read = lock(&self.read);
        if read.epoch != ticket.0 {
            return;
        }
        // A read that began later already answered (and may have counted writes since).
        if read
            .tokens
            .get(&hash)
            .is_some_and(|kept| kept.at >= ticket.1)
        {
            return;
        }
        if read.tokens.len() >= READ_CAPACITY {
            read.tokens.clear();
        }
        read.tokens.insert(
            hash,
            ReadToken {
                at: ticket.1,
                token: found.0.clone(),
                user: found.1.clone(),
                written_since: 0,
            },
        );
    }

    /// Forgets every token read: a token was revoked, or a person disabled or changed, by this
    /// process; the next request of each token reads its row.
    pub fn forget(&self) {
        let mut read = lock(&self.read);
        read.tokens.clear();
        read.epoch += 1;
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
) -> Result<Bearer, TokenError> {
    let hash = sha256_hex(presented);
    let (token, user, written_since) = match uses.recently_read(&hash) {
        Some(found) => found,
        None => {
            let ticket = uses.ticket();
            let key = hash.clone();
            let found = db::run(pool, move |conn| ApiToken::find_by_hash(conn, &key))
                .await?
                .ok_or_else(|| TokenError::Refused("This token is not known.".into()))?;
            uses.keep(hash.clone(), &found, ticket);
            (found.0, found.1, 0)
        }
    };
    if token.revoked_at.is_some() {
        return Err(TokenError::Refused("This token has been revoked.".into()));
    }
    if token.is_expired() {
        return Err(TokenError::Refused(format!(
            "This token expired on {}.",
            token.expires_on
        )));
    }
    if user.disabled {
        return Err(TokenError::Refused(
            "The person this token acts as is disabled.".into(),
        ));
    }
    if !crate::tokens::address_allowed(&token.allowed(), client_ip) {
        return Err(TokenError::NotFromHere(client_ip.to_string()));
    }
    let window_ends = token.window_started_at + chrono::Duration::minutes(1);
    // The row's count for this minute (none when its minute is over), plus what this process
    // wrote to it since it was read.
    let written = if window_ends > Utc::now() {
        token.window_requests
    } else {
        0
    } + written_since;
    let (counted, to_write) = uses.count(token.id, written, per_minute);
    if let Some(requests) = to_write {
        let (client, token) = (client_ip.to_string(), token.clone());
        db::run(pool, move |conn| token.record_uses(conn, requests, &client)).await?;
        uses.wrote(&hash, requests);
    }
    if !counted {
        let retry_after_secs = (window_ends - Utc::now()).num_seconds().max(1) as u64;
        return Err(TokenError::Throttled { retry_after_secs });
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
    fn uses_are_written_at_the_first_request_a_tenth_of_the_limit_a_second_or_a_refusal() {
        let uses = TokenUses::default();
        let token = TokenId(7);
        assert_eq!(uses.count(token, 0, 100), (true, Some(1)));
        let written: Vec<Option<i32>> = (0..9).map(|_| uses.count(token, 1, 100).1).collect();
        assert_eq!(written, [None; 9], "within the second nothing is written");
        // A tenth of the limit unwritten is written (the row then says 11).
        assert_eq!(uses.count(token, 1, 100), (true, Some(10)));
        // What the row says and what is unwritten count together: the 101st request of the
        // minute waits, and what was unwritten is written as it is refused.
        for _ in 0..9 {
            assert_eq!(uses.count(token, 91, 100), (true, None));
        }
        assert_eq!(uses.count(token, 91, 100), (false, Some(9)));
        assert_eq!(uses.count(token, 100, 100), (false, None));
        assert_eq!(uses.count(TokenId(8), 98, 100), (true, Some(1)));
        std::thread::sleep(Duration::from_millis(1100));
        assert_eq!(
            uses.count(TokenId(8), 0, 100),
            (true, Some(1)),
            "a second later"
        );
    }
}
