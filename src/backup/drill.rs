//! Restore drills (SPEC §8): what a backup holds (every table of its namespaces with its exact
//! row count, counted in the snapshot `pg_dump` dumped), and drills that restore a completed
//! backup into a scratch database on the project database's server, compare tables and rows
//! with that record, drop the scratch database and record what they found. A drill whose
//! process stopped is reaped by the scheduler, which drops its scratch database too.
//!
//! Over 600 lines because a drill is one flow read top to bottom (claim, restore into a scratch
//! database, compare with the record, drop, record) beside the record it compares with and the
//! clean-up of scratch databases, which must name them exactly as the drill does.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;

use crate::backup::model::Backup;
use crate::backup::runner::Runner;
use crate::db::{self, Tables};
use crate::ids::{BackupId, ProjectId, UserId};
use crate::projects::data_source::{Checked, TableRows};
use crate::projects::model::{Project, SourceUse};
use crate::projects::phase::DrillPhase;
use crate::schema::{backup_tables, drills};

pub use crate::ids::DrillId;

/// A table of a backup and its rows at dump time.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = backup_tables)]
pub struct BackupTable {
    pub schema_name: String,
    pub table_name: String,
    pub row_count: i64,
}

impl BackupTable {
    /// Records what a backup holds.
    pub fn record(
        conn: &mut PgConnection,
        backup: BackupId,
        tables: &[TableRows],
    ) -> QueryResult<()> {
        let rows: Vec<_> = tables
            .iter()
            .map(|table| {
                (
                    backup_tables::backup_id.eq(backup),
                    backup_tables::schema_name.eq(&table.schema),
                    backup_tables::table_name.eq(&table.table),
                    backup_tables::row_count.eq(table.rows),
                )
            })
            .collect();
        diesel::insert_into(backup_tables::table)
            .values(rows)
            .execute(conn)?;
        Ok(())
    }

    /// What a backup holds, by schema and table.
    pub fn of(conn: &mut PgConnection, backup: BackupId) -> QueryResult<Vec<BackupTable>> {
        backup_tables::table
            .filter(backup_tables::backup_id.eq(backup))
            .order((backup_tables::schema_name, backup_tables::table_name))
            .select(BackupTable::as_select())
            .load(conn)
    }
}

/// When a policy's backups are restored for a check.
#[derive(diesel::AsExpression, diesel::FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[diesel(sql_type = Text)]
pub enum DrillSchedule {
    #[default]
    Off,
    /// After every completed backup.
    Each,
    Daily,
    Weekly,
}

impl DrillSchedule {
    pub const ALL: [DrillSchedule; 4] = [
        DrillSchedule::Off,
        DrillSchedule::Each,
        DrillSchedule::Daily,
        DrillSchedule::Weekly,
    ];

    /// The stored and form value.
    pub fn key(self) -> &'static str {
        match self {
            DrillSchedule::Off => "off",
            DrillSchedule::Each => "each",
            DrillSchedule::Daily => "daily",
            DrillSchedule::Weekly => "weekly",
        }
    }

    /// What the form and the Schedules tab say.
    pub fn label(self) -> &'static str {
        match self {
            DrillSchedule::Off => "off",
            DrillSchedule::Each => "after every backup",
            DrillSchedule::Daily => "daily",
            DrillSchedule::Weekly => "weekly",
        }
    }

    pub fn parse(value: &str) -> Option<DrillSchedule> {
        DrillSchedule::ALL.into_iter().find(|d| d.key() == value)
    }

    /// How long a passed or failed check holds before the next is due.
    pub fn period(self) -> Option<chrono::Duration> {
        match self {
            DrillSchedule::Daily => Some(chrono::Duration::days(1)),
            DrillSchedule::Weekly => Some(chrono::Duration::days(7)),
            DrillSchedule::Off | DrillSchedule::Each => None,
        }
    }
}

crate::stored_as_text!(DrillSchedule, "drill schedule");

/// One drill of a backup.
#[derive(Queryable, Selectable, Debug, Clone)]
#[diesel(table_name = drills)]
pub struct Drill {
    pub id: DrillId,
    pub project_id: ProjectId,
    pub backup_id: Option<BackupId>,
    pub backup_name: String,
    pub phase: DrillPhase,
    pub reason: Option<String>,
    pub scratch_database: Option<String>,
    pub scratch_dropped_at: Option<DateTime<Utc>>,
    pub tables_compared: i32,
    pub rows_compared: i64,
    pub mismatches: Vec<Option<String>>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
}

