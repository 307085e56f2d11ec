//! Channels and deliveries, and the queries over them. Channel URLs (which carry their own
//! tokens), webhook secrets and SMTP passwords are sealed with the keyring; a channel's page
//! shows only the URL's origin.
//!
//! Over 600 lines because channels and deliveries are read and changed together (a delivery
//! opens its channel's sealed values to send; a channel's page lists its deliveries) and both
//! keep their states as enums stored as words here.

use chrono::{DateTime, Utc};
use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::access::Scope;
use crate::crypto::Keyring;
use crate::ids::{OrganizationId, UserId};
use crate::notifications::EventKind;
use crate::schema::{notification_channels, notification_deliveries, notification_events};

pub use crate::ids::ChannelId;

/// How a channel is reached.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq)]
#[diesel(sql_type = Text)]
pub enum ChannelKind {
    Webhook,
    Slack,
    Email,
}

impl ChannelKind {
    pub const ALL: [ChannelKind; 3] =
        [ChannelKind::Webhook, ChannelKind::Slack, ChannelKind::Email];

    pub fn key(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "webhook",
            ChannelKind::Slack => "slack",
            ChannelKind::Email => "email",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ChannelKind::Webhook => "Webhook (signed JSON)",
            ChannelKind::Slack => "Slack-compatible incoming webhook",
            ChannelKind::Email => "Email (SMTP)",
        }
    }

    pub fn parse(text: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|kind| kind.key() == text)
    }
}

crate::stored_as_text!(ChannelKind, "channel kind");

/// How an SMTP connection is protected.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq)]
#[diesel(sql_type = Text)]
pub enum SmtpTls {
    StartTls,
    Tls,
    None,
}

impl SmtpTls {
    pub const ALL: [SmtpTls; 3] = [SmtpTls::StartTls, SmtpTls::Tls, SmtpTls::None];

    pub fn key(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "starttls",
            SmtpTls::Tls => "tls",
            SmtpTls::None => "none",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            SmtpTls::StartTls => "STARTTLS (port 587)",
            SmtpTls::Tls => "TLS (port 465)",
            SmtpTls::None => "None (a relay on a trusted network only)",
        }
    }

    pub fn parse(text: &str) -> Option<SmtpTls> {
        SmtpTls::ALL.into_iter().find(|tls| tls.key() == text)
    }
}

crate::stored_as_text!(SmtpTls, "SMTP TLS mode");

/// A channel, as stored (secrets sealed).
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = notification_channels)]
pub struct Channel {
    pub id: ChannelId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub kind: ChannelKind,
    pub url: Option<String>,
    pub url_origin: Option<String>,
    pub secret: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<SmtpTls>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub email_from: Option<String>,
    pub email_to: Option<String>,
    pub events: Vec<Option<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The sealing context of a channel's secret `field`.
pub fn context(organization: OrganizationId, channel: ChannelId, field: &str) -> String {
    format!("org/{organization}/notification/{channel}/{field}")
}

/// A channel's settings, opened: what sending needs.
#[derive(Clone, Debug)]
pub struct Opened {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub smtp_password: Option<String>,
}

impl Channel {
    /// Whether the channel wants `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.events.iter().flatten().any(|key| key == kind.key())
    }

