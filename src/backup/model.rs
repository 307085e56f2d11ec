//! Policies, backups and restores: rows and queries. A backup row is keyed by (policy, slot),
//! so however many schedulers run, a slot produces one row.
//!
//! Over 600 lines because policies, backups and restores share one life (phases, beats,
//! reaping, ends that record their notification event) and their queries are written once
//! here for the pages, the API, the runner and the scheduler.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::backup::drill::DrillSchedule;
use crate::backup::policy::Schedule;
use crate::credentials::model::Credential;
use crate::db::Tables;
use crate::ids::{CredentialId, ProjectId, UserId};
use crate::projects::phase::Phase;
use crate::schema::{backup_policies, backups, restores};
use crate::web::form::Pagination;

pub use crate::ids::{BackupId, PolicyId, RestoreId};

fn strings(values: &[Option<String>]) -> Vec<String> {
    values.iter().flatten().cloned().collect()
}

/// A schedule of a project.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = backup_policies)]
pub struct BackupPolicy {
    pub id: PolicyId,
    pub project_id: ProjectId,
    pub name: String,
    pub cron: String,
    pub timezone: String,
    pub retention_secs: i64,
    pub namespaces: Vec<Option<String>>,
    pub next_run_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    /// When its backups are restored for a check.
    pub drill: DrillSchedule,
    /// Called after each run (GET `<url>`, or `<url>/fail`).
    pub heartbeat_url: Option<String>,
}

/// A policy about to be created.
pub struct NewPolicy<'a> {
    pub project_id: ProjectId,
    pub name: &'a str,
    pub schedule: &'a Schedule,
    pub retention_secs: i64,
    pub namespaces: &'a [String],
    pub drill: DrillSchedule,
    pub heartbeat_url: Option<&'a str>,
    pub created_by: UserId,
}

impl BackupPolicy {
    pub fn namespaces(&self) -> Vec<String> {
        strings(&self.namespaces)
    }

    /// Where its heartbeat goes, for people (the URL may carry a token: its origin only).
    pub fn heartbeat_origin(&self) -> Option<String> {
        let url = url::Url::parse(self.heartbeat_url.as_deref()?).ok()?;
        Some(crate::outbound::origin(&url))
    }

    pub fn schedule(&self) -> Option<Schedule> {
        Schedule::parse(&self.cron, &self.timezone).ok()
    }

    /// The policies of a project, by name.
    pub fn for_project(
        conn: &mut PgConnection,
        project: ProjectId,
    ) -> QueryResult<Vec<BackupPolicy>> {
        backup_policies::table
            .filter(backup_policies::project_id.eq(project))
            .order(backup_policies::name)
            .select(BackupPolicy::as_select())
            .load(conn)
    }

    pub fn count_for_project(conn: &mut PgConnection, project: ProjectId) -> QueryResult<i64> {
        backup_policies::table
            .filter(backup_policies::project_id.eq(project))
            .count()
            .get_result(conn)
    }

    /// A policy of `project`; `NotFound` for any other.
    pub fn find(
        conn: &mut PgConnection,
        project: ProjectId,
        id: PolicyId,
    ) -> QueryResult<BackupPolicy> {
        backup_policies::table
            .filter(backup_policies::project_id.eq(project))
            .filter(backup_policies::id.eq(id))
            .select(BackupPolicy::as_select())
            .first(conn)
    }

    pub fn name_taken(
        conn: &mut PgConnection,
        project: ProjectId,
        name: &str,
    ) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            backup_policies::table
                .filter(backup_policies::project_id.eq(project))
                .filter(backup_policies::name.eq(name)),
        ))
        .get_result(conn)
    }

    /// Creates a policy whose first run is its next slot from now.
    pub fn create(
        conn: &mut PgConnection,
        new: &NewPolicy<'_>,
        now: DateTime<Utc>,
    ) -> QueryResult<BackupPolicy> {
        let next = new.schedule.next_after(now).unwrap_or(now);
        diesel::insert_into(backup_policies::table)
            .values((
                backup_policies::project_id.eq(new.project_id),
                backup_policies::name.eq(new.name),
                backup_policies::cron.eq(&new.schedule.pattern),
                backup_policies::timezone.eq(new.schedule.zone.name()),
                backup_policies::retention_secs.eq(new.retention_secs),
                backup_policies::namespaces.eq(new
                    .namespaces
                    .iter()
                    .cloned()
                    .map(Some)
                    .collect::<Vec<_>>()),
                backup_policies::next_run_at.eq(next),
                backup_policies::created_by.eq(Some(new.created_by)),
                backup_policies::drill.eq(new.drill),
                backup_policies::heartbeat_url.eq(new.heartbeat_url),
            ))
            .returning(BackupPolicy::as_returning())
            .get_result(conn)
    }

    /// Deletes the policy: its schedule stops; its backups stay listed.
    pub fn delete(&self, conn: &mut PgConnection) -> QueryResult<()> {
        diesel::delete(backup_policies::table.find(self.id)).execute(conn)?;
        Ok(())
    }
}