/// What a drill found.
pub struct Found {
    pub tables: i32,
    pub rows: i64,
    pub mismatches: Vec<String>,
}

impl Drill {
    /// The tables `latest_of` reads.
    pub const LATEST_READS: Tables = Tables::DRILLS;

    pub fn running(&self) -> bool {
        matches!(self.phase, DrillPhase::New | DrillPhase::InProgress)
    }

    /// The measured recovery time: from start to end.
    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }

    /// Records a requested drill, started now.
    pub fn create(
        conn: &mut PgConnection,
        backup: &Backup,
        by: Option<UserId>,
    ) -> QueryResult<Drill> {
        if let Some(credential) = backup.credential_id {
            let used_for = format!("restore check of {}", backup.described(conn)?);
            crate::credentials::model::Credential::record_use(conn, credential, &used_for)?;
        }
        diesel::insert_into(drills::table)
            .values((
                drills::project_id.eq(backup.project_id),
                drills::backup_id.eq(Some(backup.id)),
                drills::backup_name.eq(&backup.name),
                drills::phase.eq(DrillPhase::InProgress),
                drills::started_at.eq(Some(Utc::now())),
                drills::heartbeat_at.eq(Some(Utc::now())),
                drills::created_by.eq(by),
            ))
            .returning(Drill::as_returning())
            .get_result(conn)
    }

    /// Whether a drill of `backup` is running.
    pub fn any_running(conn: &mut PgConnection, backup: BackupId) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            drills::table
                .filter(drills::backup_id.eq(backup))
                .filter(drills::phase.eq_any([DrillPhase::New, DrillPhase::InProgress])),
        ))
        .get_result(conn)
    }

    /// Whether a drill of a backup of `project` is running.
    pub fn any_running_in(conn: &mut PgConnection, project: ProjectId) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            drills::table
                .filter(drills::project_id.eq(project))
                .filter(drills::phase.eq_any([DrillPhase::New, DrillPhase::InProgress])),
        ))
        .get_result(conn)
    }

    pub fn heartbeat(conn: &mut PgConnection, id: DrillId) -> QueryResult<()> {
        diesel::update(
            drills::table
                .find(id)
                .filter(drills::phase.eq(DrillPhase::InProgress)),
        )
        .set(drills::heartbeat_at.eq(Some(Utc::now())))
        .execute(conn)?;
        Ok(())
    }

    /// Records the scratch database before it is created (so a crash leaves its name).
    pub fn set_scratch(conn: &mut PgConnection, id: DrillId, name: &str) -> QueryResult<()> {
        diesel::update(drills::table.find(id))
            .set(drills::scratch_database.eq(Some(name)))
            .execute(conn)?;
        Ok(())
    }

    /// Records that the scratch database is gone.
    pub fn scratch_dropped(conn: &mut PgConnection, id: DrillId) -> QueryResult<()> {
        diesel::update(drills::table.find(id))
            .set(drills::scratch_dropped_at.eq(Some(Utc::now())))
            .execute(conn)?;
        Ok(())
    }

    /// Ends a drill with what it found.
    pub fn end(
        conn: &mut PgConnection,
        id: DrillId,
        outcome: &Result<Found, String>,
    ) -> QueryResult<()> {
        let (phase, reason, tables, rows, mismatches) = match outcome {
            Ok(found) if found.mismatches.is_empty() => (
                DrillPhase::Passed,
                None,
                found.tables,
                found.rows,
                Vec::new(),
            ),
            Ok(found) => (
                DrillPhase::Failed,
                Some(format!(
                    "{} mismatch(es) with what the backup holds",
                    found.mismatches.len()
                )),
                found.tables,
                found.rows,
                found.mismatches.iter().cloned().map(Some).collect(),
            ),
            Err(reason) => (DrillPhase::Failed, Some(reason.clone()), 0, 0, Vec::new()),
        };
        conn.transaction(|conn| {
            // Only a drill still running ends: two instances cleaning the same stale drill
            // end it once.
            let ended = diesel::update(
                drills::table
                    .find(id)
                    .filter(drills::phase.eq_any([DrillPhase::New, DrillPhase::InProgress])),
            )
            .set((
                drills::phase.eq(phase),
                drills::reason.eq(&reason),
                drills::tables_compared.eq(tables),
                drills::rows_compared.eq(rows),
                drills::mismatches.eq(mismatches),
                drills::finished_at.eq(Some(Utc::now())),
            ))
            .execute(conn)?;
            if ended == 1 {
                let failure = reason.as_deref().filter(|_| phase == DrillPhase::Failed);
                crate::notifications::drill_ended(conn, id, failure)?;
            }
            Ok(())
        })
    }

    /// The drills of a backup, newest first.
    pub fn of(conn: &mut PgConnection, backup: BackupId) -> QueryResult<Vec<Drill>> {
        drills::table
            .filter(drills::backup_id.eq(backup))
            .order(drills::id.desc())
            .limit(20)
            .select(Drill::as_select())
            .load(conn)
    }

    /// The latest ended drill of each of `backups`.
    pub fn latest_of(conn: &mut PgConnection, backups: &[BackupId]) -> QueryResult<Vec<Drill>> {
        drills::table
            .filter(drills::backup_id.eq_any(backups))
            .filter(drills::phase.eq_any([DrillPhase::Passed, DrillPhase::Failed]))
            .distinct_on(drills::backup_id)
            .order((drills::backup_id, drills::id.desc()))
            .select(Drill::as_select())
            .load(conn)
    }

    /// Running drills that stopped beating before `cutoff`, and ended ones whose scratch
    /// database may be left: what the scheduler cleans up.
    pub fn left_behind(conn: &mut PgConnection, cutoff: DateTime<Utc>) -> QueryResult<Vec<Drill>> {
        drills::table
            .filter(
                drills::phase
                    .eq(DrillPhase::InProgress)
                    .and(drills::heartbeat_at.lt(cutoff))
                    .or(drills::phase
                        .eq_any([DrillPhase::Passed, DrillPhase::Failed])
                        .and(drills::scratch_database.is_not_null())
                        .and(drills::scratch_dropped_at.is_null())),
            )
            .order(drills::id)
            .limit(20)
            .select(Drill::as_select())
            .load(conn)
    }
}