    /// The labels of the events it wants, in the form's order.
    pub fn event_labels(&self) -> Vec<&'static str> {
        EventKind::subscribable()
            .iter()
            .filter(|kind| self.wants(**kind))
            .map(|kind| kind.key())
            .collect()
    }

    /// Where it sends, for people: the URL's origin, or the addresses mail goes to.
    pub fn destination(&self) -> String {
        match self.kind {
            ChannelKind::Email => format!(
                "{} via {}:{}",
                self.email_to.clone().unwrap_or_default(),
                self.smtp_host.clone().unwrap_or_default(),
                self.smtp_port.unwrap_or_default()
            ),
            _ => format!("{}/…", self.url_origin.clone().unwrap_or_default()),
        }
    }

    /// The sealed values, opened.
    pub fn open(&self, keyring: &Keyring) -> anyhow::Result<Opened> {
        let open = |sealed: &Option<String>, field: &str| -> anyhow::Result<Option<String>> {
            sealed
                .as_deref()
                .map(|text| keyring.open_text(text, &context(self.organization_id, self.id, field)))
                .transpose()
        };
        Ok(Opened {
            url: open(&self.url, "url")?,
            secret: open(&self.secret, "secret")?,
            smtp_password: open(&self.smtp_password, "smtp_password")?,
        })
    }

    /// The channels `scope` reaches, by organization and name, with their organization's name.
    pub fn list(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<(Channel, String)>> {
        use crate::schema::organizations;
        notification_channels::table
            .inner_join(organizations::table)
            .filter(notification_channels::organization_id.eq_any(scope.organization_ids()))
            .order((organizations::name, notification_channels::name))
            .select((Channel::as_select(), organizations::name))
            .load(conn)
    }

    /// One channel inside `scope`; `NotFound` otherwise.
    pub fn find(conn: &mut PgConnection, scope: &Scope, id: ChannelId) -> QueryResult<Channel> {
        notification_channels::table
            .find(id)
            .filter(notification_channels::organization_id.eq_any(scope.organization_ids()))
            .select(Channel::as_select())
            .first(conn)
    }

    /// One channel, whatever its organization (for the delivery loops).
    pub fn find_any(conn: &mut PgConnection, id: ChannelId) -> QueryResult<Channel> {
        notification_channels::table
            .find(id)
            .select(Channel::as_select())
            .first(conn)
    }

    /// Re-seals up to `batch` channels with a secret not under the active key; returns how
    /// many (`keyhold keys rotate`).
    pub fn reseal_batch(
        conn: &mut PgConnection,
        keyring: &Keyring,
        batch: i64,
    ) -> anyhow::Result<usize> {
        conn.transaction(|conn| {
            let active = format!("{}:%", keyring.active_id());
            let stale = notification_channels::url
                .not_like(active.clone())
                .or(notification_channels::secret.not_like(active.clone()))
                .or(notification_channels::smtp_password.not_like(active));
            let rows: Vec<Channel> = notification_channels::table
                .filter(stale)
                .order(notification_channels::id)
                .limit(batch)
                .select(Channel::as_select())
                .for_update()
                .skip_locked()
                .load(conn)?;
            for channel in &rows {
                let opened = channel.open(keyring)?;
                let seal =
                    |value: &Option<String>, field: &str| -> anyhow::Result<Option<String>> {
                        value
                            .as_deref()
                            .map(|plain| {
                                keyring.seal_text(
                                    plain,
                                    &context(channel.organization_id, channel.id, field),
                                )
                            })
                            .transpose()
                    };
                diesel::update(notification_channels::table.find(channel.id))
                    .set((
                        notification_channels::url.eq(seal(&opened.url, "url")?),
                        notification_channels::secret.eq(seal(&opened.secret, "secret")?),
                        notification_channels::smtp_password
                            .eq(seal(&opened.smtp_password, "smtp_password")?),
                    ))
                    .execute(conn)?;
            }
            Ok(rows.len())
        })
    }
}

/// A channel's settings as entered (secrets in the clear, `None` = unchanged on update).
#[derive(Clone, Debug, Default)]
pub struct ChannelValues {
    pub name: String,
    pub kind: Option<ChannelKind>,
    pub url: Option<String>,
    pub url_origin: Option<String>,
    pub secret: Option<String>,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<i32>,
    pub smtp_tls: Option<SmtpTls>,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub email_from: Option<String>,
    pub email_to: Option<String>,
    pub events: Vec<EventKind>,
}

impl ChannelValues {
    fn event_keys(&self) -> Vec<Option<String>> {
        self.events
            .iter()
            .map(|kind| Some(kind.key().to_string()))
            .collect()
    }

