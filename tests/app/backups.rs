use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use diesel::prelude::*;
use reqwest::StatusCode;
use sha2::Digest;

use crate::support::{
    DataDb, TestApp, database_url, scalar_i64, scalar_text, spawn_app_with, test_runner, texts,
    walk, world,
};

#[actix_web::test]
async fn backup_now_uploads_a_checksummed_dump_that_restores_the_same_rows() {
    let world = world().await;
    assert!(
        world.s3.root.path().join("keyhold-blue-org-shop").is_dir(),
        "bucket created"
    );
    let page = world.partner.page(&world.path("")).await;
    assert!(
        page.contains("Backup on") && page.contains("app") && page.contains("reporting"),
        "schemas offered"
    );
    assert!(
        !page.contains(&world.data.url),
        "the data source URL is never shown whole"
    );

    assert_eq!(
        world
            .add_policy("nightly", "daily", "720h", &["app"])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");

    let object = std::fs::read(world.object_path(backup)).expect("the object is in the bucket");
    let recorded = scalar_text(
        &world.app,
        &format!("SELECT sha256 AS value FROM backups WHERE id = {backup}"),
    );
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&object)),
        recorded,
        "checksum of the stored bytes"
    );
    assert_eq!(
        scalar_i64(
            &world.app,
            &format!("SELECT size_bytes AS n FROM backups WHERE id = {backup}")
        ),
        object.len() as i64
    );
    assert!(object.starts_with(b"PGDMP"), "pg_dump custom format");
    let key = scalar_text(
        &world.app,
        &format!("SELECT object_key AS value FROM backups WHERE id = {backup}"),
    );
    assert!(
        key.starts_with("shop/nightly/") && key.ends_with(".dump"),
        "{key}"
    );

    // The restore form is loaded when asked for: into the row with htmx, as a page without.
    let form = world.path(&format!("/backups/{backup}/restore"));
    let fragment = world.partner.get_htmx(&form).await.text().await.unwrap();
    assert!(
        fragment.contains(&format!("hx-post=\"{form}\""))
            && fragment.contains("name=\"csrf_token\"")
            && !fragment.contains("<html"),
        "{fragment}"
    );
    let page = world.partner.get(&form).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains("<html") && page.contains(&format!("action=\"{form}\"")));
    assert!(
        !page.contains(&format!("hx-post=\"{form}\"")),
        "a plain form"
    );
    assert_eq!(
        world
            .partner
            .get(&world.path(&format!("/backups/{backup}/verify")))
            .await
            .status(),
        StatusCode::NOT_FOUND,
        "no page for other actions (delete has one: its question)"
    );
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    assert!(
        !tab.contains("name=\"restore_name\""),
        "no form in every row"
    );

    let target = DataDb::empty();
    let response = world
        .partner
        .post_from(
            &world.path("?tab=backups"),
            &world.path(&format!("/backups/{backup}/restore")),
            &[
                ("restore_name", "to-copy"),
                ("target_database_url", &target.url),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let mut phase = String::new();
    for _ in 0..300 {
        phase = scalar_text(
            &world.app,
            "SELECT phase AS value FROM restores WHERE name = 'to-copy'",
        );
        if phase != "InProgress" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let warnings = scalar_text(
        &world.app,
        "SELECT coalesce(warnings, '') AS value FROM restores WHERE name = 'to-copy'",
    );
    assert_eq!(phase, "Completed", "{warnings}");
    assert_eq!(
        target.scalar("SELECT count(*)::text AS value FROM app.orders"),
        "100"
    );
    assert_eq!(
        target.scalar("SELECT sum(cents)::text AS value FROM app.orders"),
        world
            .data
            .scalar("SELECT sum(cents)::text AS value FROM app.orders")
    );
    let restores = world.partner.page(&world.path("?tab=restores")).await;
    assert!(restores.contains("to-copy") && restores.contains("Completed"));

    let audit = world.partner.get("/audit").await.text().await.unwrap();
    for action in [
        "project.create",
        "policy.create",
        "backup.run",
        "restore.create",
    ] {
        assert!(audit.contains(action), "{action} audited");
    }
}

#[actix_web::test]
async fn policy_forms_give_the_messages_of_the_spec() {
    let world = world().await;
    let cases = [
        (
            ("bad-cron", "every day", "720h", vec!["app"]),
            "#cron-help",
            "expected a valid cron period",
        ),
        (
            ("bad-retention", "0 2 * * *", "30d", vec!["app"]),
            "#retention-help",
            "The retention period must follow the HMS format, for example: 10h30m15s, 48h5s or 360h",
        ),
        (
            ("no-namespace", "0 2 * * *", "72h", vec![]),
            "#namespaces-help",
            "please specify include namespace to create backup",
        ),
        (
            ("no-such-schema", "0 2 * * *", "72h", vec!["\"><i id=xns>"]),
            "#namespaces-help",
            "\"><i id=xns> is not a schema of the project database.",
        ),
    ];
    for ((name, cron, retention, namespaces), selector, message) in cases {
        let response = world.add_policy(name, cron, retention, &namespaces).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{name}"
        );
        assert_eq!(
            texts(&response.text().await.unwrap(), selector),
            vec![message.to_string()],
            "{name}"
        );
    }
    assert_eq!(world.app.count("backup_policies"), 0);

    let preview = world
        .partner
        .page(&world.path("/policies/preview?cron=30+2+*+*+*&timezone=Europe/Berlin"))
        .await;
    assert!(
        preview.contains("02:30") && preview.contains("Next runs"),
        "{preview}"
    );
    let bad = world
        .partner
        .page(&world.path("/policies/preview?cron=nope&timezone=UTC"))
        .await;
    assert!(bad.contains("expected a valid cron period"));
}

#[actix_web::test]
async fn disabling_is_refused_while_policies_exist_and_when_already_off() {
    let world = world().await;
    assert_eq!(
        world
            .add_policy("hourly", "hourly", "72h", &["app"])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let refused = world
        .partner
        .post_from(&world.path(""), &world.path("/backup/disable"), &[])
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("delete the backup policies first")
    );
    let policy = world.policy_id("hourly");
    let deleted = world
        .partner
        .post_from(
            &world.path(""),
            &world.path(&format!("/policies/{policy}/delete")),
            &[],
        )
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        world
            .partner
            .post_from(&world.path(""), &world.path("/backup/disable"), &[])
            .await
            .status(),
        StatusCode::SEE_OTHER
    );
    let again = world
        .partner
        .post_from(&world.path(""), &world.path("/backup/disable"), &[])
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("project backup already disabled")
    );

    // Switching credentials is disable then enable; enabling proves the bucket again.
    let enabled = world
        .partner
        .post_from(
            &world.path(""),
            &world.path("/backup/enable"),
            &[
                ("backup_credential_id", &world.credential.to_string()),
                ("bucket", "shop-second"),
            ],
        )
        .await;
    assert_eq!(enabled.status(), StatusCode::SEE_OTHER);
    assert!(world.s3.root.path().join("shop-second").is_dir());
    let audit = world.partner.get("/audit").await.text().await.unwrap();
    for action in [
        "project.backup_disable",
        "project.backup_enable",
        "policy.delete",
    ] {
        assert!(audit.contains(action), "{action} audited");
    }
}

