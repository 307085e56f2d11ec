//! The delivery loop of every keyhold process (`serve` and `worker`): each second it claims
//! due deliveries (`Delivery::claim_due`, SKIP LOCKED, so each is sent by one instance), sends
//! them at once, and records the answer; a failure is retried after
//! `KEYHOLD_NOTIFY_RETRY_SECONDS` (10), doubling up to 15 minutes, until an hour has passed.
//! Every five seconds it also looks for what no single change reports: slots missed by more
//! than the grace period, and credentials 14 or 3 days from their expiry (each recorded once,
//! by its `once` key).

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::crypto::Keyring;
use crate::db::{self, DbPool};
use crate::ids::{CredentialId, PolicyId, ProjectId};
use crate::notifications::model::{Channel, Delivery, Retry};
use crate::notifications::send::{self, Answer, Outgoing};
use crate::notifications::{Event, EventKind, Subject};
use crate::outbound::Outbound;

/// Deliveries claimed (and sent at once) per pass.
const BATCH: i64 = 20;
/// How long a claimed delivery is left to the instance sending it.
const LEASE_SECONDS: i64 = 120;
/// Retries stop this long after the event.
const GIVE_UP_AFTER_SECONDS: i64 = 3600;
/// The longest wait between two attempts.
const LONGEST_WAIT_SECONDS: u64 = 15 * 60;

/// Sends what channels are owed.
#[derive(Clone)]
pub struct Deliverer {
    pub pool: DbPool,
    pub keyring: Keyring,
    pub outbound: Outbound,
    /// The wait before the first retry (`KEYHOLD_NOTIFY_RETRY_SECONDS`).
    pub first_retry: Duration,
    /// How often this process's loop has run (shared by its clones).
    pub looks: Arc<Looks>,
}

/// How many passes and watches the delivery loop of this process has run: `/metrics` shows
/// them, so a loop that stopped is seen, and tests wait for a later look instead of sleeping.
#[derive(Default, Debug)]
pub struct Looks {
    passes: AtomicU64,
    watches: AtomicU64,
}

impl Looks {
    /// The Prometheus series of the counts.
    pub fn render(&self, out: &mut String) {
        out.push_str(concat!(
            "# HELP keyhold_notification_looks_total Runs of the delivery loop: ",
            "passes (each second) and watches (each five).\n"
        ));
        out.push_str("# TYPE keyhold_notification_looks_total counter\n");
        for (look, count) in [("pass", &self.passes), ("watch", &self.watches)] {
            let _ = writeln!(
                out,
                "keyhold_notification_looks_total{{look=\"{look}\"}} {}",
                count.load(Ordering::Relaxed)
            );
        }
    }
}

/// The wait after `attempts` failed attempts: `first`, doubling, at most 15 minutes.
fn backoff(first: Duration, attempts: i32) -> Duration {
    let doubled = first.saturating_mul(1u32 << (attempts.clamp(1, 16) - 1) as u32);
    doubled.min(Duration::from_secs(LONGEST_WAIT_SECONDS))
}

