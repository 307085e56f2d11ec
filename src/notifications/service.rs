//! The use cases of notification channels: check a submitted channel, create, update, delete,
//! send a test. Managers act in their organization, Partners in any of their partner
//! account's; the caller passes the person's `Scope`.

use diesel::prelude::*;
use diesel::result::{DatabaseErrorKind, Error as DieselError};

use crate::access::Scope;
use crate::accounts::model::Organization;
use crate::audit::NewEvent;
use crate::db;
use crate::ids::{ChannelId, OrganizationId, UserId};
use crate::notifications::EventKind;
use crate::notifications::deliver::Deliverer;
use crate::notifications::model::{Channel, ChannelKind, ChannelValues, Delivery, SmtpTls};
use crate::notifications::send::Answer;
use crate::outbound::Outbound;
use crate::web::form::{FieldErrors, check_email, check_length};

/// Why a channel change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("Correct the highlighted fields.")]
    Form(FieldErrors),
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Database(#[from] DieselError),
    /// A channel could not be saved (its secrets sealed, its row written).
    #[error(transparent)]
    Failed(anyhow::Error),
}

impl<E: Into<ChannelError>> From<db::RunError<E>> for ChannelError {
    fn from(error: db::RunError<E>) -> ChannelError {
        match error {
            db::RunError::Failed(error) => error.into(),
            db::RunError::Unavailable(reason) => ChannelError::Unavailable(reason),
        }
    }
}

/// A channel form as submitted (events repeat).
#[derive(Clone, Debug, Default)]
pub struct Submission {
    pub organization_id: String,
    pub name: String,
    pub kind: String,
    pub url: String,
    pub secret: String,
    pub smtp_host: String,
    pub smtp_port: String,
    pub smtp_tls: String,
    pub smtp_username: String,
    pub smtp_password: String,
    pub email_from: String,
    pub email_to: String,
    pub events: Vec<String>,
}

impl Submission {
    /// The edit form of a stored channel (its secrets blank).
    pub fn of(channel: &Channel) -> Submission {
        Submission {
            name: channel.name.clone(),
            kind: channel.kind.key().to_string(),
            smtp_host: channel.smtp_host.clone().unwrap_or_default(),
            smtp_port: channel
                .smtp_port
                .map(|port| port.to_string())
                .unwrap_or_default(),
            smtp_tls: channel
                .smtp_tls
                .map(|tls| tls.key().to_string())
                .unwrap_or_default(),
            smtp_username: channel.smtp_username.clone().unwrap_or_default(),
            email_from: channel.email_from.clone().unwrap_or_default(),
            email_to: channel.email_to.clone().unwrap_or_default(),
            events: channel.events.iter().flatten().cloned().collect(),
            ..Submission::default()
        }
    }

    pub fn from_fields(fields: Vec<(String, String)>) -> Submission {
        let mut submission = Submission::default();
        for (key, value) in fields {
            let target = match key.as_str() {
                "organization_id" => &mut submission.organization_id,
                "name" => &mut submission.name,
                "kind" => &mut submission.kind,
                "url" => &mut submission.url,
                "secret" => &mut submission.secret,
                "smtp_host" => &mut submission.smtp_host,
                "smtp_port" => &mut submission.smtp_port,
                "smtp_tls" => &mut submission.smtp_tls,
                "smtp_username" => &mut submission.smtp_username,
                "smtp_password" => &mut submission.smtp_password,
                "email_from" => &mut submission.email_from,
                "email_to" => &mut submission.email_to,
                "events" => {
                    submission.events.push(value.trim().to_string());
                    continue;
                }
                _ => continue,
            };
            *target = if key.contains("password") || key == "secret" {
                value
            } else {
                value.trim().to_string()
            };
        }
        submission
    }

    /// The submission with its secrets dropped, to show the form again.
    pub fn without_secrets(&self) -> Submission {
        Submission {
            url: String::new(),
            secret: String::new(),
            smtp_password: String::new(),
            ..self.clone()
        }
    }

    /// Whether the form chose `kind` (for checkboxes).
    pub fn wants(&self, kind: &EventKind) -> bool {
        self.events.iter().any(|key| key == kind.key())
    }
}

