//! Storage and scheduling faults of issue 14: S3 that redirects, S3 that dies mid-upload, an
//! object changed in the bucket before a restore, runs that wait for a slot.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::support::fakes::{GOOD, S3_ACCESS_KEY};
use crate::support::{World, scalar_i64, scalar_text, texts, world, world_with};

/// Rows enough for a dump of several parts (random text does not compress).
fn fill(world: &World, rows: i64) {
    let mut conn = PgConnection::establish(&world.data.url).unwrap();
    diesel::sql_query(format!(
        "CREATE TABLE app.blobs AS SELECT n, md5(random()::text) || md5(random()::text)
             || md5(random()::text) || md5(random()::text) AS body
         FROM generate_series(1, {rows}) n"
    ))
    .execute(&mut conn)
    .unwrap();
}

/// keyhold's connections to the world's data database.
fn dumps_running(world: &World) -> i64 {
    let mut conn = PgConnection::establish(&world.data.url).unwrap();
    #[derive(QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }
    diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_stat_activity
         WHERE datname = '{}' AND application_name = 'keyhold'",
        world.data.name
    ))
    .get_result::<N>(&mut conn)
    .unwrap()
    .n
}

/// Files of unfinished multipart uploads in the S3 server's directory.
pub fn unfinished_uploads(world: &World) -> Vec<String> {
    std::fs::read_dir(world.s3.root.path())
        .unwrap()
        .flatten()
        .map(|entry| entry.file_name().to_string_lossy().to_string())
        .filter(|name| name.starts_with(".upload"))
        .collect()
}

#[actix_web::test]
async fn a_backup_ends_with_the_reason_when_s3_stops_answering_mid_upload() {
    let world = world_with(&[("KEYHOLD_BACKUP_TRANSFER_TIMEOUT_SECONDS", "1")]).await;
    fill(&world, 200_000); // ~15 MB of dump: two parts
    world.add_policy("big", "daily", "720h", &["app"]).await;
    // S3 answers the start of the multipart upload and the first part, then nothing.
    let now = world.s3.requests.load(Ordering::SeqCst);
    world.s3.stall_from.store(now + 2, Ordering::SeqCst);
    let started = Instant::now();
    let (backup, phase, reason) = world.backup_now(world.policy_id("big")).await;
    assert_eq!(phase, "Failed");
    assert!(reason.contains("did not answer within"), "{reason}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        scalar_text(
            &world.app,
            &format!("SELECT coalesce(object_key, '') AS value FROM backups WHERE id = {backup}")
        ),
        ""
    );
    let mut running = dumps_running(&world);
    for _ in 0..50 {
        if running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        running = dumps_running(&world);
    }
    assert_eq!(running, 0, "pg_dump and its backend are gone");

    // The abort could not reach S3 either: the run keeps its open upload for the scheduler.
    assert!(
        !unfinished_uploads(&world).is_empty(),
        "parts were uploaded"
    );
    assert_eq!(
        scalar_i64(
            &world.app,
            "SELECT count(*) AS n FROM backups WHERE upload_id IS NOT NULL"
        ),
        1
    );
    // S3 comes back: the next scheduler pass aborts it; the next run works.
    world.s3.stall_from.store(usize::MAX, Ordering::SeqCst);
    let runner = crate::support::test_runner(&world.app);
    let aborted = keyhold::backup::scheduler::abort_open_uploads(&runner)
        .await
        .unwrap();
    assert_eq!(aborted, 1);
    assert_eq!(unfinished_uploads(&world), Vec::<String>::new());
    assert_eq!(
        scalar_i64(
            &world.app,
            "SELECT count(*) AS n FROM backups WHERE upload_id IS NOT NULL"
        ),
        0
    );
    let (_, phase, reason) = world.backup_now(world.policy_id("big")).await;
    assert_eq!(phase, "Completed", "{reason}");
}