#[actix_web::test]
async fn a_locked_credential_skips_runs_and_a_wrong_secret_fails_them() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    let credential = world.credential;
    let lock = world
        .partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{credential}/lock"),
            &[],
        )
        .await;
    assert_eq!(lock.status(), StatusCode::SEE_OTHER);
    let (_, phase, reason) = world.backup_now(policy).await;
    assert_eq!(
        (phase.as_str(), reason.as_str()),
        ("Skipped", "credentials locked")
    );
    let banner = world.partner.get("/").await.text().await.unwrap();
    assert!(
        banner.contains("Backups of") && banner.contains("credentials locked"),
        "failing schedule on the dashboard"
    );
    world
        .partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{credential}/unlock"),
            &[],
        )
        .await;
    // Unlocked: the skip is no longer news on the dashboard, the projects list or the project
    // (its row on the Backups tab keeps its reason).
    for page in ["/".to_string(), "/projects".to_string(), world.path("")] {
        let body = world.partner.page(&page).await;
        assert!(
            !texts(&body, ".flash-error")
                .join(" ")
                .contains("credentials locked"),
            "{page} after the unlock"
        );
    }

    // Seal a wrong secret into the credential, as if the key had been revoked at the provider.
    let keyring = crate::support::test_keyring();
    world.app.query(|conn| {
        let stored = keyhold::credentials::model::Credential::find_any(
            conn,
            keyhold::credentials::model::CredentialId(credential),
        )?;
        stored
            .update(
                conn,
                &keyring,
                "Blue Org",
                &keyhold::credentials::model::CredentialChanges {
                    name: &stored.name,
                    public: stored
                        .public_values()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    secrets: [(
                        "secret_access_key".to_string(),
                        "revoked-secret".to_string(),
                    )]
                    .into(),
                    expires_on: None,
                    verification: None,
                    updated_by: keyhold::accounts::model::UserId(1),
                    version: stored.version,
                },
            )
            .map_err(|_| diesel::result::Error::RollbackTransaction)?;
        Ok(())
    });
    let (_, phase, reason) = world.backup_now(policy).await;
    assert_eq!(phase, "Failed");
    assert_eq!(reason, "Invalid S3 credentials");
    let page = world.partner.page(&world.path("?tab=backups")).await;
    assert!(page.contains("Invalid S3 credentials") && page.contains("Skipped"));
}

