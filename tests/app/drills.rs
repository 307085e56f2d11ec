//! Restore drills (issue 16, SPEC §8): each backup records its tables and exact row counts
//! from the snapshot it was dumped from; "Verify restore" restores it into a scratch database,
//! compares, drops the scratch database and records the outcome; a drill keyhold was killed
//! in is cleaned up by the scheduler.

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::support::{World, ended, scalar_i64, scalar_text, texts, world};

fn execute(url: &str, sql: &str) {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query(sql).execute(&mut conn).unwrap();
}

/// Presses "Verify restore" on `backup` and waits for the drill to end: "<phase> <reason>".
async fn verify(world: &World, backup: i64) -> String {
    let response = world
        .partner
        .post_from(
            &world.path("?tab=backups"),
            &world.path(&format!("/backups/{backup}/verify")),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    ended(
        &world.app,
        &format!(
            "SELECT phase || ' ' || coalesce(reason, '') AS value FROM drills
             WHERE backup_id = {backup} ORDER BY id DESC LIMIT 1"
        ),
    )
    .await
}

/// The scratch databases this app's drills made that still exist on the server.
fn scratch_databases(world: &World) -> i64 {
    let names = scalar_text(
        &world.app,
        "SELECT coalesce(string_agg(quote_literal(scratch_database), ','), 'NULL') AS value
         FROM drills WHERE scratch_database IS NOT NULL",
    );
    scalar_i64(
        &world.app,
        &format!("SELECT count(*) AS n FROM pg_database WHERE datname IN ({names})"),
    )
}

#[actix_web::test]
async fn a_backup_records_what_it_holds_and_a_drill_proves_it_restores() {
    let world = world().await;
    execute(
        &world.data.url,
        "CREATE TABLE app.notes AS SELECT n FROM generate_series(1, 37) n",
    );
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT string_agg(schema_name || '.' || table_name || '=' || row_count, ','
                     ORDER BY table_name) AS value FROM backup_tables WHERE backup_id = {backup}"
            )
        ),
        "app.notes=37,app.orders=100",
        "every table of the namespace, counted exactly (reporting is not backed up)"
    );
    let detail = world
        .partner
        .page(&world.path(&format!("/backups/{backup}")))
        .await;
    let cells = texts(&detail, "#backup-tables td");
    assert_eq!(cells, vec!["app", "notes", "37", "app", "orders", "100"]);

    let outcome = verify(&world, backup).await;
    assert_eq!(outcome.trim(), "Passed");
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT tables_compared || ' ' || rows_compared || ' '
                     || (finished_at > started_at)::text AS value
                 FROM drills WHERE backup_id = {backup}"
            )
        ),
        "2 137 true"
    );
    assert_eq!(
        scratch_databases(&world),
        0,
        "the scratch database is dropped"
    );
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    assert!(tab.contains("Restore verified"), "{tab}");
    let schedules = world.partner.page(&world.path("?tab=schedules")).await;
    assert!(schedules.contains("restore verified"));
    let detail = world
        .partner
        .page(&world.path(&format!("/backups/{backup}")))
        .await;
    assert!(
        texts(&detail, "#backup-drills td")
            .iter()
            .any(|c| c == "Passed")
    );
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT string_agg(action, ',') AS value FROM audit_events WHERE action = 'backup.verify'"
        ),
        "backup.verify"
    );

    // What was recorded disagrees with what comes back: the drill fails and names the table.
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backup_tables SET row_count = 99 WHERE backup_id = {backup}
                 AND table_name = 'orders'"
        ))
        .execute(conn)
    });
    let outcome = verify(&world, backup).await;
    assert!(outcome.starts_with("Failed 1 mismatch"), "{outcome}");
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT array_to_string(mismatches, ';') AS value FROM drills
                 WHERE backup_id = {backup} ORDER BY id DESC LIMIT 1"
            )
        ),
        "app.orders: 100 rows restored, 99 backed up"
    );
    assert_eq!(scratch_databases(&world), 0);
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    assert!(tab.contains("Restore check failed"));
}

#[actix_web::test]
async fn an_encrypted_backup_is_drilled_with_the_kept_identity() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/backup/encryption/generate"),
            &[("keep_identity", "on")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    assert_eq!(verify(&world, backup).await.trim(), "Passed");
}

#[actix_web::test]
async fn a_drill_keyhold_was_killed_in_is_ended_and_its_scratch_database_dropped() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, _, _) = world.backup_now(world.policy_id("nightly")).await;
    // A drill whose process died: still InProgress, silent for ten minutes, its scratch
    // database on the project's server.
    let drill = scalar_i64(
        &world.app,
        &format!(
            "INSERT INTO drills (project_id, backup_id, backup_name, phase, started_at,
                 heartbeat_at)
             VALUES ({}, {backup}, 'b', 'InProgress', now() - interval '10 minutes',
                 now() - interval '10 minutes') RETURNING id AS n",
            world.project
        ),
    );
    let scratch = format!("keyhold_drill_{drill}_{}", std::process::id());
    execute(&world.data.url, &format!("CREATE DATABASE {scratch}"));
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE drills SET scratch_database = '{scratch}' WHERE id = {drill}"
        ))
        .execute(conn)
    });
    assert_eq!(scratch_databases(&world), 1);
    let runner = crate::support::test_runner(&world.app);
    keyhold::backup::scheduler::tick(&runner, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        scalar_text(
            &world.app,
            &format!(
                "SELECT phase || ' ' || reason || ' ' || (scratch_dropped_at IS NOT NULL)::text
                     AS value FROM drills WHERE id = {drill}"
            )
        ),
        "Failed interrupted: keyhold stopped during the drill true"
    );
    assert_eq!(scratch_databases(&world), 0, "dropped on the next pass");
}

