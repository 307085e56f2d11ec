//! Projects: rows, their sealed data source URL, and the queries over them (always scoped).
//! Which database a data source is, and who else may use it, is `sources`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text};

use crate::access::Scope;
use crate::crypto::Keyring;
use crate::db::{Bind, Prepared, Tables, like_pattern};
use crate::ids::{CredentialId, OrganizationId, UserId};
use crate::projects::phase::Phase;
use crate::schema::projects;

mod sources;

pub use crate::ids::ProjectId;
pub use sources::SourceUse;

/// A project row (its data source still sealed).
#[derive(Queryable, Selectable, QueryableByName, Debug, Clone)]
#[diesel(table_name = projects)]
pub struct Project {
    pub id: ProjectId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub cloud_credential_id: Option<CredentialId>,
    pub ai_credential_id: Option<CredentialId>,
    pub database_url: String,
    pub backup_enabled: bool,
    pub backup_credential_id: Option<CredentialId>,
    pub bucket: Option<String>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<UserId>,
    pub updated_at: DateTime<Utc>,
    pub updated_by: Option<UserId>,
}

/// A row of the projects list, with the names shown beside it.
#[derive(QueryableByName, Debug, Clone)]
pub struct ProjectListing {
    #[diesel(embed)]
    pub project: Project,
    #[diesel(sql_type = Text)]
    pub organization_name: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub cloud_credential_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub ai_credential_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub backup_credential_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_phase: Option<Phase>,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_reason: Option<String>,
    /// A policy whose slot passed more than the grace period ago without a run, and that slot.
    #[diesel(sql_type = Nullable<Text>)]
    pub missed_policy: Option<String>,
    #[diesel(sql_type = Nullable<diesel::sql_types::Timestamptz>)]
    pub missed_at: Option<DateTime<Utc>>,
    /// Why the latest restore check failed, when it did.
    #[diesel(sql_type = Nullable<Text>)]
    pub drill_failure: Option<String>,
}

impl ProjectListing {
    /// Whether the project's latest scheduled run failed or was skipped, a schedule missed its
    /// run, or the latest restore check failed.
    pub fn failing(&self) -> bool {
        !self.alerts().is_empty()
    }

    /// What is wrong with the project's backups, one sentence each.
    pub fn alerts(&self) -> Vec<String> {
        let mut alerts = Vec::new();
        if let Some(phase) = self.last_phase.filter(|phase| phase.failing()) {
            alerts.push(format!(
                "The latest backup {}: {}",
                phase.key().to_lowercase(),
                self.last_reason.clone().unwrap_or_default()
            ));
        }
        if let (Some(policy), Some(at)) = (&self.missed_policy, self.missed_at) {
            alerts.push(format!(
                "Missed: policy {policy} was due at {} and has not run (is a keyhold scheduler \
                 running?)",
                at.format("%Y-%m-%d %H:%M UTC")
            ));
        }
        if let Some(reason) = &self.drill_failure {
            alerts.push(format!("Restore check failed: {reason}"));
        }
        alerts
    }
}

/// How long after its slot a policy without a run counts as missed
/// (`KEYHOLD_MISSED_GRACE_MINUTES`), in seconds.
static MISSED_GRACE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(15 * 60);

/// The grace period after which a slot without a run is "missed".
pub fn missed_grace() -> chrono::Duration {
    chrono::Duration::seconds(MISSED_GRACE.load(std::sync::atomic::Ordering::Relaxed) as i64)
}

/// Sets the grace period after which a slot without a run is "missed".
pub fn set_missed_grace(grace: std::time::Duration) {
    MISSED_GRACE.store(grace.as_secs(), std::sync::atomic::Ordering::Relaxed);
}

/// What it takes to create a project.
pub struct NewProject<'a> {
    pub organization_id: OrganizationId,
    pub name: &'a str,
    pub cloud_credential_id: Option<CredentialId>,
    pub ai_credential_id: Option<CredentialId>,
    pub database_url: &'a str,
    pub backup: Option<(CredentialId, String)>,
    pub created_by: UserId,
}

/// What an edit saves.
pub struct ProjectChanges<'a> {
    pub name: &'a str,
    pub cloud_credential_id: Option<CredentialId>,
    pub ai_credential_id: Option<CredentialId>,
    /// The new data source URL; `None` keeps the stored one.
    pub database_url: Option<&'a str>,
}

