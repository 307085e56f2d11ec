//! `Application::build`: the one way keyhold is assembled, used by `keyhold serve` and by every
//! test (on port 0).

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_session::SessionMiddleware;
use actix_session::config::{BrowserSession, TtlExtensionPolicy};
use actix_web::cookie::{Key, SameSite, time};
use actix_web::dev::Server;
use actix_web::middleware::{Compress, from_fn};
use actix_web::{App, HttpServer, web};
use anyhow::Context;
use tracing_actix_web::TracingLogger;

use crate::api;
use crate::auth::csrf::SiteSecurity;
use crate::auth::{SessionTimeouts, csrf, session_ttl};
use crate::backup::runner::{RestoreSettings, Runner};
use crate::backup::scheduler;
use crate::config::Settings;
use crate::credentials::search_index;
use crate::credentials::verify::Endpoints;
use crate::crypto::password::PasswordHasher;
use crate::db::{self, DbPool};
use crate::error::AppError;
use crate::metrics::{self, Metrics};
use crate::notifications::deliver::Deliverer;
use crate::outbound::Outbound;
use crate::page_cache::{self, PageCache};
use crate::projects::data_source::SourceRules;
use crate::routes;
use crate::session_cache::SessionCache;
use crate::session_store::{self, PgSessionStore};
use crate::web::{error_pages, form, security_headers};

/// What every handler can reach.
pub struct AppState {
    pub pool: DbPool,
    pub settings: Settings,
    pub hasher: PasswordHasher,
    pub metrics: Arc<Metrics>,
    pub outbound: Outbound,
    pub endpoints: Endpoints,
    pub runner: Runner,
    /// Sends notifications (and "Send test").
    pub deliverer: Deliverer,
    /// The sessions this process keeps in memory (see `session_cache`).
    pub sessions: Arc<SessionCache>,
    /// What the busiest pages read, kept in memory (see `page_cache`).
    pub pages: Arc<PageCache>,
    /// API requests counted and not yet written (see `tokens::service::TokenUses`).
    pub token_uses: crate::tokens::service::TokenUses,
    /// The WebAuthn relying party of `KEYHOLD_PUBLIC_URL`; `None` when its host is an IP
    /// address (passkeys are then unavailable, and the account page says why).
    pub passkeys: Option<Arc<webauthn_rs::Webauthn>>,
}

impl AppState {
    /// Forgets what this process keeps of a person whose sessions or rights just changed
    /// (disabled, deleted, a new role, organization or password): their sessions, and every
    /// token's row (a token acts with its person's rights).
    pub fn forget_person(&self, person: crate::ids::UserId) {
        self.sessions.forget_user(person);
        self.token_uses.forget();
    }
}

/// A bound, not yet running keyhold server.
pub struct Application {
    port: u16,
    server: Server,
    pool: DbPool,
    runner: Runner,
    pages: Arc<PageCache>,
}

impl Application {
    /// Prepares the database (create, migrate), binds `settings.bind` and builds the server.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Application> {
        let database_url = settings.database_url.clone();
        let pool_size = settings.db_pool_size;
        let pool = web::block(move || db::prepare(&database_url, pool_size))
            .await
            .context("database preparation was interrupted")??;
        let listener = TcpListener::bind(&settings.bind)
            .with_context(|| format!("cannot listen on {} (KEYHOLD_BIND)", settings.bind))?;
        let port = listener.local_addr()?.port();
        // Bound to port 0 (tests): the default public address is at the port given.
        if settings.public_url.port() == Some(0) {
            let _ = settings.public_url.set_port(Some(port));
        }
        let runner = runner(&pool, &settings).await?;
        if settings.scheduler {
            scheduler::spawn(runner.clone(), settings.scheduler_interval);
        }
        let pages = PageCache::start(&settings.database_url, settings.page_cache);
        if settings.page_cache {
            search_index::warm_up(pages.clone(), pool.clone());
        }
        let deliverer = deliverer(&pool, &settings);
        deliverer
            .clone()
            .spawn(chrono::Duration::from_std(settings.missed_grace)?);
        if settings.scheduler && !settings.reverify_every.is_zero() {
            spawn_reverification(pool.clone(), pages.clone(), &settings);
        }
        let server = serve(
            listener,
            pool.clone(),
            runner.clone(),
            pages.clone(),
            deliverer,
            settings,
        )?;
        spawn_session_cleanup(pool.clone());
        Ok(Application {
            port,
            server,
            pool,
            runner,
            pages,
        })
    }

    /// The port actually bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The database pool, for tests that look behind the pages.
    pub fn pool(&self) -> DbPool {
        self.pool.clone()
    }

    /// The page cache, for tests that change tables behind the pages (`PageCache::catch_up`).
    pub fn pages(&self) -> Arc<PageCache> {
        self.pages.clone()
    }

    /// Serves until the process is asked to stop, then lets running backups finish (or marks
    /// them interrupted after a minute).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let served = self.server.await;
        self.runner.shutdown(Duration::from_secs(60)).await;
        served
    }
}