/// One run of a policy (scheduled or "backup now").
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = backups)]
pub struct Backup {
    pub id: BackupId,
    pub project_id: ProjectId,
    pub policy_id: Option<PolicyId>,
    pub policy_name: String,
    pub name: String,
    pub scheduled_for: DateTime<Utc>,
    pub phase: Phase,
    pub reason: Option<String>,
    pub credential_id: Option<CredentialId>,
    pub bucket: Option<String>,
    pub object_key: Option<String>,
    pub namespaces: Vec<Option<String>>,
    pub size_bytes: Option<i64>,
    pub sha256: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub deleted_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// What the check before `pg_dump` found: the bucket reached with the credential, or why not.
    pub preflight: Option<String>,
    /// The age recipients the dump was encrypted to; `None` when it was not encrypted.
    pub encrypted_to: Option<Vec<Option<String>>>,
    /// What a running backup has stored so far, as of its last beat.
    pub progress_bytes: Option<i64>,
}

impl Backup {
    pub fn namespaces(&self) -> Vec<String> {
        strings(&self.namespaces)
    }

    /// The age recipients the dump was encrypted to (`None`: stored unencrypted).
    pub fn encrypted_to(&self) -> Option<Vec<String>> {
        self.encrypted_to.as_deref().map(strings)
    }

    /// Whether the page should keep polling it.
    pub fn running(&self) -> bool {
        self.phase.running()
    }

    /// Whether it can be restored (completed and its object still there).
    pub fn restorable(&self) -> bool {
        self.phase == Phase::Completed && self.deleted_at.is_none()
    }

    /// The tables `for_project` reads (the policy's name is a column of the backup).
    pub const FOR_PROJECT_READS: Tables = Tables::BACKUPS;

    /// The newest backups of a project.
    pub fn for_project(
        conn: &mut PgConnection,
        project: ProjectId,
        limit: i64,
    ) -> QueryResult<Vec<Backup>> {
        backups::table
            .filter(backups::project_id.eq(project))
            .order((backups::scheduled_for.desc(), backups::id.desc()))
            .limit(limit)
            .select(Backup::as_select())
            .load(conn)
    }

    /// A page of a project's backups, newest first, and how many it has.
    pub fn page_for_project(
        conn: &mut PgConnection,
        project: ProjectId,
        pagination: Pagination,
    ) -> QueryResult<(Vec<Backup>, i64)> {
        let of_project = || backups::table.filter(backups::project_id.eq(project));
        let rows = of_project()
            .order((backups::scheduled_for.desc(), backups::id.desc()))
            .offset(pagination.offset())
            .limit(pagination.per_page)
            .select(Backup::as_select())
            .load(conn)?;
        Ok((rows, of_project().count().get_result(conn)?))
    }

