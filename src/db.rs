//! The database: creating it when missing, embedded migrations, the connection pool, and
//! `db::run`, the one way handlers reach diesel (on the blocking thread pool).

use std::time::Duration;

use actix_web::web;
use anyhow::{Context, anyhow};
use diesel::prelude::*;
use diesel::r2d2::{ConnectionManager, Pool};
use diesel::sql_types::{BigInt, Text};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

use crate::error::AppError;

/// The pool every request and background task draws connections from.
pub type DbPool = Pool<ConnectionManager<PgConnection>>;

/// The migrations in `migrations/`, compiled into the binary.
pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Any fixed number for `pg_advisory_lock`, so concurrent start-ups migrate one at a time.
const MIGRATION_LOCK: i64 = 0x6b65_7968_6f6c_6400;

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Runs `query` on a pooled connection off the async threads.
pub async fn run<T, E, F>(pool: &DbPool, query: F) -> Result<T, AppError>
where
    F: FnOnce(&mut PgConnection) -> Result<T, E> + Send + 'static,
    T: Send + 'static,
    E: Into<AppError> + Send + 'static,
{
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get()?;
        query(&mut conn).map_err(Into::into)
    })
    .await?
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
        .build_unchecked(ConnectionManager::new(database_url)))
}

/// Whether the database answers right now (for `/readyz`).
pub async fn is_ready(pool: &DbPool) -> bool {
    let pool = pool.clone();
    web::block(move || {
        let mut conn = pool.get_timeout(Duration::from_secs(1)).ok()?;
        diesel::sql_query("SELECT 1").execute(&mut conn).ok()
    })
    .await
    .ok()
    .flatten()
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::redact;

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