/// The backup runner of this process.
pub async fn runner(pool: &DbPool, settings: &Settings) -> anyhow::Result<Runner> {
    crate::projects::model::set_missed_grace(settings.missed_grace);
    // Identifying keyhold's own database is a query: off the async threads.
    let (identifying, allow, networks) = (
        pool.clone(),
        settings.data_source_allow_trust,
        settings.data_source_networks.clone(),
    );
    let sources =
        tokio::task::spawn_blocking(move || SourceRules::of(&identifying, allow, networks))
            .await
            .context("identifying keyhold's own database was interrupted")?
            .context("cannot identify keyhold's own database")?;
    Ok(Runner::new(
        pool.clone(),
        settings.keyring.clone(),
        Outbound::new(settings.outbound_timeout, settings.outbound_allow_private),
        sources,
    )
    .with_stale_after(settings.backup_stale_after)
    .with_transfers(settings.backup_transfer_timeout, crate::storage::MAX_PARTS)
    .with_concurrency(settings.backup_concurrency)
    .with_memory_part(settings.backup_memory_part)
    .with_drill_server(settings.drill_database_url.clone())
    .with_restores(RestoreSettings {
        directory: settings.restore_directory.clone(),
        keep_free: settings.restore_keep_free_mb.saturating_mul(1024 * 1024),
        jobs: settings.restore_jobs,
        download_streams: settings.restore_download_streams,
        download_part: settings.restore_download_part_kb.saturating_mul(1024),
    }))
}

/// The notification sender of this process.
pub fn deliverer(pool: &DbPool, settings: &Settings) -> Deliverer {
    Deliverer {
        pool: pool.clone(),
        keyring: settings.keyring.clone(),
        outbound: Outbound::new(settings.outbound_timeout, settings.outbound_allow_private),
        first_retry: settings.notify_retry,
        looks: Default::default(),
    }
}

