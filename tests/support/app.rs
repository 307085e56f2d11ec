//! Starts keyhold exactly as production does (`Application::build`), on port 0, against a
//! fresh database cloned from a migrated template, and drives it over HTTP like a browser.

use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use diesel::prelude::*;
use diesel::sql_types::BigInt;
use keyhold::config::Settings;
use keyhold::db::DbPool;
use keyhold::startup::Application;
use reqwest::StatusCode;
use reqwest::redirect::Policy;
use sha2::{Digest, Sha256};

use super::client::Client;

static NEXT_DATABASE: AtomicUsize = AtomicUsize::new(0);

/// The PostgreSQL server tests use (`DATABASE_URL` without its database, or the local one).
fn server_url() -> url::Url {
    let base = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| keyhold::config::DEFAULT_DATABASE_URL.to_string());
    url::Url::parse(&base).expect("DATABASE_URL is a URL")
}

pub fn database_url(name: &str) -> String {
    // Every connection of the tests starts from here: before the first, OpenSSL is told not to
    // clean up at exit (see the function).
    keyhold::db::skip_openssl_cleanup_at_exit();
    let mut url = server_url();
    url.set_path(&format!("/{name}"));
    // libpq's check for a Kerberos ticket (GSSAPI encryption, tried first by default) touches
    // Kerberos state that its library destroys at exit, while the pool's threads may still be
    // connecting: the test process would abort at the end of a passing run. The test server
    // offers no GSSAPI; keyhold's own binary ends with `db::exit_now` instead.
    if !url.query_pairs().any(|(key, _)| key == "gssencmode") {
        url.query_pairs_mut().append_pair("gssencmode", "disable");
    }
    url.to_string()
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Name of the migrated template database for the current migrations (made once, reused).
fn template_database() -> String {
    let mut hasher = Sha256::new();
    let mut files: Vec<_> =
        walk(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations"));
    files.sort();
    for file in files {
        hasher.update(file.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&file).expect("migration readable"));
    }
    let name = format!("keyhold_tpl_{}", &hex::encode(hasher.finalize())[..12]);
    let mut conn =
        PgConnection::establish(&database_url("postgres")).expect("PostgreSQL reachable");
    diesel::sql_query("SELECT pg_advisory_lock(4242)")
        .execute(&mut conn)
        .expect("lock");
    drop_stale_databases(&mut conn, &name);
    let exists = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<diesel::sql_types::Text, _>(&name)
        .get_result::<Count>(&mut conn)
        .expect("query")
        .n
        > 0;
    if !exists {
        let building = format!("{name}_building");
        diesel::sql_query(format!("DROP DATABASE IF EXISTS {building}"))
            .execute(&mut conn)
            .expect("drop");
        diesel::sql_query(format!("CREATE DATABASE {building}"))
            .execute(&mut conn)
            .expect("create template");
        {
            let mut template = PgConnection::establish(&database_url(&building)).expect("connect");
            keyhold::db::migrate(&mut template).expect("migrations apply");
        }
        diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {name}"))
            .execute(&mut conn)
            .expect("rename template");
    }
    diesel::sql_query("SELECT pg_advisory_unlock(4242)")
        .execute(&mut conn)
        .expect("unlock");
    name
}

/// Drops the databases of earlier test processes that died before cleaning up (their names
/// carry the process id).
fn drop_stale_databases(conn: &mut PgConnection, template: &str) {
    #[derive(QueryableByName)]
    struct Name {
        #[diesel(sql_type = diesel::sql_types::Text)]
        datname: String,
    }
    let names: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database
         WHERE datname ~ '^keyhold_(test|data|browser_[a-z_]+)_[0-9]+(_[0-9]+)?$'",
    )
    .load(conn)
    .unwrap_or_default();
    // Templates of other migrations: a few are kept (another checkout's suite, a CI clone,
    // may be running on the same server with its own), more are old and dropped, never while
    // in use (no FORCE: a clone being made keeps its template).
    let templates: Vec<Name> = diesel::sql_query(
        "SELECT datname FROM pg_database WHERE datname ~ '^keyhold_tpl_[0-9a-f]+$' AND datname <> $1",
    )
    .bind::<diesel::sql_types::Text, _>(template)
    .load(conn)
    .unwrap_or_default();
    if templates.len() > 2 {
        for Name { datname } in templates {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname}")).execute(conn);
        }
    }
    for Name { datname } in names {
        let pid = datname
            .split('_')
            .filter_map(|part| part.parse::<u32>().ok())
            .next();
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = diesel::sql_query(format!("DROP DATABASE IF EXISTS {datname} WITH (FORCE)"))
                .execute(conn);
        }
    }
}

/// Files (not directories) under `dir`; none when it cannot be read.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            if entry.path().is_dir() {
                walk(&entry.path())
            } else {
                vec![entry.path()]
            }
        })
        .collect()
}

/// The data keys of every test app and of every keyhold process a test starts.
pub fn test_data_keys() -> String {
    format!(
        "t1:{}",
        base64::engine::general_purpose::STANDARD.encode([7u8; 32])
    )
}

/// The session key of every test app and keyhold process (so sessions cross instances).
pub fn test_session_key() -> String {
    base64::engine::general_purpose::STANDARD.encode([42u8; 64])
}

/// The keyring tests seal with, as the apps do.
pub fn test_keyring() -> keyhold::crypto::Keyring {
    keyhold::crypto::Keyring::parse(&test_data_keys(), None).expect("test keyring")
}