/// Checks a submission; `existing` is the channel being edited (its kind is kept, and blank
/// secrets leave its own in place).
async fn check(
    outbound: &Outbound,
    submission: &Submission,
    existing: Option<&Channel>,
) -> Result<ChannelValues, FieldErrors> {
    let mut errors = FieldErrors::default();
    errors.check("name", check_length(&submission.name, 3, 30));
    let kind = match existing {
        Some(channel) => Some(channel.kind),
        None => ChannelKind::parse(&submission.kind),
    };
    if kind.is_none() {
        errors.add("kind", "Choose webhook, slack or email.");
    }
    let mut events = Vec::new();
    for key in &submission.events {
        match EventKind::parse(key).filter(|kind| EventKind::subscribable().contains(kind)) {
            Some(kind) if !events.contains(&kind) => events.push(kind),
            Some(_) => {}
            None => errors.add("events", format!("{key} is not an event keyhold sends.")),
        }
    }
    if events.is_empty() {
        errors.add("events", "Choose at least one event.");
    }
    let mut values = ChannelValues {
        name: submission.name.clone(),
        kind,
        events,
        ..ChannelValues::default()
    };
    match kind {
        Some(ChannelKind::Webhook | ChannelKind::Slack) => {
            let blank_keeps = existing.is_some();
            if submission.url.trim().is_empty() {
                if !blank_keeps {
                    errors.add("url", "Enter the URL keyhold posts to.");
                }
            } else {
                match check_url(outbound, submission.url.trim()).await {
                    Ok(origin) => {
                        values.url = Some(submission.url.trim().to_string());
                        values.url_origin = Some(origin);
                    }
                    Err(message) => errors.add("url", message),
                }
            }
            if kind == Some(ChannelKind::Webhook) {
                if submission.secret.is_empty() {
                    if !blank_keeps {
                        errors.add(
                            "secret",
                            "Enter a secret of at least 16 characters: receivers check the \
                             signature with it.",
                        );
                    }
                } else if submission.secret.chars().count() < 16 {
                    errors.add("secret", "Use at least 16 characters.");
                } else {
                    values.secret = Some(submission.secret.clone());
                }
            }
        }
        Some(ChannelKind::Email) => {
            let host = submission.smtp_host.trim();
            let valid_host = !host.is_empty()
                && host.len() <= 253
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if valid_host {
                values.smtp_host = Some(host.to_string());
            } else {
                errors.add("smtp_host", "Enter the SMTP server's host name.");
            }
            let port = if submission.smtp_port.is_empty() {
                Some(587)
            } else {
                submission
                    .smtp_port
                    .parse::<i32>()
                    .ok()
                    .filter(|port| (1..=65535).contains(port))
            };
            match port {
                Some(port) => values.smtp_port = Some(port),
                None => errors.add("smtp_port", "Enter a port from 1 to 65535."),
            }
            match SmtpTls::parse(if submission.smtp_tls.is_empty() {
                "starttls"
            } else {
                &submission.smtp_tls
            }) {
                Some(tls) => values.smtp_tls = Some(tls),
                None => errors.add("smtp_tls", "Choose starttls, tls or none."),
            }
            values.smtp_username = Some(submission.smtp_username.clone());
            if !submission.smtp_password.is_empty() {
                values.smtp_password = Some(submission.smtp_password.clone());
            } else if let Some(channel) = existing
                && channel.smtp_password.is_some()
                && moves_password(channel, &values)
            {
                // A kept password goes only to the server and encryption it was saved for:
                // whoever could point it elsewhere would receive it at the next sign-in.
                errors.add(
                    "smtp_password",
                    "Enter the password again: the saved one is only sent to the server and \
                     encryption it was saved with.",
                );
            }
            match check_email(&submission.email_from) {
                Ok(()) => values.email_from = Some(submission.email_from.clone()),
                Err(message) => errors.add("email_from", message),
            }
            let to: Vec<&str> = submission
                .email_to
                .split(',')
                .map(str::trim)
                .filter(|to| !to.is_empty())
                .collect();
            if to.is_empty() || to.iter().any(|to| check_email(to).is_err()) {
                errors.add(
                    "email_to",
                    "Enter one or more email addresses, separated by commas.",
                );
            } else {
                values.email_to = Some(to.join(", "));
            }
            if valid_host && let Some(port) = values.smtp_port {
                let target = url::Url::parse(&format!("smtp://{host}:{port}"));
                let label = format!("SMTP server {host}:{port}");
                match target {
                    Ok(target) => {
                        if let Err(message) = outbound.resolve(&target, port as u16, &label).await {
                            errors.add("smtp_host", message);
                        }
                    }
                    Err(_) => errors.add("smtp_host", "Enter the SMTP server's host name."),
                }
            }
        }
        None => {}
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

/// Whether `values` send a channel's saved SMTP password somewhere else than it was saved
/// for: another host or port, or a weaker encryption.
fn moves_password(channel: &Channel, values: &ChannelValues) -> bool {
    let same_host = match (&channel.smtp_host, &values.smtp_host) {
        (Some(saved), Some(new)) => saved.eq_ignore_ascii_case(new),
        _ => false,
    };
    !same_host || channel.smtp_port != values.smtp_port || channel.smtp_tls != values.smtp_tls
}

/// An http(s) URL keyhold may post to; answers its origin.
async fn check_url(outbound: &Outbound, text: &str) -> Result<String, String> {
    let url = url::Url::parse(text)
        .map_err(|_| "Enter an http or https URL, like https://hooks.example.com/keyhold.")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err("Put no user or password in the URL: use the secret.".into());
    }
    outbound.check_target(&url).await?;
    Ok(crate::outbound::origin(&url))
}

fn name_taken(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<DieselError>(),
        Some(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info))
            if info.constraint_name() == Some("notification_channels_name_unique")
    )
}