/// Claims up to `limit` drills that daily and weekly drill schedules owe: for each policy
/// whose last check is older than its period (or that has none) and that has a completed
/// backup, a drill of its newest one. The policy rows are locked (`SKIP LOCKED`) while the
/// drill is inserted, so two instances never start the same one.
pub fn claim_due(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<(Drill, Backup)>> {
    #[derive(QueryableByName)]
    struct Due {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        backup: i64,
    }
    conn.transaction(|conn| {
        let due: Vec<Due> = diesel::sql_query(
            "SELECT (SELECT b.id FROM backups b
                     WHERE b.policy_id = p.id AND b.phase = 'Completed' AND b.deleted_at IS NULL
                     ORDER BY b.scheduled_for DESC, b.id DESC LIMIT 1) AS backup
             FROM backup_policies p
             WHERE p.drill IN ('daily', 'weekly')
               AND EXISTS (SELECT 1 FROM backups b WHERE b.policy_id = p.id
                           AND b.phase = 'Completed' AND b.deleted_at IS NULL)
               AND NOT EXISTS (
                   SELECT 1 FROM drills d JOIN backups b ON b.id = d.backup_id
                   WHERE b.policy_id = p.id
                     AND (d.phase IN ('New', 'InProgress')
                          OR d.created_at > now() - CASE p.drill WHEN 'daily'
                              THEN interval '1 day' ELSE interval '7 days' END))
             ORDER BY p.id
             LIMIT $1
             FOR UPDATE OF p SKIP LOCKED",
        )
        .bind::<diesel::sql_types::BigInt, _>(limit)
        .load(conn)?;
        let mut claimed = Vec::new();
        for due in due {
            let backup = Backup::find_any(conn, BackupId(due.backup))?;
            let drill = Drill::create(conn, &backup, None)?;
            claimed.push((drill, backup));
        }
        Ok(claimed)
    })
}

/// The name of a drill's scratch database: its id and a random part, so drills of two
/// keyhold databases on one server never meet.
pub fn scratch_name(drill: DrillId) -> String {
    format!(
        "keyhold_drill_{}_{}",
        drill.0,
        hex::encode(crate::crypto::random_bytes(4))
    )
}