    /// Creates the channel in `organization`, sealing its secrets under its own id.
    pub fn insert(
        &self,
        conn: &mut PgConnection,
        keyring: &Keyring,
        organization: OrganizationId,
        by: UserId,
    ) -> anyhow::Result<Channel> {
        let kind = self
            .kind
            .ok_or_else(|| anyhow::anyhow!("a channel needs a kind"))?;
        let channel: Channel = diesel::insert_into(notification_channels::table)
            .values((
                notification_channels::organization_id.eq(organization),
                notification_channels::name.eq(&self.name),
                notification_channels::kind.eq(kind),
                notification_channels::events.eq(self.event_keys()),
                notification_channels::created_by.eq(Some(by)),
                notification_channels::updated_by.eq(Some(by)),
            ))
            .returning(Channel::as_returning())
            .get_result(conn)?;
        self.store(conn, keyring, &channel, by)
    }

    /// Writes the values into `channel` (secrets left `None` stay as they were).
    pub fn store(
        &self,
        conn: &mut PgConnection,
        keyring: &Keyring,
        channel: &Channel,
        by: UserId,
    ) -> anyhow::Result<Channel> {
        let seal = |value: &Option<String>, field: &str| -> anyhow::Result<Option<String>> {
            value
                .as_deref()
                .map(|plain| {
                    keyring.seal_text(plain, &context(channel.organization_id, channel.id, field))
                })
                .transpose()
        };
        let (url, secret, password) = (
            seal(&self.url, "url")?,
            seal(&self.secret, "secret")?,
            seal(&self.smtp_password, "smtp_password")?,
        );
        let email = channel.kind == ChannelKind::Email;
        let row = notification_channels::table.find(channel.id);
        diesel::update(row)
            .set((
                notification_channels::name.eq(&self.name),
                notification_channels::events.eq(self.event_keys()),
                notification_channels::smtp_host.eq(self.smtp_host.as_deref().filter(|_| email)),
                notification_channels::smtp_port.eq(self.smtp_port.filter(|_| email)),
                notification_channels::smtp_tls.eq(self.smtp_tls.filter(|_| email)),
                notification_channels::smtp_username
                    .eq(self.smtp_username.as_deref().filter(|_| email)),
                notification_channels::email_from.eq(self.email_from.as_deref().filter(|_| email)),
                notification_channels::email_to.eq(self.email_to.as_deref().filter(|_| email)),
                notification_channels::updated_at.eq(Utc::now()),
                notification_channels::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        if let Some(url) = url.filter(|_| !email) {
            diesel::update(row)
                .set((
                    notification_channels::url.eq(Some(url)),
                    notification_channels::url_origin.eq(self.url_origin.as_deref()),
                ))
                .execute(conn)?;
        }
        if let Some(secret) = secret.filter(|_| channel.kind == ChannelKind::Webhook) {
            diesel::update(row)
                .set(notification_channels::secret.eq(Some(secret)))
                .execute(conn)?;
        }
        if let Some(password) = password.filter(|_| email) {
            diesel::update(row)
                .set(notification_channels::smtp_password.eq(Some(password)))
                .execute(conn)?;
        }
        Ok(Channel::find_any(conn, channel.id)?)
    }
}

/// Where a delivery stands.
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq)]
#[diesel(sql_type = Text)]
pub enum DeliveryState {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryState {
    pub const ALL: [DeliveryState; 3] = [
        DeliveryState::Pending,
        DeliveryState::Delivered,
        DeliveryState::Failed,
    ];

    pub fn key(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Failed => "failed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            DeliveryState::Pending => "Retrying",
            DeliveryState::Delivered => "✓ Delivered",
            DeliveryState::Failed => "✗ Gave up",
        }
    }
}

crate::stored_as_text!(DeliveryState, "delivery state");

