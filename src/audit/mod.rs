//! The append-only audit log: who did what, when, in which organization, to which object, and
//! the names (never the values) of the fields that changed. `filter` says which events a list
//! or an export shows, `export` writes them as CSV or NDJSON.

pub mod export;
pub mod filter;
pub mod routes;
pub mod service;

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::Scope;
use crate::ids::{OrganizationId, PartnerId, UserId};
use crate::schema::audit_events;
use crate::web::form::Pagination;
pub use filter::Filter;

/// Who does what an event records: the signed-in person (`auth::CurrentUser`), as the audit
/// log names them.
pub trait Actor {
    fn actor_id(&self) -> UserId;
    /// The words the log shows for them (their address, or the API token they act by).
    fn actor_label(&self) -> String;
    fn partner_id(&self) -> PartnerId;
    /// Their organization; `None` for a Partner.
    fn organization_id(&self) -> Option<OrganizationId>;
}

/// An event about to be recorded.
#[derive(Insertable, Debug, Clone)]
#[diesel(table_name = audit_events)]
pub struct NewEvent {
    pub actor_id: Option<UserId>,
    pub actor_label: String,
    pub partner_id: Option<PartnerId>,
    pub organization_id: Option<OrganizationId>,
    pub action: String,
    pub object_kind: String,
    pub object_id: Option<i64>,
    pub object_label: String,
    pub fields: Vec<Option<String>>,
    pub client_ip: Option<String>,
}

impl NewEvent {
    /// An event with no signed-in actor (sign-in attempts, first run, the command line).
    pub fn system(action: &str) -> NewEvent {
        NewEvent {
            actor_id: None,
            actor_label: "keyhold".to_string(),
            partner_id: None,
            organization_id: None,
            action: action.to_string(),
            object_kind: String::new(),
            object_id: None,
            object_label: String::new(),
            fields: Vec::new(),
            client_ip: None,
        }
    }

    /// An event done by the signed-in `actor` in the actor's own partner account.
    pub fn by(actor: &dyn Actor, action: &str, client_ip: &str) -> NewEvent {
        NewEvent {
            actor_id: Some(actor.actor_id()),
            actor_label: actor.actor_label(),
            partner_id: Some(actor.partner_id()),
            organization_id: actor.organization_id(),
            client_ip: Some(client_ip.to_string()),
            ..NewEvent::system(action)
        }
    }

    /// The same event with another action (a request's event, completed by a use case).
    pub fn action(mut self, action: &str) -> NewEvent {
        self.action = action.to_string();
        self
    }

    /// The object acted on.
    pub fn object(mut self, kind: &str, id: i64, label: &str) -> NewEvent {
        self.object_kind = kind.to_string();
        self.object_id = Some(id);
        self.object_label = label.to_string();
        self
    }

    /// The organization the event belongs to (when not the actor's own).
    pub fn in_organization(mut self, organization: Option<OrganizationId>) -> NewEvent {
        if organization.is_some() {
            self.organization_id = organization;
        }
        self
    }

    /// Names of the fields that changed.
    pub fn fields(mut self, names: &[&str]) -> NewEvent {
        self.fields = names.iter().map(|name| Some(name.to_string())).collect();
        self
    }

    /// Appends the event.
    pub fn record(self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::insert_into(audit_events::table)
            .values(&self)
            .execute(conn)?;
        Ok(())
    }
}