/// Associated data of a project's sealed data source.
fn context(organization: OrganizationId, id: ProjectId) -> String {
    format!("org/{organization}/project/{id}/database_url")
}

/// Columns are named: a prepared `SELECT p.*` would fail once a later migration adds a column
/// while this version still runs.
const LISTING: &str = "SELECT p.id, p.organization_id, p.name, p.cloud_credential_id,
        p.ai_credential_id, p.database_url, p.backup_enabled, p.backup_credential_id, p.bucket,
        p.version, p.created_at, p.created_by, p.updated_at, p.updated_by,
        o.name AS organization_name,
        cc.name AS cloud_credential_name, ac.name AS ai_credential_name,
        bc.name AS backup_credential_name,
        -- A skip whose causes are gone (backup on again, its credential unlocked) is no longer
        -- news: the banner leaves with the unlock, not after the next run.
        CASE WHEN last.phase = 'Skipped' AND p.backup_enabled AND bc.is_locked = false
             THEN NULL ELSE last.phase END AS last_phase,
        CASE WHEN last.phase = 'Skipped' AND p.backup_enabled AND bc.is_locked = false
             THEN NULL ELSE last.reason END AS last_reason,
        missed.name AS missed_policy, missed.next_run_at AS missed_at,
        drill.reason AS drill_failure
     FROM projects p
     JOIN organizations o ON o.id = p.organization_id
     LEFT JOIN credentials cc ON cc.id = p.cloud_credential_id
     LEFT JOIN credentials ac ON ac.id = p.ai_credential_id
     LEFT JOIN credentials bc ON bc.id = p.backup_credential_id
     LEFT JOIN LATERAL (
         SELECT b.phase, b.reason FROM backups b
         WHERE b.project_id = p.id AND b.phase IN ('Completed', 'Failed', 'Skipped') -- Phase::key
         ORDER BY b.scheduled_for DESC, b.id DESC LIMIT 1
     ) last ON true
     LEFT JOIN LATERAL (
         SELECT bp.name, bp.next_run_at FROM backup_policies bp
         WHERE bp.project_id = p.id AND p.backup_enabled
           AND bp.next_run_at < now() - interval '{GRACE} seconds'
         ORDER BY bp.next_run_at LIMIT 1
     ) missed ON true
     LEFT JOIN LATERAL (
         SELECT CASE WHEN d.phase = 'Failed' THEN coalesce(d.reason, 'failed') END AS reason
         FROM drills d
         WHERE d.project_id = p.id AND d.phase IN ('Passed', 'Failed')
         ORDER BY d.id DESC LIMIT 1
     ) drill ON true";

/// What narrows the projects list: words found in the names it shows (project, organization,
/// credentials, bucket), and one organization (Partners).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProjectFilter {
    pub search: Option<String>,
    pub organization: Option<OrganizationId>,
}

/// The names a search looks in: each column of `LISTING` a person sees in the list.
const SEARCHED: [&str; 6] = [
    "p.name", "o.name", "cc.name", "ac.name", "bc.name", "p.bucket",
];

/// The projects `scope` reaches (or the one of them with `id`) that pass `filter`, as a
/// statement prepared once per connection with only the conditions that apply.
fn listing(scope: &Scope, id: Option<ProjectId>, filter: &ProjectFilter) -> Prepared {
    let (condition, value) = scope.condition("p.organization_id");
    let grace = MISSED_GRACE.load(std::sync::atomic::Ordering::Relaxed);
    let mut sql = format!(
        "{} WHERE {condition}",
        LISTING.replace("{GRACE}", &grace.to_string())
    );
    let mut binds = vec![value];
    if let Some(id) = id {
        sql.push_str(" AND p.id = ?");
        binds.push(Bind::Int(id.0));
    }
    if let Some(organization) = filter.organization {
        sql.push_str(" AND p.organization_id = ?");
        binds.push(Bind::Int(organization.0));
    }
    if let Some(search) = &filter.search {
        let pattern = like_pattern(search);
        let matches: Vec<String> = SEARCHED
            .iter()
            .map(|column| {
                binds.push(Bind::Text(pattern.clone()));
                format!("lower({column}) LIKE ?")
            })
            .collect();
        sql.push_str(&format!(" AND ({})", matches.join(" OR ")));
    }
    sql.push_str(" ORDER BY lower(p.name), p.id");
    Prepared::new(&sql, binds)
}

