//! The rows of a project's Backup tabs as they are shown: a policy with its last run, a backup
//! with its check, a restore, and the encryption settings.

use chrono::{DateTime, Utc};

use crate::backup::drill::{Drill, DrillSchedule};
use crate::backup::encryption::{self, Encryption};
use crate::backup::model::{Backup, BackupPolicy, Restore};
use crate::backup::policy;
use crate::backup::reads::TabRows;
use crate::projects::phase::{DrillPhase, Phase};
use crate::web::words::human_size;

/// A policy as the Schedules tab shows it.
pub struct PolicyView {
    pub id: i64,
    pub name: String,
    pub cron: String,
    pub words: String,
    pub timezone: String,
    pub retention: String,
    pub namespaces: String,
    pub last_backup: String,
    pub last_phase: String,
    pub next_run: String,
    /// When a restore of one of its backups last passed a drill (empty: never).
    pub last_verified: String,
    /// Its drill schedule, in words (`off` shows nothing).
    pub drill: &'static str,
    /// Its slot passed more than the grace period ago without a run.
    pub missed: bool,
    /// The origin its heartbeat goes to (empty: none).
    pub heartbeat: String,
}

/// A backup as the Backups tab shows it.
pub struct BackupView {
    pub id: i64,
    pub name: String,
    pub policy: String,
    pub scheduled_for: String,
    pub finished: String,
    pub expires: String,
    pub size: String,
    pub checksum: String,
    pub phase: Phase,
    pub reason: String,
    /// What the check before `pg_dump` found.
    pub preflight: String,
    /// The recipients it was encrypted to, shortened; empty when stored unencrypted.
    pub encrypted_to: String,
    /// Its latest drill: `verified`, `failed` or empty, and its time, duration or reason.
    pub check: &'static str,
    pub check_detail: String,
    pub restorable: bool,
    pub running: bool,
    /// How long a running backup has been going ("running for 2 min 5 s"); empty otherwise.
    pub elapsed: String,
    pub deleted: bool,
}

/// How long a run started at `started` has been going, in words.
fn running_for(started: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    let Some(started) = started else {
        return "waiting for a slot".into();
    };
    let seconds = (now - started).num_seconds().max(0);
    match seconds {
        0..60 => format!("running for {seconds} s"),
        60..3600 => format!("running for {} min {} s", seconds / 60, seconds % 60),
        _ => format!(
            "running for {} h {} min",
            seconds / 3600,
            seconds % 3600 / 60
        ),
    }
}

/// A restore as the Restores tab shows it.
pub struct RestoreView {
    pub name: String,
    pub backup: String,
    pub target: String,
    pub started: String,
    pub finished: String,
    pub phase: Phase,
    pub warnings: String,
    pub parallel: bool,
}

/// A duration in seconds, to a tenth.
fn seconds(duration: chrono::Duration) -> String {
    format!("{:.1} s", duration.num_milliseconds() as f64 / 1000.0)
}

fn when(at: Option<DateTime<Utc>>) -> String {
    at.map(crate::web::words::utc_second).unwrap_or_default()
}

/// A project's encryption settings as its page shows them.
#[derive(Default)]
pub struct EncryptionView {
    pub enabled: bool,
    /// The recipients, shortened.
    pub recipients: Vec<String>,
    /// What the recipients field holds: the saved keys, or what was typed.
    pub recipients_text: String,
    /// Whether keyhold keeps an identity (restores need none pasted).
    pub identity_kept: bool,
}

impl PolicyView {
    /// A policy of `rows`, with its last backup and the last drill that passed.
    pub(super) fn of(policy: &BackupPolicy, rows: &TabRows) -> PolicyView {
        let last = rows.backups.iter().find(|b| b.policy_id == Some(policy.id));
        PolicyView {
            id: policy.id.0,
            name: policy.name.clone(),
            cron: policy.cron.clone(),
            words: policy.schedule().map(|s| s.describe()).unwrap_or_default(),
            timezone: policy.timezone.clone(),
            retention: policy::format_retention(policy.retention_secs),
            namespaces: policy.namespaces().join(", "),
            last_backup: last
                .map(|b| when(b.finished_at.or(b.started_at)))
                .unwrap_or_default(),
            last_phase: last.map(|b| b.phase.to_string()).unwrap_or_default(),
            missed: rows.project.project.backup_enabled
                && policy.next_run_at < Utc::now() - crate::projects::model::missed_grace(),
            drill: match policy.drill {
                DrillSchedule::Off => "",
                other => other.label(),
            },
            heartbeat: policy.heartbeat_origin().unwrap_or_default(),
            last_verified: last_verified(policy, rows),
            next_run: policy
                .schedule()
                .map(|s| {
                    policy
                        .next_run_at
                        .with_timezone(&s.zone)
                        .format("%Y-%m-%d %H:%M %Z")
                        .to_string()
                })
                .unwrap_or_default(),
        }
    }
}