#[actix_web::test]
async fn pg_dump_failures_fail_the_backup_with_the_reason_and_leave_no_object() {
    let world = world().await;
    world.add_policy("ghost", "daily", "720h", &["app"]).await;
    // The project database disappears.
    {
        let mut conn = PgConnection::establish(&database_url("postgres")).unwrap();
        diesel::sql_query(format!("DROP DATABASE {} WITH (FORCE)", world.data.name))
            .execute(&mut conn)
            .unwrap();
    }
    let (backup, phase, reason) = world.backup_now(world.policy_id("ghost")).await;
    assert_eq!(phase, "Failed");
    // keyhold connects to check the data source before pg_dump runs: the reason is the server's.
    assert!(
        reason.starts_with("could not connect") && reason.contains("does not exist"),
        "{reason}"
    );
    let leftovers: Vec<_> = walk(
        &world
            .s3
            .root
            .path()
            .join("keyhold-blue-org-shop/shop/ghost"),
    );
    assert!(leftovers.is_empty(), "no partial object: {leftovers:?}");
    let _ = backup;
}

#[actix_web::test]
async fn retention_deletes_expired_backups_and_never_an_unexpired_one() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    let (old, phase_old, _) = world.backup_now(policy).await;
    let (young, phase_young, _) = world.backup_now(policy).await;
    assert_eq!(
        (phase_old.as_str(), phase_young.as_str()),
        ("Completed", "Completed")
    );
    let now = Utc::now();
    world.app.query(|conn| {
        diesel::sql_query(format!(
            "UPDATE backups SET expires_at = now() - interval '1 second' WHERE id = {old}"
        ))
        .execute(conn)?;
        diesel::sql_query(format!(
            "UPDATE backups SET expires_at = now() + interval '1 minute' WHERE id = {young}"
        ))
        .execute(conn)
    });
    let (old_object, young_object) = (world.object_path(old), world.object_path(young));
    assert!(old_object.exists() && young_object.exists());

    let deleted = keyhold::backup::scheduler::apply_retention(
        &test_runner(&world.app),
        now + chrono::Duration::seconds(1),
    )
    .await
    .unwrap();
    assert_eq!(deleted, 1);
    assert!(
        !old_object.exists(),
        "the expired object is gone from the bucket"
    );
    assert!(young_object.exists(), "the unexpired one is untouched");
    assert_eq!(
        scalar_i64(
            &world.app,
            &format!(
                "SELECT count(*) AS n FROM backups WHERE id = {old} AND deleted_at IS NOT NULL"
            )
        ),
        1
    );
    assert_eq!(
        scalar_i64(
            &world.app,
            &format!("SELECT count(*) AS n FROM backups WHERE id = {young} AND deleted_at IS NULL")
        ),
        1
    );
    let page = world.partner.page(&world.path("?tab=backups")).await;
    assert!(page.contains("deleted"));

    // A person's delete removes object and row.
    let response = world
        .partner
        .post_from(
            &world.path("?tab=backups"),
            &world.path(&format!("/backups/{young}/delete")),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert!(!young_object.exists());
    assert_eq!(
        scalar_i64(
            &world.app,
            &format!("SELECT count(*) AS n FROM backups WHERE id = {young}")
        ),
        0
    );
}

