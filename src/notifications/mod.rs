//! Notifications (SPEC §9): an organization's channels (webhook, Slack, email), the events
//! keyhold records when something needs a person (a backup failed, a slot was missed, a
//! restore check failed, a credential expires), and their delivery. Recording an event is one
//! statement in the transaction of the change it reports (`Event::record`): the event row is
//! the outbox, and each channel that wants it gets a delivery row that one instance claims and
//! sends (`deliver`). Settings: `KEYHOLD_NOTIFY_RETRY_SECONDS` (first retry, doubling up to
//! 15 minutes, for an hour).

pub mod deliver;
pub mod model;
pub mod routes;
pub mod send;
pub mod service;

use chrono::Utc;
use diesel::deserialize::FromSqlRow;
use diesel::expression::AsExpression;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::ids::{BackupId, CredentialId, DrillId, OrganizationId, PolicyId, ProjectId, RestoreId};

/// What happened, as channels subscribe to it (SPEC §9).
#[derive(AsExpression, FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[diesel(sql_type = Text)]
pub enum EventKind {
    BackupFailed,
    BackupSkipped,
    BackupMissed,
    DrillFailed,
    DrillPassed,
    RestoreFinished,
    RestoreFailed,
    CredentialExpiring,
    CredentialVerifyFailed,
    /// "Send test": never subscribed to, sent to the one channel tested.
    Test,
}

impl EventKind {
    /// Every kind, with the test last (forms offer all but the test).
    pub const ALL: [EventKind; 10] = [
        EventKind::BackupFailed,
        EventKind::BackupSkipped,
        EventKind::BackupMissed,
        EventKind::DrillFailed,
        EventKind::DrillPassed,
        EventKind::RestoreFinished,
        EventKind::RestoreFailed,
        EventKind::CredentialExpiring,
        EventKind::CredentialVerifyFailed,
        EventKind::Test,
    ];

    /// The kinds a channel may subscribe to.
    pub fn subscribable() -> &'static [EventKind] {
        &EventKind::ALL[..9]
    }

    /// The stored and submitted name (`backup.failed`, …).
    pub fn key(self) -> &'static str {
        match self {
            EventKind::BackupFailed => "backup.failed",
            EventKind::BackupSkipped => "backup.skipped",
            EventKind::BackupMissed => "backup.missed",
            EventKind::DrillFailed => "drill.failed",
            EventKind::DrillPassed => "drill.passed",
            EventKind::RestoreFinished => "restore.finished",
            EventKind::RestoreFailed => "restore.failed",
            EventKind::CredentialExpiring => "credential.expiring",
            EventKind::CredentialVerifyFailed => "credential.verify_failed",
            EventKind::Test => "test",
        }
    }

    /// What a person reads beside the checkbox.
    pub fn label(self) -> &'static str {
        match self {
            EventKind::BackupFailed => "A backup failed",
            EventKind::BackupSkipped => "A backup was skipped",
            EventKind::BackupMissed => "A scheduled backup did not run",
            EventKind::DrillFailed => "A restore check failed",
            EventKind::DrillPassed => "A restore check passed",
            EventKind::RestoreFinished => "A restore finished",
            EventKind::RestoreFailed => "A restore failed",
            EventKind::CredentialExpiring => "A credential expires in 14 or 3 days",
            EventKind::CredentialVerifyFailed => "A credential stopped verifying",
            EventKind::Test => "Test",
        }
    }

    pub fn parse(text: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|kind| kind.key() == text)
    }
}

crate::stored_as_text!(EventKind, "notification event");

/// What an event is about: the ids it names (the organization, project and policy follow from
/// the backup, drill or restore; the organization from the project or credential).
#[derive(Clone, Copy, Debug, Default)]
pub struct Subject {
    pub organization: Option<OrganizationId>,
    pub project: Option<ProjectId>,
    pub policy: Option<PolicyId>,
    pub backup: Option<BackupId>,
    pub credential: Option<CredentialId>,
}

impl Subject {
    pub fn backup(id: BackupId) -> Subject {
        Subject {
            backup: Some(id),
            ..Subject::default()
        }
    }

    pub fn policy(project: ProjectId, policy: PolicyId) -> Subject {
        Subject {
            project: Some(project),
            policy: Some(policy),
            ..Subject::default()
        }
    }

    pub fn credential(id: CredentialId) -> Subject {
        Subject {
            credential: Some(id),
            ..Subject::default()
        }
    }
}

/// An event about to be recorded.
pub struct Event<'a> {
    pub kind: EventKind,
    pub subject: Subject,
    pub message: &'a str,
    /// Set for events found by a periodic look, so each is recorded once by all instances.
    pub once: Option<String>,
}