/// When a drill of one of `policy`'s listed backups last passed (empty: never).
fn last_verified(policy: &BackupPolicy, rows: &TabRows) -> String {
    rows.drills
        .iter()
        .filter(|d| d.phase == DrillPhase::Passed)
        .filter(|d| {
            rows.backups
                .iter()
                .any(|b| Some(b.id) == d.backup_id && b.policy_id == Some(policy.id))
        })
        .filter_map(|d| d.finished_at)
        .max()
        .map(|at| when(Some(at)))
        .unwrap_or_default()
}

impl BackupView {
    /// A backup with its latest drill (`drill`), as of `now`.
    pub(super) fn of(backup: &Backup, drill: Option<&Drill>, now: DateTime<Utc>) -> BackupView {
        BackupView {
            id: backup.id.0,
            name: backup.name.clone(),
            policy: backup.policy_name.clone(),
            scheduled_for: when(Some(backup.scheduled_for)),
            finished: when(backup.finished_at),
            expires: when(backup.expires_at),
            size: match (backup.running(), backup.progress_bytes) {
                (true, Some(stored)) => format!("{} so far", human_size(Some(stored))),
                _ => human_size(backup.size_bytes),
            },
            checksum: backup.sha256.clone().unwrap_or_default(),
            phase: backup.phase,
            reason: backup.reason.clone().unwrap_or_default(),
            preflight: backup.preflight.clone().unwrap_or_default(),
            check: match drill.map(|d| d.phase) {
                Some(DrillPhase::Passed) => "verified",
                Some(DrillPhase::Failed) => "failed",
                _ => "",
            },
            check_detail: drill.map(check_detail).unwrap_or_default(),
            encrypted_to: backup
                .encrypted_to()
                .map(|recipients| {
                    recipients
                        .iter()
                        .map(|r| encryption::short(r))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            restorable: backup.restorable(),
            running: backup.running(),
            elapsed: if backup.running() {
                running_for(backup.started_at, now)
            } else {
                String::new()
            },
            deleted: backup.deleted_at.is_some(),
        }
    }
}

/// What a drill found, in words.
fn check_detail(drill: &Drill) -> String {
    match drill.phase {
        DrillPhase::Passed => format!(
            "restored and compared {} ({} tables, {} rows) in {}",
            when(drill.finished_at),
            drill.tables_compared,
            drill.rows_compared,
            drill.duration().map(seconds).unwrap_or_default()
        ),
        _ => drill.reason.clone().unwrap_or_default(),
    }
}

impl RestoreView {
    pub(super) fn of(restore: &Restore) -> RestoreView {
        RestoreView {
            name: restore.name.clone(),
            backup: restore.backup_name.clone(),
            target: restore
                .target_url
                .clone()
                .unwrap_or_else(|| "the project database".into()),
            started: when(restore.started_at),
            finished: when(restore.finished_at),
            phase: restore.phase,
            warnings: restore.warnings.clone().unwrap_or_default(),
            parallel: restore.parallel,
        }
    }
}

impl EncryptionView {
    /// The saved settings, the recipients field holding what was `typed` if anything.
    pub(super) fn of(saved: Option<&Encryption>, typed: Option<String>) -> EncryptionView {
        let saved = saved
            .map(|saved| EncryptionView {
                enabled: saved.enabled,
                recipients: saved
                    .recipients()
                    .iter()
                    .map(|r| encryption::short(r))
                    .collect(),
                recipients_text: saved.recipients().join("\n"),
                identity_kept: saved.identity.is_some(),
            })
            .unwrap_or_default();
        match typed {
            Some(typed) => EncryptionView {
                recipients_text: typed,
                ..saved
            },
            None => saved,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_backup_says_how_long_it_has_run() {
        let now = Utc::now();
        let ago = |seconds| Some(now - chrono::Duration::seconds(seconds));
        assert_eq!(running_for(None, now), "waiting for a slot");
        assert_eq!(running_for(ago(42), now), "running for 42 s");
        assert_eq!(running_for(ago(125), now), "running for 2 min 5 s");
        assert_eq!(running_for(ago(7260), now), "running for 2 h 1 min");
    }
}