/// Inserts `count` hourly policies of the world's project, due since `since`.
/// An app with one project of one organization, for tests of the scheduler's claims: no S3
/// and no data source, which claiming never reaches, and the scheduler itself off.
async fn scheduler_world() -> (TestApp, i64) {
    let app = spawn_app_with(&[("KEYHOLD_SCHEDULER", "false")]).await;
    let (partner, _) = app.partner().await;
    let organization = partner.create_organization(&app, "Blue Org").await;
    let project = scalar_i64(
        &app,
        &format!(
            "INSERT INTO projects (organization_id, name, database_url)
             VALUES ({organization}, 'shop', 'postgres://app@127.0.0.1:1/shop') RETURNING id AS n"
        ),
    );
    (app, project)
}

fn due_policies(
    app: &TestApp,
    project: i64,
    (count, cron, zone): (usize, &str, &str),
    since: chrono::DateTime<Utc>,
) {
    let schedule = keyhold::backup::policy::Schedule::parse(cron, zone).unwrap();
    let project = keyhold::projects::model::ProjectId(project);
    app.query(|conn| {
        for n in 0..count {
            keyhold::backup::model::BackupPolicy::create(
                conn,
                &keyhold::backup::model::NewPolicy {
                    project_id: project,
                    name: &format!("policy-{n:03}"),
                    schedule: &schedule,
                    retention_secs: 3600,
                    namespaces: &["app".to_string()],
                    drill: keyhold::backup::drill::DrillSchedule::Off,
                    heartbeat_url: None,
                    created_by: keyhold::accounts::model::UserId(1),
                },
                since,
            )?;
        }
        Ok(())
    });
}

#[actix_web::test]
async fn two_schedulers_on_one_database_claim_each_due_slot_exactly_once() {
    let (app, project) = scheduler_world().await;
    let since = Utc::now() - chrono::Duration::hours(2);
    due_policies(&app, project, (50, "0 * * * *", "UTC"), since);
    let now = Utc::now();
    let claimers: Vec<_> = (0..2)
        .map(|_| {
            let pool = app.pool.clone();
            std::thread::spawn(move || {
                let mut conn = pool.get().unwrap();
                let mut claimed = Vec::new();
                for _ in 0..5 {
                    claimed.extend(keyhold::backup::scheduler::claim_due(&mut conn, now).unwrap());
                }
                claimed.len()
            })
        })
        .collect();
    let counts: Vec<usize> = claimers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(counts.iter().sum::<usize>(), 50, "{counts:?}");
    assert_eq!(app.count("backups"), 50);
    assert_eq!(
        scalar_i64(&app, "SELECT count(DISTINCT policy_id) AS n FROM backups"),
        50
    );
    assert_eq!(
        scalar_i64(
            &app,
            &format!(
                "SELECT count(*) AS n FROM backup_policies WHERE next_run_at <= '{}'",
                now.to_rfc3339()
            )
        ),
        0
    );
}

#[actix_web::test]
async fn slots_missed_while_down_collapse_into_one_run_of_the_latest() {
    let (app, project) = scheduler_world().await;
    let since = Utc::now() - chrono::Duration::hours(5);
    due_policies(&app, project, (1, "0 * * * *", "UTC"), since);
    let now = Utc::now();
    let mut conn = app.pool.get().unwrap();
    let claimed = keyhold::backup::scheduler::claim_due(&mut conn, now).unwrap();
    assert_eq!(claimed.len(), 1, "one run for five missed slots");
    let slot = scalar_text(
        &app,
        "SELECT to_char(scheduled_for AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') AS value FROM backups",
    );
    assert_eq!(
        slot,
        now.format("%Y-%m-%d %H:00").to_string(),
        "the latest slot"
    );
    assert!(
        keyhold::backup::scheduler::claim_due(&mut conn, now)
            .unwrap()
            .is_empty(),
        "nothing due until the next slot"
    );
}