/// Compares what a restored database holds with what the backup recorded.
pub fn compare(recorded: &[BackupTable], restored: &[TableRows]) -> Found {
    let mut mismatches = Vec::new();
    let mut rows = 0;
    for table in recorded {
        let name = format!("{}.{}", table.schema_name, table.table_name);
        match restored
            .iter()
            .find(|r| r.schema == table.schema_name && r.table == table.table_name)
        {
            None => mismatches.push(format!("{name}: missing after the restore")),
            Some(found) if found.rows != table.row_count => mismatches.push(format!(
                "{name}: {} rows restored, {} backed up",
                found.rows, table.row_count
            )),
            Some(found) => rows += found.rows,
        }
    }
    for extra in restored.iter().filter(|r| {
        !recorded
            .iter()
            .any(|t| t.schema_name == r.schema && t.table_name == r.table)
    }) {
        mismatches.push(format!(
            "{}.{}: restored, but not in the backup's record",
            extra.schema, extra.table
        ));
    }
    Found {
        tables: recorded.len() as i32,
        rows,
        mismatches,
    }
}

impl Runner {
    /// Starts the drills that drill schedules owe (a few per pass); how many started.
    pub async fn start_due_drills(&self) -> usize {
        let Ok(claimed) = db::run(&self.pool, |conn| claim_due(conn, 5)).await else {
            return 0;
        };
        let started = claimed.len();
        for (drill, backup) in claimed {
            self.spawn_drill(drill, backup).await;
        }
        started
    }

    /// After a completed backup of a policy that checks every backup: its drill.
    pub async fn drill_after_backup(&self, backup: BackupId) {
        let claimed = db::run(&self.pool, move |conn| {
            conn.transaction(|conn| {
                let backup = Backup::find_any(conn, backup)?;
                let Some(policy) = backup.policy_id else {
                    return Ok(None);
                };
                let policy =
                    crate::backup::model::BackupPolicy::find(conn, backup.project_id, policy)?;
                if policy.drill != DrillSchedule::Each || Drill::any_running(conn, backup.id)? {
                    return Ok(None);
                }
                let drill = Drill::create(conn, &backup, None)?;
                Ok::<_, diesel::result::Error>(Some((drill, backup)))
            })
        })
        .await;
        if let Ok(Some((drill, backup))) = claimed {
            self.spawn_drill(drill, backup).await;
        }
    }

    /// Runs `drill` of `backup` on its own task.
    async fn spawn_drill(&self, drill: Drill, backup: Backup) {
        let project = backup.project_id;
        let Ok(project) = db::run(&self.pool, move |conn| Project::find_any(conn, project)).await
        else {
            return;
        };
        let runner = self.clone();
        actix_web::rt::spawn(async move { runner.run_drill(drill, backup, project).await });
    }

    /// Runs a drill of `backup` to its end, recording the outcome; never panics.
    pub async fn run_drill(&self, drill: Drill, backup: Backup, project: Project) {
        let id = drill.id;
        let heartbeat = self.beat(move |conn| Drill::heartbeat(conn, id));
        let outcome = self.drill(id, &backup, &project).await;
        heartbeat.abort();
        tracing::info!(
            drill = id.0,
            passed = matches!(&outcome, Ok(f) if f.mismatches.is_empty()),
            "drill ended"
        );
        let _ = db::run(&self.pool, move |conn| Drill::end(conn, id, &outcome)).await;
    }

    async fn drill(
        &self,
        id: DrillId,
        backup: &Backup,
        project: &Project,
    ) -> Result<Found, String> {
        let backup_id = backup.id;
        let recorded = db::run(&self.pool, move |conn| BackupTable::of(conn, backup_id))
            .await
            .map_err(|error| format!("could not read what the backup holds: {error}"))?;
        if recorded.is_empty() {
            return Err(
                "this backup recorded no tables (made before drills existed): nothing to compare"
                    .into(),
            );
        }
        let source = self.drill_server(project).await?;
        let file = self.fetch_checked(backup, project, None).await?;
        let name = scratch_name(id);
        let recording = name.clone();
        db::run(&self.pool, move |conn| {
            Drill::set_scratch(conn, id, &recording)
        })
        .await
        .map_err(|error| format!("could not record the scratch database: {error}"))?;
        let scratch = source.sibling(&name);
        let creating = name.clone();
        let source =
            tokio::task::spawn_blocking(move || source.create_database(&creating).map(|()| source))
                .await
                .map_err(|_| "could not create the scratch database".to_string())??;
        let restored = self
            .apply(scratch.clone(), backup.namespaces(), file, true)
            .await;
        let namespaces = backup.namespaces();
        let counted = match restored {
            Ok(_) => tokio::task::spawn_blocking(move || scratch.count_tables(&namespaces))
                .await
                .map_err(|_| "could not count the restored rows".to_string())
                .and_then(|counted| counted),
            Err(reason) => Err(format!("the restore failed: {reason}")),
        };
        self.drop_scratch(id, &source, &name).await;
        Ok(compare(&recorded, &counted?))
    }

