//! The scheduler: a loop in every `serve` process (or alone in `keyhold worker`) that claims
//! due policies with `FOR UPDATE SKIP LOCKED`, records one backup row per (policy, slot) so two
//! instances never run a slot twice, runs them, marks runs whose process died as Failed, and
//! deletes expired backups.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use crate::backup::model::{Backup, BackupPolicy};
use crate::backup::runner::Runner;
use crate::db;
use crate::ids::{BackupId, RestoreId};
use crate::projects::model::Project;
use crate::projects::phase::Phase;
use crate::schema::{backup_policies, backups, restores};

/// What a pass's database work can fail with (the pass logs it and tries again).
type StoreError = db::RunError<diesel::result::Error>;

/// Policies claimed per transaction.
const CLAIM_BATCH: i64 = 50;

/// Claims every due policy (as of `now`), records its run, and moves its next slot past `now`.
/// Slots missed while keyhold was down collapse into one run, for the latest of them.
pub fn claim_due(conn: &mut PgConnection, now: DateTime<Utc>) -> QueryResult<Vec<BackupId>> {
    conn.transaction(|conn| {
        let due: Vec<BackupPolicy> = backup_policies::table
            .filter(backup_policies::next_run_at.le(now))
            .order(backup_policies::next_run_at)
            .limit(CLAIM_BATCH)
            .select(BackupPolicy::as_select())
            .for_update()
            .skip_locked()
            .load(conn)?;
        let mut claimed = Vec::new();
        for policy in due {
            let Some(schedule) = policy.schedule() else {
                tracing::error!(
                    policy = policy.id.0,
                    "policy has an unusable schedule; retrying in a day"
                );
                diesel::update(backup_policies::table.find(policy.id))
                    .set(backup_policies::next_run_at.eq(now + chrono::Duration::days(1)))
                    .execute(conn)?;
                continue;
            };
            let slot = schedule
                .latest_at_or_before(now)
                .filter(|slot| *slot >= policy.next_run_at)
                .unwrap_or(policy.next_run_at);
            if let Some(id) = Backup::insert_slot(conn, &policy, slot)? {
                claimed.push(id);
            }
            let next = schedule
                .next_after(now)
                .unwrap_or(now + chrono::Duration::days(1));
            diesel::update(backup_policies::table.find(policy.id))
                .set(backup_policies::next_run_at.eq(next))
                .execute(conn)?;
        }
        Ok(claimed)
    })
}

/// Runs whose process stopped beating for `stale_after` are Failed (interrupted); returns how
/// many.
pub fn reap_stale(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    stale_after: Duration,
) -> QueryResult<usize> {
    let stale = now - chrono::Duration::from_std(stale_after).unwrap_or_default();
    let interrupted = "interrupted: the keyhold process running it stopped";
    let backups: Vec<BackupId> = diesel::update(
        backups::table
            .filter(backups::phase.eq(Phase::InProgress))
            .filter(backups::heartbeat_at.lt(stale)),
    )
    .set((
        backups::phase.eq(Phase::Failed),
        backups::reason.eq(Some(interrupted)),
        backups::finished_at.eq(Some(now)),
    ))
    .returning(backups::id)
    .get_results(conn)?;
    for id in &backups {
        crate::notifications::backup_ended(conn, *id, false, interrupted)?;
    }
    // A run waiting for a slot beats too (`Runner::run_backup`): only one whose process
    // stopped is stale, not one that waits.
    let not_started = "interrupted: keyhold stopped before the run started";
    let never_started: Vec<BackupId> = diesel::update(
        backups::table.filter(backups::phase.eq(Phase::New)).filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("coalesce(heartbeat_at, created_at) < ")
                .bind::<diesel::sql_types::Timestamptz, _>(stale),
        ),
    )
    .set((
        backups::phase.eq(Phase::Failed),
        backups::reason.eq(Some(not_started)),
        backups::finished_at.eq(Some(now)),
    ))
    .returning(backups::id)
    .get_results(conn)?;
    for id in &never_started {
        crate::notifications::backup_ended(conn, *id, false, not_started)?;
    }
    // Restores beat like backups (`Runner::run_restore`).
    let restores: Vec<RestoreId> = diesel::update(
        restores::table
            .filter(restores::phase.eq(Phase::InProgress))
            .filter(
                diesel::dsl::sql::<diesel::sql_types::Bool>(
                    "coalesce(heartbeat_at, started_at) < ",
                )
                .bind::<diesel::sql_types::Timestamptz, _>(stale),
            ),
    )
    .set((
        restores::phase.eq(Phase::Failed),
        restores::warnings.eq(Some(interrupted)),
        restores::finished_at.eq(Some(now)),
    ))
    .returning(restores::id)
    .get_results(conn)?;
    for id in &restores {
        crate::notifications::restore_ended(conn, *id, Some(interrupted))?;
    }
    Ok(backups.len() + never_started.len() + restores.len())
}