/// A running backup says how far it is: the Backups tab shows how long it has run and how
/// much of the dump is stored so far (recorded with each beat), while S3 holds its second part.
#[actix_web::test]
async fn a_running_backup_shows_its_time_and_bytes_so_far() {
    let world = world_with(&[
        ("KEYHOLD_BACKUP_TRANSFER_TIMEOUT_SECONDS", "8"),
        ("KEYHOLD_BACKUP_STALE_SECONDS", "2"),
    ])
    .await;
    fill(&world, 200_000); // ~15 MB of dump: two parts
    world.add_policy("big", "daily", "720h", &["app"]).await;
    let now = world.s3.requests.load(Ordering::SeqCst);
    world.s3.stall_from.store(now + 2, Ordering::SeqCst);
    let page = world.path("");
    let response = world
        .partner
        .post_from(
            &page,
            &format!("{page}/policies/{}/run", world.policy_id("big")),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    // The beats record what is stored: at least the first part (8 MiB) once S3 holds the
    // second.
    let mut stored = 0;
    for _ in 0..60 {
        stored = scalar_i64(
            &world.app,
            "SELECT coalesce(max(progress_bytes), 0) AS n FROM backups",
        );
        if stored >= 8 * 1024 * 1024 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stored >= 8 * 1024 * 1024, "{stored} bytes so far");
    let shown = world.partner.page(&format!("{page}?tab=backups")).await;
    assert!(shown.contains("MiB so far"), "{shown}");
    assert!(shown.contains("running for"), "{shown}");
    // It ends (S3 never answers the second part); then the tab shows no progress.
    world.s3.stall_from.store(usize::MAX, Ordering::SeqCst);
    crate::support::ended(
        &world.app,
        "SELECT phase AS value FROM backups ORDER BY id DESC LIMIT 1",
    )
    .await;
    let after = world.partner.page(&format!("{page}?tab=backups")).await;
    assert!(!after.contains("so far") && !after.contains("running for"));
}

#[actix_web::test]
async fn a_changed_object_is_refused_before_the_target_is_touched() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    // The object is replaced in the bucket (same size, other bytes), and the data changes.
    let object = world.object_path(backup);
    let mut bytes = std::fs::read(&object).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&object, bytes).unwrap();
    let mut conn = PgConnection::establish(&world.data.url).unwrap();
    diesel::sql_query("INSERT INTO app.orders (item, cents) VALUES ('after-backup', 1)")
        .execute(&mut conn)
        .unwrap();

    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path(&format!("/backups/{backup}/restore")),
            &[("restore_name", "in-place")],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let outcome = world.restore_outcome("in-place").await;
    assert!(
        outcome.starts_with("Failed") && outcome.contains("checksum mismatch"),
        "{outcome}"
    );
    assert_eq!(
        world
            .data
            .scalar("SELECT count(*)::text AS value FROM app.orders WHERE item = 'after-backup'"),
        "1",
        "the target database was not changed"
    );
}

