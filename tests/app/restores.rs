//! Restores and the checks around a run (issue 15): all or nothing into a database that holds
//! data unless a parallel restore is asked for, the free disk a download needs, slow and
//! stalled downloads, and each backup's pre-flight check.

use std::sync::atomic::Ordering;

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::support::{World, scalar_text, world, world_with};

/// Runs one SQL statement on `url`.
fn execute(url: &str, sql: &str) {
    let mut conn = PgConnection::establish(url).unwrap();
    diesel::sql_query(sql).execute(&mut conn).unwrap();
}

/// Backs up the world's `app` namespace once; the backup's id.
async fn one_backup(world: &World) -> i64 {
    world.add_policy("nightly", "daily", "720h", &["app"]).await;
    let (backup, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    backup
}

/// Asks for a restore of `backup` into the project database with these extra fields.
async fn restore(world: &World, backup: i64, name: &str, extra: &[(&str, &str)]) {
    let mut fields = vec![("restore_name", name)];
    fields.extend_from_slice(extra);
    let response = world
        .partner
        .post_from(
            &world.path("?tab=backups"),
            &world.path(&format!("/backups/{backup}/restore")),
            &fields,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
}

fn orders(world: &World) -> String {
    world
        .data
        .scalar("SELECT count(*)::text AS value FROM app.orders")
}

#[actix_web::test]
async fn a_failing_restore_into_a_database_holding_data_changes_nothing_unless_parallel() {
    let world = world().await;
    let backup = one_backup(&world).await;
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 90");
    // A view outside the restored namespace: dropping app.orders (--clean) fails.
    execute(&world.data.url, "CREATE SCHEMA keep");
    execute(
        &world.data.url,
        "CREATE VIEW keep.big AS SELECT * FROM app.orders WHERE cents > 0",
    );

    restore(&world, backup, "blocked", &[("namespaces", "app")]).await;
    let outcome = world.restore_outcome("blocked").await;
    assert!(
        outcome.starts_with("Failed") && outcome.contains("depend"),
        "{outcome}"
    );
    assert!(
        outcome.contains("nothing was changed (one transaction)"),
        "{outcome}"
    );
    assert_eq!(orders(&world), "90", "the target is as it was");
    assert_eq!(
        world.data.scalar(
            "SELECT count(*)::text AS value FROM pg_constraint WHERE conname = 'orders_pkey'"
        ),
        "1",
        "not even a constraint was dropped"
    );

    // The same restore asked to run in parallel says what a failure leaves behind.
    restore(
        &world,
        backup,
        "blocked-fast",
        &[("namespaces", "app"), ("parallel", "on")],
    )
    .await;
    let outcome = world.restore_outcome("blocked-fast").await;
    assert!(
        outcome.starts_with("Failed")
            && outcome.contains("parallel restore: what was restored before the failure is left"),
        "{outcome}"
    );

    // Without the view both restore, and the parallel one is recorded and shown as such.
    execute(&world.data.url, "DROP VIEW keep.big");
    restore(
        &world,
        backup,
        "fast",
        &[("namespaces", "app"), ("parallel", "on")],
    )
    .await;
    let outcome = world.restore_outcome("fast").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert_eq!(orders(&world), "100", "the backed-up rows are back");
    assert_eq!(
        scalar_text(
            &world.app,
            "SELECT parallel::text AS value FROM restores WHERE name = 'fast'"
        ),
        "true"
    );
    let audit = scalar_text(
        &world.app,
        "SELECT fields::text AS value FROM audit_events
         WHERE action = 'restore.create' ORDER BY id DESC LIMIT 1",
    );
    assert!(audit.contains("parallel"), "{audit}");
    let tab = world.partner.page(&world.path("?tab=restores")).await;
    assert!(tab.contains("parallel"), "the Restores tab says so");

    // The form offers the choice and says what it costs.
    let form = world
        .partner
        .page(&world.path(&format!("/backups/{backup}/restore")))
        .await;
    assert!(
        form.contains("name=\"parallel\"") && form.contains("not one transaction"),
        "{form}"
    );
}

#[actix_web::test]
async fn a_restore_is_refused_before_it_downloads_when_the_disk_is_short() {
    // Asking to keep more free space than any disk has makes every download too big.
    let world = world_with(&[("KEYHOLD_RESTORE_KEEP_FREE_MB", "1000000000")]).await;
    let backup = one_backup(&world).await;
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 50");
    let before = world.s3.requests.load(Ordering::SeqCst);
    restore(&world, backup, "too-big", &[]).await;
    let outcome = world.restore_outcome("too-big").await;
    assert!(
        outcome.starts_with("Failed")
            && outcome.contains("not enough free disk")
            && outcome.contains("MiB needed")
            && outcome.contains("the target database was not changed"),
        "{outcome}"
    );
    assert_eq!(orders(&world), "50", "the target is as it was");
    assert_eq!(
        world.s3.requests.load(Ordering::SeqCst),
        before,
        "nothing was downloaded"
    );
}

#[actix_web::test]
async fn a_slow_download_completes_and_a_stalled_one_fails_with_the_reason() {
    // One second per S3 request; the download below takes several, in steady chunks.
    let world = world_with(&[("KEYHOLD_BACKUP_TRANSFER_TIMEOUT_SECONDS", "1")]).await;
    execute(
        &world.data.url,
        "CREATE TABLE app.notes AS SELECT n, md5(random()::text) AS body
         FROM generate_series(1, 300) n",
    );
    let backup = one_backup(&world).await;
    let size: i64 = scalar_text(
        &world.app,
        &format!("SELECT size_bytes::text AS value FROM backups WHERE id = {backup}"),
    )
    .parse()
    .unwrap();
    let chunks = (size as u64).div_ceil(1024);
    assert!(chunks >= 4, "a dump of several chunks ({size} bytes)");
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 10");

    // About 2.5 s in all, each chunk well within the 1 s deadline.
    world
        .s3
        .chunk_delay_ms
        .store((2_500 / chunks).clamp(50, 600), Ordering::SeqCst);
    let started = std::time::Instant::now();
    restore(&world, backup, "slow-link", &[]).await;
    let outcome = world.restore_outcome("slow-link").await;
    assert!(outcome.starts_with("Completed"), "{outcome}");
    assert!(
        started.elapsed() > std::time::Duration::from_millis(1_500),
        "the download took longer than one request's deadline"
    );
    assert_eq!(orders(&world), "100");

    // A link that gives nothing for longer than the deadline is cut, and says so.
    execute(&world.data.url, "DELETE FROM app.orders WHERE id > 10");
    world.s3.chunk_delay_ms.store(2_500, Ordering::SeqCst);
    restore(&world, backup, "dead-link", &[]).await;
    let outcome = world.restore_outcome("dead-link").await;
    assert!(
        outcome.starts_with("Failed") && outcome.contains("sent nothing for 1 s"),
        "{outcome}"
    );
    assert_eq!(orders(&world), "10", "the target is as it was");
}

#[actix_web::test]
async fn each_backup_records_its_preflight_check_and_a_revoked_key_shows_on_its_credential() {
    let world = world().await;
    let backup = one_backup(&world).await;
    let found = scalar_text(
        &world.app,
        &format!("SELECT coalesce(preflight, '') AS value FROM backups WHERE id = {backup}"),
    );
    assert_eq!(
        found,
        "bucket keyhold-blue-org-shop reached with Blue storage"
    );
    let tab = world.partner.page(&world.path("?tab=backups")).await;
    assert!(tab.contains("Pre-flight: bucket keyhold-blue-org-shop reached"));

    // The key is revoked at the provider: the next run stops before pg_dump, and the
    // credential reads failed (not "Verified") without waiting for its daily check.
    world.s3.revoked.store(true, Ordering::SeqCst);
    let (_, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Failed");
    assert_eq!(reason, "Invalid S3 credentials");
    let state = scalar_text(
        &world.app,
        &format!(
            "SELECT verify_state || ' ' || verify_message AS value FROM credentials WHERE id = {}",
            world.credential
        ),
    );
    assert!(
        state.starts_with("failed a backup's pre-flight check: Invalid S3 credentials")
            && state.contains("InvalidAccessKeyId"),
        "{state}"
    );
    // Working again, the next pre-flight check marks it verified.
    world.s3.revoked.store(false, Ordering::SeqCst);
    let (_, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Completed", "{reason}");
    let state = scalar_text(
        &world.app,
        &format!(
            "SELECT verify_state AS value FROM credentials WHERE id = {}",
            world.credential
        ),
    );
    assert_eq!(state, "ok");

    // The bucket is deleted between runs: the run says so before dumping anything.
    std::fs::remove_dir_all(world.s3.root.path().join("keyhold-blue-org-shop")).unwrap();
    let (_, phase, reason) = world.backup_now(world.policy_id("nightly")).await;
    assert_eq!(phase, "Failed");
    assert!(
        reason.contains("bucket keyhold-blue-org-shop no longer exists"),
        "{reason}"
    );
}