#[actix_web::test]
async fn a_daily_berlin_policy_runs_once_per_local_day_across_dst_changes() {
    let (app, project) = scheduler_world().await;
    for (start, days) in [
        (Utc.with_ymd_and_hms(2026, 3, 27, 0, 0, 0).unwrap(), 4),
        (Utc.with_ymd_and_hms(2026, 10, 23, 0, 0, 0).unwrap(), 4),
    ] {
        app.query(|conn| diesel::sql_query("DELETE FROM backups").execute(conn));
        app.query(|conn| diesel::sql_query("DELETE FROM backup_policies").execute(conn));
        due_policies(&app, project, (1, "30 2 * * *", "Europe/Berlin"), start);
        let mut conn = app.pool.get().unwrap();
        // The scheduler wakes every 15 minutes over four days.
        for quarter in 0..(days * 96) {
            let now = start + chrono::Duration::minutes(15 * quarter);
            keyhold::backup::scheduler::claim_due(&mut conn, now).unwrap();
        }
        let runs = scalar_text(
            &app,
            "SELECT string_agg(to_char(scheduled_for AT TIME ZONE 'Europe/Berlin', 'MM-DD HH24:MI'), ',' ORDER BY scheduled_for) AS value FROM backups",
        );
        let local_days: Vec<&str> = runs.split(',').map(|run| &run[..5]).collect();
        let mut unique = local_days.clone();
        unique.dedup();
        assert_eq!(local_days, unique, "once per local day: {runs}");
        assert_eq!(local_days.len(), days as usize, "{runs}");
    }
}

#[actix_web::test]
async fn a_run_whose_process_died_is_marked_failed() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    world.app.query(|conn| {
        diesel::sql_query(format!(
            "INSERT INTO backups (project_id, policy_id, policy_name, name, scheduled_for, phase, started_at, heartbeat_at)
             VALUES ({}, {policy}, 'nightly', 'nightly-dead', now() - interval '10 minutes', 'InProgress', now() - interval '10 minutes', now() - interval '10 minutes')",
            world.project
        ))
        .execute(conn)
    });
    let mut conn = world.app.pool.get().unwrap();
    assert_eq!(
        keyhold::backup::scheduler::reap_stale(&mut conn, Utc::now(), Duration::from_secs(60))
            .unwrap(),
        1
    );
    let reason = scalar_text(
        &world.app,
        "SELECT phase || ': ' || reason AS value FROM backups WHERE name = 'nightly-dead'",
    );
    assert_eq!(
        reason,
        "Failed: interrupted: the keyhold process running it stopped"
    );
}

#[actix_web::test]
async fn projects_respect_roles_and_organizations_and_credentials_in_use_stay() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    let (backup, _, _) = world.backup_now(policy).await;
    let green = world
        .partner
        .create_organization(&world.app, "Green Org")
        .await;
    let user = world.app.client();
    let account = world
        .partner
        .create_user("ulf@blue.example", "user", Some(world.organization))
        .await;
    user.login(&account.email, &account.password).await;
    let other = world.app.client();
    let account = world
        .partner
        .create_user("gus@green.example", "manager", Some(green))
        .await;
    other.login(&account.email, &account.password).await;

    assert_eq!(user.get("/projects").await.status(), StatusCode::OK);
    let page = user.get(&world.path("")).await;
    assert_eq!(page.status(), StatusCode::OK, "Users may look");
    let body = page.text().await.unwrap();
    assert!(
        !body.contains("Backup now")
            && !body.contains("Add a policy")
            && !body.contains("Disable backup")
    );
    assert_eq!(
        user.get("/projects/new").await.status(),
        StatusCode::FORBIDDEN
    );
    assert!(!other.page("/projects").await.contains("shop"));

    let posts = [
        world.path("/backup/enable"),
        world.path("/backup/disable"),
        world.path("/policies"),
        world.path(&format!("/policies/{policy}/run")),
        world.path(&format!("/policies/{policy}/delete")),
        world.path(&format!("/backups/{backup}/restore")),
        world.path(&format!("/backups/{backup}/delete")),
    ];
    for path in &posts {
        assert_eq!(
            user.post_from("/projects", path, &[]).await.status(),
            StatusCode::FORBIDDEN,
            "User POST {path}"
        );
        assert_eq!(
            other.post_from("/projects", path, &[]).await.status(),
            StatusCode::NOT_FOUND,
            "foreign POST {path}"
        );
    }
    assert_eq!(
        other.get(&world.path("")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        other
            .get(&world.path("/policies/preview?cron=hourly"))
            .await
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(world.app.count("backup_policies"), 1, "nothing changed");
    assert_eq!(world.app.count("backups"), 1);

    // A Manager of the organization cannot attach another organization's credential.
    let foreign_credential = world.credential.to_string();
    let green_id = green.to_string();
    let response = world
        .partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &green_id),
                ("name", "green-shop"),
                ("database_url", &world.data.url),
                ("backup_enabled", "on"),
                ("backup_credential_id", &foreign_credential),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        texts(
            &response.text().await.unwrap(),
            "#backup_credential_id-help"
        ),
        vec!["Choose an unlocked credential of the project's organization.".to_string()]
    );

    let delete = world
        .partner
        .post_from(
            "/credentials/backup",
            &format!("/credentials/backup/{}/delete", world.credential),
            &[],
        )
        .await;
    let status = delete.status();
    let body = delete.text().await.unwrap();
    assert_eq!(status, StatusCode::CONFLICT, "{:?}", texts(&body, "p"));
    assert!(body.contains("used by project shop"));
    let list = world.partner.page("/credentials/backup").await;
    assert!(
        list.contains("Used by shop"),
        "the delete button says why it is disabled"
    );
}

