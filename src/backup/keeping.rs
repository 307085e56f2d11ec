//! What of a project's backup keeps it from being deleted: backup on, its policies, backups
//! holding an object, and restores and drills that run (read under the project's lock by
//! `projects::service::delete`, which asks through `projects::service::Checks::keeping`).

use diesel::prelude::*;

use crate::projects::model::Project;
use crate::projects::phase::{DrillPhase, Phase};
use crate::schema::{backup_policies, backups, drills, restores};

/// What keeps a project from being deleted: backup on, its policies, backups that still hold
/// an object (or are being made), restores and checks that run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keeping {
    pub backup_on: bool,
    pub policies: i64,
    pub backups: i64,
    pub running: i64,
}

impl Keeping {
    /// What keeps `project` from being deleted.
    pub fn of(conn: &mut PgConnection, project: &Project) -> QueryResult<Keeping> {
        let running = [Phase::New, Phase::InProgress];
        let backups_held: i64 = backups::table
            .filter(backups::project_id.eq(project.id))
            .filter(
                backups::phase
                    .eq(Phase::Completed)
                    .and(backups::deleted_at.is_null())
                    .or(backups::phase.eq_any(running))
                    // An upload S3 would not let keyhold abort yet: the scheduler retries the
                    // abort from this row, so it must stay (else its parts are billed forever).
                    .or(backups::upload_id.is_not_null()),
            )
            .count()
            .get_result(conn)?;
        let restores_running: i64 = restores::table
            .filter(restores::project_id.eq(project.id))
            .filter(restores::phase.eq_any(running))
            .count()
            .get_result(conn)?;
        let drills_running: i64 = drills::table
            .filter(drills::project_id.eq(project.id))
            .filter(drills::phase.eq_any([DrillPhase::New, DrillPhase::InProgress]))
            .count()
            .get_result(conn)?;
        Ok(Keeping {
            backup_on: project.backup_enabled,
            policies: backup_policies::table
                .filter(backup_policies::project_id.eq(project.id))
                .count()
                .get_result(conn)?,
            backups: backups_held,
            running: restores_running + drills_running,
        })
    }

    /// The reason a delete is refused, in words; `None` when nothing keeps the project.
    pub fn reason(&self, name: &str) -> Option<String> {
        if self.running > 0 {
            Some(format!(
                "{name} cannot be deleted while a restore or a restore check runs: wait for it to end."
            ))
        } else if self.backup_on || self.policies > 0 {
            Some(format!(
                "{name} cannot be deleted while its backup is on: delete its backup policies and \
                 disable backup first."
            ))
        } else if self.backups > 0 {
            Some(format!(
                "{name} cannot be deleted while it has backups ({}): delete them first on its \
                 Backups tab.",
                self.backups
            ))
        } else {
            None
        }
    }
}
