//! What the busiest pages read from the database (a credentials tab's page, a project's
//! backups), kept in memory between requests until the tables it came from change.
//!
//! The tables stay the truth, shared by every instance: a trigger on each of them announces
//! every statement that changed it on the `keyhold_changes` channel (migration 7, the table's
//! name as payload), and a listener thread (`notices`) forgets every entry read from that
//! table. As with sessions, the cache is used only while that listener is connected and heard
//! its own heartbeat lately; no entry is used longer than `MAX_AGE` after its load began (or the
//! longer age a costly one is filled for, `fill_for`: the search index); a
//! load that began before a forgetting does not fill. Requests of this process that may write
//! (any method but GET, HEAD and OPTIONS, sign-in and sign-out aside) forget everything when
//! they are done, so a page shown after a change (the redirect after a POST) never waits for the
//! notice. Only what is the same for everyone in a scope is kept: the pages around it (role,
//! CSRF token, messages) are built per request, and so is anything that depends on the clock.
//!
//! An entry is kept under a `PageKey` (a key type of the area that reads it: which read, and
//! everything its answer depends on), and with the `db::Tables` its queries declare beside
//! their SQL (`Credential::LIST_READS`, …).

use std::any::{Any, TypeId};
use std::collections::{HashMap, HashSet};
use std::fmt::Debug;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use diesel::prelude::*;

use crate::db::Tables;
use crate::notices::{self, Heartbeat, Listener};

/// No entry is used past this age (a bound on staleness should a notice ever be lost while
/// the connection still looks alive).
const MAX_AGE: Duration = Duration::from_secs(5);
/// This long before an entry's end, the next request to ask for it reads the tables again while
/// the others are still answered from it: hundreds of requests asking at once do not all find
/// it gone at the same moment and all read the tables (seen: 250–650 ms stalls every 5 s at 256
/// connections).
const REFRESH_BEFORE: Duration = Duration::from_secs(1);
/// At most this many entries are kept (a credentials page is some 30 KB); a full cache is
/// emptied and fills again.
const CAPACITY: usize = 128;
/// Payloads of `catch_up`'s own notices start with this.
const SYNC: &str = "sync:";

/// What an entry is kept under: a key type declared by the area whose read it is (which read,
/// and everything its answer depends on: `credentials::service::TabKey`,
/// `backup::reads::BackupsTabKey`, …). Keys of two types never match, so this module knows no
/// area.
#[derive(Clone)]
pub struct PageKey(Arc<dyn Key>);

impl PageKey {
    pub fn new(key: impl Key) -> PageKey {
        PageKey(Arc::new(key))
    }
}

/// A value an entry can be kept under: any hashable, comparable type of its own.
pub trait Key: Any + Debug + Send + Sync {
    fn same(&self, other: &dyn Key) -> bool;
    fn hash_into(&self, state: &mut dyn Hasher);
    fn as_any(&self) -> &dyn Any;
}

impl<K: Any + Debug + Hash + Eq + Send + Sync> Key for K {
    fn same(&self, other: &dyn Key) -> bool {
        other.as_any().downcast_ref::<K>() == Some(self)
    }

    fn hash_into(&self, mut state: &mut dyn Hasher) {
        TypeId::of::<K>().hash(&mut state);
        self.hash(&mut state);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl PartialEq for PageKey {
    fn eq(&self, other: &PageKey) -> bool {
        self.0.same(&*other.0)
    }
}

impl Eq for PageKey {}

impl Hash for PageKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.hash_into(state);
    }
}

impl Debug for PageKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Any name, for the tests of the cache itself.
#[cfg(test)]
impl From<&str> for PageKey {
    fn from(name: &str) -> PageKey {
        PageKey::new(name.to_string())
    }
}

struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    tables: Tables,
    /// When the load that read it began.
    read_at: Instant,
    /// It is not used once this old.
    max_age: Duration,
    /// A load to replace it was handed out (`REFRESH_BEFORE` its end).
    refreshing: bool,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<PageKey, Entry>,
    /// Counts the forgettings of each table (by bit of `Tables`); a load that began before one
    /// of a table it reads may not fill the cache.
    epochs: [u64; 8],
    /// Nothing is kept or served unless the listener heard its heartbeat lately.
    heartbeat: Heartbeat,
    /// The last `catch_up` notice heard.
    synced: Option<String>,
    /// Keys being loaded in the background (`begin_background`).
    loading: HashSet<PageKey>,
}

/// What a load needs to fill the cache afterwards: the tables' epochs when it began, and when.
#[derive(Clone, Copy, Debug)]
pub struct Ticket {
    epochs: [u64; 8],
    began: Instant,
}