/// One delivery of one event to one channel, with what the event was.
#[derive(Queryable, Debug, Clone)]
pub struct Delivery {
    pub id: i64,
    pub delivery_key: String,
    pub channel_id: ChannelId,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub event_kind: EventKind,
    pub message: String,
    pub body: serde_json::Value,
}

/// The columns of `Delivery`, over deliveries joined with their events.
macro_rules! delivery_columns {
    () => {
        (
            notification_deliveries::id,
            notification_deliveries::delivery_key,
            notification_deliveries::channel_id,
            notification_deliveries::state,
            notification_deliveries::attempts,
            notification_deliveries::next_attempt_at,
            notification_deliveries::last_status,
            notification_deliveries::last_error,
            notification_deliveries::delivered_at,
            notification_deliveries::created_at,
            notification_events::kind,
            notification_events::message,
            notification_events::body,
        )
    };
}

impl Delivery {
    /// What the log shows of its last attempt.
    pub fn outcome(&self) -> String {
        match (self.last_status, &self.last_error) {
            (Some(status), Some(error)) => format!("HTTP {status}: {error}"),
            (Some(status), None) => format!("HTTP {status}"),
            (None, Some(error)) => error.clone(),
            (None, None) => "not attempted yet".to_string(),
        }
    }

    /// The newest `limit` deliveries of a channel.
    pub fn of_channel(
        conn: &mut PgConnection,
        channel: ChannelId,
        limit: i64,
    ) -> QueryResult<Vec<Delivery>> {
        notification_deliveries::table
            .inner_join(notification_events::table)
            .filter(notification_deliveries::channel_id.eq(channel))
            .order(notification_deliveries::id.desc())
            .limit(limit)
            .select(delivery_columns!())
            .load(conn)
    }

    /// Records a test event (`"event": "test"`) for `channel` alone and its delivery, claimed
    /// for the one attempt "Send test" makes at once.
    pub fn create_test(conn: &mut PgConnection, channel: &Channel) -> QueryResult<Delivery> {
        use crate::schema::organizations;
        let organization: String = organizations::table
            .find(channel.organization_id)
            .select(organizations::name)
            .first(conn)?;
        let message = format!("A test of channel {} from keyhold", channel.name);
        let body = serde_json::json!({
            "event": EventKind::Test.key(),
            "at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "message": message,
            "organization": { "id": channel.organization_id.0, "name": organization },
            "project": null,
            "policy": null,
            "backup": null,
            "credential": null,
        });
        let event: i64 = diesel::insert_into(notification_events::table)
            .values((
                notification_events::organization_id.eq(channel.organization_id),
                notification_events::kind.eq(EventKind::Test),
                notification_events::message.eq(&message),
                notification_events::body.eq(body),
            ))
            .returning(notification_events::id)
            .get_result(conn)?;
        let id: i64 = diesel::insert_into(notification_deliveries::table)
            .values((
                notification_deliveries::delivery_key
                    .eq(diesel::dsl::sql::<Text>("gen_random_uuid()::text")),
                notification_deliveries::event_id.eq(event),
                notification_deliveries::channel_id.eq(channel.id),
                notification_deliveries::attempts.eq(1),
                notification_deliveries::next_attempt_at
                    .eq(Utc::now() + chrono::Duration::hours(1)),
            ))
            .returning(notification_deliveries::id)
            .get_result(conn)?;
        notification_deliveries::table
            .inner_join(notification_events::table)
            .filter(notification_deliveries::id.eq(id))
            .select(delivery_columns!())
            .first(conn)
    }