/// Completed backups whose retention has passed (as of `now`) and whose object still exists.
pub fn expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> QueryResult<Vec<Backup>> {
    backups::table
        .filter(backups::phase.eq(Phase::Completed))
        .filter(backups::deleted_at.is_null())
        .filter(backups::expires_at.le(now))
        .order(backups::expires_at)
        .limit(limit)
        .select(Backup::as_select())
        .load(conn)
}

/// Deletes expired backups' objects and marks them deleted; returns how many.
pub async fn apply_retention(runner: &Runner, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let due = db::run(&runner.pool, move |conn| expired(conn, now, 20)).await?;
    let mut deleted = 0;
    for backup in due {
        match runner.delete_object(&backup).await {
            Ok(()) => {
                let id = backup.id;
                db::run(&runner.pool, move |conn| Backup::mark_deleted(conn, id)).await?;
                deleted += 1;
            }
            Err(reason) => {
                tracing::warn!(backup = backup.id.0, "retention could not delete: {reason}")
            }
        }
    }
    Ok(deleted)
}

/// Aborts the multipart uploads ended runs left open (a process killed mid-upload, an abort S3
/// could not take); returns how many were aborted. Runs at every pass, so at start-up too.
pub async fn abort_open_uploads(runner: &Runner) -> Result<usize, StoreError> {
    let open = db::run(&runner.pool, |conn| Backup::open_uploads(conn, 20)).await?;
    let mut aborted = 0;
    for (backup, key, upload) in open {
        if runner.abort_upload(&backup, &key, &upload).await {
            let id = backup.id;
            db::run(&runner.pool, move |conn| Backup::set_upload(conn, id, None)).await?;
            aborted += 1;
        }
    }
    Ok(aborted)
}

/// Identifies the data sources of projects keyhold has not identified yet (made before it
/// recorded identities), so another organization cannot claim the same database; returns how
/// many were identified. Once, when the scheduler starts (new projects are identified when
/// they are created, and every run identifies its project again).
pub async fn identify_sources(runner: &Runner) -> Result<usize, StoreError> {
    let projects = db::run(&runner.pool, |conn| Project::unidentified(conn, 10_000)).await?;
    let mut identified = 0;
    for project in projects {
        match runner.check_project_source(&project).await {
            Ok(_) => identified += 1,
            Err(reason) => {
                tracing::warn!(
                    project = project.id.0,
                    "data source not identified: {reason}"
                )
            }
        }
    }
    Ok(identified)
}

/// One pass: reap, claim and start due runs (the runner runs as many at once as its
/// concurrency allows; the others wait, beating), apply retention.
pub async fn tick(runner: &Runner, now: DateTime<Utc>) -> Result<usize, StoreError> {
    let stale_after = runner.stale_after;
    db::run(&runner.pool, move |conn| {
        conn.transaction(|conn| reap_stale(conn, now, stale_after))
    })
    .await?;
    // A slot more than the grace period late is missed, even though it runs now: said
    // before claiming moves its policy's next slot on.
    let grace = crate::projects::model::missed_grace();
    db::run(&runner.pool, move |conn| {
        crate::notifications::deliver::record_missed(conn, now, grace)
    })
    .await?;
    let claimed = db::run(&runner.pool, move |conn| claim_due(conn, now)).await?;
    let started = claimed.len();
    for id in claimed {
        let runner = runner.clone();
        actix_web::rt::spawn(async move { runner.run_backup(id).await });
    }
    abort_open_uploads(runner).await?;
    apply_retention(runner, now).await?;
    // Drills whose process stopped, and the scratch databases they left; drills now due.
    runner.clean_drills().await;
    runner.start_due_drills().await;
    Ok(started)
}

/// Runs `tick` every `interval` until the process ends.
pub fn spawn(runner: Runner, interval: Duration) {
    let starting = runner.clone();
    actix_web::rt::spawn(async move {
        if let Err(error) = identify_sources(&starting).await {
            tracing::warn!("identifying data sources failed: {error}");
        }
        // Uploads a killed keyhold opened but never recorded: old enough that no process
        // still running could be sending them.
        match starting
            .abort_forgotten_uploads(starting.stale_after * 2)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!("aborted {n} forgotten multipart uploads"),
            Err(error) => tracing::warn!("looking for forgotten uploads failed: {error}"),
        }
    });
    actix_web::rt::spawn(async move {
        let mut timer = actix_web::rt::time::interval(interval);
        loop {
            timer.tick().await;
            if let Err(error) = tick(&runner, Utc::now()).await {
                tracing::warn!("scheduler pass failed: {error}");
            }
        }
    });
}