/// Restores download in ranged GETs (here of 4 KiB, four at once): the parts arrive out of
/// order yet are written and hashed in order; an object of another size than the backup's
/// (appended to, cut) or with a changed byte is refused before the target is touched; the
/// original object then restores.
#[actix_web::test]
async fn ranged_downloads_restore_in_order_and_refuse_a_changed_object() {
    let world = world_with(&[("KEYHOLD_RESTORE_DOWNLOAD_PART_KB", "4")]).await;
    fill(&world, 2_000); // a dump of about 100 KiB: some 25 ranges
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let object = world.object_path(backup);
    let original = std::fs::read(&object).unwrap();
    assert!(original.len() > 40 * 1024, "{} bytes", original.len());
    let mut conn = PgConnection::establish(&world.data.url).unwrap();
    diesel::sql_query("INSERT INTO app.orders (item, cents) VALUES ('after-backup', 1)")
        .execute(&mut conn)
        .unwrap();
    let restore = async |name: &str| {
        let response = world
            .partner
            .post_from(
                &world.path(""),
                &world.path(&format!("/backups/{backup}/restore")),
                &[("restore_name", name)],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        world.restore_outcome(name).await
    };
    let after_backup = || {
        world
            .data
            .scalar("SELECT count(*)::text AS value FROM app.orders WHERE item = 'after-backup'")
    };

    let mut longer = original.clone();
    longer.extend_from_slice(b"appended");
    let mut shorter = original.clone();
    shorter.truncate(original.len() - 100);
    let mut changed = original.clone();
    changed[original.len() / 3] ^= 0xff;
    for (name, bytes) in [
        ("longer", longer),
        ("shorter", shorter),
        ("changed", changed),
    ] {
        std::fs::write(&object, bytes).unwrap();
        let outcome = restore(name).await;
        assert!(
            outcome.starts_with("Failed") && outcome.contains("checksum mismatch"),
            "{name}: {outcome}"
        );
        assert_eq!(
            after_backup(),
            "1",
            "{name}: the target database was not changed"
        );
    }

    std::fs::write(&object, &original).unwrap();
    let outcome = restore("original").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(after_backup(), "0", "restored to the backup's rows");
    assert_eq!(
        world
            .data
            .scalar("SELECT count(*)::text AS value FROM app.blobs"),
        "2000"
    );
}

#[actix_web::test]
async fn runs_waiting_for_a_slot_are_not_stale_and_backup_now_keeps_to_the_concurrency() {
    let world = world_with(&[
        ("KEYHOLD_BACKUP_CONCURRENCY", "1"),
        ("KEYHOLD_BACKUP_STALE_SECONDS", "2"),
    ])
    .await;
    world.add_policy("one", "daily", "720h", &["app"]).await;
    world.add_policy("two", "daily", "720h", &["app"]).await;
    // A lock makes pg_dump wait, so the first run holds the only slot.
    let mut lock = PgConnection::establish(&world.data.url).unwrap();
    diesel::sql_query("BEGIN").execute(&mut lock).unwrap();
    diesel::sql_query("LOCK TABLE app.orders IN ACCESS EXCLUSIVE MODE")
        .execute(&mut lock)
        .unwrap();
    for policy in ["one", "two"] {
        let response = world
            .partner
            .post_from(
                &world.path(""),
                &world.path(&format!("/policies/{}/run", world.policy_id(policy))),
                &[],
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
    }
    // Pressed again while its run waits: refused, nothing queued.
    let again = world
        .partner
        .post_from(
            &world.path(""),
            &world.path(&format!("/policies/{}/run", world.policy_id("two"))),
            &[],
        )
        .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(
        again
            .text()
            .await
            .unwrap()
            .contains("already waiting or running")
    );
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(dumps_running(&world), 1, "one pg_dump at a time");
    let reaped = world.app.query(|conn| {
        keyhold::backup::scheduler::reap_stale(conn, chrono::Utc::now(), Duration::from_secs(2))
    });
    assert_eq!(reaped, 0, "nothing that waits or runs is stale");
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT string_agg(phase, ',' ORDER BY id) AS value FROM backups"
        ),
        "InProgress,New"
    );
    diesel::sql_query("COMMIT").execute(&mut lock).unwrap();
    for _ in 0..100 {
        if scalar_i64(
            &world.app,
            "SELECT count(*) AS n FROM backups WHERE phase = 'Completed'",
        ) == 2
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "both runs complete: {}",
        scalar_text(
            &world.app,
            "SELECT string_agg(phase || ' ' || coalesce(reason, ''), ',') AS value FROM backups"
        )
    );
}