    /// Claims up to `limit` due deliveries for one attempt each: their attempt count goes up
    /// and their next attempt moves `lease` ahead, so no other instance takes them meanwhile
    /// (and a process killed mid-send leaves them to be retried when the lease lapses).
    pub fn claim_due(
        conn: &mut PgConnection,
        limit: i64,
        lease: chrono::Duration,
    ) -> QueryResult<Vec<Delivery>> {
        // Times are the database's (`now()`), not this instance's clock: instances whose
        // clocks differ still agree on what is due and on when a claim lapses.
        conn.transaction(|conn| {
            let ids: Vec<i64> = notification_deliveries::table
                .filter(notification_deliveries::state.eq(DeliveryState::Pending))
                .filter(notification_deliveries::next_attempt_at.le(database_now()))
                .order(notification_deliveries::next_attempt_at)
                .limit(limit)
                .select(notification_deliveries::id)
                .for_update()
                .skip_locked()
                .load(conn)?;
            if ids.is_empty() {
                return Ok(Vec::new());
            }
            diesel::update(
                notification_deliveries::table.filter(notification_deliveries::id.eq_any(&ids)),
            )
            .set((
                notification_deliveries::attempts.eq(notification_deliveries::attempts + 1),
                notification_deliveries::next_attempt_at.eq(database_now_plus(lease)),
            ))
            .execute(conn)?;
            notification_deliveries::table
                .inner_join(notification_events::table)
                .filter(notification_deliveries::id.eq_any(&ids))
                .select(delivery_columns!())
                .load(conn)
        })
    }

    /// Records an attempt's outcome: delivered, or retried `retry_after` from now (the
    /// database's), or given up.
    pub fn record(
        conn: &mut PgConnection,
        id: i64,
        status: Option<i32>,
        error: Option<&str>,
        retry: Option<Retry>,
    ) -> QueryResult<()> {
        let state = match (error, retry) {
            (None, _) => DeliveryState::Delivered,
            (Some(_), Some(_)) => DeliveryState::Pending,
            (Some(_), None) => DeliveryState::Failed,
        };
        let row = notification_deliveries::table.find(id);
        diesel::update(row)
            .set((
                notification_deliveries::state.eq(state),
                notification_deliveries::last_status.eq(status),
                notification_deliveries::last_error.eq(error),
                notification_deliveries::delivered_at
                    .eq(Some(Utc::now()).filter(|_| state == DeliveryState::Delivered)),
            ))
            .execute(conn)?;
        if let Some(retry) = retry.filter(|_| state == DeliveryState::Pending) {
            // The next attempt, or the end of the retries when it would come after the give-up
            // time: both judged by the database's clock, which wrote `created_at`.
            diesel::sql_query(
                "UPDATE notification_deliveries
                 SET state = CASE WHEN now() + $1 * interval '1 millisecond'
                                       < created_at + $2 * interval '1 millisecond'
                                  THEN $3 ELSE $4 END,
                     next_attempt_at = now() + $1 * interval '1 millisecond'
                 WHERE id = $5",
            )
            .bind::<diesel::sql_types::BigInt, _>(retry.wait.num_milliseconds())
            .bind::<diesel::sql_types::BigInt, _>(retry.give_up_after.num_milliseconds())
            .bind::<Text, _>(DeliveryState::Pending)
            .bind::<Text, _>(DeliveryState::Failed)
            .bind::<diesel::sql_types::BigInt, _>(id)
            .execute(conn)?;
        }
        Ok(())
    }
}

/// The database's `now()`.
fn database_now() -> diesel::expression::SqlLiteral<diesel::sql_types::Timestamptz> {
    diesel::dsl::sql::<diesel::sql_types::Timestamptz>("now()")
}

/// When a failed delivery is tried again: after `wait`, unless that comes `give_up_after` or
/// more after the event.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub wait: chrono::Duration,
    pub give_up_after: chrono::Duration,
}

/// The database's `now()` plus `wait` (whole milliseconds).
fn database_now_plus(
    wait: chrono::Duration,
) -> diesel::expression::SqlLiteral<diesel::sql_types::Timestamptz> {
    diesel::dsl::sql::<diesel::sql_types::Timestamptz>(&format!(
        "now() + interval '{} milliseconds'",
        wait.num_milliseconds()
    ))
}
