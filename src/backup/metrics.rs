//! The backup series of `/metrics`, read from the database at each scrape, so every instance
//! answers the same whichever process ran the backups (aggregate with `max`, not `sum`).
//! Labels are bounded by what exists: organization, project and policy names, credential kind
//! and name.

use std::fmt::Write;

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Double, Nullable, Text};

use crate::db::{self, DbPool, RunError};

/// Upper bounds of the backup duration buckets, in seconds.
const BUCKETS: [f64; 8] = [10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0];

#[derive(QueryableByName)]
struct Outcome {
    #[diesel(sql_type = Text)]
    phase: String,
    #[diesel(sql_type = BigInt)]
    runs: i64,
}

#[derive(QueryableByName)]
struct Durations {
    #[diesel(sql_type = Nullable<Text>)]
    counts: Option<String>,
    #[diesel(sql_type = BigInt)]
    total: i64,
    #[diesel(sql_type = Double)]
    sum: f64,
}

#[derive(QueryableByName)]
struct PolicyValue {
    #[diesel(sql_type = Text)]
    organization: String,
    #[diesel(sql_type = Text)]
    project: String,
    #[diesel(sql_type = Text)]
    policy: String,
    #[diesel(sql_type = Double)]
    value: f64,
}

#[derive(QueryableByName)]
struct CredentialExpiry {
    #[diesel(sql_type = Text)]
    organization: String,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    credential: String,
    #[diesel(sql_type = Double)]
    value: f64,
}

/// A label value, escaped as the text format wants.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn per_policy(out: &mut String, name: &str, help: &str, rows: &[PolicyValue]) {
    head(out, name, "gauge", help);
    for row in rows {
        let _ = writeln!(
            out,
            "{name}{{organization=\"{}\",project=\"{}\",policy=\"{}\"}} {}",
            label(&row.organization),
            label(&row.project),
            label(&row.policy),
            row.value
        );
    }
}

/// The latest completed backup of each policy that still exists.
const LAST_COMPLETED: &str = "
SELECT DISTINCT ON (b.policy_id) o.name AS organization, p.name AS project, bp.name AS policy,
       b.size_bytes::float8 AS size, extract(epoch FROM b.finished_at)::float8 AS finished
FROM backups b
JOIN backup_policies bp ON bp.id = b.policy_id
JOIN projects p ON p.id = b.project_id
JOIN organizations o ON o.id = p.organization_id
WHERE b.phase = 'Completed' AND b.finished_at IS NOT NULL
ORDER BY b.policy_id, b.finished_at DESC";

/// Every backup series, in Prometheus text format, read through `pool`.
pub async fn series(pool: &DbPool) -> Result<String, RunError<diesel::result::Error>> {
    db::run(pool, render).await
}