#[actix_web::test]
async fn s3_redirects_are_never_followed() {
    let world = world().await;
    // Where a redirect would lead (standing in for a metadata service): counts its visitors.
    let target = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target_port = target.local_addr().unwrap().port();
    let visits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = visits.clone();
    actix_web::rt::spawn(async move {
        while let Ok((_socket, _)) = target.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
        }
    });
    // An "S3 endpoint" that answers every request with a redirect there.
    let redirector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", redirector.local_addr().unwrap());
    actix_web::rt::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut socket, _)) = redirector.accept().await {
            let mut buffer = vec![0u8; 65536];
            let _ = socket.read(&mut buffer).await;
            let answer = format!(
                "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:{target_port}/latest/meta-data/\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = socket.write_all(answer.as_bytes()).await;
        }
    });
    // Verified on the form, then saved (which verifies again): S3's 302 is an answer.
    let org = world.organization.to_string();
    for path in ["/credentials/backup/verify", "/credentials/backup"] {
        let response = world
            .partner
            .post_from(
                "/credentials/backup/new",
                path,
                &[
                    ("organization_id", &org),
                    ("name", "Redirecting"),
                    ("access_key_id", S3_ACCESS_KEY),
                    ("secret_access_key", GOOD),
                    ("endpoint", &endpoint),
                    ("region", "us-east-1"),
                ],
            )
            .await;
        let body = response.text().await.unwrap();
        if path.ends_with("verify") {
            assert!(
                body.contains("HTTP 302"),
                "{:?}",
                texts(&body, ".verify-box")
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(visits.load(Ordering::SeqCst), 0, "no redirect was followed");
}

#[actix_web::test]
async fn a_credential_holding_stored_backups_is_in_use_and_names_them() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let policy = world.policy_id("nightly");
    let (backup, phase, reason) = world.backup_now(policy).await;
    assert_eq!(phase, "Completed", "{reason}");
    // The project lets go of the credential: its policy deleted, backup disabled.
    for path in [
        format!("/policies/{policy}/delete"),
        "/backup/disable".to_string(),
    ] {
        let response = world
            .partner
            .post_from(&world.path(""), &world.path(&path), &[])
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
    }
    let name = scalar_text(
        &world.app,
        &format!("SELECT name AS value FROM backups WHERE id = {backup}"),
    );
    let delete = format!("/credentials/backup/{}/delete", world.credential);
    let refused = world
        .partner
        .post_from("/credentials/backup", &delete, &[])
        .await;
    assert_eq!(refused.status(), StatusCode::CONFLICT);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("holds 1 stored or running backup") && body.contains(&name),
        "{body}"
    );
    assert_eq!(
        scalar_i64(&world.app, "SELECT count(*) AS n FROM credentials"),
        1
    );

    // Its backup deleted (object and row), the credential goes.
    let response = world
        .partner
        .post_from(
            &world.path("?tab=backups"),
            &world.path(&format!("/backups/{backup}/delete")),
            &[],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let deleted = world
        .partner
        .post_from("/credentials/backup", &delete, &[])
        .await;
    assert_eq!(deleted.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        scalar_i64(&world.app, "SELECT count(*) AS n FROM credentials"),
        0
    );
}

#[actix_web::test]
async fn a_restore_whose_process_stopped_is_reaped_like_a_backup() {
    let world = world().await;
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    // Two restores "running": one beat a moment ago, one's process stopped beating 10 s ago.
    world.app.query(|conn| {
        diesel::sql_query(format!(
            "INSERT INTO restores (project_id, backup_id, backup_name, name, namespaces, phase,
                                   started_at, heartbeat_at)
             SELECT project_id, id, name, n, '{{}}', 'InProgress', now() - interval '1 hour',
                    now() - (d || ' seconds')::interval
             FROM backups, (VALUES ('alive', 0), ('dead', 10)) AS v(n, d) WHERE id = {backup}"
        ))
        .execute(conn)
    });
    let reaped = world.app.query(|conn| {
        keyhold::backup::scheduler::reap_stale(conn, chrono::Utc::now(), Duration::from_secs(5))
    });
    assert_eq!(reaped, 1);
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT string_agg(name || ' ' || phase, ',' ORDER BY name) AS value FROM restores"
        ),
        "alive InProgress,dead Failed"
    );
}