/// Adds a policy of `app` with drill schedule `drill`; the response.
async fn policy_with_drill(world: &World, name: &str, drill: &str) -> reqwest::Response {
    world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/policies"),
            &[
                ("name", name),
                ("cron", "daily"),
                ("timezone", "UTC"),
                ("retention", "720h"),
                ("namespaces", "app"),
                ("drill", drill),
            ],
        )
        .await
}

/// Waits for the latest drill of `backup` to end: "<phase> <reason>".
async fn drill_outcome(world: &World, backup: i64) -> String {
    ended(
        &world.app,
        &format!(
            "SELECT coalesce((SELECT phase || ' ' || coalesce(reason, '') FROM drills
                 WHERE backup_id = {backup} ORDER BY id DESC LIMIT 1), 'New') AS value"
        ),
    )
    .await
}

#[actix_web::test]
async fn drill_schedules_check_every_backup_or_the_newest_once_a_period() {
    let world = world().await;
    let response = policy_with_drill(&world, "checked", "sometimes").await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        texts(&response.text().await.unwrap(), "p.error")
            .iter()
            .any(|e| e == "Choose off, each, daily or weekly.")
    );

    // After every backup: the completed backup is checked without anyone asking.
    assert_eq!(
        policy_with_drill(&world, "checked", "each").await.status(),
        StatusCode::SEE_OTHER
    );
    let schedules = world.partner.page(&world.path("?tab=schedules")).await;
    assert!(schedules.contains("restore check: after every backup"));
    let (backup, phase, reason) = world.backup_now(world.policy_id("checked")).await;
    assert_eq!(phase, "Completed", "{reason}");
    assert_eq!(drill_outcome(&world, backup).await.trim(), "Passed");

    // Daily: the scheduler checks the newest backup once, then not again within the day.
    assert_eq!(
        policy_with_drill(&world, "daily-check", "daily")
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (daily, _, _) = world.backup_now(world.policy_id("daily-check")).await;
    let runner = crate::support::test_runner(&world.app);
    keyhold::backup::scheduler::tick(&runner, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(drill_outcome(&world, daily).await.trim(), "Passed");
    keyhold::backup::scheduler::tick(&runner, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(
            &world.app,
            &format!("SELECT count(*) AS n FROM drills WHERE backup_id = {daily}")
        ),
        1,
        "once per day"
    );
}

#[actix_web::test]
async fn a_schedule_that_did_not_run_is_missed_and_a_failed_check_is_shown() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    // Every instance was down: the slot passed 20 minutes ago (grace: 15).
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backup_policies SET next_run_at = now() - interval '20 minutes'
             WHERE id = {policy}"
        ))
        .execute(conn)
    });
    let page = world.partner.page(&world.path("?tab=schedules")).await;
    assert!(
        texts(&page, ".flash-error")
            .iter()
            .any(|a| a.starts_with("Missed: policy nightly was due at")),
        "{page}"
    );
    assert!(page.contains(">Missed</span>"), "on the Schedules tab");
    let dashboard = world.partner.page("/").await;
    assert!(
        dashboard.contains("Missed: policy nightly"),
        "on the dashboard"
    );
    // Ten minutes late is within the grace period.
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backup_policies SET next_run_at = now() - interval '10 minutes'
             WHERE id = {policy}"
        ))
        .execute(conn)
    });
    let dashboard = world.partner.page("/").await;
    assert!(!dashboard.contains("Missed:"));

    // A failed restore check shows on the project and the dashboard until one passes.
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backup_policies SET next_run_at = now() + interval '1 day' WHERE id = {policy}"
        ))
        .execute(conn)
    });
    let (backup, _, _) = world.backup_now(policy).await;
    world.app.query(move |conn| {
        diesel::sql_query(format!(
            "UPDATE backup_tables SET row_count = 1 WHERE backup_id = {backup}"
        ))
        .execute(conn)
    });
    assert!(verify(&world, backup).await.starts_with("Failed"));
    let dashboard = world.partner.page("/").await;
    assert!(
        dashboard.contains("Restore check failed: 1 mismatch"),
        "{dashboard}"
    );
    let project = world.partner.page(&world.path("")).await;
    assert!(project.contains("Restore check failed"));
}

#[actix_web::test]
async fn drills_restore_on_the_server_keyhold_drill_database_url_names() {
    // A server that does not answer: the drill says so and the project's server is untouched.
    let closed = format!(
        "postgres://postgres@127.0.0.1:{}/postgres",
        crate::support::fakes::closed_port()
    );
    let world = crate::support::world_with(&[("KEYHOLD_DRILL_DATABASE_URL", &closed)]).await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let outcome = verify(&world, backup).await;
    assert!(outcome.starts_with("Failed the drill server:"), "{outcome}");
    assert_eq!(scratch_databases(&world), 0);

    // The server of the test's own PostgreSQL, named by its maintenance database.
    let server = crate::support::database_url("postgres");
    let world = crate::support::world_with(&[("KEYHOLD_DRILL_DATABASE_URL", &server)]).await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    assert_eq!(verify(&world, backup).await.trim(), "Passed");
    assert_eq!(scratch_databases(&world), 0, "dropped after the comparison");
}