/// A running keyhold with its own database, dropped with it.
pub struct TestApp {
    pub address: String,
    pub pool: DbPool,
    pub database: String,
    pub database_url: String,
    /// The app's page cache: `query` waits until it has heard of the changes it made.
    pub pages: std::sync::Arc<keyhold::page_cache::PageCache>,
    /// False when the app was started on another test's database (`DATABASE_URL` override),
    /// which that test drops.
    owns_database: bool,
}

/// Starts keyhold with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts keyhold with some settings overridden (`("KEYHOLD_…", "value")`).
pub async fn spawn_app_with(overrides: &[(&str, &str)]) -> TestApp {
    // Errors (with their cause chains) show in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_test_writer()
        .try_init();
    let shared = overrides
        .iter()
        .find(|(name, _)| *name == "DATABASE_URL")
        .map(|(_, url)| url.to_string());
    let database = format!(
        "keyhold_test_{}_{}",
        std::process::id(),
        NEXT_DATABASE.fetch_add(1, Ordering::SeqCst)
    );
    if shared.is_none() {
        let template = tokio::task::spawn_blocking(template_database)
            .await
            .expect("template");
        let (template, database) = (template.clone(), database.clone());
        tokio::task::spawn_blocking(move || {
            let mut conn = PgConnection::establish(&database_url("postgres")).expect("connect");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                .execute(&mut conn)
                .expect("drop stale");
            diesel::sql_query(format!("CREATE DATABASE {database} TEMPLATE {template}"))
                .execute(&mut conn)
                .expect("create test database");
        })
        .await
        .expect("create database");
    }
    let url = shared.clone().unwrap_or_else(|| database_url(&database));
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), url.clone()),
        ("KEYHOLD_BIND".into(), "127.0.0.1:0".into()),
        ("KEYHOLD_SESSION_KEY".into(), test_session_key()),
        ("KEYHOLD_DATA_KEYS".into(), test_data_keys()),
        ("KEYHOLD_WORKERS".into(), "1".into()),
        ("KEYHOLD_DB_POOL_SIZE".into(), "4".into()),
    ];
    for (name, value) in overrides {
        vars.retain(|(existing, _)| existing != name);
        vars.push((name.to_string(), value.to_string()));
    }
    let settings = Settings::from_lookup(|name| {
        vars.iter()
            .find(|(existing, _)| existing == name)
            .map(|(_, value)| value.clone())
    })
    .expect("test settings");
    let application = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", application.port());
    let pool = application.pool();
    let pages = application.pages();
    actix_web::rt::spawn(application.run_until_stopped());
    TestApp {
        address,
        pool,
        pages,
        database,
        database_url: url,
        owns_database: shared.is_none(),
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if !self.owns_database {
            return;
        }
        let database = self.database.clone();
        let _ = std::thread::spawn(move || {
            if let Ok(mut conn) = PgConnection::establish(&database_url("postgres")) {
                let _ =
                    diesel::sql_query(format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                        .execute(&mut conn);
            }
        })
        .join();
    }
}

/// An account created by a test, with its password.
#[derive(Clone, Debug)]
pub struct Account {
    pub email: String,
    pub password: String,
}

impl TestApp {
    /// A browser with its own cookie jar that does not follow redirects.
    pub fn client(&self) -> Client {
        Client {
            base: self.address.clone(),
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(Policy::none())
                // keyhold closes a connection idle for 5 s (actix's keep-alive); a client that
                // reuses one at that very moment gets no answer. Browsers retry; this does not.
                .pool_idle_timeout(std::time::Duration::from_secs(2))
                .build()
                .expect("client"),
        }
    }

    /// A new browser signed in as `account`.
    pub async fn signed_in(&self, account: &Account) -> Client {
        let client = self.client();
        assert_eq!(
            client
                .login(&account.email, &account.password)
                .await
                .status(),
            StatusCode::SEE_OTHER
        );
        client
    }

    /// Runs a query on the app's database, and waits until the app has heard of what it
    /// changed (its pages are kept in memory until told; that is tested on its own).
    pub fn query<T>(&self, f: impl FnOnce(&mut PgConnection) -> QueryResult<T>) -> T {
        let mut conn = self.pool.get().expect("connection");
        let result = f(&mut conn).expect("query");
        self.pages.catch_up(&mut conn).expect("notice");
        result
    }

    /// Runs a query on the app's database as another program would: without waiting for the
    /// app to hear of it.
    pub fn query_unheard<T>(&self, f: impl FnOnce(&mut PgConnection) -> QueryResult<T>) -> T {
        let mut conn = self.pool.get().expect("connection");
        f(&mut conn).expect("query")
    }

    /// Counts rows of a table.
    pub fn count(&self, table: &str) -> i64 {
        self.query(|conn| {
            diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
                .get_result::<Count>(conn)
        })
        .n
    }

    /// Completes first-run setup and returns the signed-in Partner's browser.
    pub async fn partner(&self) -> (Client, Account) {
        let client = self.client();
        let account = Account {
            email: "pat@partner.example".into(),
            password: "partner-password-1".into(),
        };
        let token = client.token("/setup").await;
        let response = client
            .post(
                "/setup",
                &[
                    ("csrf_token", token.as_str()),
                    ("partner_name", "Acme Cloud Partners"),
                    ("display_name", "Pat Partner"),
                    ("email", &account.email),
                    ("password", &account.password),
                ],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "setup succeeds");
        (client, account)
    }

    /// Id of the organization with this name.
    pub fn organization_id(&self, name: &str) -> i64 {
        let name = name.to_string();
        self.query(move |conn| {
            diesel::sql_query("SELECT id AS n FROM organizations WHERE name = $1")
                .bind::<diesel::sql_types::Text, _>(name)
                .get_result::<Count>(conn)
        })
        .n
    }
}