/// What happened, in words, for every action keyhold records: (stored code, words).
pub const ACTIONS: &[(&str, &str)] = &[
    ("session.sign_in", "Signed in"),
    ("session.sign_in_failed", "Sign-in failed"),
    ("session.sign_out", "Signed out"),
    ("session.key", "Session key"),
    ("setup.complete", "Set up keyhold"),
    ("organization.create", "Created organization"),
    ("user.create", "Added person"),
    ("user.disable", "Disabled person"),
    ("user.enable", "Enabled person"),
    ("credential.create", "Added credential"),
    ("credential.update", "Edited credential"),
    ("credential.verify", "Verified credential"),
    ("credential.lock", "Locked credential"),
    ("credential.unlock", "Unlocked credential"),
    ("credential.default", "Made credential the default"),
    ("credential.delete", "Deleted credential"),
    ("project.create", "Created project"),
    ("project.backup_enable", "Enabled backup"),
    ("project.backup_disable", "Disabled backup"),
    ("policy.create", "Added backup policy"),
    ("policy.delete", "Deleted backup policy"),
    ("backup.run", "Started a backup"),
    ("backup.delete", "Deleted backup"),
    ("backup.verify", "Started a restore check"),
    ("backup.encryption_on", "Turned encryption on"),
    ("backup.encryption_off", "Turned encryption off"),
    ("backup.encryption_change", "Changed encryption"),
    ("backup.encryption_generate", "Generated an encryption key"),
    ("restore.create", "Started a restore"),
    (
        "restore.create_elsewhere",
        "Started a restore into another database",
    ),
    // Second factors, passwords, tokens, notifications and the log itself.
    ("user.password_change", "Changed their password"),
    ("mfa.enable", "Turned on two-step sign-in"),
    ("mfa.disable", "Turned off two-step sign-in"),
    (
        "mfa.enforcement",
        "Changed the two-step sign-in requirement",
    ),
    ("mfa.recovery_code_used", "Used a recovery code"),
    ("mfa.reset", "Reset two-step sign-in"),
    ("token.create", "Created API token"),
    ("token.revoke", "Revoked API token"),
    ("notification.create", "Added notification channel"),
    ("notification.update", "Edited notification channel"),
    ("notification.delete", "Deleted notification channel"),
    ("notification.test", "Sent a test notification"),
    ("audit.export", "Exported the audit log"),
    ("mfa.passkey_add", "Added a passkey"),
    ("mfa.passkey_remove", "Removed a passkey"),
    ("organization.rename", "Renamed organization"),
    ("organization.delete", "Deleted organization"),
    ("user.update", "Changed a person's role or organization"),
    ("user.password_reset", "Set a new password for a person"),
    ("user.delete", "Deleted person"),
    ("project.update", "Edited project"),
    ("project.delete", "Deleted project"),
];

/// The kinds of object events name, in words: (stored kind, words).
pub const OBJECT_KINDS: &[(&str, &str)] = &[
    ("audit_log", "Audit log"),
    ("backup", "Backup"),
    ("credential", "Credential"),
    ("notification_channel", "Notification channel"),
    ("organization", "Organization"),
    ("partner", "Partner account"),
    ("policy", "Backup policy"),
    ("passkey", "Passkey"),
    ("project", "Project"),
    ("token", "API token"),
    ("user", "Person"),
];

