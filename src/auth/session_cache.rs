//! Sessions kept in memory between requests, so that a signed-in request does not read its
//! session row each time (a blocking hand-off and a statement, for a row that rarely changes).
//!
//! The `sessions` table stays the truth, shared by every instance: a trigger announces each
//! changed or deleted row on the `keyhold_sessions` channel (migration 6), and a listener
//! thread here forgets the entries named. The cache is used only while that listener is
//! connected and heard its own heartbeat notice lately (a hung connection, or a pooler that does
//! not carry notices, would otherwise go unnoticed): else every load reads the table. Changes
//! this process makes itself are forgotten at once (`forget`, `forget_user`), not when their
//! notice comes back; and no entry is trusted for longer than `MAX_AGE` after its row was read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Once, PoisonError, RwLock, TryLockError, Weak};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::accounts::model::UserId;

/// The channel the `sessions` trigger notifies, with the row's id as payload.
pub const CHANNEL: &str = "keyhold_sessions";

/// No entry is used past this age, whatever the listener says (a bound on staleness should a
/// notice ever be lost while the connection still looks alive).
const MAX_AGE: Duration = Duration::from_secs(5);
/// At most this many sessions are kept; a full cache is emptied and fills again.
const CAPACITY: usize = 10_000;
/// How often the listener looks for notices, and how often it sends itself a heartbeat.
const POLL_EVERY: Duration = Duration::from_millis(5);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// The cache is trusted only while the listener heard its own heartbeat this recently.
const HEARD_WITHIN: Duration = Duration::from_millis(2500);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Heartbeat payloads start with this (session ids are 64 hex digits).
const HEARTBEAT: &str = "heartbeat:";

/// A session's state as actix-session keeps it.
pub type State = HashMap<String, String>;

struct Entry {
    state: State,
    user_id: Option<i64>,
    expires_at: DateTime<Utc>,
    /// When the load that read it began.
    read_at: Instant,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Counts every forgetting; a load that began before one may not fill the cache, since
    /// the row it read may be the one just changed.
    epoch: u64,
    /// When the listener last heard its own heartbeat on its current connection: nothing is
    /// cached if not lately (or not at all since it connected or lost its connection).
    heard: Option<Instant>,
}

impl Inner {
    fn trusted(&self) -> bool {
        self.heard
            .is_some_and(|heard| heard.elapsed() < HEARD_WITHIN)
    }
}

/// What a load needs to know to fill the cache afterwards: the epoch it began in, and when
/// (an entry's age counts from before its row was read).
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    epoch: u64,
    began: Instant,
}

/// The in-memory sessions of one keyhold process.
#[derive(Default)]
pub struct SessionCache {
    inner: Mutex<Inner>,
}

impl SessionCache {
    /// A cache fed by a listener on `database_url` (a thread of its own that ends with the
    /// cache). Until the listener has connected, every load reads the table.
    pub fn start(database_url: &str) -> Arc<SessionCache> {
        let cache = Arc::new(SessionCache::default());
        let weak = Arc::downgrade(&cache);
        let url = database_url.to_string();
        std::thread::Builder::new()
            .name("session-listener".into())
            .spawn(move || listen(&url, &weak))
            .expect("cannot start the session listener thread");
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves only a map behind: keep using it.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The cached state of session `id`, if it is cached, fresh and not expired; otherwise a
    /// ticket for `fill` once the row is read.
    pub fn get(&self, id: &str) -> Result<State, Ticket> {
        let inner = self.lock();
        match inner.entries.get(id) {
            Some(entry)
                if inner.trusted()
                    && entry.read_at.elapsed() < MAX_AGE
                    && entry.expires_at > Utc::now() =>
            {
                Ok(entry.state.clone())
            }
            _ => Err(Ticket {
                epoch: inner.epoch,
                began: Instant::now(),
            }),
        }
    }

    /// Keeps the row read for session `id`, unless anything was forgotten since `ticket`.
    pub fn fill(
        &self,
        ticket: Ticket,
        id: String,
        state: State,
        user_id: Option<i64>,
        expires_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        if !inner.trusted() || inner.epoch != ticket.epoch {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
        }
        inner.entries.insert(
            id,
            Entry {
                state,
                user_id,
                expires_at,
                read_at: ticket.began,
            },
        );
    }

    /// Forgets session `id` (changed or deleted).
    pub fn forget(&self, id: &str) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.remove(id);
    }