impl Deliverer {
    /// One pass: claims due deliveries and sends them concurrently; returns how many were sent.
    pub async fn pass(&self) -> usize {
        let lease = chrono::Duration::seconds(LEASE_SECONDS);
        let claimed = match db::run(&self.pool, move |conn| {
            Delivery::claim_due(conn, BATCH, lease)
        })
        .await
        {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!("claiming notifications failed: {error}");
                return 0;
            }
        };
        let count = claimed.len();
        futures_util::future::join_all(claimed.into_iter().map(|d| self.attempt(d))).await;
        count
    }

    /// Sends one claimed delivery and records what happened.
    async fn attempt(&self, delivery: Delivery) {
        let channel_id = delivery.channel_id;
        let answer =
            match db::run(&self.pool, move |conn| Channel::find_any(conn, channel_id)).await {
                Ok(channel) => self.send(&channel, &delivery).await,
                Err(error) => Answer {
                    status: None,
                    error: Some(format!("the channel could not be read: {error}")),
                },
            };
        let wait = chrono::Duration::from_std(backoff(self.first_retry, delivery.attempts))
            .unwrap_or_else(|_| chrono::Duration::seconds(LONGEST_WAIT_SECONDS as i64));
        // Retried unless the next attempt would come after the give-up time; the database
        // judges that with its own clock, the one that wrote `created_at`.
        let retry = Some(Retry {
            wait,
            give_up_after: chrono::Duration::seconds(GIVE_UP_AFTER_SECONDS),
        })
        .filter(|_| !answer.delivered());
        if !answer.delivered() {
            tracing::warn!(
                delivery = delivery.delivery_key,
                "notification not delivered: {}",
                answer.error.clone().unwrap_or_default()
            );
        }
        let id = delivery.id;
        let _ = db::run(&self.pool, move |conn| {
            Delivery::record(conn, id, answer.status, answer.error.as_deref(), retry)
        })
        .await;
    }

    /// Sends `delivery` to `channel`.
    pub async fn send(&self, channel: &Channel, delivery: &Delivery) -> Answer {
        let opened = match channel.open(&self.keyring) {
            Ok(opened) => opened,
            Err(_) => {
                return Answer {
                    status: None,
                    error: Some(
                        "the channel's secrets cannot be opened with the configured keys".into(),
                    ),
                };
            }
        };
        let outgoing = Outgoing {
            kind: delivery.event_kind,
            delivery_key: &delivery.delivery_key,
            message: &delivery.message,
            body: &delivery.body,
        };
        send::send(&self.outbound, channel, &opened, &outgoing).await
    }

    /// Records what periodic looks find: missed slots and coming expiries.
    pub async fn watch(&self, grace: chrono::Duration) {
        let now = Utc::now();
        let found = db::run(&self.pool, move |conn| {
            Ok::<_, diesel::result::Error>(
                record_missed(conn, now, grace)? + record_expiring(conn, now)?,
            )
        })
        .await;
        if let Err(error) = found {
            tracing::warn!("looking for missed slots and expiries failed: {error}");
        }
    }

    /// Runs a pass every second, and a watch every five, until the process ends.
    pub fn spawn(self, grace: chrono::Duration) {
        actix_web::rt::spawn(async move {
            let mut timer = actix_web::rt::time::interval(Duration::from_secs(1));
            let mut ticks: u64 = 0;
            loop {
                timer.tick().await;
                if ticks.is_multiple_of(5) {
                    self.watch(grace).await;
                    self.looks.watches.fetch_add(1, Ordering::Relaxed);
                }
                ticks += 1;
                self.pass().await;
                self.looks.passes.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
}

/// Records a `backup.missed` event for every slot that passed more than `grace` before `now`
/// with no run (every instance down, the scheduler off or stuck); once per slot. Returns how
/// many deliveries were added.
pub fn record_missed(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> QueryResult<usize> {
    use crate::schema::{backup_policies, projects};
    let missed: Vec<(PolicyId, ProjectId, String, DateTime<Utc>, String)> = backup_policies::table
        .inner_join(projects::table)
        .filter(projects::backup_enabled.eq(true))
        .filter(backup_policies::next_run_at.lt(now - grace))
        .select((
            backup_policies::id,
            backup_policies::project_id,
            backup_policies::name,
            backup_policies::next_run_at,
            projects::name,
        ))
        .load(conn)?;
    let mut added = 0;
    for (policy, project, name, due, project_name) in missed {
        let message = format!(
            "Policy {name} of project {project_name} was due at {} and has not run: is a \
             keyhold scheduler running?",
            due.format("%Y-%m-%d %H:%M UTC")
        );
        added += Event {
            kind: EventKind::BackupMissed,
            subject: Subject::policy(project, policy),
            message: &message,
            once: Some(format!("backup.missed:{policy}:{}", due.timestamp())),
        }
        .record(conn)?;
    }
    Ok(added)
}

/// Records a `credential.expiring` event for every credential 14 days (and again 3 days) from
/// its expiry date; once per threshold and date. Returns how many deliveries were added.
pub fn record_expiring(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<usize> {
    use crate::schema::credentials;
    let today = now.date_naive();
    let expiring: Vec<(CredentialId, String, String, chrono::NaiveDate)> = credentials::table
        .filter(credentials::expires_on.ge(today))
        .filter(credentials::expires_on.le(today + chrono::Days::new(14)))
        .select((
            credentials::id,
            credentials::name,
            credentials::kind,
            credentials::expires_on.assume_not_null(),
        ))
        .load(conn)?;
    let mut added = 0;
    for (id, name, kind, date) in expiring {
        let days = (date - today).num_days();
        let threshold = if days <= 3 { 3 } else { 14 };
        let plural = if days == 1 { "" } else { "s" };
        let message =
            format!("The {kind} credential {name} expires on {date}, in {days} day{plural}");
        added += Event {
            kind: EventKind::CredentialExpiring,
            subject: Subject::credential(id),
            message: &message,
            once: Some(format!("credential.expiring:{id}:{date}:{threshold}")),
        }
        .record(conn)?;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_fifteen_minutes() {
        let first = Duration::from_secs(10);
        assert_eq!(backoff(first, 1), Duration::from_secs(10));
        assert_eq!(backoff(first, 2), Duration::from_secs(20));
        assert_eq!(backoff(first, 4), Duration::from_secs(80));
        assert_eq!(backoff(first, 30), Duration::from_secs(900));
    }
}