/// The event row, its organization, and the body every channel is sent (SPEC §9), built in
/// one statement from the ids of the subject. A project comes from the backup, drill or
/// restore when not given; the organization from the project or the credential.
const RECORD: &str = "
WITH subject AS (
    SELECT $1::bigint AS organization_id, $2::bigint AS project_id, $3::bigint AS policy_id,
           $4::bigint AS backup_id, $5::bigint AS credential_id
), named AS (
    SELECT s.*, b.id AS b_id, b.name AS b_name, b.phase AS b_phase, b.reason AS b_reason,
           coalesce(s.project_id, b.project_id) AS p_id,
           coalesce(s.policy_id, b.policy_id) AS bp_id
    FROM subject s LEFT JOIN backups b ON b.id = s.backup_id
), event AS (
    INSERT INTO notification_events (organization_id, kind, dedup_key, message, body)
    SELECT o.id, $6, $7, $8, jsonb_build_object(
        'event', $6::text, 'at', $9::text, 'message', $8::text,
        'organization', jsonb_build_object('id', o.id, 'name', o.name),
        'project', CASE WHEN p.id IS NULL THEN NULL
                   ELSE jsonb_build_object('id', p.id, 'name', p.name) END,
        'policy', CASE WHEN bp.id IS NULL THEN NULL
                  ELSE jsonb_build_object('id', bp.id, 'name', bp.name) END,
        'backup', CASE WHEN n.b_id IS NULL THEN NULL
                  ELSE jsonb_build_object('id', n.b_id, 'name', n.b_name, 'phase', n.b_phase,
                                          'reason', n.b_reason) END,
        'credential', CASE WHEN c.id IS NULL THEN NULL
                      ELSE jsonb_build_object('id', c.id, 'kind', c.kind, 'name', c.name) END)
    FROM named n
    LEFT JOIN projects p ON p.id = n.p_id
    LEFT JOIN backup_policies bp ON bp.id = n.bp_id
    LEFT JOIN credentials c ON c.id = n.credential_id
    JOIN organizations o ON o.id = coalesce(n.organization_id, p.organization_id, c.organization_id)
    ON CONFLICT (dedup_key) DO NOTHING
    RETURNING id, organization_id, kind
)
INSERT INTO notification_deliveries (delivery_key, event_id, channel_id)
SELECT gen_random_uuid()::text, e.id, ch.id
FROM event e JOIN notification_channels ch
  ON ch.organization_id = e.organization_id AND e.kind = ANY (ch.events)";

impl Event<'_> {
    /// Records the event and a delivery for each channel of its organization that wants it;
    /// answers how many deliveries. An event already recorded under the same `once` key is
    /// not recorded again.
    pub fn record(&self, conn: &mut PgConnection) -> QueryResult<usize> {
        let subject = &self.subject;
        diesel::sql_query(RECORD)
            .bind::<Nullable<BigInt>, _>(subject.organization.map(|id| id.0))
            .bind::<Nullable<BigInt>, _>(subject.project.map(|id| id.0))
            .bind::<Nullable<BigInt>, _>(subject.policy.map(|id| id.0))
            .bind::<Nullable<BigInt>, _>(subject.backup.map(|id| id.0))
            .bind::<Nullable<BigInt>, _>(subject.credential.map(|id| id.0))
            .bind::<Text, _>(self.kind.key())
            .bind::<Nullable<Text>, _>(self.once.as_deref())
            .bind::<Text, _>(self.message)
            .bind::<Text, _>(Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .execute(conn)
    }
}

/// Records the end of a backup that did not complete (`Failed` or `Skipped`).
pub fn backup_ended(
    conn: &mut PgConnection,
    backup: BackupId,
    skipped: bool,
    reason: &str,
) -> QueryResult<usize> {
    let (kind, verb) = if skipped {
        (EventKind::BackupSkipped, "was skipped")
    } else {
        (EventKind::BackupFailed, "failed")
    };
    let message = format!("{} {verb}: {reason}", described_backup(conn, backup)?);
    Event {
        kind,
        subject: Subject::backup(backup),
        message: &message,
        once: None,
    }
    .record(conn)
}

/// Records the end of a restore check.
pub fn drill_ended(
    conn: &mut PgConnection,
    drill: DrillId,
    failure: Option<&str>,
) -> QueryResult<usize> {
    use crate::schema::drills;
    let (project, backup, backup_name): (ProjectId, Option<BackupId>, String) = drills::table
        .find(drill)
        .select((drills::project_id, drills::backup_id, drills::backup_name))
        .first(conn)?;
    let what = format!("The restore check of backup {backup_name}");
    let kinds = (EventKind::DrillPassed, EventKind::DrillFailed);
    ended(conn, project, backup, &what, kinds, failure)
}

/// Records the end of a restore.
pub fn restore_ended(
    conn: &mut PgConnection,
    restore: RestoreId,
    failure: Option<&str>,
) -> QueryResult<usize> {
    use crate::schema::restores;
    let (project, backup, name): (ProjectId, Option<BackupId>, String) = restores::table
        .find(restore)
        .select((restores::project_id, restores::backup_id, restores::name))
        .first(conn)?;
    let what = format!("Restore {name}");
    let kinds = (EventKind::RestoreFinished, EventKind::RestoreFailed);
    ended(conn, project, backup, &what, kinds, failure)
}

/// Records that `what` (of `backup` in `project`) ended: the first kind when it passed, the
/// second with its reason when it failed.
fn ended(
    conn: &mut PgConnection,
    project: ProjectId,
    backup: Option<BackupId>,
    what: &str,
    (passed, failed): (EventKind, EventKind),
    failure: Option<&str>,
) -> QueryResult<usize> {
    let (kind, message) = match failure {
        Some(reason) => (failed, format!("{what} failed: {reason}")),
        None if passed == EventKind::DrillPassed => (passed, format!("{what} passed")),
        None => (passed, format!("{what} finished")),
    };
    Event {
        kind,
        subject: Subject {
            project: Some(project),
            backup,
            ..Subject::default()
        },
        message: &message,
        once: None,
    }
    .record(conn)
}

/// "Backup <name> of project <project>", for messages.
fn described_backup(conn: &mut PgConnection, backup: BackupId) -> QueryResult<String> {
    use crate::schema::{backups, projects};
    let (name, project): (String, String) = backups::table
        .inner_join(projects::table)
        .filter(backups::id.eq(backup))
        .select((backups::name, projects::name))
        .first(conn)?;
    Ok(format!("Backup {name} of project {project}"))
}