    /// Forgets every session of `user` (disabled: their rows are deleted).
    pub fn forget_user(&self, user: UserId) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner
            .entries
            .retain(|_, entry| entry.user_id != Some(user.0));
    }

    /// Forgets everything, and caches nothing until the listener hears its next heartbeat
    /// (on connecting, on losing its connection, after a TRUNCATE).
    fn forget_all(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.clear();
        inner.heard = None;
    }

    /// The listener heard its own heartbeat.
    fn heard(&self) {
        self.lock().heard = Some(Instant::now());
    }
}

/// Held (shared) by a listener while it is inside libpq; `true` once the process exits.
/// OpenSSL cleans up at exit (an `atexit` handler) while other threads still run, unless told
/// not to (`db::skip_openssl_cleanup_at_exit`, which keyhold's `main` does first): should a
/// process still have it on, the handler below, registered after libpq has set OpenSSL up and
/// so run before its clean-up, waits for any listener to leave libpq and bars them from it.
static IN_LIBPQ: RwLock<bool> = RwLock::new(false);
static EXIT_GUARD: Once = Once::new();

extern "C" fn bar_listeners_from_libpq() {
    // Not forever: a listener stuck connecting must not hang the exit.
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match IN_LIBPQ.try_write() {
            Ok(mut exiting) => return *exiting = true,
            Err(TryLockError::Poisoned(poisoned)) => return *poisoned.into_inner() = true,
            Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            Err(TryLockError::WouldBlock) => return,
        }
    }
}

/// Runs `work` (which calls libpq) unless the process is exiting.
fn in_libpq<T>(work: impl FnOnce() -> T) -> Option<T> {
    let exiting = IN_LIBPQ.read().unwrap_or_else(PoisonError::into_inner);
    if *exiting {
        return None;
    }
    Some(work())
}

/// Closes `conn`, or leaves it open if the process is exiting (closing it would enter libpq).
fn close(conn: PgConnection) {
    let mut conn = Some(conn);
    if in_libpq(|| drop(conn.take())).is_none() {
        std::mem::forget(conn);
    }
}

/// What the listener's connection is called in `pg_stat_activity`.
pub const APPLICATION_NAME: &str = "keyhold-session-listener";

fn connect(database_url: &str) -> anyhow::Result<PgConnection> {
    // Named, and quick to notice a dead peer (a hung connection also stops the heartbeat).
    let named = url::Url::parse(database_url).map(|mut url| {
        url.query_pairs_mut()
            .append_pair("application_name", APPLICATION_NAME)
            .append_pair("keepalives_idle", "10")
            .append_pair("keepalives_interval", "5")
            .append_pair("keepalives_count", "2")
            .append_pair("tcp_user_timeout", "10000");
        url.to_string()
    });
    let mut conn = PgConnection::establish(named.as_deref().unwrap_or(database_url))?;
    diesel::sql_query(format!("LISTEN {CHANNEL}")).execute(&mut conn)?;
    Ok(conn)
}

/// The listener thread: connects, listens, forgets what it is told; on any failure empties
/// the cache and stops caching until connected again. Ends when the cache is dropped.
fn listen(database_url: &str, cache: &Weak<SessionCache>) {
    loop {
        let Some(connected) = in_libpq(|| connect(database_url)) else {
            return;
        };
        match connected {
            Ok(conn) => {
                EXIT_GUARD.call_once(|| {
                    // SAFETY: registers a plain function without arguments.
                    unsafe { libc::atexit(bar_listeners_from_libpq) };
                });
                let Some(live) = cache.upgrade() else {
                    return close(conn);
                };
                live.forget_all();
                drop(live);
                let Some(error) = relay(conn, cache) else {
                    return;
                };
                let Some(live) = cache.upgrade() else { return };
                live.forget_all();
                tracing::warn!("session listener lost its connection ({error}); reconnecting");
            }
            Err(error) => {
                if cache.strong_count() == 0 {
                    return;
                }
                tracing::warn!("session listener cannot connect: {error}");
            }
        }
        std::thread::sleep(RECONNECT_AFTER);
    }
}

