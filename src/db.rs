//! The database: creating it when missing, embedded migrations, the connection pool, and
//! `db::run`, the one way handlers reach diesel (on the blocking thread pool).

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use actix_web::web;
use anyhow::{Context, anyhow};
use diesel::pg::Pg;
use diesel::prelude::*;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::r2d2::{ConnectionManager, ManageConnection, Pool};
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::access::Scope;
use crate::schema::organizations;

/// The pool every request and background task draws connections from.
pub type DbPool = Pool<Manager>;

/// A connection handed out within this long of its last use, without a failure since, is
/// trusted without a ping (HikariCP's "alive bypass window"): under load no checkout pays a
/// round trip, while one that sat idle (and may have outlived a PostgreSQL restart) is pinged.
const TRUSTED_FOR: Duration = Duration::from_millis(500);

/// A pooled connection and what its checks need to know.
pub struct Conn {
    conn: PgConnection,
    returned: Instant,
    failed: bool,
}

impl Conn {
    /// Runs `work` on this connection, remembering a failure so that the next checkout pings it
    /// before trusting it (a dead socket shows up as an error, which diesel does not remember).
    pub fn attempt<T, E>(
        &mut self,
        work: impl FnOnce(&mut PgConnection) -> Result<T, E>,
    ) -> Result<T, E> {
        let result = work(&mut self.conn);
        self.failed |= result.is_err();
        result
    }
}

impl Deref for Conn {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

/// Opens and checks the pool's connections (diesel's manager, with the bypass window above).
pub struct Manager(ConnectionManager<PgConnection>);

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        Ok(Conn {
            conn: self.0.connect()?,
            returned: Instant::now(),
            failed: false,
        })
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        if !conn.failed && conn.returned.elapsed() < TRUSTED_FOR {
            return Ok(());
        }
        self.0.is_valid(&mut conn.conn)?;
        conn.failed = false;
        Ok(())
    }

    /// Called as a connection goes back to the pool.
    fn has_broken(&self, conn: &mut Conn) -> bool {
        conn.returned = Instant::now();
        self.0.has_broken(&mut conn.conn)
    }
}

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Any fixed number for `pg_advisory_lock`, so concurrent start-ups migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6b65_7968_6f6c_6400;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Why `run` gave no answer: no connection (the database is unreachable, or the pool is
/// exhausted), or the query's own error.
#[derive(Debug)]
pub enum RunError<E> {
    Unavailable(String),
    Failed(E),
}

impl<E: std::fmt::Display> std::fmt::Display for RunError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Unavailable(reason) => write!(f, "the database is unavailable: {reason}"),
            RunError::Failed(error) => error.fmt(f),
        }
    }
}

/// Runs `query` on a pooled connection off the async threads.
pub async fn run<T, E, F>(pool: &DbPool, query: F) -> Result<T, RunError<E>>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Send + 'static,
{
    let pool = pool.clone();
    match web::block(move || {
        let mut conn = pool
            .get()
            .map_err(|error| RunError::Unavailable(error.to_string()))?;
        conn.attempt(query).map_err(RunError::Failed)
    })
    .await
    {
        Ok(result) => result,
        Err(blocking) => Err(RunError::Unavailable(format!(
            "the blocking task failed: {blocking}"
        ))),
    }
}

/// A set of keyhold's tables, as the change notices name them (migration 7): what a cached
/// read depends on. A query that is kept in memory declares the tables it reads beside its SQL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tables(u8);

impl Tables {
    pub const CREDENTIALS: Tables = Tables(1);
    pub const ORGANIZATIONS: Tables = Tables(1 << 1);
    pub const PROJECTS: Tables = Tables(1 << 2);
    pub const BACKUPS: Tables = Tables(1 << 3);
    pub const BACKUP_POLICIES: Tables = Tables(1 << 4);
    pub const RESTORES: Tables = Tables(1 << 5);
    pub const DRILLS: Tables = Tables(1 << 6);
    pub const ALL: Tables = Tables(u8::MAX);

    /// The table a notice names; an unknown name stands for all of them.
    pub fn named(name: &str) -> Tables {
        match name {
            "credentials" => Tables::CREDENTIALS,
            "organizations" => Tables::ORGANIZATIONS,
            "projects" => Tables::PROJECTS,
            "backups" => Tables::BACKUPS,
            "backup_policies" => Tables::BACKUP_POLICIES,
            "restores" => Tables::RESTORES,
            "drills" => Tables::DRILLS,
            _ => Tables::ALL,
        }
    }

    /// This set and `other` (`|`, usable in a const).
    pub const fn with(self, other: Tables) -> Tables {
        Tables(self.0 | other.0)
    }

    pub fn overlaps(self, other: Tables) -> bool {
        self.0 & other.0 != 0
    }

    /// The bits of the tables in the set (0 to 7).
    pub fn bits(self) -> impl Iterator<Item = usize> {
        (0..8).filter(move |bit| self.0 & (1 << bit) != 0)
    }
}

impl std::ops::BitOr for Tables {
    type Output = Tables;

    fn bitor(self, other: Tables) -> Tables {
        Tables(self.0 | other.0)
    }
}

