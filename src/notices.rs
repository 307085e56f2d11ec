//! Listening to PostgreSQL notices on a thread of its own, for the in-memory caches of one
//! process (`session_cache`, `page_cache`): the tables stay the truth, shared by every
//! instance, and triggers announce their changes on a channel; a cache keeps what it read until
//! told. A cache is only to be trusted while its listener is connected and lately heard its own
//! heartbeat notice (a hung connection, or a pooler that does not carry notices, would otherwise
//! go unnoticed); `Listener::forget_all` is called whenever that may not hold.

use std::sync::{Arc, Mutex, MutexGuard, Once, PoisonError, RwLock, TryLockError, Weak};
use std::time::{Duration, Instant};

use diesel::prelude::*;

/// How often a listener looks for notices, and how often it sends itself a heartbeat.
const POLL_EVERY: Duration = Duration::from_millis(5);
const HEARTBEAT_EVERY: Duration = Duration::from_secs(1);
/// A cache is trusted only while its listener heard its own heartbeat this recently.
pub const HEARD_WITHIN: Duration = Duration::from_millis(2500);
const RECONNECT_AFTER: Duration = Duration::from_secs(1);
/// Heartbeat payloads start with this (no payload of a trigger does).
const HEARTBEAT: &str = "heartbeat:";

/// A cache's lock. A panic while it was held leaves only a map behind: it is used on (the
/// listener's notices keep it right), not made to poison every later request.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// When a cache's listener last heard its own heartbeat on its current connection: the cache
/// is to be trusted only if lately (not at all since it connected or lost its connection).
#[derive(Default, Debug)]
pub struct Heartbeat {
    pub(crate) heard: Option<Instant>,
}

impl Heartbeat {
    pub fn trusted(&self) -> bool {
        self.heard
            .is_some_and(|heard| heard.elapsed() < HEARD_WITHIN)
    }

    /// The listener heard it just now.
    pub fn heard(&mut self) {
        self.heard = Some(Instant::now());
    }

    /// Nothing is to be trusted until it is heard again.
    pub fn lost(&mut self) {
        self.heard = None;
    }
}

/// A cache fed by the notices of one channel.
pub trait Listener: Send + Sync + 'static {
    /// The channel its triggers notify.
    const CHANNEL: &'static str;
    /// Its listener's thread name, and (prefixed by `keyhold-`) its connection's
    /// `application_name` in `pg_stat_activity`.
    const NAME: &'static str;

    /// A notice other than a heartbeat.
    fn notice(&self, payload: &str);
    /// Its listener heard its own heartbeat.
    fn heard(&self);
    /// Forget everything and cache nothing until the next heartbeat is heard (on connecting,
    /// on losing the connection).
    fn forget_all(&self);
}

/// Starts the listener thread of `cache` on `database_url`; it ends with the cache.
pub fn start<L: Listener>(database_url: &str, cache: &Arc<L>) {
    let weak = Arc::downgrade(cache);
    let url = database_url.to_string();
    std::thread::Builder::new()
        .name(L::NAME.into())
        .spawn(move || listen(&url, &weak))
        .expect("cannot start a listener thread");
}

/// `application_name` of `L`'s listener connection.
pub fn application_name<L: Listener>() -> String {
    format!("keyhold-{}", L::NAME)
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

fn connect<L: Listener>(database_url: &str) -> anyhow::Result<PgConnection> {
    // Named, and quick to notice a dead peer (a hung connection also stops the heartbeat).
    let named = url::Url::parse(database_url).map(|mut url| {
        url.query_pairs_mut()
            .append_pair("application_name", &application_name::<L>())
            .append_pair("keepalives_idle", "10")
            .append_pair("keepalives_interval", "5")
            .append_pair("keepalives_count", "2")
            .append_pair("tcp_user_timeout", "10000");
        url.to_string()
    });
    let mut conn = PgConnection::establish(named.as_deref().unwrap_or(database_url))?;
    diesel::sql_query(format!("LISTEN {}", L::CHANNEL)).execute(&mut conn)?;
    Ok(conn)
}

/// The listener thread: connects, listens, passes on what it hears; on any failure empties
/// the cache and stops caching until connected again. Ends when the cache is dropped.
fn listen<L: Listener>(database_url: &str, cache: &Weak<L>) {
    loop {
        let Some(connected) = in_libpq(|| connect::<L>(database_url)) else {
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
                tracing::warn!("{} lost its connection ({error}); reconnecting", L::NAME);
            }
            Err(error) => {
                if cache.strong_count() == 0 {
                    return;
                }
                tracing::warn!("{} cannot connect: {error}", L::NAME);
            }
        }
        std::thread::sleep(RECONNECT_AFTER);
    }
}

/// Passes on notices until the connection fails (its error is returned) or the cache is
/// dropped or the process exits (`None`). Every `HEARTBEAT_EVERY` it notifies the channel
/// itself with a payload of its own; hearing it back proves the round trip.
fn relay<L: Listener>(mut conn: PgConnection, cache: &Weak<L>) -> Option<anyhow::Error> {
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
                    payload if payload == heartbeat => live.heard(),
                    payload if payload.starts_with(HEARTBEAT) => {}
                    payload => live.notice(payload),
                }
            }
            if sent.is_none_or(|sent| sent.elapsed() >= HEARTBEAT_EVERY) {
                // The payload is our own random token: nothing from outside reaches the SQL.
                diesel::sql_query(format!("NOTIFY {}, '{heartbeat}'", L::CHANNEL))
                    .execute(&mut conn)?;
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