#[actix_web::test]
async fn chosen_namespaces_restore_into_a_fresh_database() {
    let world = world().await;
    world
        .add_policy("both", "daily", "720h", &["app", "reporting"])
        .await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("both")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let fresh = crate::support::DataDb::empty();
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path(&format!("/backups/{backup}/restore")),
            &[
                ("restore_name", "only-app"),
                ("namespaces", "app"),
                ("target_database_url", &fresh.url),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let outcome = world.restore_outcome("only-app").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(
        fresh.scalar("SELECT count(*)::text AS value FROM app.orders"),
        "100"
    );
    assert_eq!(
        fresh
            .scalar("SELECT count(*)::text AS value FROM pg_namespace WHERE nspname = 'reporting'"),
        "0",
        "only the chosen namespace"
    );
}

#[actix_web::test]
async fn parts_grow_so_a_lowered_part_limit_still_holds_the_dump() {
    use keyhold::backup::model::{Backup, BackupPolicy, PolicyId};
    use keyhold::projects::model::ProjectId;

    let world = world().await;
    fill(&world, 275_000); // ~21 MB: three parts of 8 MiB, or two growing (8 + 16 MiB)
    world.add_policy("big", "daily", "720h", &["app"]).await;
    let (project, policy) = (ProjectId(world.project), PolicyId(world.policy_id("big")));
    let run = async |max_parts: u32, minute: u32, memory_part: usize| {
        let slot = chrono::Utc::now() + chrono::Duration::minutes(minute.into());
        let id = world
            .app
            .query(move |conn| {
                let policy = BackupPolicy::find(conn, project, policy)?;
                Backup::insert_slot(conn, &policy, slot)
            })
            .expect("a new run");
        crate::support::test_runner(&world.app)
            .with_transfers(Duration::from_secs(30), max_parts)
            .with_memory_part(memory_part)
            .run_backup(id)
            .await;
        scalar_text(
            &world.app,
            &format!(
                "SELECT phase || ' ' || coalesce(reason, '') AS value FROM backups WHERE id = {}",
                id.0
            ),
        )
    };
    // Two parts hold it because they grow (fixed 8 MiB parts would need three); one cannot,
    // and the run says why.
    let memory = keyhold::storage::MEMORY_PART;
    let two = run(2, 1, memory).await;
    assert_eq!(two.trim(), "Completed");
    // Parts above the memory limit go through a spool file: the same object comes out.
    let spooled = run(2, 3, 4 * 1024 * 1024).await;
    assert_eq!(spooled.trim(), "Completed");
    let backup = scalar_text(
        &world.app,
        "SELECT id::text AS value FROM backups WHERE phase = 'Completed'
         ORDER BY scheduled_for DESC LIMIT 1",
    );
    let fresh = crate::support::DataDb::empty();
    let response = world
        .partner
        .post_from(
            &world.path(""),
            &world.path(&format!("/backups/{backup}/restore")),
            &[
                ("restore_name", "spooled"),
                ("target_database_url", &fresh.url),
            ],
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let outcome = world.restore_outcome("spooled").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(
        fresh.scalar("SELECT count(*)::text AS value FROM app.blobs"),
        "275000",
        "the spooled parts hold the whole dump, checksum checked"
    );
    let one = run(1, 2, memory).await;
    assert!(
        one.starts_with("Failed") && one.contains("more than 1 part"),
        "{one}"
    );
    assert_eq!(unfinished_uploads(&world), Vec::<String>::new(), "aborted");
}

#[actix_web::test]
async fn credentials_are_verified_again_when_their_last_check_is_old() {
    let world = world_with(&[
        ("KEYHOLD_SCHEDULER", "true"),
        ("KEYHOLD_SCHEDULER_INTERVAL_SECONDS", "1"),
        ("KEYHOLD_REVERIFY_HOURS", "1"),
    ])
    .await;
    let state = || {
        scalar_text(
            &world.app,
            &format!(
                "SELECT verify_state || ' ' || (verified_at > now() - interval '1 minute')::text
                     AS value FROM credentials WHERE id = {}",
                world.credential
            ),
        )
    };
    assert_eq!(state(), "ok true", "verified when it was saved");
    // A day later the storage refuses the key: the next pass finds out, without a backup.
    world.s3.failing.store(true, Ordering::SeqCst);
    world.app.query(|conn| {
        diesel::sql_query("UPDATE credentials SET verified_at = now() - interval '2 hours'")
            .execute(conn)
    });
    let mut found = String::new();
    for _ in 0..100 {
        found = state();
        if found == "failed true" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(found, "failed true");
    // Claimed once: a second claim right after finds nothing due.
    let claimed = world.app.query(|conn| {
        keyhold::credentials::model::Credential::claim_reverification(
            conn,
            Duration::from_secs(3600),
            10,
        )
    });
    assert!(claimed.is_empty());
}