/// A value bound into a `Prepared` query.
#[derive(Clone, Debug)]
pub enum Bind {
    Int(i64),
    Text(String),
    Ints(Vec<i64>),
}

/// How a `Scope` (core) reads in SQL.
impl Scope {
    /// The ids of the organizations this scope reaches, as a subquery: a row of another table
    /// is inside the scope when `its_organization_id.eq_any(scope.organization_ids())`.
    pub fn organization_ids(&self) -> organizations::BoxedQuery<'static, Pg, BigInt> {
        let ids = organizations::table.select(organizations::id).into_boxed();
        match *self {
            Scope::Partner(partner) => ids.filter(organizations::partner_id.eq(partner)),
            Scope::Organization(organization) => ids.filter(organizations::id.eq(organization)),
        }
    }

    /// The scope as a condition of a raw statement (`db::Prepared`) over rows whose
    /// organization id is the column `organization` and whose organization is joined as `o`:
    /// the condition's text, its value behind `(SELECT ?)` (so one plan serves every scope),
    /// and that value.
    pub fn condition(&self, organization: &str) -> (String, Bind) {
        match *self {
            Scope::Partner(partner) => (
                "o.partner_id = (SELECT ?)".to_string(),
                Bind::Int(partner.0),
            ),
            Scope::Organization(id) => (format!("{organization} = (SELECT ?)"), Bind::Int(id.0)),
        }
    }
}

/// `%term%` for LIKE (lowercased, for `lower(column) LIKE`), with the term's own wildcards
/// escaped.
pub fn like_pattern(term: &str) -> String {
    let escaped = term
        .to_lowercase()
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// SQL assembled at run time from the code's own pieces (never from request text), which
/// diesel prepares once per connection and reuses, as it does for its query builder but never
/// for `sql_query`: PostgreSQL then skips planning, which for a listing costs more than running
/// it. Each `?` of the text stands for the next value of `binds`.
#[derive(Debug)]
pub struct Prepared {
    parts: Vec<String>,
    binds: Vec<Bind>,
}

impl Prepared {
    pub fn new(sql: &str, binds: Vec<Bind>) -> Prepared {
        let parts: Vec<String> = sql.split('?').map(str::to_string).collect();
        assert_eq!(
            parts.len(),
            binds.len() + 1,
            "one value for each placeholder of {sql}"
        );
        Prepared { parts, binds }
    }
}

impl QueryFragment<Pg> for Prepared {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        let mut binds = self.binds.iter();
        for (i, part) in self.parts.iter().enumerate() {
            if i > 0 {
                match binds.next() {
                    Some(Bind::Int(value)) => {
                        out.push_bind_param::<diesel::sql_types::BigInt, _>(value)?
                    }
                    Some(Bind::Text(value)) => out.push_bind_param::<Text, _>(value)?,
                    Some(Bind::Ints(values)) => out.push_bind_param::<diesel::sql_types::Array<
                        diesel::sql_types::BigInt,
                    >, _>(values)?,
                    None => {}
                }
            }
            out.push_sql(part);
        }
        Ok(())
    }
}

impl QueryId for Prepared {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl Query for Prepared {
    type SqlType = diesel::sql_types::Untyped;
}

impl<C> RunQueryDsl<C> for Prepared {}

impl Prepared {
    /// This statement with rows of the SQL types `ST`, which diesel then decodes by position
    /// (an untyped one is decoded by column name: a search through the row's column names for
    /// every field of every row).
    pub fn typed<ST>(self) -> Typed<ST> {
        Typed {
            prepared: self,
            rows: std::marker::PhantomData,
        }
    }
}

/// A `Prepared` statement whose rows have the SQL types `ST`.
#[derive(Debug)]
pub struct Typed<ST> {
    prepared: Prepared,
    rows: std::marker::PhantomData<ST>,
}

impl<ST> QueryFragment<Pg> for Typed<ST> {
    fn walk_ast<'b>(&'b self, out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        self.prepared.walk_ast(out)
    }
}

impl<ST> QueryId for Typed<ST> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<ST: diesel::sql_types::SqlType> Query for Typed<ST> {
    type SqlType = ST;
}

impl<ST, C> RunQueryDsl<C> for Typed<ST> {}

/// Keeps OpenSSL (which libpq loads) from cleaning up at process exit. Its `atexit` clean-up
/// frees state that threads still running at that moment may use (the pool's, the session
/// listener's: libpq connections over TLS), and a test process exiting so crashed in it
/// (SIGSEGV in libcrypto, twice in a dozen runs). The process is ending anyway; the clean-up
/// only returns memory. Must run before the first TLS connection: OpenSSL reads this option
/// when it first initializes. Found at run time, so nothing links libcrypto directly.
pub fn skip_openssl_cleanup_at_exit() {
    /// `OPENSSL_INIT_NO_ATEXIT` (OpenSSL 1.1.1b and later).
    const NO_ATEXIT: u64 = 0x0008_0000;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: looks up a symbol of the libraries already loaded (libpq's libcrypto) and, if
        // found, calls it with the signature OpenSSL documents:
        // `int OPENSSL_init_crypto(uint64_t opts, const OPENSSL_INIT_SETTINGS *settings)`.
        unsafe {
            let symbol = libc::dlsym(libc::RTLD_DEFAULT, c"OPENSSL_init_crypto".as_ptr());
            if !symbol.is_null() {
                let init: extern "C" fn(u64, *const libc::c_void) -> libc::c_int =
                    std::mem::transmute(symbol);
                init(NO_ATEXIT, std::ptr::null());
            }
        }
    });
}