fn serve(
    listener: TcpListener,
    pool: DbPool,
    runner: Runner,
    pages: Arc<PageCache>,
    deliverer: Deliverer,
    settings: Settings,
) -> anyhow::Result<Server> {
    let session_key = Key::from(&settings.session_key);
    let workers = settings.workers;
    let blocking_threads = (settings.db_pool_size as usize + settings.hash_concurrency).max(4);
    let sessions = SessionCache::start(&settings.database_url);
    let state = web::Data::new(AppState {
        token_uses: Default::default(),
        // In production a `localhost` relying party (KEYHOLD_PUBLIC_URL unset) is never the
        // address people use: passkeys stay off, and the account page says what to set.
        passkeys: (!(settings.production && settings.public_url.host_str() == Some("localhost")))
            .then(|| crate::auth::passkey::relying_party(&settings.public_url))
            .flatten()
            .map(Arc::new),
        sessions,
        pages,
        hasher: PasswordHasher::new(settings.hash_concurrency),
        outbound: Outbound::new(settings.outbound_timeout, settings.outbound_allow_private),
        runner,
        deliverer,
        endpoints: Endpoints {
            aws_sts: settings.aws_sts_endpoint.clone(),
            azure_authority: settings.azure_authority.clone(),
        },
        metrics: Arc::new(Metrics::default()),
        pool: pool.clone(),
        settings,
    });
    let server = HttpServer::new(move || {
        let settings = &state.settings;
        let cookie_name = if settings.cookie_secure {
            "__Host-keyhold_session"
        } else {
            "keyhold_session"
        };
        let sessions = SessionMiddleware::builder(
            PgSessionStore::new(state.pool.clone(), state.sessions.clone()),
            session_key.clone(),
        )
        .cookie_name(cookie_name.to_string())
        .cookie_secure(settings.cookie_secure)
        .cookie_http_only(true)
        .cookie_same_site(SameSite::Lax)
        .session_lifecycle(
            BrowserSession::default()
                .state_ttl(time::Duration::seconds(
                    session_ttl(settings.session_idle).as_secs() as i64,
                ))
                .state_ttl_extension_policy(TtlExtensionPolicy::OnStateChanges),
        )
        .build();
        App::new()
            .app_data(state.clone())
            .app_data(web::Data::from(state.pages.clone()))
            .app_data(web::Data::from(state.metrics.clone()))
            .app_data(web::Data::new(SessionTimeouts {
                absolute: settings.session_absolute,
                idle: settings.session_idle,
            }))
            .app_data(web::Data::new(SiteSecurity {
                cookie_secure: settings.cookie_secure,
            }))
            .app_data(web::FormConfig::default().limit(64 * 1024))
            .app_data(web::PayloadConfig::new(256 * 1024))
            .configure(routes::probes)
            // No session and no CSRF under the API: a bearer token is its only credential.
            .service(
                web::scope(api::PREFIX)
                    .configure(routes::api)
                    .app_data(web::JsonConfig::default().limit(256 * 1024))
                    .default_service(web::to(api::not_found))
                    .wrap(from_fn(page_cache::forget_after_writes)),
            )
            .service(
                web::scope("")
                    .configure(routes::pages)
                    .wrap(from_fn(form::refuse_nul))
                    .wrap(from_fn(page_cache::forget_after_writes))
                    .wrap(from_fn(csrf::protect))
                    .wrap(from_fn(error_pages::snapshot_session))
                    .wrap(sessions),
            )
            .default_service(web::to(|| async { Err::<&str, _>(AppError::NotFound) }))
            .wrap(from_fn(error_pages::render))
            .wrap(security_headers(settings.cookie_secure))
            .wrap(from_fn(metrics::record))
            .wrap(Compress::default())
            .wrap(TracingLogger::default())
    })
    .workers(workers)
    // Every database call waits on a blocking thread; more threads than connections only
    // queue (and each costs memory), so bound them by the pool.
    .worker_max_blocking_threads(blocking_threads)
    .shutdown_timeout(30)
    .listen(listener)?
    .run();
    Ok(server)
}

/// Re-verifies credentials whose last check is older than `KEYHOLD_REVERIFY_HOURS`, a few at
/// each scheduler interval (spread over the day; each claimed by one instance).
fn spawn_reverification(pool: DbPool, pages: Arc<PageCache>, settings: &Settings) {
    let (keyring, every, interval) = (
        settings.keyring.clone(),
        settings.reverify_every,
        settings.scheduler_interval,
    );
    let outbound = Outbound::new(settings.outbound_timeout, settings.outbound_allow_private);
    let endpoints = Endpoints {
        aws_sts: settings.aws_sts_endpoint.clone(),
        azure_authority: settings.azure_authority.clone(),
    };
    actix_web::rt::spawn(async move {
        let mut timer = actix_web::rt::time::interval(interval);
        loop {
            timer.tick().await;
            let context = crate::credentials::service::Context {
                pool: &pool,
                keyring: &keyring,
                outbound: &outbound,
                endpoints: &endpoints,
                pages: &pages,
                backups_held: crate::backup::model::Backup::names_held_by,
            };
            if let Err(error) = crate::credentials::service::reverify_due(&context, every, 5).await
            {
                tracing::warn!("re-verification pass failed: {error}");
            }
        }
    });
}

/// Deletes expired sessions every ten minutes.
fn spawn_session_cleanup(pool: DbPool) {
    actix_web::rt::spawn(async move {
        let mut interval = actix_web::rt::time::interval(Duration::from_secs(600));
        loop {
            interval.tick().await;
            match db::run(&pool, session_store::delete_expired).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!("deleted {n} expired sessions"),
                Err(error) => tracing::warn!("session cleanup failed: {error}"),
            }
        }
    });
}
