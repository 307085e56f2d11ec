//! Sessions kept in memory between requests, so that a signed-in request does not read its
//! session row each time (a blocking hand-off and a statement, for a row that rarely changes).
//!
//! The `sessions` table stays the truth, shared by every instance: a trigger announces each
//! changed or deleted row on the `keyhold_sessions` channel (migration 6), and a listener
//! thread (`notices`) forgets the entries named. The cache is used only while that listener is
//! connected and heard its own heartbeat notice lately (a hung connection, or a pooler that does
//! not carry notices, would otherwise go unnoticed): else every load reads the table. Changes
//! this process makes itself are forgotten at once (`forget`, `forget_user`), not when their
//! notice comes back; and no entry is trusted for longer than `MAX_AGE` after its row was read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::ids::UserId;
use crate::notices::{self, Heartbeat, Listener};

/// No entry is used past this age, whatever the listener says (a bound on staleness should a
/// notice ever be lost while the connection still looks alive).
const MAX_AGE: Duration = Duration::from_secs(5);
/// This long before an entry's end, the next request of its session reads the row again while
/// the session's other requests are still answered from it (as in `page_cache`: many requests
/// at once must not all find it gone at the same moment).
const REFRESH_BEFORE: Duration = Duration::from_secs(1);
/// At most this many sessions are kept; a full cache is emptied and fills again.
const CAPACITY: usize = 10_000;

/// A session's state as actix-session keeps it.
pub type State = HashMap<String, String>;

struct Entry {
    state: State,
    user_id: Option<i64>,
    expires_at: DateTime<Utc>,
    /// When the load that read it began.
    read_at: Instant,
    /// A load to replace it was handed out (`REFRESH_BEFORE` its end).
    refreshing: bool,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Counts every forgetting; a load that began before one may not fill the cache, since
    /// the row it read may be the one just changed.
    epoch: u64,
    /// Nothing is cached unless the listener heard its heartbeat lately.
    heartbeat: Heartbeat,
}

/// What a load needs to know to fill the cache afterwards: the epoch it began in, and when
/// (an entry's age counts from before its row was read).
#[derive(Clone, Copy, Debug)]
pub struct SessionLoad {
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
        notices::start(database_url, &cache);
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        notices::lock(&self.inner)
    }

    /// The cached state of session `id`, if it is cached, fresh and not expired; otherwise a
    /// ticket for `fill` once the row is read.
    pub fn get(&self, id: &str) -> Result<State, SessionLoad> {
        let mut inner = self.lock();
        let trusted = inner.heartbeat.trusted();
        let ticket = SessionLoad {
            epoch: inner.epoch,
            began: Instant::now(),
        };
        match inner.entries.get_mut(id) {
            Some(entry)
                if trusted
                    && entry.read_at.elapsed() < MAX_AGE
                    && entry.expires_at > Utc::now() =>
            {
                // The first to ask near its end reads the row again.
                if entry.read_at.elapsed() + REFRESH_BEFORE >= MAX_AGE && !entry.refreshing {
                    entry.refreshing = true;
                    return Err(ticket);
                }
                Ok(entry.state.clone())
            }
            _ => Err(ticket),
        }
    }

    /// Keeps the row read for session `id`, unless anything was forgotten since `ticket`.
    pub fn fill(
        &self,
        ticket: SessionLoad,
        id: String,
        state: State,
        user_id: Option<i64>,
        expires_at: DateTime<Utc>,
    ) {
        let mut inner = self.lock();
        if !inner.heartbeat.trusted() || inner.epoch != ticket.epoch {
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
                refreshing: false,
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
}

impl Listener for SessionCache {
    /// The channel the `sessions` trigger notifies, with the row's id as payload.
    const CHANNEL: &'static str = "keyhold_sessions";
    const NAME: &'static str = "session-listener";

    fn notice(&self, payload: &str) {
        match payload {
            // An empty notice follows a TRUNCATE: every session is gone.
            "" => self.forget_all(),
            id => self.forget(id),
        }
    }

    fn heard(&self) {
        self.lock().heartbeat.heard();
    }

    fn forget_all(&self) {
        let mut inner = self.lock();
        inner.epoch += 1;
        inner.entries.clear();
        inner.heartbeat.lost();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notices::HEARD_WITHIN;

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

    /// Reads session `id` (missing) and fills it with `value`, expiring in an hour.
    fn keep(cache: &SessionCache, id: &str, value: &str, user: Option<i64>) {
        let ticket = cache.get(id).unwrap_err();
        cache.fill(ticket, id.into(), state(value), user, later());
    }

    #[test]
    fn a_filled_session_is_served_until_forgotten() {
        let cache = live();
        keep(&cache, "a", "1", Some(7));
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

        keep(&cache, "b", "1", None);
        assert_eq!(cache.get("b").unwrap(), state("1"));
        cache.forget_all();
        keep(&cache, "b", "1", None);
        assert!(
            cache.get("b").is_err(),
            "nothing is kept until a heartbeat is heard"
        );
        cache.heard();
        cache.forget_all();
        assert!(cache.get("b").is_err(), "listener lost");
        keep(&cache, "b", "1", None);
        assert!(
            cache.get("b").is_err(),
            "nothing is kept while not listening"
        );
    }

    #[test]
    fn entries_age_out_and_a_silent_listener_stops_the_cache() {
        let cache = live();
        let mut ticket = cache.get("old").unwrap_err();
        ticket.began = Instant::now() - MAX_AGE - Duration::from_millis(1);
        cache.fill(ticket, "old".into(), state("1"), None, later());
        assert!(cache.get("old").is_err(), "read more than MAX_AGE ago");
        keep(&cache, "a", "1", None);
        assert!(cache.get("a").is_ok());
        cache.lock().heartbeat.heard =
            Some(Instant::now() - HEARD_WITHIN - Duration::from_millis(1));
        assert!(
            cache.get("a").is_err(),
            "the heartbeat has not been heard lately"
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