    /// The server a drill of `project` restores on, checked: `KEYHOLD_DRILL_DATABASE_URL`'s
    /// when set (a database on it, through which scratch databases are created and dropped),
    /// the project database's own server otherwise.
    async fn drill_server(&self, project: &Project) -> Result<Checked, String> {
        match &self.drill_server {
            Some(url) => {
                let parsed = crate::projects::data_source::DataSource::parse(url)
                    .map_err(|reason| format!("KEYHOLD_DRILL_DATABASE_URL: {reason}"))?;
                self.check_source(&parsed, SourceUse::RestoreTarget(project.id))
                    .await
                    .map_err(|reason| format!("the drill server: {reason}"))
            }
            None => {
                let url = project.open_database_url(&self.keyring).map_err(|_| {
                    "the project's database URL cannot be opened with the configured keys"
                        .to_string()
                })?;
                let parsed = crate::projects::data_source::DataSource::parse(&url)?;
                let usage = SourceUse::DataSource {
                    organization: project.organization_id,
                    project: Some(project.id),
                };
                self.check_source(&parsed, usage).await
            }
        }
    }

    /// Drops a drill's scratch database and forgets it.
    async fn drop_scratch(&self, id: DrillId, source: &Checked, name: &str) {
        // Dropped from the project's database: a database cannot drop itself.
        let (server, dropping) = (source.clone(), name.to_string());
        let dropped = tokio::task::spawn_blocking(move || server.drop_database(&dropping)).await;
        match dropped {
            Ok(Ok(())) => {
                let _ = db::run(&self.pool, move |conn| Drill::scratch_dropped(conn, id)).await;
            }
            Ok(Err(reason)) => tracing::warn!(drill = id.0, "{reason}"),
            Err(_) => tracing::warn!(drill = id.0, "dropping the scratch database stopped"),
        }
    }

    /// Ends drills whose process stopped beating and drops the scratch databases drills left
    /// (keyhold killed mid-drill). Returns how many were cleaned.
    pub async fn clean_drills(&self) -> usize {
        let cutoff = Utc::now() - chrono::Duration::from_std(self.stale_after).unwrap_or_default();
        let Ok(left) = db::run(&self.pool, move |conn| Drill::left_behind(conn, cutoff)).await
        else {
            return 0;
        };
        let mut cleaned = 0;
        for drill in left {
            let id = drill.id;
            if drill.running() {
                let outcome = Err("interrupted: keyhold stopped during the drill".to_string());
                let _ = db::run(&self.pool, move |conn| Drill::end(conn, id, &outcome)).await;
            }
            let Some(name) = drill
                .scratch_database
                .clone()
                .filter(|_| drill.scratch_dropped_at.is_none())
            else {
                cleaned += 1;
                continue;
            };
            let project = drill.project_id;
            let Ok(project) =
                db::run(&self.pool, move |conn| Project::find_any(conn, project)).await
            else {
                continue;
            };
            if let Ok(server) = self.drill_server(&project).await {
                self.drop_scratch(id, &server, &name).await;
                cleaned += 1;
            }
        }
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(schema: &str, name: &str, rows: i64) -> BackupTable {
        BackupTable {
            schema_name: schema.into(),
            table_name: name.into(),
            row_count: rows,
        }
    }

    fn rows(schema: &str, table: &str, rows: i64) -> TableRows {
        TableRows {
            schema: schema.into(),
            table: table.into(),
            rows,
        }
    }

    #[test]
    fn a_drill_names_every_table_that_differs() {
        let recorded = [table("app", "orders", 100), table("app", "notes", 5)];
        let same = compare(
            &recorded,
            &[rows("app", "notes", 5), rows("app", "orders", 100)],
        );
        assert!(same.mismatches.is_empty());
        assert_eq!((same.tables, same.rows), (2, 105));
        let off = compare(
            &recorded,
            &[rows("app", "orders", 99), rows("app", "extra", 1)],
        );
        assert_eq!(
            off.mismatches,
            vec![
                "app.orders: 99 rows restored, 100 backed up",
                "app.notes: missing after the restore",
                "app.extra: restored, but not in the backup's record",
            ]
        );
    }
}