/// Why a project could not be written: a query failed, or its data source could not be sealed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("sealing failed: {0:#}")]
    Sealing(anyhow::Error),
}

impl Project {
    /// The data source URL, opened (for pg_dump, pg_restore and listing schemas only).
    pub fn open_database_url(&self, keyring: &Keyring) -> anyhow::Result<String> {
        keyring.open_text(&self.database_url, &context(self.organization_id, self.id))
    }

    /// The tables `list` and `find_listing` read (`LISTING`): projects, their organization,
    /// the names of their credentials, and their latest backup.
    pub const LISTING_READS: Tables = Tables::PROJECTS
        .with(Tables::ORGANIZATIONS)
        .with(Tables::CREDENTIALS)
        .with(Tables::BACKUPS)
        .with(Tables::BACKUP_POLICIES)
        .with(Tables::DRILLS);

    /// The projects `scope` reaches, with names and their latest backup outcome.
    pub fn list(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<ProjectListing>> {
        Project::list_filtered(conn, scope, &ProjectFilter::default())
    }

    /// The projects `scope` reaches that pass `filter`.
    pub fn list_filtered(
        conn: &mut PgConnection,
        scope: &Scope,
        filter: &ProjectFilter,
    ) -> QueryResult<Vec<ProjectListing>> {
        listing(scope, None, filter).load(conn)
    }

    /// One project inside `scope`, with its names; `NotFound` otherwise.
    pub fn find_listing(
        conn: &mut PgConnection,
        scope: &Scope,
        id: ProjectId,
    ) -> QueryResult<ProjectListing> {
        listing(scope, Some(id), &ProjectFilter::default()).get_result(conn)
    }

    /// One project inside `scope`; `NotFound` otherwise.
    pub fn find(conn: &mut PgConnection, scope: &Scope, id: ProjectId) -> QueryResult<Project> {
        projects::table
            .filter(projects::id.eq(id))
            .filter(projects::organization_id.eq_any(scope.organization_ids()))
            .select(Project::as_select())
            .first(conn)
    }

    /// One project inside `scope`, locked until the transaction ends; `NotFound` otherwise.
    pub fn find_for_update(
        conn: &mut PgConnection,
        scope: &Scope,
        id: ProjectId,
    ) -> QueryResult<Project> {
        projects::table
            .filter(projects::id.eq(id))
            .filter(projects::organization_id.eq_any(scope.organization_ids()))
            .select(Project::as_select())
            .for_update()
            .first(conn)
    }

    /// A project by id, unscoped (for the scheduler, which acts for everyone).
    pub fn find_any(conn: &mut PgConnection, id: ProjectId) -> QueryResult<Project> {
        projects::table
            .find(id)
            .select(Project::as_select())
            .first(conn)
    }

    /// Whether the organization already has a project of this name.
    pub fn name_taken(
        conn: &mut PgConnection,
        organization: OrganizationId,
        name: &str,
    ) -> QueryResult<bool> {
        diesel::select(diesel::dsl::exists(
            projects::table
                .filter(projects::organization_id.eq(organization))
                .filter(projects::name.eq(name)),
        ))
        .get_result(conn)
    }

    /// Creates a project with its data source sealed under the active key.
    pub fn create(
        conn: &mut PgConnection,
        keyring: &Keyring,
        new: &NewProject<'_>,
    ) -> Result<Project, WriteError> {
        let id: i64 = diesel::select(diesel::dsl::sql::<BigInt>("nextval('projects_id_seq')"))
            .get_result(conn)?;
        let id = ProjectId(id);
        let sealed = keyring
            .seal_text(new.database_url, &context(new.organization_id, id))
            .map_err(WriteError::Sealing)?;
        let (backup_credential, bucket) = match &new.backup {
            Some((credential, bucket)) => (Some(*credential), Some(bucket.clone())),
            None => (None, None),
        };
        Ok(diesel::insert_into(projects::table)
            .values((
                projects::id.eq(id),
                projects::organization_id.eq(new.organization_id),
                projects::name.eq(new.name),
                projects::cloud_credential_id.eq(new.cloud_credential_id),
                projects::ai_credential_id.eq(new.ai_credential_id),
                projects::database_url.eq(sealed),
                projects::backup_enabled.eq(new.backup.is_some()),
                projects::backup_credential_id.eq(backup_credential),
                projects::bucket.eq(bucket),
                projects::created_by.eq(Some(new.created_by)),
                projects::updated_by.eq(Some(new.created_by)),
            ))
            .returning(Project::as_returning())
            .get_result(conn)?)
    }

    /// Turns backup on with a credential and bucket.
    pub fn enable_backup(
        &self,
        conn: &mut PgConnection,
        credential: CredentialId,
        bucket: &str,
        by: UserId,
    ) -> QueryResult<()> {
        diesel::update(projects::table.find(self.id))
            .set((
                projects::backup_enabled.eq(true),
                projects::backup_credential_id.eq(Some(credential)),
                projects::bucket.eq(Some(bucket)),
                projects::version.eq(projects::version + 1),
                projects::updated_at.eq(Utc::now()),
                projects::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Turns backup off (the caller has checked that no policy exists).
    pub fn disable_backup(&self, conn: &mut PgConnection, by: UserId) -> QueryResult<()> {
        diesel::update(projects::table.find(self.id))
            .set((
                projects::backup_enabled.eq(false),
                projects::backup_credential_id.eq(None::<CredentialId>),
                projects::version.eq(projects::version + 1),
                projects::updated_at.eq(Utc::now()),
                projects::updated_by.eq(Some(by)),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// Saves an edit: name, credentials and (when it changed) the data source, sealed under the
    /// active key. Only the version the edit was made from is changed: `false` when someone
    /// else saved the project meanwhile.
    pub fn update(
        &self,
        conn: &mut PgConnection,
        keyring: &Keyring,
        changes: &ProjectChanges<'_>,
        by: UserId,
    ) -> Result<bool, WriteError> {
        let database_url = match changes.database_url {
            Some(url) => keyring
                .seal_text(url, &context(self.organization_id, self.id))
                .map_err(WriteError::Sealing)?,
            None => self.database_url.clone(),
        };
        let updated = diesel::update(
            projects::table
                .find(self.id)
                .filter(projects::version.eq(self.version)),
        )
        .set((
            projects::name.eq(changes.name),
            projects::cloud_credential_id.eq(changes.cloud_credential_id),
            projects::ai_credential_id.eq(changes.ai_credential_id),
            projects::database_url.eq(database_url),
            projects::version.eq(projects::version + 1),
            projects::updated_at.eq(Utc::now()),
            projects::updated_by.eq(Some(by)),
        ))
        .execute(conn)?;
        Ok(updated == 1)
    }

    /// Deletes the project with its records: runs that left no object (failed, skipped or
    /// deleted backups), restores and checks; its data source record and encryption settings
    /// go by their foreign keys. The caller has checked `keeping` under the row's lock.
    pub fn delete(conn: &mut PgConnection, id: ProjectId) -> QueryResult<()> {
        use crate::schema::{backups, restores};
        diesel::delete(restores::table.filter(restores::project_id.eq(id))).execute(conn)?;
        diesel::delete(backups::table.filter(backups::project_id.eq(id))).execute(conn)?;
        diesel::delete(projects::table.find(id)).execute(conn)?;
        Ok(())
    }

    /// Re-seals up to `batch` data source URLs not under the active key; returns how many.
    pub fn reseal_batch(
        conn: &mut PgConnection,
        keyring: &Keyring,
        batch: i64,
    ) -> anyhow::Result<usize> {
        conn.transaction(|conn| {
            let prefix = format!("{}:%", keyring.active_id());
            let rows: Vec<Project> = projects::table
                .filter(projects::database_url.not_like(prefix))
                .select(Project::as_select())
                .order(projects::id)
                .limit(batch)
                .for_update()
                .skip_locked()
                .load(conn)?;
            for row in &rows {
                let url = row.open_database_url(keyring)?;
                let sealed = keyring.seal_text(&url, &context(row.organization_id, row.id))?;
                diesel::update(projects::table.find(row.id))
                    .set(projects::database_url.eq(sealed))
                    .execute(conn)?;
            }
            Ok(rows.len())
        })
    }

    /// The (credential, bucket) pairs projects back up to.
    pub fn backup_buckets(conn: &mut PgConnection) -> QueryResult<Vec<(CredentialId, String)>> {
        let pairs: Vec<(Option<CredentialId>, Option<String>)> = projects::table
            .filter(projects::backup_enabled.eq(true))
            .select((projects::backup_credential_id, projects::bucket))
            .distinct()
            .load(conn)?;
        Ok(pairs
            .into_iter()
            .filter_map(|(credential, bucket)| Some((credential?, bucket?)))
            .collect())
    }
}
