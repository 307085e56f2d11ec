//! Where a project's run is: `Phase` (backups and restores) and `DrillPhase` (restore drills),
//! stored as their words. Here, below `backup`, so a project's listing can name them.

use diesel::sql_types::Text;

/// Where a backup or restore run is: stored as its name (`InProgress`), the same word pages show.
#[derive(diesel::AsExpression, diesel::FromSqlRow, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[diesel(sql_type = Text)]
pub enum Phase {
    New,
    InProgress,
    Completed,
    Failed,
    Skipped,
}

impl Phase {
    pub const ALL: [Phase; 5] = [
        Phase::New,
        Phase::InProgress,
        Phase::Completed,
        Phase::Failed,
        Phase::Skipped,
    ];

    /// The stored and shown word.
    pub fn key(self) -> &'static str {
        match self {
            Phase::New => "New",
            Phase::InProgress => "InProgress",
            Phase::Completed => "Completed",
            Phase::Failed => "Failed",
            Phase::Skipped => "Skipped",
        }
    }

    /// Waiting or running: the run has not ended.
    pub fn running(self) -> bool {
        matches!(self, Phase::New | Phase::InProgress)
    }

    /// Ended without a backup (shown as a failing schedule).
    pub fn failing(self) -> bool {
        matches!(self, Phase::Failed | Phase::Skipped)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

crate::stored_as_text!(Phase, "phase");

/// Where a drill is.
#[derive(diesel::AsExpression, diesel::FromSqlRow, Clone, Copy, Debug, PartialEq, Eq)]
#[diesel(sql_type = Text)]
pub enum DrillPhase {
    New,
    InProgress,
    Passed,
    Failed,
}

impl DrillPhase {
    pub const ALL: [DrillPhase; 4] = [
        DrillPhase::New,
        DrillPhase::InProgress,
        DrillPhase::Passed,
        DrillPhase::Failed,
    ];

    pub fn key(self) -> &'static str {
        match self {
            DrillPhase::New => "New",
            DrillPhase::InProgress => "InProgress",
            DrillPhase::Passed => "Passed",
            DrillPhase::Failed => "Failed",
        }
    }
}

impl std::fmt::Display for DrillPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

crate::stored_as_text!(DrillPhase, "drill phase");