/// Forgets the sessions named by notices until the connection fails (its error is returned)
/// or the cache is dropped or the process exits (`None`). Every `HEARTBEAT_EVERY` it notifies
/// the channel itself with a payload of its own; hearing it back proves the round trip.
fn relay(mut conn: PgConnection, cache: &Weak<SessionCache>) -> Option<anyhow::Error> {
    let heartbeat = format!("{HEARTBEAT}{}", crate::crypto::random_token());
    let mut sent: Option<Instant> = None;
    loop {
        let Some(live) = cache.upgrade() else {
            close(conn);
            return None;
        };
        let step = in_libpq(|| -> anyhow::Result<()> {
            for notice in conn.notifications_iter() {
                match notice?.payload.as_str() {
                    // An empty notice follows a TRUNCATE: every session is gone.
                    "" => live.forget_all(),
                    payload if payload == heartbeat => live.heard(),
                    payload if payload.starts_with(HEARTBEAT) => {}
                    id => live.forget(id),
                }
            }
            if sent.is_none_or(|sent| sent.elapsed() >= HEARTBEAT_EVERY) {
                // The payload is our own random token: nothing from outside reaches the SQL.
                diesel::sql_query(format!("NOTIFY {CHANNEL}, '{heartbeat}'")).execute(&mut conn)?;
                sent = Some(Instant::now());
            }
            Ok(())
        });
        drop(live);
        match step {
            None => {
                std::mem::forget(conn);
                return None;
            }
            Some(Err(error)) => {
                close(conn);
                return Some(error);
            }
            Some(Ok(())) => std::thread::sleep(POLL_EVERY),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn live() -> SessionCache {
        let cache = SessionCache::default();
        cache.forget_all();
        cache.heard();
        cache
    }

    fn state(value: &str) -> State {
        HashMap::from([("k".to_string(), value.to_string())])
    }

    fn later() -> DateTime<Utc> {
        Utc::now() + chrono::Duration::hours(1)
    }

    #[test]
    fn a_filled_session_is_served_until_forgotten() {
        let cache = live();
        let ticket = cache.get("a").unwrap_err();
        cache.fill(ticket, "a".into(), state("1"), Some(7), later());
        assert_eq!(cache.get("a").unwrap(), state("1"));
        cache.forget("a");
        assert!(cache.get("a").is_err());
    }

    #[test]
    fn a_load_that_began_before_a_forgetting_does_not_fill() {
        let cache = live();
        let ticket = cache.get("a").unwrap_err();
        // The row changes (another request, another instance) while this load reads it.
        cache.forget("a");
        cache.fill(ticket, "a".into(), state("old"), Some(7), later());
        assert!(cache.get("a").is_err());
    }

    #[test]
    fn expired_and_unlistened_sessions_are_not_served() {
        let cache = live();
        let ticket = cache.get("a").unwrap_err();
        cache.fill(
            ticket,
            "a".into(),
            state("1"),
            None,
            Utc::now() - chrono::Duration::seconds(1),
        );
        assert!(cache.get("a").is_err(), "expired");

        let ticket = cache.get("b").unwrap_err();
        cache.fill(ticket, "b".into(), state("1"), None, later());
        assert_eq!(cache.get("b").unwrap(), state("1"));
        cache.forget_all();
        let ticket = cache.get("b").unwrap_err();
        cache.fill(ticket, "b".into(), state("1"), None, later());
        assert!(
            cache.get("b").is_err(),
            "nothing is kept until a heartbeat is heard"
        );
        cache.heard();
        cache.forget_all();
        assert!(cache.get("b").is_err(), "listener lost");
        let ticket = cache.get("b").unwrap_err();
        cache.fill(ticket, "b".into(), state("1"), None, later());
        assert!(
            cache.get("b").is_err(),
            "nothing is kept while not listening"
        );
    }

    #[test]
    fn a_disabled_person_loses_every_cached_session() {
        let cache = live();
        for (id, user) in [("a", 1), ("b", 1), ("c", 2)] {
            let ticket = cache.get(id).unwrap_err();
            cache.fill(ticket, id.into(), state(id), Some(user), later());
        }
        cache.forget_user(UserId(1));
        assert!(cache.get("a").is_err() && cache.get("b").is_err());
        assert_eq!(cache.get("c").unwrap(), state("c"));
    }
}