#[actix_web::test]
async fn the_data_source_password_never_reaches_a_page_or_the_database() {
    let world = world().await;
    let password = format!("pw{}", crate::support::fakes::MARKER);
    let url = world
        .data
        .url
        .replacen("postgres@", &format!("postgres:{password}@"), 1);
    assert!(url.contains(&password));
    let org = world.organization.to_string();
    let response = world
        .partner
        .post_from(
            "/projects/new",
            "/projects",
            &[
                ("organization_id", &org),
                ("name", "secretive"),
                ("database_url", &url),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let id = scalar_i64(
        &world.app,
        "SELECT id AS n FROM projects WHERE name = 'secretive'",
    );
    let user = world.app.client();
    let account = world
        .partner
        .create_user("ulf@blue.example", "user", Some(world.organization))
        .await;
    user.login(&account.email, &account.password).await;
    for client in [&world.partner, &user] {
        for path in [
            "/",
            "/projects",
            "/audit",
            &format!("/projects/{id}"),
            &format!("/projects/{id}?tab=backups"),
            &format!("/projects/{id}?tab=restores"),
        ] {
            for response in [client.get(path).await, client.get_htmx(path).await] {
                let headers = format!("{:?}", response.headers());
                let body = response.text().await.unwrap();
                assert!(
                    !body.contains(crate::support::fakes::MARKER)
                        && !headers.contains(crate::support::fakes::MARKER),
                    "{path} leaks the password"
                );
            }
        }
    }
    let stored = scalar_text(
        &world.app,
        &format!("SELECT database_url AS value FROM projects WHERE id = {id}"),
    );
    assert!(
        stored.starts_with("t1:") && !stored.contains(crate::support::fakes::MARKER),
        "sealed at rest"
    );
    let audit = scalar_text(
        &world.app,
        "SELECT string_agg(row_to_json(a)::text, ' ') AS value FROM audit_events a",
    );
    assert!(!audit.contains(crate::support::fakes::MARKER));
}

#[actix_web::test]
async fn storage_answering_500_fails_the_run_with_the_reason_and_the_next_run_completes() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    world.s3.failing.store(true, Ordering::SeqCst);
    let (_, phase, reason) = world.backup_now(policy).await;
    world.s3.failing.store(false, Ordering::SeqCst);
    assert_eq!(phase, "Failed");
    assert!(reason.contains("HTTP 500"), "{reason}");
    assert_eq!(
        world.app.count("backups WHERE phase = 'Completed'"),
        0,
        "nothing marked Completed"
    );
    let (backup, phase, reason) = world.backup_now(policy).await;
    assert_eq!(phase, "Completed", "{reason}");
    assert!(world.object_path(backup).exists());
}
