//! "Backup health" on the dashboard: for each project with backup on, its last success, last
//! verified restore, next run, and the sizes of its last 20 dumps drawn as a small inline SVG
//! (no JavaScript). A dump more than half smaller than the median of the ten before it is
//! flagged: a backup that "completes" with a fraction of the data is a failure nobody sees.

use std::fmt::Write;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, BigInt, Nullable, Text, Timestamptz};

use crate::access::Scope;
use crate::db::Prepared;

/// Dumps drawn per project.
const DRAWN: i64 = 20;

const HEALTH: &str = "
SELECT p.id, p.name, o.name AS organization,
  (SELECT max(b.finished_at) FROM backups b
   WHERE b.project_id = p.id AND b.phase = 'Completed') AS last_success,
  (SELECT max(d.finished_at) FROM drills d
   WHERE d.project_id = p.id AND d.phase = 'Passed') AS last_verified,
  (SELECT min(bp.next_run_at) FROM backup_policies bp WHERE bp.project_id = p.id) AS next_run,
  coalesce((SELECT array_agg(s.size_bytes ORDER BY s.finished_at, s.id) FROM (
      SELECT b.id, b.size_bytes, b.finished_at FROM backups b
      WHERE b.project_id = p.id AND b.phase = 'Completed' AND b.size_bytes IS NOT NULL
      ORDER BY b.finished_at DESC, b.id DESC LIMIT {DRAWN}) s), '{}') AS sizes
FROM projects p JOIN organizations o ON o.id = p.organization_id
WHERE p.backup_enabled AND {SCOPE}
ORDER BY lower(p.name), p.id
LIMIT 100";

/// One project's backup health.
#[derive(QueryableByName, Debug, Clone)]
pub struct ProjectHealth {
    #[diesel(sql_type = BigInt)]
    pub id: i64,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub organization: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_success: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_verified: Option<DateTime<Utc>>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub next_run: Option<DateTime<Utc>>,
    /// Sizes of the last dumps, oldest first.
    #[diesel(sql_type = Array<BigInt>)]
    pub sizes: Vec<i64>,
}

impl ProjectHealth {
    /// The projects with backup on that `scope` reaches (at most 100), by name.
    pub fn list(conn: &mut PgConnection, scope: &Scope) -> QueryResult<Vec<ProjectHealth>> {
        let (condition, value) = scope.condition("p.organization_id");
        let sql = HEALTH
            .replace("{DRAWN}", &DRAWN.to_string())
            .replace("{SCOPE}", &condition);
        Prepared::new(&sql, vec![value]).load(conn)
    }

    /// `when` in words, or "never".
    fn when(at: Option<DateTime<Utc>>) -> String {
        at.map(crate::web::words::ago)
            .unwrap_or_else(|| "never".into())
    }

    pub fn last_success_words(&self) -> String {
        ProjectHealth::when(self.last_success)
    }

    pub fn last_verified_words(&self) -> String {
        ProjectHealth::when(self.last_verified)
    }

    pub fn next_run_words(&self) -> String {
        match self.next_run {
            Some(at) => crate::web::words::ago(at),
            None => "no policy".into(),
        }
    }

    /// Why the latest dump looks short: more than 50 % smaller than the median of the ten
    /// before it.
    pub fn shrunk(&self) -> Option<String> {
        let (latest, before) = self.sizes.split_last()?;
        let previous = &before[before.len().saturating_sub(10)..];
        if previous.is_empty() {
            return None;
        }
        let mut sorted = previous.to_vec();
        sorted.sort_unstable();
        let median = if sorted.len() % 2 == 1 {
            sorted[sorted.len() / 2] as f64
        } else {
            (sorted[sorted.len() / 2 - 1] + sorted[sorted.len() / 2]) as f64 / 2.0
        };
        if median > 0.0 && (*latest as f64) < median * 0.5 {
            let smaller = 100.0 * (1.0 - *latest as f64 / median);
            Some(format!(
                "The latest dump ({}) is {smaller:.0} % smaller than the median of the {} before \
                 it ({}): check that the data is all there.",
                crate::web::words::human_size(Some(*latest)),
                previous.len(),
                crate::web::words::human_size(Some(median as i64)),
            ))
        } else {
            None
        }
    }

    /// The sizes as the points of an SVG polyline in a 100 × 24 box (empty with fewer than two).
    pub fn sparkline(&self) -> String {
        if self.sizes.len() < 2 {
            return String::new();
        }
        let (min, max) = self
            .sizes
            .iter()
            .fold((i64::MAX, i64::MIN), |(lo, hi), size| {
                (lo.min(*size), hi.max(*size))
            });
        let range = (max - min).max(1) as f64;
        let step = 100.0 / (self.sizes.len() - 1) as f64;
        let mut points = String::new();
        for (i, size) in self.sizes.iter().enumerate() {
            let x = i as f64 * step;
            // 2 px of margin at the top and bottom.
            let y = 22.0 - 20.0 * (*size - min) as f64 / range;
            let _ = write!(points, "{x:.1},{y:.1} ");
        }
        points.trim_end().to_string()
    }

    /// What the sparkline shows, for people who do not see it.
    pub fn sparkline_title(&self) -> String {
        match (self.sizes.first(), self.sizes.last()) {
            (Some(first), Some(last)) => format!(
                "Sizes of the last {} dumps, from {} to {}",
                self.sizes.len(),
                crate::web::words::human_size(Some(*first)),
                crate::web::words::human_size(Some(*last))
            ),
            _ => "No dump yet".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(sizes: &[i64]) -> ProjectHealth {
        ProjectHealth {
            id: 1,
            name: "shop".into(),
            organization: "Blue".into(),
            last_success: None,
            last_verified: None,
            next_run: None,
            sizes: sizes.to_vec(),
        }
    }

    #[test]
    fn a_dump_far_below_the_median_of_the_ten_before_is_flagged() {
        let mut sizes = vec![1000; 10];
        sizes.push(499);
        assert!(health(&sizes).shrunk().unwrap().contains("50 % smaller"));
        sizes.pop();
        sizes.push(501);
        assert_eq!(health(&sizes).shrunk(), None, "less than half smaller");
        assert_eq!(health(&[1000]).shrunk(), None, "nothing to compare with");
        // Only the ten before count: a small dump long ago does not lower the median.
        let mut sizes = vec![1; 9];
        sizes.extend([1000; 10]);
        sizes.push(400);
        assert!(health(&sizes).shrunk().is_some());
    }

    #[test]
    fn the_sparkline_spans_the_box() {
        let line = health(&[10, 20, 30]).sparkline();
        assert_eq!(line, "0.0,22.0 50.0,12.0 100.0,2.0");
        assert_eq!(health(&[10]).sparkline(), "");
    }
}