    /// Whether a backup of `project` is waiting or running.
    pub fn any_running(conn: &mut PgConnection, project: ProjectId) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            backups::table
                .filter(backups::project_id.eq(project))
                .filter(backups::phase.eq_any([Phase::New, Phase::InProgress])),
        ))
        .get_result(conn)
    }

    /// A backup of `project`; `NotFound` for any other.
    pub fn find(conn: &mut PgConnection, project: ProjectId, id: BackupId) -> QueryResult<Backup> {
        backups::table
            .filter(backups::project_id.eq(project))
            .filter(backups::id.eq(id))
            .select(Backup::as_select())
            .first(conn)
    }

    pub fn find_any(conn: &mut PgConnection, id: BackupId) -> QueryResult<Backup> {
        backups::table
            .find(id)
            .select(Backup::as_select())
            .first(conn)
    }

    /// Records the run of `policy` for `slot`, unless that slot already has one.
    pub fn insert_slot(
        conn: &mut PgConnection,
        policy: &BackupPolicy,
        slot: DateTime<Utc>,
    ) -> QueryResult<Option<BackupId>> {
        let name = format!("{}-{}", policy.name, slot.format("%Y%m%d-%H%M%S"));
        diesel::insert_into(backups::table)
            .values((
                backups::project_id.eq(policy.project_id),
                backups::policy_id.eq(Some(policy.id)),
                backups::policy_name.eq(&policy.name),
                backups::name.eq(name),
                backups::scheduled_for.eq(slot),
                backups::namespaces.eq(&policy.namespaces),
            ))
            .on_conflict((backups::policy_id, backups::scheduled_for))
            .do_nothing()
            .returning(backups::id)
            .get_result(conn)
            .optional()
    }

    /// Moves a New backup to InProgress; `None` if another process took it first.
    pub fn claim(
        conn: &mut PgConnection,
        id: BackupId,
        credential: Option<CredentialId>,
        bucket: Option<&str>,
    ) -> QueryResult<Option<Backup>> {
        let claimed = diesel::update(
            backups::table
                .find(id)
                .filter(backups::phase.eq(Phase::New)),
        )
        .set((
            backups::phase.eq(Phase::InProgress),
            backups::started_at.eq(Some(Utc::now())),
            backups::heartbeat_at.eq(Some(Utc::now())),
            backups::credential_id.eq(credential),
            backups::bucket.eq(bucket),
        ))
        .returning(Backup::as_returning())
        .get_result(conn)
        .optional()?;
        if let (Some(backup), Some(credential)) = (&claimed, credential) {
            let used_for = backup.described(conn)?;
            Credential::record_use(conn, credential, &used_for)?;
        }
        Ok(claimed)
    }

    /// "backup <name> of project <project>", for "Last used".
    pub fn described(&self, conn: &mut PgConnection) -> QueryResult<String> {
        use crate::schema::projects;
        let project: String = projects::table
            .find(self.project_id)
            .select(projects::name)
            .first(conn)?;
        Ok(format!("backup {} of project {project}", self.name))
    }

    /// Ends a backup that did not complete (Failed or Skipped) with its reason.
    pub fn end(
        conn: &mut PgConnection,
        id: BackupId,
        phase: Phase,
        reason: &str,
    ) -> QueryResult<()> {
        conn.transaction(|conn| {
            // Only a run still going ends (a reaped run its process finishes later, a run that
            // completed while keyhold stopped): one end, one event.
            let ended = diesel::update(
                backups::table
                    .find(id)
                    .filter(backups::phase.eq_any([Phase::New, Phase::InProgress])),
            )
            .set((
                backups::phase.eq(phase),
                backups::reason.eq(Some(reason)),
                backups::finished_at.eq(Some(Utc::now())),
            ))
            .execute(conn)?;
            if ended == 1 && phase.failing() {
                crate::notifications::backup_ended(conn, id, phase == Phase::Skipped, reason)?;
            }
            Ok(())
        })
    }

    /// Marks a backup Completed with what was uploaded.
    pub fn complete(
        conn: &mut PgConnection,
        id: BackupId,
        object_key: &str,
        size: i64,
        sha256: &str,
        expires_at: DateTime<Utc>,
        encrypted_to: Option<&[String]>,
    ) -> QueryResult<()> {
        let encrypted_to: Option<Vec<Option<String>>> =
            encrypted_to.map(|recipients| recipients.iter().cloned().map(Some).collect());
        diesel::update(backups::table.find(id))
            .set((
                backups::phase.eq(Phase::Completed),
                backups::encrypted_to.eq(encrypted_to),
                backups::reason.eq(None::<String>),
                backups::object_key.eq(Some(object_key)),
                backups::size_bytes.eq(Some(size)),
                backups::sha256.eq(Some(sha256)),
                backups::finished_at.eq(Some(Utc::now())),
                backups::expires_at.eq(Some(expires_at)),
                backups::upload_key.eq(None::<String>),
                backups::upload_id.eq(None::<String>),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Records (or, with `None`, forgets) the multipart upload a run has open.
    pub fn set_upload(
        conn: &mut PgConnection,
        id: BackupId,
        upload: Option<(&str, &str)>,
    ) -> QueryResult<()> {
        diesel::update(backups::table.find(id))
            .set((
                backups::upload_key.eq(upload.map(|(key, _)| key)),
                backups::upload_id.eq(upload.map(|(_, upload)| upload)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Records what the run's pre-flight check found.
    pub fn set_preflight(conn: &mut PgConnection, id: BackupId, found: &str) -> QueryResult<()> {
        diesel::update(backups::table.find(id))
            .set(backups::preflight.eq(Some(found)))
            .execute(conn)?;
        Ok(())
    }

    /// The ids of every multipart upload a run has recorded.
    pub fn open_upload_ids(conn: &mut PgConnection) -> QueryResult<Vec<String>> {
        let ids: Vec<Option<String>> = backups::table
            .filter(backups::upload_id.is_not_null())
            .select(backups::upload_id)
            .load(conn)?;
        Ok(ids.into_iter().flatten().collect())
    }

    /// Ended runs that left a multipart upload open: (run, key, upload id), oldest first.
    pub fn open_uploads(
        conn: &mut PgConnection,
        limit: i64,
    ) -> QueryResult<Vec<(Backup, String, String)>> {
        let rows: Vec<(Backup, Option<String>, Option<String>)> = backups::table
            .filter(backups::upload_id.is_not_null())
            .filter(backups::phase.eq_any([Phase::Failed, Phase::Skipped]))
            .order(backups::id)
            .limit(limit)
            .select((Backup::as_select(), backups::upload_key, backups::upload_id))
            .load(conn)?;
        Ok(rows
            .into_iter()
            .filter_map(|(backup, key, upload)| Some((backup, key?, upload?)))
            .collect())
    }

    /// Notes that the run is alive.
    pub fn heartbeat(
        conn: &mut PgConnection,
        id: BackupId,
        progress: Option<i64>,
    ) -> QueryResult<()> {
        diesel::update(
            backups::table
                .find(id)
                .filter(backups::phase.eq_any([Phase::New, Phase::InProgress])),
        )
        .set((
            backups::heartbeat_at.eq(Some(Utc::now())),
            backups::progress_bytes.eq(progress),
        ))
        .execute(conn)?;
        Ok(())
    }

    /// Deletes a backup's row (its object is deleted first, by the runner).
    pub fn delete(conn: &mut PgConnection, id: BackupId) -> QueryResult<()> {
        diesel::delete(backups::table.find(id)).execute(conn)?;
        Ok(())
    }

    /// Whether a run of `policy` waits or runs; locks the policy's row until the transaction
    /// ends, so two concurrent presses of "Backup now" see each other.
    pub fn policy_busy(conn: &mut PgConnection, policy: PolicyId) -> QueryResult<bool> {
        backup_policies::table
            .find(policy)
            .select(backup_policies::id)
            .for_update()
            .first::<PolicyId>(conn)?;
        diesel::select(diesel::dsl::exists(
            backups::table
                .filter(backups::policy_id.eq(policy))
                .filter(backups::phase.eq_any([Phase::New, Phase::InProgress])),
        ))
        .get_result(conn)
    }

    /// Names of the backups whose object `credential` wrote and still holds, or that run with it.
    pub fn names_held_by(
        conn: &mut PgConnection,
        credential: crate::ids::CredentialId,
    ) -> QueryResult<Vec<String>> {
        backups::table
            .filter(backups::credential_id.eq(credential))
            .filter(
                backups::phase
                    .eq_any([Phase::New, Phase::InProgress])
                    .or(backups::phase
                        .eq(Phase::Completed)
                        .and(backups::deleted_at.is_null())),
            )
            .order(backups::scheduled_for.desc())
            .select(backups::name)
            .load(conn)
    }

    /// Marks the object deleted (retention or a person's delete).
    pub fn mark_deleted(conn: &mut PgConnection, id: BackupId) -> QueryResult<()> {
        diesel::update(backups::table.find(id))
            .set(backups::deleted_at.eq(Some(Utc::now())))
            .execute(conn)?;
        Ok(())
    }
}

/// A restore of a backup.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = restores)]
pub struct Restore {
    pub id: RestoreId,
    pub project_id: ProjectId,
    pub backup_id: Option<BackupId>,
    pub backup_name: String,
    pub name: String,
    pub namespaces: Vec<Option<String>>,
    pub target_url: Option<String>,
    pub phase: Phase,
    pub warnings: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    /// `pg_restore --jobs` asked for: faster, not one transaction.
    pub parallel: bool,
}

impl Restore {
    pub fn namespaces(&self) -> Vec<String> {
        strings(&self.namespaces)
    }

    pub fn running(&self) -> bool {
        self.phase.running()
    }

    /// The newest restores of a project.
    pub fn for_project(
        conn: &mut PgConnection,
        project: ProjectId,
        limit: i64,
    ) -> QueryResult<Vec<Restore>> {
        restores::table
            .filter(restores::project_id.eq(project))
            .order((restores::created_at.desc(), restores::id.desc()))
            .limit(limit)
            .select(Restore::as_select())
            .load(conn)
    }

    /// A page of a project's restores, newest first, and how many it has.
    pub fn page_for_project(
        conn: &mut PgConnection,
        project: ProjectId,
        pagination: Pagination,
    ) -> QueryResult<(Vec<Restore>, i64)> {
        let of_project = || restores::table.filter(restores::project_id.eq(project));
        let rows = of_project()
            .order((restores::created_at.desc(), restores::id.desc()))
            .offset(pagination.offset())
            .limit(pagination.per_page)
            .select(Restore::as_select())
            .load(conn)?;
        Ok((rows, of_project().count().get_result(conn)?))
    }

    /// The tables `any_running` reads.
    pub const ANY_RUNNING_READS: Tables = Tables::RESTORES;

    /// Whether a restore of `project` is waiting or running.
    pub fn any_running(conn: &mut PgConnection, project: ProjectId) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            restores::table
                .filter(restores::project_id.eq(project))
                .filter(restores::phase.eq_any([Phase::New, Phase::InProgress])),
        ))
        .get_result(conn)
    }

    /// Records a requested restore.
    pub fn create(
        conn: &mut PgConnection,
        backup: &Backup,
        name: &str,
        namespaces: &[String],
        target_url: Option<String>,
        parallel: bool,
        by: UserId,
    ) -> QueryResult<Restore> {
        if let Some(credential) = backup.credential_id {
            let used_for = format!("restore {name} of {}", backup.described(conn)?);
            Credential::record_use(conn, credential, &used_for)?;
        }
        diesel::insert_into(restores::table)
            .values((
                restores::project_id.eq(backup.project_id),
                restores::backup_id.eq(Some(backup.id)),
                restores::backup_name.eq(&backup.name),
                restores::name.eq(name),
                restores::namespaces.eq(namespaces.iter().cloned().map(Some).collect::<Vec<_>>()),
                restores::target_url.eq(target_url),
                restores::phase.eq(Phase::InProgress),
                restores::started_at.eq(Some(Utc::now())),
                restores::heartbeat_at.eq(Some(Utc::now())),
                restores::created_by.eq(Some(by)),
                restores::parallel.eq(parallel),
            ))
            .returning(Restore::as_returning())
            .get_result(conn)
    }

    /// Says the restore's process is alive (the scheduler reaps restores that stop beating).
    pub fn heartbeat(conn: &mut PgConnection, id: RestoreId) -> QueryResult<()> {
        diesel::update(
            restores::table
                .find(id)
                .filter(restores::phase.eq(Phase::InProgress)),
        )
        .set(restores::heartbeat_at.eq(Some(Utc::now())))
        .execute(conn)?;
        Ok(())
    }

    /// Ends a restore with its phase and warnings.
    pub fn end(
        conn: &mut PgConnection,
        id: RestoreId,
        phase: Phase,
        warnings: Option<&str>,
    ) -> QueryResult<()> {
        conn.transaction(|conn| {
            // Only a restore still running ends (one the scheduler reaped stays Failed).
            let ended = diesel::update(
                restores::table
                    .find(id)
                    .filter(restores::phase.eq_any([Phase::New, Phase::InProgress])),
            )
            .set((
                restores::phase.eq(phase),
                restores::warnings.eq(warnings),
                restores::finished_at.eq(Some(Utc::now())),
            ))
            .execute(conn)?;
            if ended == 1 {
                let failure = warnings.filter(|_| phase != Phase::Completed);
                crate::notifications::restore_ended(conn, id, failure)?;
            }
            Ok(())
        })
    }
}
