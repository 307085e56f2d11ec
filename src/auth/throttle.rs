//! Sign-in throttling per client address and per account, kept in PostgreSQL so every instance
//! counts the same failures. Unknown emails are counted like known ones, so throttling says
//! nothing about which accounts exist.

use std::time::Duration;

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};

use crate::config::LoginLimits;
use crate::schema::login_throttles;

/// The throttling keys of one sign-in attempt, each with its failure limit.
pub struct Attempt {
    keys: [(String, i32); 2],
}

impl Attempt {
    /// An attempt from `client` for `email`.
    pub fn new(client: &str, email: &str, limits: &LoginLimits) -> Attempt {
        Attempt {
            keys: [
                (format!("client:{client}"), limits.client_failures),
                (
                    format!("account:{}", email.trim().to_lowercase()),
                    limits.account_failures,
                ),
            ],
        }
    }

    /// Seconds until sign-in may be tried again, when either key is blocked.
    pub fn blocked_for(&self, conn: &mut PgConnection) -> QueryResult<Option<u64>> {
        let keys: Vec<&str> = self.keys.iter().map(|(key, _)| key.as_str()).collect();
        let until: Option<chrono::DateTime<Utc>> = login_throttles::table
            .filter(login_throttles::key.eq_any(keys))
            .filter(login_throttles::blocked_until.gt(diesel::dsl::now))
            .select(diesel::dsl::max(login_throttles::blocked_until))
            .first::<Option<chrono::DateTime<Utc>>>(conn)?;
        Ok(until.map(|until| (until - Utc::now()).num_seconds().max(1) as u64))
    }

    /// Counts a failure against both keys; a key reaching its limit is blocked.
    pub fn record_failure(&self, conn: &mut PgConnection, limits: &LoginLimits) -> QueryResult<()> {
        for (key, limit) in &self.keys {
            record(conn, key, *limit, limits.window, limits.block)?;
        }
        Ok(())
    }

    /// Forgets the account's failures after a successful sign-in.
    pub fn clear_account(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::delete(login_throttles::table.find(&self.keys[1].0)).execute(conn)?;
        Ok(())
    }
}

fn record(
    conn: &mut PgConnection,
    key: &str,
    limit: i32,
    window: Duration,
    block: Duration,
) -> QueryResult<()> {
    // One statement, so concurrent failures on several instances all count.
    diesel::sql_query(
        "INSERT INTO login_throttles AS t (key, failures, window_started_at)
         VALUES ($1, 1, now())
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN t.window_started_at < now() - make_interval(secs => $2)
                             THEN 1 ELSE t.failures + 1 END,
             window_started_at = CASE WHEN t.window_started_at < now() - make_interval(secs => $2)
                             THEN now() ELSE t.window_started_at END",
    )
    .bind::<Text, _>(key)
    .bind::<Integer, _>(window.as_secs() as i32)
    .execute(conn)?;
    diesel::sql_query(
        "UPDATE login_throttles
         SET blocked_until = now() + make_interval(secs => $3), failures = 0,
             window_started_at = now()
         WHERE key = $1 AND failures >= $2",
    )
    .bind::<Text, _>(key)
    .bind::<Integer, _>(limit)
    .bind::<Integer, _>(block.as_secs() as i32)
    .execute(conn)?;
    Ok(())
}