/// The organization a new channel belongs to: a Manager's own; a Partner's choice.
async fn organization_of(
    pool: &db::DbPool,
    scope: Scope,
    chosen: &str,
) -> Result<OrganizationId, ChannelError> {
    if let Scope::Organization(own) = scope {
        return Ok(own);
    }
    let mut errors = FieldErrors::default();
    let Ok(id) = chosen.parse::<i64>().map(OrganizationId) else {
        errors.add("organization_id", "Choose the organization.");
        return Err(ChannelError::Form(errors));
    };
    match db::run(pool, move |conn| Organization::find(conn, &scope, id)).await {
        Ok(organization) => Ok(organization.id),
        Err(db::RunError::Failed(DieselError::NotFound)) => {
            errors.add("organization_id", "Choose one of your organizations.");
            Err(ChannelError::Form(errors))
        }
        Err(error) => Err(error.into()),
    }
}

/// What a channel's changes touch, by field name (for the audit log: names, never values).
fn changed_fields(submission: &Submission) -> Vec<&'static str> {
    let mut fields = vec!["name", "events"];
    for (field, value) in [
        ("url", &submission.url),
        ("secret", &submission.secret),
        ("smtp_host", &submission.smtp_host),
        ("smtp_port", &submission.smtp_port),
        ("smtp_tls", &submission.smtp_tls),
        ("smtp_username", &submission.smtp_username),
        ("smtp_password", &submission.smtp_password),
        ("email_from", &submission.email_from),
        ("email_to", &submission.email_to),
    ] {
        if !value.is_empty() {
            fields.push(field);
        }
    }
    fields
}

/// The channels page: the channels the person reaches, each with its organization's name, and
/// the organizations a new one may go to.
pub struct ChannelList {
    pub channels: Vec<(Channel, String)>,
    pub organizations: Vec<Organization>,
}

pub async fn channel_list(pool: &db::DbPool, scope: Scope) -> Result<ChannelList, ChannelError> {
    Ok(db::run(pool, move |conn| {
        Ok::<_, DieselError>(ChannelList {
            channels: Channel::list(conn, &scope)?,
            organizations: Organization::list(conn, &scope)?,
        })
    })
    .await?)
}

/// One channel's page: the channel, its organization's name and its latest `deliveries`.
pub struct ChannelPage {
    pub channel: Channel,
    pub organization: String,
    pub deliveries: Vec<Delivery>,
}

pub async fn channel_page(
    pool: &db::DbPool,
    scope: Scope,
    id: ChannelId,
    deliveries: i64,
) -> Result<ChannelPage, ChannelError> {
    Ok(db::run(pool, move |conn| {
        let channel = Channel::find(conn, &scope, id)?;
        let organization = Organization::find(conn, &scope, channel.organization_id)?.name;
        let deliveries = Delivery::of_channel(conn, id, deliveries)?;
        Ok::<_, DieselError>(ChannelPage {
            channel,
            organization,
            deliveries,
        })
    })
    .await?)
}