/// The page data of one keyhold process.
#[derive(Default)]
pub struct PageCache {
    inner: Mutex<Inner>,
    /// Loads answered from memory, and loads that read the tables (`/metrics`).
    hits: AtomicU64,
    misses: AtomicU64,
}

impl PageCache {
    /// A cache fed by a listener on `database_url`, or (`enabled` false) one that keeps
    /// nothing: every load reads the tables.
    pub fn start(database_url: &str, enabled: bool) -> Arc<PageCache> {
        let cache = Arc::new(PageCache::default());
        if enabled {
            notices::start(database_url, &cache);
        }
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        notices::lock(&self.inner)
    }

    /// The value kept under `key` if there is a fresh one; otherwise a ticket for `fill`.
    pub fn get<V: Any + Send + Sync>(&self, key: impl Into<PageKey>) -> Result<Arc<V>, Ticket> {
        self.get_kept(&key.into())
    }

    fn get_kept<V: Any + Send + Sync>(&self, key: &PageKey) -> Result<Arc<V>, Ticket> {
        let mut inner = self.lock();
        // An entry past its age goes at once (not when replaced: a large one, the search
        // index, would otherwise stay beside the one being built).
        if inner
            .entries
            .get(key)
            .is_some_and(|entry| entry.read_at.elapsed() >= entry.max_age)
        {
            inner.entries.remove(key);
        }
        let trusted = inner.heartbeat.trusted();
        let fresh = match inner.entries.get_mut(key) {
            Some(entry) if trusted => {
                // The first to ask near its end reads it again; the rest are answered from it.
                let ending = entry.read_at.elapsed() + REFRESH_BEFORE >= entry.max_age;
                let refresh = ending && !entry.refreshing;
                entry.refreshing |= refresh;
                (!refresh)
                    .then(|| entry.value.clone().downcast::<V>().ok())
                    .flatten()
            }
            _ => None,
        };
        let counter = if fresh.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fresh.ok_or(Ticket {
            epochs: inner.epochs,
            began: Instant::now(),
        })
    }

    /// Forgets the entry under `key` (one about to be replaced that takes much memory).
    pub fn remove(&self, key: &PageKey) {
        self.lock().entries.remove(key);
    }

    /// Whether entries are kept now (the listener heard its heartbeat lately).
    pub fn trusted(&self) -> bool {
        self.lock().heartbeat.trusted()
    }

    /// Loads answered from memory and loads that read the tables, since start-up.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// Keeps `value`, read from `tables`, under `key` (for `MAX_AGE` at most), unless anything
    /// was forgotten since `ticket`.
    pub fn fill<V: Any + Send + Sync>(
        &self,
        ticket: Ticket,
        key: PageKey,
        tables: Tables,
        value: Arc<V>,
    ) {
        self.fill_for(ticket, key, tables, value, MAX_AGE);
    }

    /// `fill`, for a value that is used for `max_age` at most (one that costs more to read).
    pub fn fill_for<V: Any + Send + Sync>(
        &self,
        ticket: Ticket,
        key: PageKey,
        tables: Tables,
        value: Arc<V>,
        max_age: Duration,
    ) {
        let mut inner = self.lock();
        let forgotten_since = tables
            .bits()
            .any(|bit| inner.epochs[bit] != ticket.epochs[bit]);
        if !inner.heartbeat.trusted() || forgotten_since {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            // Pages fill again at once; the search index (kept longer) costs more to rebuild.
            inner.entries.retain(|_, entry| entry.max_age > MAX_AGE);
        }
        inner.entries.insert(
            key,
            Entry {
                value,
                tables,
                read_at: ticket.began,
                max_age,
                refreshing: false,
            },
        );
    }

    /// The value under `key`, or what `load` reads (from `tables`), kept for the next request
    /// if `keep` says so of it.
    pub async fn load<V, E>(
        &self,
        key: PageKey,
        tables: Tables,
        load: impl Future<Output = Result<V, E>>,
        keep: impl FnOnce(&V) -> bool,
    ) -> Result<Arc<V>, E>
    where
        V: Any + Send + Sync,
    {
        match self.get_kept::<V>(&key) {
            Ok(value) => Ok(value),
            Err(ticket) => {
                let value = Arc::new(load.await?);
                if keep(&value) {
                    self.fill(ticket, key, tables, value.clone());
                }
                Ok(value)
            }
        }
    }

    /// Whether the caller may load `key` in the background: false while another load of it
    /// runs. The caller ends with `end_background`.
    pub fn begin_background(&self, key: &PageKey) -> bool {
        self.lock().loading.insert(key.clone())
    }

