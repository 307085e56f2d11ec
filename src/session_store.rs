//! Server-side sessions in PostgreSQL for actix-session: revocable, shared by every instance.
//! The cookie carries a random key; the table holds only its SHA-256, so a leaked table row
//! cannot be replayed as a cookie. Rows read are kept in memory (`session_cache`) until they
//! change: a signed-in request reads the table only when its session was changed since.

use std::cell::Cell;
use std::future::Future;
use std::sync::Arc;

use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use actix_web::web;
use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::crypto::{random_token, sha256_hex};
use crate::db::DbPool;
use crate::ids::UserId;
use crate::schema::sessions;
use crate::session_cache::{SessionCache, State};

/// The session entry that names the signed-in person, copied into `sessions.user_id`.
pub const USER_ID_KEY: &str = "user_id";

/// Session entries that must not survive the loss of their row (a revoked session).
const IDENTITY_KEYS: [&str; 2] = ["identity", USER_ID_KEY];

/// actix-session storage over the `sessions` table.
#[derive(Clone)]
pub struct PgSessionStore {
    pool: DbPool,
    cache: Arc<SessionCache>,
}

tokio::task_local! {
    /// Whether the store failed because the database could not be reached, for the error page
    /// (actix-session answers every store failure with an opaque 500).
    static UNREACHABLE: Cell<bool>;
}

/// Runs `request` (the session middleware and what it wraps) and also answers whether the
/// session store found the database unreachable meanwhile.
pub async fn noting_outage<F: Future>(request: F) -> (F::Output, bool) {
    UNREACHABLE
        .scope(Cell::new(false), async {
            let output = request.await;
            (output, UNREACHABLE.with(Cell::get))
        })
        .await
}

/// A connection failure (no connection from the pool, or one closed under the store).
fn is_outage(error: &anyhow::Error) -> bool {
    use diesel::result::{DatabaseErrorKind, Error};
    error.downcast_ref::<diesel::r2d2::PoolError>().is_some()
        || matches!(
            error.downcast_ref::<Error>(),
            Some(Error::DatabaseError(DatabaseErrorKind::ClosedConnection, _))
        )
}

impl PgSessionStore {
    pub fn new(pool: DbPool, cache: Arc<SessionCache>) -> PgSessionStore {
        PgSessionStore { pool, cache }
    }

    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&mut PgConnection) -> anyhow::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let pool = self.pool.clone();
        let result = web::block(move || {
            let mut conn = pool.get()?;
            conn.attempt(work)
        })
        .await?;
        if let Err(error) = &result
            && is_outage(error)
        {
            let _ = UNREACHABLE.try_with(|unreachable| unreachable.set(true));
        }
        result
    }
}

/// Ends every session of a person (used when they are disabled); once committed, the caller
/// also tells this process's `SessionCache::forget_user` (other instances hear of each row).
pub fn revoke_all_for(conn: &mut PgConnection, user: UserId) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::user_id.eq(user))).execute(conn)
}

/// Deletes expired sessions; returns how many.
pub fn delete_expired(conn: &mut PgConnection) -> QueryResult<usize> {
    diesel::delete(sessions::table.filter(sessions::expires_at.le(diesel::dsl::now))).execute(conn)
}

fn user_id_of(state: &State) -> Option<i64> {
    state.get(USER_ID_KEY).and_then(|value| value.parse().ok())
}

fn expiry(ttl: &Duration) -> chrono::DateTime<Utc> {
    Utc::now() + chrono::Duration::seconds(ttl.whole_seconds())
}

fn insert(conn: &mut PgConnection, state: &State, ttl: &Duration) -> anyhow::Result<SessionKey> {
    let key = random_token();
    diesel::insert_into(sessions::table)
        .values((
            sessions::id.eq(sha256_hex(&key)),
            sessions::user_id.eq(user_id_of(state)),
            sessions::state.eq(serde_json::to_value(state)?),
            sessions::expires_at.eq(expiry(ttl)),
        ))
        .execute(conn)?;
    SessionKey::try_from(key).map_err(|error| anyhow::anyhow!("{error}"))
}

impl SessionStore for PgSessionStore {
    async fn load(&self, session_key: &SessionKey) -> Result<Option<State>, LoadError> {
        let id = sha256_hex(session_key.as_ref());
        let ticket = match self.cache.get(&id) {
            Ok(state) => return Ok(Some(state)),
            Err(ticket) => ticket,
        };
        let key = id.clone();
        let row: Option<(serde_json::Value, Option<i64>, DateTime<Utc>)> = self
            .blocking(move |conn| {
                Ok(sessions::table
                    .find(key)
                    .filter(sessions::expires_at.gt(diesel::dsl::now))
                    .select((sessions::state, sessions::user_id, sessions::expires_at))
                    .first(conn)
                    .optional()?)
            })
            .await
            .map_err(LoadError::Other)?;
        let Some((value, user_id, expires_at)) = row else {
            // Gone (or expired): an entry kept for it must not answer the session's other
            // requests meanwhile.
            self.cache.forget(&id);
            return Ok(None);
        };
        let state: State = serde_json::from_value(value)
            .map_err(|error| LoadError::Deserialization(error.into()))?;
        self.cache
            .fill(ticket, id, state.clone(), user_id, expires_at);
        Ok(Some(state))
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let ttl = *ttl;
        self.blocking(move |conn| insert(conn, &state, &ttl))
            .await
            .map_err(SaveError::Other)
    }

    async fn update(
        &self,
        session_key: SessionKey,
        mut state: State,
        ttl: &Duration,
    ) -> Result<SessionKey, UpdateError> {
        let ttl = *ttl;
        let id = sha256_hex(session_key.as_ref());
        let cache = self.cache.clone();
        self.blocking(move |conn| {
            let updated = diesel::update(sessions::table.find(&id))
                .set((
                    sessions::user_id.eq(user_id_of(&state)),
                    sessions::state.eq(serde_json::to_value(&state)?),
                    sessions::expires_at.eq(expiry(&ttl)),
                ))
                .execute(conn)?;
            cache.forget(&id);
            if updated == 1 {
                return Ok(session_key);
            }
            // The row was revoked or expired while the request ran: start over signed out.
            for key in IDENTITY_KEYS {
                state.remove(key);
            }
            insert(conn, &state, &ttl)
        })
        .await
        .map_err(UpdateError::Other)
    }

    async fn update_ttl(&self, session_key: &SessionKey, ttl: &Duration) -> anyhow::Result<()> {
        let id = sha256_hex(session_key.as_ref());
        let ttl = *ttl;
        // Extending by less than a minute is not worth a write on every request.
        let stale_before = expiry(&ttl) - chrono::Duration::seconds(60);
        let cache = self.cache.clone();
        self.blocking(move |conn| {
            let extended = diesel::update(
                sessions::table
                    .find(&id)
                    .filter(sessions::expires_at.lt(stale_before))
                    .filter(sessions::expires_at.gt(diesel::dsl::now)),
            )
            .set(sessions::expires_at.eq(expiry(&ttl)))
            .execute(conn)?;
            if extended > 0 {
                cache.forget(&id);
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, session_key: &SessionKey) -> anyhow::Result<()> {
        let id = sha256_hex(session_key.as_ref());
        let cache = self.cache.clone();
        self.blocking(move |conn| {
            diesel::delete(sessions::table.find(&id)).execute(conn)?;
            cache.forget(&id);
            Ok(())
        })
        .await
    }
}
