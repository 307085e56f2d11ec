//! The record of which database each project's data source is (`project_data_sources`: its
//! identity and schemas), and the rule of SPEC §13 it serves: which other projects a database
//! may not also serve.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::Text;

use super::Project;
use crate::ids::{OrganizationId, ProjectId};
use crate::schema::projects;

/// Which other projects a database may not also serve (SPEC §13).
#[derive(Clone, Copy, Debug)]
pub enum SourceUse {
    /// A data source of a project of `organization` (`project` once it exists): no project of
    /// another organization may use the same database, unless this project was there first
    /// (a server claiming another's identity cannot lock its owner out).
    DataSource {
        organization: OrganizationId,
        project: Option<ProjectId>,
    },
    /// A restore target other than the project's own database: no other project may use it.
    RestoreTarget(ProjectId),
}

impl SourceUse {
    /// Whether a project this use excludes has `identity` as its data source.
    pub fn refused(self, conn: &mut PgConnection, identity: &str) -> QueryResult<bool> {
        use crate::schema::project_data_sources as sources;
        let used = sources::table
            .inner_join(projects::table)
            .filter(sources::identity.eq(identity));
        let count: i64 = match self {
            SourceUse::DataSource {
                organization,
                project: None,
            } => used
                .filter(projects::organization_id.ne(organization))
                .count()
                .get_result(conn)?,
            SourceUse::DataSource {
                organization,
                project: Some(project),
            } => {
                let ours: Option<DateTime<Utc>> = sources::table
                    .find(project)
                    .filter(sources::identity.eq(identity))
                    .select(sources::first_seen_at)
                    .first(conn)
                    .optional()?;
                let others = used.filter(projects::organization_id.ne(organization));
                match ours {
                    Some(first) => others
                        .filter(sources::first_seen_at.le(first))
                        .count()
                        .get_result(conn)?,
                    None => others.count().get_result(conn)?,
                }
            }
            SourceUse::RestoreTarget(project) => used
                .filter(projects::id.ne(project))
                .count()
                .get_result(conn)?,
        };
        Ok(count > 0)
    }

    /// Serializes the claims on one database until the transaction ends, so two projects of
    /// different organizations created at the same moment cannot both pass `refused`.
    pub fn lock(conn: &mut PgConnection, identity: &str) -> QueryResult<()> {
        diesel::sql_query("SELECT pg_advisory_xact_lock(hashtext($1))::text")
            .bind::<Text, _>(identity)
            .execute(conn)?;
        Ok(())
    }

    /// The refusal shown for a database this use excludes.
    pub fn message(self, shown: &str) -> String {
        match self {
            SourceUse::DataSource { .. } => format!(
                "{shown} is the data source of another organization's project: keyhold does not \
                 back it up for this one"
            ),
            SourceUse::RestoreTarget(_) => format!(
                "{shown} is another project's data source: keyhold restores into it only from \
                 that project"
            ),
        }
    }
}

impl Project {
    /// Records which database the project's data source is and its schemas (at creation, on
    /// every run, and whenever keyhold connects to it).
    pub fn record_source(
        conn: &mut PgConnection,
        project: ProjectId,
        identity: &str,
        schemas: &[String],
    ) -> QueryResult<()> {
        use crate::schema::project_data_sources as sources;
        diesel::insert_into(sources::table)
            .values((
                sources::project_id.eq(project),
                sources::identity.eq(identity),
                sources::schemas.eq(schemas),
            ))
            .on_conflict(sources::project_id)
            .do_update()
            .set((
                sources::first_seen_at.eq(diesel::dsl::sql::<diesel::sql_types::Timestamptz>(
                    "CASE WHEN project_data_sources.identity = excluded.identity \
                     THEN project_data_sources.first_seen_at ELSE now() END",
                )),
                sources::identity.eq(identity),
                sources::schemas.eq(schemas),
                sources::checked_at.eq(diesel::dsl::now),
            ))
            .execute(conn)?;
        Ok(())
    }

    /// The identity keyhold last recorded for the project's data source (`record_source`).
    pub fn source_identity(
        conn: &mut PgConnection,
        project: ProjectId,
    ) -> QueryResult<Option<String>> {
        use crate::schema::project_data_sources as sources;
        sources::table
            .find(project)
            .select(sources::identity)
            .first(conn)
            .optional()
    }

    /// Projects whose data source keyhold has not identified yet (made before migration 8, or
    /// never reached since), oldest first.
    pub fn unidentified(conn: &mut PgConnection, limit: i64) -> QueryResult<Vec<Project>> {
        use crate::schema::project_data_sources as sources;
        projects::table
            .left_join(sources::table)
            .filter(sources::project_id.nullable().is_null())
            .order(projects::id)
            .limit(limit)
            .select(Project::as_select())
            .load(conn)
    }

    /// The schemas the data source had when keyhold last connected (none if it never did).
    pub fn known_schemas(conn: &mut PgConnection, project: ProjectId) -> QueryResult<Vec<String>> {
        use crate::schema::project_data_sources as sources;
        Ok(sources::table
            .find(project)
            .select(sources::schemas)
            .first::<Vec<String>>(conn)
            .optional()?
            .unwrap_or_default())
    }
}