    pub fn end_background(&self, key: &PageKey) {
        self.lock().loading.remove(key);
    }

    /// Forgets every entry read from any of `tables`.
    pub fn forget(&self, tables: Tables) {
        let mut inner = self.lock();
        for bit in tables.bits() {
            inner.epochs[bit] += 1;
        }
        inner
            .entries
            .retain(|_, entry| !entry.tables.overlaps(tables));
    }

    /// Waits until the listener has heard every change committed before this call (for tests
    /// that change tables behind keyhold's back and look at a page at once): notices arrive in
    /// commit order, so hearing one sent now is enough. Fails after `MAX_AGE` without it.
    pub fn catch_up(&self, conn: &mut PgConnection) -> anyhow::Result<()> {
        if !self.lock().heartbeat.trusted() {
            return Ok(());
        }
        let token = format!("{SYNC}{}", crate::crypto::random_token());
        diesel::sql_query(format!("NOTIFY {}, '{token}'", PageCache::CHANNEL)).execute(conn)?;
        let deadline = Instant::now() + MAX_AGE;
        while self.lock().synced.as_deref() != Some(token.as_str()) {
            if Instant::now() >= deadline {
                anyhow::bail!("the change listener did not hear its notice within {MAX_AGE:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }
}

impl Listener for PageCache {
    /// The channel the tables' triggers notify, with the table's name as payload.
    const CHANNEL: &'static str = "keyhold_changes";
    const NAME: &'static str = "change-listener";

    fn notice(&self, payload: &str) {
        match payload.strip_prefix(SYNC) {
            Some(_) => self.lock().synced = Some(payload.to_string()),
            None => self.forget(Tables::named(payload)),
        }
    }

    fn heard(&self) {
        self.lock().heartbeat.heard();
    }

    fn forget_all(&self) {
        let mut inner = self.lock();
        for epoch in &mut inner.epochs {
            *epoch += 1;
        }
        inner.entries.clear();
        inner.heartbeat.lost();
    }
}

/// Middleware: once a request that may write is done, this process forgets every page it
/// kept (its own notices would come a few milliseconds later); the cache is found as app data,
/// `web::Data<PageCache>`. Signing in and out write no table a page is read from (and a storm
/// of wrong passwords must not empty the cache).
pub async fn forget_after_writes(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let writes = !req.method().is_safe() && !matches!(req.path(), "/login" | "/logout");
    let cache = writes
        .then(|| req.app_data::<web::Data<PageCache>>())
        .flatten()
        .cloned();
    let response = next.call(req).await;
    if let Some(cache) = cache {
        cache.forget(Tables::ALL);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notices::HEARD_WITHIN;

    fn live() -> PageCache {
        let cache = PageCache::default();
        cache.heard();
        cache
    }

    fn keep(cache: &PageCache, key: &str, tables: Tables, value: &str) {
        let ticket = cache.get::<String>(key).unwrap_err();
        cache.fill(ticket, key.into(), tables, Arc::new(value.to_string()));
    }

    /// Fills `key` with `value`, read from credentials, with `ticket`.
    fn put(cache: &PageCache, ticket: Ticket, key: &str, value: &str) {
        cache.fill(
            ticket,
            key.into(),
            Tables::CREDENTIALS,
            Arc::new(value.to_string()),
        );
    }

    #[test]
    fn an_entry_is_served_until_a_table_it_was_read_from_changes() {
        let cache = live();
        keep(
            &cache,
            "tab",
            Tables::CREDENTIALS | Tables::PROJECTS,
            "rows",
        );
        keep(&cache, "backups", Tables::BACKUPS, "backups");
        assert_eq!(*cache.get::<String>("tab").unwrap(), "rows");
        cache.notice("projects");
        assert!(cache.get::<String>("tab").is_err());
        assert_eq!(*cache.get::<String>("backups").unwrap(), "backups");
        cache.notice("a_table_added_later");
        assert!(cache.get::<String>("backups").is_err(), "unknown: all");
    }

    #[test]
    fn a_load_that_began_before_a_change_does_not_fill() {
        let cache = live();
        let ticket = cache.get::<String>("tab").unwrap_err();
        cache.notice("credentials");
        put(&cache, ticket, "tab", "old");
        assert!(cache.get::<String>("tab").is_err());
    }

    #[test]
    fn nothing_is_kept_while_the_listener_is_not_heard() {
        let cache = PageCache::default();
        keep(&cache, "tab", Tables::CREDENTIALS, "rows");
        assert!(cache.get::<String>("tab").is_err(), "never heard");
        cache.heard();
        keep(&cache, "tab", Tables::CREDENTIALS, "rows");
        assert!(cache.get::<String>("tab").is_ok());
        cache.forget_all();
        assert!(cache.get::<String>("tab").is_err(), "connection lost");
    }

    #[test]
    fn entries_age_out_and_a_silent_listener_stops_the_cache() {
        let cache = live();
        // Read more than `MAX_AGE` ago: never served, whatever the listener says.
        let mut ticket = cache.get::<String>("old").unwrap_err();
        ticket.began = Instant::now() - MAX_AGE - Duration::from_millis(1);
        put(&cache, ticket, "old", "old");
        assert!(cache.get::<String>("old").is_err(), "too old");
        keep(&cache, "tab", Tables::CREDENTIALS, "rows");
        assert!(cache.get::<String>("tab").is_ok());
        // The heartbeat last heard longer ago than `HEARD_WITHIN` (a hung connection, a pooler
        // that drops notices): nothing is served or kept until it is heard again.
        cache.lock().heartbeat.heard =
            Some(Instant::now() - HEARD_WITHIN - Duration::from_millis(1));
        assert!(cache.get::<String>("tab").is_err(), "listener silent");
        let ticket = cache.get::<String>("other").unwrap_err();
        put(&cache, ticket, "other", "x");
        cache.heard();
        assert!(
            cache.get::<String>("other").is_err(),
            "not kept while silent"
        );
    }

    #[test]
    fn one_request_refreshes_an_ending_entry_while_the_others_are_answered_from_it() {
        let cache = live();
        let mut ticket = cache.get::<String>("tab").unwrap_err();
        ticket.began = Instant::now() - (MAX_AGE - REFRESH_BEFORE) - Duration::from_millis(1);
        put(&cache, ticket, "tab", "old");
        let refresh = cache
            .get::<String>("tab")
            .expect_err("the first reads again");
        for _ in 0..3 {
            assert_eq!(
                *cache.get::<String>("tab").unwrap(),
                "old",
                "the others wait not"
            );
        }
        put(&cache, refresh, "tab", "new");
        assert_eq!(*cache.get::<String>("tab").unwrap(), "new");
    }

    #[test]
    fn a_load_is_kept_when_only_other_tables_changed_meanwhile() {
        let cache = live();
        let ticket = cache.get::<String>("index").unwrap_err();
        cache.notice("backups");
        put(&cache, ticket, "index", "i");
        assert!(
            cache.get::<String>("index").is_ok(),
            "backups are not read by it"
        );
    }

    #[test]
    fn a_value_is_only_served_as_its_own_type() {
        let cache = live();
        keep(&cache, "tab", Tables::CREDENTIALS, "rows");
        assert!(cache.get::<Vec<u8>>("tab").is_err());
    }

    #[actix_web::test]
    async fn requests_that_may_write_forget_every_page_when_done() {
        use actix_web::http::Method;
        use actix_web::{App, HttpResponse, middleware::from_fn, test};
        // No listener: only the middleware can empty this cache.
        let cache = Arc::new(live());
        let app = test::init_service(
            App::new()
                .app_data(web::Data::from(cache.clone()))
                .wrap(from_fn(forget_after_writes))
                .default_service(web::to(HttpResponse::Ok)),
        )
        .await;
        for (method, path, forgets) in [
            (Method::GET, "/credentials/ai", false),
            (Method::HEAD, "/credentials/ai", false),
            (Method::OPTIONS, "/credentials/ai", false),
            (Method::POST, "/login", false),
            (Method::POST, "/logout", false),
            (Method::POST, "/credentials/ai/7/lock", true),
            (Method::POST, "/setup", true),
            (Method::PUT, "/credentials/ai/7", true),
            (Method::DELETE, "/credentials/ai/7", true),
        ] {
            cache.forget(Tables::ALL);
            keep(&cache, "tab", Tables::CREDENTIALS, "rows");
            let request = test::TestRequest::default()
                .method(method.clone())
                .uri(path)
                .to_request();
            test::call_service(&app, request).await;
            assert_eq!(
                cache.get::<String>("tab").is_err(),
                forgets,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn sync_notices_are_recorded_not_taken_for_tables() {
        let cache = live();
        keep(&cache, "tab", Tables::CREDENTIALS, "rows");
        cache.notice("sync:abc");
        assert!(cache.get::<String>("tab").is_ok());
        assert_eq!(cache.lock().synced.as_deref(), Some("sync:abc"));
    }
}
