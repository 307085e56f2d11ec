//! Sign-in throttling per client address and per account, kept in PostgreSQL so every instance
//! counts the same attempts. An attempt is counted before its password is checked, in one
//! statement per key that also says whether the key is now blocked: a burst of concurrent
//! attempts is throttled exactly like the same attempts one after another. Unknown emails are
//! counted like known ones, so throttling says nothing about which accounts exist.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Nullable, Text, Timestamptz};

use crate::config::LoginLimits;
use crate::schema::login_throttles;

/// The throttling keys of one sign-in attempt, each with its limit.
pub struct Attempt {
    client: (String, i32),
    account: (String, i32),
}

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Nullable<Timestamptz>)]
    blocked_until: Option<DateTime<Utc>>,
}

impl Attempt {
    /// An attempt from `client` for `email`.
    pub fn new(client: &str, email: &str, limits: &LoginLimits) -> Attempt {
        Attempt {
            client: (
                format!("client:{}", network_of(client)),
                limits.client_failures,
            ),
            account: (
                format!("account:{}", email.trim().to_lowercase()),
                limits.account_failures,
            ),
        }
    }

    /// Counts the attempt against both keys; the seconds to wait when either key is blocked
    /// (already, or by this attempt going over its limit).
    pub fn count(&self, conn: &mut PgConnection, limits: &LoginLimits) -> QueryResult<Option<u64>> {
        let mut until = None;
        for (key, limit) in [&self.client, &self.account] {
            until = until.max(count(conn, key, *limit, limits.window, limits.block)?);
        }
        Ok(until.map(|until| (until - Utc::now()).num_seconds().max(1) as u64))
    }

    /// After a successful sign-in: forgets the account's attempts, and gives the client back
    /// the attempt this one counted (people signing in from one office address are not
    /// attacks).
    pub fn succeeded(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::delete(login_throttles::table.find(&self.account.0)).execute(conn)?;
        diesel::update(login_throttles::table.find(&self.client.0))
            .set(
                login_throttles::failures
                    .eq(diesel::dsl::sql::<Integer>("greatest(failures - 1, 0)")),
            )
            .execute(conn)?;
        Ok(())
    }
}

/// Counts one attempt against `key` and answers until when it is blocked, if it is. The row
/// lock of the upsert orders concurrent attempts, so each sees the count of those before it.
fn count(
    conn: &mut PgConnection,
    key: &str,
    limit: i32,
    window: Duration,
    block: Duration,
) -> QueryResult<Option<DateTime<Utc>>> {
    let counted: Counted = diesel::sql_query(
        "INSERT INTO login_throttles AS t (key, failures, window_started_at)
         VALUES ($1, 1, now())
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE
                 WHEN t.blocked_until > now() THEN t.failures
                 WHEN t.window_started_at < now() - make_interval(secs => $2) THEN 1
                 WHEN t.failures + 1 > $3 THEN 0
                 ELSE t.failures + 1 END,
             window_started_at = CASE
                 WHEN t.blocked_until > now() THEN t.window_started_at
                 WHEN t.window_started_at < now() - make_interval(secs => $2) THEN now()
                 WHEN t.failures + 1 > $3 THEN now()
                 ELSE t.window_started_at END,
             blocked_until = CASE
                 WHEN t.blocked_until > now() THEN t.blocked_until
                 WHEN t.window_started_at >= now() - make_interval(secs => $2)
                      AND t.failures + 1 > $3 THEN now() + make_interval(secs => $4)
                 ELSE t.blocked_until END
         RETURNING CASE WHEN blocked_until > now() THEN blocked_until END AS blocked_until",
    )
    .bind::<Text, _>(key)
    .bind::<Integer, _>(window.as_secs() as i32)
    .bind::<Integer, _>(limit)
    .bind::<Integer, _>(block.as_secs() as i32)
    .get_result(conn)?;
    Ok(counted.blocked_until)
}

/// The client key of an address: an IPv6 client is its /64 (one host holds a whole /64, so
/// counting its single addresses would let it rotate past the limit); IPv4 stays itself.
fn network_of(client: &str) -> String {
    match client.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) if v6.to_ipv4_mapped().is_none() => {
            let segments = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}::/64",
                segments[0], segments[1], segments[2], segments[3]
            )
        }
        _ => client.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv6_client_is_counted_by_its_64() {
        assert_eq!(network_of("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(network_of("2001:db8:1:2:bbbb::9"), "2001:db8:1:2::/64");
        assert_eq!(network_of("192.0.2.7"), "192.0.2.7");
        assert_eq!(network_of("::ffff:192.0.2.7"), "::ffff:192.0.2.7");
    }
}
