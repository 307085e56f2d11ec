//! The append-only audit log: who did what, when, in which organization, to which object, and
//! the names (never the values) of the fields that changed.

pub mod routes;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::accounts::model::{OrganizationId, PartnerId, UserId};
use crate::auth::{CurrentUser, Scope};
use crate::schema::{audit_events, organizations};

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
    pub fn by(actor: &CurrentUser, action: &str, client_ip: &str) -> NewEvent {
        NewEvent {
            actor_id: Some(actor.id()),
            actor_label: actor.label(),
            partner_id: Some(actor.identity.partner_id),
            organization_id: actor.identity.organization_id,
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

/// A recorded event, with its organization's name.
#[derive(Queryable, Debug, Clone)]
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

impl Event {
    /// When it happened, in words.
    pub fn ago(&self) -> String {
        crate::web::ago(self.at)
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

    /// What happened, in words ("Signed in"); the stored code for an action without words.
    pub fn action_label(&self) -> String {
        let words = match self.action.as_str() {
            "session.sign_in" => "Signed in",
            "session.sign_in_failed" => "Sign-in failed",
            "session.sign_out" => "Signed out",
            "session.key" => "Session key",
            "setup.complete" => "Set up keyhold",
            "organization.create" => "Created organization",
            "user.create" => "Added person",
            "user.disable" => "Disabled person",
            "user.enable" => "Enabled person",
            "credential.create" => "Added credential",
            "credential.update" => "Edited credential",
            "credential.verify" => "Verified credential",
            "credential.lock" => "Locked credential",
            "credential.unlock" => "Unlocked credential",
            "credential.default" => "Made credential the default",
            "credential.delete" => "Deleted credential",
            "project.create" => "Created project",
            "project.backup_enable" => "Enabled backup",
            "project.backup_disable" => "Disabled backup",
            "policy.create" => "Added backup policy",
            "policy.delete" => "Deleted backup policy",
            "backup.run" => "Started a backup",
            "backup.delete" => "Deleted backup",
            "backup.verify" => "Started a restore check",
            "backup.encryption_on" => "Turned encryption on",
            "backup.encryption_off" => "Turned encryption off",
            "backup.encryption_change" => "Changed encryption",
            "backup.encryption_generate" => "Generated an encryption key",
            "restore.create" => "Started a restore",
            "restore.create_elsewhere" => "Started a restore into another database",
            "user.password_change" => "Changed their password",
            "mfa.enable" => "Turned on two-step sign-in",
            "mfa.disable" => "Turned off two-step sign-in",
            "mfa.recovery_code_used" => "Used a recovery code",
            "mfa.enforcement" => "Changed the two-step sign-in requirement",
            "mfa.reset" => "Reset two-step sign-in (command line)",
            "mfa.passkey_add" => "Added a passkey",
            "mfa.passkey_remove" => "Removed a passkey",
            "organization.rename" => "Renamed organization",
            "organization.delete" => "Deleted organization",
            "user.update" => "Changed a person's role or organization",
            "user.password_reset" => "Set a new password for a person",
            "user.delete" => "Deleted person",
            "project.update" => "Edited project",
            "project.delete" => "Deleted project",
            other => return other.replace(['.', '_'], " "),
        };
        words.to_string()
    }

    /// Newest first, `limit` events from `offset`, inside `scope`.
    pub fn list(
        conn: &mut PgConnection,
        scope: &Scope,
        offset: i64,
        limit: i64,
    ) -> QueryResult<Vec<Event>> {
        Event::load(conn, scope, offset, limit, false)
    }

    /// The latest `limit` changes inside `scope`: events other than sign-ins and sign-outs,
    /// which would flood a dashboard.
    pub fn recent_changes(
        conn: &mut PgConnection,
        scope: &Scope,
        limit: i64,
    ) -> QueryResult<Vec<Event>> {
        Event::load(conn, scope, 0, limit, true)
    }

    fn load(
        conn: &mut PgConnection,
        scope: &Scope,
        offset: i64,
        limit: i64,
        changes_only: bool,
    ) -> QueryResult<Vec<Event>> {
        let mut query = audit_events::table
            .left_join(organizations::table)
            .select((
                audit_events::id,
                audit_events::at,
                audit_events::actor_label,
                organizations::name.nullable(),
                audit_events::action,
                audit_events::object_kind,
                audit_events::object_label,
                audit_events::fields,
                audit_events::client_ip,
            ))
            .order(audit_events::id.desc())
            .offset(offset)
            .limit(limit)
            .into_boxed();
        if changes_only {
            query = query.filter(audit_events::action.not_like("session.%"));
        }
        match scope {
            Scope::Partner(partner) => query.filter(audit_events::partner_id.eq(partner)),
            Scope::Organization(organization) => {
                query.filter(audit_events::organization_id.eq(organization))
            }
        }
        .load(conn)
    }
}

impl Event {
    /// How many events `scope` holds.
    pub fn count(conn: &mut PgConnection, scope: &Scope) -> QueryResult<i64> {
        let query = audit_events::table.count().into_boxed();
        match scope {
            Scope::Partner(partner) => query.filter(audit_events::partner_id.eq(partner)),
            Scope::Organization(organization) => {
                query.filter(audit_events::organization_id.eq(organization))
            }
        }
        .get_result(conn)
    }
}