/// Creates a channel.
pub async fn create(
    deliverer: &Deliverer,
    scope: Scope,
    actor: UserId,
    submission: &Submission,
    by: NewEvent,
) -> Result<Channel, ChannelError> {
    let organization = organization_of(&deliverer.pool, scope, &submission.organization_id).await;
    let checked = check(&deliverer.outbound, submission, None).await;
    let (organization, values) = match (organization, checked) {
        (Ok(organization), Ok(values)) => (organization, values),
        (Err(ChannelError::Form(mut errors)), checked) => {
            if let Err(more) = checked {
                for field in ["name", "kind", "url", "secret", "events"] {
                    if let Some(message) = more.get(field) {
                        errors.add(field, message.to_string());
                    }
                }
            }
            return Err(ChannelError::Form(errors));
        }
        (Err(error), _) => return Err(error),
        (Ok(_), Err(errors)) => return Err(ChannelError::Form(errors)),
    };
    let keyring = deliverer.keyring.clone();
    let fields = changed_fields(submission);
    let created = db::run(&deliverer.pool, move |conn| {
        conn.transaction(|conn| {
            let channel = values.insert(conn, &keyring, organization, actor)?;
            by.action("notification.create")
                .object("notification_channel", channel.id.0, &channel.name)
                .in_organization(Some(organization))
                .fields(&fields)
                .record(conn)?;
            Ok::<_, anyhow::Error>(channel)
        })
    })
    .await;
    saved(created, &submission.name)
}

/// A saved channel, or why not: a name already used in the organization is a field error.
fn saved(
    result: Result<Channel, db::RunError<anyhow::Error>>,
    name: &str,
) -> Result<Channel, ChannelError> {
    match result {
        Ok(channel) => Ok(channel),
        Err(db::RunError::Failed(error)) if name_taken(&error) => {
            let mut errors = FieldErrors::default();
            errors.add("name", format!("{name} already exists"));
            Err(ChannelError::Form(errors))
        }
        Err(db::RunError::Failed(error)) => Err(ChannelError::Failed(error)),
        Err(db::RunError::Unavailable(reason)) => Err(ChannelError::Unavailable(reason)),
    }
}

/// Updates a channel (its kind and organization stay; blank secrets stay as they were).
pub async fn update(
    deliverer: &Deliverer,
    scope: Scope,
    actor: UserId,
    id: ChannelId,
    submission: &Submission,
    by: NewEvent,
) -> Result<Channel, ChannelError> {
    let channel = db::run(&deliverer.pool, move |conn| Channel::find(conn, &scope, id)).await?;
    let values = check(&deliverer.outbound, submission, Some(&channel))
        .await
        .map_err(ChannelError::Form)?;
    let keyring = deliverer.keyring.clone();
    let fields = changed_fields(submission);
    let updated = db::run(&deliverer.pool, move |conn| {
        conn.transaction(|conn| {
            let updated = values.store(conn, &keyring, &channel, actor)?;
            by.action("notification.update")
                .object("notification_channel", channel.id.0, &updated.name)
                .in_organization(Some(channel.organization_id))
                .fields(&fields)
                .record(conn)?;
            Ok::<_, anyhow::Error>(updated)
        })
    })
    .await;
    saved(updated, &submission.name)
}

/// Deletes a channel and its delivery log.
pub async fn delete(
    pool: &db::DbPool,
    scope: Scope,
    id: ChannelId,
    by: NewEvent,
) -> Result<Channel, ChannelError> {
    Ok(db::run(pool, move |conn| {
        conn.transaction(|conn| {
            let channel = Channel::find(conn, &scope, id)?;
            diesel::delete(crate::schema::notification_channels::table.find(channel.id))
                .execute(conn)?;
            by.action("notification.delete")
                .object("notification_channel", channel.id.0, &channel.name)
                .in_organization(Some(channel.organization_id))
                .record(conn)?;
            Ok::<_, DieselError>(channel)
        })
    })
    .await?)
}

/// Sends a test event to one channel now and answers what it said (also in its log).
pub async fn test(
    deliverer: &Deliverer,
    scope: Scope,
    id: ChannelId,
    by: NewEvent,
) -> Result<(Channel, Answer), ChannelError> {
    let (channel, delivery) = db::run(&deliverer.pool, move |conn| {
        conn.transaction(|conn| {
            let channel = Channel::find(conn, &scope, id)?;
            let delivery = Delivery::create_test(conn, &channel)?;
            by.action("notification.test")
                .object("notification_channel", channel.id.0, &channel.name)
                .in_organization(Some(channel.organization_id))
                .record(conn)?;
            Ok::<_, DieselError>((channel, delivery))
        })
    })
    .await?;
    let answer = deliverer.send(&channel, &delivery).await;
    let (delivery_id, recorded) = (delivery.id, answer.clone());
    db::run(&deliverer.pool, move |conn| {
        Delivery::record(
            conn,
            delivery_id,
            recorded.status,
            recorded.error.as_deref(),
            None,
        )
    })
    .await?;
    Ok((channel, answer))
}