/// Ends the process at once, with `code`, once standard output and error are flushed: no exit
/// handlers, no library destructors, no dropping of the runtime. The libraries libpq loads tear
/// their state down at exit while the pool's and the listeners' threads may still be
/// connecting: keyhold aborted in Kerberos (`k5_mutex_lock: Assertion 'r == 0' failed`, libpq's
/// GSSAPI check on connecting) when exiting on a port already taken, and after a successful
/// `keyhold migrate`. Used for every command but a `serve` that stopped normally: that one
/// returns, so that its runtime's drop ends the child processes of runs it gave up on.
pub fn exit_now(code: i32) -> ! {
    use std::io::Write;
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    // SAFETY: `_exit` only ends the process.
    unsafe { libc::_exit(code) }
}

/// `url` without its password, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(unparseable DATABASE_URL)".to_string(),
    }
}

/// A driver message on one line (libpq's span several).
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Creates the database named in `database_url` if it does not exist yet.
pub fn ensure_database(database_url: &str) -> anyhow::Result<()> {
    let url = url::Url::parse(database_url).context("DATABASE_URL is not a valid URL")?;
    let name = url.path().trim_start_matches('/').to_string();
    if name.is_empty() {
        return Err(anyhow!("DATABASE_URL names no database"));
    }
    if PgConnection::establish(database_url).is_ok() {
        return Ok(());
    }
    let mut maintenance_url = url.clone();
    maintenance_url.set_path("/postgres");
    let mut conn = PgConnection::establish(maintenance_url.as_str()).map_err(|error| {
        anyhow!(
            "cannot reach PostgreSQL at {}: {}",
            redact(maintenance_url.as_str()),
            one_line(&error.to_string())
        )
    })?;
    let exists = diesel::sql_query("SELECT count(*) AS n FROM pg_database WHERE datname = $1")
        .bind::<Text, _>(&name)
        .get_result::<Count>(&mut conn)?
        .n
        > 0;
    if !exists {
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match diesel::sql_query(format!("CREATE DATABASE {quoted}")).execute(&mut conn) {
            Ok(_) => tracing::info!("created database {name}"),
            // Another instance created it at the same moment.
            Err(diesel::result::Error::DatabaseError(
                diesel::result::DatabaseErrorKind::UniqueViolation,
                _,
            )) => {}
            Err(error) if error.to_string().contains("already exists") => {}
            Err(error) => return Err(error).context(format!("cannot create database {name}")),
        }
    }
    Ok(())
}

/// Applies pending migrations, one instance at a time.
pub fn migrate(conn: &mut PgConnection) -> anyhow::Result<()> {
    diesel::sql_query("SELECT pg_advisory_lock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)?;
    let applied = conn
        .run_pending_migrations(MIGRATIONS)
        .map(|versions| versions.len())
        .map_err(|error| anyhow!("migration failed: {error}"));
    diesel::sql_query("SELECT pg_advisory_unlock($1)")
        .bind::<BigInt, _>(MIGRATION_LOCK)
        .execute(conn)?;
    let applied = applied?;
    if applied > 0 {
        tracing::info!("applied {applied} migration(s)");
    }
    Ok(())
}

/// Creates the database if missing, migrates it and opens the pool.
pub fn prepare(database_url: &str, pool_size: u32) -> anyhow::Result<DbPool> {
    ensure_database(database_url)?;
    let mut conn = PgConnection::establish(database_url).map_err(|error| {
        anyhow!(
            "cannot connect to {}: {}",
            redact(database_url),
            one_line(&error.to_string())
        )
    })?;
    migrate(&mut conn)?;
    Ok(Pool::builder()
        .max_size(pool_size)
        .min_idle(Some(1))
        .connection_timeout(Duration::from_secs(3))
        .build_unchecked(Manager(ConnectionManager::new(database_url))))
}

/// Whether the database answers right now (for `/readyz`).
pub async fn is_ready(pool: &DbPool) -> bool {
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get_timeout(Duration::from_secs(1)).ok()?;
        conn.attempt(|conn| diesel::sql_query("SELECT 1").execute(conn))
            .ok()
    })
    .await
    .ok()
    .flatten()
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::{like_pattern, redact};

    #[test]
    fn search_wildcards_are_escaped() {
        assert_eq!(like_pattern("50%_a\\"), "%50\\%\\_a\\\\%");
    }

    #[test]
    fn redact_hides_passwords() {
        assert_eq!(
            redact("postgres://app:hunter2@db:5432/keyhold"),
            "postgres://app:***@db:5432/keyhold"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:5432/keyhold"),
            "postgres://postgres@127.0.0.1:5432/keyhold"
        );
    }
}