/// The words for `code` in `table`; the code with spaces for one without words.
fn words(table: &[(&str, &'static str)], code: &str) -> String {
    table.iter().find(|(known, _)| *known == code).map_or_else(
        || code.replace(['.', '_'], " "),
        |(_, words)| words.to_string(),
    )
}

/// A recorded event, with its organization's name.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor_label: String,
    pub organization_name: Option<String>,
    pub action: String,
    pub object_kind: String,
    pub object_label: String,
    pub fields: Vec<Option<String>>,
    pub client_ip: Option<String>,
}

/// An event's row as stored.
#[derive(Queryable, Selectable)]
#[diesel(table_name = audit_events)]
struct Recorded {
    id: i64,
    at: DateTime<Utc>,
    actor_label: String,
    organization_id: Option<OrganizationId>,
    action: String,
    object_kind: String,
    object_label: String,
    fields: Vec<Option<String>>,
    client_ip: Option<String>,
}

/// The names of the organizations a scope reaches, to put beside its events.
#[derive(Clone, Default)]
pub struct OrganizationNames(HashMap<OrganizationId, String>);

impl OrganizationNames {
    pub fn of(conn: &mut PgConnection, scope: &Scope) -> QueryResult<OrganizationNames> {
        Ok(OrganizationNames(
            filter::organizations(conn, scope)?.into_iter().collect(),
        ))
    }

    fn event(&self, row: Recorded) -> Event {
        Event {
            organization_name: row.organization_id.and_then(|id| self.0.get(&id).cloned()),
            id: row.id,
            at: row.at,
            actor_label: row.actor_label,
            action: row.action,
            object_kind: row.object_kind,
            object_label: row.object_label,
            fields: row.fields,
            client_ip: row.client_ip,
        }
    }
}

/// One page of the log and how many events the filter finds in all.
pub struct EventPage {
    pub events: Vec<Event>,
    pub total: i64,
    pub has_next: bool,
}

impl Event {
    /// When it happened, in words.
    pub fn ago(&self) -> String {
        crate::web::words::ago(self.at)
    }

    /// Changed field names, comma-separated.
    pub fn field_list(&self) -> String {
        self.fields
            .iter()
            .flatten()
            .cloned()
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// What happened, in words ("Signed in"); the stored code, spaced, for an action without
    /// words.
    pub fn action_label(&self) -> String {
        words(ACTIONS, &self.action)
    }

    /// The kind of object, in words ("Backup policy"); empty for an event without one.
    pub fn object_kind_label(&self) -> String {
        if self.object_kind.is_empty() {
            return String::new();
        }
        words(OBJECT_KINDS, &self.object_kind)
    }

    /// A page of the events `filter` finds inside `scope`, newest first, with their total.
    pub fn page(
        conn: &mut PgConnection,
        scope: &Scope,
        filter: &Filter,
        pagination: Pagination,
    ) -> QueryResult<EventPage> {
        let names = OrganizationNames::of(conn, scope)?;
        let mut rows: Vec<Recorded> = filter
            .apply(scope, audit_events::table.into_boxed())
            .select(Recorded::as_select())
            .order(audit_events::id.desc())
            .offset(pagination.offset())
            .limit(pagination.fetch())
            .load(conn)?;
        let has_next = rows.len() as i64 > pagination.per_page;
        rows.truncate(pagination.per_page as usize);
        let total = if pagination.page == 1 && !has_next {
            rows.len() as i64
        } else {
            filter
                .apply(scope, audit_events::table.into_boxed())
                .count()
                .get_result(conn)?
        };
        Ok(EventPage {
            events: rows.into_iter().map(|row| names.event(row)).collect(),
            total,
            has_next,
        })
    }

    /// Up to `limit` events `filter` finds inside `scope` with ids below `before`, newest
    /// first: the next chunk of an export (keyset pages, so each chunk costs the same).
    pub fn before(
        conn: &mut PgConnection,
        scope: &Scope,
        filter: &Filter,
        names: &OrganizationNames,
        before: i64,
        limit: i64,
    ) -> QueryResult<Vec<Event>> {
        let rows: Vec<Recorded> = filter
            .apply(scope, audit_events::table.into_boxed())
            .filter(audit_events::id.lt(before))
            .select(Recorded::as_select())
            .order(audit_events::id.desc())
            .limit(limit)
            .load(conn)?;
        Ok(rows.into_iter().map(|row| names.event(row)).collect())
    }

    /// The latest `limit` changes inside `scope`: what the log shows by default, without
    /// sign-ins and sign-outs, which would flood a dashboard.
    pub fn recent_changes(
        conn: &mut PgConnection,
        scope: &Scope,
        limit: i64,
    ) -> QueryResult<Vec<Event>> {
        let names = OrganizationNames::of(conn, scope)?;
        Event::before(conn, scope, &Filter::default(), &names, i64::MAX, limit)
    }
}

/// An event as the API answers it and the NDJSON export writes it, one a line.
#[derive(Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// Who did it (with the token's name for API changes).
    pub actor: String,
    pub organization: Option<String>,
    /// The stored code (`credential.lock`).
    pub action: String,
    /// What happened, in words (`Locked credential`).
    pub action_label: String,
    pub object_kind: String,
    pub object: String,
    /// Names of the fields that changed (never their values).
    pub fields: Vec<String>,
    pub client_ip: Option<String>,
}

impl From<Event> for EventView {
    fn from(event: Event) -> EventView {
        EventView {
            action_label: event.action_label(),
            fields: event.fields.iter().flatten().cloned().collect(),
            id: event.id,
            at: event.at,
            actor: event.actor_label,
            organization: event.organization_name,
            action: event.action,
            object_kind: event.object_kind,
            object: event.object_label,
            client_ip: event.client_ip,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_and_kind_has_words_once() {
        for table in [ACTIONS, OBJECT_KINDS] {
            for (i, (code, words)) in table.iter().enumerate() {
                assert!(!words.is_empty(), "{code}");
                assert!(
                    table[..i].iter().all(|(other, _)| other != code),
                    "{code} twice"
                );
            }
        }
        assert_eq!(words(ACTIONS, "credential.lock"), "Locked credential");
        assert_eq!(words(ACTIONS, "thing.new_one"), "thing new one");
    }
}