/// Every backup series, in Prometheus text format.
pub fn render(conn: &mut PgConnection) -> QueryResult<String> {
    let mut out = String::new();
    let outcomes: Vec<Outcome> = diesel::sql_query(
        "SELECT phase, count(*) AS runs FROM backups
         WHERE phase IN ('Completed', 'Failed', 'Skipped') GROUP BY phase ORDER BY phase",
    )
    .load(conn)?;
    head(
        &mut out,
        "keyhold_backup_runs_total",
        "counter",
        "Backup runs by outcome (completed, failed, skipped).",
    );
    for outcome in outcomes {
        let _ = writeln!(
            out,
            "keyhold_backup_runs_total{{outcome=\"{}\"}} {}",
            outcome.phase.to_lowercase(),
            outcome.runs
        );
    }

    let buckets = BUCKETS
        .iter()
        .map(|bound| format!("count(*) FILTER (WHERE d <= {bound})"))
        .collect::<Vec<_>>()
        .join(" || ',' || ");
    let durations: Durations = diesel::sql_query(format!(
        "SELECT ({buckets})::text AS counts, count(*) AS total, coalesce(sum(d), 0)::float8 AS sum
         FROM (SELECT extract(epoch FROM finished_at - started_at)::float8 AS d FROM backups
               WHERE phase = 'Completed' AND started_at IS NOT NULL AND finished_at IS NOT NULL) runs"
    ))
    .get_result(conn)?;
    head(
        &mut out,
        "keyhold_backup_duration_seconds",
        "histogram",
        "Time from start to completion of completed backups.",
    );
    let counts = durations.counts.unwrap_or_default();
    for (bound, count) in BUCKETS.iter().zip(counts.split(',')) {
        let _ = writeln!(
            out,
            "keyhold_backup_duration_seconds_bucket{{le=\"{bound}\"}} {count}"
        );
    }
    let _ = writeln!(
        out,
        "keyhold_backup_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        durations.total
    );
    let _ = writeln!(out, "keyhold_backup_duration_seconds_sum {}", durations.sum);
    let _ = writeln!(
        out,
        "keyhold_backup_duration_seconds_count {}",
        durations.total
    );

    let sizes: Vec<PolicyValue> = diesel::sql_query(format!(
        "SELECT organization, project, policy, coalesce(size, 0) AS value FROM ({LAST_COMPLETED}) l"
    ))
    .load(conn)?;
    per_policy(
        &mut out,
        "keyhold_backup_last_size_bytes",
        "Size of each policy's latest completed backup.",
        &sizes,
    );
    let successes: Vec<PolicyValue> = diesel::sql_query(format!(
        "SELECT organization, project, policy, finished AS value FROM ({LAST_COMPLETED}) l"
    ))
    .load(conn)?;
    per_policy(
        &mut out,
        "keyhold_backup_last_success_timestamp_seconds",
        "When each policy's latest backup completed (Unix seconds).",
        &successes,
    );
    let drills: Vec<PolicyValue> = diesel::sql_query(
        "SELECT o.name AS organization, p.name AS project, bp.name AS policy,
                max(extract(epoch FROM d.finished_at))::float8 AS value
         FROM drills d
         JOIN backups b ON b.id = d.backup_id
         JOIN backup_policies bp ON bp.id = b.policy_id
         JOIN projects p ON p.id = d.project_id
         JOIN organizations o ON o.id = p.organization_id
         WHERE d.phase = 'Passed' AND d.finished_at IS NOT NULL
         GROUP BY o.name, p.name, bp.name ORDER BY 1, 2, 3",
    )
    .load(conn)?;
    per_policy(
        &mut out,
        "keyhold_restore_drill_last_success_timestamp_seconds",
        "When a restore check of each policy's backups last passed (Unix seconds).",
        &drills,
    );

    let missed: i64 = crate::schema::notification_events::table
        .filter(crate::schema::notification_events::kind.eq("backup.missed"))
        .count()
        .get_result(conn)?;
    head(
        &mut out,
        "keyhold_backups_missed_total",
        "counter",
        "Scheduled slots that passed the grace period without a run.",
    );
    let _ = writeln!(out, "keyhold_backups_missed_total {missed}");

    let expiries: Vec<CredentialExpiry> = diesel::sql_query(
        "SELECT o.name AS organization, c.kind, c.name AS credential,
                extract(epoch FROM c.expires_on::timestamp AT TIME ZONE 'UTC')::float8 AS value
         FROM credentials c JOIN organizations o ON o.id = c.organization_id
         WHERE c.expires_on IS NOT NULL ORDER BY 1, 2, 3",
    )
    .load(conn)?;
    head(
        &mut out,
        "keyhold_credential_expiry_timestamp_seconds",
        "gauge",
        "When each credential with an expiry date expires (Unix seconds, start of the day UTC).",
    );
    for row in expiries {
        let _ = writeln!(
            out,
            "keyhold_credential_expiry_timestamp_seconds{{organization=\"{}\",kind=\"{}\",credential=\"{}\"}} {}",
            label(&row.organization),
            label(&row.kind),
            label(&row.credential),
            row.value
        );
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
